import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, runCli, type CliResult } from '../helpers/cli.js';
import type { HostFixture, HostFixtureSpec } from '../../lib/sim/host-fixture.js';
import { STATUS_SCHEMA } from '../../lib/host/status.js';
import { CHECK_IDS } from '../../lib/host/checks.js';
import { cleanup, fixture } from './helpers.js';

afterAll(cleanup);

const WRAPPER = path.join(ROOT, 'test/host/fake-fw-cli.ts');

function envFor(fx: HostFixture, fw: Record<string, unknown> = {}): NodeJS.ProcessEnv {
  return {
    SEVKIT_HOST_ROOT: fx.root,
    SEVKIT_CPUID: fx.cpuidFile,
    SEVKIT_QEMU: fx.qemu,
    SEVKIT_OVMF_DIRS: fx.ovmfDirs.join(':'),
    SEVKIT_DEVICE: '/dev/sev',
    SEVKIT_TEST_FW: JSON.stringify(fw),
    XDG_CACHE_HOME: path.join(fx.root, '..', 'cache'),
    LD_PRELOAD: '',
  };
}

/** Run a CLI through the fake-firmware wrapper (tsx), like runCli. */
function run(which: 'sev-status' | 'sevkit', args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRAPPER, which, ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stdoutBuf = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBuf.toString(), stderr: Buffer.concat(err).toString(), stdoutBuf });
    });
  });
}

const status = (fx: HostFixture, args: string[] = [], fw: Record<string, unknown> = {}) => run('sev-status', args, envFor(fx, fw));

describe('sev-status CLI', () => {
  it('simulated EPYC 9004: exit 0, all green, one verdict line per guest type', async () => {
    const r = await status(fixture());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^sev-status: simulated host \(root .*, CPUID from file\), Linux 6\.12\.0-sim\n/);
    expect(r.stdout).not.toMatch(/\[ (FAIL|WARN) \]/);
    expect(r.stdout).toMatch(/\nVerdict\n {2}SEV {6}ready\n {2}SEV-ES {3}ready\n {2}SEV-SNP {2}ready\n$/);
    // eslint-disable-next-line no-control-regex
    expect(r.stdout).not.toMatch(/\x1b\[/);
  });

  it('--json: the documented schema, parseable, exit code follows readiness', async () => {
    const r = await status(fixture(), ['--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.schema).toBe(STATUS_SCHEMA);
    expect(j.ready).toBe(true);
    expect(j.checks.map((c: { id: string }) => c.id)).toEqual([...CHECK_IDS]);
    expect(j.firmware).toMatchObject({
      available: true,
      apiVersion: '1.55',
      build: 21,
      state: 'INIT',
      esEnabled: true,
      snp: { apiMajor: 1, apiMinor: 55, state: 'INIT', rmpInitialized: true, buildId: 21 },
      snpError: null,
    });
    expect(j.host).toMatchObject({ simulated: true, cpuidSource: 'file' });
  });

  it('Intel host: exit 1 with honest FAILs; --quiet prints nothing', async () => {
    const spec: HostFixtureSpec = { cpu: 'intel', kvmAmd: false, devSev: false };
    const fx = fixture(spec);
    const r = await status(fx, [], { error: { code: 'ENOENT', syscall: 'open' } });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[ FAIL ] AMD CPU: GenuineIntel');
    expect(r.stdout).toContain('fix: SEV needs an AMD EPYC processor');
    expect(r.stdout).toMatch(/SEV {6}not ready because AMD CPU: GenuineIntel/);
    expect(r.stderr).toBe('');
    const q = await status(fx, ['--quiet'], { error: { code: 'ENOENT', syscall: 'open' } });
    expect(q.code).toBe(1);
    expect(q.stdout).toBe('');
    expect(q.stderr).toBe('');
  });

  it('a firmware error from the addon fails with its SEV_RET name', async () => {
    const r = await status(fixture(), ['--json'], { error: { code: 'EIO', fwStatus: 0x13 } });
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.firmware.error).toMatchObject({ code: 'EIO', fwStatus: 0x13, fwStatusName: 'SEV_RET_HWSEV_RET_PLATFORM' });
  });

  it('--require sev-snp reports on SNP (QEMU 7.2 has no SNP)', async () => {
    const fx = fixture({ qemuVersion: '7.2.22' });
    expect((await status(fx, ['-q'])).code).toBe(0);
    expect((await status(fx, ['-q', '--require', 'sev-snp'])).code).toBe(1);
  });

  it.each([[['--bogus']], [['--require', 'tdx']], [['positional']], [['--json', '--quiet']], [['--timeout', '0']], [['--timeout', 'x']]])(
    'usage error %j → exit 2, one line',
    async (args) => {
      const r = await status(fixture(), args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^sev-status: /);
    },
  );

  it('a PSP that never answers times out (--timeout) and is reported, not waited for', async () => {
    const t0 = Date.now();
    const r = await status(fixture(), ['--json', '--timeout', '300'], { hang: true });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).firmware.error).toMatchObject({ code: 'ETIMEDOUT', message: 'PLATFORM_STATUS on /dev/sev did not answer within 300 ms' });
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('remembers the QEMU version per unchanged binary; a changed binary or --no-cache asks QEMU again', async () => {
    const fx = fixture({ qemuVersion: '8.2.1' });
    const q = async (args: string[] = []) => JSON.parse((await status(fx, ['--json', ...args])).stdout).qemu;
    expect(await q()).toMatchObject({ version: '8.2.1', cached: false });
    expect(await q()).toMatchObject({ version: '8.2.1', cached: true });
    expect(await q(['--no-cache'])).toMatchObject({ version: '8.2.1', cached: false });
    fs.writeFileSync(fx.qemu, '#!/bin/sh\necho "QEMU emulator version 9.1.0 (upgraded)"\n');
    expect(await q()).toMatchObject({ version: '9.1.0', cached: false, banner: 'QEMU emulator version 9.1.0 (upgraded)' });
    expect(await q()).toMatchObject({ version: '9.1.0', cached: true });
  });

  it('--version prints the package version', async () => {
    const r = await runCli(['--version'], {}, 'sev-status');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version}\n`);
  });

  it('--help exits 0', async () => {
    const r = await runCli(['--help'], {}, 'sev-status');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Exit status: 0 ready, 1 not ready, 2 usage error.');
  });

  it('a bad CPUID file is one error line, exit 1, no stack', async () => {
    const fx = fixture();
    const r = await run('sev-status', [], { ...envFor(fx), SEVKIT_CPUID: fx.root + '/missing.json' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sev-status: .*missing\.json: cannot read CPUID file: ENOENT\n$/);
  });
});

describe('colours: TTY only, NO_COLOR respected', () => {
  const hasScript = spawnSync('script', ['--version']).status === 0;
  const ttyRun = (env: NodeJS.ProcessEnv) => {
    const fx = fixture({ kvmAmd: { sevEs: 'N\n' } });
    const cmd = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(WRAPPER)} sev-status`;
    const e = { ...process.env, ...envFor(fx), ...env };
    if (env.NO_COLOR === undefined) delete e.NO_COLOR;
    return spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, env: e, encoding: 'utf8' });
  };
  it.skipIf(!hasScript)('colours on a TTY', () => {
    const r = ttyRun({});
    expect(r.stdout).toContain('\x1b[31mFAIL\x1b[0m');
  });
  it.skipIf(!hasScript)('no colours on a TTY with NO_COLOR', () => {
    const r = ttyRun({ NO_COLOR: '1' });
    expect(r.stdout).toContain('[ FAIL ]');
    // eslint-disable-next-line no-control-regex
    expect(r.stdout).not.toMatch(/\x1b\[/);
  });
});

