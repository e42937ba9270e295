/**
 * SNP measurement mismatch diagnosis: which launch variant explains a report's MEASUREMENT
 * (shared/specs/snp-launch.md §5.3), as lib/launch/diagnose.ts does for SEV-ES. The dimensions are the vCPU
 * count and signature, the guest features, the FPU state of the VMSA, the VMM type (QEMU, EC2 with RDX 0x600
 * or 0, GCE), kernel hashes on/off and the firmware file.
 *
 * Cheap by construction (digest.ts): each firmware is parsed and its pages hashed once; the LD before the
 * VMSAs is computed once per (firmware, kernel hashes, VMM); per VMSA variant only the BSP and AP pages are
 * hashed, and each further vCPU is one 112-byte SHA-384 on a copy of the 48-byte state. The first match wins;
 * there is no "closest": a digest either matches or it does not.
 */
import { cpuCandidates, cpuNamesForSignature, describeCpuSignature, type CpuCandidate } from '../launch/cpus.js';
import { LaunchInputError } from '../launch/errors.js';
import type { KernelHashesInput } from '../launch/hashes.js';
import { SnpGctx } from './gctx.js';
import { loadSnpFirmware, snpPrefix, snpSupportsKernelHashes, snpVmsaHashes, SNP_LD_SIZE, SNP_MAX_VCPUS, type SnpFirmware } from './digest.js';
import { describeGuestFeatures, GUEST_FEATURE_BITS, parseGuestFeatures, CLOUD_VMSA_RDX, type SnpFpuState, type SnpVmmType } from './vmsa.js';

/** A VMM and, for the cloud VMMs, the RDX its VMSAs carry. */
export interface SnpVmmVariant {
  vmmType: SnpVmmType;
  /** EC2/GCE RDX (default CLOUD_VMSA_RDX). */
  cloudRdx?: number;
}

/** What the owner believes; any field left out is unpinned (searched, reported, never called a difference). */
export interface SnpDiagnoseExpectation {
  /** Name of the expected firmware (default: the first given). */
  firmware?: string;
  /** Default: a kernel was given. */
  kernelHashes?: boolean;
  vcpus?: number;
  vcpuSig?: number;
  /** The owner's name for its vCPU model (shown instead of the table's). */
  vcpuType?: string;
  guestFeatures?: bigint | number | string;
  vmmType?: SnpVmmType;
  fpu?: SnpFpuState;
}

/** The space searched; defaults in parentheses. */
export interface SnpDiagnoseSpace {
  /** vCPU counts, inclusive (1..64). */
  vcpus?: { min: number; max: number };
  /** CPU signatures for QEMU (every QEMU model and known host part, plus the owner's). */
  cpus?: CpuCandidate[];
  /** Guest features (the owner's, 0x1, 0x21, then 0x1 plus each other single known bit). */
  guestFeatures?: bigint[];
  /** VMMs (QEMU, EC2 with RDX 0x600, EC2 with RDX 0, GCE). */
  vmms?: SnpVmmVariant[];
  /** QEMU FPU states (init2, legacy); the cloud VMMs have only legacy. */
  fpu?: SnpFpuState[];
  /** Kernel hashes (on and off when a kernel is given, else off). */
  kernelHashes?: boolean[];
}

/** Inputs of diagnoseSnpDigest. */
export interface SnpDiagnoseInput {
  /** The report's MEASUREMENT: 48 bytes, or 96 hex digits, or base64. */
  measurement: Uint8Array | string;
  /** Candidate firmware files (raw or already loaded); the first is the expected one unless expected.firmware says. */
  firmwares: { name: string; image: Uint8Array | SnpFirmware }[];
  kernel?: KernelHashesInput | null;
  expected?: SnpDiagnoseExpectation;
  space?: SnpDiagnoseSpace;
}

