/**
 * The simulator daemon's responsiveness while guests launch (SIMULATED), measured side by side in one
 * run: the latency of a PLATFORM_STATUS probe (the JSON platformStatus QEMU issues, one at a time) on a
 * connection of its own, from a process of its own, while
 *
 *   idle            nothing else runs (the baseline)
 *   cached fw       --concurrency launchers, each on its own connection, launch VM-less guests
 *                   (START with a session, UPDATE by path, MEASURE, SECRET, FINISH, DECOMMISSION)
 *                   from one firmware file the daemon has already hashed
 *   new fw          the same, but each launcher touches its own copy of the firmware before every
 *                   launch, so every LAUNCH_UPDATE reads and hashes the whole file again
 *
 * and the launches/s of each loaded phase. The daemon runs in its own process.
 *
 *   node --import tsx bench/sim-daemon.ts [--seconds 6] [--concurrency 4] [--fw-mib 4]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};

const role = arg('role', '');
if (role === 'sim') {
  const { SimDaemon } = await import('../lib/sim/daemon.js');
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const d = await SimDaemon.start(arg('state', ''), { seed: 5 });
  // The daemon's own event-loop stalls, per phase: what every other connection waits behind.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  process.on('message', (m: string) => {
    if (m === 'reset') loop.reset();
    else process.send!({ p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 });
  });
  process.stdout.write(`${d.socketPath}\n`);
  process.on('SIGTERM', () => void d.close().then(() => process.exit(0)));
} else if (role === 'probe') {
  await probe(arg('socket', ''), Number(arg('ms', '1000')));
} else {
  await main();
}

/** Issues platformStatus back to back for `ms`; prints the latencies (ms) as JSON. */
async function probe(socket: string, ms: number): Promise<void> {
  const { SimClient } = await import('../lib/sim/client.js');
  const c = await SimClient.connect(socket);
  await c.request('platformStatus');
  const lat: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t = performance.now();
    await c.request('platformStatus');
    lat.push(performance.now() - t);
  }
  c.close();
  process.stdout.write(JSON.stringify(lat) + '\n');
}

function startChild(args: string[], ipc = false): ChildProcess {
  return spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], { stdio: ['ignore', 'pipe', 'inherit', ...(ipc ? ['ipc' as const] : [])] });
}

/** The child's stdout once it has written a first line (or all of it when it exits). */
function firstLine(child: ChildProcess, what: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.once('error', reject);
    child.once('exit', (c) => reject(new Error(`${what} exited ${c} before answering`)));
  });
}

/** One phase's launches/s, probe latencies (ms) and the daemon's loop stalls (ms). */
interface Phase {
  rate: number;
  lat: number[];
  loop: { p99: number; max: number };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
}

