/**
 * SNP mismatch diagnosis on sev-snp-measure's digests (snp-digest-extra.json, never sevkit's own): the
 * measurement of each case, with an owner who believed something else, must be explained by the case's
 * inputs and name exactly the fields that differ.
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { diagnoseSnpDigest, snpDiagnosisToJSON } from '../../lib/snp/diagnose.js';
import { loadSnpFirmware } from '../../lib/snp/digest.js';
import { loadVectors, kernelOf, SNP_MEASURE } from './digest-helpers.js';

const extra = loadVectors('snp-launch/snp-digest-extra.json');
const AMDSEV = fs.readFileSync(path.join(SNP_MEASURE, 'ovmf_AmdSev_suffix.bin'));
const OVMFX64 = fs.readFileSync(path.join(SNP_MEASURE, 'ovmf_OvmfX64_suffix.bin'));
const fw = [{ name: 'AmdSev', image: AMDSEV }];
const cs = (prefix: string) => (extra.cases as any[]).find((c) => c.name.startsWith(prefix))!;
const believed = { vcpus: 2, vcpuSig: 0x800f12, vcpuType: 'EPYC-v4', guestFeatures: 1n, vmmType: 'qemu' as const, fpu: 'init2' as const };
const fields = (d: ReturnType<typeof diagnoseSnpDigest>) => Object.fromEntries(d.differences.map((x) => [x.field, x.actual]));

describe('diagnoseSnpDigest', () => {
  it('vCPU count and type (x4: 4 × EPYC-Milan, owner believed 2 × EPYC-v4)', () => {
    const d = diagnoseSnpDigest({ measurement: cs('x4_').expected_digest_hex, firmwares: fw, expected: believed });
    expect(d.explained).toBe(true);
    expect(fields(d)).toEqual({ vcpus: '4', vcpuSig: expect.stringContaining('EPYC-Milan (0xa00f11)') });
    expect(d.summary).toMatch(/^the host launched with vcpus 4, vcpuSig .*EPYC-Milan.*; you expected vcpus 2, vcpuSig EPYC-v4 \(0x800f12\)/);
  });

  it('guest features (x5: Genoa with DebugSwap)', () => {
    const d = diagnoseSnpDigest({
      measurement: cs('x5_').expected_digest_hex,
      firmwares: fw,
      expected: { ...believed, vcpuSig: 0xa10f10, vcpuType: 'EPYC-Genoa' },
    });
    expect(fields(d)).toEqual({ guestFeatures: '0x21 (SNPActive|DebugSwap)' });
  });

  it('VMM type (x7 EC2, x8 GCE) and the old EC2 RDX', () => {
    const k = kernelOf(cs('x7_'));
    expect(fields(diagnoseSnpDigest({ measurement: cs('x7_').expected_digest_hex, firmwares: fw, kernel: k, expected: believed }))).toEqual({ vmmType: 'ec2' });
    expect(fields(diagnoseSnpDigest({ measurement: cs('x8_').expected_digest_hex, firmwares: fw, kernel: k, expected: believed }))).toEqual({ vmmType: 'gce' });
    const old = (extra.ec2_rdx_history_at_46664d0 as any[]).find((h) => h.name.startsWith('x7_'));
    const d = diagnoseSnpDigest({ measurement: old.expected_digest_hex_rdx0, firmwares: fw, kernel: k, expected: { ...believed, vmmType: 'ec2' } });
    expect(fields(d)).toEqual({ vmmType: 'ec2 (RDX 0x0)' });
    expect(snpDiagnosisToJSON(d)).toMatchObject({ explained: true, variant: { vmmType: 'ec2', cloudRdx: '0x0', vcpus: 2 } });
  });

  it('legacy FPU state (x13, 1 vCPU)', () => {
    const d = diagnoseSnpDigest({
      measurement: extra.legacy_fpu_variant_derived.values.x13_head_fixture_legacyfpu_nokernel_gf1,
      firmwares: fw,
      expected: { ...believed, vcpus: 1 },
    });
    expect(fields(d)).toEqual({ fpu: 'legacy' });
  });

  it('kernel hashes: the owner expected none, the host measured its kernel (x2); and the reverse (x4)', () => {
    const x2 = cs('x2_');
    expect(
      fields(diagnoseSnpDigest({ measurement: x2.expected_digest_hex, firmwares: fw, kernel: kernelOf(x2), expected: { ...believed, kernelHashes: false } })),
    ).toEqual({ kernelHashes: 'on' });
    expect(
      fields(
        diagnoseSnpDigest({
          measurement: cs('x4_').expected_digest_hex,
          firmwares: fw,
          kernel: kernelOf(x2),
          expected: { ...believed, vcpus: 4, vcpuSig: 0xa00f11, vcpuType: 'EPYC-Milan' },
        }),
      ),
    ).toEqual({ kernelHashes: 'off' });
  });

  it('firmware: OvmfX64 rather than AmdSev (x9); a firmware that cannot take kernel hashes is noted', () => {
    const d = diagnoseSnpDigest({
      measurement: cs('x9_').expected_digest_hex,
      firmwares: [...fw, { name: 'OvmfX64', image: loadSnpFirmware(OVMFX64) }],
      kernel: kernelOf(cs('x2_')),
      expected: { ...believed, kernelHashes: true },
    });
    expect(fields(d)).toEqual({ firmware: 'OvmfX64', kernelHashes: 'off' });
    expect(d.notes.join('\n')).toMatch(/kernel hashes not searched with OvmfX64/);
  });

  it('what was expected is said so; base64 input works', () => {
    const x2 = cs('x2_');
    const d = diagnoseSnpDigest({
      measurement: Buffer.from(x2.expected_digest_hex, 'hex').toString('base64'),
      firmwares: fw,
      kernel: kernelOf(x2),
      expected: believed,
    });
    expect(d).toMatchObject({ explained: true, differences: [], summary: 'the measurement is what you expected' });
    expect(d.searched).toBe(2);
  });

  it('an unexplained measurement is unexplained, never "closest"', () => {
    const d = diagnoseSnpDigest({ measurement: crypto.randomBytes(48), firmwares: fw, expected: believed, space: { vcpus: { min: 1, max: 8 } } });
    expect(d.explained).toBe(false);
    expect(d.variant).toBeUndefined();
    expect(d.summary).toMatch(/^unexplained: .*1\.\.8 vCPUs/);
    expect(d.searched).toBeGreaterThan(1000);
  });

  it('bad input', () => {
    expect(() => diagnoseSnpDigest({ measurement: 'abc', firmwares: fw })).toThrow(/96 hex digits/);
    expect(() => diagnoseSnpDigest({ measurement: Buffer.alloc(48), firmwares: [] })).toThrow(/at least one firmware/);
    expect(() => diagnoseSnpDigest({ measurement: Buffer.alloc(48), firmwares: fw, space: { vcpus: { min: 3, max: 2 } } })).toThrow(/vCPU range/);
  });
});
