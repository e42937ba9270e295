/**
 * The SEV-SNP launch digest (report MEASUREMENT), byte-exact with sev-snp-measure `--mode snp`
 * (shared/specs/snp-launch.md §1): the firmware's pages (NORMAL, ending at 4 GiB), then the OVMF SEV metadata
 * sections (SEC memory, secrets, CPUID, SVSM CAA, kernel hashes; per-VMM quirks), then one VMSA page per
 * vCPU (BSP, then identical APs), all folded into the GCTX chain (gctx.ts).
 *
 * Structured in three stages so that diagnosis (diagnose.ts) is cheap:
 *  1. loadSnpFirmware: parse the footer table and metadata once, hash the firmware pages once (lazily);
 *  2. snpPrefix: the LD before the VMSAs, per (VMM type, kernel hashes) — a 48-byte state;
 *  3. extendSnpVmsas: on a copy of that state, the BSP page and N−1 AP pages (each distinct page hashed once).
 * snpLaunchDigest runs all three for one launch.
 */
import { cpuSignature, vcpuSignature } from '../launch/cpus.js';
import { LaunchInputError } from '../launch/errors.js';
import { OvmfError } from '../firmware/errors.js';
import { buildKernelHashesTable, type KernelHashesInput } from '../launch/hashes.js';
import { OVMF_GUIDS, PADDED_HASHES_TABLE_SIZE, parseOvmf, requireHashesArea, type OvmfInfo } from '../firmware/ovmf.js';
import { SnpGctx, SnpPageType, SNP_LD_SIZE, SNP_PAGE_SIZE, sha384, type GctxStep } from './gctx.js';
import { parseSevMetadata, SevSectionType, type SevMetadataSection } from './metadata.js';
import { buildSnpVmsa, parseGuestFeatures, SNP_BSP_EIP, type SnpFpuState, type SnpVmmType } from './vmsa.js';

export { SnpGctx, SnpPageType, SNP_LD_SIZE, type GctxStep } from './gctx.js';
export { SevSectionType, type SevMetadataSection } from './metadata.js';
export {
  buildSnpVmsa,
  parseGuestFeatures,
  describeGuestFeatures,
  SNP_VMM_TYPES,
  SNP_BSP_EIP,
  CLOUD_VMSA_RDX,
  type SnpFpuState,
  type SnpVmmType,
  type SnpVmsaOptions,
} from './vmsa.js';

const FOUR_GIB = 0x1_0000_0000;
/** The most vCPUs a digest is computed for (KVM's KVM_MAX_VCPUS on x86). */
export const SNP_MAX_VCPUS = 4096;

/** One firmware file, parsed once; its page hashes are computed at most once (`ovmfHash`). */
export interface SnpFirmware {
  name: string;
  image: Buffer;
  info: OvmfInfo;
  /** SEV metadata sections in table order ([] when the firmware has none). */
  sections: SevMetadataSection[];
  /** AP reset EIP from the SEV-ES reset block. */
  resetEip: number;
  /** GPA of the first firmware byte (4 GiB − size). */
  gpa: number;
  /** The LD after the firmware pages (sev-snp-measure `--mode snp:ovmf-hash`), computed on first use. */
  ovmfHash(): Buffer;
}

/** Options of loadSnpFirmware. */
export interface LoadSnpFirmwareOptions {
  /**
   * Accept a firmware without SEV metadata (sev-snp-measure measures such a file as pages and VMSAs only; it
   * cannot boot as an SNP guest: no secrets or CPUID page). Default false: OvmfError ERR_SNP_NO_METADATA.
   */
  allowNoMetadata?: boolean;
  /** The LD after the firmware pages, given instead of hashing them (`--snp-ovmf-hash`); 48 bytes. */
  ovmfHash?: Uint8Array;
}

/**
 * Parse a firmware image for SNP. Throws OvmfError when it has no footer table, no SEV-ES reset block, no SEV
 * metadata (unless allowed), a malformed metadata block, or a size that is not whole pages below 4 GiB.
 */