async function main(): Promise<void> {
  const { SimClient } = await import('../lib/sim/client.js');
  const { createSession, buildSecret, DISK_PASSWORD_GUID } = await import('../lib/launch/index.js');
  const SECONDS = Number(arg('seconds', '6'));
  const CONC = Number(arg('concurrency', '4'));
  const FW_BYTES = Number(arg('fw-mib', '4')) * 1024 * 1024;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-simdaemon-'));
  const sim = startChild(['--role', 'sim', '--state', path.join(tmp, 'sim')], true);
  const loopStalls = (): Promise<{ p99: number; max: number }> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the simulator did not report its loop delay')), 10_000);
      sim.once('message', (m: { p99: number; max: number }) => (clearTimeout(t), resolve(m)));
      sim.send('report');
    });
  try {
    const socket = await firstLine(sim, 'the simulator');
    const firmware = crypto.randomBytes(FW_BYTES);
    const shared = path.join(tmp, 'fw.bin');
    fs.writeFileSync(shared, firmware);
    const own = Array.from({ length: CONC }, (_x, i) => {
      const f = path.join(tmp, `fw-${i}.bin`);
      fs.writeFileSync(f, firmware);
      return f;
    });
    const clients = await Promise.all(Array.from({ length: CONC }, () => SimClient.connect(socket)));
    const { pdh } = await clients[0]!.pdhCertExport();
    // Sessions are reused round robin: the firmware unwraps each LAUNCH_START's anew.
    const sessions = Array.from({ length: 32 }, () => createSession(pdh, 1));
    let touches = 0;

    const launch = async (c: (typeof clients)[number], i: number, file: string): Promise<void> => {
      const s = sessions[i % sessions.length]!;
      const h = await c.launchStart({ policy: 1, godh: s.godh, session: s.session });
      await c.launchUpdateFile(h, file);
      const m = await c.launchMeasure(h);
      const pkt = buildSecret({ tek: s.tek, tik: s.tik, measurement: m, entries: [{ guid: DISK_PASSWORD_GUID, data: Buffer.from('pw') }], layout: 'aleph' });
      await c.launchSecret(h, pkt.header, pkt.payload, 0);
      await c.launchFinish(h);
      await c.decommission(h);
    };

    /** Launches until `ms` have passed, the probe running beside them; launches/s and probe latencies. */
    const phase = async (load: 'idle' | 'cached' | 'new', ms: number): Promise<Phase> => {
      sim.send('reset');
      const pr = startChild(['--role', 'probe', '--socket', socket, '--ms', String(ms)]);
      const latP = firstLine(pr, 'the probe');
      let launches = 0;
      const t = performance.now();
      if (load !== 'idle') {
        await Promise.all(
          clients.map(async (c, k) => {
            while (performance.now() - t < ms) {
              if (load === 'new') {
                // A new version of this launcher's file: a new mtime is a new stamp, so a fresh read.
                const when = new Date(Date.UTC(2020, 0, 1) + ++touches * 1000);
                fs.utimesSync(own[k]!, when, when);
              }
              await launch(c, launches++, load === 'new' ? own[k]! : shared);
            }
          }),
        );
      }
      const elapsed = performance.now() - t;
      const lat = JSON.parse(await latP) as number[];
      return { rate: (launches * 1000) / Math.max(elapsed, ms), lat, loop: await loopStalls() };
    };

    await launch(clients[0]!, 0, shared); // warm: the shared file is hashed once here
    const ms = SECONDS * 1000;
    const idle = await phase('idle', ms);
    const cached = await phase('cached', ms);
    const fresh = await phase('new', ms);
    for (const c of clients) c.close();

    const row = (name: string, r: Phase, load: boolean) =>
      console.log(
        `  ${name.padEnd(34)} ${load ? r.rate.toFixed(1).padStart(7) : '      -'} launches/s   probe p50 ${quantile(r.lat, 0.5).toFixed(2).padStart(6)} ms  p99 ${quantile(r.lat, 0.99).toFixed(2).padStart(7)} ms  max ${r.lat
          .reduce((a, b) => Math.max(a, b), 0)
          .toFixed(1)
          .padStart(6)} ms (${r.lat.length})   daemon loop stall p99 ${r.loop.p99.toFixed(1).padStart(5)} ms  max ${r.loop.max.toFixed(1).padStart(5)} ms`,
      );
    console.log(
      `simulator daemon under launches (SIMULATED; daemon and probe in their own processes; node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)})`,
    );
    console.log(`  firmware ${(FW_BYTES / 1048576).toFixed(0)} MiB, ${CONC} launchers on a connection each, ${SECONDS} s per phase`);
    row('idle daemon (baseline)', idle, false);
    row('cached firmware launches', cached, true);
    row('new firmware every launch', fresh, true);
    const p99 = (r: Phase) => quantile(r.lat, 0.99);
    console.log(
      `  probe p99 under new-firmware launches / idle: ${(p99(fresh) / p99(idle)).toFixed(1)}x; under cached: ${(p99(cached) / p99(idle)).toFixed(1)}x`,
    );
  } finally {
    sim.kill('SIGTERM');
    await new Promise((r) => (sim.exitCode !== null ? r(undefined) : sim.once('exit', r)));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
