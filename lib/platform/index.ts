/** Host-side SEV platform API: the /dev/sev commands, typed, and the host's CPUID (SEV capabilities, cbitpos). */
export * from './constants.js';
export * from './layout.js';
export * from './errors.js';
export * from './platform.js';
export { CpuidError, openCpuid, sevCpuInfo, sevLeaf, decodeSevLeaf, vendorString, brandString, familyModel } from './cpuid.js';
export type { CpuidReader, CpuidRegs, CpuidSourceKind, CpuidOptions, SevCpuInfo } from './cpuid.js';
export { getBinding, getNativeBinding, BindingLoadError } from '../binding.js';
export type { NativeBinding, NativeConstants, NativeStructLayout } from '../binding.js';
