/**
 * Errors of the launch area. Each carries the SEV firmware status a real PSP
 * would return for the same failure (`fwStatusName`), so the simulator can map
 * a refused LAUNCH_START / LAUNCH_SECRET to the status the kernel reports,
 * while owner-side callers branch on `code`.
 */
import { SevkitError } from '../errors.js';
import { SevRet } from '../platform/constants.js';

/** Firmware statuses the launch inverses can produce (subset of sev_ret_code). */
export type LaunchFwStatus = 'INVALID_CERTIFICATE' | 'POLICY_FAILURE' | 'BAD_MEASUREMENT' | 'INVALID_LEN' | 'INVALID_PARAM' | 'UNSUPPORTED';

/** Their numeric values, taken from the one sev_ret_code table (lib/platform/constants). */
export const LAUNCH_FW_STATUS_CODES: Record<LaunchFwStatus, number> = {
  INVALID_LEN: SevRet.SEV_RET_INVALID_LEN,
  INVALID_CERTIFICATE: SevRet.SEV_RET_INVALID_CERTIFICATE,
  POLICY_FAILURE: SevRet.SEV_RET_POLICY_FAILURE,
  BAD_MEASUREMENT: SevRet.SEV_RET_BAD_MEASUREMENT,
  UNSUPPORTED: SevRet.SEV_RET_UNSUPPORTED,
  INVALID_PARAM: SevRet.SEV_RET_INVALID_PARAM,
};

/**
 * Base class of the launch area's errors (SevkitError): `code` for callers, and the SEV firmware status a real
 * PSP would return for the same failure (fwStatusName, fwStatus).
 */
export class LaunchError extends SevkitError {
  /** The firmware status a PSP would answer with, when the error models a firmware check. */
  readonly fwStatusName: LaunchFwStatus | undefined;
  readonly fwStatus: number | undefined;
  constructor(code: string, message: string, fwStatusName?: LaunchFwStatus, options?: { cause?: unknown }) {
    super(code, message, options);
    this.fwStatusName = fwStatusName;
    this.fwStatus = fwStatusName === undefined ? undefined : LAUNCH_FW_STATUS_CODES[fwStatusName];
  }
}

/** A malformed value handed to the launch code (wrong size, bad base64, bad GUID, ...). */
export class LaunchInputError extends LaunchError {
  constructor(message: string, code = 'ERR_LAUNCH_INPUT', fwStatusName: LaunchFwStatus = 'INVALID_PARAM') {
    super(code, message, fwStatusName);
  }
}

/** Policy value that cannot be parsed or violates what the owner asked for. */
export class PolicyError extends LaunchError {
  constructor(message: string, code = 'ERR_POLICY') {
    super(code, message, 'POLICY_FAILURE');
  }
}

/** Session creation/opening failures (GODH cert, wrap MAC, policy MAC). */
export class SessionError extends LaunchError {}

/** Launch measurement computation or verification failures. */
export class MeasurementError extends LaunchError {}

/** VMSA construction/parsing failures (unknown vCPU type, wrong file size). */
export class VmsaError extends LaunchError {
  constructor(message: string, code = 'ERR_VMSA') {
    super(code, message, 'INVALID_PARAM');
  }
}

/** Launch secret packet / table failures. */
export class SecretError extends LaunchError {}

/**
 * A host-reported value that cannot be true (an API version that does not fit the firmware's byte, a
 * policy beyond 32 bits, a measurement that is not 48 bytes of base64): the host is lying or broken.
 */
export class HostValueError extends LaunchError {
  constructor(message: string) {
    super('ERR_HOST_IMPOSSIBLE', message, 'INVALID_PARAM');
  }
}
