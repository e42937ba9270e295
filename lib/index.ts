/**
 * sevkit: AMD SEV for confidential-VM hosts and guest owners.
 *
 * The root exports the names most programs start from; everything else lives
 * in one entry point per area, which also loads faster because it loads only
 * that area:
 *   sevkit/platform  the /dev/sev firmware commands (SevPlatform) and CPUID
 *   sevkit/firmware  OVMF images: footer table, launch-secret and hashes areas
 *   sevkit/certs     SEV and AMD certificates, chains to AMD's roots, the KDS
 *   sevkit/launch    the guest owner's launch cryptography: policy, session, measurement, secret
 *   sevkit/qmp       a QMP client with deadlines
 *   sevkit/vm        the QEMU supervisor for confidential VMs
 *   sevkit/aleph     aleph's wire protocol: wallets, signed headers, message shapes
 *   sevkit/host      host readiness probes (what `sev-status` reports)
 *   sevkit/sim       the software SEV platform (TEST roots: proves nothing about hardware)
 *   sevkit/crn       the compute node's HTTP service
 *   sevkit/owner     the guest owner's client and launch flow
 *   sevkit/testing   test seams (fake bindings, fake hosts, simulator faults)
 */
export { SevkitError, InputError, UsageError, isSevkitError } from './errors.js';
export { SevPlatform, type SevPlatformOptions, type PlatformCerts } from './platform/platform.js';
export type { PlatformStatus } from './platform/layout.js';
export { verifyChain, type VerifyChainOptions, type ChainVerification } from './certs/verify-chain.js';
export { Policy, type PolicyLike } from './launch/policy.js';
export { createSession, type LaunchSession, type CreateSessionOptions } from './launch/session.js';
export { computeLaunchDigest, type LaunchDigestInput } from './launch/measurement.js';
export { verifyMeasurement, type VerifyMeasurementInput, type MeasurementVerdict } from './launch/verify-measurement.js';
export { buildSecret, type BuildSecretInput, type BuiltSecret } from './launch/secret.js';
export { QmpClient, type QmpClientOptions } from './qmp/client.js';
export { Supervisor, ConfidentialVm, type SupervisorOptions, type VmSpec } from './vm/supervisor.js';
export { CrnService, type CrnServiceOptions } from './crn/service.js';
export { startCrnServer, type CrnServer } from './crn/server.js';
export { CrnClient, type CrnClientOptions } from './owner/client.js';
export { launchOnCrn, LaunchRefusedError, type OwnerLaunchOptions, type OwnerLaunchResult } from './owner/launch.js';
export { startSim, type SimSession, type StartSimOptions } from './sim/session.js';
