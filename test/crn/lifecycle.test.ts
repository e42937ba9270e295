/**
 * The CRN as an operator runs it, with real processes over the simulator:
 * every way it is stopped (SIGINT/SIGTERM, once or twice, to the process or to
 * its whole process group; `--keep-vms`; `sevkit sim -- …`; `sevkit demo`)
 * leaves no process and no file behind, and a CRN killed with SIGKILL and
 * started again on the same run dir serves the VMs that kept running: the
 * owner's launch that began on the first process is measured and injected
 * through the second.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliEntry, ROOT, VECTORS } from '../helpers/cli.js';
import { filesUnder, processesMentioning } from '../vm/helpers.js';
import { EthWallet } from '../../lib/aleph/wallet.js';
import { CrnClient } from '../../lib/owner/client.js';
import { launchOnCrn } from '../../lib/owner/launch.js';
import { createSession } from '../../lib/launch/index.js';
import { encodeCaChain } from '../../lib/certs/index.js';
import { simulatorCaChain } from '../../lib/sim/ca-chain.js';
import { makeDemoFirmware } from '../../lib/demo/demo.js';
import { groupMembers, procIdentity } from '../../lib/vm/proc.js';

const simReason = process.env.SEVKIT_SIM_UNAVAILABLE;
const TOKEN = crypto.randomBytes(16).toString('hex');
const owner = EthWallet.generate();
let tmp: string;
let firmware: string;
const realQemu = fs.existsSync('/usr/bin/qemu-system-x86_64') && fs.existsSync('/usr/share/ovmf/OVMF.fd');

interface Serve {
  proc: ChildProcessWithoutNullStreams;
  url: string;
  /** The process group the test started it in (its own: detached). */
  pgid: number;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `sevkit crn serve` (or `sevkit sim --state S -- sevkit crn serve`) in its own process group; resolves once it listens. */
// A test that fails half-way must not leave its `crn serve` group (and its VMs) running for the
// rest of the suite: whatever is still alive after a test is killed.
const running = new Set<number>();
afterEach(() => {
  for (const pgid of running) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  running.clear();
});

async function startServe(runDir: string, o: { port?: number; extra?: string[]; env?: NodeJS.ProcessEnv; underSim?: string } = {}): Promise<Serve> {
  const serveArgs = ['crn', 'serve', '--listen', `127.0.0.1:${o.port ?? 0}`, '--domain', '127.0.0.1', '--run-dir', runDir, '--quiet', ...(o.extra ?? [])];
  const args = o.underSim
    ? [...cliEntry(), 'sim', '--state', o.underSim, '--quiet', '--', process.execPath, ...cliEntry(), ...serveArgs]
    : [...cliEntry(), ...serveArgs];
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, SEVKIT_ALLOCATION_TOKEN: TOKEN, SEVKIT_REAL_QEMU: 'none', NO_COLOR: '1', ...o.env },
    detached: true,
  });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  running.add(proc.pid!);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.on('exit', (code, signal) => {
      running.delete(proc.pid!);
      r({ code, signal });
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`no listening line; stderr: ${err}`)), 90_000);
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^listening on (http:\/\/\S+)$/m.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(t);
      reject(new Error(`serve exited ${code}: ${err}`));
    });
  });
  return { proc, url, pgid: proc.pid!, stderr: () => err, exited };
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Allocates `n` VMs and initializes each with a real session for the platform's PDH; resolves when all await their secret. */
async function vmsAwaitingSecret(url: string, n: number): Promise<string[]> {
  const chain = await new CrnClient({ url }).getCertificates();
  const c = new CrnClient({ url, wallet: owner, domain: '127.0.0.1' });
  const refs: string[] = [];
  for (let i = 0; i < n; i++) {
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url }).allocate(TOKEN, { ref, owner: owner.address, firmware, policy: 1, vcpus: 1, memory_mb: 256 });
    const s = createSession(chain.subarray(0, 0x824), 1);
    await c.initialize(ref, { session: s.sessionB64, godh: s.godhB64 });
    s.tek.fill(0);
    s.tik.fill(0);
    refs.push(ref);
  }
  await until('every VM awaiting its secret', async () => {
    const list = (await (await fetch(`${url}/about/executions/list`)).json()) as Record<string, { state: string }>;
    return refs.every((r) => list[r]?.state === 'awaiting-secret');
  });
  return refs;
}

