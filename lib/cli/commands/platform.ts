/**
 * Platform commands, drop-in for sevctl's: `show version|guests|identifier|flags`,
 * `export [--full] DEST`, `rotate`, `reset`. Output matches sevctl byte for
 * byte; `--json` gives the same data as JSON. Thin over lib/platform (and
 * lib/certs for the KDS CEK and the CA chain), imported lazily.
 *
 * The device is `--device PATH`, else $SEVKIT_DEVICE, else /dev/sev. Under
 * `sevkit sim -- ...` that device is the software SEV platform (a test
 * platform; nothing it does proves anything about real hardware).
 *
 * Exit codes:
 *   0  success
 *   1  device, firmware or certificate failure; one line on stderr naming the
 *      device path, the errno code and, for firmware failures, the SEV_RET_*
 *      status, e.g. `sevkit: /dev/sev: PDH_GEN failed: EIO, firmware status
 *      SEV_RET_INVALID_PLATFORM_STATE (0x01): Platform state is invalid`
 *   2  usage error (unknown subcommand, missing DEST, bad flag)
 */
import type { Command } from 'commander';
import { sevkitEnv } from '../env.js';
import { action, printJson, writeOutputFile } from '../run.js';
import { UsageError } from '../../errors.js';
import { platformFor, show, type DeviceOpts, type ShowWhat } from './show.js';

interface ExportOpts extends DeviceOpts {
  full?: boolean;
  json?: boolean;
  offline?: boolean;
}

/**
 * PDH‖PEK‖OCA‖CEK (8336 bytes) as sevctl writes it, with an ASK-signed CEK:
 * the firmware's own when it already verifies (the simulator's, whose CEK its
 * test ASK signs), else AMD KDS's. `--full` appends ASK‖ARK: the simulator's
 * test CA from $SEVKIT_SIM_STATE when that signs the CEK, else the built-in
 * AMD roots of the detected generation.
 */
async function exportChain(dest: string, o: ExportOpts): Promise<void> {
  const p = await platformFor(o);
  const certs = await import('../../certs/index.js');
  const env = sevkitEnv();
  const kds = { offline: Boolean(o.offline), cacheDir: env.kdsCacheDir };
  const testCa = (await import('../../sim/ca-chain.js')).simulatorCaChain(env.simState);
  let bytes: Buffer;
  let info: Record<string, unknown>;
  if (o.full) {
    const r = await certs.fullChainFor(p, { kds, ...(testCa ? { testCa } : {}) });
    bytes = r.bytes;
    info = { cekSource: r.cekSource, caSource: r.caSource, ...(r.generation ? { generation: r.generation } : {}) };
  } else {
    const r = await certs.platformSevChain(p, { kds, ...(testCa ? { testCa } : {}) });
    bytes = certs.encodeSevChain(r.sev);
    info = { cekSource: r.cekSource };
  }
  if (dest === '-' && o.json) throw new UsageError("DEST '-' and --json both write to stdout: give one");
  await writeOutputFile(dest, bytes, { what: 'the certificate chain' });
  if (o.json) printJson({ path: dest, bytes: bytes.length, full: Boolean(o.full), device: p.device, ...info });
}

export function register(program: Command): void {
  const deviceHelp = 'SEV device (default: $SEVKIT_DEVICE, else /dev/sev)';

  const showCmd = program.command('show').description('Display information about the SEV platform');
  const shows: [ShowWhat, string][] = [
    ['flags', 'Show the current platform flags (owned, es)'],
    ['guests', 'Show the current number of guests'],
    ['identifier', "Show the platform's chip identifier (upper-case hex)"],
    ['version', "Show the platform's firmware version (major.minor.build)"],
  ];
  for (const [what, desc] of shows) {
    showCmd
      .command(what)
      .description(desc)
      .option('--json', 'print JSON')
      .option('--device <path>', deviceHelp)
      .action(action((o: DeviceOpts & { json?: boolean }) => show(what, o)));
  }

  program
    .command('export')
    .description('Export the SEV certificate chain (PDH‖PEK‖OCA‖CEK), or with --full the entire chain (+ ASK‖ARK)')
    .argument('<destination>', "certificate chain output file path ('-': stdout)")
    .option('-f, --full', 'export the entire certificate chain (SEV + CA chain)')
    .option('--offline', 'never contact AMD KDS for the CEK (use the KDS cache only)')
    .option('--json', 'print a JSON summary of what was written')
    .option('--device <path>', deviceHelp)
    .action(action((dest: string, o: ExportOpts) => exportChain(dest, o)));

  program
    .command('rotate')
    .description('Rotate the Platform Diffie-Hellman key (PDH_GEN)')
    .option('--device <path>', deviceHelp)
    .action(
      action(async (o: DeviceOpts) => {
        await (await platformFor(o)).pdhGen();
      }),
    );

  program
    .command('reset')
    .description('Reset the SEV platform (FACTORY_RESET): clears all persistent platform data')
    .option('--device <path>', deviceHelp)
    .action(
      action(async (o: DeviceOpts) => {
        await (await platformFor(o)).factoryReset();
      }),
    );
}
