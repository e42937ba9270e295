/**
 * `sevkit attest`: the owner's side of SEV-SNP attested TLS — connect to the
 * guest agent, verify its report inside the handshake against the launch the
 * owner computes from its own files and the full policy, and only then send
 * the wallet-signed secrets. Thin over lib/owner/attest.ts.
 */
import type { Command } from 'commander';
import { action, EXIT_FAIL, EXIT_OK, parseIntArg, printJson, readInputFile } from '../run.js';
import { tcbArg } from './snp-options.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface AttestCliOpts {
  url: string;
  firmware: string;
  vcpus: number;
  vcpuType?: string;
  guestFeatures?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  policy?: number;
  minTcb?: ReturnType<typeof tcbArg>;
  minLaunchTcb?: ReturnType<typeof tcbArg>;
  smt?: boolean;
  kdsUrl?: string;
  cacheDir?: string;
  vcek?: string;
  roots?: string;
  otherFirmware: string[];
  walletKey: string;
  secretFile: string[];
  deadline: number;
  json?: boolean;
}

/** `[NAME=]FILE` → name and UTF-8 text (the agent stores strings); the name defaults to the file's base name. */
async function readSecret(spec: string): Promise<[string, string]> {
  const path = await import('node:path');
  const { UsageError, InputError } = await import('../../errors.js');
  const m = /^([A-Za-z0-9_-]{1,64})=(.+)$/.exec(spec);
  const file = m ? m[2]! : spec;
  const name = m ? m[1]! : path.basename(file);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name))
    throw new UsageError(`--secret-file ${spec}: the secret name '${name}' must match [A-Za-z0-9_-]{1,64}; give NAME=FILE`);
  const data = await readInputFile(file, 'the secret');
  try {
    return [name, new TextDecoder('utf-8', { fatal: true }).decode(data)];
  } catch {
    throw new InputError(`${file}: the secret must be UTF-8 text (base64-encode binary keys)`);
  } finally {
    data.fill(0);
  }
}

async function attestCmd(o: AttestCliOpts): Promise<number> {
  const { UsageError } = await import('../../errors.js');
  if (o.vcek && o.kdsUrl) throw new UsageError('give --kds-url or --vcek, not both');
  if ((o.initrd !== undefined || o.append !== undefined) && !o.kernel) throw new UsageError('--initrd and --append need --kernel');
  if (!o.secretFile.length) throw new UsageError('give at least one --secret-file');
  const [{ attestAndInject }, { parseWalletKey }, { KdsClient }] = await Promise.all([
    import('../../owner/attest.js'),
    import('../../aleph/wallet.js'),
    import('../../snp/kds.js'),
  ]);
  const wallet = parseWalletKey((await readInputFile(o.walletKey, 'the wallet key')).toString('utf8'), o.walletKey);
  const secrets: Record<string, string> = {};
  for (const s of o.secretFile) {
    const [k, v] = await readSecret(s);
    if (k in secrets) throw new UsageError(`two secrets are named '${k}'`);
    secrets[k] = v;
  }
  let roots: Parameters<typeof attestAndInject>[0]['roots'];
  if (o.roots) {
    const { parseAmdCerts } = await import('../../snp/x509.js');
    const certs = parseAmdCerts(await readInputFile(o.roots, 'the trusted roots'), o.roots);
    const ask = certs.find((c) => c.subjectCn.startsWith('SEV-') && !c.subjectCn.startsWith('SEV-VLEK-'));
    const ark = certs.find((c) => c.subjectCn.startsWith('ARK-'));
    if (!ask || !ark) throw new UsageError(`${o.roots}: expected a cert_chain PEM holding an ASK (SEV-…) and an ARK (ARK-…)`);
    const asvk = certs.find((c) => c.subjectCn.startsWith('SEV-VLEK-')) ?? ask;
    process.stderr.write(
      `sevkit: warning: trusting the roots in ${o.roots} instead of AMD's${ark.der.includes('SIMULATOR TEST') ? " (the simulator's TEST roots: this proves nothing about real hardware)" : ''}\n`,
    );
    roots = (product) => ({ product, ark, ask, asvk });
  }
  const path = await import('node:path');
  const { defaultKdsCacheDir } = await import('../../certs/kds.js');
  const kernel = o.kernel
    ? { kernel: await readInputFile(o.kernel, 'the kernel'), initrd: o.initrd ? await readInputFile(o.initrd, 'the initrd') : null, cmdline: o.append ?? null }
    : null;
  const others = await Promise.all(o.otherFirmware.map(async (f) => ({ name: f, image: await readInputFile(f, 'a firmware image') })));
  try {
    const r = await attestAndInject({
      url: o.url,
      expected: {
        firmware: await readInputFile(o.firmware, 'the firmware'),
        firmwareName: o.firmware,
        vcpus: o.vcpus,
        vcpuType: o.vcpuType ?? 'EPYC-v4',
        ...(o.guestFeatures ? { guestFeatures: o.guestFeatures } : {}),
        kernel,
      },
      otherFirmwares: others,
      policy: {
        ...(o.minTcb ? { minTcb: o.minTcb } : {}),
        ...(o.minLaunchTcb ? { minLaunchTcb: o.minLaunchTcb } : {}),
        ...(o.smt === false ? { allowSmt: false } : {}),
      },
      ...(o.policy !== undefined ? { expectedPolicy: BigInt(o.policy) } : {}),
      ...(o.vcek
        ? { vek: await readInputFile(o.vcek, 'the VCEK') }
        : { kds: new KdsClient({ cacheDir: o.cacheDir ?? path.join(defaultKdsCacheDir(), 'snp'), ...(o.kdsUrl ? { baseUrl: o.kdsUrl } : {}) }) }),
      ...(roots ? { roots } : {}),
      deadlineMs: o.deadline * 1000,
      wallet,
      secrets,
    });
    if (o.json) printJson({ ok: true, measurement: r.measurement.toString('hex'), tlsKey: r.keyDigest.toString('hex'), injected: r.injected });
    else
      process.stdout.write(
        `attested: measurement ${r.measurement.toString('hex')}, TLS key sha384 ${r.keyDigest.toString('hex').slice(0, 16)}…; injected ${r.injected.join(', ')}\n`,
      );
    return EXIT_OK;
  } finally {
    for (const k of Object.keys(secrets)) secrets[k] = '';
  }
}

