import { describe, it, expect } from 'vitest';
import { parseSevInfo } from '../../lib/qmp/sev-info.js';
import { QmpProtocolError } from '../../lib/qmp/errors.js';

const SNP = { enabled: true, 'api-major': 1, 'api-minor': 55, 'build-id': 21, state: 'running', 'sev-type': 'sev-snp', 'snp-policy': 196608 };
const SEV72 = { enabled: true, 'api-minor': 55, handle: 1, state: 'launch-secret', 'api-major': 1, 'build-id': 21, policy: 5 };

describe('query-sev into typed values', () => {
  it('reads the QEMU >= 9.1 SNP shape', () => {
    expect(parseSevInfo(SNP)).toEqual({ enabled: true, apiMajor: 1, apiMinor: 55, buildId: 21, state: 'running', sevType: 'sev-snp', snpPolicy: 0x30000n });
  });
  it('reads the flat 7.2 shape and the tagged 9.1 SEV shape alike', () => {
    const want = { enabled: true, apiMajor: 1, apiMinor: 55, buildId: 21, state: 'launch-secret', sevType: 'sev', policy: 5, handle: 1 };
    expect(parseSevInfo(SEV72)).toEqual(want);
    expect(parseSevInfo({ ...SEV72, 'sev-type': 'sev' })).toEqual(want);
  });
  it('refuses values that cannot be true', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...SNP, 'api-major': 256 }, /api-major 256 is not 0\.\.255/],
      [{ ...SNP, 'api-minor': -1 }, /api-minor/],
      [{ ...SNP, 'build-id': 1.5 }, /build-id/],
      [{ ...SNP, 'snp-policy': -1 }, /snp-policy/],
      [{ ...SNP, 'snp-policy': 2 ** 60 }, /snp-policy/],
      [{ ...SNP, 'snp-policy': '196608' }, /snp-policy/],
      [{ ...SNP, state: 'launch-secret' }, /SNP does not have/],
      [{ ...SNP, state: 'exploded' }, /unknown state/],
      [{ ...SNP, 'sev-type': 'tdx' }, /unknown sev-type/],
      [{ ...SEV72, policy: 2 ** 32 }, /policy .* is not a u32/],
      [{ ...SEV72, handle: undefined }, /handle/],
      [{ enabled: 'yes' }, /not a SevInfo/],
    ];
    for (const [raw, msg] of bad) {
      expect(() => parseSevInfo(raw)).toThrow(QmpProtocolError);
      expect(() => parseSevInfo(raw)).toThrow(msg);
    }
  });
});
