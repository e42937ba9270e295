/**
 * `sevkit sim`: the software SEV platform (a TEST platform; it proves nothing
 * about real hardware).
 *
 *   sevkit sim [--state DIR] [--seed N] [--kernel pre-6.16|6.16] [--qemu-version M.m.u] [--quiet] -- CMD [ARGS...]
 *       Starts the simulator on DIR (default ~/.cache/sevkit/sim), runs CMD with
 *       /dev/sev routed to it (LD_PRELOAD shim), the fake EPYC 9004 host seams
 *       (SEVKIT_HOST_ROOT, SEVKIT_CPUID) and the simulator's qemu-system-x86_64
 *       first on PATH; exits with CMD's exit code (128+N when killed by signal N).
 *   sevkit sim [--state DIR] [--seed N] ca OUT
 *       Writes the simulator's ASK‖ARK (sevctl --ca layout) to OUT.
 *
 * Exit codes: CMD's own; 127 when CMD cannot be run; 1 simulator failure; 2 usage.
 */
import type { Command } from 'commander';
import path from 'node:path';
import { sevkitEnv, type SevkitEnv } from '../env.js';
import { action, parseIntArg, writeOutputFile } from '../run.js';

/** The simulator's RSA TEST roots take seconds to derive, so they are cached per seed under sevkit's cache dir. */
const rsaCache = (env: SevkitEnv): string => path.join(env.cacheDir, 'sim-rsa');

interface SimOpts {
  state?: string;
  seed?: string;
  quiet?: boolean;
  kernel?: string;
  qemuVersion?: string;
}

function seedOf(o: SimOpts): string | undefined {
  return o.seed === undefined ? undefined : String(parseIntArg(o.seed, '--seed'));
}

async function writeCa(o: SimOpts, out: string): Promise<void> {
  const { SimPlatform } = await import('../../sim/platform.js');
  const env = sevkitEnv();
  const seed = seedOf(o);
  // Inside `sevkit sim -- ...` the CA is the running simulator's, not the default state's.
  const p = SimPlatform.open(o.state ?? env.simState ?? env.defaultSimState, { rsaCacheDir: rsaCache(env), ...(seed === undefined ? {} : { seed }) });
  await writeOutputFile(out, p.caChain(), { what: 'the ASK‖ARK chain' });
}

/**
 * The demo's firmware (the installed OVMF, or a synthetic one, with a launch-secret area declared) for a
 * launch on the simulator: Debian's OVMF declares none, and the owner refuses such a firmware.
 */
