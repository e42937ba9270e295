/** Guest-owner launch cryptography: policy, session, measurement, VMSA, secrets, and the firmware-side inverses (OVMF images: lib/firmware). */
export * from './errors.js';
export * from './policy.js';
export { kdf } from './kdf.js';
export * from './session-crypto.js';
export * from './session.js';
export { HASHES_GUIDS, HASHES_TABLE_SIZE, buildKernelHashesTable, parseKernelHashesTable, type KernelHashes, type KernelHashesInput } from './hashes.js';
export * from './vmsa.js';
export { QEMU_CPU_MODELS, HOST_CPU_SIGNATURES, cpuCandidates, cpuNamesForSignature, describeCpuSignature, splitCpuSignature, type QemuCpuModel, type HostCpuSignature, type CpuCandidate } from './cpus.js';
export * from './measurement.js';
export * from './diagnose.js';
export * from './verify-measurement.js';
export * from './secret.js';
