/**
 * Errors of the SNP attestation area. Every one is a SevkitError with a stable
 * code; `field` names the report field (C name, e.g. `KEY_INFO.SIGNING_KEY`) or
 * certificate part that is wrong, so the CLI line says exactly what to fix.
 */
import { SevkitError } from '../errors.js';

/** Base of every SNP error: a stable code and, where known, the field at fault. */
export class SnpError extends SevkitError {
  /** The report field (C name) or certificate part at fault, if there is one. */
  readonly field: string | undefined;

  constructor(code: string, message: string, opts: { field?: string; cause?: unknown } = {}) {
    super(code, message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.field = opts.field;
  }
}

/** An attestation report (or a TCB / policy word) whose bytes do not follow the layout: wrong size, bad version, non-zero reserved bytes, undefined flag values. */
export class ReportFormatError extends SnpError {
  constructor(field: string, message: string, opts: { cause?: unknown } = {}) {
    super('ERR_SNP_REPORT_FORMAT', `attestation report ${field}: ${message}`, { field, ...opts });
  }
}

/** A certificate (ARK, ASK, ASVK, VCEK, VLEK) or CRL that cannot be decoded or does not have AMD's required shape. `cert` names which. */
export class SnpCertError extends SnpError {
  /** Which certificate: `ARK`, `ASK`, `ASVK`, `VCEK`, `VLEK`, `CRL`, or a file name. */
  readonly cert: string;

  constructor(cert: string, message: string, opts: { field?: string; cause?: unknown; code?: string } = {}) {
    super(opts.code ?? 'ERR_SNP_CERT_FORMAT', `${cert}: ${message}`, opts);
    this.cert = cert;
  }
}

/** The certificate table of an extended report is malformed. */
export class CertTableError extends SnpError {
  constructor(message: string, opts: { field?: string } = {}) {
    super('ERR_SNP_CERT_TABLE', `certificate table: ${message}`, opts);
  }
}

/** AMD's Key Distribution Service (or the cache standing in for it) could not provide a certificate. */
export class SnpKdsError extends SnpError {
  /** HTTP status of the last answer, when there was one. */
  readonly status: number | undefined;

  constructor(message: string, opts: { status?: number; cause?: unknown; code?: string } = {}) {
    super(opts.code ?? 'ERR_SNP_KDS', message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.status = opts.status;
  }
}

/** A verification policy (or a CLI policy option) that makes no sense, e.g. a measurement that is not 48 bytes. */
export class SnpPolicyError extends SnpError {
  constructor(field: string, message: string) {
    super('ERR_SNP_POLICY', `policy ${field}: ${message}`, { field });
  }
}
