/**
 * Guest-owner launch commands, drop-in for sevctl 0.6 (`session`,
 * `measurement build`, `vmsa build|update|show`, `secret build`) plus
 * `policy`, `measurement verify` and `secret inspect`. Thin over lib/launch,
 * which is imported lazily inside each action.
 */
import { Command, Option } from 'commander';
import { action, parseIntArg, printJson, warnIfTestRoot, writeOutputFile, EXIT_FAIL, EXIT_OK } from '../run.js';

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

interface SessionOpts {
  name?: string;
  ca?: string;
  verify: boolean;
  sevctlPolicyMac?: boolean;
  json?: boolean;
}

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
    process.stderr.write(
      `sevkit: warning: ${pdhFile} holds only a PDH certificate; nothing was verified (pass the platform's certificate chain to verify it)\n`,
    );
  } else if (!o.verify) {
    process.stderr.write(`sevkit: warning: --no-verify: the certificate chain in ${pdhFile} was NOT verified\n`);
  } else {
    await verifySessionChain(raw, pdhFile, o.ca);
  }
  if (o.sevctlPolicyMac && policy.value > 0x3f) {
    process.stderr.write(
      "sevkit: warning: --sevctl-policy-mac: the policy MAC uses sevctl's truncated encoding; the firmware will refuse LAUNCH_START for this policy\n",
    );
  }
  const s = L.createSession(pdh, policy, o.sevctlPolicyMac ? { policyEncoding: 'sevctl' } : {});
  try {
    const files = L.writeSessionFiles(s, '.', o.name ?? 'vm');
    if (o.json) printJson({ policy: policy.toHex(), files, godh: s.godhB64, session: s.sessionB64 });
  } finally {
    s.tek.fill(0);
    s.tik.fill(0);
  }
}

/**
 * Verify the chain in a session's input file before trusting its PDH. The anchor rule and the full-chain
 * check are certs' (resolveTrustAnchor, verifyTrustedChain); the CLI only offers the simulator's TEST roots
 * when it runs under one ($SEVKIT_SIM_STATE) and words the outcome.
 */
