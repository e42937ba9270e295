/**
 * Guest-owner launch commands, drop-in for sevctl 0.6 (`session`,
 * `measurement build`, `vmsa build|update|show`, `secret build`) plus
 * `policy`, `measurement verify` and `secret inspect`. Thin over lib/launch,
 * which is imported lazily inside each action.
 */
import { Command, Option } from 'commander';
import { action, parseIntArg, printJson, writeOutputFile, EXIT_FAIL, EXIT_OK } from '../run.js';

type Launch = typeof import('../../launch/index.js');
const launchLib = (): Promise<Launch> => import('../../launch/index.js');
const bytesLib = () => import('../../launch/bytes.js');

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** A malformed POLICY argument is a usage error (exit 2), as it is for sevctl. */
async function parsePolicyArg(text: string): Promise<import('../../launch/index.js').Policy> {
  const L = await launchLib();
  const { UsageError } = await import('../../errors.js');
  try {
    return L.Policy.parse(text);
  } catch (e) {
    if (e instanceof L.PolicyError) throw new UsageError(e.message);
    throw e;
  }
}
const intOpt = (what: string) => (v: string) => parseIntArg(v, what);

/**
 * Run `fn`, zeroing every buffer it hands to `own` (TEK, TIK, secret files,
 * decrypted tables) however it ends: an error half-way (bad MAC, missing
 * file) must not skip the wipe.
 */
async function wiping<T>(fn: (own: <B extends Uint8Array>(b: B) => B) => Promise<T>): Promise<T> {
  const owned: Uint8Array[] = [];
  try {
    return await fn((b) => {
      owned.push(b);
      return b;
    });
  } finally {
    for (const b of owned) b.fill(0);
  }
}


// ---------------------------------------------------------------- session

interface SessionOpts { name?: string; ca?: string; verify: boolean; sevctlPolicyMac?: boolean }

async function sessionCmd(pdhFile: string, policyArg: string, o: SessionOpts): Promise<void> {
  const L = await launchLib();
  const { readFileChecked } = await bytesLib();
  const certs = await import('../../certs/index.js');
  const { InputError } = await import('../../errors.js');
  const policy = await parsePolicyArg(policyArg);
  // Fail on an unusable output location before verifying or warning about anything.
  const fs = await import('node:fs');
  const path = await import('node:path');
  const outDir = path.dirname(path.resolve(`${o.name ?? 'vm'}_godh.b64`));
  if (!fs.statSync(outDir, { throwIfNoEntry: false })?.isDirectory()) throw new InputError(`--name ${o.name}: directory ${outDir} does not exist`);
  const raw = readFileChecked(pdhFile, 'PDH file');
  const SEV = certs.SEV_CERT_SIZE;
  if (raw.length < SEV) throw new InputError(`${pdhFile}: ${raw.length} bytes, a PDH certificate is ${SEV} (0x824) bytes`);
  // Decode the PDH before saying anything about verification, so a wrong file gives one line.
  const pdh = certs.decodeSevCert(raw, { name: `${pdhFile}: PDH`, usage: certs.Usage.PDH, allowTrailing: true });
  if (raw.length < 4 * SEV) {
    if (o.ca) throw new InputError(`${pdhFile}: holds only a PDH; --ca needs a SEV chain (PDH‖PEK‖OCA‖CEK) to verify`);
    process.stderr.write(`sevkit: warning: ${pdhFile} holds only a PDH certificate; nothing was verified (pass the platform's certificate chain to verify it)\n`);
  } else if (!o.verify) {
    process.stderr.write(`sevkit: warning: --no-verify: the certificate chain in ${pdhFile} was NOT verified\n`);
  } else {
    await verifySessionChain(raw, pdhFile, o.ca);
  }
  if (o.sevctlPolicyMac && policy.value > 0x3f) {
    process.stderr.write('sevkit: warning: --sevctl-policy-mac: the policy MAC uses sevctl\'s truncated encoding; the firmware will refuse LAUNCH_START for this policy\n');
  }
  const s = L.createSession(pdh, policy, o.sevctlPolicyMac ? { policyEncoding: 'sevctl' } : {});
  try {
    L.writeSessionFiles(s, '.', o.name ?? 'vm');
  } finally {
    s.tek.fill(0);
    s.tik.fill(0);
  }
}

