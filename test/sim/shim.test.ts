/**
 * The simulator as the unchanged addon sees it: LD_PRELOAD shim + daemon,
 * through the real CLI (issue 2 acceptance), in-worker concurrency, a daemon
 * that dies, and the shim's own bounds checks from C.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, cliEntry, runCli } from '../helpers/cli.js';
import { cleanupDirs, tmpDir } from './helpers.js';
import { ecSigns, keyMatchesCert } from './independent.js';
import { findShim } from '../../lib/sim/env.js';

const hw = process.env.SEVKIT_HW === '1';
let shim: string | undefined;
try {
  shim = findShim();
} catch {
  shim = undefined;
}
const skipReason = hw ? 'SEVKIT_HW=1: running against real hardware' : !shim ? 'shim not built (npm run build:gyp)' : undefined;

afterAll(cleanupDirs);

describe.skipIf(skipReason)('acceptance: sevkit sim -- sevkit ...', () => {
  const state = tmpDir();
  const out = (f: string) => path.join(state, f);
  let banner = '';
  let code: number | null = null;

  // One simulator session runs the whole acceptance script (process start-up dominates the cost).
  beforeAll(async () => {
    const sevkit = [process.execPath, ...cliEntry()].map((a) => `'${a}'`).join(' ');
    const script = [
      `${sevkit} show version > '${out('version.txt')}'`,
      `${sevkit} export '${out('export1.bin')}'`,
      `${sevkit} rotate`,
      `${sevkit} export '${out('export2.bin')}'`,
      `SEVKIT_DEVICE=/nonexistent/sev ${sevkit} show version > '${out('enoent.out')}' 2> '${out('enoent.err')}'; echo $? > '${out('enoent.rc')}'`,
    ].join(' && ');
    const r = await runCli(['sim', '--state', state, '--seed', '1', '--', 'sh', '-c', script], { timeoutMs: 120_000 });
    banner = r.stderr;
    code = r.code;
  }, 180_000);

  it('runs, with one notice that the platform is simulated', () => {
    expect(banner).toMatch(/SIMULATED SEV platform/);
    expect(banner).toMatch(/proves nothing about real AMD hardware/);
    expect(banner.trimEnd().split('\n')).toHaveLength(1);
    expect(code).toBe(0);
  });

  it('show version prints major.minor.build', () => {
    expect(fs.readFileSync(out('version.txt'), 'utf8')).toBe('1.55.21\n');
  });

  it('export writes 8336 bytes whose signatures verify and whose PDH matches pdh.key.pem; rotate changes the PDH', () => {
    const chain = fs.readFileSync(out('export1.bin'));
    expect(chain.length).toBe(8336);
    const [pdh, pek, oca, cek] = [0, 1, 2, 3].map((i) => chain.subarray(i * 2084, (i + 1) * 2084));
    expect(ecSigns(pek!, pdh!)).toBe(true);
    expect(ecSigns(oca!, pek!)).toBe(true);
    expect(ecSigns(cek!, pek!)).toBe(true);
    expect(ecSigns(oca!, oca!)).toBe(true);
    const chain2 = fs.readFileSync(out('export2.bin'));
    expect(chain2.length).toBe(8336);
    expect(chain2.subarray(0, 2084).equals(pdh!)).toBe(false);
    expect(chain2.subarray(2084).equals(chain.subarray(2084))).toBe(true);
    expect(ecSigns(pek!, chain2.subarray(0, 2084))).toBe(true);
    // pdh.key.pem always holds the current PDH's key.
    expect(keyMatchesCert(fs.readFileSync(path.join(state, 'pdh.key.pem')), chain2.subarray(0, 2084))).toBe(true);
    expect(keyMatchesCert(fs.readFileSync(path.join(state, 'pdh.key.pem')), pdh!)).toBe(false);
  });

  it('SEVKIT_DEVICE=/nonexistent/sev fails with one line naming the path and ENOENT', () => {
    expect(fs.readFileSync(out('enoent.rc'), 'utf8').trim()).toBe('1');
    expect(fs.readFileSync(out('enoent.out'), 'utf8')).toBe('');
    const lines = fs.readFileSync(out('enoent.err'), 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/\/nonexistent\/sev/);
    expect(lines[0]).toMatch(/ENOENT/);
  });

  it('sim ca OUT writes ASK‖ARK from the state dir', async () => {
    const out = path.join(state, 'ca.cert');
    const r = await runCli(['sim', '--state', state, 'ca', out]);
    expect(r.code).toBe(0);
    const ca = fs.readFileSync(out);
    expect(ca.equals(Buffer.concat([fs.readFileSync(path.join(state, 'ask.cert')), fs.readFileSync(path.join(state, 'ark.cert'))]))).toBe(true);
    const bad = await runCli(['sim', '--state', state, 'ca', state]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/is a directory/);
  });

  it("sim ca OUT inside a running simulator writes that simulator's roots, not the default state's", async () => {
    const out = path.join(state, 'nested-ca.cert');
    const r = await runCli(['sim', 'ca', out], { env: { SEVKIT_SIM_STATE: state, XDG_CACHE_HOME: path.join(state, 'no-default-cache') } });
    expect(r.code).toBe(0);
    expect(fs.readFileSync(out).equals(Buffer.concat([fs.readFileSync(path.join(state, 'ask.cert')), fs.readFileSync(path.join(state, 'ark.cert'))]))).toBe(
      true,
    );
    expect(fs.existsSync(path.join(state, 'no-default-cache', 'sevkit', 'sim'))).toBe(false);
  });

  it('passes through the exit code and the simulator environment; 127 for a missing command; usage errors', async () => {
    const r = await runCli([
      'sim',
      '--state',
      state,
      '-q',
      '--',
      'sh',
      '-c',
      'test -n "$SEVKIT_SIM_SOCKET" && test -f "$SEVKIT_CPUID" && test -d "$SEVKIT_HOST_ROOT/sys/module/kvm_amd" && command -v qemu-system-x86_64 | grep -q "$SEVKIT_SIM_STATE/bin" && exit 7',
    ]);
    expect(r.code).toBe(7);
    const missing = await runCli(['sim', '--state', state, '-q', '--', 'no-such-command-sevkit']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/no-such-command-sevkit: command not found/);
    const usage = await runCli(['sim', '--state', state]);
    expect(usage.code).toBe(2);
    const seed = await runCli(['sim', '--state', state, '--seed', '9', '--', 'true']);
    expect(seed.code).toBe(1);
    expect(seed.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(seed.stderr).toMatch(/created with seed 1/);
    // The socket is removed when the command ends.
    expect(fs.existsSync(path.join(state, 'sev.sock'))).toBe(false);
  });

  it('the host probes see the simulated EPYC 9004 host', async () => {
    const cpuid = JSON.parse(fs.readFileSync(path.join(state, 'host', 'cpuid.json'), 'utf8')) as Record<string, number[]>;
    const l1f = cpuid['0x8000001f:0']!;
    expect(l1f[1]! & 0x3f).toBe(51);
    expect((l1f[1]! >> 6) & 0x3f).toBe(1);
    expect(l1f[0]! & 0x1b).toBe(0x1b); // SME, SEV, SEV-ES, SNP
    expect(fs.readFileSync(path.join(state, 'host/root/sys/module/kvm_amd/parameters/sev'), 'utf8')).toBe('Y\n');
  });
});

describe.skipIf(skipReason)('sevkit sim sessions', () => {
  it('nested without --state: runs on the simulator already in place', async () => {
    const r = await runCli(['sim', '-q', '--', 'sh', '-c', 'printf %s "$SEVKIT_SIM_SOCKET"']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(process.env.SEVKIT_SIM_SOCKET);
  });

  it('a state dir served by a running simulator is refused with one line', async () => {
    const { SimDaemon } = await import('../../lib/sim/daemon.js');
    const state = tmpDir();
    const d = await SimDaemon.start(state, { seed: '1' });
    try {
      const r = await runCli(['sim', '--state', state, '--', 'true']);
      expect(r.code).toBe(1);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/in use by a running simulator/);
    } finally {
      await d.close();
    }
  });

  it('SIGTERM reaches CMD; exit code 128+15; the socket is removed', async () => {
    const state = tmpDir();
    const child = spawn(process.execPath, [...cliEntry(), 'sim', '--state', state, '--seed', '1', '-q', '--', 'sleep', '30'], { cwd: ROOT, stdio: 'ignore' });
    const sock = path.join(state, 'sev.sock');
    for (let i = 0; i < 200 && !fs.existsSync(path.join(state, 'bin', 'qemu-system-x86_64')); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    expect(fs.existsSync(sock)).toBe(true);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(143);
    expect(fs.existsSync(sock)).toBe(false);
  });
});

describe.skipIf(skipReason)('the addon in this worker, on the global simulator', () => {
  it('64 concurrent calls all succeed', async () => {
    const { SevPlatform } = await import('../../lib/platform/index.js');
    const p = new SevPlatform();
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => (i % 4 === 0 ? p.exportCerts().then((c) => c.pdh.length) : p.status().then((s) => s.apiMinor))),
    );
    expect(results.filter((v) => v === 2084)).toHaveLength(16);
    expect(results.filter((v) => v === 55)).toHaveLength(48);
  });

  it('64 concurrent calls on separate SevPlatform objects (separate per-device queues) succeed', async () => {
    const { SevPlatform } = await import('../../lib/platform/index.js');
    const all = await Promise.all(Array.from({ length: 64 }, () => new SevPlatform().status()));
    expect(all.every((s) => s.apiMajor === 1 && s.build === 21)).toBe(true);
  });
});

describe.skipIf(skipReason)('fault injection through the real addon', () => {
  it('every firmware status comes back from the real addon as EIO with its number and name (pid-targeted faults)', async () => {
    const { armFault } = await import('../../lib/sim/faults.js');
    const { Ret } = await import('../../lib/sim/uapi.js');
    const { SevPlatform } = await import('../../lib/platform/index.js');
    const p = new SevPlatform();
    for (const [name, code] of Object.entries(Ret)) {
      if (code === 0) continue;
      armFault(process.env.SEVKIT_SIM_STATE!, { cmd: 'PLATFORM_STATUS', fwStatus: code, pid: process.pid });
      const err = (await p.status().catch((e: unknown) => e)) as { code?: string; fwStatus?: number; fwStatusName?: string };
      expect(err.code, name).toBe('EIO');
      expect(err.fwStatus, name).toBe(code);
      expect(err.fwStatusName, name).toBe(`SEV_RET_${name}`);
    }
    expect((await p.status()).apiMajor).toBe(1);
  });

  it('a tagged fault fails only the tagged process, with the status name on one line', async () => {
    const { armFault } = await import('../../lib/sim/faults.js');
    const { SevPlatform } = await import('../../lib/platform/index.js');
    const tag = `shim-test-${process.pid}-${Date.now()}`;
    armFault(process.env.SEVKIT_SIM_STATE!, { cmd: 'PDH_GEN', fwStatus: 'INVALID_PLATFORM_STATE', tag });
    // This worker has no tag: its commands are not affected.
    expect((await new SevPlatform().status()).apiMajor).toBe(1);
    const r = await runCli(['rotate'], { env: { SEVKIT_SIM_TAG: tag } });
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/SEV_RET_INVALID_PLATFORM_STATE/);
    expect(lines[0]).toMatch(/EIO/);
    // Fired once and removed (no second rotate here: other test files share this simulator's PDH).
    const armed = fs.readFileSync(path.join(process.env.SEVKIT_SIM_STATE!, 'faults.json'), 'utf8');
    expect(armed).not.toContain(tag);
  });

  it('an open fault gives EACCES for read-write opens of the tagged process', async () => {
    const { armFault } = await import('../../lib/sim/faults.js');
    const tag = `shim-open-${process.pid}-${Date.now()}`;
    armFault(process.env.SEVKIT_SIM_STATE!, { on: 'open', cmd: 'O_RDWR', errno: 'EACCES', tag });
    const r = await runCli(['rotate'], { env: { SEVKIT_SIM_TAG: tag } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/EACCES/);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});

describe.skipIf(skipReason)('a daemon that goes away', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('killed daemon: the next call fails with one ENODEV line, not a hang', async () => {
    const state = tmpDir();
    const script = `import { SimDaemon } from ${JSON.stringify(path.join(ROOT, 'lib/sim/daemon.ts'))};
const d = await SimDaemon.start(${JSON.stringify(state)}, { seed: '1' });
process.stdout.write(d.socketPath + '\\n');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const sock = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) resolve(buf.trim());
      });
      child.on('exit', () => reject(new Error('daemon exited early')));
    });
    const ok = await runCli(['show', 'version'], { env: { SEVKIT_SIM_SOCKET: sock } });
    expect(ok.stdout).toBe('1.55.21\n');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const t0 = Date.now();
    const r = await runCli(['show', 'version'], { env: { SEVKIT_SIM_SOCKET: sock }, timeoutMs: 30_000 });
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ENODEV/);
  });

  it('daemon dying in the middle of an ioctl, or answering garbage: clean errno, no hang', async () => {
    const dir = tmpDir();
    const sockPath = path.join(dir, 'fake.sock');
    let mode: 'drop' | 'garbage' = 'drop';
    const server = net.createServer((s) => {
      let n = 0;
      s.on('data', () => {
        n++;
        if (n === 1) {
          const ok = Buffer.alloc(8);
          ok.writeUInt32LE(4, 0);
          s.write(ok); // OPEN accepted
        } else if (mode === 'drop') {
          s.destroy();
        } else {
          const bad = Buffer.alloc(12);
          bad.writeUInt32LE(8, 0); // 8-byte reply: shorter than any valid IOCTL reply
          s.write(bad);
        }
      });
    });
    await new Promise<void>((r) => server.listen(sockPath, r));
    try {
      const r1 = await runCli(['show', 'version'], { env: { SEVKIT_SIM_SOCKET: sockPath }, timeoutMs: 30_000 });
      expect(r1.code).toBe(1);
      expect(r1.stderr).toMatch(/ENODEV/);
      mode = 'garbage';
      const r2 = await runCli(['show', 'version'], { env: { SEVKIT_SIM_SOCKET: sockPath }, timeoutMs: 30_000 });
      expect(r2.code).toBe(1);
      expect(r2.stderr).toMatch(/EPROTO/);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

const gcc = spawnSync('gcc', ['--version']).status === 0;

describe.skipIf(skipReason || !gcc)('the shim from C (shim_probe)', () => {
  const bin = path.join(tmpDir(), 'shim_probe');
  const run = (args: string[]) => execFileSync(bin, args, { env: { ...process.env, LD_PRELOAD: shim! }, encoding: 'utf8', timeout: 30_000 }).trim();

  it('builds', () => {
    execFileSync('gcc', ['-O1', '-Wall', '-Wextra', '-Werror', '-o', bin, path.join(ROOT, 'native/sim/test/shim_probe.c'), '-lpthread']);
    expect(fs.existsSync(bin)).toBe(true);
  });

  it('never writes past a too-small caller buffer, and reports the lengths', () => {
    expect(run(['undersized'])).toBe('rc=-1 fw=4 pdh_len=2084 chain_len=6252 guard=intact');
  });

  it('any ioctl other than SEV_ISSUE_CMD is EINVAL; status; 64 threads on one process', () => {
    expect(run(['badreq'])).toBe('rc=-1 errno=22');
    expect(run(['status'])).toMatch(/^1\.55\.21 state=[12] flags=0x10[01] guests=\d+$/);
    expect(run(['concurrent', '64'])).toBe('all ok');
  });

  // A fake daemon: accepts OPEN, answers the first IOCTL with `first`, and a
  // later one with a well-formed PLATFORM_STATUS reply (1.55.21).
  const statusReply = () => {
    const body = Buffer.alloc(32);
    body.writeUInt32LE(12, 12); // struct_len
    body.writeUInt8(1, 16); // api_major
    body.writeUInt8(55, 17); // api_minor
    body.writeUInt8(21, 23); // build
    return Buffer.concat([Buffer.from([32, 0, 0, 0]), body]);
  };
  const probeTwice = async (first: Buffer) => {
    const sockPath = path.join(tmpDir(), 'fake.sock');
    const server = net.createServer((s) => {
      let n = 0;
      s.on('data', () => {
        n++;
        if (n === 1)
          s.write(Buffer.from([4, 0, 0, 0, 0, 0, 0, 0])); // OPEN accepted
        else s.write(n === 2 ? first : statusReply());
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(sockPath, r));
    try {
      const env = { ...process.env, LD_PRELOAD: shim!, SEVKIT_SIM_SOCKET: sockPath };
      const { stdout } = await promisify(execFile)(bin, ['twice'], { env, encoding: 'utf8', timeout: 30_000 });
      return stdout.trim();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  };

  it('a reply cut off mid-frame fails the fd for good: the rest of it is never read as the next reply', async () => {
    // Over the 1 MiB frame limit, then a valid-looking reply the next ioctl must not take as its own.
    const oversized = Buffer.concat([Buffer.from([0, 0, 0x20, 0]), statusReply()]);
    expect(await probeTwice(oversized)).toBe('rc=-1 errno=19 rc=-1 errno=19');
  });

  it('a whole reply with an impossible errno is EPROTO and the fd stays usable', async () => {
    const negative = statusReply();
    negative.writeInt32LE(-5, 4);
    expect(await probeTwice(negative)).toBe('rc=-1 errno=71 rc=0 errno=0');
  });

  it('paths other than /dev/sev pass through to libc', () => {
    const out = execFileSync('cat', [path.join(ROOT, 'package.json')], { env: { ...process.env, LD_PRELOAD: shim! }, encoding: 'utf8' });
    expect(JSON.parse(out).name).toBe('sevkit');
  });
});
