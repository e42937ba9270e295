/**
 * Measurement mismatch diagnosis: which launch variant explains a host's
 * LAUNCH_MEASURE blob. An SEV-ES digest depends on inputs the owner often
 * does not know exactly (vCPU count, CPU signature, VMSA variant, SEV
 * features, kernel hashes, firmware build); this searches them and names every
 * field in which the explaining variant differs from what the owner expected.
 *
 * Speed: the launch digest is SHA-256(firmware ‖ [hashes table] ‖ BSP ‖ AP × (N−1)),
 * so the firmware is hashed once per file and its hash state forked with
 * Hash.copy(); per (CPU signature, VMSA variant, SEV features) only the two VMSA
 * pages are built, and the state is extended by one AP page per vCPU count, so
 * each variant costs one 4 KiB compression run plus one HMAC.
 *
 * The MAC uses the host-reported API version, build and policy: the firmware
 * MACs them, so a variant only explains the blob if those were true too.
 */
import crypto from 'node:crypto';
import { LaunchInputError } from './errors.js';
import { buildKernelHashesTable, type KernelHashesInput } from './hashes.js';
import { checkHostReport, parseMeasurementBlob, measurementMacPrefix, resolveVcpuSig, type HostReport } from './measurement.js';
import { parseOvmf, requireHashesArea } from '../firmware/ovmf.js';
import { Policy, type PolicyLike } from './policy.js';
import { buildEsVmsa, type VmType } from './vmsa.js';
import { cpuCandidates, cpuNamesForSignature, describeCpuSignature, type CpuCandidate } from './cpus.js';
import { expectLength } from './bytes.js';

/** DebugSwap, the SEV feature KVM sets in legacy VMSAs on some kernels (VMSA SEV_FEATURES bit 5). */
export const SEV_FEATURE_DEBUG_SWAP = 0x20n;

/** What the owner asked for; any field left out is unpinned (searched, reported, not called a difference). */
export interface DiagnoseExpectation {
  policy: PolicyLike;
  /** Name of the firmware the owner expected (default: the first given). */
  firmware?: string;
  /** Whether the owner expected kernel hashes (default: a kernel was given). */
  kernelHashes?: boolean;
  numCpus?: number;
  vcpuType?: string;
  vcpuSig?: number;
  vmType?: VmType;
  sevFeatures?: bigint | number;
}

/** The space searched; defaults in parentheses. */
export interface DiagnoseSpace {
  /** vCPU counts, inclusive (1..64). */
  vcpus?: { min: number; max: number };
  /** CPU signatures (every QEMU EPYC model and known host part, plus the owner's). */
  cpus?: CpuCandidate[];
  /** VMSA variants (legacy and init2). */
  vmTypes?: VmType[];
  /** SEV_FEATURES values (0 and DebugSwap 0x20). */
  sevFeatures?: bigint[];
  /** Kernel hashes on/off (both when a kernel is given, else off only). */
  kernelHashes?: boolean[];
}

/**
 * What diagnoseMeasurement searches over: the host's blob and query-sev values, the TIK, candidate firmware
 * files, the kernel, and the owner's expectations.
 */
export interface DiagnoseInput {
  /** The host's 48-byte blob (raw or base64). */
  measurement: Uint8Array | string;
  sevInfo: HostReport;
  tik: Uint8Array;
  /** Candidate firmware files; the first is the expected one unless expected.firmware names another. */
  firmwares: { name: string; image: Uint8Array }[];
  /** The owner's kernel, initrd and command line, for the kernel-hashes variants. */
  kernel?: KernelHashesInput | null;
  expected: DiagnoseExpectation;
  space?: DiagnoseSpace;
}

/** The launch that gives the host's measurement. */
export interface MeasurementVariant {
  firmware: string;
  kernelHashes: boolean;
  /** The policy the MAC covered (the host-reported one). */
  policy: number;
  /** SEV-ES inputs; null for a plain SEV guest. */
  es: { numCpus: number; vcpuSig: number; cpuNames: string[]; vmType: VmType; sevFeatures: bigint } | null;
  digest: Buffer;
}

/** A launch parameter in which the host's launch can differ from the owner's expectation. */
export type DiagnosisField = 'firmware' | 'kernelHashes' | 'policy' | 'numCpus' | 'vcpuSig' | 'vmType' | 'sevFeatures';

/** One field in which the host's launch differs from the owner's expectation. */
export interface DiagnosisDifference {
  field: DiagnosisField;
  expected: string;
  actual: string;
}

/**
 * The result of diagnoseMeasurement: the launch variant that explains the host's measurement (if any), how it
 * differs from the expectation, and what was searched.
 */