/** The QEMU (wrapper) pids the supervisor recorded in the run dir. */
function recordedQemuPids(runDir: string): number[] {
  const root = path.join(runDir, 'vms');
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .map((d) => path.join(root, d, 'vm.json'))
    .filter((f) => fs.existsSync(f))
    .map((f) => (JSON.parse(fs.readFileSync(f, 'utf8')) as { pid: number }).pid);
}

/**
 * The exit of a stop: 0. When the test sent the signal more than once, a later copy may land after the stop
 * finished, while Node is tearing down and its handlers are gone: that kills the process by the signal (or, under
 * `sevkit sim`, exit 128 + n). That is accepted only for a repeated signal, and the caller checks nothing was left.
 */
function expectStopExit(ex: { code: number | null; signal: NodeJS.Signals | null }, stderr: string, repeated: boolean): void {
  if (repeated && (ex.signal === 'SIGINT' || ex.code === 130)) return;
  expect(ex.code, stderr).toBe(0);
}

/** Nothing left: not the recorded QEMU pids, nothing in the test's process group, nothing naming the dir, no file. */
async function expectNothingLeft(dir: string, pgid: number, pids: number[]): Promise<void> {
  // Generous: the last process may still be exiting when its parent is reported gone.
  await until(
    'no process left',
    () => pids.every((p) => procIdentity(p) === undefined) && groupMembers(pgid).length === 0 && processesMentioning(dir).length === 0,
    30_000,
  ).catch(() => undefined);
  expect(pids.filter((p) => procIdentity(p) !== undefined)).toEqual([]);
  expect(groupMembers(pgid)).toEqual([]);
  expect(processesMentioning(dir)).toEqual([]);
  expect(filesUnder(dir)).toEqual([]);
}

function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    /* already gone */
  }
}

const stopTimes: string[] = [];