/** The launch that gives the measurement. */
export interface SnpVariant {
  firmware: string;
  kernelHashes: boolean;
  vcpus: number;
  /** 0 for EC2/GCE (they do not put it in the VMSA). */
  vcpuSig: number;
  cpuNames: string[];
  guestFeatures: bigint;
  vmmType: SnpVmmType;
  cloudRdx?: number;
  fpu: SnpFpuState;
  digest: Buffer;
}

/** The fields a variant can differ in. */
export type SnpDiagnosisField = 'firmware' | 'kernelHashes' | 'vcpus' | 'vcpuSig' | 'guestFeatures' | 'vmmType' | 'fpu';

/** One field in which the host's launch differs from what the owner pinned. */
export interface SnpDiagnosisDifference {
  field: SnpDiagnosisField;
  expected: string;
  actual: string;
}

/** The answer. */
export interface SnpDiagnosis {
  explained: boolean;
  variant?: SnpVariant;
  differences: SnpDiagnosisDifference[];
  /** Number of digests compared. */
  searched: number;
  /** Firmware files (or kernel-hashes variants) that could not be searched, and why. */
  notes: string[];
  /** One line for people. */
  summary: string;
}

const DEFAULT_VCPUS = { min: 1, max: 64 } as const;

/** (0x1, 0x21, then 0x1 with each other known single bit.) */
function defaultFeatures(): bigint[] {
  const out = [0x1n, 0x21n];
  for (const bit of Object.values(GUEST_FEATURE_BITS)) {
    const v = 0x1n | (1n << BigInt(bit));
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

function parseMeasurement(m: Uint8Array | string): Buffer {
  if (typeof m !== 'string') {
    if (m.length !== SNP_LD_SIZE)
      throw new LaunchInputError(`measurement has ${m.length} bytes, expected ${SNP_LD_SIZE}`, 'ERR_SNP_MEASUREMENT', 'INVALID_LEN');
    return Buffer.from(m);
  }
  const s = m.trim();
  if (/^[0-9a-f]{96}$/i.test(s)) return Buffer.from(s, 'hex');
  if (/^[A-Za-z0-9+/]{64}$/.test(s)) return Buffer.from(s, 'base64');
  throw new LaunchInputError('measurement must be 48 bytes as 96 hex digits or 64 base64 characters', 'ERR_SNP_MEASUREMENT');
}

const vmmLabel = (v: { vmmType: SnpVmmType; cloudRdx?: number }) =>
  v.vmmType !== 'qemu' && v.cloudRdx !== undefined && v.cloudRdx !== CLOUD_VMSA_RDX ? `${v.vmmType} (RDX 0x${v.cloudRdx.toString(16)})` : v.vmmType;
const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
const first = <T>(expected: T | undefined, list: T[], eq: (a: T, b: T) => boolean = (a, b) => a === b): T[] =>
  expected === undefined ? list : [expected, ...list.filter((x) => !eq(x, expected))];

/** Search the variants for the one whose digest is the measurement. Throws LaunchInputError on bad input only. */
export function diagnoseSnpDigest(inp: SnpDiagnoseInput): SnpDiagnosis {
  const target = parseMeasurement(inp.measurement);
  if (!inp.firmwares.length) throw new LaunchInputError('diagnosis needs at least one firmware file', 'ERR_DIAGNOSE_ARGS');
  const exp = inp.expected ?? {};
  const expFeatures = exp.guestFeatures === undefined ? undefined : parseGuestFeatures(exp.guestFeatures);
  const space = inp.space ?? {};
  const range = space.vcpus ?? DEFAULT_VCPUS;
  if (!Number.isInteger(range.min) || !Number.isInteger(range.max) || range.min < 1 || range.max > SNP_MAX_VCPUS || range.min > range.max) {
    throw new LaunchInputError(`vCPU range must be 1..${SNP_MAX_VCPUS} with min ≤ max, got ${range.min}..${range.max}`, 'ERR_NUM_CPUS');
  }
  let cpus = space.cpus ?? cpuCandidates();
  if (exp.vcpuSig !== undefined) cpus = first({ sig: exp.vcpuSig >>> 0, names: cpuNamesForSignature(exp.vcpuSig) }, cpus, (a, b) => a.sig === b.sig);
  const features = first(expFeatures, space.guestFeatures ?? defaultFeatures());
  const vmmDefault: SnpVmmVariant[] = [{ vmmType: 'qemu' }, { vmmType: 'ec2' }, { vmmType: 'ec2', cloudRdx: 0 }, { vmmType: 'gce' }];
  const vmms =
    space.vmms ?? (exp.vmmType ? [...vmmDefault.filter((v) => v.vmmType === exp.vmmType), ...vmmDefault.filter((v) => v.vmmType !== exp.vmmType)] : vmmDefault);
  const fpus = first<SnpFpuState>(exp.fpu, space.fpu ?? ['init2', 'legacy']);
  const expectedKernel = exp.kernelHashes ?? Boolean(inp.kernel);
  const kernelChoices = first(inp.kernel ? expectedKernel : undefined, space.kernelHashes ?? (inp.kernel ? [true, false] : [false]));
  if (kernelChoices.includes(true) && !inp.kernel)
    throw new LaunchInputError('kernel-hashes variants need the kernel (and initrd, command line)', 'ERR_DIAGNOSE_ARGS');
  const expectedFw = exp.firmware ?? inp.firmwares[0]!.name;
  const fws = first(
    inp.firmwares.find((f) => f.name === expectedFw),
    inp.firmwares,
  );

  let searched = 0;
  const notes: string[] = [];
  let found: SnpVariant | undefined;
  search: for (const f of fws) {
    let fw: SnpFirmware;
    try {
      fw = f.image instanceof Uint8Array ? loadSnpFirmware(f.image, f.name) : f.image;
    } catch (e) {
      notes.push(`${f.name} not searched: ${(e as Error).message}`);
      continue;
    }
    for (const kernelHashes of kernelChoices) {
      if (kernelHashes && !snpSupportsKernelHashes(fw)) {
        notes.push(`kernel hashes not searched with ${f.name}: it has no SNP_KERNEL_HASHES section or usable hashes table`);
        continue;
      }
      const prefixes = new Map<SnpVmmType, SnpGctx>();
      for (const vmm of vmms) {
        let prefix = prefixes.get(vmm.vmmType);
        if (!prefix) {
          prefix = snpPrefix(fw, { vmmType: vmm.vmmType, ...(kernelHashes ? { kernel: inp.kernel! } : {}) });
          prefixes.set(vmm.vmmType, prefix);
        }
        const qemu = vmm.vmmType === 'qemu';
        // The cloud VMMs ignore the vCPU model and have no FPU state in their VMSAs.
        for (const cpu of qemu ? cpus : [{ sig: 0, names: [] as string[] }]) {
          for (const fpu of qemu ? fpus : (['legacy'] as SnpFpuState[])) {
            for (const guestFeatures of features) {
              const { bsp, ap } = snpVmsaHashes(fw, {
                vcpuSig: cpu.sig,
                guestFeatures,
                vmmType: vmm.vmmType,
                fpu,
                ...(vmm.cloudRdx !== undefined ? { cloudRdx: vmm.cloudRdx } : {}),
              });
              const g = prefix.clone().updateVmsaHash(bsp);
              for (let n = 1; n <= range.max; n++) {
                if (n > 1) g.updateVmsaHash(ap);
                if (n < range.min) continue;
                searched++;
                const d = g.digest();
                if (d.equals(target)) {
                  found = {
                    firmware: f.name,
                    kernelHashes,
                    vcpus: n,
                    vcpuSig: cpu.sig,
                    cpuNames: cpu.names,
                    guestFeatures,
                    vmmType: vmm.vmmType,
                    ...(vmm.cloudRdx !== undefined ? { cloudRdx: vmm.cloudRdx } : {}),
                    fpu,
                    digest: d,
                  };
                  break search;
                }
              }
            }
          }
        }
      }
    }
  }

  const differences: SnpDiagnosisDifference[] = [];
  if (found) {
    const diff = (field: SnpDiagnosisField, expected: string | undefined, actual: string) => {
      if (expected !== undefined && expected !== actual) differences.push({ field, expected, actual });
    };
    diff('firmware', expectedFw, found.firmware);
    diff('kernelHashes', expectedKernel ? 'on' : 'off', found.kernelHashes ? 'on' : 'off');
    diff('vmmType', exp.vmmType, vmmLabel(found));
    diff('vcpus', exp.vcpus === undefined ? undefined : String(exp.vcpus), String(found.vcpus));
    if (found.vmmType === 'qemu') {
      const label = (sig: number) =>
        exp.vcpuType !== undefined && sig === exp.vcpuSig ? `${exp.vcpuType} (0x${sig.toString(16)})` : describeCpuSignature(sig);
      diff(
        'vcpuSig',
        exp.vcpuSig === undefined || exp.vcpuSig >>> 0 === found.vcpuSig ? undefined : label(exp.vcpuSig >>> 0),
        describeCpuSignature(found.vcpuSig),
      );
      diff('fpu', exp.fpu, found.fpu);
    }
    diff('guestFeatures', expFeatures === undefined ? undefined : describeGuestFeatures(expFeatures), describeGuestFeatures(found.guestFeatures));
  }
  const result: SnpDiagnosis = { explained: Boolean(found), differences, searched, notes, summary: '' };
  if (found) result.variant = found;
  result.summary = summarize(result, fws.length, kernelChoices, range, cpus.length, features.length, vmms);
  return result;
}

function summarize(
  d: SnpDiagnosis,
  nFw: number,
  kernel: boolean[],
  range: { min: number; max: number },
  nCpus: number,
  nFeatures: number,
  vmms: SnpVmmVariant[],
): string {
  if (!d.variant) {
    const space = [
      plural(nFw, 'firmware file'),
      `kernel hashes ${kernel.map((k) => (k ? 'on' : 'off')).join('/')}`,
      `VMM ${vmms.map(vmmLabel).join('/')}`,
      `${range.min}..${range.max} vCPUs`,
      plural(nCpus, 'CPU signature'),
      plural(nFeatures, 'guest-features value'),
    ];
    return `unexplained: nothing in the searched space gives this measurement (${plural(d.searched, 'digest')}: ${space.join(', ')}); the guest runs other firmware, kernel, initrd or command line than the ones given, or a launch type sevkit does not model (SVSM, IGVM)`;
  }
  if (!d.differences.length) return 'the measurement is what you expected';
  const host = d.differences.map((x) => `${x.field} ${x.actual}`);
  const you = d.differences.map((x) => `${x.field} ${x.expected}`);
  return `the host launched with ${host.join(', ')}; you expected ${you.join(', ')}`;
}

/** JSON form of a diagnosis (bigints and buffers as hex strings). */
export function snpDiagnosisToJSON(d: SnpDiagnosis): Record<string, unknown> {
  const v = d.variant;
  return {
    explained: d.explained,
    summary: d.summary,
    ...(v
      ? {
          variant: {
            firmware: v.firmware,
            kernelHashes: v.kernelHashes,
            vcpus: v.vcpus,
            vcpuSig: `0x${v.vcpuSig.toString(16)}`,
            cpu: v.cpuNames,
            guestFeatures: `0x${v.guestFeatures.toString(16)}`,
            vmmType: v.vmmType,
            ...(v.cloudRdx !== undefined ? { cloudRdx: `0x${v.cloudRdx.toString(16)}` } : {}),
            fpu: v.fpu,
            digest: v.digest.toString('hex'),
          },
        }
      : {}),
    differences: d.differences,
    searched: d.searched,
    notes: d.notes,
  };
}
