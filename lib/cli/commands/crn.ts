import type { Command } from 'commander';
import { Option } from 'commander';
import { sevkitEnv } from '../env.js';
import { action, parseIntArg } from '../run.js';
import { UsageError, InputError } from '../../errors.js';
import type { CrnServiceOptions } from '../../crn/service.js';

/** Registers `crn serve`, `launch` (guest owner) and `demo`. */
export function register(program: Command): void {
  const crn = program.command('crn').description('Reference CRN (compute resource node) service, aleph-vm compatible');
  crn
    .command('serve')
    .description('Serve the confidential-VM endpoints of an aleph-vm CRN (certificates, initialize, measurement, inject_secret)')
    .requiredOption('--listen <HOST:PORT>', 'address to listen on, e.g. 127.0.0.1:4020')
    .requiredOption('--domain <NAME>', 'domain name clients sign operations for (aleph DOMAIN_NAME)')
    .option('--run-dir <DIR>', 'directory for session files and VM run dirs (yours, not group/other-writable)', defaultRunDir())
    .option('--device <PATH>', 'SEV device (default SEVKIT_DEVICE or /dev/sev)')
    .option('--cek <FILE>', 'serve this ASK-signed CEK instead of the exported/KDS one')
    .option('--cpu <MODEL>', "QEMU -cpu for the VMs (default aleph's host,host-phys-bits-limit=0x28); pin e.g. EPYC-v4 so SEV-ES owners can predict the VMSAs")
    .option('--no-confidential', 'disable confidential computing (503 on /about/certificates)')
    .option('--cert-ttl <SECONDS>', 're-export the certificate chain after this long (also on SIGHUP and after a failed launch)', (v) => parseIntArg(v, '--cert-ttl'), 60)
    .option('--quiet', 'no request log on stderr')
    .option('--aleph-exact', "answer with aleph-vm's exact status codes and bodies where sevkit's deliberately differ (docs/crn-aleph.md)")
    .option('--api-server <URL>', "aleph API server: serves aleph's POST /control/allocations and /control/allocation/notify from its INSTANCE messages")
    .option('--data-cache <DIR>', 'with --api-server: firmware (and rootfs) files named by their item hash', '')
    .option('--node-hash <HASH>', "this CRN's node hash (messages that name a node must name this one)")
    .option('--delegation', "with --api-server: also authorise addresses the owner's aleph security aggregate delegates INSTANCE operations to")
    .addHelpText(
      'after',
      '\nAllocation (POST /control/allocate, and with --api-server POST /control/allocations) needs SEVKIT_ALLOCATION_TOKEN\n(or aleph\'s form, its sha256 in SEVKIT_ALLOCATION_TOKEN_HASH) in the environment.\nSIGHUP re-exports the certificate chain (after rotate); SIGINT/SIGTERM stop every VM and exit.',
    )
    .action(action(serveCmd));

  program
    .command('launch')
    .description('Guest owner: verify a CRN, launch a confidential VM on it and release the disk secret only if everything checks out')
    .requiredOption('--crn <URL>', 'CRN base URL, e.g. https://crn.example.org')
    .requiredOption('--vm <REF>', 'VM reference (64 hex digits, the instance item hash)')
    .requiredOption('--firmware <FILE>', 'the OVMF image you expect the VM to boot (the measurement is computed from it)')
    .requiredOption('--policy <P>', 'guest policy (decimal or 0x-hex), must equal the allocation', (v) => parseIntArg(v, '--policy'))
    .requiredOption('--secret-file <FILE>', 'disk password file (one trailing newline is removed)')
    .option('--ca <FILE>', 'trust this CA chain (ASK‖ARK) instead of the built-in AMD roots')
    .option('--generation <G>', 'use the built-in AMD roots of this generation (naples, rome, milan, genoa, turin)')
    .option('--wallet-key <FILE>', 'owner wallet key: Ethereum private key (hex) or Solana keypair (JSON array); default SEVKIT_WALLET_KEY_FILE')
    .option('--domain <NAME>', 'domain to sign operations for (default: the URL host)')
    .option('--vcpus <N>', 'SEV-ES: number of vCPUs of the VM', (v) => parseIntArg(v, '--vcpus'))
    .option('--vcpu-type <TYPE>', 'SEV-ES: QEMU CPU model of the VM (e.g. EPYC-v4)')
    .option('--vcpu-sig <SIG>', 'SEV-ES: CPUID(1).EAX signature of the VM vCPUs (for -cpu host)', (v) => parseIntArg(v, '--vcpu-sig'))
    .option('--timeout <SECONDS>', 'how long to wait for the measurement', (v) => parseIntArg(v, '--timeout'), 120)
    .option('--json', 'print the result as JSON')
    .action(action(launchCmd));

  program
    .command('demo')
    .description('End-to-end demo on a SIMULATED SEV platform: reference CRN on loopback + guest-owner launch, then teardown')
    .option('--keep', 'keep the temporary directory')
    .addOption(new Option('--inside-sim').hideHelp())
    .addOption(new Option('--vm-less', 'do not boot QEMU even if installed'))
    .action(action(demoCmd));
}

