/**
 * The supervisor's own share of a launch: `Supervisor.launch` → measurement and
 * inject → running, against the same QEMU started bare (same argv, a raw QMP
 * socket polled every millisecond, the same QMP commands) in the same run,
 * interleaved. Prints the supervisor's median minus the bare median per phase
 * (goal: <= 10 ms over QEMU's own start and QMP round trips).
 *
 * Two QEMUs, each when available:
 *  - the simulator's VM-less QEMU wrapper, SEV guest (query-sev + launch measure,
 *    sev-inject-launch-secret + cont): the whole SEV path, nothing boots;
 *  - /usr/bin/qemu-system-x86_64 (TCG, plain guest, Debian's OVMF): QEMU's real
 *    start-up; no SEV here, so "measurement" is the QMP handshake + query-status and
 *    "inject" is cont.
 *
 *   npm run build:ts && node --import tsx bench/supervisor.ts [--rounds N]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Supervisor, buildQemuArgv, type VmSpec } from '../lib/vm/index.js';
import { createSession, buildSecret, DISK_PASSWORD_GUID, type LaunchSession } from '../lib/launch/index.js';
import { startSim } from '../lib/sim/session.js';

const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 9;
const REAL_QEMU = '/usr/bin/qemu-system-x86_64';
const DEBIAN_OVMF = '/usr/share/OVMF/OVMF_CODE.fd';
const AMDSEV = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../test/fixtures/vectors/sev-snp-measure/ovmf_AmdSev_suffix.bin');
const HOST = { cbitpos: 51, reducedPhysBits: 1 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-sup-'));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A QMP connection with nothing on top: lines in, lines out. */
class RawQmp {
  #buf = '';
  #waiters: Array<(l: Record<string, unknown>) => void> = [];
  constructor(readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.#buf += d;
      for (let i = this.#buf.indexOf('\n'); i >= 0; i = this.#buf.indexOf('\n')) {
        const line = JSON.parse(this.#buf.slice(0, i)) as Record<string, unknown>;
        this.#buf = this.#buf.slice(i + 1);
        if ('event' in line) continue;
        this.#waiters.shift()?.(line);
      }
    });
    sock.on('error', () => undefined);
  }
  next(): Promise<Record<string, unknown>> {
    return new Promise((r) => this.#waiters.push(r));
  }
  async cmd(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    const p = this.next();
    this.sock.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
    const r = await p;
    if ('error' in r) throw new Error(`${execute}: ${JSON.stringify(r.error)}`);
    return r.return;
  }
}