export interface MeasurementDiagnosis {
  explained: boolean;
  variant?: MeasurementVariant;
  /** Only fields the owner pinned and the host did otherwise. */
  differences: DiagnosisDifference[];
  /** Number of variants whose MAC was computed. */
  searched: number;
  /** What was searched, for the "nothing explains it" answer. */
  space: {
    firmwares: string[];
    kernelHashes: boolean[];
    es: boolean;
    vcpus?: { min: number; max: number };
    cpuSignatures?: number;
    vmTypes?: VmType[];
    sevFeatures?: bigint[];
  };
  /** Firmware files that could not be searched for SEV-ES or kernel hashes, and why. */
  notes: string[];
  /** One line for people. */
  summary: string;
  ms: number;
}

const DEFAULT_VCPUS = { min: 1, max: 64 } as const;
const MAX_VCPUS = 4096;

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
const hexBig = (v: bigint) => `0x${v.toString(16)}`;

/** Search the variants for the one that explains the host's measurement. Throws LaunchInputError on bad input only. */
export function diagnoseMeasurement(inp: DiagnoseInput): MeasurementDiagnosis {
  const t0 = performance.now();
  checkHostReport(inp.sevInfo, inp.measurement);
  const { measure, mnonce } = parseMeasurementBlob(inp.measurement);
  const tik = expectLength(inp.tik, 16, 'TIK');
  if (!inp.firmwares.length) throw new LaunchInputError('diagnosis needs at least one firmware file', 'ERR_DIAGNOSE_ARGS');
  const host = inp.sevInfo;
  const hostPolicy = Policy.from(host.policy >>> 0);
  const ownerPolicy = Policy.from(inp.expected.policy);
  const prefix = measurementMacPrefix(host.apiMajor, host.apiMinor, host.buildId, hostPolicy);
  const es = hostPolicy.es;
  const exp = inp.expected;
  const expectedFw = exp.firmware ?? inp.firmwares[0]!.name;
  const expectedKernel = exp.kernelHashes ?? Boolean(inp.kernel);
  const expectedSig = exp.vcpuSig !== undefined || exp.vcpuType !== undefined ? resolveVcpuSig(exp) : undefined;
  const expectedFeatures = exp.sevFeatures === undefined ? undefined : BigInt(exp.sevFeatures);
  // The owner's own name for its CPU when it gave one ("EPYC-v4"), else the table's.
  const expectedCpu =
    expectedSig === undefined ? undefined : exp.vcpuType !== undefined ? `${exp.vcpuType} (0x${expectedSig.toString(16)})` : describeCpuSignature(expectedSig);

  const space = inp.space ?? {};
  const vcpus = space.vcpus ?? DEFAULT_VCPUS;
  if (!Number.isInteger(vcpus.min) || !Number.isInteger(vcpus.max) || vcpus.min < 1 || vcpus.max > MAX_VCPUS || vcpus.min > vcpus.max) {
    throw new LaunchInputError(`vCPU range must be 1..${MAX_VCPUS} with min ≤ max, got ${vcpus.min}..${vcpus.max}`, 'ERR_NUM_CPUS');
  }
  let cpus = space.cpus ?? cpuCandidates();
  if (expectedSig !== undefined && !cpus.some((c) => c.sig === expectedSig)) cpus = [{ sig: expectedSig, names: cpuNamesForSignature(expectedSig) }, ...cpus];
  const vmTypes = space.vmTypes ?? (['legacy', 'init2'] as VmType[]);
  let features = space.sevFeatures ?? [0n, SEV_FEATURE_DEBUG_SWAP];
  if (expectedFeatures !== undefined && !features.includes(expectedFeatures)) features = [expectedFeatures, ...features];
  const kernelChoices = space.kernelHashes ?? (inp.kernel ? [true, false] : [false]);
  if (kernelChoices.includes(true) && !inp.kernel)
    throw new LaunchInputError('kernel-hashes variants need the kernel (and initrd, command line)', 'ERR_DIAGNOSE_ARGS');
  const table = kernelChoices.includes(true) ? buildKernelHashesTable(inp.kernel!) : undefined;

  let searched = 0;
  const notes: string[] = [];
  // The blob's MAC is public (the host sent it), but compare in constant time anyway: the candidates are MACs under the TIK.
  const check = (digest: Buffer): boolean => {
    searched++;
    const mac = crypto.createHmac('sha256', tik).update(prefix).update(digest).update(mnonce).digest();
    return crypto.timingSafeEqual(mac, measure);
  };

  let found: MeasurementVariant | undefined;
  search: for (const fw of inp.firmwares) {
    const info = tryParseOvmf(fw.image, fw.name);
    const bases: { kernelHashes: boolean; h: crypto.Hash }[] = [];
    const fwHash = crypto.createHash('sha256').update(fw.image);
    for (const k of kernelChoices) {
      if (!k) {
        bases.push({ kernelHashes: false, h: fwHash });
        continue;
      }
      try {
        if (!info.ok) throw info.error;
        requireHashesArea(info.value, fw.name);
      } catch (e) {
        notes.push(`kernel hashes not searched with ${fw.name}: ${(e as Error).message}`);
        continue;
      }
      bases.push({ kernelHashes: true, h: fwHash.copy().update(table!) });
    }
    if (!es) {
      for (const b of bases) {
        const digest = b.h.copy().digest();
        if (check(digest)) {
          found = { firmware: fw.name, kernelHashes: b.kernelHashes, policy: hostPolicy.value, es: null, digest };
          break search;
        }
      }
      continue;
    }
    if (!info.ok || info.value.resetVector === undefined) {
      notes.push(
        `SEV-ES not searched with ${fw.name}: ${info.ok ? 'no SEV-ES reset block in its footer table (QEMU refuses to start such a guest)' : info.error.message}`,
      );
      continue;
    }
    const resetEip = info.value.resetVector;
    for (const cpu of cpus) {
      for (const vmType of vmTypes) {
        for (const sevFeatures of features) {
          const opts = { vcpuSig: cpu.sig, vmType, sevFeatures };
          const bsp = buildEsVmsa({ ap: false, ...opts });
          const ap = buildEsVmsa({ ap: true, resetEip, ...opts });
          for (const b of bases) {
            const h = b.h.copy().update(bsp);
            for (let n = 1; n <= vcpus.max; n++) {
              if (n > 1) h.update(ap);
              if (n < vcpus.min) continue;
              const digest = h.copy().digest();
              if (check(digest)) {
                found = {
                  firmware: fw.name,
                  kernelHashes: b.kernelHashes,
                  policy: hostPolicy.value,
                  es: { numCpus: n, vcpuSig: cpu.sig, cpuNames: cpu.names, vmType, sevFeatures },
                  digest,
                };
                break search;
              }
            }
          }
        }
      }
    }
  }

  const differences: DiagnosisDifference[] = [];
  if (found) {
    const diff = (field: DiagnosisField, expected: string | undefined, actual: string) => {
      if (expected !== undefined && expected !== actual) differences.push({ field, expected, actual });
    };
    diff('firmware', expectedFw, found.firmware);
    diff('kernelHashes', expectedKernel ? 'on' : 'off', found.kernelHashes ? 'on' : 'off');
    diff('policy', ownerPolicy.toHex(), hostPolicy.toHex());
    if (found.es) {
      diff('numCpus', exp.numCpus === undefined ? undefined : String(exp.numCpus), String(found.es.numCpus));
      diff('vcpuSig', expectedSig === undefined || expectedSig === found.es.vcpuSig ? undefined : expectedCpu, describeCpuSignature(found.es.vcpuSig));
      diff('vmType', exp.vmType, found.es.vmType);
      diff('sevFeatures', expectedFeatures === undefined ? undefined : hexBig(expectedFeatures), hexBig(found.es.sevFeatures));
    }
  }
  const spaceOut: MeasurementDiagnosis['space'] = {
    firmwares: inp.firmwares.map((f) => f.name),
    kernelHashes: kernelChoices,
    es,
    ...(es ? { vcpus: { ...vcpus }, cpuSignatures: cpus.length, vmTypes, sevFeatures: features } : {}),
  };
  const result: MeasurementDiagnosis = { explained: Boolean(found), differences, searched, space: spaceOut, notes, summary: '', ms: performance.now() - t0 };
  if (found) result.variant = found;
  result.summary = summarizeDiagnosis(result, {
    ...exp,
    firmware: expectedFw,
    kernelHashes: expectedKernel,
    ...(expectedCpu !== undefined ? { cpuLabel: expectedCpu } : {}),
  });
  return result;
}

