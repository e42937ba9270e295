/**
 * CRN benchmark over the SIMULATED SEV platform, VM-less (the simulator's QEMU
 * wrapper answers QMP; nothing boots):
 *
 *  1. client-visible launch latency of one owner, per step, over a few sequential launches;
 *  2. N concurrent launches (N = 1, 10, 100) on one reference CRN: success count,
 *     p50/p99 per step, worst event-loop stall of the CRN+client process, RSS per VM.
 *
 *   node --import tsx bench/crn.ts            (BENCH_N=1,10,100 BENCH_SEQ=5 BENCH_SLOTS=4)
 *
 * Numbers are from this machine and the simulator; they say nothing about real
 * SEV firmware latency (LAUNCH_* on a PSP takes milliseconds to seconds).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const STEPS = ['firmware', 'certificates', 'chain', 'session', 'initialize', 'measurement', 'verify', 'secret', 'inject'] as const;

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** RSS of a process and all its descendants (the wrapper's sh → node chain). */
function treeRssKb(pid: number): number {
  let total = rssKb(pid);
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      const kids = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      for (const k of kids ? kids.split(/\s+/) : []) total += treeRssKb(Number(k));
    }
  } catch {
    /* gone */
  }
  return total;
}

async function outer(): Promise<number> {
  // Compiled wrappers (dist/) start much faster than TypeScript ones: use them when built.
  const compiled = fs.existsSync(new URL('../dist/sim/session.js', import.meta.url));
  const { startSim } = (
    compiled ? await import(new URL('../dist/sim/session.js', import.meta.url).href) : await import('../lib/sim/session.js')
  ) as typeof import('../lib/sim/session.js');
  process.stdout.write(
    `simulator QEMU wrapper: ${compiled ? 'compiled dist/ JavaScript' : 'TypeScript via tsx (run `npm run build:ts` for lighter wrappers)'}\n`,
  );
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-crn-'));
  const sim = await startSim({ stateDir: path.join(tmp, 'sim') });
  try {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!], {
      stdio: 'inherit',
      env: { ...sim.env, SEVKIT_BENCH_DIR: tmp, SEVKIT_REAL_QEMU: 'none' },
    });
    return await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
  } finally {
    await sim.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function inner(): Promise<number> {
  const dir = process.env.SEVKIT_BENCH_DIR!;
  const { startCrnServer, platformCertificateSource, SupervisorLauncher } = await import('../lib/crn/index.js');
  const { EthWallet } = await import('../lib/aleph/index.js');
  const { makeDemoFirmware } = await import('../lib/demo/demo.js');
  const { Supervisor } = await import('../lib/vm/index.js');
  const { CrnClient, launchOnCrn } = await import('../lib/owner/index.js');
  const { encodeCaChain } = await import('../lib/certs/index.js');
  const { simulatorCaChain } = await import('../lib/sim/ca-chain.js');

  const ns = (process.env.BENCH_N ?? '1,10,100')
    .split(',')
    .map(Number)
    .filter((n) => n > 0);
  const seq = Number(process.env.BENCH_SEQ ?? '5');
  const slots = Number(process.env.BENCH_SLOTS ?? '4');
  const fw = makeDemoFirmware(dir);
  const firmware = fs.readFileSync(fw.path);
  const ca = encodeCaChain(simulatorCaChain(process.env.SEVKIT_SIM_STATE)!);
  const token = crypto.randomBytes(16).toString('hex');
  // The CRN's own time per request (from its request log), apart from client-side queueing.
  const serverLog: string[] = [];
  const serverTimes = (): string => {
    const by = new Map<string, number[]>();
    for (const l of serverLog.splice(0)) {
      const m = /^(GET|POST) (\S+) (\d+) ([\d.]+)ms$/.exec(l);
      if (!m) continue;
      const ep = m[2]!.replace(/\/control\/machine\/[0-9a-f]{64}\/confidential\//, '') + (m[3] === '200' ? '' : ` ${m[3]}`);
      by.set(ep, [...(by.get(ep) ?? []), Number(m[4])]);
    }
    return [...by.entries()].map(([k, v]) => `${k} ×${v.length} ${pct(v, 50).toFixed(1)}/${pct(v, 99).toFixed(1)}`).join(', ');
  };
  const supervisor = new Supervisor({
    cpuidFile: process.env.SEVKIT_CPUID,
    runRoot: path.join(dir, 'vms'),
    maxConcurrentLaunches: slots,
    launchTimeoutMs: 300_000,
    stopTimeoutMs: 5_000,
  });
  const srv = await startCrnServer({
    host: '127.0.0.1',
    port: 0,
    domain: '127.0.0.1',
    certs: await platformCertificateSource({ testCa: simulatorCaChain(process.env.SEVKIT_SIM_STATE) }),
    launcher: new SupervisorLauncher(supervisor, { kind: 'vm-less' }),
    runDir: path.join(dir, 'crn'),
    allocationToken: token,
    platformKind: 'simulated',
    maxVms: 1000,
    log: (l: string) => {
      serverLog.push(l);
      if (process.env.BENCH_LOG) process.stderr.write(`${(performance.now() / 1000).toFixed(3)} ${l}\n`);
    },
  });
  const owner = EthWallet.generate();
  const allocator = new CrnClient({ url: srv.url, timeoutMs: 300_000 });

  // Allocation is the scheduler's job, done before the owners start (not timed).
  async function allocate(): Promise<string> {
    const ref = crypto.randomBytes(32).toString('hex');
    await allocator.allocate(token, { ref, owner: owner.address, firmware: fw.path, policy: 1, vcpus: 1, memory_mb: 256 });
    return ref;
  }

  async function one(ref: string): Promise<Record<string, number>> {
    const t0 = performance.now();
    const r = await launchOnCrn({
      client: new CrnClient({ url: srv.url, wallet: owner, timeoutMs: 300_000 }),
      ref,
      firmware,
      policy: 1,
      secret: Buffer.from('bench-disk-password'),
      ca,
      measurementTimeoutMs: 300_000,
      pollIntervalMs: 50,
    });
    return { ...r.timings, total: performance.now() - t0 };
  }

  const print = (s: string) => process.stdout.write(`${s}\n`);
  print('sevkit CRN benchmark — SIMULATED SEV platform, VM-less QEMU wrapper (one node process per VM), loopback HTTP');
  print(`host: ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}, node ${process.version}; supervisor launch slots: ${slots}`);

  // 1. Sequential launches: what one owner sees, step by step.
  const seqRuns: Record<string, number>[] = [];
  for (let i = 0; i < seq; i++) {
    seqRuns.push(await one(await allocate()));
    await supervisor.stopAll();
  }
  serverLog.length = 0;
  print(`\n1) one owner, ${seq} sequential launches (median ms per step):`);
  for (const s of [...STEPS, 'total'] as const)
    print(
      `   ${s.padEnd(13)} ${pct(
        seqRuns.map((r) => r[s]!),
        50,
      )
        .toFixed(1)
        .padStart(9)}`,
    );

  // 2. Concurrency.
  print('\n2) N concurrent launches on one CRN:');
  print(
    `   ${'N'.padStart(4)} ${'ok'.padStart(4)} ${'wall ms'.padStart(9)} ${'total p50'.padStart(10)} ${'total p99'.padStart(10)} ${'stall ms'.padStart(9)} ${'RSS/VM MiB'.padStart(11)} ${'CRN ΔRSS MiB'.padStart(13)}`,
  );
  const details: string[] = [];
  for (const n of ns) {
    const h = monitorEventLoopDelay({ resolution: 5 });
    const refs: string[] = [];
    for (let i = 0; i < n; i++) refs.push(await allocate());
    serverLog.length = 0;
    const rss0 = process.memoryUsage().rss;
    h.enable();
    const t0 = performance.now();
    const results = await Promise.allSettled(refs.map((ref) => one(ref)));
    const wall = performance.now() - t0;
    h.disable();
    const ok = results.filter((r): r is PromiseFulfilledResult<Record<string, number>> => r.status === 'fulfilled').map((r) => r.value);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    const vmKb = supervisor.list().reduce((a, vm) => a + (vm.pid ? treeRssKb(vm.pid) : 0), 0);
    const crnDelta = (process.memoryUsage().rss - rss0) / 2 ** 20;
    const perVm = (vmKb / 1024 + Math.max(0, crnDelta)) / Math.max(1, supervisor.list().length);
    print(
      `   ${String(n).padStart(4)} ${String(ok.length).padStart(4)} ${wall.toFixed(0).padStart(9)} ${pct(
        ok.map((r) => r.total!),
        50,
      )
        .toFixed(0)
        .padStart(10)} ${pct(
        ok.map((r) => r.total!),
        99,
      )
        .toFixed(0)
        .padStart(10)} ${(h.max / 1e6).toFixed(1).padStart(9)} ${perVm.toFixed(1).padStart(11)} ${crnDelta.toFixed(1).padStart(13)}`,
    );
    details.push(`   N=${n} CRN handler p50/p99 ms: ${serverTimes()}`);
    details.push(
      `   N=${n}: ${STEPS.map(
        (s) =>
          `${s} ${pct(
            ok.map((r) => r[s]!),
            50,
          ).toFixed(1)}/${pct(
            ok.map((r) => r[s]!),
            99,
          ).toFixed(1)}`,
      ).join(', ')}`,
    );
    for (const f of failed.slice(0, 3)) details.push(`   N=${n} FAILED: ${(f.reason as Error).message}`);
    await supervisor.stopAll();
  }
  print("\n   per step p50/p99 ms (client-visible), and the CRN handler's own time per endpoint:");
  for (const d of details) print(d);
  print("\n   Owners and the CRN share this process and the host's CPUs with one wrapper process per VM: client-visible");
  print('   step times at high N are mostly queueing for CPU (owner crypto, wrapper start-up), not CRN handler time.');
  print('   RSS/VM = (RSS of the VM-less wrapper processes + CRN process growth) / VMs alive; stall = max event-loop delay of the CRN+owner process.');
  await srv.close();
  await supervisor.stopAll();
  return 0;
}

const code = process.env.SEVKIT_BENCH_DIR ? await inner() : await outer();
process.exitCode = code;
