/**
 * QMP and launch latencies, measured side by side in one run:
 *  - a bare query-status round trip: real QEMU 7.2 (when installed) and the
 *    simulator's VM-less QEMU;
 *  - spawn → measurement ready and inject → running, for 1 and for 32 VMs
 *    launched at once on the simulator (VM-less mode).
 * Run: node --import tsx bench/qmp.ts [--vms 32] [--iterations 2000]
 * Numbers come from the SIMULATED platform: they time sevkit and the wrapper,
 * not a PSP.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { waitForQmp, type QmpClient } from '../lib/qmp/index.js';
import { Supervisor, type ConfidentialVm } from '../lib/vm/index.js';
import { buildSecret, createSession } from '../lib/launch/index.js';
import { makeSimEnv } from '../test/vm/simenv.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const MANY = opt('vms', 32);
const ITER = opt('iterations', 2000);
const REAL_QEMU = '/usr/bin/qemu-system-x86_64';
const AMDSEV = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../test/fixtures/vectors/sev-snp-measure/ovmf_AmdSev_suffix.bin');
const FIRMWARE = fs.existsSync(AMDSEV) ? AMDSEV : '/usr/share/OVMF/OVMF_CODE.fd';

function stats(samples: number[]): { n: number; p50: number; p90: number; p99: number; max: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

function fmt(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

async function roundTrips(c: QmpClient, n: number): Promise<number[]> {
  for (let i = 0; i < 50; i++) await c.queryStatus(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await c.queryStatus();
    out.push(performance.now() - t);
  }
  return out;
}

async function pipelined(c: QmpClient, n: number): Promise<number> {
  const t = performance.now();
  await Promise.all(Array.from({ length: n }, () => c.queryStatus()));
  return (performance.now() - t) / n;
}

async function realQemuRoundTrip(): Promise<{ seq: number[]; pipe: number } | undefined> {
  if (!fs.existsSync(REAL_QEMU)) return undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-'));
  const sock = path.join(dir, 'qmp.sock');
  const p = spawn(REAL_QEMU, ['-machine', 'q35', '-nodefaults', '-display', 'none', '-S', '-m', '64', '-qmp', `unix:${sock},server=on,wait=off`], {
    stdio: 'ignore',
  });
  try {
    const c = await waitForQmp(sock, { timeoutMs: 20_000 });
    const seq = await roundTrips(c, ITER);
    const pipe = await pipelined(c, ITER);
    await c.quit();
    return { seq, pipe };
  } finally {
    p.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function launchBatch(sup: Supervisor, pdh: Buffer, n: number, tag: string) {
  const sessions = Array.from({ length: n }, () => createSession(pdh, 0x1));
  const t0 = performance.now();
  const ready: number[] = [];
  const vms: ConfidentialVm[] = await Promise.all(
    sessions.map(async (s, i) => {
      const t = performance.now();
      const vm = await sup.launch({ name: `${tag}-${i}`, firmware: FIRMWARE, memMb: 64, sev: { policy: 1, godh: s.godhB64, session: s.sessionB64 } });
      await vm.measurement();
      ready.push(performance.now() - t);
      return vm;
    }),
  );
  const wallReady = performance.now() - t0;
  const packets = await Promise.all(
    vms.map(async (vm, i) => {
      const m = await vm.measurement();
      const b = buildSecret({
        tek: sessions[i]!.tek,
        tik: sessions[i]!.tik,
        measurement: Buffer.from(m.launchMeasure, 'base64'),
        plaintext: Buffer.from(`secret-${i}-0123456789`),
      });
      return { packetHeader: b.header.toString('base64'), secret: b.payload.toString('base64'), gpa: vm.firmwareSecretArea ? undefined : 0x800000 };
    }),
  );
  const toRunning: number[] = [];
  const t1 = performance.now();
  await Promise.all(
    vms.map(async (vm, i) => {
      const t = performance.now();
      await vm.injectSecret(packets[i]!);
      toRunning.push(performance.now() - t);
    }),
  );
  const wallRunning = performance.now() - t1;
  // A bare round trip on one of these wrappers, under no load.
  const bare = stats(await roundTrips(vms[0]!.qmpClient!, 500));
  await Promise.all(vms.map((vm) => vm.stop()));
  return { ready: stats(ready), wallReady, toRunning: stats(toRunning), wallRunning, bare };
}

async function main(): Promise<void> {
  console.log(`sevkit QMP / launch benchmark — node ${process.version}, ${os.cpus().length} CPUs, firmware ${path.basename(FIRMWARE)}`);
  console.log('Platform: SIMULATED SEV (software model); QEMU side: the simulator wrapper in VM-less mode.\n');

  const real = await realQemuRoundTrip();
  const sim = await makeSimEnv({ realQemu: 'none' });
  const runRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-run-'));
  try {
    console.log(
      `Guest firmware: ${sim.daemon ? 'the simulator daemon (SimClient)' : "the wrapper's in-process firmware (no daemon; run under `sevkit sim --` for the daemon)"}\n`,
    );
    const pdh = fs.readFileSync(path.join(sim.stateDir, 'pdh.cert'));
    const sup = new Supervisor({ qemu: sim.qemu, env: sim.env, runRoot, maxConcurrentLaunches: MANY, launchTimeoutMs: 120_000 });
    const tag = `bench-${process.pid}`;
    let one, many;
    try {
      one = await launchBatch(sup, pdh, 1, `${tag}-1`);
      many = await launchBatch(sup, pdh, MANY, `${tag}-${MANY}`);
    } finally {
      // The simulated guests' secret files are ours: leave no plaintext behind in the state dir.
      const guests = path.join(sim.stateDir, 'guests');
      for (const d of fs.existsSync(guests) ? fs.readdirSync(guests) : [])
        if (d.startsWith(`${tag}-`)) fs.rmSync(path.join(guests, d), { recursive: true, force: true });
    }

    console.log(`QMP query-status round trip (${ITER} sequential; pipelined = ${ITER} in flight, per command):`);
    const rows: Array<[string, ReturnType<typeof stats> | undefined, number | undefined]> = [];
    if (real) rows.push(['real QEMU 7.2 (TCG, -S)', stats(real.seq), real.pipe]);
    rows.push(['sim wrapper, VM-less', one.bare, undefined]);
    for (const [name, s, pipe] of rows) {
      if (!s) continue;
      console.log(
        `  ${name.padEnd(28)} p50 ${fmt(s.p50).padStart(8)}  p90 ${fmt(s.p90).padStart(8)}  p99 ${fmt(s.p99).padStart(8)}${pipe !== undefined ? `  pipelined ${fmt(pipe)}` : ''}`,
      );
    }
    const bare = one.bare.p50;
    console.log(`\nLaunch on the simulator (VM-less), ratios against the bare round trip p50 ${fmt(bare)}:`);
    for (const [n, r] of [
      [1, one],
      [MANY, many],
    ] as const) {
      console.log(`  ${String(n).padStart(2)} VM${n > 1 ? 's' : ' '} at once:`);
      console.log(
        `    spawn → measurement ready  p50 ${fmt(r.ready.p50).padStart(8)}  max ${fmt(r.ready.max).padStart(8)}  wall ${fmt(r.wallReady).padStart(8)}  (${(r.ready.p50 / bare).toFixed(0)}× a round trip)`,
      );
      console.log(
        `    inject → running           p50 ${fmt(r.toRunning.p50).padStart(8)}  max ${fmt(r.toRunning.max).padStart(8)}  wall ${fmt(r.wallRunning).padStart(8)}  (${(r.toRunning.p50 / bare).toFixed(1)}× a round trip)`,
      );
    }
    console.log(
      `\n  ${MANY} VMs vs 1: measurement-ready wall ${(many.wallReady / one.wallReady).toFixed(1)}×, inject→running wall ${(many.wallRunning / one.wallRunning).toFixed(1)}×`,
    );
  } finally {
    fs.rmSync(runRoot, { recursive: true, force: true });
    sim.cleanup();
  }
}

await main();
