import type { Command } from 'commander';
import { Option } from 'commander';
import { sevkitEnv } from '../env.js';
import { action, parseIntArg, warnIfTestRoot } from '../run.js';
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
    .option(
      '--cert-ttl <SECONDS>',
      're-export the certificate chain after this long (also on SIGHUP and after a failed launch)',
      (v) => parseIntArg(v, '--cert-ttl'),
      60,
    )
    .option('--quiet', 'no request log on stderr')
    .option('--max-vms <N>', 'VMs this CRN holds at most; the next allocation is refused with 503', (v) => parseIntArg(v, '--max-vms'), 256)
    .option('--aleph-exact', "answer with aleph-vm's exact status codes and bodies where sevkit's deliberately differ (docs/crn-aleph.md)")
    .option('--api-server <URL>', "aleph API server: serves aleph's POST /control/allocations and /control/allocation/notify from its INSTANCE messages")
    .option('--data-cache <DIR>', 'with --api-server: firmware (and rootfs) files named by their item hash', '')
    .option('--node-hash <HASH>', "this CRN's node hash (messages that name a node must name this one)")
    .option('--delegation', "with --api-server: also authorise addresses the owner's aleph security aggregate delegates INSTANCE operations to")
    .option(
      '--keep-vms',
      'on SIGINT/SIGTERM, stop serving but leave the VMs running (the next crn serve on this --run-dir adopts them; --snp-agent sim agents stop and the next start runs fresh ones)',
    )
    .option('--agent-host <ADDR>', "address SEV-SNP guests' forwarded agent ports listen on (mapped_ports; default 127.0.0.1, e.g. 0.0.0.0 for remote owners)")
    .option(
      '--snp-agent <HOW>',
      "how SEV-SNP guests' attestation agents are reached: sim (the simulator: a `sevkit guest agent` per VM in its simulated guest; the default there), hostfwd (QEMU user networking forwards a 127.0.0.1 port to guest 8443), none (SNP allocations refused; the default on hardware)",
    )
    .addHelpText(
      'after',
      "\nAllocation (POST /control/allocate, and with --api-server POST /control/allocations) needs SEVKIT_ALLOCATION_TOKEN\n(or aleph's form, its sha256 in SEVKIT_ALLOCATION_TOKEN_HASH) in the environment.\nSIGHUP re-exports the certificate chain (after rotate); SIGINT/SIGTERM stop every VM (or, with --keep-vms, leave\nthem running) and exit; a repeated signal does not cut the stop short. On start, the VMs an earlier crn serve on\nthe same --run-dir left running (a crash, SIGKILL, --keep-vms) are adopted: they are served again.",
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
    .option('--vcpus <N>', 'SEV-ES: number of vCPUs of the VM (sevkit allocate prints what the CRN launches with)', (v) => parseIntArg(v, '--vcpus'))
    .option('--vcpu-type <TYPE>', 'SEV-ES: QEMU CPU model of the VM (e.g. EPYC-v4)')
    .option('--vcpu-sig <SIG>', 'SEV-ES: CPUID(1).EAX signature of the VM vCPUs (for -cpu host)', (v) => parseIntArg(v, '--vcpu-sig'))
    .option('--vcpu-family <N>', 'SEV-ES: vCPU family (with --vcpu-model and --vcpu-stepping, instead of --vcpu-sig)', (v) => parseIntArg(v, '--vcpu-family'))
    .option('--vcpu-model <N>', 'SEV-ES: vCPU model', (v) => parseIntArg(v, '--vcpu-model'))
    .option('--vcpu-stepping <N>', 'SEV-ES: vCPU stepping', (v) => parseIntArg(v, '--vcpu-stepping'))
    .option('--sev-features <N>', 'SEV-ES: the VMSA SEV_FEATURES (0x20 where KVM enables DebugSwap in legacy VMSAs)', (v) => parseIntArg(v, '--sev-features'))
    .option(
      '--secret-gpa <ADDR>',
      'the firmware receives the secret at this guest address (for a firmware whose footer table declares no launch-secret area; the CRN must inject there)',
      (v) => parseIntArg(v, '--secret-gpa'),
    )
    .option('--secret-size <BYTES>', 'with --secret-gpa: the size of that area', (v) => parseIntArg(v, '--secret-size'), 4096)
    .option('--timeout <SECONDS>', 'how long to wait for the measurement', (v) => parseIntArg(v, '--timeout'), 120)
    .option(
      '--request-timeout <SECONDS>',
      'deadline of each request, connect to the last byte (initialize gets 150 s: aleph holds it while the VM starts)',
      (v) => parseIntArg(v, '--request-timeout'),
      30,
    )
    .option('--deadline <SECONDS>', 'deadline of the whole launch (default: --timeout + 300)', (v) => parseIntArg(v, '--deadline'))
    .option('--json', 'print the result as JSON')
    .action(action(launchCmd));

  program
    .command('demo')
    .description('End-to-end demo on a SIMULATED SEV platform: reference CRN on loopback + guest-owner launch, then teardown')
    .option('--keep', 'keep the temporary directory')
    .addOption(new Option('--inside-sim').hideHelp())
    .addOption(new Option('--vm-less', 'do not boot QEMU even if installed'))
    .option('--snp', 'the SEV-SNP lifecycle: SNP instance, guest agent, owner attests through the forwarded port, then a refused host')
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
  maxVms: number;
  confidential: boolean;
  quiet?: boolean;
  alephExact?: boolean;
  apiServer?: string;
  dataCache: string;
  nodeHash?: string;
  delegation?: boolean;
  keepVms?: boolean;
  snpAgent?: string;
  agentHost?: string;
}

