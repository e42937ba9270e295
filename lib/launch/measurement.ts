/**
 * Launch digest (GCTX.LD) and launch measurement (SEV API LAUNCH_MEASURE):
 *   LD      = SHA-256(firmware || [padded kernel hashes table] || [VMSA pages, SEV-ES])
 *   MEASURE = HMAC-SHA256(TIK, 0x04 || api_major || api_minor || build || u32le(policy) || LD || MNONCE)
 * The same code serves the owner (predict, verify) and the simulator's
 * firmware model (compute what LAUNCH_MEASURE returns).
 */
import crypto from 'node:crypto';
import { expectLength, decodeBase64 } from './bytes.js';
import { HostValueError, MeasurementError, LaunchInputError } from './errors.js';
import { hmacSha256 } from './kdf.js';
import { buildKernelHashesTable, type KernelHashesInput } from './hashes.js';
import { parseOvmf, requireHashesArea, requireResetVector } from '../firmware/ovmf.js';
import { Policy, type PolicyLike } from './policy.js';
import { buildEsVmsa, vcpuSignature, VMSA_SIZE, type VmType } from './vmsa.js';

/** Size of LAUNCH_MEASURE's answer: the 32-byte MEASURE MAC then the 16-byte MNONCE (48 bytes). */
export const MEASUREMENT_BLOB_SIZE = 48;

/** Running launch digest, fed in LAUNCH_UPDATE_DATA / LAUNCH_UPDATE_VMSA order. */
export class LaunchDigest {
  private readonly h = crypto.createHash('sha256');
  private done: Buffer | undefined;
  update(data: Uint8Array): this {
    if (this.done) throw new MeasurementError('ERR_DIGEST_FINAL', 'launch digest already finalised');
    this.h.update(data);
    return this;
  }
  updateVmsa(page: Uint8Array): this {
    if (page.length !== VMSA_SIZE) throw new LaunchInputError(`VMSA page has ${page.length} bytes, expected ${VMSA_SIZE}`, 'ERR_LENGTH', 'INVALID_LEN');
    return this.update(page);
  }
  digest(): Buffer {
    if (!this.done) this.done = this.h.digest();
    return Buffer.from(this.done);
  }
}

/** The SEV-ES inputs of the launch digest: vCPU count, vCPU model or signature, VM type, SEV_FEATURES. */
export interface EsVmsaSpec {
  /** Number of vCPUs (one BSP page + numCpus-1 AP pages). */
  numCpus: number;
  /** QEMU -cpu model name (EPYC, EPYC-v4, EPYC-Milan, ...); or give vcpuSig. */
  vcpuType?: string;
  vcpuSig?: number;
  /** legacy (default: KVM_SEV_ES_INIT, QEMU < 9.1 or legacy-vm-type) or init2. */
  vmType?: VmType;
  sevFeatures?: bigint | number;
}

/**
 * What the host measured: the firmware file, the kernel hashes (direct boot), and for SEV-ES the VMSAs or what
 * to build them from.
 */
export interface LaunchDigestInput {
  /** The exact firmware file QEMU loads (pflash unit 0 or -bios). */
  firmware: Uint8Array;
  /** Name used in error messages. */
  firmwareName?: string;
  /** Direct boot with kernel-hashes=on: the hashes table is appended after the firmware. */
  kernel?: KernelHashesInput | null;
  /** SEV-ES: build the VMSAs from the firmware (reset block) and these parameters. */
  es?: EsVmsaSpec | null;
  /** SEV-ES, sevctl style: raw VMSA files, cpu0 once then cpu1 × (numCpus-1). */
  vmsaFiles?: { cpu0: Uint8Array; cpu1: Uint8Array; numCpus: number } | null;
}

/**
 * The vCPU signature (CPUID(1).EAX) given directly or by QEMU -cpu model name; throws LaunchInputError
 * (ERR_VCPU_TYPE) when neither is given.
 */
export function resolveVcpuSig(spec: { vcpuType?: string; vcpuSig?: number }): number {
  if (spec.vcpuSig !== undefined) return spec.vcpuSig >>> 0;
  if (spec.vcpuType !== undefined) return vcpuSignature(spec.vcpuType);
  throw new LaunchInputError('SEV-ES measurement needs a vCPU type (e.g. EPYC-v4) or signature', 'ERR_VCPU_TYPE');
}