function defaultRunDir(): string {
  return `${process.env.TMPDIR ?? '/tmp'}/sevkit-crn-${process.getuid?.() ?? 'user'}`;
}

interface ServeOpts {
  listen: string;
  domain: string;
  runDir: string;
  device?: string;
  cek?: string;
  cpu?: string;
  certTtl: number;
  confidential: boolean;
  quiet?: boolean;
  alephExact?: boolean;
  apiServer?: string;
  dataCache: string;
  nodeHash?: string;
  delegation?: boolean;
}

async function serveCmd(o: ServeOpts): Promise<number> {
  const fs = await import('node:fs');
  const { startCrnServer, platformCertificateSource, SupervisorLauncher } = await import('../../crn/index.js');
  const { parseListen } = await import('../../crn/server.js');
  const { Supervisor } = await import('../../vm/index.js');
  let listen: { host: string; port: number };
  try {
    listen = parseListen(o.listen);
  } catch {
    throw new UsageError(`--listen must be HOST:PORT, got '${o.listen}'`);
  }
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(o.domain) && !/^[0-9a-fA-F:]+$/.test(o.domain)) throw new UsageError(`--domain must be a host name, got '${o.domain}'`);
  let cekOverride: Buffer | undefined;
  if (o.cek) {
    cekOverride = fs.readFileSync(o.cek);
    if (cekOverride.length !== 0x824) throw new InputError(`${o.cek}: a CEK certificate is 2084 bytes, this file has ${cekOverride.length}`);
  }
  fs.mkdirSync(o.runDir, { recursive: true, mode: 0o700 });
  // The default lives in a shared /tmp: a directory someone else made (or can write) would let
  // them swap the session files and the VMs' QMP sockets, so refuse it rather than use it.
  const st = fs.lstatSync(o.runDir);
  if (!st.isDirectory() || (process.getuid !== undefined && st.uid !== process.getuid()) || (st.mode & 0o022) !== 0) {
    throw new InputError(`${o.runDir}: the run directory must be a directory of this user, not writable by group or others (mode ${(st.mode & 0o777).toString(8)})`);
  }
  const aleph = await alephOptions(o);
  const env = sevkitEnv();
  const simulated = env.simSocket !== undefined;
  const supervisor = new Supervisor({ runRoot: `${o.runDir}/vms`, ...(env.qemu ? { qemu: env.qemu } : {}), ...(env.cpuidFile ? { cpuidFile: env.cpuidFile } : {}) });
  const device = o.device ?? env.device;
  const testCa = (await import('../../sim/ca-chain.js')).simulatorCaChain(env.simState);
  const srv = await startCrnServer({
    host: listen.host,
    port: listen.port,
    domain: o.domain,
    certs: o.confidential ? await platformCertificateSource({ device, testCa, kds: { cacheDir: env.kdsCacheDir } }) : null,
    launcher: new SupervisorLauncher(supervisor, { kind: simulated ? 'qemu (simulator wrapper)' : 'qemu', ...(o.cpu ? { cpu: o.cpu } : {}) }),
    runDir: o.runDir,
    certTtlMs: o.certTtl * 1000,
    ...(process.env.SEVKIT_ALLOCATION_TOKEN ? { allocationToken: process.env.SEVKIT_ALLOCATION_TOKEN } : {}),
    ...(cekOverride ? { cekOverride } : {}),
    platformKind: simulated ? 'simulated' : 'hardware',
    ...aleph,
    ...(o.quiet ? {} : { log: (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`) }),
  });
  if (simulated) process.stderr.write('note: SEV platform is SIMULATED (SEVKIT_SIM_SOCKET set): nothing here is hardware-backed\n');
  process.stdout.write(`listening on ${srv.url}\n`);
  if (o.confidential) {
    // aleph exports lazily; say now if the platform cannot answer, but keep serving (it may recover).
    srv.service.certificates().then(
      (c) => process.stderr.write(`platform certificates: ${c.length} bytes (PDH, PEK, OCA, CEK) ready\n`),
      (e: Error) => process.stderr.write(`warning: platform certificates unavailable: ${e.message}\n`),
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', hup);
      void srv.close().then(async () => {
        await supervisor.stopAll();
        resolve();
      });
    };
    const hup = () => srv.service.invalidateCertificates();
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('SIGHUP', hup);
  });
  return 0;
}

/** The service options the aleph flags select (mode, aleph's allocation endpoints, delegation). */
async function alephOptions(o: ServeOpts): Promise<Pick<CrnServiceOptions, 'mode' | 'extensions' | 'authorize'>> {
  const out: Pick<CrnServiceOptions, 'mode' | 'extensions' | 'authorize'> = o.alephExact ? { mode: 'aleph' } : {};
  if (!o.apiServer) {
    if (o.delegation || o.dataCache || o.nodeHash) throw new UsageError('--data-cache, --node-hash and --delegation need --api-server');
    return out;
  }
  let api: URL;
  try {
    api = new URL(o.apiServer);
  } catch {
    throw new UsageError(`--api-server must be an http(s) URL, got '${o.apiServer}'`);
  }
  if (api.protocol !== 'http:' && api.protocol !== 'https:') throw new UsageError(`--api-server must be an http(s) URL, got '${o.apiServer}'`);
  if (!o.dataCache) throw new UsageError('--api-server needs --data-cache DIR (where the firmware files named by item hash are)');
  if (o.nodeHash !== undefined && !/^[0-9a-f]{64}$/.test(o.nodeHash)) throw new UsageError(`--node-hash must be 64 lower-case hex digits (an aleph node hash), got '${o.nodeHash.slice(0, 80)}'`);
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { AlephAllocations, allocationTokenHash, httpMessageFetcher, alephSecurityAggregateAuthorizer, httpAggregateFetcher } = await import('../../crn/index.js');
  const cache = path.resolve(o.dataCache);
  if (!fs.statSync(cache, { throwIfNoEntry: false })?.isDirectory()) throw new InputError(`--data-cache ${o.dataCache}: not a directory`);
  const inCache = (ref: string): string | undefined => {
    const f = path.join(cache, ref);
    return fs.statSync(f, { throwIfNoEntry: false })?.isFile() ? f : undefined;
  };
  const hashEnv = process.env.SEVKIT_ALLOCATION_TOKEN_HASH;
  if (hashEnv !== undefined && !/^[0-9a-fA-F]{64}$/.test(hashEnv)) throw new InputError('SEVKIT_ALLOCATION_TOKEN_HASH must be a sha256 in hex (64 digits)');
  const tokenHash = hashEnv ?? (process.env.SEVKIT_ALLOCATION_TOKEN ? allocationTokenHash(process.env.SEVKIT_ALLOCATION_TOKEN) : undefined);
  const base = api.toString();
  const allocations = new AlephAllocations({
    fetchMessage: httpMessageFetcher(base),
    resolveFirmware: inCache,
    resolveRootfs: inCache,
    ...(tokenHash ? { tokenHash: tokenHash.toLowerCase() } : {}),
    ...(o.nodeHash ? { nodeHash: o.nodeHash } : {}),
  });
  out.extensions = [allocations];
  if (o.delegation) {
    out.authorize = alephSecurityAggregateAuthorizer({
      fetchAggregate: httpAggregateFetcher(base),
      onError: (owner, e) => process.stderr.write(`warning: security aggregate of ${owner}: ${(e as Error).message}\n`),
    });
  }
  return out;
}

interface LaunchOpts {
  crn: string;
  vm: string;
  firmware: string;
  policy: number;
  secretFile: string;
  ca?: string;
  generation?: string;
  walletKey?: string;
  domain?: string;
  vcpus?: number;
  vcpuType?: string;
  vcpuSig?: number;
  timeout: number;
  json?: boolean;
}

async function launchCmd(o: LaunchOpts): Promise<number> {
  const fs = await import('node:fs');
  if (o.ca && o.generation) throw new UsageError('give either --ca or --generation, not both');
  if (o.vcpuType && o.vcpuSig !== undefined) throw new UsageError('give either --vcpu-type or --vcpu-sig, not both');
  const cpuGiven = o.vcpuType !== undefined || o.vcpuSig !== undefined;
  if (o.policy & 0x4 && (o.vcpus === undefined || !cpuGiven)) throw new UsageError('SEV-ES (policy bit 0x4) needs --vcpus and --vcpu-type or --vcpu-sig to predict the VMSA measurement');
  const es = o.vcpus !== undefined && cpuGiven ? { numCpus: o.vcpus, ...(o.vcpuType ? { vcpuType: o.vcpuType } : { vcpuSig: o.vcpuSig! }) } : undefined;
  const keyFile = o.walletKey ?? process.env.SEVKIT_WALLET_KEY_FILE;
  if (!keyFile) throw new UsageError('a wallet key is needed to act on the VM: --wallet-key FILE (or SEVKIT_WALLET_KEY_FILE)');
  const { parseWalletKey } = await import('../../aleph/wallet.js');
  const { CrnClient } = await import('../../owner/client.js');
  const { launchOnCrn } = await import('../../owner/launch.js');
  const read = (f: string, what: string): Buffer => {
    try {
      return fs.readFileSync(f);
    } catch (e) {
      throw new InputError(`${what} ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const keyText = read(keyFile, 'wallet key');
  const wallet = parseWalletKey(keyText.toString('utf8'), keyFile);
  keyText.fill(0);
  const firmware = read(o.firmware, 'firmware');
  let ca: Buffer | undefined;
  if (o.ca) ca = read(o.ca, 'CA chain');
  let generation;
  if (o.generation) {
    const { parseGeneration } = await import('../../certs/index.js');
    generation = parseGeneration(o.generation);
  }
  const client = new CrnClient({ url: o.crn, wallet, ...(o.domain ? { domain: o.domain } : {}) });
  // Every refusal that needs no secret comes before it is read, so nothing below leaves it in memory.
  const secretRaw = read(o.secretFile, 'secret file');
  let end = secretRaw.length;
  if (end > 0 && secretRaw[end - 1] === 0x0a) end--;
  if (end > 0 && secretRaw[end - 1] === 0x0d) end--;
  const secret = Buffer.from(secretRaw.subarray(0, end));
  secretRaw.fill(0);
  if (secret.length === 0) throw new InputError(`secret file ${o.secretFile} is empty`);
  const out = (s: string) => process.stderr.write(`${s}\n`);
  out(`owner ${wallet.address} (${wallet.chain}) → ${client.url} (domain ${client.domain}), VM ${o.vm}`);
  try {
    const res = await launchOnCrn({
      client,
      ref: o.vm,
      firmware,
      policy: o.policy,
      secret,
      ...(ca ? { ca } : {}),
      ...(generation ? { generation } : {}),
      ...(es ? { es } : {}),
      measurementTimeoutMs: o.timeout * 1000,
      onProgress: (p) => out(formatProgress(p)),
    });
    if (o.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
    else process.stdout.write(`VM ${res.ref} is running (secret delivered; total ${sumMs(res.timings).toFixed(0)} ms)\n`);
    return 0;
  } finally {
    secret.fill(0);
  }
}

export function formatProgress(p: { step: string; index: number; total: number; ms: number; detail: string }): string {
  return `[${p.index}/${p.total}] ${p.step.padEnd(12)} ${p.ms.toFixed(1).padStart(8)} ms  ${p.detail}`;
}

function sumMs(t: Record<string, number>): number {
  return Object.values(t).reduce((a, b) => a + b, 0);
}

async function demoCmd(o: { keep?: boolean; insideSim?: boolean; vmLess?: boolean }): Promise<number> {
  const { runDemo } = await import('../../demo/demo.js');
  return runDemo({ keep: Boolean(o.keep), insideSim: Boolean(o.insideSim), vmLess: Boolean(o.vmLess), env: process.env });
}