/** The SupervisorLauncher options `--snp-agent` selects. */
async function snpAgentOptions(
  how: string | undefined,
  simulated: boolean,
  log: ((l: string) => void) | undefined,
): Promise<Pick<import('../../crn/launchers.js').SupervisorLauncherOptions, 'snpAgent' | 'snpHostForward'>> {
  const mode = how ?? (simulated ? 'sim' : 'none');
  switch (mode) {
    case 'none':
      process.stderr.write('note: --snp-agent none: SEV-SNP allocations are refused (this CRN has no way to reach their guest agents)\n');
      return {};
    case 'hostfwd':
      return { snpHostForward: true };
    case 'sim': {
      if (!simulated) throw new UsageError('--snp-agent sim runs the guest agents in simulated guests: it needs the simulator (run under `sevkit sim`)');
      const { agentProcessLocator } = await import('../../crn/agent-process.js');
      // The guest gets the simulator's environment, not the host's credentials.
      const { SEVKIT_ALLOCATION_TOKEN: _t, SEVKIT_ALLOCATION_TOKEN_HASH: _h, SEVKIT_WALLET_KEY_FILE: _w, ...guestEnv } = process.env;
      return {
        snpAgent: agentProcessLocator({
          // This very sevkit (the same node flags, e.g. tsx's loader when run from the sources).
          command: [process.execPath, ...process.execArgv, process.argv[1]!],
          env: guestEnv,
          ...(log ? { onLine: (ref: string, line: string) => log(`VM ${ref}: ${line}`) } : {}),
        }),
      };
    }
    default:
      throw new UsageError(`--snp-agent must be sim, hostfwd or none, got '${mode.slice(0, 40)}'`);
  }
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
  if (o.maxVms < 1 || o.maxVms > 65536) throw new UsageError(`--max-vms must be in [1, 65536], got ${o.maxVms}`);
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(o.domain) && !/^[0-9a-fA-F:]+$/.test(o.domain)) throw new UsageError(`--domain must be a host name, got '${o.domain}'`);
  let cekOverride: Buffer | undefined;
  if (o.cek) {
    cekOverride = fs.readFileSync(o.cek);
    if (cekOverride.length !== 0x824) throw new InputError(`${o.cek}: a CEK certificate is 2084 bytes, this file has ${cekOverride.length}`);
  }
  const env = sevkitEnv();
  const simulated = env.simSocket !== undefined;
  const log = o.quiet ? undefined : (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);
  const snp = await snpAgentOptions(o.snpAgent, simulated, log);
  const { isIP } = await import('node:net');
  if (o.agentHost !== undefined && !isIP(o.agentHost)) throw new UsageError(`--agent-host must be an IP address, got '${o.agentHost.slice(0, 60)}'`);
  // The default lives in a shared /tmp: the library refuses a directory someone else made or can write
  // (they could swap the session files and the VMs' QMP sockets); checked before anything is created in it.
  const { ensurePrivateDir } = await import('../../util/fs.js');
  ensurePrivateDir(o.runDir);
  const aleph = await alephOptions(o);
  const device = o.device ?? env.device;
  const testCa = (await import('../../sim/ca-chain.js')).simulatorCaChain(env.simState);
  // An unexpected exit (a bug) must not take the VMs with it: the next crn serve adopts them.
  const supervisor = new Supervisor({
    runRoot: `${o.runDir}/vms`,
    keepVmsOnExit: true,
    ...(env.qemu ? { qemu: env.qemu } : {}),
    ...(env.cpuidFile ? { cpuidFile: env.cpuidFile } : {}),
  });
  const keepVms = Boolean(o.keepVms);
  // Installed before anything starts and kept until the process exits: a signal during start-up (adoption)
  // is acted on once the server is up, and a second signal (Ctrl-C twice, a group signal plus `sevkit sim`
  // forwarding it) never falls back to the default action, which would abandon the VMs mid-stop.
  let srv: Awaited<ReturnType<typeof startCrnServer>> | undefined;
  let signalled: NodeJS.Signals | undefined;
  let stopped!: () => void;
  const done = new Promise<void>((r) => (stopped = r));
  const begin = (sig: NodeJS.Signals, s: NonNullable<typeof srv>) => {
    const n = s.service.list().filter((v) => v.state !== 'allocated' && v.state !== 'stopped' && v.state !== 'failed').length;
    process.stderr.write(`${sig}: ${keepVms ? `stopping the service, leaving ${n} VM(s) running for the next start` : `stopping ${n} VM(s)`}\n`);
    void s
      .close({ keepVms })
      .then(() => supervisor.close({ keepVms }))
      .catch((e: Error) => process.stderr.write(`warning: stopping: ${e.message}\n`))
      .finally(() => stopped());
  };
  const stop = (sig: NodeJS.Signals) => {
    if (signalled) {
      process.stderr.write(`${sig}: already stopping; ${keepVms ? 'leaving the VMs running' : 'every VM is stopped within its deadline'} before exit\n`);
      return;
    }
    signalled = sig;
    if (srv) begin(sig, srv);
  };
  const hup = () => srv?.service.invalidateCertificates();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', hup);
  try {
    srv = await startCrnServer({
      host: listen.host,
      port: listen.port,
      domain: o.domain,
      certs: o.confidential ? await platformCertificateSource({ device, testCa, kds: { cacheDir: env.kdsCacheDir } }) : null,
      launcher: new SupervisorLauncher(supervisor, { kind: simulated ? 'qemu (simulator wrapper)' : 'qemu', ...(o.cpu ? { cpu: o.cpu } : {}), ...snp }),
      runDir: o.runDir,
      certTtlMs: o.certTtl * 1000,
      maxVms: o.maxVms,
      ...(process.env.SEVKIT_ALLOCATION_TOKEN ? { allocationToken: process.env.SEVKIT_ALLOCATION_TOKEN } : {}),
      ...(cekOverride ? { cekOverride } : {}),
      platformKind: simulated ? 'simulated' : 'hardware',
      ...aleph,
      ...(log ? { log } : {}),
      ...(o.agentHost ? { forward: { listenHost: o.agentHost } } : {}),
    });
  } catch (e) {
    // startCrnServer left any adopted VM running and released the run dir: the next start takes them.
    process.off('SIGHUP', hup);
    throw e;
  }
  if (simulated) process.stderr.write('note: SEV platform is SIMULATED (SEVKIT_SIM_SOCKET set): nothing here is hardware-backed\n');
  const restored = await srv.service.restored();
  if (restored.adopted.length + restored.stopped.length > 0) {
    process.stderr.write(
      `run dir ${o.runDir}: adopted ${restored.adopted.length} running VM(s) in ${restored.ms.toFixed(0)} ms${restored.stopped.length ? `; ${restored.stopped.length} had stopped with the earlier process (files removed)` : ''}\n`,
    );
  }
  if (signalled) begin(signalled, srv);
  else process.stdout.write(`listening on ${srv.url}\n`);
  if (o.confidential && !signalled) {
    // aleph exports lazily; say now if the platform cannot answer, but keep serving (it may recover).
    srv.service.certificates().then(
      (c) => process.stderr.write(`platform certificates: ${c.length} bytes (PDH, PEK, OCA, CEK) ready\n`),
      (e: Error) => process.stderr.write(`warning: platform certificates unavailable: ${e.message}\n`),
    );
  }
  await done;
  process.off('SIGHUP', hup);
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
  if (o.nodeHash !== undefined && !/^[0-9a-f]{64}$/.test(o.nodeHash))
    throw new UsageError(`--node-hash must be 64 lower-case hex digits (an aleph node hash), got '${o.nodeHash.slice(0, 80)}'`);
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { AlephAllocations, allocationTokenHash, httpMessageFetcher, alephSecurityAggregateAuthorizer, httpAggregateFetcher } =
    await import('../../crn/index.js');
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
  vcpuFamily?: number;
  vcpuModel?: number;
  vcpuStepping?: number;
  sevFeatures?: number;
  secretGpa?: number;
  secretSize: number;
  timeout: number;
  requestTimeout: number;
  deadline?: number;
  json?: boolean;
}

