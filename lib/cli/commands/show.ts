/**
 * sevctl's `show version|guests|identifier|flags`, free of commander: the entry
 * point (../sevkit.ts) runs the plain forms of these read-outs directly, so the
 * commands a host polls most start as fast as `sev-status`.
 */
import { printJson } from '../output.js';

/** The exact argument lists the entry point runs without commander; anything else goes through it. */
export function quickShow(argv: readonly string[]): { what: ShowWhat; json: boolean } | undefined {
  if (argv.length < 2 || argv.length > 3 || argv[0] !== 'show') return undefined;
  const what = argv[1] as ShowWhat;
  if (!SHOW_WHAT.includes(what)) return undefined;
  if (argv.length === 3 && argv[2] !== '--json') return undefined;
  return { what, json: argv.length === 3 };
}

const SHOW_WHAT: readonly string[] = ['version', 'guests', 'identifier', 'flags'];

export interface DeviceOpts {
  device?: string;
}

/** The SEV platform at `--device`, else $SEVKIT_DEVICE, else /dev/sev. */
export async function platformFor(o: DeviceOpts) {
  const { SevPlatform } = await import('../../platform/index.js');
  const { sevkitEnv } = await import('../env.js');
  const d = o.device ?? sevkitEnv().device;
  return new SevPlatform(d !== undefined ? { device: d } : {});
}

export type ShowWhat = 'version' | 'guests' | 'identifier' | 'flags';

/** `show version|guests|identifier|flags`: sevctl's output, or JSON. */
export async function show(what: ShowWhat, o: DeviceOpts & { json?: boolean }): Promise<void> {
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
