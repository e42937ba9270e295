/**
 * The root of sevkit's error hierarchy. Every error sevkit throws on purpose
 * is a SevkitError with a stable `code`, so callers can branch on codes and the
 * CLI can print one clear line instead of a stack trace.
 *
 * Modules define their own subclasses next to the code that throws them
 * (CertificateError in certs/, QmpError in qmp/, ...); this file holds only the
 * shared base so that no module has to import another module's errors.
 */
export class SevkitError extends Error {
  /** Stable, machine-readable code, e.g. `ERR_CERT_SIGNATURE`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad input from the user (a file, a flag, an argument). CLI exit code 1, or 2 for usage. */
export class InputError extends SevkitError {
  constructor(message: string, code = 'ERR_INPUT', options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Command-line usage errors (unknown flag, missing argument): CLI exit code 2. */
export class UsageError extends SevkitError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

/** Whether `e` is a SevkitError, i.e. one of sevkit's typed failures with a stable `code`. */
export function isSevkitError(e: unknown): e is SevkitError {
  return e instanceof SevkitError;
}
