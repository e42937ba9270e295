/**
 * `sevkit snp digest | diagnose | id-block`: the SNP launch digest as sev-snp-measure prints it, the mismatch
 * diagnosis, and the ID block / ID auth files QEMU's `sev-snp-guest` takes. Thin over lib/snp, imported
 * lazily inside each action.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { action, parseIntArg, printJson, writeOutputFile, EXIT_FAIL, EXIT_OK } from '../run.js';

const digestLib = () => import('../../snp/digest.js');
const intOpt = (what: string) => (v: string) => parseIntArg(v, what);

/** A hex value of exactly `bytes` bytes (a usage error otherwise). */
const hexOpt = (what: string, bytes: number) => (v: string) => {
  const s = v.trim().replace(/^0x/i, '');
  if (!new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(s)) throw new InvalidArgumentError(`${what} must be ${bytes} bytes as ${bytes * 2} hex digits`);
  return Buffer.from(s, 'hex');
};
/** A u64 as decimal or 0x-hex. */
const u64Opt = (what: string) => (v: string) => {
  const s = v.trim();
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(s)) throw new InvalidArgumentError(`${what} must be a decimal or 0x-hex integer, got '${v}'`);
  const n = BigInt(s);
  if (n >> 64n !== 0n) throw new InvalidArgumentError(`${what} does not fit 64 bits`);
  return n;
};
const VMM_CHOICES = ['qemu', 'ec2', 'gce'] as const;
const vmmOpt = (v: string) => {
  const s = v.trim().toLowerCase();
  if (!(VMM_CHOICES as readonly string[]).includes(s)) throw new InvalidArgumentError(`--vmm-type must be one of ${VMM_CHOICES.join(', ')}, got '${v}'`);
  return s as (typeof VMM_CHOICES)[number];
};

interface LaunchOpts {
  firmware: string[] | string;
  vcpus?: number;
  vcpuType?: string;
  vcpuSig?: number;
  vcpuFamily?: number;
  vcpuModel?: number;
  vcpuStepping?: number;
  guestFeatures?: bigint;
  vmmType?: (typeof VMM_CHOICES)[number];
  fpu?: 'init2' | 'legacy';
  kernel?: string;
  initrd?: string;
  append?: string;
  json?: boolean;
}

