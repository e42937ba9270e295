import { describe, expect, it } from 'vitest';
import { SEV_STRUCTS, decodePlatformStatus, decodeSnpPlatformStatus, encodePlatformStatus, encodeSnpConfig } from '../../lib/platform/layout.js';
import { SevError } from '../../lib/platform/errors.js';

describe('PLATFORM_STATUS decoding (struct sev_user_data_status)', () => {
  it('decodes every field at its packed offset', () => {
    // api 0.24, state WORKING, flags = owner|CONFIG_ES, build 15, 3 guests
    const raw = Buffer.from([0x00, 0x18, 0x02, 0x01, 0x01, 0x00, 0x00, 0x0f, 0x03, 0x00, 0x00, 0x00]);
    expect(decodePlatformStatus(raw)).toEqual({
      apiMajor: 0,
      apiMinor: 24,
      build: 15,
      state: 'WORKING',
      owner: 'external',
      esEnabled: true,
      guestCount: 3,
      flags: 0x101,
    });
  });

  it('reads guest_count as a full little-endian u32 and flags across bytes 3..6', () => {
    const raw = Buffer.alloc(12);
    raw[2] = 1;
    raw.writeUInt32LE(0x00000000, 3);
    raw.writeUInt32LE(0x01020304, 8);
    const s = decodePlatformStatus(raw);
    expect(s.guestCount).toBe(0x01020304);
    expect(s.owner).toBe('self');
    expect(s.esEnabled).toBe(false);
    expect(s.state).toBe('INIT');
  });

  it('round-trips through encodePlatformStatus', () => {
    const s = { apiMajor: 1, apiMinor: 55, build: 21, state: 'UNINIT' as const, owner: 'self' as const, esEnabled: false, guestCount: 7 };
    const raw = encodePlatformStatus(s);
    expect(raw.length).toBe(SEV_STRUCTS.sev_user_data_status.size);
    expect(decodePlatformStatus(raw)).toEqual({ ...s, flags: 0 });
  });

  it('refuses wrong sizes and unknown states with EPROTO', () => {
    expect(() => decodePlatformStatus(Buffer.alloc(11))).toThrow(SevError);
    expect(() => decodePlatformStatus(Buffer.alloc(13))).toThrow(/must be 12 bytes/);
    const raw = Buffer.alloc(12);
    raw[2] = 3;
    try {
      decodePlatformStatus(raw);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SevError);
      expect((e as SevError).code).toBe('EPROTO');
      expect((e as SevError).message).toMatch(/unknown platform state 3/);
    }
  });
});

describe('SNP_PLATFORM_STATUS decoding (struct sev_user_data_snp_status)', () => {
  it('decodes bitfields LSB-first and the u64 TCB versions', () => {
    const b = Buffer.alloc(32);
    b[0] = 1;
    b[1] = 57;
    b[2] = 1;
    b[3] = 1; // is_rmp_initialized
    b.writeUInt32LE(0x1234, 4);
    b.writeUInt32LE(0b1100110, 8); // mask_chip_key, vlek_en, ciphertext_hiding_cap, ciphertext_hiding_en
    b.writeUInt32LE(9, 12);
    b.writeBigUInt64LE(0xdb18000000000004n, 16);
    b.writeBigUInt64LE(0x0300000000000003n, 24);
    const s = decodeSnpPlatformStatus(b);
    expect(s).toMatchObject({
      apiMajor: 1,
      apiMinor: 57,
      state: 'INIT',
      rmpInitialized: true,
      buildId: 0x1234,
      maskChipId: false,
      maskChipKey: true,
      vlekEnabled: true,
      featureInfo: false,
      raplDisabled: false,
      ciphertextHidingCap: true,
      ciphertextHidingEnabled: true,
      guestCount: 9,
      currentTcbVersion: 0xdb18000000000004n,
      reportedTcbVersion: 0x0300000000000003n,
    });
  });

  it('refuses a short buffer and unknown SNP states', () => {
    expect(() => decodeSnpPlatformStatus(Buffer.alloc(31))).toThrow(/must be 32 bytes/);
    const b = Buffer.alloc(32);
    b[2] = 2;
    expect(() => decodeSnpPlatformStatus(b)).toThrow(/unknown SNP state 2/);
  });
});

describe('SNP_SET_CONFIG encoding (struct sev_user_data_snp_config)', () => {
  it('writes reported_tcb, the mask flags and zero reserved bytes', () => {
    const b = encodeSnpConfig({ reportedTcb: 0x0807060504030201n, maskChipId: true, maskChipKey: true });
    expect(b.length).toBe(64);
    expect(b.subarray(0, 8)).toEqual(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(b.readUInt32LE(8)).toBe(3);
    expect(b.subarray(12).every((x) => x === 0)).toBe(true);
    expect(encodeSnpConfig({ reportedTcb: 0n, maskChipKey: true }).readUInt32LE(8)).toBe(2);
  });

  it('rejects a TCB outside u64', () => {
    expect(() => encodeSnpConfig({ reportedTcb: -1n })).toThrow(/u64/);
    expect(() => encodeSnpConfig({ reportedTcb: 1n << 64n })).toThrow(/u64/);
  });
});