/**
 * Verify the chain in a session's input file before trusting its PDH. Trust
 * anchors: --ca if given; else the built-in AMD roots of the CEK's
 * generation; else, only under the simulator (SEVKIT_SIM_STATE), its TEST
 * roots, said loudly. CA certificates inside a full-chain file are never
 * trusted by themselves: they must equal the chosen anchor.
 */
async function verifySessionChain(raw: Buffer, file: string, caFile: string | undefined): Promise<void> {
  const L = await launchLib();
  const { readFileChecked } = await bytesLib();
  const certs = await import('../../certs/index.js');
  const SEV = certs.SEV_CERT_SIZE;
  const full = raw.length > 4 * SEV ? certs.decodeFullChain(raw, file) : undefined;
  const sev = full ? full.sev : certs.decodeSevChain(raw, file);
  let anchor: import('../../certs/index.js').CaChain | undefined;
  let source: string;
  if (caFile) {
    anchor = certs.decodeCaChain(readFileChecked(caFile, 'CA chain (ASK‖ARK)'), caFile);
    source = `CA chain ${caFile}`;
  } else {
    const gen = certs.detectGeneration(sev.cek);
    const sim = gen ? undefined : certs.simulatorCaChain();
    if (gen) {
      anchor = certs.builtinCaChain(gen);
      source = `built-in AMD ${gen} roots`;
    } else if (sim && certs.verifyAskCek(sim.ask, sev.cek).ok) {
      anchor = sim;
      source = `SIMULATED platform TEST roots from ${process.env.SEVKIT_SIM_STATE}, not AMD`;
    } else {
      source = 'none';
    }
  }
  if (full && anchor && !certs.encodeCaChain(full.ca).equals(certs.encodeCaChain(anchor))) {
    throw new L.SessionError('ERR_CHAIN_UNTRUSTED', `${file}: the chain's ASK/ARK are not the trusted roots (${source}); refusing (use --ca to name the CA chain to trust, or --no-verify)`, 'INVALID_CERTIFICATE');
  }
  const r = certs.verifyChain({ sev, ...(anchor ? { ca: anchor } : {}) });
  if (!r.ok) {
    const f = r.failed[0]!;
    throw new L.SessionError('ERR_CHAIN_INVALID', `${file}: certificate chain is not valid: ${f.signer} → ${f.subject}: ${f.reason ?? 'signature does not verify'} (use --no-verify to proceed anyway)`, 'INVALID_CERTIFICATE');
  }
  process.stderr.write(`sevkit: certificate chain verified (${source})\n`);
}

// ---------------------------------------------------------------- policy

async function policyCmd(value: string, o: { json?: boolean }): Promise<void> {
  const p = await parsePolicyArg(value);
  if (o.json) printJson(p.toJSON());
  else process.stdout.write(`${p.explain().join('\n')}\n`);
}

// ---------------------------------------------------------------- measurement

interface DigestOpts {
  launchDigest?: string;
  firmware?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  numCpus?: number;
  vmsaCpu0?: string;
  vmsaCpu1?: string;
  vcpuType?: string;
  vmType?: string;
}

interface BuildOpts extends DigestOpts {
  apiMajor: number;
  apiMinor: number;
  buildId: number;
  policy: number;
  tik: string;
  nonce?: string;
  launchMeasureBlob?: string;
  outfile?: string;
}

