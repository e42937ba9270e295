/**
 * One CRN holding N VM-less guests (N = 10, 100, 1006: an EPYC 9004's ASIDs), each
 * launched by its own owner, in separate processes so that nobody's work is counted
 * as somebody else's:
 *
 *   owners         allocate, then launchOnCrn (chain, session, measurement check over
 *                  the firmware, secret) for all N, at most --concurrency at once
 *   sim            the simulator daemon (one process for every guest's firmware)
 *   crn            `CrnService` over node:http with SimVmLauncher (no QEMU process per VM)
 *   probe          GET /status/config every 2 ms while the launches run, alternating with the
 *                  same GET against a bare node:http server (what the machine alone costs); its
 *                  first request (undici's set-up, a new connection: 40-75 ms on this machine
 *                  while the CRN answered it in under 1 ms) is not counted
 *
 * The owners and the simulator run at nice 10: on a real host they are other machines and
 * the PSP, not processes competing for the CRN's CPU (--no-nice: all at equal priority).
 *
 * At N = 10 a round lasts about a second (~60 probes): rounds, each a fresh CRN filled to N, are
 * pooled until --samples (600) probes were taken during launches, so that the p99 is not one sample.
 *
 * Prints per N: launched/N, wall time, launches/s, /status/config p50/p99/max (and its time
 * inside the CRN, 'request' to 'finish'), CRN CPU per launch (utime+stime from /proc), CRN RSS growth per VM; then the goals as ratios:
 * p99 < 50 ms, CPU per launch at the largest N <= 1.2x that at N = 10, memory per VM flat.
 *
 *   node --import tsx bench/crn-scale.ts [--n 10,100,1006] [--concurrency 32] [--samples 600] [--profile-crn DIR]
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
  // How long /status/config takes inside the CRN ('request' to 'finish'): what the probes' latency
  // has on top of the connection and the machine's scheduling.
  const srvLat: number[] = [];
  srv.server.prependListener('request', (q, r) => {
    if (q.url !== '/status/config') return;
    const t = performance.now();
    r.once('finish', () => srvLat.push(performance.now() - t));
  });
  send({ url: srv.url });
  // --profile-crn DIR: a V8 CPU profile of the CRN's main thread over the timed launches only
  // (from 'reset' to 'stats'), so that start-up, warm-up and the idle probes are not in it.
  const profDir = arg('profile-crn', '');
  const { Session } = await import('node:inspector/promises');
  const session = profDir ? new Session() : undefined;
  session?.connect();
  await session?.post('Profiler.enable');
  await session?.post('Profiler.setSamplingInterval', { interval: 200 });
  process.stdin.on('data', (d: Buffer) => {
    void (async () => {
      if (session && d.toString().startsWith('reset')) await session.post('Profiler.start');
      if (session && d.toString().startsWith('stats')) {
        const { profile } = await session.post('Profiler.stop');
        fs.writeFileSync(path.join(profDir, `crn-timed-${process.pid}.cpuprofile`), JSON.stringify(profile));
      }
      send({ loopMax: loop.max / 1e6, inside: srvLat.splice(0) });
      loop.reset();
    })();
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
  // Its event-loop stalls, measured as the CRN's: on 2 cores a process that does nothing is still
  // descheduled, and that shows in a loop monitor as a stall.
  const { monitorEventLoopDelay } = await import('node:perf_hooks');
  const loop = monitorEventLoopDelay({ resolution: 2 });
  loop.enable();
  send({ url: `http://127.0.0.1:${(srv.address() as { port: number }).port}` });
  process.stdin.on('data', (d: Buffer) => {
    if (d.toString().startsWith('stats')) send({ loopMax: loop.max / 1e6 });
    loop.reset();
  });
  process.on('SIGTERM', () => process.exit(0));
} else if (role === 'probe') {
  // One process probes both the CRN and the bare server, alternating which goes first, so that
  // both see the same scheduling of this process and of the machine.
  const urls = [`${arg('url', '')}/status/config`, arg('floor', '')];
  const lat: number[][] = [[], []];
  let stop = false;
  process.stdin.on('data', () => (stop = true));
  process.stdin.on('end', () => (stop = true));
  const probe = async (i: number) => {
    const t = performance.now();
    try {
      const r = await fetch(urls[i]!);
      await r.arrayBuffer();
      lat[i]!.push(performance.now() - t);
    } catch {
      lat[i]!.push(Number.POSITIVE_INFINITY);
    }
  };
  // The first fetch in a fresh process pays for undici's set-up and a new connection: not the server's.
  await probe(0);
  if (urls[1]) await probe(1);
  lat[0]!.length = lat[1]!.length = 0;
  send({ ready: true });
  for (let k = 0; !stop; k++) {
    await probe(k & 1);
    if (urls[1]) await probe(1 - (k & 1));
    await new Promise((r) => setTimeout(r, Number(EVERY)));
  }
  send({ lat: lat[0], floor: lat[1] });
  process.exit(0);
} else {
  await main();
}

function child(args: string[], nice = false): { proc: ChildProcess; first: Promise<Record<string, unknown>>; last: () => Promise<Record<string, unknown>> } {
  const argv = [
    ...process.execArgv,
    process.argv[1]!,
    ...args,
    ...(args.includes('crn') && arg('profile-crn', '') ? ['--profile-crn', arg('profile-crn', '')] : []),
  ];
  const proc = nice
    ? spawn('nice', ['-n', '10', process.execPath, ...argv], { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  let buf = '';
  const lines: Record<string, unknown>[] = [];
  const waiters: Array<() => void> = [];
  // One exit listener for every wait (the simulator and the bare server answer once a round).
  let exited: number | null | undefined;
  proc.once('exit', (c) => {
    exited = c;
    waiters.splice(0).forEach((w) => w());
  });
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
      const check = () => {
        if (lines.length > n) resolve(lines[n]!);
        else if (exited !== undefined) reject(new Error(`${args.join(' ')} exited ${exited}`));
        else waiters.push(check);
      };
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
  // A p99 needs samples: rounds at the same N (each a fresh CRN filled to N) are pooled until the
  // probes taken during launches number --samples (at N = 10 one round lasts about a second).
  const MIN_SAMPLES = Number(arg('samples', '600'));
  const rows: {
    n: number;
    ok: number;
    want: number;
    cpuPer: number;
    memPerKb: number;
    p99: number;
    idleP99: number;
    floorP99: number;
    loopMax: number;
    floorLoopMax: number;
  }[] = [];
  // One round: a fresh CRN, its idle probes (first round only), then N - 1 timed launches after a warm-up.
  const round = async (n: number, r: number, withIdle: boolean) => {
    const crn = child(['--role', 'crn', '--socket', socket, '--run', path.join(tmp, `run-${n}-${r}`)]);
    const url = (await crn.first).url as string;
    let idle: number[] = [];
    let cpuPerProbe = 0;
    if (withIdle) {
      // The same probe against the idle CRN first: what this machine's load alone costs.
      const idleProbe = child(['--role', 'probe', '--url', url, '--every', EVERY]);
      await idleProbe.first;
      const i0 = usage(crn.proc.pid!);
      await new Promise((res) => setTimeout(res, 2000));
      idleProbe.proc.stdin!.end('stop\n');
      idle = ((await idleProbe.last()).lat as number[]) ?? [];
      // What one probe costs the CRN, so that the launches' CPU can be told apart from the probes'.
      cpuPerProbe = (usage(crn.proc.pid!).cpuMs - i0.cpuMs) / Math.max(1, idle.length);
    }
    const owners = child(
      ['--role', 'owners', '--url', url, '--fw', fwPath, '--state', path.join(tmp, 'sim'), '--count', String(n - 1), '--concurrency', String(CONC)],
      NICE,
    );
    const warm = (await owners.first).warm ? 1 : 0;
    // From before the probes start: the probes' share of the CRN's CPU is taken off whole.
    const u0 = usage(crn.proc.pid!);
    const probe = child(['--role', 'probe', '--url', url, '--floor', floorUrl, '--every', EVERY]);
    await probe.first;
    crn.proc.stdin!.write('reset\n');
    floor.proc.stdin!.write('reset\n');
    await crn.last();
    const t0 = performance.now();
    const result = owners.last();
    owners.proc.stdin!.write('go\n');
    const res = (await result) as { ok: number; errors: Record<string, number>; wall: number };
    const wall = performance.now() - t0;
    const u1 = usage(crn.proc.pid!);
    // Each child answers once; ask for every answer before awaiting any (last() waits for the next line).
    const answers = [crn, probe, floor].map((c) => c.last());
    probe.proc.stdin!.end('stop\n');
    crn.proc.stdin!.write('stats\n');
    floor.proc.stdin!.write('stats\n');
    const [loop, pr, fl] = (await Promise.all(answers)) as [{ loopMax: number; inside: number[] }, { lat?: number[]; floor?: number[] }, { loopMax: number }];
    crn.proc.kill('SIGTERM');
    await new Promise((res) => crn.proc.once('exit', res));
    const lat = pr.lat ?? [];
    return {
      ok: warm + res.ok,
      timedOk: res.ok,
      errors: res.errors,
      wall,
      lat,
      floor: pr.floor ?? [],
      idle,
      cpuPerProbe,
      cpuMs: u1.cpuMs - u0.cpuMs,
      rssGrowthKb: u1.rssKb - u0.rssKb,
      rss: [u0.rssKb, u1.rssKb],
      loopMax: loop.loopMax,
      floorLoopMax: fl.loopMax,
      inside: loop.inside,
    };
  };
  try {
    for (const n of NS) {
      const lat: number[] = [];
      const floorLat: number[] = [];
      const inside: number[] = [];
      let idle: number[] = [];
      let cpuPerProbe = 0;
      let ok = 0,
        timedOk = 0,
        wall = 0,
        cpuMs = 0,
        rssKb = 0,
        loopMax = 0,
        floorLoopMax = 0;
      let rss: number[] = [];
      const errors = new Map<string, number>();
      let r = 0;
      for (; r === 0 || (lat.length < MIN_SAMPLES && r < 20); r++) {
        const x = await round(n, r, r === 0);
        if (r === 0) ({ idle, cpuPerProbe, rss } = x);
        lat.push(...x.lat);
        floorLat.push(...x.floor);
        inside.push(...x.inside);
        ok += x.ok;
        timedOk += x.timedOk;
        wall += x.wall;
        // Only the first round measured what a probe costs the CRN: every round's probes are charged that.
        cpuMs += x.cpuMs - x.lat.length * cpuPerProbe;
        rssKb += x.rssGrowthKb;
        loopMax = Math.max(loopMax, x.loopMax);
        floorLoopMax = Math.max(floorLoopMax, x.floorLoopMax);
        for (const [m, c] of Object.entries(x.errors)) errors.set(m, (errors.get(m) ?? 0) + c);
      }
      const want = n * r;
      const timed = (n - 1) * r;
      const cpuPer = Math.max(0, cpuMs) / Math.max(1, timed);
      const memPerKb = rssKb / Math.max(1, timed);
      const p99 = pct(lat, 99);
      rows.push({ n, ok, want, cpuPer, memPerKb, p99, idleP99: pct(idle, 99), floorP99: pct(floorLat, 99), loopMax, floorLoopMax });
      console.log(
        `  N=${String(n).padStart(4)}: launched ${ok}/${want}${r > 1 ? ` in ${r} rounds` : ''} (${timed} timed in ${(wall / 1000).toFixed(1)} s, ${((timedOk * 1000) / wall).toFixed(1)}/s); /status/config p50 ${pct(lat, 50).toFixed(1)} p99 ${p99.toFixed(1)} max ${Math.max(...lat).toFixed(1)} ms (${lat.length} probes; inside the CRN p99 ${pct(inside, 99).toFixed(1)} max ${Math.max(...inside).toFixed(1)} ms; idle CRN p99 ${pct(idle, 99).toFixed(1)} ms; a bare server probed alternately p50 ${pct(floorLat, 50).toFixed(1)} p99 ${pct(floorLat, 99).toFixed(1)} max ${Math.max(...floorLat).toFixed(1)} ms); CRN event loop max ${loopMax.toFixed(1)} ms (the bare server's ${floorLoopMax.toFixed(1)} ms); CRN CPU ${cpuPer.toFixed(2)} ms/launch (its probes' ${cpuPerProbe.toFixed(3)} ms each taken off), RSS ${rss[0]! >> 10}→${rss[1]! >> 10} MiB in the first round (${memPerKb.toFixed(0)} KiB/VM)`,
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
  console.log(
    `  all launched:                           ${rows.every((r) => r.ok === r.want) ? 'yes' : 'NO'} (${rows.map((r) => `${r.ok}/${r.want}`).join(', ')})`,
  );
  console.log(
    `  /status/config p99 < 50 ms throughout:  ${rows.map((r) => `${r.p99.toFixed(1)} ms`).join(', ')} → ${rows.every((r) => r.p99 < 50) ? 'met' : 'NOT met'} (idle CRN: ${rows.map((r) => `${r.idleP99.toFixed(1)}`).join(', ')} ms; a bare server probed alternately: ${rows.map((r) => `${r.floorP99.toFixed(1)}`).join(', ')} ms; the longest event-loop stall, CRN/bare server: ${rows.map((r) => `${r.loopMax.toFixed(1)}/${r.floorLoopMax.toFixed(1)}`).join(', ')} ms)`,
  );
  console.log(
    `  CRN CPU/launch N=${last.n} vs N=${first.n}:      ${(last.cpuPer / first.cpuPer).toFixed(2)}x (goal <= 1.20: ${last.cpuPer / first.cpuPer <= 1.2 ? 'met' : 'NOT met'})`,
  );
  console.log(
    `  CRN memory per VM:                      ${rows.map((r) => `${r.memPerKb.toFixed(0)} KiB`).join(', ')} (flat: ${last.memPerKb <= Math.max(first.memPerKb, 64) * 1.5 ? 'yes' : 'NO'})`,
  );
}
