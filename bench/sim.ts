/**
 * Simulator benchmark (not a test): PLATFORM_STATUS measured side by side on
 *   1. the firmware model in-process (the simulator's floor),
 *   2. the daemon over its socket with the shim's wire protocol, from JS,
 *   3. the real addon through the LD_PRELOAD shim (1 and 64 concurrent callers),
 * plus the worst event-loop stall while the addon calls run.
 *
 *   node --import tsx bench/sim.ts [--calls N]
 *
 * It starts its own simulator on a temp state dir and re-executes itself under
 * it, because LD_PRELOAD only takes effect at exec.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const argCalls = process.argv.indexOf('--calls');
const CALLS = argCalls > 0 ? Number(process.argv[argCalls + 1]) : 2000;

function fmt(n: number, d = 1): string {
  return n.toFixed(d);
}

async function parent(): Promise<void> {
  const { startSim } = await import('../lib/sim/session.js');
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-sim-'));
  const sim = await startSim({ stateDir: state, seed: '1' });
  try {
    const { SimPlatform } = await import('../lib/sim/platform.js');
    const { Cmd } = await import('../lib/sim/uapi.js');
    // 1. in-process floor (a separate platform object on a copy of the state: same model, no I/O)
    const floorDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-floor-'));
    const p = SimPlatform.open(floorDir, { seed: '1' });
    const req = { cmd: Cmd.PLATFORM_STATUS, writable: false, dataNull: false, struct: Buffer.alloc(0), blobs: [] };
    for (let i = 0; i < 1000; i++) p.ioctl(req);
    let t = performance.now();
    for (let i = 0; i < CALLS * 10; i++) p.ioctl(req);
    const floorUs = ((performance.now() - t) * 1000) / (CALLS * 10);
    fs.rmSync(floorDir, { recursive: true, force: true });

    // 2. socket round trip from JS (OPEN once, then IOCTL frames one at a time)
    const { frame, FrameReader } = await import('../lib/sim/protocol.js');
    const sock = net.createConnection(sim.socketPath);
    await new Promise((r) => sock.once('connect', r));
    const reader = new FrameReader();
    let waiting: ((b: Buffer) => void) | undefined;
    sock.on('data', (c: Buffer) => {
      for (const f of reader.push(c)) waiting?.(f);
    });
    const rt = (body: Buffer) =>
      new Promise<Buffer>((resolve) => {
        waiting = resolve;
        sock.write(frame(body));
      });
    const path0 = Buffer.from('/dev/sev');
    const open = Buffer.concat([Buffer.from([1, 0, path0.length, 0]), path0, Buffer.alloc(6)]); // pid 0, no tag
    await rt(open);
    const ioctl = Buffer.alloc(16);
    ioctl[0] = 2;
    ioctl.writeUInt32LE(Cmd.PLATFORM_STATUS, 4);
    for (let i = 0; i < 200; i++) await rt(ioctl);
    t = performance.now();
    for (let i = 0; i < CALLS; i++) await rt(ioctl);
    const socketUs = ((performance.now() - t) * 1000) / CALLS;
    sock.destroy();

    // 3. the addon through the shim, in a child exec()ed with the simulator env
    const self = fileURLToPath(import.meta.url);
    // Asynchronous spawn: the daemon answering the child lives on this event loop.
    const child = spawn(process.execPath, ['--import', 'tsx', self, '--child', '--calls', String(CALLS)], { env: sim.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    if (code !== 0) throw new Error(`child failed: ${err}`);
    const c = JSON.parse(out.trim().split('\n').pop()!) as { seqUs: number; rate1: number; rate64: number; stallMs: number };

    console.log('sevkit simulator benchmark: PLATFORM_STATUS (SIMULATED platform, not hardware)');
    console.log(`  model in-process (floor)          ${fmt(floorUs, 2)} us/call`);
    console.log(`  daemon socket round trip (JS)     ${fmt(socketUs)} us/call   (${fmt(socketUs / floorUs)}x floor)`);
    console.log(`  addon + shim, sequential          ${fmt(c.seqUs)} us/call   (${fmt(c.seqUs / floorUs)}x floor, ${fmt(c.seqUs / socketUs, 2)}x socket)`);
    console.log(`  addon + shim, 1 caller            ${fmt(c.rate1, 0)} calls/s`);
    console.log(`  addon + shim, 64 callers          ${fmt(c.rate64, 0)} calls/s   (${fmt(c.rate64 / c.rate1, 2)}x 1 caller)`);
    console.log(`  worst event-loop stall (64)       ${fmt(c.stallMs, 2)} ms`);
  } finally {
    await sim.close();
    fs.rmSync(state, { recursive: true, force: true });
  }
}

async function childMain(): Promise<void> {
  const { SevPlatform } = await import('../lib/platform/index.js');
  for (let i = 0; i < 200; i++) await new SevPlatform().status();
  const one = new SevPlatform();
  let t = performance.now();
  for (let i = 0; i < CALLS; i++) await one.status();
  const seqMs = performance.now() - t;
  const rate1 = CALLS / (seqMs / 1000);

  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  // 64 independent callers (each its own SevPlatform, so the per-device queue does not serialize them in JS).
  const per = Math.max(1, Math.floor(CALLS / 64));
  t = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      const p = new SevPlatform();
      for (let i = 0; i < per; i++) await p.status();
    }),
  );
  const parMs = performance.now() - t;
  h.disable();
  const rate64 = (per * 64) / (parMs / 1000);
  console.log(JSON.stringify({ seqUs: (seqMs * 1000) / CALLS, rate1, rate64, stallMs: h.max / 1e6 }));
}

if (process.argv.includes('--child')) await childMain();
else await parent();