export function loadSnpFirmware(image: Uint8Array, name = 'firmware', opts: LoadSnpFirmwareOptions = {}): SnpFirmware {
  const img = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  if (img.length === 0 || img.length % SNP_PAGE_SIZE !== 0 || img.length > FOUR_GIB) {
    throw new OvmfError(
      `${name}: ${img.length} bytes is not a whole number of 4 KiB pages below 4 GiB; SNP measures the firmware page by page`,
      'ERR_SNP_FIRMWARE_SIZE',
    );
  }
  const info = parseOvmf(img, name);
  if (info.resetVector === undefined) {
    throw new OvmfError(
      `${name}: no SEV-ES reset block (${OVMF_GUIDS.SEV_ES_RESET_BLOCK}) in the OVMF footer table; an SNP guest's APs cannot start without it`,
      'ERR_OVMF_NO_RESET',
    );
  }
  const sections = parseSevMetadata(img, info, name);
  if (!sections.length && !opts.allowNoMetadata) {
    throw new OvmfError(
      `${name}: no SEV metadata (${OVMF_GUIDS.SEV_METADATA}): not an SNP-capable OVMF (use an AmdSevX64 or OvmfPkgX64 build of edk2 ≥ stable202405)`,
      'ERR_SNP_NO_METADATA',
    );
  }
  if (opts.ovmfHash !== undefined && opts.ovmfHash.length !== SNP_LD_SIZE) {
    throw new LaunchInputError(`precomputed OVMF hash has ${opts.ovmfHash.length} bytes, expected ${SNP_LD_SIZE}`, 'ERR_SNP_SEED', 'INVALID_LEN');
  }
  let cached: Buffer | undefined = opts.ovmfHash ? Buffer.from(opts.ovmfHash) : undefined;
  const gpa = FOUR_GIB - img.length;
  return {
    name,
    image: img,
    info,
    sections,
    resetEip: info.resetVector,
    gpa,
    ovmfHash() {
      cached ??= new SnpGctx().updateNormalPages(gpa, img).digest();
      return Buffer.from(cached);
    },
  };
}

/** True when the firmware can take kernel hashes for SNP (an SNP_KERNEL_HASHES section and a usable hashes table). */
export function snpSupportsKernelHashes(fw: SnpFirmware): boolean {
  try {
    requireSnpKernelHashes(fw);
    return true;
  } catch {
    return false;
  }
}

/** The SNP_KERNEL_HASHES section and the table's offset in its page; OvmfError when the firmware cannot take kernel hashes. */
function requireSnpKernelHashes(fw: SnpFirmware): { section: SevMetadataSection; offset: number } {
  const section = fw.sections.find((s) => s.type === SevSectionType.SNP_KERNEL_HASHES);
  if (!section) throw new OvmfError(`${fw.name}: Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section`, 'ERR_SNP_NO_KERNEL_HASHES');
  if (section.size !== SNP_PAGE_SIZE)
    throw new OvmfError(`${fw.name}: SNP_KERNEL_HASHES section is 0x${section.size.toString(16)} bytes, expected one 4 KiB page`, 'ERR_SNP_METADATA');
  // QEMU also needs the footer's hashes-table entry with base ≠ 0 and room for the 176-byte table.
  const area = requireHashesArea(fw.info, fw.name);
  const offset = area.base & 0xfff;
  if (offset + PADDED_HASHES_TABLE_SIZE > SNP_PAGE_SIZE)
    throw new OvmfError(`${fw.name}: hashes table at page offset 0x${offset.toString(16)} does not fit its 4 KiB page`, 'ERR_OVMF_HASHES_SIZE');
  return { section, offset };
}

/** The 4 KiB SNP_KERNEL_HASHES page: the padded hashes table at (hashes-table GPA & 0xFFF), the rest zero. */
export function buildSnpKernelHashesPage(fw: SnpFirmware, kernel: KernelHashesInput): Buffer {
  const { offset } = requireSnpKernelHashes(fw);
  const page = Buffer.alloc(SNP_PAGE_SIZE);
  buildKernelHashesTable(kernel).copy(page, offset);
  return page;
}

/** What the LD before the VMSAs depends on besides the firmware. */
export interface SnpPrefixOptions {
  vmmType?: SnpVmmType;
  /** Direct boot with kernel-hashes=on (an empty kernel file still makes a table); null/absent = no kernel. */
  kernel?: KernelHashesInput | null;
  /** Trace hook, called for every update including the firmware pages (which are then re-hashed). */
  onStep?: (s: GctxStep) => void;
}

