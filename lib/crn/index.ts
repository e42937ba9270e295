/** The compute resource node: aleph's confidential-VM HTTP service over a VM launcher, its server, authorization and allocation rules. */
export type { CrnPlatformCerts, CertificateSource, CrnVmRunStatus, LaunchSpec, SnpLaunchSpec, CrnVm, VmLauncher } from './backend.js';
export { CrnService, SNP_AGENT_PORT, type CrnServiceOptions, type AllocationRequest, type CrnTeeMode, type CrnVmState, type CrnVmSummary } from './service.js';
export { PortForwarder, ForwardListenError, type PortForwarderOptions, type AgentAddress } from './forward.js';
export { startCrnServer, type CrnServer } from './server.js';

export {
  SupervisorLauncher,
  platformCertificateSource,
  NoAgentLocatorError,
  hostForwardAgentLocator,
  freeLoopbackPort,
  type SupervisorLauncherOptions,
  type SnpAgentLocator,
  type SnpAgentEndpoint,
  type SnpAgentVm,
} from './launchers.js';
export { agentProcessLocator, AgentProcessError, AGENT_RECORD_FILE, AGENT_SECRETS_DIR, type AgentProcessOptions } from './agent-process.js';
export type { CrnMode } from './aleph-mode.js';
export {
  exactOwner,
  SECURITY_AGGREGATE_TTL_MS,
  AGGREGATE_TIMEOUT_MS,
  AGGREGATE_MAX_BYTES,
  AlephApiError,
  securityAggregateAllows,
  alephSecurityAggregateAuthorizer,
  httpAggregateFetcher,
  type AuthorizeRequest,
  type Authorizer,
  type AggregateFetcher,
  type AggregateAuthorizerOptions,
} from './authorize.js';
export {
  AllocationMessageError,
  MessageNotFoundError,
  AlephAllocations,
  httpMessageFetcher,
  allocationTokenHash,
  type MessageFetcher,
  type AlephAllocationOptions,
  type AlephInstanceMessage,
} from './allocations.js';
export type { CrnRoute, CrnRouteContext, CrnExtension } from './routes.js';
