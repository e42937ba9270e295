/**
 * Small HTTP helpers for the CRN handler: aleph-style responses and bounded
 * body reading. Bodies are never logged.
 */
import { errorJson, HttpError } from '../util/http-body.js';

// The response and body helpers live in util/ (the guest agent uses them too); re-exported for the CRN modules.
export {
  HttpError,
  errorJson,
  sendJson,
  sendText,
  sendError,
  bodyTooLarge,
  declaresMoreThan,
  DEFAULT_BODY_TIMEOUT_MS,
  readBody,
  readJsonBody,
  type BodyOptions,
} from '../util/http-body.js';

const STORAGE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS']);
const DEVICE_CODES = new Set(['ENODEV', 'ENXIO', 'ECONNREFUSED', 'EHOSTDOWN']);

/**
 * The answer for an error that is the host's own fault, not the request's: a
 * full or read-only disk is 507, a dead SEV device (or simulator) is 503 with
 * Retry-After, each one line naming what failed; anything else is aleph's 500
 * shape. Node's raw message (paths, syscalls) is kept out of the first two;
 * the 507 names the run directory (`where.runDir`), which the operator owns.
 */
export function hostError(e: unknown, where: { runDir?: string } = {}): HttpError {
  const err = e as NodeJS.ErrnoException | undefined;
  const code = typeof err?.code === 'string' ? err.code : '';
  if (STORAGE_CODES.has(code)) {
    const dir = where.runDir ? `its run directory ${where.runDir}` : 'its run directory';
    return errorJson(507, `The CRN host cannot store files (${code}): the disk of ${dir} is full or read-only`);
  }
  if (DEVICE_CODES.has(code) || (code === 'ENOENT' && typeof err?.path === 'string' && /sev/i.test(err.path))) {
    return errorJson(503, `The SEV platform is unavailable (${code}${err?.path ? ` on ${err.path}` : ''}): the device or its driver is not answering`, {
      'Retry-After': '5',
    });
  }
  return new HttpError(500, { error: err?.message ?? String(e), error_type: `<class '${err?.name ?? 'Error'}'>` });
}
