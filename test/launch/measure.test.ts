import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { loadJson, hex, b64, HELD } from './helpers.js';
import { launchMeasure, verifyMeasurement, computeMeasure, parseMeasurementBlob, LaunchDigest, Policy, PolicyError } from '../../lib/launch/index.js';

describe('launchMeasure ↔ verifyMeasurement', () => {
  const tik = crypto.randomBytes(16);
  const digest = crypto.randomBytes(32);
  const info = { apiMajor: 1, apiMinor: 55, buildId: 24, policy: 5 };
  const blob = launchMeasure({ digest, tik, apiMajor: 1, apiMinor: 55, build: 24, policy: 5 });

  it('matches with the right inputs (raw and base64 blob)', () => {
    expect(blob.length).toBe(48);
    expect(verifyMeasurement({ measurement: blob, sevInfo: info, expected: { policy: 5, tik, digest } }).match).toBe(true);
    expect(verifyMeasurement({ measurement: blob.toString('base64'), sevInfo: info, expected: { policy: 5, tik, digest } }).match).toBe(true);
  });
  it('refuses on host policy mismatch before any MAC', () => {
    const v = verifyMeasurement({ measurement: blob, sevInfo: { ...info, policy: 1 }, expected: { policy: 5, tik, digest } });
    expect(v).toMatchObject({ match: false, reason: 'policy-mismatch' });
  });
  it('refuses when firmware is older than the policy minimum', () => {
    const p = Policy.fromFlags({ flags: ['NODBG', 'ES'], apiMajor: 1, apiMinor: 56 });
    const b = launchMeasure({ digest, tik, apiMajor: 1, apiMinor: 55, build: 24, policy: p });
    expect(verifyMeasurement({ measurement: b, sevInfo: { ...info, policy: p.value }, expected: { policy: p, tik, digest } })).toMatchObject({
      match: false,
      reason: 'firmware-too-old',
    });
  });
  it('any change in TIK, digest, api, build, nonce or MAC → mismatch', () => {
    const bad = (o: any) => verifyMeasurement({ measurement: blob, sevInfo: info, expected: { policy: 5, tik, digest }, ...o });
    expect(verifyMeasurement({ measurement: blob, sevInfo: info, expected: { policy: 5, tik: crypto.randomBytes(16), digest } }).match).toBe(false);
    expect(verifyMeasurement({ measurement: blob, sevInfo: info, expected: { policy: 5, tik, digest: crypto.randomBytes(32) } }).match).toBe(false);
    expect(bad({ sevInfo: { ...info, apiMinor: 54 } }).match).toBe(false);
    expect(bad({ sevInfo: { ...info, buildId: 25 } }).match).toBe(false);
    for (let i = 0; i < 48; i++) {
      const t = Buffer.from(blob);
      t[i]! ^= 1;
      expect(verifyMeasurement({ measurement: t, sevInfo: info, expected: { policy: 5, tik, digest } }).match, `byte ${i}`).toBe(false);
    }
  });
  it('bad blob sizes and base64 are typed errors', () => {
    expect(() => parseMeasurementBlob(Buffer.alloc(47))).toThrow(/47 bytes, expected 48/);
    expect(() => parseMeasurementBlob('not base64!')).toThrow(/not valid base64/);
  });
  it('aleph SDK measurement inputs reproduce the documented HMAC algorithm', () => {
    const v = loadJson('aleph/derived/aleph_sdk_measurement_vector.json');
    const i = v.inputs;
    const m = computeMeasure({
      digest: hex(i.firmware_sha256_hex),
      mnonce: b64(i.mnonce_b64),
      tik: hex(i.tik_hex),
      apiMajor: i.sev_info.api_major,
      apiMinor: i.sev_info.api_minor,
      build: i.sev_info.build_id,
      policy: i.sev_info.policy,
    });
    const msg = Buffer.concat([Buffer.of(4, 1, 55, 24), Buffer.from([1, 0, 0, 0]), hex(i.firmware_sha256_hex), b64(i.mnonce_b64)]);
    expect(m.equals(crypto.createHmac('sha256', hex(i.tik_hex)).update(msg).digest())).toBe(true);
    if (!HELD(v.expected)) expect(m.toString('hex')).toBe(v.expected);
  });
  it('LaunchDigest accumulates in order and refuses short VMSA pages', () => {
    const a = Buffer.from('abc'),
      b = Buffer.from('def');
    expect(new LaunchDigest().update(a).update(b).digest().equals(crypto.createHash('sha256').update('abcdef').digest())).toBe(true);
    expect(() => new LaunchDigest().updateVmsa(Buffer.alloc(100))).toThrow(/4096/);
  });
});

describe('Policy', () => {
  it('parses numbers, hex and flag names; formats', () => {
    expect(Policy.parse('5').value).toBe(5);
    expect(Policy.parse('0x5').value).toBe(5);
    expect(Policy.parse('NODBG|ES').value).toBe(5);
    expect(Policy.parse('nodbg,no-ks,minfw=1.40').value).toBe(0x28010003);
    expect(new Policy(0x28010003).apiMajor).toBe(1);
    expect(new Policy(0x28010003).apiMinor).toBe(40);
    expect(new Policy(5).toString()).toBe('0x5 (NODBG|ES)');
    expect(new Policy(0).toString()).toBe('0x0 (no restrictions)');
    expect(new Policy(0x40).reserved).toBe(0x40);
    expect(new Policy(0x01020304).bytes().toString('hex')).toBe('04030201');
    expect(() => Policy.parse('FOO')).toThrow(PolicyError);
    expect(() => Policy.parse('0x100000000')).toThrow(PolicyError);
    expect(() => Policy.parse('4294967296')).toThrow(/32 bits/);
    expect(() => new Policy(-1)).toThrow(PolicyError);
  });
  it('explains every flag', () => {
    const lines = new Policy(0x45).explain();
    expect(lines[0]).toBe('policy 0x45 (69)');
    expect(lines.some((l) => /NODBG\s+set/.test(l))).toBe(true);
    expect(lines.some((l) => /NOKS\s+clear/.test(l))).toBe(true);
    expect(lines.some((l) => /reserved bits 0x40/.test(l))).toBe(true);
  });
});