describe('sevkit ok CLI', () => {
  it('all PASS on the simulated host → exit 0, nothing on stderr', async () => {
    const r = await run('sevkit', ['ok'], envFor(fixture()));
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')[0]).toBe('[ PASS ] - AMD CPU');
    expect(r.stdout.trim().split('\n')).toHaveLength(19);
  });

  it('a failure → exit 1 and sevctl’s message; -q prints nothing', async () => {
    const fx = fixture({ kvmAmd: { sev: 'N\n' } });
    const r = await run('sevkit', ['ok', 'sev'], envFor(fx));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[ FAIL ]     - SEV enabled in KVM: Error - contents read from /sys/module/kvm_amd/parameters/sev: N\n');
    expect(r.stderr).toBe('sevkit: One or more tests in sevctl-ok reported a failure\n');
    const q = await run('sevkit', ['ok', '-q'], envFor(fx));
    expect(q.code).toBe(1);
    expect(q.stdout).toBe('');
    expect(q.stderr).toBe('');
  });

  it('an unknown generation is a usage error (exit 2)', async () => {
    const r = await run('sevkit', ['ok', 'tdx'], envFor(fixture()));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("sevkit: unknown generation 'tdx' (expected sev, es or snp)\n");
  });
});

describe('under the simulator (suite global setup)', () => {
  const underSim = Boolean(process.env.SEVKIT_SIM_SOCKET && process.env.SEVKIT_HOST_ROOT && process.env.SEVKIT_CPUID);
  it.skipIf(!underSim)('sev-status sees the simulated EPYC 9004 and its firmware through the unchanged addon', async () => {
    const r = await runCli(['--json'], {}, 'sev-status');
    const j = JSON.parse(r.stdout);
    const failing = j.checks.filter((c: { status: string }) => c.status === 'fail');
    expect(
      failing.filter((c: { blocks: string[] }) => c.blocks.includes('sev')),
      r.stderr,
    ).toEqual([]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(j.host).toMatchObject({ simulated: true, cpuidSource: 'file' });
    expect(j.cpu).toMatchObject({ brand: 'AMD EPYC 9654 96-Core Processor', cbitpos: 51, reducedPhysBits: 1 });
    expect(j.firmware).toMatchObject({ available: true, esEnabled: true });
    expect(j.verdicts.sev.ready).toBe(true);
    expect(j.verdicts['sev-es'].ready).toBe(true);
  });
  it.skipIf(!underSim)('sevkit ok passes on the simulated host', async () => {
    const r = await runCli(['ok']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[ PASS ]     - C-bit location: 51\n');
  });
});
