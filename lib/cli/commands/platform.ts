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

interface DeviceOpts {
  device?: string;
}

async function platformFor(o: DeviceOpts) {
  const { SevPlatform } = await import('../../platform/index.js');
  const d = o.device ?? sevkitEnv().device;
  return new SevPlatform(d !== undefined ? { device: d } : {});
}


type ShowWhat = 'version' | 'guests' | 'identifier' | 'flags';

async function show(what: ShowWhat, o: DeviceOpts & { json?: boolean }): Promise<void> {
  const p = await platformFor(o);
  if (what === 'identifier') {
    const { chipIdHex } = await import('../../platform/index.js');
    const info = await p.getIdInfo();
    const hex = chipIdHex(info.id);
    if (o.json) printJson({ identifier: hex, command: info.command });
    else process.stdout.write(`${hex}\n`);
    return;
  }
  const s = await p.status();
  switch (what) {
    case 'version':
      if (o.json) printJson({ apiMajor: s.apiMajor, apiMinor: s.apiMinor, build: s.build, version: `${s.apiMajor}.${s.apiMinor}.${s.build}` });
      else process.stdout.write(`${s.apiMajor}.${s.apiMinor}.${s.build}\n`);
      return;
    case 'guests':
      if (o.json) printJson({ guests: s.guestCount });
      else process.stdout.write(`${s.guestCount}\n`);
      return;
    case 'flags': {
      // sevctl prints "owned" (flags bit 0) then "es" (bit 8), one per line, nothing when neither is set.
      const owned = s.owner === 'external';
      if (o.json) printJson({ owned, es: s.esEnabled, flags: s.flags });
      else process.stdout.write(`${owned ? 'owned\n' : ''}${s.esEnabled ? 'es\n' : ''}`);
      return;
    }
  }
}

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
    .argument('<destination>', 'certificate chain output file path')
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