/** The VMSA pages a QEMU/KVM host measures for an SEV-ES guest with this firmware. */
export function buildEsVmsas(firmware: Uint8Array, spec: EsVmsaSpec, firmwareName = 'firmware'): { bsp: Buffer; ap: Buffer | undefined; numCpus: number } {
  if (!Number.isInteger(spec.numCpus) || spec.numCpus < 1 || spec.numCpus > 4096) {
    throw new LaunchInputError(`number of vCPUs must be 1..4096, got ${spec.numCpus}`, 'ERR_NUM_CPUS');
  }
  const vcpuSig = resolveVcpuSig(spec);
  const vmType = spec.vmType ?? 'legacy';
  const opts = { vcpuSig, vmType, ...(spec.sevFeatures !== undefined ? { sevFeatures: spec.sevFeatures } : {}) };
  // Even with one vCPU: QEMU refuses to start an SEV-ES guest whose firmware has no SEV-ES reset block
  // ("SEV: SEV information block/Firmware GUID Table block not found in pflash rom", sev_es_save_reset_vector).
  const reset = requireResetVector(parseOvmf(firmware, firmwareName), firmwareName);
  const bsp = buildEsVmsa({ ap: false, ...opts });
  let ap: Buffer | undefined;
  if (spec.numCpus > 1) ap = buildEsVmsa({ ap: true, resetEip: reset, ...opts });
  return { bsp, ap, numCpus: spec.numCpus };
}

/** GCTX.LD as the firmware computes it for the launch described. */
export function computeLaunchDigest(inp: LaunchDigestInput): Buffer {
  const name = inp.firmwareName ?? 'firmware';
  const d = new LaunchDigest().update(inp.firmware);
  if (inp.kernel) {
    requireHashesArea(parseOvmf(inp.firmware, name), name);
    d.update(buildKernelHashesTable(inp.kernel));
  }
  if (inp.es && inp.vmsaFiles) throw new LaunchInputError('give either VMSA files or a vCPU type, not both', 'ERR_VMSA_ARGS');
  if (inp.es) {
    const v = buildEsVmsas(inp.firmware, inp.es, name);
    d.updateVmsa(v.bsp);
    for (let i = 1; i < v.numCpus; i++) d.updateVmsa(v.ap!);
  } else if (inp.vmsaFiles) {
    const { cpu0, cpu1, numCpus } = inp.vmsaFiles;
    if (!Number.isInteger(numCpus) || numCpus < 1) throw new LaunchInputError(`the vCPU count must be at least 1, got ${numCpus}`, 'ERR_NUM_CPUS');
    requireResetVector(parseOvmf(inp.firmware, name), name);
    d.update(cpu0);
    for (let i = 1; i < numCpus; i++) d.update(cpu1);
  }
  return d.digest();
}

/**
 * The inputs of the MEASURE MAC: launch digest (32 bytes), MNONCE (16 bytes), TIK, the firmware API version and
 * build, and the policy.
 */
export interface MeasureInput {
  /** 32-byte launch digest. */
  digest: Uint8Array;
  /** 16-byte firmware nonce. */
  mnonce: Uint8Array;
  tik: Uint8Array;
  apiMajor: number;
  apiMinor: number;
  /** Firmware build id. */
  build: number;
  policy: PolicyLike;
}

/** Oldest firmware API whose LAUNCH_MEASURE sevkit can model: the 0x04‖API‖BUILD prefix starts at 0.17. */
export const MIN_MEASURE_API = { major: 0, minor: 17 } as const;

/**
 * The 8 bytes the MAC covers before the digest: 0x04 || api_major || api_minor || build || u32le(policy).
 * Throws MeasurementError (ERR_MEASURE_API) for firmware API below 0.17: that prefix "applies to firmware
 * API ≥ 0.17" (shared/specs/kernel-qemu.md §3.3, SEV API §6.5.1) and the older formula is not specified
 * anywhere sevkit follows (shared/specs/sev-formats.md §6.1 gives only this one), so no value is guessed.
 */
export function measurementMacPrefix(apiMajor: number, apiMinor: number, build: number, policy: PolicyLike): Buffer {
  if (apiMajor === 0 && apiMinor < MIN_MEASURE_API.minor) {
    throw new MeasurementError(
      'ERR_MEASURE_API',
      `firmware API ${apiMajor}.${apiMinor} predates 0.17: its LAUNCH_MEASURE formula is not the 0x04‖API‖BUILD‖POLICY‖LD‖MNONCE one sevkit models; refusing rather than computing a wrong value`,
      'UNSUPPORTED',
    );
  }
  return Buffer.concat([Buffer.of(0x04, apiMajor & 0xff, apiMinor & 0xff, build & 0xff), Policy.from(policy).bytes()]);
}

