/**
 * `sevkit`'s commander program: a drop-in for sevctl's commands, and more. This
 * file only wires commander to the command modules; each module under ./commands
 * registers its own subcommands and imports the library lazily so that start-up
 * stays fast. ./sevkit.ts (the entry point) loads it for everything but the
 * plain `show` read-outs.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_USAGE, setProgramName } from './run.js';
import { register as registerPlatform } from './commands/platform.js';
import { register as registerCerts } from './commands/certs.js';
import { register as registerLaunch } from './commands/launch.js';
import { register as registerQmp } from './commands/qmp.js';
import { register as registerCrn } from './commands/crn.js';
import { register as registerSim } from './commands/sim.js';
import { register as registerOk } from './commands/ok.js';
import { register as registerOwner } from './commands/owner.js';
import { register as registerSnp } from './commands/snp.js';
import { register as registerGuest } from './commands/guest.js';
import { register as registerAttest } from './commands/attest.js';

/** The whole command tree. */
export function buildProgram(): Command {
  const program = new Command('sevkit')
    .description('AMD SEV toolkit: platform commands, certificate chains, launch sessions, measurements and secrets')
    .version(process.env.npm_package_version ?? '0.1.0', '-V, --version')
    // sevctl takes -q before the subcommand (`sevctl -q ok`); positional options keep a
    // subcommand's own -q/--quiet (sim, crn serve) from being swallowed by this one.
    .option('-q, --quiet', 'print nothing where a command supports it; the exit code tells')
    .enablePositionalOptions()
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'sevkit: ')) });
  registerPlatform(program);
  registerCerts(program);
  registerLaunch(program);
  registerQmp(program);
  registerCrn(program);
  registerOwner(program);
  registerSnp(program);
  registerGuest(program);
  registerAttest(program);
  registerSim(program);
  registerOk(program);
  // Subcommands inherit exitOverride and the output configuration.
  for (const c of program.commands) c.exitOverride().configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'sevkit: ')) });
  return program;
}

/** Parses `argv` and runs the command; sets process.exitCode. */
export async function main(argv: string[] = process.argv): Promise<void> {
  setProgramName('sevkit');
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit 0; everything else commander rejects is a usage error.
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    throw e;
  }
}