type Parsed = { ok: true; value: ReturnType<typeof parseOvmf> } | { ok: false; error: Error };
function tryParseOvmf(image: Uint8Array, name: string): Parsed {
  try {
    return { ok: true, value: parseOvmf(image, name) };
  } catch (e) {
    return { ok: false, error: e as Error };
  }
}

/** "the space searched" in words, for the not-explained line. */
export function describeSearchSpace(d: Pick<MeasurementDiagnosis, 'space' | 'searched'>): string {
  const s = d.space;
  const parts = [`${plural(s.firmwares.length, 'firmware file')}`, `kernel hashes ${s.kernelHashes.map((k) => (k ? 'on' : 'off')).join('/')}`];
  if (s.es) {
    parts.push(
      `${s.vcpus!.min}..${s.vcpus!.max} vCPUs`,
      plural(s.cpuSignatures!, 'CPU signature'),
      `${s.vmTypes!.join('/')} VMSA`,
      `SEV features ${s.sevFeatures!.map(hexBig).join('/')}`,
    );
  } else parts.push('plain SEV (no VMSAs)');
  return `${plural(d.searched, 'variant')}: ${parts.join(', ')}`;
}

function esPhrase(numCpus: number | undefined, cpu: string | undefined, vmType: VmType | undefined, features: bigint | undefined): string[] {
  const out: string[] = [];
  if (numCpus !== undefined || cpu !== undefined) {
    const count = numCpus === undefined ? 'vCPUs' : plural(numCpus, 'vCPU');
    out.push(cpu === undefined ? count : `${count} of ${cpu}`);
  }
  if (vmType !== undefined) out.push(`with the ${vmType} VMSA`);
  if (features !== undefined) out.push(`SEV features ${hexBig(features)}`);
  return out;
}

