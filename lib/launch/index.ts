/** Guest-owner launch cryptography: policy, session, measurement, VMSA, secrets, and the firmware-side inverses (OVMF images: lib/firmware). */
export {
  LaunchError,
  LaunchInputError,
  PolicyError,
  SessionError,
  MeasurementError,
  VmsaError,
  SecretError,
  HostValueError,
  type LaunchFwStatus,
} from './errors.js';
export * from './policy.js';
export { kdf } from './kdf.js';
export * from './session-crypto.js';
export * from './session.js';
export { HASHES_GUIDS, HASHES_TABLE_SIZE, buildKernelHashesTable, parseKernelHashesTable, type KernelHashes, type KernelHashesInput } from './hashes.js';
export {
  VCPU_SIGNATURES,
  vcpuSignature,
  cpuSignature,
  VMSA_SIZE,
  VMSA_STRUCT_SIZE,
  buildSevctlVmsa,
  updateSevctlVmsa,
  sevctlResetAddress,
  buildEsVmsa,
  parseVmType,
  decodeVmsa,
  formatVmsaShow,
  type VmmUserspace,
  type SevctlVmsaOptions,
  type VmType,
  type EsVmsaOptions,
  type VmsaSegment,
  type VmsaValue,
} from './vmsa.js';
export {
  QEMU_CPU_MODELS,
  HOST_CPU_SIGNATURES,
  cpuCandidates,
  cpuNamesForSignature,
  describeCpuSignature,
  splitCpuSignature,
  type QemuCpuModel,
  type HostCpuSignature,
  type CpuCandidate,
} from './cpus.js';
export {
  MEASUREMENT_BLOB_SIZE,
  LaunchDigest,
  buildEsVmsas,
  computeLaunchDigest,
  MIN_MEASURE_API,
  computeMeasure,
  launchMeasure,
  parseMeasurementBlob,
  checkHostReport,
  type EsVmsaSpec,
  type LaunchDigestInput,
  type MeasureInput,
  type HostReport,
} from './measurement.js';
export * from './diagnose.js';
export * from './verify-measurement.js';
export * from './secret.js';