async function writeDemoFirmware(out: string): Promise<void> {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { makeDemoFirmware } = await import('../../demo/demo.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sevkit-fw-'));
  try {
    const fw = makeDemoFirmware(dir);
    await writeOutputFile(out, fs.readFileSync(fw.path), { what: 'the firmware' });
    process.stderr.write(
      `sevkit sim: wrote ${out === '-' ? 'stdout' : out}: ${fw.source} with a launch-secret area (for the simulator; on hardware use an AmdSev OVMF build)\n`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function runUnderSim(o: SimOpts, argv: string[]): Promise<number> {
  const { startSim } = await import('../../sim/session.js');
  const { SIM_BANNER } = await import('../../sim/env.js');
  const { spawn } = await import('node:child_process');
  const os = await import('node:os');
  const { socketIsLive } = await import('../../sim/daemon.js');
  const seed = seedOf(o);
  // Already on a simulated platform (nested `sevkit sim`, the test suite) and no
  // state asked for: run CMD on that one instead of starting a second.
  const env = sevkitEnv();
  const current = env.simSocket;
  if (o.kernel !== undefined && o.kernel !== 'pre-6.16' && o.kernel !== '6.16') {
    const { UsageError } = await import('../../errors.js');
    throw new UsageError(`--kernel must be pre-6.16 or 6.16, got '${o.kernel}'`);
  }
  if (o.qemuVersion !== undefined && !/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(o.qemuVersion)) {
    const { UsageError } = await import('../../errors.js');
    throw new UsageError(`--qemu-version must be M.m.u (e.g. 9.2.0), got '${o.qemuVersion}'`);
  }
  const reuse =
    o.state === undefined && seed === undefined && o.kernel === undefined && current !== undefined && current !== '' && (await socketIsLive(current));
  const sim = reuse
    ? { stateDir: env.simState ?? '?', env: process.env, close: async () => {} }
    : await startSim({
        stateDir: o.state ?? env.defaultSimState,
        rsaCacheDir: rsaCache(env),
        ...(seed !== undefined ? { seed } : {}),
        ...(o.kernel !== undefined ? { kernel: o.kernel as 'pre-6.16' | '6.16' } : {}),
      });
  if (!o.quiet) process.stderr.write(`${SIM_BANNER} (state ${sim.stateDir})\n`);
  // The wrapper plays this QEMU's SEV/SNP part (>= 9.1: sev-snp-guest) while the real QEMU (Debian's 7.2) runs the VM.
  const childEnv = o.qemuVersion !== undefined ? { ...sim.env, SEVKIT_SIM_QEMU_VERSION: o.qemuVersion } : sim.env;
  if (o.qemuVersion !== undefined && !o.quiet)
    process.stderr.write(`sevkit sim: the QEMU wrapper plays QEMU ${o.qemuVersion}'s SEV/SEV-SNP part (SIMULATED); the VM runs on the real QEMU\n`);
  const [cmd, ...args] = argv;
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  const handlers = new Map<NodeJS.Signals, () => void>();
  try {
    return await new Promise<number>((resolve) => {
      const child = spawn(cmd!, args, { stdio: 'inherit', env: childEnv });
      for (const s of signals) {
        const h = () => {
          child.kill(s);
        };
        handlers.set(s, h);
        process.on(s, h);
      }
      child.on('error', (e: NodeJS.ErrnoException) => {
        process.stderr.write(`sevkit: ${cmd}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`);
        resolve(127);
      });
      child.on('exit', (code, signal) => {
        if (signal) resolve(128 + (os.constants.signals[signal] ?? 0));
        else resolve(code ?? 1);
      });
    });
  } finally {
    // The handlers stay until the simulator is closed: a signal during the close (a second Ctrl-C) would
    // otherwise kill this process with the daemon's socket left behind.
    for (const [s, h] of handlers) {
      process.off(s, h);
      process.on(s, ignoreDuringClose);
    }
    await sim.close();
    for (const s of signals) process.off(s, ignoreDuringClose);
  }
}

function ignoreDuringClose(): void {
  /* the command has exited; the simulator is closing */
}

/** Registers the `sim` commands on the sevkit program. */
export function register(program: Command): void {
  program
    .command('sim')
    .description('run a command against the software SEV platform (a TEST platform: proves nothing about real hardware), or `ca OUT` to write its ASK‖ARK')
    .usage('[--state DIR] [--seed N] [--kernel pre-6.16|6.16] [--qemu-version M.m.u] [--quiet] -- CMD [ARGS...]  |  [--state DIR] ca OUT')
    .option('--state <dir>', 'state directory (default: ~/.cache/sevkit/sim)')
    .option('--seed <n>', 'seed for a new state directory (decimal or 0x-hex; default 0)')
    .option('-q, --quiet', 'do not print the simulated-platform notice')
    .option('--kernel <flavour>', "driver behaviour: 'pre-6.16' (implicit INIT stays, default) or '6.16' (implicit INIT + SHUTDOWN)")
    .option('--qemu-version <M.m.u>', "the QEMU version the wrapper plays (>= 9.1 accepts sev-snp-guest; default: the real QEMU's)")
    .argument('[command...]', 'CMD [ARGS...] after --, or: ca OUT, or: firmware OUT (the demo OVMF, with a launch-secret area)')
    .allowUnknownOption()
    .action(
      action(async (argv: string[], o: SimOpts) => {
        const { UsageError } = await import('../../errors.js');
        const dashdash = process.argv.indexOf('--');
        const simIdx = process.argv.indexOf('sim');
        const explicitCmd = dashdash >= 0 && dashdash > simIdx;
        if (!explicitCmd && argv[0] === 'ca') {
          if (argv.length !== 2) throw new UsageError('usage: sevkit sim [--state DIR] ca OUT');
          await writeCa(o, argv[1]!);
          return 0;
        }
        if (!explicitCmd && argv[0] === 'firmware') {
          if (argv.length !== 2) throw new UsageError('usage: sevkit sim firmware OUT');
          await writeDemoFirmware(argv[1]!);
          return 0;
        }
        if (argv.length === 0)
          throw new UsageError('usage: sevkit sim [--state DIR] [--seed N] -- CMD [ARGS...]  (or: sevkit sim ca OUT, sevkit sim firmware OUT)');
        return runUnderSim(o, argv);
      }),
    );
}
