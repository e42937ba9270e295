/** Host probes (`sevkit ok`, `sev-status`): the facts, the checks judged from them, and the report. CPUID: sevkit/platform. */
export { HostFs } from './fs.js';
export type { HostFsOptions, IoFailure, Read } from './fs.js';
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
export { runOk, formatOkLine, detectOkGeneration, OK_FAILURE_MESSAGE } from './okTree.js';
export type { OkGeneration, OkLine, OkReport, OkFacts, OkStatus } from './okTree.js';
export { evaluateChecks, GUEST_TYPES, GUEST_LABEL, CHECK_IDS } from './checks.js';
export type { Check, CheckStatus, CheckGroup, GuestType } from './checks.js';
export { buildReport, verdicts, STATUS_SCHEMA } from './status.js';
export type { Verdict, StatusReport } from './status.js';
export { renderStatus } from './render.js';