/** The launch digest from the flags sevctl takes (plus --vcpu-type/--vm-type). */
async function digestFrom(o: DigestOpts, policyValue: number): Promise<Buffer> {
  const L = await launchLib();
  const { readFileChecked, decodeBase64 } = await bytesLib();
  const { UsageError } = await import('../../errors.js');
  if (o.launchDigest !== undefined) {
    if (o.firmware) throw new UsageError('give either --launch-digest or --firmware, not both');
    const d = decodeBase64(o.launchDigest, '--launch-digest');
    if (d.length !== 32) throw new L.LaunchInputError(`--launch-digest: ${d.length} bytes, expected 32 (SHA-256)`, 'ERR_LENGTH');
    return d;
  }
  if (!o.firmware) throw new UsageError('One of --firmware or --launch-digest must be specified.');
  const firmware = readFileChecked(o.firmware, '--firmware');
  const kernelGiven = [o.kernel, o.initrd, o.cmdline].filter((x) => x !== undefined).length;
  if (kernelGiven !== 0 && kernelGiven !== 3) throw new UsageError('--kernel, --initrd, --cmdline must be specified together');
  const kernel = o.kernel !== undefined
    ? { kernel: readFileChecked(o.kernel, '--kernel'), initrd: readFileChecked(o.initrd!, '--initrd'), cmdline: o.cmdline! }
    : null;
  const input: import('../../launch/index.js').LaunchDigestInput = { firmware, firmwareName: o.firmware, kernel };
  if (policyValue & 0x04) {
    if (o.numCpus === undefined) throw new UsageError('SEV-ES policy bit is set, CPU/VMSA info must be specified (--num-cpus with --vcpu-type, or --vmsa-cpu0/--vmsa-cpu1)');
    const files = o.vmsaCpu0 !== undefined || o.vmsaCpu1 !== undefined;
    if (files) {
      if (o.vcpuType !== undefined) throw new UsageError('give either --vmsa-cpu0/--vmsa-cpu1 or --vcpu-type, not both');
      if (o.vmsaCpu0 === undefined || o.vmsaCpu1 === undefined) throw new UsageError('--num-cpus, --vmsa-cpu0, --vmsa-cpu1 must be specified together');
      input.vmsaFiles = { cpu0: readFileChecked(o.vmsaCpu0, '--vmsa-cpu0'), cpu1: readFileChecked(o.vmsaCpu1, '--vmsa-cpu1'), numCpus: o.numCpus };
    } else {
      if (o.vcpuType === undefined) throw new UsageError('SEV-ES needs --vcpu-type (e.g. EPYC-v4) or --vmsa-cpu0/--vmsa-cpu1 with --num-cpus');
      input.es = { numCpus: o.numCpus, vcpuType: o.vcpuType, vmType: L.parseVmType(o.vmType ?? 'legacy') };
    }
  }
  return L.computeLaunchDigest(input);
}

async function measurementBuildCmd(o: BuildOpts): Promise<void> {
  const L = await launchLib();
  const { readPathOrBase64 } = await bytesLib();
  const { UsageError } = await import('../../errors.js');
  const digest = await digestFrom(o, o.policy);
  const out = await wiping(async (own) => {
    const tik = own(readPathOrBase64(o.tik, '--tik', 16));
    let nonce: Buffer;
    if (o.nonce !== undefined) nonce = readPathOrBase64(o.nonce, '--nonce', 16);
    else if (o.launchMeasureBlob !== undefined) nonce = readPathOrBase64(o.launchMeasureBlob, '--launch-measure-blob', 48).subarray(32);
    else throw new UsageError('One of --nonce or --launch-measure-blob must be specified.');
    return L.launchMeasure({ digest, mnonce: nonce, tik, apiMajor: o.apiMajor, apiMinor: o.apiMinor, build: o.buildId, policy: o.policy });
  });
  if (o.outfile) {
    await writeOutputFile(o.outfile, out);
    process.stdout.write(`Wrote outfile: ${o.outfile}\n`);
  } else {
    process.stdout.write(`${out.toString('base64')}\n`);
  }
}

interface VerifyOpts extends DigestOpts {
  measurement: string;
  sevInfo?: string;
  apiMajor?: number;
  apiMinor?: number;
  buildId?: number;
  hostPolicy?: number;
  policy: string;
  tik: string;
  json?: boolean;
}