/** The GCTX after the firmware pages and the metadata sections: the state every VMSA variant extends. */
export function snpPrefix(fw: SnpFirmware, o: SnpPrefixOptions = {}): SnpGctx {
  const vmm = o.vmmType ?? 'qemu';
  const hashesPage = o.kernel ? buildSnpKernelHashesPage(fw, o.kernel) : undefined;
  let g: SnpGctx;
  if (o.onStep) {
    g = new SnpGctx();
    g.onStep = o.onStep;
    g.updateNormalPages(fw.gpa, fw.image);
  } else {
    g = new SnpGctx(fw.ovmfHash());
    g.updates = fw.image.length / SNP_PAGE_SIZE;
  }
  const cpuid: SevMetadataSection[] = [];
  for (const s of fw.sections) {
    switch (s.type) {
      case SevSectionType.SNP_SEC_MEMORY:
        g.updateEmptyPages(vmm === 'gce' ? SnpPageType.UNMEASURED : SnpPageType.ZERO, s.gpa, s.size);
        break;
      // The calculators measure the secrets and CPUID sections as one page whatever their size says.
      case SevSectionType.SNP_SECRETS:
        g.updateEmptyPages(SnpPageType.SECRETS, s.gpa, SNP_PAGE_SIZE);
        break;
      case SevSectionType.CPUID:
        if (vmm === 'ec2')
          cpuid.push(s); // EC2 measures its CPUID page after every other section
        else g.updateEmptyPages(SnpPageType.CPUID, s.gpa, SNP_PAGE_SIZE);
        break;
      case SevSectionType.SNP_KERNEL_HASHES:
        if (hashesPage) g.updateNormalPages(s.gpa, hashesPage);
        else g.updateEmptyPages(SnpPageType.ZERO, s.gpa, s.size);
        break;
      case SevSectionType.SVSM_CAA:
        g.updateEmptyPages(SnpPageType.ZERO, s.gpa, s.size);
        break;
    }
  }
  for (const s of cpuid) g.updateEmptyPages(SnpPageType.CPUID, s.gpa, SNP_PAGE_SIZE);
  return g;
}

/** What the VMSA pages depend on. */
export interface SnpVcpuOptions {
  vcpus: number;
  /** CPUID(1).EAX of the vCPU model (QEMU; ignored by EC2/GCE). */
  vcpuSig: number;
  guestFeatures: bigint;
  vmmType?: SnpVmmType;
  fpu?: SnpFpuState;
  /** EC2/GCE RDX override (see SnpVmsaOptions.cloudRdx). */
  cloudRdx?: number;
}

/** SHA-384 of the BSP and AP pages for these options (what extendSnpVmsas folds in). */
export function snpVmsaHashes(fw: SnpFirmware, o: Omit<SnpVcpuOptions, 'vcpus'>): { bsp: Buffer; ap: Buffer } {
  const base = {
    vcpuSig: o.vcpuSig,
    guestFeatures: o.guestFeatures,
    ...(o.vmmType ? { vmmType: o.vmmType } : {}),
    ...(o.fpu ? { fpu: o.fpu } : {}),
    ...(o.cloudRdx !== undefined ? { cloudRdx: o.cloudRdx } : {}),
  };
  return { bsp: sha384(buildSnpVmsa({ eip: SNP_BSP_EIP, ...base })), ap: sha384(buildSnpVmsa({ eip: fw.resetEip, ...base })) };
}

function checkVcpus(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > SNP_MAX_VCPUS) throw new LaunchInputError(`number of vCPUs must be 1..${SNP_MAX_VCPUS}, got ${n}`, 'ERR_NUM_CPUS');
}

/** The final LD: the prefix (not modified) extended by one BSP and vcpus−1 AP pages. */
export function extendSnpVmsas(prefix: SnpGctx, fw: SnpFirmware, o: SnpVcpuOptions, onStep?: (s: GctxStep) => void): Buffer {
  checkVcpus(o.vcpus);
  const { bsp, ap } = snpVmsaHashes(fw, o);
  const g = prefix.clone();
  g.onStep = onStep ?? prefix.onStep;
  g.updateVmsaHash(bsp);
  for (let i = 1; i < o.vcpus; i++) g.updateVmsaHash(ap);
  return g.digest();
}

/** How the vCPU model is given; exactly one way (or none for EC2/GCE, which ignore it). */
export interface SnpVcpuModel {
  /** QEMU -cpu name (EPYC-v4, EPYC-Milan, ...). */
  vcpuType?: string;
  /** CPUID(1).EAX. */
  vcpuSig?: number;
  vcpuFamily?: number;
  vcpuModel?: number;
  vcpuStepping?: number;
}

/**
 * The vCPU signature from one of its three spellings, as sev-snp-measure resolves it (family/model/stepping
 * first, then the signature, then the type). QEMU needs one; for EC2/GCE it is 0 when none is given.
 */
