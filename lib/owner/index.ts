/** The guest owner's side: a client for a CRN's confidential endpoints and the verified launch flow over it. */
export { CrnHttpError, CrnUnreachableError, CrnClient, type CrnClientOptions } from './client.js';
export * from './launch.js';
export {
  attestAgent,
  attestAndInject,
  AttestRefusedError,
  AttestTransportError,
  AttestInjectError,
  type AttestOptions,
  type AttestedAgent,
  type AttestResult,
  type SnpExpectedLaunch,
} from './attest.js';