/** The vCPU model, the kernel inputs and their usage checks, shared by digest and diagnose. */
async function launchInputs(o: LaunchOpts, requireModel: boolean) {
  const { UsageError } = await import('../../errors.js');
  const { readInputFile } = await import('../../launch/bytes.js');
  const { vcpuSignature } = await import('../../launch/cpus.js');
  const ways = [
    o.vcpuType !== undefined,
    o.vcpuSig !== undefined,
    o.vcpuFamily !== undefined || o.vcpuModel !== undefined || o.vcpuStepping !== undefined,
  ].filter(Boolean).length;
  if (ways > 1) throw new UsageError('give the vCPU model one way: --vcpu-type, --vcpu-sig, or --vcpu-family/--vcpu-model/--vcpu-stepping');
  const fms = [o.vcpuFamily, o.vcpuModel, o.vcpuStepping];
  if (fms.some((x) => x !== undefined) && fms.some((x) => x === undefined)) throw new UsageError('--vcpu-family, --vcpu-model and --vcpu-stepping go together');
  const vmmType = o.vmmType ?? 'qemu';
  if (requireModel && vmmType === 'qemu' && ways === 0)
    throw new UsageError('missing --vcpu-type, --vcpu-sig or --vcpu-family/--vcpu-model/--vcpu-stepping (QEMU puts the vCPU signature in the VMSA)');
  if (o.vcpuType !== undefined) {
    try {
      vcpuSignature(o.vcpuType);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  if (!o.kernel && (o.initrd !== undefined || o.append !== undefined))
    throw new UsageError('--initrd and --append need --kernel (QEMU measures them only with kernel-hashes=on direct boot)');
  const kernel = o.kernel
    ? { kernel: readInputFile(o.kernel, 'kernel'), initrd: o.initrd ? readInputFile(o.initrd, 'initrd') : null, cmdline: o.append ?? null }
    : null;
  const model = {
    ...(o.vcpuType !== undefined ? { vcpuType: o.vcpuType } : {}),
    ...(o.vcpuSig !== undefined ? { vcpuSig: o.vcpuSig } : {}),
    ...(o.vcpuFamily !== undefined ? { vcpuFamily: o.vcpuFamily, vcpuModel: o.vcpuModel!, vcpuStepping: o.vcpuStepping! } : {}),
  };
  return { vmmType, kernel, model };
}

interface DigestOpts extends LaunchOpts {
  firmware: string;
  vcpus: number;
  snpOvmfHash?: Buffer;
  allowNoMetadata?: boolean;
  ec2Rdx?: number;
  outputFormat: 'hex' | 'base64';
}

async function digestCmd(o: DigestOpts): Promise<void> {
  const D = await digestLib();
  const { readFileChecked } = await import('../../launch/bytes.js');
  const { vmmType, kernel, model } = await launchInputs(o, true);
  const r = D.computeSnpDigest({
    firmware: readFileChecked(o.firmware, 'firmware'),
    firmwareName: o.firmware,
    vcpus: o.vcpus,
    ...model,
    vmmType,
    kernel,
    ...(o.guestFeatures !== undefined ? { guestFeatures: o.guestFeatures } : {}),
    ...(o.fpu ? { fpu: o.fpu } : {}),
    ...(o.ec2Rdx !== undefined ? { cloudRdx: o.ec2Rdx } : {}),
    ...(o.snpOvmfHash ? { ovmfHash: o.snpOvmfHash } : {}),
    ...(o.allowNoMetadata ? { allowNoMetadata: true } : {}),
  });
  if (o.json) {
    printJson({
      digest: r.digest.toString('hex'),
      ovmfHash: r.ovmfHash.toString('hex'),
      ldBeforeVmsas: r.ldBeforeVmsas.toString('hex'),
      vmsa: { bsp: r.vmsaHashes.bsp.toString('hex'), ap: r.vmsaHashes.ap.toString('hex') },
      updates: r.updates,
      vcpus: o.vcpus,
      vcpuSig: `0x${r.vcpuSig.toString(16)}`,
      guestFeatures: `0x${r.guestFeatures.toString(16)}`,
      vmmType,
      kernelHashes: Boolean(kernel),
    });
    return;
  }
  process.stdout.write(`${o.outputFormat === 'base64' ? r.digest.toString('base64') : r.digest.toString('hex')}\n`);
}

interface DiagnoseOpts extends LaunchOpts {
  firmware: string[];
  measurement: string;
  maxVcpus: number;
  kernelHashes?: boolean;
}

async function diagnoseCmd(o: DiagnoseOpts): Promise<number> {
  const { diagnoseSnpDigest, snpDiagnosisToJSON } = await import('../../snp/diagnose.js');
  const { readFileChecked } = await import('../../launch/bytes.js');
  const { UsageError } = await import('../../errors.js');
  const { vmmType, kernel, model } = await launchInputs(o, false);
  const D = await digestLib();
  const vcpuSig = Object.keys(model).length ? D.resolveSnpVcpuSig(model, 'qemu') : undefined;
  if (!/^([0-9a-f]{96}|[A-Za-z0-9+/]{64})$/i.test(o.measurement.trim()))
    throw new UsageError('--measurement must be 48 bytes as 96 hex digits or 64 base64 characters');
  const d = diagnoseSnpDigest({
    measurement: o.measurement,
    firmwares: o.firmware.map((f) => ({ name: f, image: readFileChecked(f, 'firmware') })),
    kernel,
    expected: {
      ...(o.vcpus !== undefined ? { vcpus: o.vcpus } : {}),
      ...(vcpuSig !== undefined ? { vcpuSig } : {}),
      ...(o.vcpuType !== undefined ? { vcpuType: o.vcpuType } : {}),
      ...(o.guestFeatures !== undefined ? { guestFeatures: o.guestFeatures } : {}),
      ...(o.vmmType !== undefined ? { vmmType } : {}),
      ...(o.fpu ? { fpu: o.fpu } : {}),
      ...(o.kernelHashes === false ? { kernelHashes: false } : {}),
    },
    space: { vcpus: { min: 1, max: Math.max(o.maxVcpus, o.vcpus ?? 1) } },
  });
  if (o.json) printJson(snpDiagnosisToJSON(d));
  else {
    process.stdout.write(`${d.explained ? 'explained' : 'not explained'}: ${d.summary}\n`);
    for (const diff of d.differences) process.stdout.write(`  ${diff.field}: you expected ${diff.expected}, the host used ${diff.actual}\n`);
    for (const n of d.notes) process.stdout.write(`  note: ${n}\n`);
  }
  return d.explained ? EXIT_OK : EXIT_FAIL;
}

interface IdBlockOpts {
  idKey: string;
  authorKey?: string;
  digest: Buffer;
  policy: bigint;
  familyId?: Buffer;
  imageId?: Buffer;
  guestSvn?: number;
  outBlock: string;
  outAuth: string;
  json?: boolean;
}

async function idBlockCmd(o: IdBlockOpts): Promise<void> {
  const I = await import('../../snp/idblock.js');
  const { readFileChecked } = await import('../../launch/bytes.js');
  const { UsageError } = await import('../../errors.js');
  // Bit 17 is reserved and must be 1; bits from 26 up are reserved zero (snp-launch.md §3.3): the firmware refuses such a launch.
  if (((o.policy >> 17n) & 1n) === 0n) throw new UsageError(`--policy 0x${o.policy.toString(16)}: bit 17 is reserved and must be set (e.g. 0x30000)`);
  if (o.policy >> 26n !== 0n) throw new UsageError(`--policy 0x${o.policy.toString(16)} sets reserved bits above bit 25`);
  if (o.outBlock === o.outAuth) throw new UsageError('--out-block and --out-auth must be different files');
  const load = (file: string, what: string) => {
    const raw = readFileChecked(file, what);
    try {
      return I.loadSnpSigningKey(raw, file);
    } finally {
      raw.fill(0);
    }
  };
  const idKey = load(o.idKey, 'ID key');
  const authorKey = o.authorKey ? load(o.authorKey, 'author key') : undefined;
  const r = I.createIdBlock(
    {
      ld: o.digest,
      policy: o.policy,
      ...(o.familyId ? { familyId: o.familyId } : {}),
      ...(o.imageId ? { imageId: o.imageId } : {}),
      ...(o.guestSvn !== undefined ? { guestSvn: o.guestSvn } : {}),
    },
    idKey,
    authorKey,
  );
  // What QEMU's id-block= / id-auth= take: base64 of exactly 96 and 4096 bytes (no newline, so the file can be pasted as is).
  await writeOutputFile(o.outBlock, r.idBlock.toString('base64'), { what: 'the ID block' });
  try {
    await writeOutputFile(o.outAuth, r.idAuth.toString('base64'), { what: 'the ID auth structure' });
  } catch (e) {
    // Never leave half a pair: a block without its auth structure fails at LAUNCH_FINISH.
    if (o.outBlock !== '-') (await import('node:fs')).rmSync(o.outBlock, { force: true });
    throw e;
  }
  if (o.json) {
    printJson({
      idBlock: o.outBlock,
      idAuth: o.outAuth,
      authorKeyEnabled: Boolean(authorKey),
      idKeyDigest: r.idKeyDigest.toString('hex'),
      authorKeyDigest: r.authorKeyDigest ? r.authorKeyDigest.toString('hex') : null,
      idKeyDigestBase64: r.idKeyDigest.toString('base64'),
      authorKeyDigestBase64: r.authorKeyDigest ? r.authorKeyDigest.toString('base64') : null,
    });
    return;
  }
  process.stdout.write(`id-key-digest: ${r.idKeyDigest.toString('hex')}\n`);
  if (r.authorKeyDigest) process.stdout.write(`author-key-digest: ${r.authorKeyDigest.toString('hex')}\n`);
  process.stdout.write(
    `qemu: -object sev-snp-guest,...,id-block=$(cat ${o.outBlock}),id-auth=$(cat ${o.outAuth}),author-key-enabled=${authorKey ? 'on' : 'off'}\n`,
  );
}

/** vCPU-model and kernel options shared by digest and diagnose. */
function addLaunchOptions(c: Command): Command {
  return c
    .option('--vcpu-type <type>', 'QEMU -cpu model (EPYC-v4, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...)')
    .option('--vcpu-sig <n>', 'vCPU signature (CPUID 1 EAX), decimal or 0x-hex', intOpt('--vcpu-sig'))
    .option('--vcpu-family <n>', 'vCPU family (with --vcpu-model and --vcpu-stepping)', intOpt('--vcpu-family'))
    .option('--vcpu-model <n>', 'vCPU model', intOpt('--vcpu-model'))
    .option('--vcpu-stepping <n>', 'vCPU stepping', intOpt('--vcpu-stepping'))
    .option('--guest-features <n>', 'SEV_FEATURES of the VMSAs (default 0x1; 0x21 adds DebugSwap)', u64Opt('--guest-features'))
    .option('--vmm-type <type>', 'qemu (default), ec2 or gce', vmmOpt)
    .addOption(new Option('--fpu <state>', 'QEMU VMSA FPU state: init2 (KVM_SEV_INIT2, default) or legacy (0/0)').choices(['init2', 'legacy']))
    .option('--kernel <path>', 'kernel for measured direct boot (kernel-hashes=on)')
    .option('--initrd <path>', 'initrd (with --kernel)')
    .option('--append <cmdline>', 'kernel command line (with --kernel)')
    .option('--json', 'machine-readable output');
}

/** Register `snp digest`, `snp diagnose` and `snp id-block` on the `sevkit snp` group. */
export function registerSnpLaunch(snp: Command): void {
  addLaunchOptions(
    snp
      .command('digest')
      .description('The SNP launch digest (report MEASUREMENT) of a launch, as sev-snp-measure --mode snp prints it')
      .requiredOption('--firmware <path>', 'the OVMF image QEMU loads with -bios')
      .requiredOption('--vcpus <n>', 'number of vCPUs (-smp)', intOpt('--vcpus'))
      .option('--snp-ovmf-hash <hex>', 'the LD after the firmware pages, precomputed (sev-snp-measure --snp-ovmf-hash)', hexOpt('--snp-ovmf-hash', 48))
      .option('--ec2-rdx <n>', 'EC2/GCE VMSA RDX (default 0x600; 0 as virtee/sev and sev-snp-measure before 0.0.13)', intOpt('--ec2-rdx'))
      .option('--allow-no-metadata', 'measure a firmware without SEV metadata as sev-snp-measure does (it cannot boot SNP)'),
  )
    .addOption(new Option('--output-format <fmt>', 'hex (default) or base64').choices(['hex', 'base64']).default('hex'))
    .action(action(digestCmd));

  addLaunchOptions(
    snp
      .command('diagnose')
      .description('Explain a report MEASUREMENT: which vCPU count/type, guest features, FPU state, VMM, kernel hashes or firmware gives it')
      .requiredOption('--measurement <hex|b64>', "the report's MEASUREMENT (48 bytes)")
      .requiredOption('--firmware <path>', 'candidate firmware (repeat; the first is the one you expect)', (v: string, prev: string[] = []) => [...prev, v])
      .option('--vcpus <n>', 'the vCPU count you expect', intOpt('--vcpus'))
      .option('--max-vcpus <n>', 'search 1..N vCPUs (default 64)', intOpt('--max-vcpus'), 64)
      .option('--no-kernel-hashes', 'you expected a launch without kernel hashes (the kernel is still searched)'),
  ).action(action(diagnoseCmd));

  snp
    .command('id-block')
    .description('Build and sign an SNP ID block and ID auth structure (base64 files for QEMU id-block= / id-auth=)')
    .requiredOption('--id-key <pem>', 'ECDSA P-384 ID private key (PEM or DER)')
    .option('--author-key <pem>', 'ECDSA P-384 author private key (then author-key-enabled=on)')
    .requiredOption('--digest <hex>', 'the expected launch digest (sevkit snp digest)', hexOpt('--digest', 48))
    .requiredOption('--policy <n>', 'the SNP guest policy the launch uses (e.g. 0x30000)', u64Opt('--policy'))
    .option('--family-id <hex>', 'FAMILY_ID, 16 bytes', hexOpt('--family-id', 16))
    .option('--image-id <hex>', 'IMAGE_ID, 16 bytes', hexOpt('--image-id', 16))
    .option('--guest-svn <n>', 'GUEST_SVN (u32)', intOpt('--guest-svn'))
    .requiredOption('--out-block <file>', 'where to write the ID block (base64 of 96 bytes)')
    .requiredOption('--out-auth <file>', 'where to write the ID auth structure (base64 of 4096 bytes)')
    .option('--json', 'print the files and the key digests the report will carry as JSON')
    .action(action(idBlockCmd));
}
