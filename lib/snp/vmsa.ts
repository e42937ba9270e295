/**
 * SNP VMSA pages (the 4 KiB SEV-ES save area with SEV_FEATURES = the guest features) as QEMU/KVM, AWS EC2
 * and Google GCE set them up at reset, byte-exact with sev-snp-measure (shared/specs/snp-launch.md §1.5).
 *
 * The QEMU page is lib/launch/vmsa.ts's SEV-ES page with the INIT2 FPU state and the guest features (one
 * home for the save-area layout); the cloud VMMs differ from it in a handful of fields, patched here.
 */
import { buildEsVmsa } from '../launch/vmsa.js';
import { LaunchInputError } from '../launch/errors.js';

/** The VMMs whose reset state sev-snp-measure models. */
export type SnpVmmType = 'qemu' | 'ec2' | 'gce';
/** Every SnpVmmType, in the order diagnosis tries them. */
export const SNP_VMM_TYPES: readonly SnpVmmType[] = ['qemu', 'ec2', 'gce'];

/**
 * FPU fields (MXCSR at 0x408, x87 FCW at 0x410): `init2` = 0x1F80/0x037F, what KVM writes for VMs made with
 * KVM_SEV_INIT2 (every upstream SNP host) and sev-snp-measure ≥ 0.0.10 emits for QEMU; `legacy` = 0/0 (older
 * out-of-tree SNP stacks; EC2 and GCE always).
 */
export type SnpFpuState = 'init2' | 'legacy';

/** Reset EIP of the boot CPU. */
export const SNP_BSP_EIP = 0xfffffff0;

/** RDX the cloud VMMs put in every VMSA (sev-snp-measure since 4a02bf0); virtee/sev and older tools use 0 for EC2. */
export const CLOUD_VMSA_RDX = 0x600;

/** SEV_FEATURES bits with a meaning (snp-launch.md §1.5); the others must be zero. */
export const GUEST_FEATURE_BITS: Readonly<Record<string, number>> = {
  SNPActive: 0,
  vTOM: 1,
  ReflectVC: 2,
  RestrictedInjection: 3,
  AlternateInjection: 4,
  DebugSwap: 5,
  PreventHostIBS: 6,
  BTBIsolation: 7,
  VmplSSS: 8,
  SecureTSC: 9,
  VmgexitParameter: 10,
  IbsVirtualization: 12,
  VmsaRegProt: 14,
  SmtProtection: 15,
};
const KNOWN_FEATURES = Object.values(GUEST_FEATURE_BITS).reduce((m, b) => m | (1n << BigInt(b)), 0n);

/** Parse/check a guest-features value (bigint, number or "0x21"); LaunchInputError on reserved bits. */
export function parseGuestFeatures(v: bigint | number | string): bigint {
  let n: bigint;
  try {
    n = typeof v === 'bigint' ? v : BigInt(typeof v === 'string' ? v.trim() : v);
  } catch {
    throw new LaunchInputError(`guest features '${String(v)}' is not an integer (decimal or 0x-hex)`, 'ERR_SNP_GUEST_FEATURES');
  }
  if (n < 0n || n >> 64n !== 0n) throw new LaunchInputError(`guest features 0x${n.toString(16)} does not fit 64 bits`, 'ERR_SNP_GUEST_FEATURES');
  const reserved = n & ~KNOWN_FEATURES;
  if (reserved)
    throw new LaunchInputError(
      `guest features 0x${n.toString(16)} sets reserved bits 0x${reserved.toString(16)} (known: ${Object.entries(GUEST_FEATURE_BITS)
        .map(([k, b]) => `${k}=bit ${b}`)
        .join(', ')})`,
      'ERR_SNP_GUEST_FEATURES',
    );
  return n;
}

/** Names of the set guest-feature bits ("SNPActive|DebugSwap"). */
export function describeGuestFeatures(n: bigint): string {
  const names = Object.entries(GUEST_FEATURE_BITS)
    .filter(([, b]) => (n >> BigInt(b)) & 1n)
    .map(([k]) => k);
  return `0x${n.toString(16)}${names.length ? ` (${names.join('|')})` : ''}`;
}

/** What one SNP VMSA page depends on. */
export interface SnpVmsaOptions {
  /** Reset EIP: SNP_BSP_EIP for the BSP, the OVMF SEV-ES reset block for APs. */
  eip: number;
  /** CPUID(1).EAX of the vCPU model, in RDX (QEMU only; the cloud VMMs put CLOUD_VMSA_RDX there). */
  vcpuSig: number;
  /** SEV_FEATURES. */
  guestFeatures: bigint;
  vmmType?: SnpVmmType;
  /** FPU state; default init2 for QEMU, legacy for EC2/GCE (the only state they have). */
  fpu?: SnpFpuState;
  /** RDX for EC2/GCE instead of CLOUD_VMSA_RDX (0 reproduces virtee/sev and sev-snp-measure before 4a02bf0). */
  cloudRdx?: number;
}

// Offsets patched for the cloud VMMs (struct sev_es_save_area; lib/launch/vmsa.ts holds the full layout).
const CS_ATTRIB = 0x12;
const SS_ATTRIB = 0x22;
const TR_ATTRIB = 0x92;
const G_PAT = 0x268;
const RDX = 0x310;

/** The 4096-byte VMSA page of one vCPU. Throws LaunchInputError on an unknown VMM type or FPU state. */
export function buildSnpVmsa(o: SnpVmsaOptions): Buffer {
  const vmm = o.vmmType ?? 'qemu';
  if (!SNP_VMM_TYPES.includes(vmm)) throw new LaunchInputError(`unknown VMM type '${String(vmm)}' (expected ${SNP_VMM_TYPES.join(', ')})`, 'ERR_SNP_VMM_TYPE');
  const fpu = o.fpu ?? (vmm === 'qemu' ? 'init2' : 'legacy');
  if (fpu !== 'init2' && fpu !== 'legacy') throw new LaunchInputError(`unknown FPU state '${String(fpu)}' (expected init2 or legacy)`, 'ERR_SNP_FPU');
  const bsp = o.eip >>> 0 === SNP_BSP_EIP;
  // buildEsVmsa's BSP is exactly EIP 0xFFFFFFF0 (CS base 0xFFFF0000, RIP 0xFFF0); an AP takes the given EIP.
  const page = buildEsVmsa({
    ap: !bsp,
    ...(bsp ? {} : { resetEip: o.eip >>> 0 }),
    vcpuSig: vmm === 'qemu' ? o.vcpuSig >>> 0 : 0,
    vmType: fpu,
    sevFeatures: o.guestFeatures,
  });
  if (vmm === 'ec2') {
    // EC2's BSP code segment is not marked accessed; its APs' is.
    page.writeUInt16LE(bsp ? 0x9a : 0x9b, CS_ATTRIB);
    page.writeUInt16LE(0x92, SS_ATTRIB);
    page.writeUInt16LE(0x83, TR_ATTRIB);
  } else if (vmm === 'gce') {
    // GCE's hypervisor overwrites the default PAT.
    page.writeBigUInt64LE(0x00070106n, G_PAT);
  }
  if (vmm !== 'qemu') page.writeBigUInt64LE(BigInt((o.cloudRdx ?? CLOUD_VMSA_RDX) >>> 0), RDX);
  return page;
}
