/**
 * One CRN holding N VM-less guests (N = 10, 100, 1006: an EPYC 9004's ASIDs), each
 * launched by its own owner, in separate processes so that nobody's work is counted
 * as somebody else's:
 *
 *   owners         allocate, then launchOnCrn (chain, session, measurement check over
 *                  the firmware, secret) for all N, at most --concurrency at once
 *   sim            the simulator daemon (one process for every guest's firmware)
 *   crn            `CrnService` over node:http with SimVmLauncher (no QEMU process per VM)
 *   probes         GET /status/config every 2 ms while the launches run, and the same
 *                  against a bare node:http server (what the machine alone costs)
 *
 * The owners and the simulator run at nice 10: on a real host they are other machines and
 * the PSP, not processes competing for the CRN's CPU (--no-nice: all at equal priority).
 *
 * Prints per N: launched/N, wall time, launches/s, /status/config p50/p99/max, CRN CPU
 * per launch (utime+stime from /proc), CRN RSS growth per VM; then the goals as ratios:
 * p99 < 50 ms, CPU per launch at the largest N <= 1.2x that at N = 10, memory per VM flat.
 *
 *   node --import tsx bench/crn-scale.ts [--n 10,100,1006] [--concurrency 32] [--profile-crn DIR]
 *
 * SIMULATED platform: says nothing about real SEV firmware latency.
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
const role = arg('role', 'main');
const NICE = !process.argv.includes('--no-nice');
// 2 ms between probes: at N = 10 the launches take under a second, and a p99 needs a hundred samples.
const EVERY = arg('every', '2');
// Whatever way this process ends (a failed launch that throws included), its children go with it.
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const TOKEN = 'bench-token';

function send(msg: unknown): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

if (role === 'sim') {
  const { SimDaemon } = await import('../lib/sim/daemon.js');
  const d = await SimDaemon.start(arg('state', ''), { seed: 17 });
  send({ socket: d.socketPath });
  process.on('SIGTERM', () => void d.close().then(() => process.exit(0)));
} else if (role === 'crn') {
  const { SimClient } = await import('../lib/sim/client.js');
  const { SimVmLauncher } = await import('../lib/crn/sim-launcher.js');
  const { startCrnServer } = await import('../lib/crn/server.js');
  const calls = await SimClient.connect(arg('socket', ''));
  const srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: '127.0.0.1',
    runDir: arg('run', ''),
    allocationToken: TOKEN,
    platformKind: 'simulated',
    maxVms: 4096,
    launcher: new SimVmLauncher(calls),
    certs: {
      async exportCerts() {
        const { pdh, certChain } = await calls.pdhCertExport();
        const at = (i: number) => certChain.subarray(i * 0x824, (i + 1) * 0x824);
        return { pdh, pek: at(0), oca: at(1), cek: at(2) };
      },
    },
  });
  // The CRN's own event-loop stalls (what a probe's latency has on top of the machine's scheduling).
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const loop = monitorEventLoopDelay({ resolution: 2 });
  loop.enable();
  send({ url: srv.url });
  process.stdin.on('data', () => {
    send({ loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 });
    loop.reset();
  });
  process.on('SIGTERM', () => void srv.close().then(() => process.exit(0)));
} else if (role === 'owners') {
  // The owners: a warm-up launch (JIT, certificate export) first, then on 'go' the timed ones.
  const { EthWallet } = await import('../lib/aleph/wallet.js');
  const { CrnClient } = await import('../lib/owner/client.js');
  const { launchOnCrn } = await import('../lib/owner/launch.js');
  const { encodeCaChain } = await import('../lib/certs/index.js');
  const { simulatorCaChain } = await import('../lib/sim/ca-chain.js');
  const url = arg('url', '');
  const fwPath = arg('fw', '');
  const firmware = fs.readFileSync(fwPath);
  const ca = encodeCaChain(simulatorCaChain(arg('state', ''))!);
  const launchOne = async (): Promise<boolean> => {
    const wallet = EthWallet.generate();
    const ref = crypto.randomBytes(32).toString('hex');
    await new CrnClient({ url }).allocate(TOKEN, { ref, owner: wallet.address, firmware: fwPath, policy: 1, vcpus: 1, memory_mb: 512 });
    const r = await launchOnCrn({
      client: new CrnClient({ url, wallet }),
      ref,
      firmware,
      policy: 1,
      secret: Buffer.from('pw'),
      ca,
      measurementTimeoutMs: 120_000,
    });
    return (r.status as { status?: string }).status === 'running';
  };
  send({ warm: await launchOne().catch(() => false) });
  await new Promise((r) => process.stdin.once('data', r));
  const count = Number(arg('count', '0'));
  const errors: Record<string, number> = {};
  let ok = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(Number(arg('concurrency', '32')), count) }, async () => {
      while (next < count) {
        next++;
        try {
          if (await launchOne()) ok++;
        } catch (e) {
          const m = (e as Error).message.slice(0, 120);
          errors[m] = (errors[m] ?? 0) + 1;
        }
      }
    }),
  );
  send({ ok, errors, wall: performance.now() - t0 });
  process.exit(0);
} else if (role === 'floor') {
  // A bare node:http server answering like /status/config: the same probe against it, under the same
  // load, shows what this machine's scheduling alone costs a process that does nothing else.
  const http = await import('node:http');
  const srv = http.createServer((_q, r) => r.end('{"ok":true}'));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  send({ url: `http://127.0.0.1:${(srv.address() as { port: number }).port}` });
  process.on('SIGTERM', () => process.exit(0));
} else if (role === 'probe') {
  const url = `${arg('url', '')}/status/config`;
  const lat: number[] = [];
  let stop = false;
  process.stdin.on('data', () => (stop = true));
  process.stdin.on('end', () => (stop = true));
  while (!stop) {
    const t = performance.now();
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      lat.push(performance.now() - t);
    } catch {
      lat.push(Number.POSITIVE_INFINITY);
    }
    await new Promise((r) => setTimeout(r, Number(EVERY)));
  }
  send({ lat });
  process.exit(0);
} else {
  await main();
}

function child(args: string[], nice = false): { proc: ChildProcess; first: Promise<Record<string, unknown>>; last: () => Promise<Record<string, unknown>> } {
  // --profile-crn DIR: a V8 CPU profile of the CRN process, to see where its time goes.
  const prof = args.includes('crn') && arg('profile-crn', '') ? ['--cpu-prof', `--cpu-prof-dir=${arg('profile-crn', '')}`] : [];
  const argv = [...process.execArgv, ...prof, process.argv[1]!, ...args];
  const proc = nice
    ? spawn('nice', ['-n', '10', process.execPath, ...argv], { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  let buf = '';
  const lines: Record<string, unknown>[] = [];
  const waiters: Array<() => void> = [];
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  const nth = (n: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => (lines.length > n ? resolve(lines[n]!) : waiters.push(check));
      proc.once('exit', (c) => (lines.length > n ? resolve(lines[n]!) : reject(new Error(`${args.join(' ')} exited ${c}`))));
      check();
    });
  return { proc, first: nth(0), last: () => nth(lines.length) };
}

/** utime+stime of a process in ms, and its RSS in KiB. */
function usage(pid: number): { cpuMs: number; rssKb: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]); // fields 14, 15
  const rss = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuMs: (ticks * 1000) / 100, rssKb: rss ? Number(rss[1]) : 0 };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function main(): Promise<void> {
  const { makeDemoFirmware } = await import('../lib/demo/demo.js');
  const NS = arg('n', '10,100,1006').split(',').map(Number);
  const CONC = Number(arg('concurrency', '32'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-scale-'));
  const sim = child(['--role', 'sim', '--state', path.join(tmp, 'sim')], NICE);
  const socket = (await sim.first).socket as string;
  const floor = child(['--role', 'floor']);
  const floorUrl = (await floor.first).url as string;
  const fwPath = makeDemoFirmware(tmp).path;
  const firmware = fs.readFileSync(fwPath);
  console.log(
    `CRN scale benchmark (SIMULATED, VM-less guests in one simulator process; node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)})`,
  );
  console.log(
    `firmware ${(firmware.length / 1024).toFixed(0)} KiB; owners (${CONC} at once), CRN, simulator and /status/config probes each in their own process; ${
      NICE
        ? 'owners and simulator at nice 10 (they stand for remote machines and the PSP, not the CRN host; --no-nice for equal priority)'
        : 'all at equal priority'
    }`,
  );
  const rows: { n: number; ok: number; cpuPer: number; memPerKb: number; p99: number; idleP99: number; floorP99: number; loopMax: number }[] = [];
  try {
    for (const n of NS) {
      const crn = child(['--role', 'crn', '--socket', socket, '--run', path.join(tmp, `run-${n}`)]);
      const url = (await crn.first).url as string;
      // The same probe against the idle CRN first: what this machine's load alone costs.
      const idleProbe = child(['--role', 'probe', '--url', url, '--every', EVERY]);
      const i0 = usage(crn.proc.pid!);
      await new Promise((r) => setTimeout(r, 2000));
      idleProbe.proc.stdin!.end('stop\n');
      const idle = ((await idleProbe.last()).lat as number[]) ?? [];
      // What one probe costs the CRN, so that the launches' CPU can be told apart from the probes'.
      const cpuPerProbe = (usage(crn.proc.pid!).cpuMs - i0.cpuMs) / Math.max(1, idle.length);
      const owners = child(
        ['--role', 'owners', '--url', url, '--fw', fwPath, '--state', path.join(tmp, 'sim'), '--count', String(n - 1), '--concurrency', String(CONC)],
        NICE,
      );
      const warm = (await owners.first).warm ? 1 : 0;
      const timed = n - 1;
      // From before the probes start: the probes' share of the CRN's CPU is taken off whole.
      const u0 = usage(crn.proc.pid!);
      const probe = child(['--role', 'probe', '--url', url, '--every', EVERY]);
      const floorProbe = child(['--role', 'probe', '--url', floorUrl, '--every', EVERY]);
      await new Promise((r) => setTimeout(r, 200));
      crn.proc.stdin!.write('reset\n');
      await crn.last();
      const t0 = performance.now();
      const result = owners.last();
      owners.proc.stdin!.write('go\n');
      const res = (await result) as { ok: number; errors: Record<string, number>; wall: number };
      const ok = warm + res.ok;
      const errors = new Map(Object.entries(res.errors));
      const wall = performance.now() - t0;
      const u1 = usage(crn.proc.pid!);
      // Each child answers once; ask for every answer before awaiting any (last() waits for the next line).
      const answers = [crn, probe, floorProbe].map((c) => c.last());
      probe.proc.stdin!.end('stop\n');
      floorProbe.proc.stdin!.end('stop\n');
      crn.proc.stdin!.write('stats\n');
      const [loop, pr, fl] = (await Promise.all(answers)) as [{ loopP99: number; loopMax: number }, { lat?: number[] }, { lat?: number[] }];
      const lat = pr.lat ?? [];
      const floorLat = fl.lat ?? [];
      crn.proc.kill('SIGTERM');
      await new Promise((r) => crn.proc.once('exit', r));
      const cpuPer = Math.max(0, u1.cpuMs - u0.cpuMs - lat.length * cpuPerProbe) / Math.max(1, timed);
      const memPerKb = (u1.rssKb - u0.rssKb) / Math.max(1, timed);
      const p99 = pct(lat, 99);
      rows.push({ n, ok, cpuPer, memPerKb, p99, idleP99: pct(idle, 99), floorP99: pct(floorLat, 99), loopMax: loop.loopMax });
      console.log(
        `  N=${String(n).padStart(4)}: launched ${ok}/${n} (${timed} timed in ${(wall / 1000).toFixed(1)} s, ${(((ok - warm) * 1000) / wall).toFixed(1)}/s); /status/config p50 ${pct(lat, 50).toFixed(1)} p99 ${p99.toFixed(1)} max ${Math.max(...lat).toFixed(1)} ms (${lat.length} probes; idle CRN p99 ${pct(idle, 99).toFixed(1)} ms; a bare server under the same load p99 ${pct(floorLat, 99).toFixed(1)} ms); CRN event loop p99 ${loop.loopP99.toFixed(1)} max ${loop.loopMax.toFixed(1)} ms; CRN CPU ${cpuPer.toFixed(2)} ms/launch (its probes' ${cpuPerProbe.toFixed(3)} ms each taken off), RSS ${u0.rssKb >> 10}→${u1.rssKb >> 10} MiB (${memPerKb.toFixed(0)} KiB/VM)`,
      );
      for (const [m, c] of errors) console.log(`      ${c} × ${m}`);
    }
  } finally {
    floor.proc.kill('SIGTERM');
    sim.proc.kill('SIGTERM');
    await new Promise((r) => sim.proc.once('exit', r));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const first = rows[0]!,
    last = rows.at(-1)!;
  console.log('goals:');
  console.log(`  all launched:                           ${rows.every((r) => r.ok === r.n) ? 'yes' : 'NO'} (${rows.map((r) => `${r.ok}/${r.n}`).join(', ')})`);
  console.log(
    `  /status/config p99 < 50 ms throughout:  ${rows.map((r) => `${r.p99.toFixed(1)} ms`).join(', ')} → ${rows.every((r) => r.p99 < 50) ? 'met' : 'NOT met'} (idle CRN: ${rows.map((r) => `${r.idleP99.toFixed(1)}`).join(', ')} ms; a bare server under the same load: ${rows.map((r) => `${r.floorP99.toFixed(1)}`).join(', ')} ms; the CRN's longest event-loop stall: ${rows.map((r) => `${r.loopMax.toFixed(1)}`).join(', ')} ms)`,
  );
  console.log(
    `  CRN CPU/launch N=${last.n} vs N=${first.n}:      ${(last.cpuPer / first.cpuPer).toFixed(2)}x (goal <= 1.20: ${last.cpuPer / first.cpuPer <= 1.2 ? 'met' : 'NOT met'})`,
  );
  console.log(
    `  CRN memory per VM:                      ${rows.map((r) => `${r.memPerKb.toFixed(0)} KiB`).join(', ')} (flat: ${last.memPerKb <= Math.max(first.memPerKb, 64) * 1.5 ? 'yes' : 'NO'})`,
  );
}