/** MEASURE (32 bytes) = HMAC-SHA256(TIK, 0x04 || maj || min || build || u32le(policy) || LD || MNONCE). Throws for API < 0.17. */
export function computeMeasure(m: MeasureInput): Buffer {
  expectLength(m.digest, 32, 'launch digest');
  expectLength(m.mnonce, 16, 'measurement nonce');
  expectLength(m.tik, 16, 'TIK');
  return hmacSha256(m.tik, measurementMacPrefix(m.apiMajor, m.apiMinor, m.build, m.policy), m.digest, m.mnonce);
}

/**
 * Firmware side of LAUNCH_MEASURE: the 48-byte blob MEASURE || MNONCE
 * (a fresh random MNONCE unless one is given).
 */
export function launchMeasure(m: Omit<MeasureInput, 'mnonce'> & { mnonce?: Uint8Array }): Buffer {
  const mnonce = m.mnonce ? Buffer.from(m.mnonce) : crypto.randomBytes(16);
  return Buffer.concat([computeMeasure({ ...m, mnonce }), mnonce]);
}

/** Split a host-reported blob (raw or base64, as QEMU's query-sev-launch-measure returns it). */
export function parseMeasurementBlob(blob: Uint8Array | string, what = 'launch measurement'): { measure: Buffer; mnonce: Buffer; raw: Buffer } {
  const raw = typeof blob === 'string' ? decodeBase64(blob, what) : Buffer.from(blob);
  if (raw.length !== MEASUREMENT_BLOB_SIZE) {
    throw new LaunchInputError(`${what} has ${raw.length} bytes, expected ${MEASUREMENT_BLOB_SIZE} (32-byte MAC + 16-byte nonce)`, 'ERR_LENGTH', 'INVALID_LEN');
  }
  return { measure: raw.subarray(0, 32), mnonce: raw.subarray(32, 48), raw };
}

/**
 * The firmware values the host reports with the measurement blob (from QMP query-sev, or aleph's sev_info:
 * aleph/sev-info.ts converts), which the owner range-checks (checkHostReport) and MACs: API major, minor and
 * build are one byte each, the policy a u32.
 */
export interface HostReport {
  apiMajor: number;
  apiMinor: number;
  buildId: number;
  policy: number;
}

/**
 * Refuses host-reported values that cannot be true, before anything is done with them: the MAC covers one
 * byte each of API major, minor and build, so a value that does not fit its byte (or is not an integer)
 * was never the firmware's, and masking it would let a host show "API 1.311" or pass a minimum-version
 * check by adding 256. The policy is 32 bits; the measurement exactly 48 bytes of strict base64 (no
 * whitespace, padding required) when given as text. Throws HostValueError.
 */
export function checkHostReport(info: HostReport, measurement?: Uint8Array | string): void {
  const impossible = (what: string): never => {
    throw new HostValueError(`the host reported an impossible value: ${what}`);
  };
  const show = (x: unknown): string => (typeof x === 'number' ? String(x) : (JSON.stringify(x)?.slice(0, 40) ?? String(x)));
  const byte = (name: string, x: unknown): void => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 255) impossible(`${name} ${show(x)} (the firmware reports it in one byte, 0..255)`);
  };
  byte('API major', info.apiMajor);
  byte('API minor', info.apiMinor);
  byte('build', info.buildId);
  const p = info.policy as unknown;
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 0xffffffff) impossible(`policy ${show(p)} (a guest policy is a 32-bit unsigned integer)`);
  if (measurement === undefined) return;
  if (typeof measurement === 'string') {
    if (/\s/.test(measurement)) impossible('launch measurement contains whitespace (expected strict base64)');
    let raw: Buffer;
    try {
      raw = decodeBase64(measurement, 'launch measurement');
    } catch {
      return impossible('launch measurement is not strict base64');
    }
    if (raw.length !== MEASUREMENT_BLOB_SIZE)
      impossible(`launch measurement of ${raw.length} bytes (it is ${MEASUREMENT_BLOB_SIZE}: a 32-byte MAC and a 16-byte nonce)`);
  } else if (measurement.length !== MEASUREMENT_BLOB_SIZE) {
    impossible(`launch measurement of ${measurement.length} bytes (it is ${MEASUREMENT_BLOB_SIZE}: a 32-byte MAC and a 16-byte nonce)`);
  }
}