/** What Ctrl-C leaves behind on the CRN, by the step the launch was in. */
function stateLeft(step: string | undefined): string {
  switch (step) {
    case undefined:
    case 'firmware':
    case 'certificates':
    case 'chain':
    case 'session':
      return 'allocated and untouched (nothing was uploaded); a later launch can use it';
    case 'initialize':
      return 'possibly starting (initialize was sent, its answer not received)';
    case 'measurement':
    case 'verify':
    case 'secret':
      return 'started and paused, waiting for a secret that was NOT sent (the CRN must stop it before it can be launched again)';
    default:
      return 'with the secret sent: it may be running (check the CRN)';
  }
}

/** SEV-ES vCPU inputs from the flags (one of type, signature, or family/model/stepping). */
async function esFrom(o: LaunchOpts): Promise<import('../../launch/index.js').EsVmsaSpec | undefined> {
  const fms = [o.vcpuFamily, o.vcpuModel, o.vcpuStepping];
  const fmsGiven = fms.filter((x) => x !== undefined).length;
  if (fmsGiven !== 0 && fmsGiven !== 3) throw new UsageError('--vcpu-family, --vcpu-model and --vcpu-stepping go together');
  const kinds = [o.vcpuType !== undefined, o.vcpuSig !== undefined, fmsGiven === 3].filter(Boolean).length;
  if (kinds > 1) throw new UsageError('give one of --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping');
  if (o.policy & 0x4 && (o.vcpus === undefined || kinds === 0)) {
    throw new UsageError(
      'SEV-ES (policy bit 0x4) needs --vcpus and one of --vcpu-type, --vcpu-sig or --vcpu-family/model/stepping to predict the VMSA measurement (sevkit allocate prints what the CRN launches with)',
    );
  }
  if (o.vcpus === undefined || kinds === 0) return undefined;
  let sig = o.vcpuSig;
  if (fmsGiven === 3) {
    const { cpuSignature } = await import('../../launch/cpus.js');
    sig = cpuSignature(o.vcpuFamily!, o.vcpuModel!, o.vcpuStepping!);
  }
  return {
    numCpus: o.vcpus,
    ...(o.vcpuType ? { vcpuType: o.vcpuType } : { vcpuSig: sig! }),
    ...(o.sevFeatures !== undefined ? { sevFeatures: o.sevFeatures } : {}),
  };
}

