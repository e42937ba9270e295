import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ReportFormatError } from '../../lib/snp/errors.js';
import { decodeGuestPolicy, decodeKeyInfo, decodePlatformInfo, encodeGuestPolicy, encodePlatformInfo, setFlags } from '../../lib/snp/flags.js';
import { encodeReport, parseReport, REPORT_SIZE, reportProduct, setSignature, signatureP1363 } from '../../lib/snp/report.js';
import { decodeTcb, encodeTcb, formatTcb, tcbBelow } from '../../lib/snp/tcb.js';
import { realVectors } from './vectors.js';

const vectors = realVectors();

describe('SNP report codec on the real vectors', () => {
  it('has the ten vectors', () => expect(vectors.length).toBe(10));

  for (const v of vectors) {
    it(`${v.name}: parses to the known answers and re-encodes byte-exact`, () => {
      expect(createHash('sha256').update(v.report).digest('hex')).toBe(v.known.report.sha256_of_1184_bytes);
      const r = parseReport(v.report);
      const k = v.known.parsed;
      expect(r.version).toBe(k.version);
      expect(`0x${encodeGuestPolicy(r.policy).toString(16)}`).toBe(k.policy);
      expect(`0x${encodePlatformInfo(r.platformInfo).toString(16)}`).toBe(k.plat_info);
      expect(r.vmpl).toBe(k.vmpl);
      expect(r.keyInfo.signingKey).toBe(k.signing_key === 0 ? 'VCEK' : 'VLEK');
      expect(r.measurement.toString('hex')).toBe(v.known.measurement);
      expect(r.chipId.toString('hex')).toBe(v.known.chip_id);
      expect(r.reportData.toString('hex')).toBe(v.known.report_data);
      expect(r.hostData.toString('hex')).toBe(v.known.host_data);
      expect(r.idKeyDigest.toString('hex')).toBe(v.known.id_key_digest);
      const t = k.reported_tcb;
      expect([r.reportedTcb.bootloader, r.reportedTcb.tee, r.reportedTcb.snp, r.reportedTcb.microcode]).toEqual([t.bl, t.tee, t.snp, t.ucode]);
      expect(encodeTcb(r.currentTcb).toString('hex')).toBe(k.current_tcb.raw);
      expect(`${r.currentVersion.major}.${r.currentVersion.minor}.${r.currentVersion.build}`).toBe(k.current_ver);
      if (r.version === 2) expect(r.cpuid).toBeUndefined();
      else expect([r.cpuid!.family, r.cpuid!.model, r.cpuid!.stepping]).toEqual(k.cpuid);
      if (r.version >= 3) expect(reportProduct(r)).toBe(v.known.kds_product);
      expect(encodeReport(r).equals(v.report)).toBe(true);
    });
  }
});