describe.skipIf(Boolean(simReason))('every way crn serve is stopped leaves 0 processes and 0 files', { timeout: 240_000 }, () => {
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crn-life-'));
    firmware = makeDemoFirmware(tmp).path;
  });
  afterAll(() => {
    if (stopTimes.length) process.stdout.write(`crn lifecycle: ${stopTimes.join('; ')}\n`);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const patterns: Array<{ name: string; send: (s: Serve) => Promise<void> }> = [
    { name: 'SIGINT to the process', send: async (s) => signal(s.proc.pid!, 'SIGINT') },
    { name: 'SIGTERM to the process', send: async (s) => signal(s.proc.pid!, 'SIGTERM') },
    { name: 'SIGINT to the process group (terminal Ctrl-C)', send: async (s) => signal(-s.pgid, 'SIGINT') },
    { name: 'SIGTERM to the process group (systemd, docker stop)', send: async (s) => signal(-s.pgid, 'SIGTERM') },
    {
      name: 'two SIGINTs 50 ms apart to the process group',
      send: async (s) => {
        signal(-s.pgid, 'SIGINT');
        await new Promise((r) => setTimeout(r, 50));
        signal(-s.pgid, 'SIGINT');
      },
    },
  ];

  for (const p of patterns) {
    it(p.name, async () => {
      const runDir = fs.mkdtempSync(path.join(tmp, 'run-'));
      const s = await startServe(runDir);
      await vmsAwaitingSecret(s.url, 2);
      const pids = recordedQemuPids(runDir);
      expect(pids).toHaveLength(2);
      const t0 = performance.now();
      await p.send(s);
      const ex = await s.exited;
      stopTimes.push(`${p.name}: 2 VMs stopped in ${(performance.now() - t0).toFixed(0)} ms`);
      expectStopExit(ex, s.stderr(), p.name.startsWith('two'));
      await expectNothingLeft(runDir, s.pgid, pids);
    });
  }

  it('SNP VMs with their guest agent processes (--snp-agent sim): two SIGINTs to the process group leave nothing', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-snp-'));
    const snpFirmware = path.join(tmp, 'OVMF.snp.fd');
    fs.writeFileSync(snpFirmware, Buffer.concat([Buffer.alloc(60 * 1024), fs.readFileSync(path.join(VECTORS, 'sev-snp-measure/ovmf_AmdSev_suffix.bin'))]));
    const s = await startServe(runDir, { env: { SEVKIT_SIM_QEMU_VERSION: '9.2.0' } });
    const refs = [0, 1].map(() => crypto.randomBytes(32).toString('hex'));
    for (const ref of refs)
      await new CrnClient({ url: s.url }).allocate(TOKEN, {
        ref,
        owner: owner.address,
        firmware: snpFirmware,
        policy: 0x30000,
        vcpus: 1,
        memory_mb: 256,
        tee: 'sev_snp',
      });
    await until('both SNP VMs running', async () => {
      const list = (await (await fetch(`${s.url}/about/executions/list`)).json()) as Record<string, { state: string }>;
      return refs.every((r) => list[r]?.state === 'running');
    });
    // Two QEMU wrappers and two agents (their argv names the secrets dir in the VM's run dir); the agents have groups of their own.
    const agents = processesMentioning(runDir).filter((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('guest\0agent\0'));
    expect(agents).toHaveLength(2);
    const pids = [...recordedQemuPids(runDir), ...agents];
    signal(-s.pgid, 'SIGINT');
    await new Promise((r) => setTimeout(r, 50));
    signal(-s.pgid, 'SIGINT');
    expectStopExit(await s.exited, s.stderr(), true);
    await expectNothingLeft(runDir, s.pgid, pids);
  });

  it.skipIf(!realQemu)('SIGTERM to the process group with real QEMU (TCG) under the wrapper', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-q-'));
    const s = await startServe(runDir, { env: { SEVKIT_REAL_QEMU: '/usr/bin/qemu-system-x86_64' } });
    await vmsAwaitingSecret(s.url, 2);
    const pids = recordedQemuPids(runDir);
    // The wrapper's real QEMU runs too (its argv names the private QMP socket in the run dir).
    expect(processesMentioning(runDir).length).toBeGreaterThanOrEqual(4);
    const t0 = performance.now();
    signal(-s.pgid, 'SIGTERM');
    expect((await s.exited).code, s.stderr()).toBe(0);
    stopTimes.push(`real QEMU, group SIGTERM: 2 VMs stopped in ${(performance.now() - t0).toFixed(0)} ms`);
    await expectNothingLeft(runDir, s.pgid, pids);
  });

  it.skipIf(!realQemu)('two SIGINTs 50 ms apart to the group while a running real-QEMU VM powers down: the second does not cut the stop short', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-q2-'));
    const s = await startServe(runDir, { env: { SEVKIT_REAL_QEMU: '/usr/bin/qemu-system-x86_64' } });
    const ca = encodeCaChain(simulatorCaChain(process.env.SEVKIT_SIM_STATE)!);
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url: s.url }).allocate(TOKEN, { ref, owner: owner.address, firmware, policy: 1, vcpus: 1, memory_mb: 256 });
    await launchOnCrn({
      client: new CrnClient({ url: s.url, wallet: owner }),
      ref,
      firmware: fs.readFileSync(firmware),
      policy: 1,
      secret: Buffer.from('pw'),
      ca,
      measurementTimeoutMs: 60_000,
    });
    await vmsAwaitingSecret(s.url, 1);
    const pids = recordedQemuPids(runDir);
    expect(pids).toHaveLength(2);
    // OVMF without an OS never enables the ACPI power button, so the stop quits QEMU at once: the second SIGINT
    // lands during the stop ("already stopping") or after it; either way nothing is left.
    signal(-s.pgid, 'SIGINT');
    await new Promise((r) => setTimeout(r, 50));
    signal(-s.pgid, 'SIGINT');
    expectStopExit(await s.exited, s.stderr(), true);
    await expectNothingLeft(runDir, s.pgid, pids);
  });

  it('--keep-vms leaves the VMs running; the next start adopts them and its stop leaves nothing', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-k-'));
    const s1 = await startServe(runDir, { extra: ['--keep-vms'] });
    const refs = await vmsAwaitingSecret(s1.url, 3);
    const pids = recordedQemuPids(runDir);
    signal(-s1.pgid, 'SIGINT');
    expect((await s1.exited).code, s1.stderr()).toBe(0);
    expect(pids.every((p) => procIdentity(p) !== undefined)).toBe(true);
    expect(fs.readdirSync(path.join(runDir, 'machines')).sort()).toEqual(refs.map((r) => `${r}.json`).sort());
    const t0 = performance.now();
    const s2 = await startServe(runDir);
    stopTimes.push(`keep-vms: restart to listening with 3 adopted VMs in ${(performance.now() - t0).toFixed(0)} ms`);
    expect(s2.stderr()).toMatch(/adopted 3 running VM\(s\)/);
    const list = (await (await fetch(`${s2.url}/about/executions/list`)).json()) as Record<string, { state: string }>;
    expect(refs.map((r) => list[r]?.state)).toEqual(['awaiting-secret', 'awaiting-secret', 'awaiting-secret']);
    const m = await new CrnClient({ url: s2.url, wallet: owner, domain: '127.0.0.1' }).measurementOnce(refs[0]!);
    expect(m.status).toBe(200);
    signal(s2.proc.pid!, 'SIGTERM');
    expect((await s2.exited).code, s2.stderr()).toBe(0);
    await expectNothingLeft(runDir, s2.pgid, pids);
  });

  it('a VM whose QEMU dies while the CRN runs takes its files with it; the other VM is untouched', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-one-'));
    const s = await startServe(runDir);
    const [a, b] = await vmsAwaitingSecret(s.url, 2);
    const before = filesUnder(runDir);
    const pids = recordedQemuPids(runDir);
    const recA = fs.readdirSync(path.join(runDir, 'vms')).find((d) => d.startsWith(a!.slice(0, 24)))!;
    const pidA = (JSON.parse(fs.readFileSync(path.join(runDir, 'vms', recA, 'vm.json'), 'utf8')) as { pid: number }).pid;
    signal(-pidA, 'SIGKILL');
    await until(
      'VM a failed',
      async () => ((await (await fetch(`${s.url}/about/executions/list`)).json()) as Record<string, { state: string }>)[a!]?.state === 'failed',
    );
    await until('its files gone', () => !fs.existsSync(path.join(runDir, 'vms', recA)));
    expect(fs.existsSync(path.join(runDir, 'sessions', a!))).toBe(false);
    expect(filesUnder(runDir).filter((f) => f.includes(a!.slice(0, 24)) && !f.startsWith('machines'))).toEqual([]);
    const list = (await (await fetch(`${s.url}/about/executions/list`)).json()) as Record<string, { state: string }>;
    expect(list[b!]?.state).toBe('awaiting-secret');
    stopTimes.push(`files in the run dir with 2 VMs: ${before.length}, after one died: ${filesUnder(runDir).length}`);
    signal(s.proc.pid!, 'SIGTERM');
    expect((await s.exited).code).toBe(0);
    await expectNothingLeft(runDir, s.pgid, pids);
  });

  it('SIGTERM the moment a restarted crn serve reports its adoption (before it listens): adopted VMs stopped, nothing left', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-early-'));
    const s1 = await startServe(runDir, { extra: ['--keep-vms'] });
    await vmsAwaitingSecret(s1.url, 2);
    const pids = recordedQemuPids(runDir);
    signal(s1.proc.pid!, 'SIGTERM');
    expect((await s1.exited).code).toBe(0);
    const proc = spawn(process.execPath, [...cliEntry(), 'crn', 'serve', '--listen', '127.0.0.1:0', '--domain', '127.0.0.1', '--run-dir', runDir, '--quiet'], {
      cwd: ROOT,
      env: { ...process.env, SEVKIT_ALLOCATION_TOKEN: TOKEN, SEVKIT_REAL_QEMU: 'none', NO_COLOR: '1' },
      detached: true,
    });
    let err = '';
    let sent = false;
    // 'close', not 'exit': the whole of stderr has been read by then.
    const exited = new Promise<string>((r) => proc.on('close', (c, sig) => r(`${c} ${sig}`)));
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (!sent && /adopted 2 running VM/.test(err)) {
        sent = true;
        signal(proc.pid!, 'SIGTERM');
      }
    });
    expect(await exited, err).toBe('0 null');
    expect(err).toMatch(/SIGTERM: stopping 2 VM\(s\)/);
    await expectNothingLeft(runDir, proc.pid!, pids);
  });

  it('a second crn serve on a run dir in use is refused with one line, and the first keeps its VMs', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-busy-'));
    const s1 = await startServe(runDir);
    await vmsAwaitingSecret(s1.url, 1);
    const pids = recordedQemuPids(runDir);
    const second = await startServe(runDir).then(
      () => '',
      (e: Error) => e.message,
    );
    expect(second).toMatch(/sevkit: run root .* is in use by another supervisor \(pid \d+\)/);
    const port = Number(new URL(s1.url).port);
    const busy = await startServe(fs.mkdtempSync(path.join(tmp, 'run-port-')), { port }).then(
      () => '',
      (e: Error) => e.message,
    );
    expect(busy).toMatch(new RegExp(`sevkit: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`));
    expect(busy).not.toMatch(/internal error|at .*\.ts:/);
    expect(pids.every((p) => procIdentity(p) !== undefined)).toBe(true);
    signal(-s1.pgid, 'SIGTERM');
    expect((await s1.exited).code).toBe(0);
    await expectNothingLeft(runDir, s1.pgid, pids);
  });

  it('SIGKILLed and started again on the same run dir: the owner launch begun on the first process is measured and injected through the second', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-crash-'));
    let s = await startServe(runDir);
    const port = Number(new URL(s.url).port);
    const first = s;
    const ca = encodeCaChain(simulatorCaChain(process.env.SEVKIT_SIM_STATE)!);
    // Another owner's VM that is already running when the CRN dies.
    const bystander = EthWallet.generate();
    const bRef = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url: s.url }).allocate(TOKEN, { ref: bRef, owner: bystander.address, firmware, policy: 1, vcpus: 1, memory_mb: 256 });
    await launchOnCrn({
      client: new CrnClient({ url: s.url, wallet: bystander }),
      ref: bRef,
      firmware: fs.readFileSync(firmware),
      policy: 1,
      secret: Buffer.from('bystander-pw'),
      ca,
      measurementTimeoutMs: 60_000,
    });
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url: s.url }).allocate(TOKEN, { ref, owner: owner.address, firmware, policy: 1, vcpus: 1, memory_mb: 256 });
    const client = new CrnClient({ url: s.url, wallet: owner });
    let adoptMs = 0;
    let pids: number[] = [];
    // At the owner's first measurement poll: the VM awaits its secret; the CRN dies and comes back.
    // launchOnCrn works on its own copy of the client (withSignal), so the hook goes on that copy.
    const withSignal = client.withSignal.bind(client);
    client.withSignal = (sig: AbortSignal) => {
      const c = withSignal(sig);
      const measurementOnce = c.measurementOnce.bind(c);
      c.measurementOnce = async (r: string, opts?: { waitSeconds?: number }) => {
        if (s !== first) return measurementOnce(r, opts);
        await until(
          'awaiting-secret',
          async () =>
            ((await (await fetch(`${first.url}/about/executions/list`)).json()) as Record<string, { state: string }>)[ref]?.state === 'awaiting-secret',
        );
        pids = recordedQemuPids(runDir);
        signal(first.proc.pid!, 'SIGKILL');
        await first.exited;
        expect(pids.every((p) => procIdentity(p) !== undefined)).toBe(true);
        const t0 = performance.now();
        s = await startServe(runDir, { port });
        adoptMs = performance.now() - t0;
        expect(s.stderr()).toMatch(/adopted 2 running VM\(s\)/);
        return measurementOnce(r, opts);
      };
      return c;
    };
    const res = await launchOnCrn({
      client,
      ref,
      firmware: fs.readFileSync(firmware),
      policy: 1,
      secret: Buffer.from('after-the-crash'),
      ca,
      measurementTimeoutMs: 60_000,
    });
    stopTimes.push(`SIGKILL + restart: listening again with 2 adopted VMs in ${adoptMs.toFixed(0)} ms`);
    expect(res.status).toMatchObject({ running: true });
    expect(pids).toHaveLength(2);
    const guest = path.join(process.env.SEVKIT_SIM_STATE!, 'guests', ref);
    expect(fs.readFileSync(path.join(guest, 'launch-secret.bin')).includes(Buffer.from('after-the-crash\0'))).toBe(true);
    const list = (await (await fetch(`${s.url}/about/executions/list`)).json()) as Record<string, { state: string }>;
    expect([list[ref]?.state, list[bRef]?.state]).toEqual(['running', 'running']);
    signal(-s.pgid, 'SIGINT');
    expect((await s.exited).code, s.stderr()).toBe(0);
    await expectNothingLeft(runDir, s.pgid, pids);
    await expectNothingLeft(runDir, first.pgid, pids);
    // The simulated guests' decrypted secrets went with them.
    expect(fs.existsSync(guest)).toBe(false);
    expect(fs.existsSync(path.join(process.env.SEVKIT_SIM_STATE!, 'guests', bRef))).toBe(false);
  });

  it('a restart after the VMs died with the CRN reports them stopped and removes their files', async () => {
    const runDir = fs.mkdtempSync(path.join(tmp, 'run-dead-'));
    const s1 = await startServe(runDir);
    const refs = await vmsAwaitingSecret(s1.url, 1);
    const pids = recordedQemuPids(runDir);
    signal(s1.proc.pid!, 'SIGKILL');
    await s1.exited;
    for (const p of pids) signal(-p, 'SIGKILL');
    await until('QEMU gone', () => pids.every((p) => procIdentity(p) === undefined));
    const s2 = await startServe(runDir);
    expect(s2.stderr()).toMatch(/adopted 0 running VM\(s\) .*; 1 had stopped with the earlier process/);
    expect(fs.readdirSync(path.join(runDir, 'vms')).filter((d) => d !== 'supervisor.lock')).toEqual([]);
    const list = (await (await fetch(`${s2.url}/about/executions/list`)).json()) as Record<string, { state: string }>;
    expect(list[refs[0]!]?.state).toBe('stopped');
    signal(-s2.pgid, 'SIGTERM');
    expect((await s2.exited).code).toBe(0);
    await expectNothingLeft(runDir, s2.pgid, pids);
  });
});

