/**
 * The CPUID(1).EAX signatures an SEV-ES guest's VMSAs can carry in RDX: the
 * QEMU `-cpu` models (fixed family/model/stepping) and the EPYC host parts that
 * `-cpu host` passes through, stepping included. One table, used by the VMSA
 * builder (model names), the measurement diagnosis (its search space) and the
 * CLI (name ↔ signature).
 *
 * Sources:
 *  - QEMU models: QEMU target/i386/cpu.c `builtin_x86_defs` (family, model,
 *    stepping of EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin; their -vN
 *    versions change features, never the signature), as quoted in
 *    shared/specs/snp-launch.md ("vCPU signature ... for the QEMU models") and
 *    kernel-qemu.md §5 ("vCPU signatures (vcpu_types.py)"); qemu64 is QEMU's
 *    default -cpu (family 15, model 107, stepping 1), kvm64 family 15 model 6
 *    stepping 1.
 *  - Host parts: AMD CPUID specification #25481 (Fn0000_0001_EAX encoding) and
 *    the per-family revision guides (Naples 17h/01h B2, Rome 17h/31h B0, Milan
 *    19h/01h B0/B1 and Milan-X B2, Genoa 19h/11h A/B, Bergamo and Siena 19h/A0h,
 *    Turin 1Ah/02h, Turin dense 1Ah/11h); observed values from real SNP reports
 *    in shared/specs/snp-attestation.md §1.3: (25,1,1) AWS/Azure/Oak Milan,
 *    (25,17,1) Azure/Oak Genoa, (25,160,2) Siena, (26,2,1) Oak Turin. Steppings
 *    not observed are listed as candidates (a search space, not a claim), each
 *    marked `observed: false`.
 */
import { VmsaError } from './errors.js';

/** CPUID(1).EAX from family/model/stepping (ext family above 0xF, ext model = model[7:4]). */
export function cpuSignature(family: number, model: number, stepping: number): number {
  const fam = family & 0xfff;
  const mod = model & 0xff;
  const famBits = fam > 0xf ? 0xf00 | ((fam - 0xf) << 20) : fam << 8;
  return ((stepping & 0xf) | famBits | ((mod & 0xf) << 4) | ((mod >> 4) << 16)) >>> 0;
}

/** Family, model, stepping of a CPUID(1).EAX signature (inverse of cpuSignature). */
export function splitCpuSignature(sig: number): { family: number; model: number; stepping: number } {
  const s = sig >>> 0;
  const baseFamily = (s >> 8) & 0xf;
  const family = baseFamily === 0xf ? 0xf + ((s >> 20) & 0xff) : baseFamily;
  return { family, model: (((s >> 16) & 0xf) << 4) | ((s >> 4) & 0xf), stepping: s & 0xf };
}

/** One QEMU `-cpu` model. */
export interface QemuCpuModel {
  name: string;
  family: number;
  model: number;
  stepping: number;
}

const qemu = (names: string[], family: number, model: number, stepping: number): QemuCpuModel[] => names.map((name) => ({ name, family, model, stepping }));

/** Every QEMU EPYC model (and QEMU's generic defaults), with its versions. */
export const QEMU_CPU_MODELS: readonly QemuCpuModel[] = [
  ...qemu(['EPYC', 'EPYC-v1', 'EPYC-v2', 'EPYC-v3', 'EPYC-v4', 'EPYC-v5', 'EPYC-IBPB'], 23, 1, 2),
  ...qemu(['EPYC-Rome', 'EPYC-Rome-v1', 'EPYC-Rome-v2', 'EPYC-Rome-v3', 'EPYC-Rome-v4', 'EPYC-Rome-v5'], 23, 49, 0),
  ...qemu(['EPYC-Milan', 'EPYC-Milan-v1', 'EPYC-Milan-v2', 'EPYC-Milan-v3'], 25, 1, 1),
  ...qemu(['EPYC-Genoa', 'EPYC-Genoa-v1', 'EPYC-Genoa-v2'], 25, 17, 0),
  ...qemu(['EPYC-Turin', 'EPYC-Turin-v1'], 26, 0, 0),
  ...qemu(['qemu64'], 15, 107, 1),
  ...qemu(['kvm64'], 15, 6, 1),
];

