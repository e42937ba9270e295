/**
 * `sevkit snp digest` and `sevkit snp diagnose` from the TypeScript sources: sev-snp-measure's printed digest
 * for vector cases, its flags (vCPU model three ways, guest features, VMM type, kernel/initrd/append, the OVMF
 * seed), and one line with exit 2 for usage errors, 1 for a firmware that lacks what is asked.
 */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { loadVectors, SNP_LAUNCH, SNP_MEASURE } from './digest-helpers.js';

const extra = loadVectors('snp-launch/snp-digest-extra.json');
const AMDSEV = path.join(SNP_MEASURE, 'ovmf_AmdSev_suffix.bin');
const OVMFX64 = path.join(SNP_MEASURE, 'ovmf_OvmfX64_suffix.bin');
const KERNEL = path.join(SNP_LAUNCH, 'snp-extra-inputs/kernel.bin');
const INITRD = path.join(SNP_LAUNCH, 'snp-extra-inputs/initrd.bin');
const cs = (p: string) => (extra.cases as any[]).find((c) => c.name.startsWith(p))!;
const oneLine = (s: string) => expect(s.trim().split('\n')).toHaveLength(1);

describe('sevkit snp digest', () => {
  it('prints the digest in hex as sev-snp-measure does (x2: kernel, initrd, append; x4 by family/model/stepping; x8 GCE)', async () => {
    const x2 = await runCli([
      'snp',
      'digest',
      '--firmware',
      AMDSEV,
      '--vcpus',
      '2',
      '--vcpu-type',
      'EPYC-v4',
      '--kernel',
      KERNEL,
      '--initrd',
      INITRD,
      '--append',
      cs('x2_').append,
    ]);
    expect(x2.stderr).toBe('');
    expect(x2).toMatchObject({ code: 0, stdout: `${cs('x2_').expected_digest_hex}\n` });
    const x4 = await runCli(['snp', 'digest', '--firmware', AMDSEV, '--vcpus', '4', '--vcpu-family', '25', '--vcpu-model', '1', '--vcpu-stepping', '1']);
    expect(x4.stdout).toBe(`${cs('x4_').expected_digest_hex}\n`);
    const x8 = await runCli([
      'snp',
      'digest',
      '--firmware',
      AMDSEV,
      '--vcpus',
      '2',
      '--vmm-type',
      'gce',
      '--kernel',
      KERNEL,
      '--initrd',
      INITRD,
      '--append',
      cs('x8_').append,
      '--output-format',
      'base64',
    ]);
    expect(x8.stdout).toBe(`${Buffer.from(cs('x8_').expected_digest_hex, 'hex').toString('base64')}\n`);
  });

  it('--guest-features, --vcpu-sig, --snp-ovmf-hash and --json', async () => {
    const x5 = await runCli(['snp', 'digest', '--firmware', AMDSEV, '--vcpus', '2', '--vcpu-sig', '0xa10f10', '--guest-features', '0x21', '--json']);
    expect(x5.code).toBe(0);
    expect(JSON.parse(x5.stdout)).toMatchObject({
      digest: cs('x5_').expected_digest_hex,
      ldBeforeVmsas: cs('x5_').ld_before_vmsas,
      updates: cs('x5_').n_updates,
      guestFeatures: '0x21',
      vmmType: 'qemu',
    });
    const seeded = await runCli([
      'snp',
      'digest',
      '--firmware',
      AMDSEV,
      '--vcpus',
      '1',
      '--vcpu-type',
      'EPYC-v4',
      '--guest-features',
      '0x21',
      '--kernel',
      '/dev/null',
      '--initrd',
      '/dev/null',
      '--append',
      '',
      '--snp-ovmf-hash',
      extra.ovmf_hashes_snp_ovmf_hash_mode['ovmf_AmdSev_suffix.bin (HEAD fixture)'],
    ]);
    expect(seeded.stdout).toBe(`${cs('x1_').expected_digest_hex}\n`);
  });

  it('usage errors: one line, exit 2', async () => {
    for (const args of [
      ['--vcpus', '2'],
      ['--vcpus', '2', '--vcpu-type', 'EPYC-v4', '--vcpu-sig', '0x800f12'],
      ['--vcpus', '2', '--vcpu-family', '25'],
      ['--vcpus', '2', '--vcpu-type', 'nope'],
      ['--vcpus', '2', '--vcpu-type', 'EPYC-v4', '--vmm-type', 'krun'],
      ['--vcpus', '2', '--vcpu-type', 'EPYC-v4', '--initrd', INITRD],
      ['--vcpus', 'two', '--vcpu-type', 'EPYC-v4'],
      ['--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--snp-ovmf-hash', 'abcd'],
    ]) {
      const r = await runCli(['snp', 'digest', '--firmware', AMDSEV, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      oneLine(r.stderr);
      expect(r.stdout).toBe('');
    }
  });

  it('a firmware that lacks what is asked: one line, exit 1', async () => {
    const r = await runCli(['snp', 'digest', '--firmware', OVMFX64, '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--kernel', KERNEL]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sevkit: .*Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section\n$/);
    const g = await runCli([
      'snp',
      'digest',
      '--firmware',
      path.join(SNP_LAUNCH, 'snp-vmsa/vmsa_snp_qemu_epyc-v4_gf0x1_bsp.bin'),
      '--vcpus',
      '1',
      '--vcpu-type',
      'EPYC-v4',
    ]);
    expect(g.code).toBe(1);
    expect(g.stderr).toMatch(/no OVMF footer GUID table/);
    oneLine(g.stderr);
    const bad = await runCli(['snp', 'digest', '--firmware', AMDSEV, '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--guest-features', '0x800']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/reserved bits 0x800/);
  });
});

describe('sevkit snp digest: the variants sev-snp-measure HEAD does not print', () => {
  it('--ec2-rdx 0 (virtee/sev, sev-snp-measure before 4a02bf0) and --fpu legacy', async () => {
    const old = (extra.ec2_rdx_history_at_46664d0 as any[]).find((h) => h.name.startsWith('x7_'));
    const r = await runCli([
      'snp',
      'digest',
      '--firmware',
      AMDSEV,
      '--vcpus',
      '2',
      '--vmm-type',
      'EC2',
      '--ec2-rdx',
      '0',
      '--kernel',
      KERNEL,
      '--initrd',
      INITRD,
      '--append',
      cs('x7_').append,
    ]);
    expect(r.stdout).toBe(`${old.expected_digest_hex_rdx0}\n`);
    const l = await runCli(['snp', 'digest', '--firmware', AMDSEV, '--vcpus', '1', '--vcpu-type', 'EPYC-v4', '--fpu', 'legacy']);
    expect(l.stdout).toBe(`${extra.legacy_fpu_variant_derived.values.x13_head_fixture_legacyfpu_nokernel_gf1}\n`);
  });
});

describe('sevkit snp diagnose', () => {
  it('names the fields that differ (x5: DebugSwap on Genoa, owner believed 0x1) and exits 0; unexplained exits 1', async () => {
    const r = await runCli([
      'snp',
      'diagnose',
      '--firmware',
      AMDSEV,
      '--measurement',
      cs('x5_').expected_digest_hex,
      '--vcpus',
      '2',
      '--vcpu-type',
      'EPYC-Genoa',
      '--guest-features',
      '0x1',
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      explained: true,
      differences: [{ field: 'guestFeatures', expected: '0x1 (SNPActive)', actual: '0x21 (SNPActive|DebugSwap)' }],
      variant: { vcpus: 2, vcpuSig: '0xa10f10' },
    });
    const u = await runCli(['snp', 'diagnose', '--firmware', AMDSEV, '--measurement', 'ab'.repeat(48), '--max-vcpus', '4']);
    expect(u.code).toBe(1);
    expect(u.stdout).toMatch(/^not explained: unexplained: /);
    const bad = await runCli(['snp', 'diagnose', '--firmware', AMDSEV, '--measurement', 'zz']);
    expect(bad.code).toBe(2);
    oneLine(bad.stderr);
  });
});
