import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { KA, SEVCTL, SEVCTL_OVMF, hex, b64, read } from './helpers.js';
import {
  kdf,
  deriveSessionKeys,
  wrapSession,
  decodeSession,
  unwrapSession,
  computeMeasure,
  computeLaunchDigest,
  launchMeasure,
  buildKernelHashesTable,
  parseKernelHashesTable,
  Policy,
} from '../../lib/launch/index.js';
import { hmacSha256 } from '../../lib/launch/kdf.js';
import path from 'node:path';

const zero16 = Buffer.alloc(16);

describe('session KDF / wrap / MAC known answers (virtee/sev)', () => {
  it('KDF(0^16, 16, sev-master-secret, 0^16)', () => {
    expect(kdf(zero16, 16, KA.session_kdf.label, zero16).toString('hex')).toBe(KA.session_kdf.output_hex);
  });
  it('KDF is counter mode: a 48-byte output extends the 16-byte block with block 2', () => {
    const long = kdf(zero16, 48, 'sev-kek');
    expect(long.length).toBe(48);
    // L is part of the input, so a different length gives a different first block
    expect(long.subarray(0, 16).equals(kdf(zero16, 16, 'sev-kek'))).toBe(false);
  });
  it('policy MAC of 0^4 with a zero key', () => {
    expect(hmacSha256(zero16, hex(KA.session_mac.data_hex)).toString('hex')).toBe(KA.session_mac.hmac_sha256_hex);
  });
  it('all-zero session: master/KEK/KIK, wrap_tk, wrap_mac, policy_mac', () => {
    const k = KA.session_wrap_all_zero;
    const keys = deriveSessionKeys(zero16, zero16);
    expect(keys.master.toString('hex')).toBe(k.derived_intermediates.master_hex);
    expect(keys.kek.toString('hex')).toBe(k.derived_intermediates.kek_hex);
    expect(keys.kik.toString('hex')).toBe(k.derived_intermediates.kik_hex);
    const blob = wrapSession({ z: zero16, nonce: zero16, wrapIv: zero16, tek: zero16, tik: zero16, policyBytes: new Policy(0).bytes() });
    expect(blob.length).toBe(128);
    const f = decodeSession(blob);
    expect(f.wrapTk.toString('hex')).toBe(k.wrap_tk_hex);
    expect(f.wrapMac.toString('hex')).toBe(k.wrap_mac_hex);
    expect(f.policyMac.toString('hex')).toBe(k.policy_mac_hex);
    const opened = unwrapSession(zero16, blob, Buffer.alloc(4));
    expect(opened.tek.equals(zero16) && opened.tik.equals(zero16)).toBe(true);
  });
});

describe('measurement known answers', () => {
  it('virtee/sev Session::verify KAT', () => {
    const k = KA.session_verify_measurement;
    const m = computeMeasure({
      digest: hex(k.digest_hex),
      mnonce: hex(k.mnonce_hex),
      tik: hex(k.tik_hex),
      apiMajor: k.api_major,
      apiMinor: k.api_minor,
      build: k.build,
      policy: 0,
    });
    expect(m.toString('hex')).toBe(k.expected_measure_hex);
  });

  const tik = read(path.join(SEVCTL, 'measurement/tik1.bin'));
  const cases = KA.sevctl_measurement_build.cases as any[];
  it('launch-digest case', () => {
    const c = cases[0];
    const out = launchMeasure({
      digest: b64(c.launch_digest_b64),
      mnonce: b64(c.nonce_b64),
      tik,
      apiMajor: c.api_major,
      apiMinor: c.api_minor,
      build: c.build_id,
      policy: c.policy,
    });
    expect(out.toString('base64')).toBe(c.expected_stdout);
  });
  it('firmware case: digest = sha256(file)', () => {
    const c = cases[1];
    const d = computeLaunchDigest({ firmware: read(SEVCTL_OVMF) });
    expect(d.toString('hex')).toBe(c.derived_launch_digest_hex);
    const out = launchMeasure({ digest: d, mnonce: b64(c.nonce_b64), tik, apiMajor: c.api_major, apiMinor: c.api_minor, build: c.build_id, policy: c.policy });
    expect(out.toString('base64')).toBe(c.expected_stdout);
  });
  it('SEV-ES case with sevctl vmsa files', () => {
    const c = cases[3];
    const blob = b64(c.launch_measure_blob_b64);
    const d = computeLaunchDigest({
      firmware: read(SEVCTL_OVMF),
      vmsaFiles: { cpu0: read(path.join(SEVCTL, 'vmsa0.bin')), cpu1: read(path.join(SEVCTL, 'vmsa1.bin')), numCpus: c.num_cpus },
    });
    expect(d.toString('hex')).toBe(c.derived_launch_digest_hex);
    const out = launchMeasure({ digest: d, mnonce: blob.subarray(32), tik, apiMajor: c.api_major, apiMinor: c.api_minor, build: c.build_id, policy: c.policy });
    expect(out.toString('base64')).toBe(c.expected_stdout);
  });
  it('kernel hashes table structure for the fake kernel case (values held back: check structure + parse)', () => {
    const c = cases[2];
    const kernel = read(path.join(SEVCTL, 'measurement/vmlinuz-fake'));
    const initrd = read(path.join(SEVCTL, 'measurement/initrd-fake'));
    const t = buildKernelHashesTable({ kernel, initrd, cmdline: c.cmdline });
    expect(t.length).toBe(176);
    expect(t.subarray(0, 18).toString('hex')).toBe('06d638942' + '24fc94cb479a793d411fd21a800'.slice(0)); // GUID-LE + 0x00a8
    const p = parseKernelHashesTable(t);
    expect(p.kernel.equals(crypto.createHash('sha256').update(kernel).digest())).toBe(true);
    expect(p.initrd.equals(crypto.createHash('sha256').update(initrd).digest())).toBe(true);
    expect(
      p.cmdline.equals(
        crypto
          .createHash('sha256')
          .update(Buffer.from(`${c.cmdline}\0`))
          .digest(),
      ),
    ).toBe(true);
    expect(t.subarray(168).equals(Buffer.alloc(8))).toBe(true);
  });
});
