/** Host probes (`sevkit ok`, `sev-status`) and the CPUID helpers the QEMU supervisor uses. */
export { HostFs, HOST_PATHS, MSR_SYSCFG, ioFailure } from './fs.js';
export type { HostFsOptions, IoFailure, Read } from './fs.js';
export {
  CpuidError,
  openCpuid,
  parseCpuidJson,
  decodeSevLeaf,
  sevLeaf,
  sevCpuInfo,
  vendorString,
  brandString,
  familyModel,
  cpuidFromCpuinfo,
} from '../platform/cpuid.js';
export type { CpuidReader, CpuidRegs, CpuidSourceKind, CpuidOptions, SevCpuInfo } from '../platform/cpuid.js';
export {
  probeDevSev,
  probeFirmware,
  probeKernel,
  probeKvm,
  probeKvmAmd,
  probeMemlock,
  probeOvmf,
  probeParam,
  probeQemu,
  probeSyscfg,
  inspectOvmf,
  parseLimits,
  parseQemuVersion,
  KVM_API_VERSION,
  DEFAULT_OVMF_DIRS,
} from './probes.js';
export type {
  DevSevFact,
  FirmwareFact,
  FirmwareStatus as HostFirmwareStatus,
  FirmwareError as HostFirmwareError,
  KernelFact,
  KvmAmdFact,
  KvmFact,
  MemlockFact,
  MsrFact,
  OvmfFact,
  OvmfImage,
  ParamFact,
  PlatformLike,
  QemuFact,
} from './probes.js';
export { probeHost, probeOkFacts, DEFAULT_SEV_DEVICE } from './gather.js';
export type { HostFacts, HostProbeOptions, StatusProbeOptions, OkHostFacts } from './gather.js';
export { runOk, formatOkLine, detectOkGeneration, OK_MASKS, OK_FAILURE_MESSAGE } from './okTree.js';
export type { OkGeneration, OkLine, OkReport, OkFacts, OkStatus } from './okTree.js';
export {
  buildReport,
  evaluateChecks,
  verdicts,
  STATUS_SCHEMA,
  GUEST_TYPES,
  GUEST_LABEL,
  FIXES as HOST_FIXES,
  CHECK_IDS,
  MIN_API,
  MEMLOCK_WARN_BYTES,
} from './status.js';
export type { Check, CheckStatus, CheckGroup, GuestType, Verdict, StatusReport } from './status.js';
export { renderStatus } from './render.js';