describe('SNP report codec errors name the field', () => {
  const base = vectors.find((v) => v.name === 'oak_milan_v3')!.report;
  const mutate = (f: (b: Buffer) => void) => {
    const b = Buffer.from(base);
    f(b);
    return b;
  };
  const fieldOf = (b: Uint8Array) => {
    try {
      parseReport(b);
    } catch (e) {
      expect(e).toBeInstanceOf(ReportFormatError);
      return (e as ReportFormatError).field;
    }
    return 'parsed';
  };

  it('rejects a wrong size', () => {
    expect(fieldOf(base.subarray(0, 1183))).toBe('size');
    expect(fieldOf(Buffer.concat([base, Buffer.alloc(1)]))).toBe('size');
  });
  it('rejects versions outside 2..5', () => {
    for (const v of [0, 1, 6, 0xffffffff]) expect(fieldOf(mutate((b) => b.writeUInt32LE(v, 0)))).toBe('VERSION');
  });
  it('rejects each non-zero reserved range', () => {
    expect(fieldOf(mutate((b) => (b[0x04d] = 1)))).toBe('reserved@0x04C');
    expect(fieldOf(mutate((b) => (b[0x190] = 1)))).toBe('reserved@0x18B');
    expect(fieldOf(mutate((b) => (b[0x1eb] = 1)))).toBe('reserved@0x1EB');
    expect(fieldOf(mutate((b) => (b[0x1ef] = 1)))).toBe('reserved@0x1EF');
    expect(fieldOf(mutate((b) => (b[0x1f8] = 1)))).toBe('reserved@0x1F8 (mitigation vectors before v5)');
    expect(fieldOf(mutate((b) => (b[0x29f] = 1)))).toBe('reserved@0x208');
    expect(fieldOf(mutate((b) => (b[0x2d0] = 1)))).toBe('SIGNATURE.R high bytes');
    expect(fieldOf(mutate((b) => (b[0x318] = 1)))).toBe('SIGNATURE.S high bytes');
    expect(fieldOf(mutate((b) => (b[0x49f] = 1)))).toBe('reserved@0x330 (signature area)');
  });
  it('treats the v2 CPUID bytes as reserved and the v5 mitigation vectors as fields', () => {
    const v2 = vectors.find((v) => v.name === 'gsg_milan_v2')!.report;
    const b = Buffer.from(v2);
    b[0x188] = 0x19;
    expect(fieldOf(b)).toBe('reserved@0x188 (v2 CPUID bytes)');
    const v5 = mutate((x) => {
      x.writeUInt32LE(5, 0);
      x.writeBigUInt64LE(3n, 0x1f8);
      x.writeBigUInt64LE(1n, 0x200);
    });
    const r = parseReport(v5);
    expect([r.launchMitVector, r.currentMitVector]).toEqual([3n, 1n]);
    expect(encodeReport(r).equals(v5)).toBe(true);
    expect(() => encodeReport({ ...r, version: 3 })).toThrow(ReportFormatError);
  });
  it('rejects policy bit 17 clear, policy bits 63:26, KEY_INFO reserved bits and signing keys', () => {
    expect(fieldOf(mutate((b) => b.writeBigUInt64LE(0x10000n, 0x008)))).toBe('POLICY');
    expect(fieldOf(mutate((b) => b.writeBigUInt64LE(0x30000n | (1n << 26n), 0x008)))).toBe('POLICY');
    expect(fieldOf(mutate((b) => b.writeUInt32LE(1 << 5, 0x048)))).toBe('KEY_INFO');
    expect(fieldOf(mutate((b) => b.writeUInt32LE(2 << 2, 0x048)))).toBe('KEY_INFO.SIGNING_KEY');
    expect(parseReport(mutate((b) => b.writeUInt32LE(7 << 2, 0x048))).keyInfo.signingKey).toBe('NONE');
  });
  it('encoder refuses wrong field lengths by name', () => {
    const r = parseReport(base);
    expect(() => encodeReport({ ...r, measurement: Buffer.alloc(47) })).toThrow(/MEASUREMENT/);
    expect(() => encodeReport({ ...r, cpuid: undefined })).toThrow(/CPUID_FAM_ID/);
    expect(() => encodeReport({ ...r, version: 2 })).toThrow(/CPUID_FAM_ID/);
  });
  it('setSignature round-trips through signatureP1363', () => {
    const r = parseReport(base);
    const sig = signatureP1363(r);
    const b = encodeReport({ ...r, signatureR: Buffer.alloc(48), signatureS: Buffer.alloc(48) });
    setSignature(b, sig);
    expect(b.equals(base)).toBe(true);
    expect(b.length).toBe(REPORT_SIZE);
  });
});

describe('TCB layouts and flags', () => {
  it('decodes Milan and Turin byte orders (spec examples)', () => {
    const m = decodeTcb(Buffer.from('0300000000000873', 'hex'), 'legacy');
    expect(formatTcb(m)).toBe('bl3 tee0 snp8 ucode115');
    const t = decodeTcb(Buffer.from('0001000200000047', 'hex'), 'turin');
    expect(formatTcb(t)).toBe('fmc0 bl1 tee0 snp2 ucode71');
    expect(encodeTcb(t).toString('hex')).toBe('0001000200000047');
    expect(tcbBelow(t, { snp: 3, microcode: 71 })).toEqual(['snp']);
  });
  it('a Turin v3 report (CPUID family 0x1A) is read with the Turin layout', () => {
    const b = Buffer.from(vectors.find((v) => v.name === 'oak_milan_v3')!.report);
    b[0x188] = 0x1a;
    b[0x189] = 0x02;
    const r = parseReport(b);
    expect(reportProduct(r)).toBe('Turin');
    expect(r.reportedTcb.layout).toBe('turin');
    expect(r.reportedTcb.fmc).toBe(b[0x180]);
    expect(encodeReport(r).equals(b)).toBe(true);
  });
  it('names policy, platform and key-info flags', () => {
    // 0xB0000 is bits 16, 17, 19: SMT and DEBUG (the spec's note calls bit 19 MIGRATE_MA; its own table says DEBUG).
    expect(setFlags(decodeGuestPolicy(0xb0000n))).toEqual(['smt', 'debug']);
    expect(decodeGuestPolicy(0x3001fn).abiMinor).toBe(31);
    const turin = decodePlatformInfo(0x67n);
    expect(setFlags(turin)).toEqual(['smtEn', 'tsmeEn', 'eccEn', 'aliasCheckComplete', 'bit6']);
    expect(decodePlatformInfo(0x100n).unknownBits).toBe(0x100n);
    expect(decodeKeyInfo(0b00111)).toEqual({ authorKeyEn: true, maskChipKey: true, signingKey: 'VLEK' });
  });
});