/** QMP query-sev (flat 7.2 or 9.1 union, with or without "return"), or aleph's snake_case sev_info. */
async function parseSevInfo(text: string): Promise<import('../../launch/index.js').HostSevInfo> {
  const fs = await import('node:fs');
  const { InputError } = await import('../../errors.js');
  let src = text;
  if (!text.trim().startsWith('{')) {
    try {
      src = fs.readFileSync(text, 'utf8');
    } catch (e) {
      throw new InputError(`--sev-info: ${text}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  }
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(src);
  } catch {
    throw new InputError('--sev-info: not valid JSON (expected the output of QMP query-sev)');
  }
  if (j && typeof j.return === 'object') j = j.return as Record<string, unknown>;
  // aleph's CRN measurement endpoint: {"sev_info": {...}, "launch_measure": "..."}
  if (j && typeof j.sev_info === 'object') j = j.sev_info as Record<string, unknown>;
  const num = (...keys: string[]) => {
    for (const k of keys) if (typeof j[k] === 'number') return j[k] as number;
    throw new InputError(`--sev-info: missing numeric field ${keys[0]}`);
  };
  return { apiMajor: num('api-major', 'api_major', 'apiMajor'), apiMinor: num('api-minor', 'api_minor', 'apiMinor'), buildId: num('build-id', 'build_id', 'buildId'), policy: num('policy') };
}

async function measurementVerifyCmd(o: VerifyOpts): Promise<number> {
  const L = await launchLib();
  const { readPathOrBase64 } = await bytesLib();
  const { UsageError } = await import('../../errors.js');
  const policy = await parsePolicyArg(o.policy);
  let info;
  if (o.sevInfo !== undefined) info = await parseSevInfo(o.sevInfo);
  else {
    if (o.apiMajor === undefined || o.apiMinor === undefined || o.buildId === undefined) {
      throw new UsageError('give --sev-info (QMP query-sev output) or --api-major, --api-minor and --build-id');
    }
    info = { apiMajor: o.apiMajor, apiMinor: o.apiMinor, buildId: o.buildId, policy: o.hostPolicy ?? policy.value };
  }
  const blob = readPathOrBase64(o.measurement, '--measurement', 48);
  const v = await wiping(async (own) => {
    const tik = own(readPathOrBase64(o.tik, '--tik', 16));
    const digest = await digestFrom(o, policy.value);
    return L.verifyMeasurement({ measurement: blob, sevInfo: info, expected: { policy, tik, digest } });
  });
  if (o.json) {
    printJson(v.match ? { match: true, digest: v.digest.toString('hex') } : { match: false, reason: v.reason, message: v.message });
  } else if (v.match) {
    process.stdout.write(`match: launch measurement verified (policy ${policy.toHex()}, firmware API ${info.apiMajor}.${info.apiMinor} build ${info.buildId}, digest ${v.digest.toString('hex')})\n`);
  } else {
    process.stdout.write(`mismatch: ${v.message}\n`);
  }
  return v.match ? EXIT_OK : EXIT_FAIL;
}

// ---------------------------------------------------------------- vmsa

interface VmsaOpts { cpu: number; family?: number; model?: number; stepping?: number; firmware?: string; userspace: string }

async function vmsaOptions(o: VmsaOpts): Promise<import('../../launch/index.js').SevctlVmsaOptions> {
  const L = await launchLib();
  const { readFileChecked } = await bytesLib();
  const { UsageError } = await import('../../errors.js');
  if (o.userspace !== 'qemu' && o.userspace !== 'krun') throw new UsageError(`--userspace must be qemu or krun, got '${o.userspace}'`);
  const opts: import('../../launch/index.js').SevctlVmsaOptions = { cpu: o.cpu, userspace: o.userspace };
  if (o.family !== undefined) opts.family = o.family;
  if (o.model !== undefined) opts.model = o.model;
  if (o.stepping !== undefined) opts.stepping = o.stepping;
  if (o.firmware !== undefined) {
    const info = L.parseOvmf(readFileChecked(o.firmware, '--firmware'), o.firmware);
    if (o.userspace === 'qemu' && o.cpu !== 0) opts.resetAddress = L.sevctlResetAddress(L.requireResetVector(info, o.firmware));
  }
  return opts;
}

async function vmsaBuildCmd(file: string, o: VmsaOpts): Promise<void> {
  const L = await launchLib();
  await writeOutputFile(file, L.buildSevctlVmsa(await vmsaOptions(o)));
}

/** A VMSA file: one 4096-byte page, refused with one line otherwise. */
async function readVmsaFile(file: string): Promise<Buffer> {
  const L = await launchLib();
  const { readFileChecked } = await bytesLib();
  const page = readFileChecked(file, 'VMSA file');
  if (page.length !== L.VMSA_SIZE) throw new L.VmsaError(`${file}: ${page.length} bytes, a VMSA file is ${L.VMSA_SIZE}`, 'ERR_VMSA_SIZE');
  return page;
}

async function vmsaUpdateCmd(file: string, o: VmsaOpts): Promise<void> {
  const L = await launchLib();
  const page = await readVmsaFile(file);
  await writeOutputFile(file, L.updateSevctlVmsa(page, await vmsaOptions(o)));
}

async function vmsaShowCmd(file: string): Promise<void> {
  const L = await launchLib();
  process.stdout.write(L.formatVmsaShow(await readVmsaFile(file)));
}

// ---------------------------------------------------------------- secret

interface SecretOpts { tik: string; tek: string; launchMeasureBlob: string; iv?: string; secret?: string[]; layout: string; firmware?: string }

async function secretBuildCmd(headerFile: string, payloadFile: string, o: SecretOpts): Promise<void> {
  const L = await launchLib();
  const { readPathOrBase64, readFileChecked, decodeBase64 } = await bytesLib();
  const { UsageError } = await import('../../errors.js');
  if (!o.secret?.length) throw new UsageError('at least one --secret GUID:FILE is required');
  const { layout, secret: secrets } = o;
  if (layout !== 'sevctl' && layout !== 'aleph') throw new UsageError(`--layout must be sevctl or aleph, got '${layout}'`);
  await wiping(async (own) => {
    const tek = own(readPathOrBase64(o.tek, '--tek', 16));
    const tik = own(readPathOrBase64(o.tik, '--tik', 16));
    const blob = readPathOrBase64(o.launchMeasureBlob, '--launch-measure-blob');
    if (blob.length !== 48 && blob.length !== 32) throw new L.LaunchInputError(`--launch-measure-blob: ${blob.length} bytes, expected 48 (or the 32-byte MEASURE)`, 'ERR_LENGTH');
    let iv: Buffer | undefined;
    if (o.iv !== undefined) {
      iv = decodeBase64(o.iv, '--iv');
      if (iv.length !== 16) throw new L.LaunchInputError(`--iv: ${iv.length} bytes, expected 16`, 'ERR_LENGTH');
    }
    const entries = secrets.map((spec) => {
      const i = spec.indexOf(':');
      if (i < 0) throw new UsageError(`--secret '${spec}': expected GUID:FILE (GUID may be disk-password or luks-key)`);
      const guid = L.resolveSecretGuid(spec.slice(0, i));
      return { guid, data: own(readFileChecked(spec.slice(i + 1), `--secret ${spec.slice(0, i)}`)) };
    });
    let maxSize: number | undefined;
    if (o.firmware) maxSize = L.requireSecretArea(L.parseOvmf(readFileChecked(o.firmware, '--firmware'), o.firmware), o.firmware).size;
    const s = L.buildSecret({ tek, tik, measurement: blob, entries, layout, ...(iv ? { iv } : {}), ...(maxSize !== undefined ? { maxSize } : {}) });
    await writeOutputFile(headerFile, s.header);
    process.stdout.write(`Wrote header to: ${headerFile}\n`);
    await writeOutputFile(payloadFile, s.payload);
    process.stdout.write(`Wrote payload to: ${payloadFile}\n`);
  });
}

async function secretInspectCmd(headerFile: string, payloadFile: string, o: { tik: string; tek: string; launchMeasureBlob: string; json?: boolean }): Promise<void> {
  const L = await launchLib();
  const { readPathOrBase64 } = await bytesLib();
  await wiping(async (own) => {
    const tek = own(readPathOrBase64(o.tek, '--tek', 16));
    const tik = own(readPathOrBase64(o.tik, '--tik', 16));
    const blob = readPathOrBase64(o.launchMeasureBlob, '--launch-measure-blob');
    const header = readPathOrBase64(headerFile, 'HEADER', L.SECRET_PACKET_HEADER_SIZE);
    const payload = readPathOrBase64(payloadFile, 'PAYLOAD');
    const plain = own(L.openSecret({ header, payload, tek, tik, measurement: blob }));
    const t = L.parseSecretTable(plain);
    for (const e of t.entries) own(e.data);
    // Only GUIDs and sizes: the secret values themselves are never printed.
    if (o.json) printJson({ layout: t.layout, length: t.length, entries: t.entries.map((e) => ({ guid: e.guid, size: e.data.length })) });
    else {
      process.stdout.write(`MAC ok; secret table (${t.layout} layout, length ${t.length}, ${t.entries.length} entr${t.entries.length === 1 ? 'y' : 'ies'})\n`);
      for (const e of t.entries) process.stdout.write(`  ${e.guid}  ${e.data.length} bytes\n`);
    }
  });
}

// ---------------------------------------------------------------- wiring

function addDigestOptions(c: Command): Command {
  return c
    .option('--launch-digest <b64>', 'Launch digest in base64')
    .option('--firmware <path>', 'Path to firmware/OVMF binary')
    .option('--kernel <path>', 'Path to kernel (kernel-hashes=on)')
    .option('--initrd <path>', 'Path to initrd')
    .option('--cmdline <string>', 'Kernel commandline')
    .option('--num-cpus <n>', 'Number of virtual CPUs (SEV-ES)', intOpt('--num-cpus'))
    .option('--vmsa-cpu0 <path>', 'path to VMSA state for boot CPU')
    .option('--vmsa-cpu1 <path>', 'path to VMSA state for additional CPUs')
    .option('--vcpu-type <type>', 'SEV-ES without VMSA files: QEMU -cpu model (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, ...)')
    .addOption(new Option('--vm-type <type>', 'SEV-ES VMSA variant: legacy (QEMU < 9.1 / legacy-vm-type) or init2 (KVM_SEV_INIT2)').choices(['legacy', 'init2']).default('legacy'));
}

function addVmsaOptions(c: Command): Command {
  return c
    .argument('<FILE>', 'VMSA file')
    .requiredOption('--cpu <n>', 'CPU number', intOpt('--cpu'))
    .option('--family <n>', 'CPU family', intOpt('--family'))
    .option('--model <n>', 'CPU model', intOpt('--model'))
    .option('--stepping <n>', 'CPU stepping', intOpt('--stepping'))
    .option('--firmware <path>', 'OVMF firmware path')
    .requiredOption('--userspace <vmm>', 'Userspace implementation (qemu or krun)');
}

/** Registers the `launch` commands on the sevkit program. */
export function register(program: Command): void {
  program
    .command('session')
    .description('Create a launch session (GODH certificate, session blob, TEK, TIK) for a platform\'s PDH')
    .argument('<PDH_FILE>', 'PDH certificate, SEV chain (PDH‖PEK‖OCA‖CEK) or full chain (…‖ASK‖ARK)')
    .argument('<POLICY>', 'guest policy, decimal or 0x-hex (or flags like NODBG|ES)')
    .option('-n, --name <NAME>', 'prefix of the output files (default vm)')
    .option('--ca <FILE>', 'CA chain (ASK‖ARK) to verify a SEV chain against instead of the built-in AMD roots')
    .option('--no-verify', 'create the session even if the certificate chain does not verify')
    .option('--sevctl-policy-mac', 'MAC the policy the way sevctl 0.6 does (truncated above 0x3f; for byte-compatibility tests only)')
    .addHelpText('after', '\nThe policy MAC covers the real 32-bit little-endian policy, as the firmware computes it.\nsevctl 0.6 truncates policy bits above 0x3f in the MAC, so its sessions fail LAUNCH_START for such policies.')
    .action(action(sessionCmd));

  program
    .command('policy')
    .description('Explain a guest policy value')
    .argument('<VALUE>', 'decimal, 0x-hex, or flags (NODBG|NOKS|ES|NOSEND|DOMAIN|SEV, minfw=MAJ.MIN)')
    .option('--json', 'machine-readable output')
    .action(action(policyCmd));

  const m = program.command('measurement').description('Launch measurement: build the expected value, or verify a host\'s');
  addDigestOptions(
    m.command('build')
      .description('Build the expected LAUNCH_MEASURE blob (sevctl-compatible)')
      .requiredOption('--api-major <n>', 'SEV host API major (int or hex)', intOpt('--api-major'))
      .requiredOption('--api-minor <n>', 'SEV host API minor (int or hex)', intOpt('--api-minor'))
      .requiredOption('--build-id <n>', 'SEV host build ID (int or hex)', intOpt('--build-id'))
      .requiredOption('--policy <n>', 'SEV guest policy (int or hex)', intOpt('--policy'))
      .requiredOption('--tik <path|b64>', 'tik data (path or base64)')
      .option('--nonce <path|b64>', 'Expected nonce (path or base64)')
      .option('--launch-measure-blob <path|b64>', 'Extract nonce from output of LAUNCH_MEASURE (path or base64)')
      .option('--outfile <file>', 'Optionally write binary content to filename'),
  ).action(action(measurementBuildCmd));
  addDigestOptions(
    m.command('verify')
      .description('Verify a host-reported launch measurement against your own firmware, policy and TIK')
      .requiredOption('--measurement <path|b64>', 'the host\'s LAUNCH_MEASURE blob (query-sev-launch-measure data)')
      .option('--sev-info <json|file>', 'the host\'s QMP query-sev output (api version, build, policy)')
      .option('--api-major <n>', 'host API major', intOpt('--api-major'))
      .option('--api-minor <n>', 'host API minor', intOpt('--api-minor'))
      .option('--build-id <n>', 'host build ID', intOpt('--build-id'))
      .option('--host-policy <n>', 'policy the host reports (default: --policy)', intOpt('--host-policy'))
      .requiredOption('--policy <policy>', 'the policy you expect')
      .requiredOption('--tik <path|b64>', 'your TIK (path or base64)')
      .option('--json', 'machine-readable output'),
  ).action(action(measurementVerifyCmd));

  const v = program.command('vmsa').description('SEV-ES VMSA files (sevctl-compatible)');
  addVmsaOptions(v.command('build').description('Build a VMSA file')).action(action(vmsaBuildCmd));
  addVmsaOptions(v.command('update').description('Update a VMSA file in place')).action(action(vmsaUpdateCmd));
  v.command('show').description('Print a VMSA file as JSON').argument('<FILE>', 'VMSA binary file to print as JSON').action(action(vmsaShowCmd));

  const s = program.command('secret').description('Launch secrets');
  s.command('build')
    .description('Build a LAUNCH_SECRET packet header and encrypted payload (sevctl-compatible)')
    .requiredOption('--tik <path|b64>', 'tik data (path or base64)')
    .requiredOption('--tek <path|b64>', 'tek data (path or base64)')
    .requiredOption('--launch-measure-blob <path|b64>', 'Output from LAUNCH_MEASURE (path or base64)')
    .addOption(new Option('--iv <b64>', 'fixed IV (testing only)').hideHelp())
    .option('--secret <GUID:FILE>', 'secret to inject; GUID may be disk-password or luks-key (repeatable)', collect, [])
    .addOption(new Option('--layout <layout>', 'secret table layout').choices(['sevctl', 'aleph']).default('sevctl'))
    .option('--firmware <path>', 'check the payload fits the OVMF secret area')
    .argument('<HEADER_FILE>', 'Path to output secret header file')
    .argument('<PAYLOAD_FILE>', 'Path to output secret payload file')
    .action(action(secretBuildCmd));
  s.command('inspect')
    .description('Check a packet\'s MAC and list the secret table entries (GUIDs and sizes only)')
    .requiredOption('--tik <path|b64>', 'tik data (path or base64)')
    .requiredOption('--tek <path|b64>', 'tek data (path or base64)')
    .requiredOption('--launch-measure-blob <path|b64>', 'the launch measurement the packet is bound to')
    .option('--json', 'machine-readable output')
    .argument('<HEADER>', 'packet header (path or base64)')
    .argument('<PAYLOAD>', 'encrypted payload (path or base64)')
    .action(action(secretInspectCmd));
}