/** Registers `attest`. */
export function register(program: Command): void {
  program
    .command('attest')
    .description(
      "Attest an SEV-SNP guest agent over TLS (report in the handshake's certificate, verified with the full policy against the measurement computed from your own files) and only then send it your wallet-signed secrets",
    )
    .requiredOption('--url <URL>', 'the agent, https://HOST:PORT (the CRN forwards the guest port)')
    .requiredOption('--firmware <FILE>', 'the OVMF image (-bios) the guest should run')
    .requiredOption('--vcpus <N>', 'vCPUs', (v) => parseIntArg(v, '--vcpus'))
    .option('--vcpu-type <T>', 'QEMU -cpu model (default EPYC-v4)')
    .option('--guest-features <X>', 'SEV_FEATURES (default 0x1)')
    .option('--kernel <FILE>', 'measured direct boot: the kernel')
    .option('--initrd <FILE>', 'the initrd')
    .option('--append <CMDLINE>', 'the kernel command line')
    .option('--policy <P>', 'the exact guest policy launched with (decimal or 0x-hex)', (v) => parseIntArg(v, '--policy'))
    .option('--min-tcb <SPLS>', 'minimum REPORTED and CURRENT TCB, e.g. bl=3,tee=0,snp=8,ucode=115', tcbArg)
    .option('--min-launch-tcb <SPLS>', 'minimum LAUNCH_TCB', tcbArg)
    .option('--no-smt', 'refuse a guest policy that allows SMT')
    .option('--kds-url <URL>', 'KDS base URL (default https://kdsintf.amd.com)')
    .option('--cache-dir <DIR>', 'KDS cache directory')
    .option('--vcek <FILE>', 'the VCEK (DER/PEM) instead of KDS')
    .option('--roots <FILE>', "trust this cert_chain PEM (ASK, ARK) instead of AMD's roots (the simulator's TEST roots)")
    .option('--other-firmware <FILE>', 'another firmware build the mismatch diagnosis may name (repeatable)', collect, [])
    .requiredOption('--wallet-key <FILE>', "the owner's Ethereum private key (the agent's --owner)")
    .option('--secret-file <[NAME=]FILE>', 'a secret to send (UTF-8; repeatable; NAME defaults to the file name)', collect, [])
    .option('--deadline <SECONDS>', 'deadline for the whole exchange', (v) => parseIntArg(v, '--deadline'), 60)
    .option('--json', 'print {ok, measurement, tlsKey, injected} as JSON')
    .action(action(async (o: AttestCliOpts) => ((await attestCmd(o)) === EXIT_OK ? EXIT_OK : EXIT_FAIL)));
}