async function launchCmd(o: LaunchOpts): Promise<number> {
  const fs = await import('node:fs');
  if (!/^[0-9a-f]{64}$/.test(o.vm)) throw new UsageError(`--vm must be 64 lower-case hex digits (the instance item hash), got '${o.vm.slice(0, 80)}'`);
  if (o.ca && o.generation) throw new UsageError('give either --ca or --generation, not both');
  if (o.timeout < 1 || o.requestTimeout < 1 || (o.deadline !== undefined && o.deadline < 1))
    throw new UsageError('--timeout, --request-timeout and --deadline must be at least 1 second');
  if (o.secretGpa === undefined && o.secretSize !== 4096) throw new UsageError('--secret-size goes with --secret-gpa');
  const es = await esFrom(o);
  const keyFile = o.walletKey ?? process.env.SEVKIT_WALLET_KEY_FILE;
  if (!keyFile)
    throw new UsageError('a wallet key is needed to act on the VM: --wallet-key FILE (or SEVKIT_WALLET_KEY_FILE); `sevkit wallet new FILE` creates one');
  const { parseWalletKey } = await import('../../aleph/wallet.js');
  const { CrnClient } = await import('../../owner/client.js');
  const { launchOnCrn } = await import('../../owner/launch.js');
  const { formatSeconds } = await import('../../util/http-request.js');
  const read = (f: string, what: string): Buffer => {
    try {
      return fs.readFileSync(f === '-' ? 0 : f); // `-`: stdin (e.g. --secret-file - from a password manager)
    } catch (e) {
      throw new InputError(`${what} ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const keyText = read(keyFile, 'wallet key');
  const wallet = parseWalletKey(keyText.toString('utf8'), keyFile);
  keyText.fill(0);
  const firmware = read(o.firmware, 'firmware');
  let ca: Buffer | undefined;
  if (o.ca) {
    ca = read(o.ca, 'CA chain');
    const { decodeCaChain, isTestRoot } = await import('../../certs/index.js');
    warnIfTestRoot(isTestRoot(decodeCaChain(ca, o.ca)), `--ca ${o.ca}`);
  }
  let generation;
  if (o.generation) {
    const { parseGeneration } = await import('../../certs/index.js');
    generation = parseGeneration(o.generation);
  }
  const abort = new AbortController();
  const client = new CrnClient({ url: o.crn, wallet, timeoutMs: o.requestTimeout * 1000, signal: abort.signal, ...(o.domain ? { domain: o.domain } : {}) });
  // Every refusal that needs no secret comes before it is read, so nothing below leaves it in memory.
  const secretRaw = read(o.secretFile, 'secret file');
  let end = secretRaw.length;
  if (end > 0 && secretRaw[end - 1] === 0x0a) end--;
  if (end > 0 && secretRaw[end - 1] === 0x0d) end--;
  const secret = Buffer.from(secretRaw.subarray(0, end));
  secretRaw.fill(0);
  if (secret.length === 0) throw new InputError(`secret file ${o.secretFile} is empty`);
  const tty = Boolean(process.stderr.isTTY);
  let live = false;
  const clearLive = () => {
    if (live) process.stderr.write('\r\x1b[K');
    live = false;
  };
  const out = (s: string) => {
    clearLive();
    process.stderr.write(`${s}\n`);
  };
  out(`owner ${wallet.address} (${wallet.chain}) → ${client.url} (domain ${client.domain}), VM ${o.vm}`);
  let current: string | undefined;
  let lastLine = 0;
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) return;
    interrupted = true;
    out(`sevkit: interrupted during step '${current ?? 'firmware'}': VM ${o.vm} on ${client.url} is left ${stateLeft(current)}`);
    abort.abort(new Error('interrupted (SIGINT)'));
  };
  process.on('SIGINT', onSigint);
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
      ...(o.secretGpa !== undefined ? { secretArea: { gpa: o.secretGpa, size: o.secretSize } } : {}),
      measurementTimeoutMs: o.timeout * 1000,
      ...(o.deadline !== undefined ? { deadlineMs: o.deadline * 1000 } : {}),
      signal: abort.signal,
      onProgress: (p) => {
        out(formatProgress(p));
        current = LAUNCH_STEP_AFTER[p.step];
      },
      onWait: (w) => {
        current = w.step;
        const line = `[${w.step}] waiting ${formatSeconds(Math.floor(w.elapsedMs / 1000) * 1000)} for ${w.waitingFor} from ${client.url}`;
        if (tty) {
          // One live line, rewritten in place; cleared before the next ordinary line.
          process.stderr.write(`\r\x1b[K${line}`);
          live = true;
        } else if (w.elapsedMs - lastLine >= 5000 || lastLine > w.elapsedMs) {
          lastLine = w.elapsedMs;
          process.stderr.write(`${line}\n`);
        }
      },
    });
    clearLive();
    if (o.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
    else process.stdout.write(`VM ${res.ref} is running (secret delivered; total ${sumMs(res.timings).toFixed(0)} ms)\n`);
    return 0;
  } catch (e) {
    clearLive();
    // The interruption was said already, with what it leaves behind.
    if (interrupted) return 130;
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
    abort.abort();
    secret.fill(0);
  }
}

/** The step that starts once the named one finished (for what Ctrl-C leaves behind). */
const LAUNCH_STEP_AFTER: Record<string, string> = {
  firmware: 'certificates',
  certificates: 'chain',
  chain: 'session',
  session: 'initialize',
  initialize: 'measurement',
  measurement: 'verify',
  verify: 'secret',
  secret: 'inject',
  inject: 'done',
};

export function formatProgress(p: { step: string; index: number; total: number; ms: number; detail: string }): string {
  return `[${p.index}/${p.total}] ${p.step.padEnd(12)} ${p.ms.toFixed(1).padStart(8)} ms  ${p.detail}`;
}

function sumMs(t: Record<string, number>): number {
  return Object.values(t).reduce((a, b) => a + b, 0);
}

async function demoCmd(o: { keep?: boolean; insideSim?: boolean; vmLess?: boolean; snp?: boolean }): Promise<number> {
  const { runDemo } = await import('../../demo/demo.js');
  return runDemo({ keep: Boolean(o.keep), insideSim: Boolean(o.insideSim), vmLess: Boolean(o.vmLess), snp: Boolean(o.snp), env: process.env });
}
