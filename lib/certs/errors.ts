import { SevkitError } from '../errors.js';

/**
 * A certificate (or chain, or report) that cannot be decoded, built or
 * trusted. `cert` names the certificate ("PEK", "ARK", a file name, ...) and
 * `field` the part that is wrong, so the CLI line says exactly what to fix.
 */
export class CertificateError extends SevkitError {
  readonly cert: string | undefined;
  readonly field: string | undefined;

  constructor(code: string, message: string, opts: { cert?: string; field?: string; cause?: unknown } = {}) {
    super(code, message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.cert = opts.cert;
    this.field = opts.field;
  }
}

/** The AMD Key Distribution Service could not provide a CEK. */
export class KdsError extends SevkitError {
  readonly status: number | undefined;
  constructor(message: string, opts: { status?: number; cause?: unknown } = {}) {
    super('ERR_KDS', message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.status = opts.status;
  }
}