async function verifySessionChain(raw: Buffer, file: string, caFile: string | undefined): Promise<void> {
  const L = await launchLib();
  const { readFileChecked } = await bytesLib();
  const certs = await import('../../certs/index.js');
  const { sevkitEnv } = await import('../env.js');
  const ca = caFile ? certs.decodeCaChain(readFileChecked(caFile, 'CA chain (ASK‖ARK)'), caFile) : undefined;
  const simState = ca ? undefined : sevkitEnv().simState;
  const testCa = simState ? (await import('../../sim/ca-chain.js')).simulatorCaChain(simState) : undefined;
  const chain = raw.length > certs.SEV_CHAIN_SIZE ? certs.decodeFullChain(raw, file) : certs.decodeSevChain(raw, file);
  let r: import('../../certs/index.js').TrustedChainVerification;
  try {
    r = certs.verifyTrustedChain({ chain, ca, testCa });
  } catch (e) {
    if (e instanceof certs.CertificateError && e.code === 'ERR_CHAIN_UNTRUSTED') {
      throw new L.SessionError('ERR_CHAIN_UNTRUSTED', `${file}: ${e.message} (use --ca to name the CA chain to trust, or --no-verify)`, 'INVALID_CERTIFICATE');
    }
    throw e;
  }
  const a = r.anchor;
  const source = !a
    ? 'none'
    : a.chosenBy === 'ca'
      ? `CA chain ${caFile}`
      : a.chosenBy === 'test'
        ? `SIMULATED platform TEST roots from ${simState}, not AMD`
        : a.description;
  warnIfTestRoot(a?.testRoot ?? false, source);
  if (!r.ok) {
    const f = r.failed[0]!;
    throw new L.SessionError(
      'ERR_CHAIN_INVALID',
      `${file}: certificate chain is not valid: ${f.signer} → ${f.subject}: ${f.reason ?? 'signature does not verify'} (use --no-verify to proceed anyway)`,
      'INVALID_CERTIFICATE',
    );
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
  vcpuSig?: number;
  vcpuFamily?: number;
  vcpuModel?: number;
  vcpuStepping?: number;
  sevFeatures?: number;
  cmdlineFile?: string;
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
  json?: boolean;
  printDigest?: boolean;
}

/** The launch digest from the flags sevctl takes (plus the vCPU, VMSA-variant and SEV-feature flags). */
async function digestFrom(o: DigestOpts, policyValue: number): Promise<Buffer> {
  const L = await launchLib();
  const { decodeBase64 } = await bytesLib();
  if (o.launchDigest !== undefined) {
    const d = decodeBase64(o.launchDigest, '--launch-digest');
    if (d.length !== 32) throw new L.LaunchInputError(`--launch-digest: ${d.length} bytes, expected 32 (SHA-256)`, 'ERR_LENGTH');
    return d;
  }
  return L.computeLaunchDigest((await launchFrom(o, policyValue))!);
}

/** What the digest is computed from (firmware, kernel, VMSAs); undefined when --launch-digest gives it directly. */
async function launchFrom(o: DigestOpts, policyValue: number): Promise<import('../../launch/index.js').LaunchDigestInput | undefined> {
  const L = await launchLib();
  const { readFileChecked } = await bytesLib();
  const { UsageError } = await import('../../errors.js');
  if (o.launchDigest !== undefined) {
    if (o.firmware) throw new UsageError('give either --launch-digest or --firmware, not both');
    return undefined;
  }
  if (!o.firmware) throw new UsageError('One of --firmware or --launch-digest must be specified.');
  const firmware = readFileChecked(o.firmware, '--firmware');
  const input: import('../../launch/index.js').LaunchDigestInput = { firmware, firmwareName: o.firmware, kernel: await kernelFrom(o) };
  if (policyValue & 0x04) {
    if (o.numCpus === undefined)
      throw new UsageError('SEV-ES policy bit is set, CPU/VMSA info must be specified (--num-cpus with --vcpu-type or --vcpu-sig, or --vmsa-cpu0/--vmsa-cpu1)');
    const files = o.vmsaCpu0 !== undefined || o.vmsaCpu1 !== undefined;
    const cpu = await cpuFrom(o);
    if (files) {
      if (cpu) throw new UsageError('give either --vmsa-cpu0/--vmsa-cpu1 or the vCPU type/signature, not both');
      if (o.vmsaCpu0 === undefined || o.vmsaCpu1 === undefined) throw new UsageError('--num-cpus, --vmsa-cpu0, --vmsa-cpu1 must be specified together');
      input.vmsaFiles = { cpu0: readFileChecked(o.vmsaCpu0, '--vmsa-cpu0'), cpu1: readFileChecked(o.vmsaCpu1, '--vmsa-cpu1'), numCpus: o.numCpus };
    } else {
      if (!cpu)
        throw new UsageError(
          'SEV-ES needs --vcpu-type (e.g. EPYC-v4), --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping, or --vmsa-cpu0/--vmsa-cpu1 with --num-cpus',
        );
      input.es = {
        numCpus: o.numCpus,
        ...cpu,
        vmType: L.parseVmType(o.vmType ?? 'legacy'),
        ...(o.sevFeatures !== undefined ? { sevFeatures: o.sevFeatures } : {}),
      };
    }
  }
  return input;
}

/** --kernel/--initrd/--cmdline (or --cmdline-file): all three or none; /dev/null and pipes are accepted as sevctl does. */
async function kernelFrom(o: DigestOpts): Promise<import('../../launch/index.js').KernelHashesInput | null> {
  const { readInputFile } = await bytesLib();
  const { UsageError, InputError } = await import('../../errors.js');
  if (o.cmdline !== undefined && o.cmdlineFile !== undefined) throw new UsageError('give either --cmdline or --cmdline-file, not both');
  const cmdGiven = o.cmdline !== undefined || o.cmdlineFile !== undefined;
  const kernelGiven = [o.kernel !== undefined, o.initrd !== undefined, cmdGiven].filter(Boolean).length;
  if (kernelGiven === 0) return null;
  if (kernelGiven !== 3) throw new UsageError('--kernel, --initrd, --cmdline must be specified together');
  // argv arrives decoded as UTF-8, invalid bytes already replaced by U+FFFD: QEMU hashes the raw bytes, so
  // such a line cannot be reproduced from a string; the raw bytes come through --cmdline-file.
  if (o.cmdline?.includes('\uFFFD')) throw new InputError('--cmdline is not valid UTF-8 (or holds U+FFFD); give the raw bytes with --cmdline-file');
  const cmdline = o.cmdlineFile !== undefined ? readInputFile(o.cmdlineFile, '--cmdline-file', 1 << 20) : o.cmdline!;
  return { kernel: readInputFile(o.kernel!, '--kernel'), initrd: readInputFile(o.initrd!, '--initrd'), cmdline };
}

/** The vCPU the owner names: --vcpu-type, --vcpu-sig, or --vcpu-family/--vcpu-model/--vcpu-stepping (one way only). */
async function cpuFrom(o: DigestOpts): Promise<{ vcpuType: string } | { vcpuSig: number } | undefined> {
  const { UsageError } = await import('../../errors.js');
  const fms = [o.vcpuFamily, o.vcpuModel, o.vcpuStepping];
  const fmsGiven = fms.filter((x) => x !== undefined).length;
  const ways = [o.vcpuType !== undefined, o.vcpuSig !== undefined, fmsGiven > 0].filter(Boolean).length;
  if (ways > 1) throw new UsageError('give one of --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping');
  if (fmsGiven && fmsGiven !== 3) throw new UsageError('--vcpu-family, --vcpu-model and --vcpu-stepping must be specified together');
  if (o.vcpuType !== undefined) return { vcpuType: o.vcpuType };
  if (o.vcpuSig !== undefined) return { vcpuSig: o.vcpuSig };
  if (fmsGiven) {
    const [f, m, st] = fms as number[];
    if (f! > 0xff + 0xf || m! > 0xff || st! > 0xf) throw new UsageError('--vcpu-family must be ≤ 270, --vcpu-model ≤ 255, --vcpu-stepping ≤ 15');
    return { vcpuSig: (await launchLib()).cpuSignature(f!, m!, st!) };
  }
  return undefined;
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
  if (o.outfile === '-' && o.json) throw new UsageError('--outfile - and --json both write to stdout: give one');
  if (o.outfile) await writeOutputFile(o.outfile, out);
  if (o.outfile === '-') return;
  if (o.json) {
    printJson({ measurement: out.toString('base64'), digest: digest.toString('hex'), ...(o.outfile ? { outfile: o.outfile } : {}) });
    return;
  }
  // The digest goes to stderr so stdout stays sevctl's one line (scripts compare it with query-sev-launch-measure).
  if (o.printDigest) process.stderr.write(`launch digest: ${digest.toString('hex')}\n`);
  process.stdout.write(o.outfile ? `Wrote outfile: ${o.outfile}\n` : `${out.toString('base64')}\n`);
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
async function parseSevInfo(text: string): Promise<import('../../launch/index.js').HostReport> {
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
    j = JSON.parse(src) as Record<string, unknown>;
  } catch {
    throw new InputError('--sev-info: not valid JSON (expected the output of QMP query-sev)');
  }
  const { hostReportFromJson } = await import('../../aleph/sev-info.js');
  try {
    return hostReportFromJson(j);
  } catch (e) {
    throw e instanceof InputError ? new InputError(`--sev-info: ${e.message.replace(/^SEV info:? ?/, '')}`) : e;
  }
}

/** The host's sev_info from --sev-info or the --api-major, --api-minor, --build-id and --host-policy flags. */
async function hostInfoFrom(o: VerifyOpts, policyValue: number): Promise<Awaited<ReturnType<typeof parseSevInfo>>> {
  const { UsageError } = await import('../../errors.js');
  if (o.sevInfo !== undefined) return parseSevInfo(o.sevInfo);
  if (o.apiMajor === undefined || o.apiMinor === undefined || o.buildId === undefined) {
    throw new UsageError('give --sev-info (QMP query-sev output) or --api-major, --api-minor and --build-id');
  }
  return { apiMajor: o.apiMajor, apiMinor: o.apiMinor, buildId: o.buildId, policy: o.hostPolicy ?? policyValue };
}

interface DiagnoseOpts extends VerifyOpts {
  vcpus: string;
  alsoFirmware?: string[];
}

async function measurementDiagnoseCmd(o: DiagnoseOpts): Promise<number> {
  const L = await launchLib();
  const { readPathOrBase64, readFileChecked } = await bytesLib();
  const { UsageError } = await import('../../errors.js');
  const range = /^(\d+)-(\d+)$/.exec(o.vcpus);
  if (!range || Number(range[1]) < 1 || Number(range[2]) < Number(range[1]) || Number(range[2]) > 4096) {
    throw new UsageError(`--vcpus must be MIN-MAX with 1 <= MIN <= MAX <= 4096, got '${o.vcpus}'`);
  }
  if (o.launchDigest !== undefined) throw new UsageError('diagnose needs --firmware (it recomputes digests), not --launch-digest');
  const policy = await parsePolicyArg(o.policy);
  const info = await hostInfoFrom(o, policy.value);
  L.checkHostReport(info);
  const blob = readPathOrBase64(o.measurement, '--measurement', 48);
  // SEV-ES inputs are optional here: whatever the owner did not pin is searched.
  const cpu = await cpuFrom(o);
  if (o.vmsaCpu0 !== undefined || o.vmsaCpu1 !== undefined)
    throw new UsageError('diagnose builds the VMSAs itself: give --vcpu-type/--vcpu-sig instead of --vmsa-cpu0/--vmsa-cpu1');
  const d = await wiping(async (own) => {
    const tik = own(readPathOrBase64(o.tik, '--tik', 16));
    // Only the firmware and kernel are read here (the policy without ES): the VMSAs are the searched part.
    const launch = (await launchFrom(o, policy.value & ~0x04))!;
    return L.diagnoseMeasurement({
      measurement: blob,
      sevInfo: info,
      tik,
      firmwares: [
        { name: o.firmware!, image: launch.firmware },
        ...(o.alsoFirmware ?? []).map((f) => ({ name: f, image: readFileChecked(f, '--also-firmware') })),
      ],
      kernel: launch.kernel ?? null,
      expected: {
        policy,
        firmware: o.firmware!,
        kernelHashes: Boolean(launch.kernel),
        ...(o.numCpus !== undefined ? { numCpus: o.numCpus } : {}),
        ...(cpu ?? {}),
        ...(o.vmType !== undefined && (policy.value & 0x04) !== 0 && o.numCpus !== undefined ? { vmType: L.parseVmType(o.vmType) } : {}),
        ...(o.sevFeatures !== undefined ? { sevFeatures: o.sevFeatures } : {}),
      },
      space: { vcpus: { min: Number(range[1]), max: Number(range[2]) } },
    });
  });
  if (o.json) printJson(L.diagnosisToJSON(d));
  else {
    process.stdout.write(`${d.explained ? 'explained' : 'not explained'}: ${d.summary}\n`);
    for (const diff of d.differences) process.stdout.write(`  ${diff.field}: you expected ${diff.expected}, the host used ${diff.actual}\n`);
    if (!d.explained) process.stdout.write(`  searched ${L.describeSearchSpace(d)}\n`);
    for (const n of d.notes) process.stdout.write(`  note: ${n}\n`);
  }
  return d.explained ? EXIT_OK : EXIT_FAIL;
}

async function measurementVerifyCmd(o: VerifyOpts): Promise<number> {
  const L = await launchLib();
  const { readPathOrBase64 } = await bytesLib();
  const policy = await parsePolicyArg(o.policy);
  const info = await hostInfoFrom(o, policy.value);
  // Before the files are read: a host value that cannot be true ends it here (verifyMeasurement checks again).
  L.checkHostReport(info);
  const blob = readPathOrBase64(o.measurement, '--measurement', 48);
  const v = await wiping(async (own) => {
    const tik = own(readPathOrBase64(o.tik, '--tik', 16));
    const launch = await launchFrom(o, policy.value);
    return L.verifyMeasurement({
      measurement: blob,
      sevInfo: info,
      expected: { policy, tik, ...(launch ? { launch } : { digest: await digestFrom(o, policy.value) }) },
    });
  });
  if (o.json) {
    printJson(
      v.match
        ? { match: true, digest: v.digest.toString('hex') }
        : { match: false, reason: v.reason, message: v.message, ...(v.diagnosis ? { diagnosis: L.diagnosisToJSON(v.diagnosis) } : {}) },
    );
  } else if (v.match) {
    process.stdout.write(
      `match: launch measurement verified (policy ${policy.toHex()}, firmware API ${info.apiMajor}.${info.apiMinor} build ${info.buildId}, digest ${v.digest.toString('hex')})\n`,
    );
  } else {
    process.stdout.write(`mismatch: ${v.message}\n`);
  }
  return v.match ? EXIT_OK : EXIT_FAIL;
}

// ---------------------------------------------------------------- vmsa

interface VmsaOpts {
  cpu: number;
  family?: number;
  model?: number;
  stepping?: number;
  firmware?: string;
  userspace: string;
}

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
    const F = await import('../../firmware/ovmf.js');
    const info = F.parseOvmf(readFileChecked(o.firmware, '--firmware'), o.firmware);
    if (o.userspace === 'qemu' && o.cpu !== 0) opts.resetAddress = L.sevctlResetAddress(F.requireResetVector(info, o.firmware));
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

interface SecretOpts {
  tik: string;
  tek: string;
  launchMeasureBlob: string;
  iv?: string;
  secret?: string[];
  layout: string;
  firmware?: string;
  json?: boolean;
}

async function secretBuildCmd(headerFile: string, payloadFile: string, o: SecretOpts): Promise<void> {
  const L = await launchLib();
  const { readPathOrBase64, readFileChecked, decodeBase64 } = await bytesLib();
  const { UsageError } = await import('../../errors.js');
  if (!o.secret?.length) throw new UsageError('at least one --secret GUID:FILE is required');
  const { layout, secret: secrets } = o;
  if (layout !== 'sevctl' && layout !== 'aleph') throw new UsageError(`--layout must be sevctl or aleph, got '${layout}'`);
  const toStdout = [headerFile, payloadFile].filter((f) => f === '-').length;
  if (toStdout > 1 || (toStdout && o.json)) throw new UsageError("only one of HEADER_FILE, PAYLOAD_FILE and --json can be stdout ('-')");
  // With a file on stdout, the notes go to stderr so the bytes stay clean.
  const note = (l: string) => (o.json ? undefined : (toStdout ? process.stderr : process.stdout).write(`${l}\n`));
  await wiping(async (own) => {
    const tek = own(readPathOrBase64(o.tek, '--tek', 16));
    const tik = own(readPathOrBase64(o.tik, '--tik', 16));
    const blob = readPathOrBase64(o.launchMeasureBlob, '--launch-measure-blob');
    if (blob.length !== 48 && blob.length !== 32)
      throw new L.LaunchInputError(`--launch-measure-blob: ${blob.length} bytes, expected 48 (or the 32-byte MEASURE)`, 'ERR_LENGTH');
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
    const F = await import('../../firmware/ovmf.js');
    if (o.firmware) maxSize = F.requireSecretArea(F.parseOvmf(readFileChecked(o.firmware, '--firmware'), o.firmware), o.firmware).size;
    const s = L.buildSecret({ tek, tik, measurement: blob, entries, layout, ...(iv ? { iv } : {}), ...(maxSize !== undefined ? { maxSize } : {}) });
    await writeOutputFile(headerFile, s.header);
    note(`Wrote header to: ${headerFile}`);
    await writeOutputFile(payloadFile, s.payload);
    note(`Wrote payload to: ${payloadFile}`);
    if (o.json)
      printJson({ header: headerFile, payload: payloadFile, packet_header: s.header.toString('base64'), secret: s.payload.toString('base64'), layout });
  });
}

async function secretInspectCmd(
  headerFile: string,
  payloadFile: string,
  o: { tik: string; tek: string; launchMeasureBlob: string; json?: boolean },
): Promise<void> {
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
    .addOption(
      new Option('--vm-type <type>', 'SEV-ES VMSA variant: legacy (QEMU < 9.1 / legacy-vm-type) or init2 (KVM_SEV_INIT2)')
        .choices(['legacy', 'init2'])
        .default('legacy'),
    )
    .option('--vcpu-sig <n>', 'SEV-ES: the vCPU signature (CPUID 1 EAX, e.g. 0xA10F11 for -cpu host on a Genoa B1)', intOpt('--vcpu-sig'))
    .option('--vcpu-family <n>', 'SEV-ES: vCPU family (with --vcpu-model and --vcpu-stepping)', intOpt('--vcpu-family'))
    .option('--vcpu-model <n>', 'SEV-ES: vCPU model', intOpt('--vcpu-model'))
    .option('--vcpu-stepping <n>', 'SEV-ES: vCPU stepping', intOpt('--vcpu-stepping'))
    .option('--sev-features <n>', 'SEV-ES: the VMSA SEV_FEATURES (0x20 where KVM enables DebugSwap in legacy VMSAs)', intOpt('--sev-features'))
    .option('--cmdline-file <path>', 'the kernel command line as raw bytes (for one that is not UTF-8)');
}

/** What `measurement verify` and `measurement diagnose` take from the host and the owner. */
function addVerifyInputs(c: Command): Command {
  return c
    .requiredOption('--measurement <path|b64>', "the host's LAUNCH_MEASURE blob (query-sev-launch-measure data)")
    .option('--sev-info <json|file>', "the host's QMP query-sev output (api version, build, policy)")
    .option('--api-major <n>', 'host API major', intOpt('--api-major'))
    .option('--api-minor <n>', 'host API minor', intOpt('--api-minor'))
    .option('--build-id <n>', 'host build ID', intOpt('--build-id'))
    .option('--host-policy <n>', 'policy the host reports (default: --policy)', intOpt('--host-policy'))
    .requiredOption('--policy <policy>', 'the policy you expect')
    .requiredOption('--tik <path|b64>', 'your TIK (path or base64)')
    .option('--json', 'machine-readable output');
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
    .description("Create a launch session (GODH certificate, session blob, TEK, TIK) for a platform's PDH")
    .argument('<PDH_FILE>', 'PDH certificate, SEV chain (PDH‖PEK‖OCA‖CEK) or full chain (…‖ASK‖ARK)')
    .argument('<POLICY>', 'guest policy, decimal or 0x-hex (or flags like NODBG|ES)')
    .option('-n, --name <NAME>', 'prefix of the output files (default vm)')
    .option('--ca <FILE>', 'CA chain (ASK‖ARK) to verify a SEV chain against instead of the built-in AMD roots')
    .option('--no-verify', 'create the session even if the certificate chain does not verify')
    .option('--sevctl-policy-mac', 'MAC the policy the way sevctl 0.6 does (truncated above 0x3f; for byte-compatibility tests only)')
    .option('--json', 'print the files written and the policy as JSON')
    .addHelpText(
      'after',
      '\nThe policy MAC covers the real 32-bit little-endian policy, as the firmware computes it.\nsevctl 0.6 truncates policy bits above 0x3f in the MAC, so its sessions fail LAUNCH_START for such policies.',
    )
    .action(action(sessionCmd));

  program
    .command('policy')
    .description('Explain a guest policy value')
    .argument('<VALUE>', 'decimal, 0x-hex, or flags (NODBG|NOKS|ES|NOSEND|DOMAIN|SEV, minfw=MAJ.MIN)')
    .option('--json', 'machine-readable output')
    .action(action(policyCmd));

  const m = program.command('measurement').description("Launch measurement: build the expected value, or verify a host's");
  addDigestOptions(
    m
      .command('build')
      .description('Build the expected LAUNCH_MEASURE blob (sevctl-compatible)')
      .requiredOption('--api-major <n>', 'SEV host API major (int or hex)', intOpt('--api-major'))
      .requiredOption('--api-minor <n>', 'SEV host API minor (int or hex)', intOpt('--api-minor'))
      .requiredOption('--build-id <n>', 'SEV host build ID (int or hex)', intOpt('--build-id'))
      .requiredOption('--policy <n>', 'SEV guest policy (int or hex)', intOpt('--policy'))
      .requiredOption('--tik <path|b64>', 'tik data (path or base64)')
      .option('--nonce <path|b64>', 'Expected nonce (path or base64)')
      .option('--launch-measure-blob <path|b64>', 'Extract nonce from output of LAUNCH_MEASURE (path or base64)')
      .option('--outfile <file>', 'Optionally write binary content to filename')
      .option('--print-digest', 'also print the launch digest (hex) on stderr')
      .option('--json', 'machine-readable output: {measurement, digest}'),
  ).action(action(measurementBuildCmd));
  addVerifyInputs(
    addDigestOptions(m.command('verify').description('Verify a host-reported launch measurement against your own firmware, policy and TIK')),
  ).action(action(measurementVerifyCmd));
  addVerifyInputs(
    addDigestOptions(
      m
        .command('diagnose')
        .description(
          "Search the launch variants (vCPU count, CPU, VMSA variant, SEV features, kernel hashes, firmware) for the one that explains a host's measurement",
        )
        .option('--vcpus <MIN-MAX>', 'SEV-ES: vCPU counts to search', '1-64')
        .option('--also-firmware <path...>', 'other firmware files the host may have booted'),
    ),
  ).action(action(measurementDiagnoseCmd));

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
    .option('--json', 'print the files written and the packet (base64) as JSON')
    .argument('<HEADER_FILE>', "Path to output secret header file ('-': stdout)")
    .argument('<PAYLOAD_FILE>', "Path to output secret payload file ('-': stdout)")
    .action(action(secretBuildCmd));
  s.command('inspect')
    .description("Check a packet's MAC and list the secret table entries (GUIDs and sizes only)")
    .requiredOption('--tik <path|b64>', 'tik data (path or base64)')
    .requiredOption('--tek <path|b64>', 'tek data (path or base64)')
    .requiredOption('--launch-measure-blob <path|b64>', 'the launch measurement the packet is bound to')
    .option('--json', 'machine-readable output')
    .argument('<HEADER>', 'packet header (path or base64)')
    .argument('<PAYLOAD>', 'encrypted payload (path or base64)')
    .action(action(secretInspectCmd));
}