export function resolveSnpVcpuSig(m: SnpVcpuModel, vmmType: SnpVmmType = 'qemu'): number {
  const fms = [m.vcpuFamily, m.vcpuModel, m.vcpuStepping];
  if (fms.some((x) => x !== undefined)) {
    if (fms.some((x) => x === undefined || !Number.isInteger(x) || x < 0))
      throw new LaunchInputError('the vCPU family, model and stepping must all be given, as non-negative integers', 'ERR_VCPU_TYPE');
    if (m.vcpuFamily! > 0xff + 0xf || m.vcpuModel! > 0xff || m.vcpuStepping! > 0xf)
      throw new LaunchInputError(
        `vCPU family/model/stepping ${m.vcpuFamily}/${m.vcpuModel}/${m.vcpuStepping} out of range (family ≤ 270, model ≤ 255, stepping ≤ 15)`,
        'ERR_VCPU_TYPE',
      );
    return cpuSignature(m.vcpuFamily!, m.vcpuModel!, m.vcpuStepping!);
  }
  if (m.vcpuSig !== undefined) {
    if (!Number.isInteger(m.vcpuSig) || m.vcpuSig < 0 || m.vcpuSig > 0xffffffff)
      throw new LaunchInputError(`vCPU signature ${m.vcpuSig} is not a u32`, 'ERR_VCPU_TYPE');
    return m.vcpuSig >>> 0;
  }
  if (m.vcpuType !== undefined) return vcpuSignature(m.vcpuType);
  if (vmmType === 'qemu')
    throw new LaunchInputError('an SNP digest for QEMU needs the vCPU type (e.g. EPYC-v4), signature, or family/model/stepping', 'ERR_VCPU_TYPE');
  return 0;
}

/** Everything one SNP launch digest depends on. */
export interface SnpDigestInput extends SnpVcpuModel {
  /** The firmware file (-bios), or a firmware loadSnpFirmware already parsed. */
  firmware: Uint8Array | SnpFirmware;
  firmwareName?: string;
  vcpus: number;
  /** SEV_FEATURES; default 0x1 (SNPActive), sev-snp-measure's default and QEMU ≥ 9.1 on Linux ≥ 6.11. */
  guestFeatures?: bigint | number | string;
  vmmType?: SnpVmmType;
  kernel?: KernelHashesInput | null;
  fpu?: SnpFpuState;
  cloudRdx?: number;
  /** See LoadSnpFirmwareOptions (only used when `firmware` is raw bytes). */
  allowNoMetadata?: boolean;
  ovmfHash?: Uint8Array;
  /** Called for every GCTX update (firmware pages included). */
  onStep?: (s: GctxStep) => void;
}

/** The digest and the intermediate values a mismatch is debugged with. */
export interface SnpDigestResult {
  /** 48-byte launch digest (report MEASUREMENT). */
  digest: Buffer;
  /** LD after the firmware pages. */
  ovmfHash: Buffer;
  /** LD before the first VMSA. */
  ldBeforeVmsas: Buffer;
  /** SHA-384 of the BSP and AP VMSA pages. */
  vmsaHashes: { bsp: Buffer; ap: Buffer };
  /** Number of GCTX updates. */
  updates: number;
  vcpuSig: number;
  guestFeatures: bigint;
}

function isFirmware(f: Uint8Array | SnpFirmware): f is SnpFirmware {
  return !(f instanceof Uint8Array);
}

/** Compute one SNP launch digest with its intermediate values. Throws LaunchInputError/OvmfError on bad input. */
export function computeSnpDigest(inp: SnpDigestInput): SnpDigestResult {
  checkVcpus(inp.vcpus);
  const vmmType = inp.vmmType ?? 'qemu';
  const guestFeatures = parseGuestFeatures(inp.guestFeatures ?? 1n);
  const vcpuSig = resolveSnpVcpuSig(inp, vmmType);
  const fw = isFirmware(inp.firmware)
    ? inp.firmware
    : loadSnpFirmware(inp.firmware, inp.firmwareName, {
        ...(inp.allowNoMetadata ? { allowNoMetadata: true } : {}),
        ...(inp.ovmfHash ? { ovmfHash: inp.ovmfHash } : {}),
      });
  const prefix = snpPrefix(fw, { vmmType, ...(inp.kernel ? { kernel: inp.kernel } : {}), ...(inp.onStep && !inp.ovmfHash ? { onStep: inp.onStep } : {}) });
  if (inp.onStep && inp.ovmfHash) prefix.onStep = inp.onStep;
  const vo: SnpVcpuOptions = {
    vcpus: inp.vcpus,
    vcpuSig,
    guestFeatures,
    vmmType,
    ...(inp.fpu ? { fpu: inp.fpu } : {}),
    ...(inp.cloudRdx !== undefined ? { cloudRdx: inp.cloudRdx } : {}),
  };
  const digest = extendSnpVmsas(prefix, fw, vo);
  return {
    digest,
    ovmfHash: fw.ovmfHash(),
    ldBeforeVmsas: prefix.digest(),
    vmsaHashes: snpVmsaHashes(fw, vo),
    updates: prefix.updates + inp.vcpus,
    vcpuSig,
    guestFeatures,
  };
}

/** The 48-byte SNP launch digest (what `sev-snp-measure --mode snp` prints, as bytes). */
export function snpLaunchDigest(inp: SnpDigestInput): Buffer {
  return computeSnpDigest(inp).digest;
}