/** The one-line answer: what the host did, and what the owner expected, for the fields that differ or were unpinned. */
function summarizeDiagnosis(d: MeasurementDiagnosis, exp: DiagnoseExpectation & { firmware: string; kernelHashes: boolean; cpuLabel?: string }): string {
  if (!d.variant)
    return `nothing in the searched space explains the measurement (searched ${describeSearchSpace(d)}); check the TIK, the session, the host's reported API version, build and policy, or widen the search`;
  const v = d.variant;
  const differs = new Set(d.differences.map((x) => x.field));
  if (!differs.size && (!v.es || (exp.numCpus !== undefined && exp.cpuLabel !== undefined && exp.vmType !== undefined))) {
    return 'the measurement is exactly what you expected';
  }
  const host: string[] = [];
  const you: string[] = [];
  if (v.es) {
    const cpuDiffers = differs.has('numCpus') || differs.has('vcpuSig') || exp.numCpus === undefined || exp.cpuLabel === undefined;
    host.push(
      ...esPhrase(
        cpuDiffers ? v.es.numCpus : undefined,
        cpuDiffers ? describeCpuSignature(v.es.vcpuSig) : undefined,
        differs.has('vmType') || exp.vmType === undefined ? v.es.vmType : undefined,
        differs.has('sevFeatures') || v.es.sevFeatures !== 0n ? v.es.sevFeatures : undefined,
      ),
    );
    you.push(
      ...esPhrase(
        cpuDiffers ? exp.numCpus : undefined,
        cpuDiffers ? exp.cpuLabel : undefined,
        differs.has('vmType') ? exp.vmType : undefined,
        differs.has('sevFeatures') && exp.sevFeatures !== undefined ? BigInt(exp.sevFeatures) : undefined,
      ),
    );
  }
  if (differs.has('kernelHashes')) {
    host.push(v.kernelHashes ? 'with kernel hashes' : 'without kernel hashes');
    you.push(exp.kernelHashes ? 'with kernel hashes' : 'without kernel hashes');
  }
  if (differs.has('firmware')) {
    host.push(`from firmware ${v.firmware}`);
    you.push(`firmware ${exp.firmware}`);
  }
  if (differs.has('policy')) {
    host.push(`under policy ${Policy.from(v.policy).toHex()}`);
    you.push(`policy ${Policy.from(exp.policy).toHex()}`);
  }
  const line = `the host launched ${host.join(' ') || 'the guest'}`;
  return you.length ? `${line}; you expected ${you.join(' ')}` : line;
}

/** JSON form of a diagnosis (bigints and buffers as hex strings). */
export function diagnosisToJSON(d: MeasurementDiagnosis): Record<string, unknown> {
  const v = d.variant;
  return {
    explained: d.explained,
    summary: d.summary,
    ...(v
      ? {
          variant: {
            firmware: v.firmware,
            kernelHashes: v.kernelHashes,
            policy: v.policy,
            digest: v.digest.toString('hex'),
            ...(v.es
              ? {
                  numCpus: v.es.numCpus,
                  vcpuSig: `0x${v.es.vcpuSig.toString(16)}`,
                  cpu: v.es.cpuNames,
                  vmType: v.es.vmType,
                  sevFeatures: hexBig(v.es.sevFeatures),
                }
              : {}),
          },
        }
      : {}),
    differences: d.differences,
    searched: d.searched,
    space: { ...d.space, ...(d.space.sevFeatures ? { sevFeatures: d.space.sevFeatures.map(hexBig) } : {}) },
    notes: d.notes,
  };
}
