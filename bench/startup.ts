/**
 * Start-up of the built CLIs (dist/, what users run) under the simulator against a
 * bare `node -e 0`, measured side by side in one run (interleaved, median of N):
 *
 *   sevkit show version   goal <= 1.40x node -e 0
 *   sev-status -q         goal <= 1.50x node -e 0
 *
 * Both talk to the simulated /dev/sev (LD_PRELOAD shim → simulator daemon), so
 * `node -e 0` with the same environment (the shim loaded, nothing asked) is shown
 * too: the part of the ratio that is the preload itself.
 *
 *   npm run build:ts && node --import tsx bench/startup.ts [N]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSim } from '../lib/sim/session.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SEVKIT = path.join(ROOT, 'dist/cli/sevkit.js');
const STATUS = path.join(ROOT, 'dist/cli/sev-status.js');
if (!fs.existsSync(SEVKIT) || !fs.existsSync(STATUS)) {
  console.error('bench: dist/cli is missing; run `npm run build:ts` first');
  process.exit(1);
}
const N = Number(process.argv[2] ?? 21);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-startup-'));
const sim = await startSim({ stateDir: path.join(tmp, 'sim') });
const bareEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: path.join(tmp, 'cache') };
for (const k of ['LD_PRELOAD', 'SEVKIT_SIM_SOCKET', 'SEVKIT_SIM_STATE', 'SEVKIT_HOST_ROOT', 'SEVKIT_CPUID', 'SEVKIT_QEMU', 'NODE_OPTIONS']) delete bareEnv[k];
const simEnv: NodeJS.ProcessEnv = { ...sim.env, NO_COLOR: '1', XDG_CACHE_HOME: path.join(tmp, 'cache') };
delete simEnv.NODE_OPTIONS;

interface Case {
  name: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  goal?: number;
}
const cases: Case[] = [
  { name: 'node -e 0', args: ['-e', '0'], env: bareEnv },
  { name: 'node -e 0 (simulator preload)', args: ['-e', '0'], env: simEnv },
  { name: 'sevkit show version (simulator)', args: [SEVKIT, 'show', 'version'], env: simEnv, goal: 1.4 },
  { name: 'sev-status -q (simulator)', args: [STATUS, '-q'], env: simEnv, goal: 1.5 },
  // The same without the firmware commands: what the simulated /dev/sev round trips (the shim's
  // connection to the daemon in this process) add, where hardware answers from the kernel.
  { name: 'sev-status -q --no-firmware (sim.)', args: [STATUS, '-q', '--no-firmware'], env: simEnv },
];

/** One run. Asynchronous: the simulator daemon answering /dev/sev lives in this process. */
function once(c: Case): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, c.args, { env: c.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (c.goal && code !== 0) reject(new Error(`${c.name} exited ${code}: ${err.trim()}`));
      else resolve(ms);
    });
  });
}

const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
try {
  for (const c of cases) await once(c); // warm the page cache (and sev-status's QEMU version cache)
  for (let i = 0; i < N; i++) for (const c of cases) samples.get(c.name)!.push(await once(c));
} finally {
  await sim.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const min = (xs: number[]) => Math.min(...xs);
const base = median(samples.get('node -e 0')!);
const baseMin = min(samples.get('node -e 0')!);
console.log(`start-up, ${N} interleaved runs each (node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)})`);
console.log(`  ${'command'.padEnd(34)} ${'median'.padStart(9)} ${'ratio'.padStart(6)} ${'min'.padStart(9)} ${'ratio'.padStart(6)}`);
for (const c of cases) {
  const m = median(samples.get(c.name)!);
  const lo = min(samples.get(c.name)!);
  const goal = c.goal ? `  (goal <= ${c.goal.toFixed(2)}x: ${m / base <= c.goal ? 'met' : 'NOT met'})` : '';
  console.log(
    `  ${c.name.padEnd(34)} ${m.toFixed(1).padStart(6)} ms ${(m / base).toFixed(2).padStart(5)}x ${lo.toFixed(1).padStart(6)} ms ${(lo / baseMin).toFixed(2).padStart(5)}x${goal}`,
  );
}
