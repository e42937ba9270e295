/**
 * Measurement diagnosis on known answers: blobs are MACed over the launch
 * digests the reference implementation (sev-snp-measure, vectors.json and
 * derived.json) computed, never over sevkit's own, and the diagnosis must name
 * the vector's vCPU count, CPU signature, VMSA variant and kernel-hashes choice.
 */
import { describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import path from 'node:path';
import { SNP_MEASURE, HELD, loadJson, read, hex } from './helpers.js';
import {
  diagnoseMeasurement,
  diagnosisToJSON,
  launchMeasure,
  verifyMeasurement,
  computeLaunchDigest,
  cpuCandidates,
  cpuSignature,
  splitCpuSignature,
  QEMU_CPU_MODELS,
  HOST_CPU_SIGNATURES,
  vcpuSignature,
  describeCpuSignature,
  type DiagnoseInput,
} from '../../lib/launch/index.js';

const derived = loadJson('sev-snp-measure/derived.json');
const vectors = loadJson('sev-snp-measure/vectors.json');
const EMPTY = Buffer.alloc(0);
const SEV_INFO = { apiMajor: 1, apiMinor: 55, buildId: 21 };
const tik = crypto.randomBytes(16);
const blobFor = (digest: Buffer, policy: number) => launchMeasure({ digest, tik, apiMajor: 1, apiMinor: 55, build: 21, policy });
const fwFile = (f: string) => ({ name: path.basename(f), image: read(path.join(SNP_MEASURE, f)) });

describe('CPU table', () => {
  it('QEMU models and host parts round-trip through the signature encoding; the spec values hold', () => {
    for (const m of [...QEMU_CPU_MODELS, ...HOST_CPU_SIGNATURES]) {
      expect(splitCpuSignature(cpuSignature(m.family, m.model, m.stepping)), m.name).toEqual({ family: m.family, model: m.model, stepping: m.stepping });
    }
    // shared/specs/snp-launch.md: EPYC* 0x800f12, Rome 0x830f10, Milan 0xa00f11, Genoa 0xa10f10, Turin 0xb00f00
    expect(['EPYC-v4', 'EPYC-Rome', 'EPYC-Milan-v2', 'EPYC-Genoa', 'EPYC-Turin'].map(vcpuSignature)).toEqual([
      0x800f12, 0x830f10, 0xa00f11, 0xa10f10, 0xb00f00,
    ]);
    // snp-attestation.md §1.3 observed parts: Milan (25,1,1), Genoa (25,17,1), Siena (25,160,2), Turin (26,2,1)
    const observed = HOST_CPU_SIGNATURES.filter((h) => h.observed).map((h) => cpuSignature(h.family, h.model, h.stepping));
    expect(observed).toEqual([0xa00f11, 0xa10f11, 0xaa0f02, 0xb00f21]);
  });
  it('candidates are distinct signatures carrying every name', () => {
    const c = cpuCandidates();
    expect(new Set(c.map((x) => x.sig)).size).toBe(c.length);
    expect(c.find((x) => x.sig === 0xa00f11)!.names).toEqual(expect.arrayContaining(['EPYC-Milan', 'EPYC-Milan-v3', 'host: Milan B1']));
    expect(describeCpuSignature(0xa10f11)).toBe('-cpu host on Genoa B1 (0xa10f11)');
    expect(describeCpuSignature(0x123456)).toMatch(/signature 0x123456 \(family/);
  });
});

describe('diagnosis on sev-snp-measure known answers', () => {
  for (const [fixture, variants] of Object.entries(derived.seves) as [string, any][]) {
    const file = fixture.split(' ')[0]!;
    for (const vmType of ['init2', 'legacy'] as const) {
      it(`${file} ${vmType}: each published digest is explained as its vCPU count, EPYC-v4, ${vmType}, kernel hashes on/off`, () => {
        const v = variants[vmType];
        let checked = 0;
        for (const n of [1, 2, 4]) {
          for (const withKernel of [true, false]) {
            const key = withKernel ? `vcpus${n}_kernel_EMPTY_initrd_EMPTY_append_EMPTY` : `vcpus${n}_no_kernel`;
            if (HELD(v[key])) continue;
            const other = vmType === 'init2' ? 'legacy' : 'init2';
            const d = diagnoseMeasurement({
              measurement: blobFor(hex(v[key]), 5),
              sevInfo: { ...SEV_INFO, policy: 5 },
              tik,
              firmwares: [fwFile(file)],
              kernel: { kernel: EMPTY, initrd: EMPTY, cmdline: '' },
              expected: { policy: 5, numCpus: n + 3, vcpuType: 'EPYC-Milan', vmType: other, kernelHashes: !withKernel },
            });
            expect(d.explained, key).toBe(true);
            expect(d.variant!.digest.toString('hex')).toBe(v[key]);
            expect(d.variant!.es).toMatchObject({ numCpus: n, vcpuSig: 0x800f12, vmType, sevFeatures: 0n });
            expect(d.variant!.kernelHashes).toBe(withKernel);
            expect(d.differences.map((x) => x.field).sort()).toEqual(['kernelHashes', 'numCpus', 'vcpuSig', 'vmType']);
            checked++;
          }
        }
        expect(checked).toBeGreaterThanOrEqual(5);
      });
    }
  }

  it('vectors.json SEV cases: the firmware file and the kernel-hashes choice are named', () => {
    const cases = [...vectors.head.map((c: any) => ({ ...c, dir: '' })), ...vectors.legacy_9dabc4b.map((c: any) => ({ ...c, dir: 'history-9dabc4b' }))].filter(
      (c: any) => c.mode === 'SEV' && typeof c.expected_digest_hex === 'string' && !HELD(c.expected_digest_hex),
    );
    expect(cases.length).toBeGreaterThanOrEqual(6);
    for (const c of cases) {
      const amd = fwFile(path.join(c.dir, 'ovmf_AmdSev_suffix.bin'));
      const x64 = fwFile(path.join(c.dir, 'ovmf_OvmfX64_suffix.bin'));
      const expectFw = path.basename(c.ovmf);
      // The owner expects the other firmware, and the opposite kernel-hashes choice.
      const firmwares = [expectFw === amd.name ? x64 : amd, expectFw === amd.name ? amd : x64];
      const d = diagnoseMeasurement({
        measurement: blobFor(hex(c.expected_digest_hex), 1),
        sevInfo: { ...SEV_INFO, policy: 1 },
        tik,
        firmwares,
        kernel: { kernel: EMPTY, initrd: EMPTY, cmdline: c.append ?? null },
        expected: { policy: 1, kernelHashes: c.kernel === null },
      });
      expect(d.explained, c.test).toBe(true);
      expect(d.variant).toMatchObject({ firmware: expectFw, kernelHashes: c.kernel !== null, es: null });
      expect(d.differences.map((x) => x.field).sort()).toEqual(['firmware', 'kernelHashes']);
      expect(d.notes.join('\n')).toMatch(/kernel hashes not searched with ovmf_OvmfX64_suffix.bin: .*doesn't support/);
    }
  });
});

describe('diagnoseMeasurement', () => {
  const fw = fwFile('ovmf_AmdSev_suffix.bin');
  const base = (over: Partial<DiagnoseInput> = {}): DiagnoseInput => ({
    measurement: Buffer.alloc(48),
    sevInfo: { ...SEV_INFO, policy: 5 },
    tik,
    firmwares: [fw],
    expected: { policy: 5, numCpus: 1, vcpuType: 'EPYC-v4', vmType: 'legacy' },
    ...over,
  });

  it('names count, CPU and VMSA variant in one line', () => {
    const digest = computeLaunchDigest({ firmware: fw.image, es: { numCpus: 4, vcpuType: 'EPYC-Milan', vmType: 'init2' } });
    const d = diagnoseMeasurement(base({ measurement: blobFor(digest, 5) }));
    expect(d.summary).toBe(
      'the host launched 4 vCPUs of EPYC-Milan (0xa00f11) with the init2 VMSA; you expected 1 vCPU of EPYC-v4 (0x800f12) with the legacy VMSA',
    );
    expect(d.differences).toEqual([
      { field: 'numCpus', expected: '1', actual: '4' },
      { field: 'vcpuSig', expected: 'EPYC-v4 (0x800f12)', actual: 'EPYC-Milan (0xa00f11)' },
      { field: 'vmType', expected: 'legacy', actual: 'init2' },
    ]);
    const j = diagnosisToJSON(d) as any;
    expect(j.variant).toMatchObject({ numCpus: 4, vcpuSig: '0xa00f11', vmType: 'init2', sevFeatures: '0x0', digest: digest.toString('hex') });
    expect(JSON.parse(JSON.stringify(j)).explained).toBe(true);
  });

  it('-cpu host signatures, DebugSwap and counts above the QEMU table', () => {
    const digest = computeLaunchDigest({ firmware: fw.image, es: { numCpus: 33, vcpuSig: 0xa10f11, sevFeatures: 0x20 } });
    const d = diagnoseMeasurement(
      base({ measurement: blobFor(digest, 5), expected: { policy: 5, numCpus: 1, vcpuType: 'EPYC-v4', vmType: 'legacy', sevFeatures: 0 } }),
    );
    expect(d.variant!.es).toMatchObject({ numCpus: 33, vcpuSig: 0xa10f11, vmType: 'legacy', sevFeatures: 0x20n });
    expect(d.summary).toBe(
      'the host launched 33 vCPUs of -cpu host on Genoa B1 (0xa10f11) SEV features 0x20; you expected 1 vCPU of EPYC-v4 (0x800f12) SEV features 0x0',
    );
    expect(d.differences.map((x) => x.field)).toEqual(['numCpus', 'vcpuSig', 'sevFeatures']);
    // Out of the searched range: not explained.
    expect(diagnoseMeasurement(base({ measurement: blobFor(digest, 5), space: { vcpus: { min: 1, max: 32 } } })).explained).toBe(false);
  });

  it('unpinned fields are reported, not called differences; a matching blob says so', () => {
    const digest = computeLaunchDigest({ firmware: fw.image, es: { numCpus: 2, vcpuType: 'EPYC-Rome' } });
    const d = diagnoseMeasurement(base({ measurement: blobFor(digest, 5), expected: { policy: 5 } }));
    expect(d.differences).toEqual([]);
    expect(d.summary).toBe('the host launched 2 vCPUs of EPYC-Rome (0x830f10) with the legacy VMSA');
    const same = diagnoseMeasurement(base({ measurement: blobFor(digest, 5), expected: { policy: 5, numCpus: 2, vcpuType: 'EPYC-Rome', vmType: 'legacy' } }));
    expect(same.summary).toBe('the measurement is exactly what you expected');
  });

  it('a random blob is not explained, and the line says what was searched', () => {
    const d = diagnoseMeasurement(base({ measurement: crypto.randomBytes(48), kernel: { kernel: EMPTY } }));
    expect(d.explained).toBe(false);
    expect(d.variant).toBeUndefined();
    const sigs = cpuCandidates().length;
    expect(d.searched).toBe(64 * sigs * 2 * 2 * 2);
    expect(d.summary).toMatch(
      new RegExp(
        `^nothing in the searched space explains the measurement \\(searched ${d.searched} variants: 1 firmware file, kernel hashes on/off, 1\\.\\.64 vCPUs, ${sigs} CPU signatures, legacy/init2 VMSA, SEV features 0x0/0x20\\)`,
      ),
    );
  });

  it('the MAC covers the host-reported version: a lie about the build explains nothing', () => {
    const digest = computeLaunchDigest({ firmware: fw.image, es: { numCpus: 1, vcpuType: 'EPYC-v4' } });
    expect(diagnoseMeasurement(base({ measurement: blobFor(digest, 5) })).explained).toBe(true);
    expect(diagnoseMeasurement(base({ measurement: blobFor(digest, 5), sevInfo: { ...SEV_INFO, buildId: 22, policy: 5 } })).explained).toBe(false);
  });

  it('firmware without a reset block is not searched for SEV-ES (QEMU would not start it)', async () => {
    const { buildOvmfImage } = await import('../../lib/sim/host-fixture.js');
    const noReset = { name: 'noreset.fd', image: buildOvmfImage({ resetBlock: false, kernelHashes: true }) };
    const d = diagnoseMeasurement(base({ firmwares: [noReset], measurement: crypto.randomBytes(48) }));
    expect(d.searched).toBe(0);
    expect(d.notes).toEqual([expect.stringMatching(/^SEV-ES not searched with noreset.fd: no SEV-ES reset block/)]);
  });

  it('bad inputs are typed errors', () => {
    expect(() => diagnoseMeasurement(base({ space: { vcpus: { min: 0, max: 4 } } }))).toThrow(/vCPU range must be 1\.\.4096/);
    expect(() => diagnoseMeasurement(base({ firmwares: [] }))).toThrow(/at least one firmware/);
    expect(() => diagnoseMeasurement(base({ measurement: Buffer.alloc(47) }))).toThrow(/impossible value: launch measurement of 47 bytes/);
    expect(() => diagnoseMeasurement(base({ space: { kernelHashes: [true] } }))).toThrow(/need the kernel/);
  });
});

describe('verifyMeasurement runs the diagnosis when it refuses', () => {
  const fw = read(path.join(SNP_MEASURE, 'ovmf_AmdSev_suffix.bin'));
  const digest = computeLaunchDigest({ firmware: fw, es: { numCpus: 4, vcpuType: 'EPYC-Milan', vmType: 'init2' } });
  const blob = blobFor(digest, 5);
  const sevInfo = { ...SEV_INFO, policy: 5 };
  it('still refuses, and says what the host did differently', () => {
    const v = verifyMeasurement({
      measurement: blob,
      sevInfo,
      expected: { policy: 5, tik, launch: { firmware: fw, es: { numCpus: 1, vcpuType: 'EPYC-v4' } } },
    });
    expect(v.match).toBe(false);
    if (v.match) return;
    expect(v.reason).toBe('measurement-mismatch');
    expect(v.message).toBe(
      'launch measurement does not match the expected firmware, policy and TIK: the host launched 4 vCPUs of EPYC-Milan (0xa00f11) with the init2 VMSA; you expected 1 vCPU of EPYC-v4 (0x800f12) with the legacy VMSA',
    );
    expect(v.diagnosis!.differences.map((d) => d.field)).toEqual(['numCpus', 'vcpuSig', 'vmType']);
  });
  it('diagnose: false keeps the bare refusal; a bare digest cannot be diagnosed', () => {
    const off = verifyMeasurement({
      measurement: blob,
      sevInfo,
      diagnose: false,
      expected: { policy: 5, tik, launch: { firmware: fw, es: { numCpus: 1, vcpuType: 'EPYC-v4' } } },
    });
    expect(off).toMatchObject({ match: false, message: 'launch measurement does not match the expected firmware, policy and TIK' });
    expect(off.match === false && off.diagnosis).toBeUndefined();
    const bare = verifyMeasurement({ measurement: blob, sevInfo, expected: { policy: 5, tik, digest: crypto.randomBytes(32) } });
    expect(bare.match === false && bare.diagnosis).toBeUndefined();
  });
});