async function connectFast(sock: string, deadline: number): Promise<RawQmp> {
  for (;;) {
    const s = await new Promise<net.Socket | undefined>((resolve) => {
      const c = net.connect(sock);
      c.once('connect', () => resolve(c));
      c.once('error', () => resolve(undefined));
    });
    if (s) {
      const q = new RawQmp(s);
      await q.next(); // greeting
      await q.cmd('qmp_capabilities');
      return q;
    }
    if (Date.now() > deadline) throw new Error(`bare QEMU: no QMP on ${sock}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

interface Case {
  name: string;
  qemu: string;
  env: NodeJS.ProcessEnv;
  spec: (name: string, session?: LaunchSession) => VmSpec;
  sev: boolean;
}

/** The owner's secret packet for this session and measurement (built between the timed phases). */
function packetFor(session: LaunchSession, launchMeasure: string): { packetHeader: string; secret: string } {
  const b = buildSecret({
    tek: session.tek,
    tik: session.tik,
    measurement: Buffer.from(launchMeasure, 'base64'),
    entries: [{ guid: DISK_PASSWORD_GUID, data: Buffer.from('pw') }],
    layout: 'aleph',
  });
  return { packetHeader: b.header.toString('base64'), secret: b.payload.toString('base64') };
}

async function supervised(c: Case, sup: Supervisor, name: string): Promise<{ launch: number; inject: number }> {
  const session = c.sev ? createSession(pdh, 1) : undefined;
  const spec = c.spec(name, session);
  let t = performance.now();
  const vm = await sup.launch(spec);
  const m = c.sev ? await vm.measurement() : undefined;
  const launch = performance.now() - t;
  const packet = session && m ? packetFor(session, m.launchMeasure) : undefined;
  t = performance.now();
  if (packet) await vm.injectSecret(packet);
  else await vm.resume();
  const inject = performance.now() - t;
  await vm.stop({ timeoutMs: 10_000 });
  return { launch, inject };
}

async function bare(c: Case, name: string): Promise<{ launch: number; inject: number }> {
  const session = c.sev ? createSession(pdh, 1) : undefined;
  const spec = c.spec(name, session);
  const dir = fs.mkdtempSync(path.join(tmp, 'bare-'));
  const files: { dhCertFile?: string; sessionFile?: string } = {};
  if (spec.sev?.godh !== undefined) {
    files.dhCertFile = path.join(dir, 'godh.b64');
    files.sessionFile = path.join(dir, 'session.b64');
    fs.writeFileSync(files.dhCertFile, String(spec.sev.godh), { mode: 0o600 });
    fs.writeFileSync(files.sessionFile, String(spec.sev.session), { mode: 0o600 });
  }
  const argv = buildQemuArgv({
    qemu: c.qemu,
    accel: spec.accel,
    memMb: spec.memMb ?? 512,
    vcpus: spec.vcpus ?? 1,
    firmware: spec.firmware,
    monitorSocket: path.join(dir, 'monitor.sock'),
    qmpSocket: path.join(dir, 'qmp.sock'),
    qgaSocket: path.join(dir, 'qga.sock'),
    ...(spec.sev ? { sev: { policy: spec.sev.policy, ...HOST, ...files } } : {}),
    cpu: spec.cpu,
    name: spec.name,
  });
  let t = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', env: c.env, detached: true });
  const exited = new Promise((r) => child.once('exit', r));
  const q = await connectFast(path.join(dir, 'qmp.sock'), Date.now() + 30_000);
  await q.cmd('query-status');
  let measure: string | undefined;
  if (c.sev) {
    await q.cmd('query-sev');
    measure = ((await q.cmd('query-sev-launch-measure')) as { data: string }).data;
  }
  const launch = performance.now() - t;
  const packet = session && measure ? packetFor(session, measure) : undefined;
  t = performance.now();
  if (packet) await q.cmd('sev-inject-launch-secret', { 'packet-header': packet.packetHeader, secret: packet.secret, gpa: 0x810000 });
  await q.cmd('cont');
  const inject = performance.now() - t;
  await q.cmd('quit').catch(() => undefined);
  q.sock.destroy();
  await exited;
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    /* group gone */
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { launch, inject };
}

const cases: Case[] = [];
const sim = await startSim({ stateDir: path.join(tmp, 'sim') });
const pdh = fs.readFileSync(path.join(sim.stateDir, 'pdh.cert'));
const simEnvNoReal = { ...sim.env, SEVKIT_REAL_QEMU: 'none' };
cases.push({
  name: 'simulator VM-less QEMU, SEV guest',
  qemu: sim.host.qemu,
  env: simEnvNoReal,
  sev: true,
  spec: (name, s) => ({ name, firmware: AMDSEV, memMb: 64, sev: { policy: 1, godh: s!.godhB64, session: s!.sessionB64 } }),
});
if (fs.existsSync(REAL_QEMU) && fs.existsSync(DEBIAN_OVMF)) {
  cases.push({
    name: 'QEMU 7.2 (TCG), plain guest',
    qemu: REAL_QEMU,
    env: process.env,
    sev: false,
    spec: (name) => ({ name, firmware: DEBIAN_OVMF, memMb: 64, vcpus: 1, accel: 'tcg', cpu: 'qemu64' }),
  });
} else console.log(`(${REAL_QEMU} or ${DEBIAN_OVMF} missing: real-QEMU case skipped)`);

console.log(`supervisor overhead benchmark (${ROUNDS} interleaved rounds, medians, node ${process.version})`);
try {
  for (const c of cases) {
    const sup = new Supervisor({ qemu: c.qemu, env: c.env, runRoot: path.join(tmp, 'vms'), hostAddressBits: HOST });
    const s = { launch: [] as number[], inject: [] as number[] };
    const b = { launch: [] as number[], inject: [] as number[] };
    for (let i = -1; i < ROUNDS; i++) {
      const name = `b${i + 1}-${crypto.randomBytes(3).toString('hex')}`;
      // Alternate who goes first, so neither always runs just after the other's teardown.
      const first = i % 2 === 0;
      const rb0 = first ? await bare(c, `r${name}`) : undefined;
      const rs = await supervised(c, sup, `s${name}`);
      const rb = rb0 ?? (await bare(c, `r${name}`));
      if (i < 0) continue; // warm-up
      s.launch.push(rs.launch);
      s.inject.push(rs.inject);
      b.launch.push(rb.launch);
      b.inject.push(rb.inject);
    }
    const row = (what: string, sv: number[], bv: number[]) =>
      console.log(
        `  ${what.padEnd(22)} supervisor ${median(sv).toFixed(1).padStart(6)} ms   bare ${median(bv).toFixed(1).padStart(6)} ms   overhead ${(median(sv) - median(bv)).toFixed(1).padStart(5)} ms  (goal <= 10 ms)`,
      );
    console.log(`${c.name}:`);
    row(c.sev ? 'launch → measurement' : 'launch → QMP ready', s.launch, b.launch);
    row(c.sev ? 'inject → running' : 'cont → running', s.inject, b.inject);
  }
} finally {
  await sim.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}
