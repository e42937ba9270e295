/**
 * Everything a child process needs to run against the simulated platform:
 * the LD_PRELOAD shim, the daemon socket, the fake host root and CPUID file
 * (host test seams) and a `qemu-system-x86_64` launcher for the simulator's
 * QEMU wrapper.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildHint, PACKAGE_ROOT } from '../binding.js';
import { SevkitError } from '../errors.js';
import { writeHostFixture, type SimProduct } from './host-fixture.js';
import { writeFileAtomic } from '../util/fs.js';

/** The simulator's environment cannot be prepared, e.g. the LD_PRELOAD shim is not built (ERR_SIM_ENV). */
export class SimEnvError extends SevkitError {
  constructor(message: string) {
    super('ERR_SIM_ENV', message);
  }
}

export const SHIM_FILE = 'sevkit_sim_preload.so';

/** Candidate shim locations, in search order. */
export function shimCandidates(root = PACKAGE_ROOT): string[] {
  const list: string[] = [];
  if (process.env.SEVKIT_SIM_SHIM) list.push(path.resolve(process.env.SEVKIT_SIM_SHIM));
  list.push(
    path.join(root, 'build', 'Release', SHIM_FILE),
    path.join(root, 'build', 'Debug', SHIM_FILE),
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, SHIM_FILE),
  );
  return list;
}

/** Absolute path of the LD_PRELOAD shim; throws a one-line error saying how to build it (for a consumer: `npm rebuild sevkit`). */
export function findShim(root = PACKAGE_ROOT): string {
  for (const c of shimCandidates(root)) if (fs.existsSync(c)) return c;
  throw new SimEnvError(`the simulator's LD_PRELOAD shim (${SHIM_FILE}) is not built; ${buildHint(root)} (looked in ${shimCandidates(root).join(', ')})`);
}

/**
 * The simulated host prepareSimHost wrote: its fake root, CPUID file, the bin directory with the QEMU wrapper,
 * and the QEMU command.
 */
export interface SimHost {
  /** SEVKIT_HOST_ROOT */
  hostRoot: string;
  /** SEVKIT_CPUID */
  cpuidFile: string;
  /** dir put first on PATH; holds qemu-system-x86_64 */
  binDir: string;
  /** SEVKIT_QEMU */
  qemu: string;
}

/** How the QEMU launcher runs the wrapper: compiled JS when present, else the TS source through tsx. */
function qemuWrapperCommand(root: string): string[] | undefined {
  const js = path.join(root, 'dist', 'sim', 'qemu', 'main.js');
  const ts = path.join(root, 'lib', 'sim', 'qemu', 'main.ts');
  const runningFromTs = import.meta.url.endsWith('.ts');
  if (!runningFromTs && fs.existsSync(js)) return [process.execPath, js];
  const loader = path.join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs');
  if (fs.existsSync(ts) && fs.existsSync(loader)) return [process.execPath, '--import', `file://${loader}`, ts];
  if (fs.existsSync(js)) return [process.execPath, js];
  return undefined;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Writes the simulated EPYC 9004 host (fake /sys, /proc, /dev and CPUID JSON,
 * the layout lib/host reads) and the QEMU launcher under `<state>/host`.
 */
export function prepareSimHost(stateDir: string, kernel: 'pre-6.16' | '6.16' = 'pre-6.16', product: SimProduct = 'genoa'): SimHost {
  const hostDir = path.join(stateDir, 'host');
  // The reported kernel release matches the driver behaviour being modelled.
  const osrelease = kernel === '6.16' ? '6.16.0-sim' : '6.12.0-sim';
  const fixture = writeHostFixture(hostDir, { cpu: product, qemuVersion: null, ovmf: 'none', osrelease });
  const binDir = path.join(stateDir, 'bin');
  fs.mkdirSync(binDir, { recursive: true });
  const qemu = path.join(binDir, 'qemu-system-x86_64');
  const cmd = qemuWrapperCommand(PACKAGE_ROOT);
  const script = cmd
    ? `#!/bin/sh\n# sevkit SIMULATED QEMU: plays QEMU's SEV part against the software SEV platform.\n# TEST platform; proves nothing about real hardware.\nexec ${cmd.map(shQuote).join(' ')} "$@"\n`
    : `#!/bin/sh\necho "sevkit sim: the simulator's QEMU wrapper (lib/sim/qemu/main) is not available in this install" >&2\nexit 1\n`;
  writeFileAtomic(qemu, script, 0o755);
  return { hostRoot: fixture.root, cpuidFile: fixture.cpuidFile, binDir, qemu };
}

export interface SimEnvOptions {
  socketPath: string;
  stateDir: string;
  shim: string;
  host: SimHost;
  base?: NodeJS.ProcessEnv;
}

/** The environment for a process that should see the simulated platform (common.md contract). */
export function simEnv(o: SimEnvOptions): NodeJS.ProcessEnv {
  const base = o.base ?? process.env;
  const preload = (base.LD_PRELOAD ?? '').split(/[:\s]+/).filter((p) => p && p !== o.shim);
  return {
    ...base,
    LD_PRELOAD: [o.shim, ...preload].join(':'),
    SEVKIT_SIM_SOCKET: o.socketPath,
    SEVKIT_SIM_STATE: o.stateDir,
    SEVKIT_HOST_ROOT: o.host.hostRoot,
    SEVKIT_CPUID: o.host.cpuidFile,
    SEVKIT_QEMU: o.host.qemu,
    PATH: [o.host.binDir, base.PATH ?? ''].filter(Boolean).join(path.delimiter),
  };
}

/** The one line that says what this platform is. */
export const SIM_BANNER = 'sevkit sim: SIMULATED SEV platform (software model with TEST ARK/ASK roots); it proves nothing about real AMD hardware';
