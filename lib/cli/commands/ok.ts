import type { Command } from 'commander';
import { sevkitEnv } from '../env.js';
import { action, EXIT_FAIL, EXIT_OK, printJson, useColor } from '../run.js';
import { UsageError } from '../../errors.js';

const GENERATIONS = ['sev', 'es', 'snp'] as const;

/**
 * `sevkit ok [sev|es|snp]`: sevctl's host check, same tree, lines and exit code
 * (0 all passed, 1 a test failed, 2 usage). `-q` prints nothing. The host probes
 * honour SEVKIT_HOST_ROOT and SEVKIT_CPUID (simulated host).
 */
export function register(program: Command): void {
  program
    .command('ok')
    .description('check whether this host can run SEV guests, like sevctl ok (sev | es | snp; default: detect from CPUID)')
    .argument('[generation]', 'sev, es or snp')
    .option('-q, --quiet', 'print nothing; report through the exit code only')
    .option('--json', 'print the tree as JSON: {generation, detected, failed, lines: [{level, status, name, message}]}')
    .action(
      action(async (generation: string | undefined, opts: { quiet?: boolean; json?: boolean }, cmd: Command) => {
        if (generation !== undefined && !(GENERATIONS as readonly string[]).includes(generation)) {
          throw new UsageError(`unknown generation '${generation}' (expected sev, es or snp)`);
        }
        const quiet = Boolean(opts.quiet ?? (cmd.optsWithGlobals() as { quiet?: boolean }).quiet);
        const [{ probeOkFacts }, { runOk, formatOkLine, OK_FAILURE_MESSAGE }] = await Promise.all([
          import('../../host/gather.js'),
          import('../../host/okTree.js'),
        ]);
        const env = sevkitEnv();
        const facts = await probeOkFacts({ ...(env.hostRoot ? { root: env.hostRoot } : {}), ...(env.cpuidFile ? { cpuidFile: env.cpuidFile } : {}) });
        const report = runOk(facts, generation as (typeof GENERATIONS)[number] | undefined);
        if (opts.json && !quiet) {
          printJson({
            generation: report.generation,
            detected: report.detected,
            failed: report.failed,
            lines: report.lines.map(({ messageColor: _c, ...l }) => l),
          });
        } else if (!quiet) {
          const color = useColor();
          process.stdout.write(report.lines.map((l) => `${formatOkLine(l, color)}\n`).join(''));
          if (report.failed) process.stderr.write(`sevkit: ${OK_FAILURE_MESSAGE}\n`);
        }
        return report.failed ? EXIT_FAIL : EXIT_OK;
      }),
    );
}
