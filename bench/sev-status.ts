/**
 * Start-up cost of the built `sev-status` (dist/, what users run) against a bare
 * `node -e 0`, measured side by side in one run (interleaved, median of N).
 * Run: npm run build:ts && node --import tsx bench/sev-status.ts [N]
 *
 * Scenarios:
 *  - this host: whatever this machine has (real CPUID through the addon, real /dev/sev attempt,
 *    QEMU version (cached per binary after the first run; --no-cache runs `qemu --version` every
 *    time), OVMF files, dpkg status);
 *  - fixture host: the simulated EPYC 9004 layout from lib/sim/host-fixture.ts (CPUID file, fake
 *    root, a shell-script QEMU), firmware view off (no simulator daemon here);
 *  - sevkit ok on this host (commander-based CLI) for comparison.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeHostFixture } from '../lib/sim/host-fixture.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STATUS = path.join(ROOT, 'dist/cli/sev-status.js');
const SEVKIT = path.join(ROOT, 'dist/cli/sevkit.js');
if (!fs.existsSync(STATUS)) {
  console.error('bench: dist/cli/sev-status.js missing; run `npm run build:ts` first');
  process.exit(1);
}
const N = Number(process.argv[2] ?? 21);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-bench-'));
const fx = writeHostFixture(tmp);

// The bench itself may run under `sevkit sim`; measure plain processes.
// A private cache dir: the first (warm-up) run fills the QEMU version cache, as on a host where
// sev-status runs on a schedule; the --no-cache case shows the cold cost.
const cleanEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: path.join(tmp, 'cache') };
for (const k of ['LD_PRELOAD', 'SEVKIT_SIM_SOCKET', 'SEVKIT_SIM_STATE', 'SEVKIT_HOST_ROOT', 'SEVKIT_CPUID', 'SEVKIT_QEMU', 'SEVKIT_OVMF_DIRS'])
  delete cleanEnv[k];
const fixtureEnv: NodeJS.ProcessEnv = {
  ...cleanEnv,
  SEVKIT_HOST_ROOT: fx.root,
  SEVKIT_CPUID: fx.cpuidFile,
  SEVKIT_QEMU: fx.qemu,
  SEVKIT_OVMF_DIRS: fx.ovmfDirs.join(':'),
};

interface Case {
  name: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}
const cases: Case[] = [
  { name: 'node -e 0', args: ['-e', '0'], env: cleanEnv },
  { name: 'sev-status -q (this host)', args: [STATUS, '-q'], env: cleanEnv },
  { name: 'sev-status --json (this host)', args: [STATUS, '--json'], env: cleanEnv },
  { name: 'sev-status -q --no-cache (this host)', args: [STATUS, '-q', '--no-cache'], env: cleanEnv },
  { name: 'sev-status -q (fixture host, --no-firmware)', args: [STATUS, '-q', '--no-firmware'], env: fixtureEnv },
  { name: 'sevkit ok -q (this host)', args: [SEVKIT, 'ok', '-q'], env: cleanEnv },
];

function once(c: Case): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, c.args, { env: c.env, stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.error) throw r.error;
  return ms;
}

const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
for (const c of cases) once(c); // warm the page cache
for (let i = 0; i < N; i++) for (const c of cases) samples.get(c.name)!.push(once(c));
fs.rmSync(tmp, { recursive: true, force: true });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const min = (xs: number[]) => Math.min(...xs);
const base = median(samples.get('node -e 0')!);
const baseMin = min(samples.get('node -e 0')!);
// The minimum is the least disturbed by other load on the machine; both are printed.
console.log(`sev-status start-up, ${N} interleaved runs each (node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)})`);
console.log(`  ${'command'.padEnd(46)} ${'median'.padStart(9)} ${'ratio'.padStart(6)} ${'min'.padStart(9)} ${'ratio'.padStart(6)}`);
for (const c of cases) {
  const m = median(samples.get(c.name)!);
  const lo = min(samples.get(c.name)!);
  console.log(
    `  ${c.name.padEnd(46)} ${m.toFixed(1).padStart(6)} ms ${(m / base).toFixed(2).padStart(5)}x ${lo.toFixed(1).padStart(6)} ms ${(lo / baseMin).toFixed(2).padStart(5)}x`,
  );
}
