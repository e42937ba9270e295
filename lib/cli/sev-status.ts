#!/usr/bin/env node
/**
 * `sev-status`: is this host ready for confidential VMs, and if not, why.
 *
 * Start-up is kept small on purpose (it runs from systemd timers and monitoring):
 * no commander, util.parseArgs only, and the probes / the addon are imported
 * after the arguments are known. No network.
 *
 * Exit: 0 ready (for the --require guest type, default sev), 1 not ready, 2 usage error.
 */
import { parseArgs } from 'node:util';
import type { QemuFact } from '../host/probes.js';
import { probeQemuCached } from '../host/qemuCache.js';
import { sevkitEnv } from './env.js';
// ./output.ts, not ./run.ts: run.ts pulls in commander, which alone costs about a quarter
// of a bare `node -e 0` at start-up.
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, formatError, useColor } from './output.js';

function reportError(e: unknown): number {
  process.stderr.write(`sev-status: ${formatError(e).split('\n')[0]}\n`);
  if (process.env.SEVKIT_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return EXIT_FAIL;
}

const HELP = `Usage: sev-status [options]

Is this host ready to run AMD SEV confidential VMs, and if not, why?
Checks the CPU (CPUID, SYSCFG MSR), kvm_amd, /dev/sev and /dev/kvm access, the
SEV firmware (PLATFORM_STATUS, SNP_PLATFORM_STATUS), QEMU, OVMF and the memlock
limit, then prints one verdict per guest type with a fix for every failure.

Options:
  --json                 machine-readable report (schema sevkit.sev-status/v1)
  -q, --quiet            print nothing; exit code only
  --require TYPE         guest type the exit code reports on: sev (default), sev-es, sev-snp
  --device PATH          SEV device for the firmware view (default SEVKIT_DEVICE or /dev/sev)
  --root DIR             host root for /sys, /proc, /dev reads (default SEVKIT_HOST_ROOT)
  --cpuid FILE           CPUID JSON instead of the CPU's (default SEVKIT_CPUID)
  --no-firmware          skip the firmware view (no /dev/sev commands)
  --no-qemu              skip the QEMU check
  --no-cache             always run qemu --version (default: remember it per QEMU binary
                         in $XDG_CACHE_HOME/sevkit/qemu-version.json)
  --timeout MS           per firmware command and for qemu --version (default 10000)
  -h, --help             show this help
  -V, --version          show the version

Exit status: 0 ready, 1 not ready, 2 usage error.
Colours only on a terminal; NO_COLOR disables them.
`;

const REQUIRE = ['sev', 'sev-es', 'sev-snp'] as const;

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  function parse(args: string[]) {
    return parseArgs({
      args,
      allowPositionals: false,
      strict: true,
      options: {
        json: { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
        require: { type: 'string' },
        device: { type: 'string' },
        root: { type: 'string' },
        cpuid: { type: 'string' },
        'no-firmware': { type: 'boolean' },
        'no-qemu': { type: 'boolean' },
        timeout: { type: 'string' },
        'no-cache': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  }
  try {
    values = parse(argv).values;
  } catch (e) {
    process.stderr.write(`sev-status: ${(e as Error).message.split('\n')[0]}\nTry 'sev-status --help'.\n`);
    return EXIT_USAGE;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return EXIT_OK;
  }
  if (values.version) {
    const { createRequire } = await import('node:module');
    // lib/cli and dist/cli both sit two levels below the package root.
    const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return EXIT_OK;
  }
  const required = values.require ?? 'sev';
  if (!(REQUIRE as readonly string[]).includes(required)) {
    process.stderr.write(`sev-status: --require must be sev, sev-es or sev-snp, got '${required}'\n`);
    return EXIT_USAGE;
  }
  const timeoutMs = values.timeout === undefined ? 10_000 : /^[0-9]+$/.test(values.timeout) ? Number(values.timeout) : Number.NaN;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    process.stderr.write(`sev-status: --timeout must be a positive number of milliseconds, got '${values.timeout}'\n`);
    return EXIT_USAGE;
  }
  if (values.json && values.quiet) {
    process.stderr.write('sev-status: --json and --quiet exclude each other\n');
    return EXIT_USAGE;
  }
  try {
    // `qemu --version` is the slowest probe (a large dynamically linked binary): start it
    // first so it overlaps with loading the probes and the addon, and reuse its answer
    // while the binary is unchanged.
    const env = sevkitEnv();
    const qemuCmd = env.qemu ?? 'qemu-system-x86_64';
    const qemuFact: Promise<QemuFact> | null = values['no-qemu']
      ? null
      : probeQemuCached(qemuCmd, { timeoutMs, cacheFile: values['no-cache'] ? null : env.qemuVersionCache, searchPath: process.env.PATH ?? '' });
    const [{ probeHost }, { buildReport }] = await Promise.all([import('../host/gather.js'), import('../host/status.js')]);
    const facts = await probeHost({
      qemuFact,
      timeoutMs,
      root: values.root ?? env.hostRoot,
      cpuidFile: values.cpuid ?? env.cpuidFile,
      device: values.device ?? env.device,
      ...(env.ovmfDirs ? { ovmfDirs: env.ovmfDirs } : {}),
      platform: values['no-firmware'] ? null : undefined,
    });
    const report = buildReport(facts, required as (typeof REQUIRE)[number]);
    firmwareTimedOut = facts.firmware?.error?.code === 'ETIMEDOUT' || facts.firmware?.snpError?.code === 'ETIMEDOUT';
    if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else if (!values.quiet) {
      const { renderStatus } = await import('../host/render.js');
      process.stdout.write(renderStatus(report, useColor()));
    }
    return report.ready ? EXIT_OK : EXIT_FAIL;
  } catch (e) {
    return values.quiet ? EXIT_FAIL : reportError(e);
  }
}

/** A PSP that never answers leaves an addon worker pending; do not let it hold the process. */
let firmwareTimedOut = false;

const code = await main();
process.exitCode = code;
// stdout/stderr are synchronous for files, pipes and TTYs on Linux, so nothing written is lost.
if (firmwareTimedOut) process.exit(code);
