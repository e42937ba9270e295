/**
 * `sevkit measurement diagnose` and the SEV-ES input flags through the CLI: a host measurement made with
 * other vCPU inputs than the owner's is explained field by field; a random blob is not (exit 1).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { SEVCTL, SEVCTL_OVMF } from './helpers.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-diagnose-cli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const TIK = path.join(SEVCTL, 'measurement/tik1.bin');
const host = ['--api-major', '1', '--api-minor', '55', '--build-id', '21', '--policy', '0x5', '--tik', TIK];

/** What the host would report for a launch with these SEV-ES inputs. */
async function hostMeasurement(es: string[]): Promise<{ measurement: string; digest: string }> {
  const r = await runCli(['measurement', 'build', ...host, '--nonce', crypto.randomBytes(16).toString('base64'), '--firmware', SEVCTL_OVMF, ...es, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const j = JSON.parse(r.stdout) as { measurement: string; digest: string };
  expect(j.digest).toMatch(/^[0-9a-f]{64}$/);
  return j;
}

describe('sevkit measurement diagnose', { timeout: 180_000 }, () => {
  it("names the vCPU count, CPU and VMSA variant the host used instead of the owner's", async () => {
    const m = await hostMeasurement(['--num-cpus', '4', '--vcpu-type', 'EPYC-Milan', '--vm-type', 'init2']);
    const args = [
      'measurement',
      'diagnose',
      ...host,
      '--measurement',
      m.measurement,
      '--firmware',
      SEVCTL_OVMF,
      '--num-cpus',
      '1',
      '--vcpu-type',
      'EPYC-v4',
      '--vm-type',
      'legacy',
      '--vcpus',
      '1-8',
    ];
    const r = await runCli(args);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^explained: /);
    expect(r.stdout).toMatch(/numCpus: you expected 1, the host used 4/);
    expect(r.stdout).toMatch(/vmType: you expected legacy, the host used init2/);
    expect(r.stdout).toMatch(/vcpuSig: /);
    const j = await runCli([...args, '--json']);
    const d = JSON.parse(j.stdout) as { explained: boolean; searched: number; differences: { field: string }[] };
    expect(d.explained).toBe(true);
    expect(d.searched).toBeGreaterThan(1);
    expect(d.differences.map((x) => x.field).sort()).toEqual(['numCpus', 'vcpuSig', 'vmType']);
  });

  it('a host signature given as --vcpu-sig or family/model/stepping gives the same digest', async () => {
    const a = await hostMeasurement(['--num-cpus', '2', '--vcpu-sig', '0xA10F11']);
    const b = await hostMeasurement(['--num-cpus', '2', '--vcpu-family', '25', '--vcpu-model', '17', '--vcpu-stepping', '1']);
    const c = await hostMeasurement(['--num-cpus', '2', '--vcpu-type', 'EPYC-v4']);
    expect(a.digest).toBe(b.digest);
    // --print-digest: sevctl's one stdout line stays, the digest goes to stderr.
    const plain = await runCli([
      'measurement',
      'build',
      ...host,
      '--nonce',
      crypto.randomBytes(16).toString('base64'),
      '--firmware',
      SEVCTL_OVMF,
      '--num-cpus',
      '2',
      '--vcpu-sig',
      '0xA10F11',
      '--print-digest',
    ]);
    expect(plain.stdout).toMatch(/^[A-Za-z0-9+/]{64}\n$/);
    expect(plain.stderr).toBe(`launch digest: ${a.digest}\n`);
    expect(a.digest).not.toBe(c.digest);
    const r = await runCli([
      'measurement',
      'build',
      ...host,
      '--nonce',
      crypto.randomBytes(16).toString('base64'),
      '--firmware',
      SEVCTL_OVMF,
      '--num-cpus',
      '2',
      '--vcpu-sig',
      '1',
      '--vcpu-type',
      'EPYC',
    ]);
    expect(r.code).toBe(2);
  });

  it('an unpinned owner (no vCPU inputs) learns what the host launched', async () => {
    const m = await hostMeasurement(['--num-cpus', '3', '--vcpu-type', 'EPYC-Genoa']);
    const r = await runCli(['measurement', 'diagnose', ...host, '--measurement', m.measurement, '--firmware', SEVCTL_OVMF, '--vcpus', '1-4', '--json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout) as { explained: boolean; differences: unknown[]; variant: { numCpus: number; cpu: string[] } };
    expect(d.explained).toBe(true);
    expect(d.differences).toEqual([]);
    expect(d.variant.numCpus).toBe(3);
    expect(d.variant.cpu).toContain('EPYC-Genoa');
  });

  it('a random blob is not explained: exit 1 and what was searched', async () => {
    const r = await runCli([
      'measurement',
      'diagnose',
      ...host,
      '--measurement',
      crypto.randomBytes(48).toString('base64'),
      '--firmware',
      SEVCTL_OVMF,
      '--vcpus',
      '1-2',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^not explained: /);
    expect(r.stdout).toMatch(/searched /);
  });

  it('usage errors exit 2', async () => {
    const r = await runCli([
      'measurement',
      'diagnose',
      ...host,
      '--measurement',
      crypto.randomBytes(48).toString('base64'),
      '--firmware',
      SEVCTL_OVMF,
      '--vcpus',
      '9-2',
    ]);
    expect(r.code).toBe(2);
  });
});

describe('measurement inputs sevctl users type', { timeout: 120_000 }, () => {
  it('/dev/null as kernel and initrd reads as empty files; a directory is refused with one line', async () => {
    const fw = path.join(SEVCTL, '../../../sev-snp-measure/ovmf_AmdSev_suffix.bin');
    const base = [
      'measurement',
      'build',
      '--api-major',
      '1',
      '--api-minor',
      '55',
      '--build-id',
      '21',
      '--policy',
      '0x1',
      '--tik',
      TIK,
      '--nonce',
      'wxP6tRHCFrFQWxsuqZA8QA==',
      '--firmware',
      fw,
      '--cmdline',
      'console=ttyS0',
      '--json',
    ];
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '');
    const devnull = await runCli([...base, '--kernel', '/dev/null', '--initrd', '/dev/null']);
    const files = await runCli([...base, '--kernel', empty, '--initrd', empty]);
    expect(devnull.stderr).toBe('');
    expect(JSON.parse(devnull.stdout).digest).toBe(JSON.parse(files.stdout).digest);
    const d = await runCli([...base, '--kernel', dir, '--initrd', empty]);
    expect(d.code).toBe(1);
    expect(d.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(d.stderr).toMatch(/is a directory/);
  });
});
