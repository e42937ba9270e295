/** Typed failures of the confidential-VM supervisor. */
import { SevkitError } from '../errors.js';

/**
 * Base class of the supervisor's failures (a SevkitError): VmStateError, VmExitedError, VmLaunchError,
 * VmSecretError.
 */
export class VmError extends SevkitError {}

/** An operation not allowed in the VM's current lifecycle state. */
export class VmStateError extends VmError {
  constructor(message: string) {
    super('ERR_VM_STATE', message);
  }
}

/** QEMU went away (exit or crash); carries the tail of its stderr. */
export class VmExitedError extends VmError {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderrTail: string;
  constructor(message: string, exitCode: number | null, signal: NodeJS.Signals | null, stderrTail: string) {
    super('ERR_VM_EXITED', message);
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
  }
}

/** The launch could not be prepared or did not reach the measurement (spawn failure, bad spec, timeout). */
export class VmLaunchError extends VmError {
  constructor(message: string, code = 'ERR_VM_LAUNCH', options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The launch secret cannot be placed: no secret area and no GPA, too big, bad encoding. */
export class VmSecretError extends VmError {
  constructor(message: string, code = 'ERR_VM_SECRET') {
    super(code, message);
  }
}