describe.skipIf(Boolean(simReason))('sevkit sim -- crn serve, and sevkit demo', { timeout: 240_000 }, () => {
  beforeAll(() => {
    tmp ??= fs.mkdtempSync(path.join(os.tmpdir(), 'crn-life-'));
    if (!fs.existsSync(tmp)) fs.mkdirSync(tmp, { recursive: true });
    firmware = makeDemoFirmware(tmp).path;
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const [name, twice] of [
    ['SIGINT to the group of `sevkit sim -- sevkit crn serve`', false],
    ['two SIGINTs 50 ms apart to the group of `sevkit sim -- sevkit crn serve`', true],
  ] as const) {
    it(name, async () => {
      const base = fs.mkdtempSync(path.join(tmp, 'simrun-'));
      const runDir = path.join(base, 'run');
      const state = path.join(base, 'sim');
      const s = await startServe(runDir, { underSim: state, env: { SEVKIT_SIM_SOCKET: '' } });
      await vmsAwaitingSecret(s.url, 2);
      const pids = recordedQemuPids(runDir);
      signal(-s.pgid, 'SIGINT');
      if (twice) {
        await new Promise((r) => setTimeout(r, 50));
        signal(-s.pgid, 'SIGINT');
      }
      expectStopExit(await s.exited, s.stderr(), twice);
      await expectNothingLeft(runDir, s.pgid, pids);
      // The simulator's socket went with it; its state (keys) is kept by design.
      expect(fs.existsSync(path.join(state, 'sev.sock'))).toBe(false);
      expect(fs.existsSync(path.join(state, 'guests')) ? fs.readdirSync(path.join(state, 'guests')) : []).toEqual([]);
    });
  }

  it('a CRN SIGKILLed under `sevkit sim --`: the simulator stops and its QEMU wrappers end with it', async () => {
    const base = fs.mkdtempSync(path.join(tmp, 'simkill-'));
    const runDir = path.join(base, 'run');
    const s = await startServe(runDir, { underSim: path.join(base, 'sim'), env: { SEVKIT_SIM_SOCKET: '' } });
    await vmsAwaitingSecret(s.url, 2);
    const pids = recordedQemuPids(runDir);
    const crn = groupMembers(s.pgid).filter((p) => p !== s.proc.pid);
    for (const p of crn) signal(p, 'SIGKILL');
    await s.exited;
    await until('wrappers gone', () => pids.every((p) => procIdentity(p) === undefined), 30_000);
    expect(groupMembers(s.pgid)).toEqual([]);
  });

  it('SIGINT to the group of `sevkit demo` mid-launch: no process left, its temp dir removed', async () => {
    const proc = spawn(process.execPath, [...cliEntry(), 'demo', '--vm-less'], {
      cwd: ROOT,
      env: { ...process.env, SEVKIT_SIM_SOCKET: '', NO_COLOR: '1' },
      detached: true,
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
    await until('the demo owner waiting for its measurement', () => /\[owner \d+\/\d+\] initialize/.test(out));
    const dir = /\[sim\] simulator started in \d+ ms \(state (.+)\/sim\)/.exec(out)![1]!;
    signal(-proc.pid!, 'SIGINT');
    await exited;
    expect(out).toMatch(/\[teardown\] SIGINT: stopping the CRN and every VM/);
    await expectNothingLeft(dir, proc.pid!, []);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