/** One EPYC host part as `-cpu host` shows it to the guest. */
export interface HostCpuSignature {
  /** e.g. "Milan B1". */
  name: string;
  family: number;
  model: number;
  stepping: number;
  /** Seen in a real report (shared/specs/snp-attestation.md §1.3) rather than only listed as a candidate. */
  observed: boolean;
}

const host = (name: string, family: number, model: number, stepping: number, observed = false): HostCpuSignature => ({
  name,
  family,
  model,
  stepping,
  observed,
});

/** Known EPYC host signatures, Naples to Turin. */
export const HOST_CPU_SIGNATURES: readonly HostCpuSignature[] = [
  host('Naples B1', 23, 1, 1),
  host('Naples B2', 23, 1, 2),
  host('Rome B0', 23, 49, 0),
  host('Rome B1', 23, 49, 1),
  host('Milan B0', 25, 1, 0),
  host('Milan B1', 25, 1, 1, true),
  host('Milan-X B2', 25, 1, 2),
  host('Genoa A0', 25, 17, 0),
  host('Genoa B1', 25, 17, 1, true),
  host('Genoa-X B2', 25, 17, 2),
  host('Bergamo A1', 25, 160, 1),
  host('Siena A2', 25, 160, 2, true),
  host('Turin B0', 26, 2, 0),
  host('Turin C1', 26, 2, 1, true),
  host('Turin dense B0', 26, 17, 0),
  host('Turin dense B1', 26, 17, 1),
];

/** QEMU -cpu model → CPUID(1).EAX signature that KVM puts in RDX at reset. */
export const VCPU_SIGNATURES: Record<string, number> = Object.fromEntries(QEMU_CPU_MODELS.map((m) => [m.name, cpuSignature(m.family, m.model, m.stepping)]));

/** CPUID signature for a vCPU type name (case-insensitive), or a clear error listing the known names. */
export function vcpuSignature(type: string): number {
  const key = Object.keys(VCPU_SIGNATURES).find((k) => k.toLowerCase() === type.trim().toLowerCase());
  if (!key) throw new VmsaError(`unknown vCPU type '${type}' (known: ${Object.keys(VCPU_SIGNATURES).join(', ')})`, 'ERR_VCPU_TYPE');
  return VCPU_SIGNATURES[key]!;
}

/** One signature of the search space and every name that produces it. */
export interface CpuCandidate {
  sig: number;
  /** QEMU model names, then host parts ("host: Milan B1"), that give this signature. */
  names: string[];
}

/**
 * Every distinct signature of the QEMU models and the host table, in table
 * order (QEMU models first), with all names per signature: the VMSA depends
 * only on the signature, so names that share one are one variant.
 */
export function cpuCandidates(): CpuCandidate[] {
  const by = new Map<number, string[]>();
  const add = (sig: number, name: string) => {
    const l = by.get(sig);
    if (l) l.push(name);
    else by.set(sig, [name]);
  };
  for (const m of QEMU_CPU_MODELS) add(cpuSignature(m.family, m.model, m.stepping), m.name);
  for (const h of HOST_CPU_SIGNATURES) add(cpuSignature(h.family, h.model, h.stepping), `host: ${h.name}`);
  return [...by].map(([sig, names]) => ({ sig, names }));
}

/** Names (QEMU models, host parts) known for a signature; empty when none. */
export function cpuNamesForSignature(sig: number): string[] {
  return cpuCandidates().find((c) => c.sig === sig >>> 0)?.names ?? [];
}

/** A short label for a signature: its first QEMU model (or host part) and the hex value. */
export function describeCpuSignature(sig: number): string {
  const names = cpuNamesForSignature(sig);
  const hex = `0x${(sig >>> 0).toString(16)}`;
  if (!names.length) {
    const f = splitCpuSignature(sig);
    return `signature ${hex} (family ${f.family}, model ${f.model}, stepping ${f.stepping})`;
  }
  const first = names[0]!;
  return `${first.startsWith('host: ') ? `-cpu host on ${first.slice(6)}` : first} (${hex})`;
}
