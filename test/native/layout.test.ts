/**
 * TS layouts and constants vs. what the compiler laid out in the addon: the
 * decoders read offsets from SEV_STRUCTS, so any drift from the C structs
 * (native/include/sev_uapi.h) fails here.
 */
import { describe, expect, it } from 'vitest';
import { getNativeBinding } from '../../lib/binding.js';
import { SEV_STRUCTS } from '../../lib/platform/layout.js';
import {
  SEV_FW_BLOB_MAX_SIZE,
  SEV_ISSUE_CMD,
  SEV_PLATFORM_CERT_SIZE,
  SEV_STATUS_FLAGS_CONFIG_ES,
  SEV_STATUS_FLAGS_OWNER,
  SevCmd,
  SevRet,
  SevStateCode,
} from '../../lib/platform/constants.js';

const native = getNativeBinding();

describe('struct layout parity (TS vs sizeof/offsetof in the addon)', () => {
  it('covers the same structs', () => {
    expect(Object.keys(native.layout).sort()).toEqual(Object.keys(SEV_STRUCTS).sort());
  });
  it.each(Object.keys(SEV_STRUCTS))('%s has the same size and field offsets', (name) => {
    expect(native.layout[name]).toEqual(SEV_STRUCTS[name as keyof typeof SEV_STRUCTS]);
  });
  it('matches the sizes kernel-qemu.md §1.3 pins', () => {
    const sizes = Object.fromEntries(Object.entries(native.layout).map(([k, v]) => [k, v.size]));
    expect(sizes).toEqual({
      sev_issue_cmd: 16,
      sev_user_data_status: 12,
      sev_user_data_pek_csr: 12,
      sev_user_data_pek_cert_import: 24,
      sev_user_data_pdh_cert_export: 24,
      sev_user_data_get_id: 128,
      sev_user_data_get_id2: 12,
      sev_user_data_snp_status: 32,
      sev_user_data_snp_config: 64,
      sev_user_data_snp_vlek_load: 16,
    });
  });
});

describe('constant parity', () => {
  it('ioctl number, blob limit, cert size, status flags', () => {
    expect(native.constants.SEV_ISSUE_CMD).toBe(SEV_ISSUE_CMD);
    expect(native.constants.SEV_FW_BLOB_MAX_SIZE).toBe(SEV_FW_BLOB_MAX_SIZE);
    expect(native.constants.SEV_CERT_SIZE).toBe(SEV_PLATFORM_CERT_SIZE);
    expect(native.constants.SEV_STATUS_FLAGS_OWNER).toBe(SEV_STATUS_FLAGS_OWNER);
    expect(native.constants.SEV_STATUS_FLAGS_CONFIG_ES).toBe(SEV_STATUS_FLAGS_CONFIG_ES);
  });
  it('command ids 0..12 (native names drop the SEV_ prefix)', () => {
    const fromTs = Object.fromEntries(Object.entries(SevCmd).map(([k, v]) => [k === 'SEV_MAX' ? k : k.replace(/^SEV_/, ''), v]));
    expect(native.constants.commands).toEqual(fromTs);
    expect(Object.values(SevCmd).sort((a, b) => a - b)).toEqual([...Array(14).keys()]);
  });
  it('every firmware status code, including the SNP-era ones and NO_FW_CALL', () => {
    expect(native.constants.status).toEqual({ ...SevRet });
    expect(Object.keys(SevRet)).toHaveLength(40); // -1, 0x00..0x27 without 0x1e
  });
  it('platform states', () => {
    expect(native.constants.states).toEqual({
      UNINIT: SevStateCode.SEV_STATE_UNINIT,
      INIT: SevStateCode.SEV_STATE_INIT,
      WORKING: SevStateCode.SEV_STATE_WORKING,
    });
  });
});
