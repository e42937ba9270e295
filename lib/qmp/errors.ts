/**
 * Typed failures of a QMP conversation. Callers branch on the class (a QEMU
 * refusal is not a dead socket), and every message names the socket or the
 * command so one line on stderr is enough to act on.
 */
import { SevkitError } from '../errors.js';

/**
 * Base class of every QMP failure (a SevkitError); branch on the subclass: QmpCommandError,
 * QmpDisconnectedError, QmpProtocolError, QmpTimeoutError, QmpConnectError.
 */
export class QmpError extends SevkitError {}

/** QEMU answered the command with `{"error": {"class", "desc"}}`. */
export class QmpCommandError extends QmpError {
  /** QMP error class, e.g. `GenericError`, `CommandNotFound`. */
  readonly errorClass: string;
  readonly desc: string;
  readonly command: string;

  constructor(command: string, errorClass: string, desc: string) {
    super('ERR_QMP_COMMAND', `QMP ${command} failed: ${errorClass}: ${desc}`);
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** The peer closed the socket (or it was closed locally) before the answer came. */
export class QmpDisconnectedError extends QmpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_QMP_DISCONNECTED', message, options);
  }
}

/** The peer spoke something that is not QMP: not JSON, wrong shape, unknown id, oversized line. */
export class QmpProtocolError extends QmpError {
  constructor(message: string) {
    super('ERR_QMP_PROTOCOL', message);
  }
}

/** No answer within the per-command (or greeting) deadline. */
export class QmpTimeoutError extends QmpError {
  constructor(message: string) {
    super('ERR_QMP_TIMEOUT', message);
  }
}

/** The socket could not be opened at all (missing, refused, not a socket). */
export class QmpConnectError extends QmpError {
  readonly socketPath: string;
  constructor(socketPath: string, message: string, options?: { cause?: unknown }) {
    super('ERR_QMP_CONNECT', message, options);
    this.socketPath = socketPath;
  }
}
