/**
 * The CRN's answers where sevkit deliberately differs from aleph-vm, as one
 * table per mode. `sevkit` (the default) names a wrong step for what it is;
 * `aleph` reproduces aleph-vm 1.14 (`main`, shared/specs/aleph.md §A.1) byte
 * for byte, for clients that match on aleph's exact status codes and bodies.
 *
 *   case                               sevkit                      aleph
 *   second initialize                  409 {"code": "vm_running"…}  400 same body
 *   measurement before initialize      409 Operation not running   403 {"error": "Operation not running"}
 *   measurement while QEMU starts      503 + Retry-After           500 QMP socket missing (RuntimeError)
 *   second inject_secret               409 already received        500 QEMU's "Not in correct state" (QMPResponseError)
 *   secret packet the firmware refuses 422, VM still awaits it     500 QEMU's error (QMPResponseError)
 *   wrong method on a known path       405 + Allow                 404 {"error": "404: Not Found"}
 *   unknown path                       404 {"error": "Not Found"}  404 {"error": "404: Not Found"}
 *   JSON bodies                        compact JSON.stringify      Python json.dumps (", " / ": ", \uXXXX escapes)
 *   inject status key order            as the VM reports it        QEMU's: status, singlestep, running
 *
 * Why sevkit's own answers differ: a 400 or a 500 tells a client the request
 * was malformed or the server broke, while the request was well formed and
 * only came at the wrong moment (409), or too early (503, retry); a 405 with
 * Allow says which method the path takes. See docs/crn-aleph.md.
 */
import type { ServerResponse } from 'node:http';
import { errorJson, hostError, HttpError } from './http.js';
import type { CrnVmRunStatus } from './backend.js';

/** Which answers the CRN gives where sevkit and aleph-vm differ. */
export type CrnMode = 'sevkit' | 'aleph';

/** The VM states the tables distinguish (the service's CrnVmState). */
type VmState = 'allocated' | 'starting' | 'awaiting-secret' | 'injecting' | 'running' | 'failed' | 'stopped';

/** The mode-dependent answers; every method returns the error to throw (or the bytes to send). */
export interface ModeResponses {
  readonly mode: CrnMode;
  /** The body bytes of a JSON answer. */
  json(body: unknown): Buffer;
  notFound(): HttpError;
  wrongMethod(allow: string): HttpError;
  /** initialize while the VM is starting, awaiting its secret or running. */
  alreadyInitialized(): HttpError;
  /** measurement for a VM in `state` that has no QEMU to ask (allocated, failed, stopped). */
  measurementNotRunning(state: VmState, reason: string | undefined, ref: string): HttpError;
  /** measurement or inject_secret while QEMU is still starting (no QMP socket yet). */
  qemuNotReady(): HttpError;
  /** inject_secret for a VM that is not awaiting its secret. */
  injectNotAwaiting(state: VmState, ref: string): HttpError;
  /**
   * inject_secret whose packet QEMU or the firmware refused (wrong keys, MAC,
   * size) while the VM still awaits its secret: the owner may send another (aleph #668).
   */
  secretRefused(e: unknown, ref: string): HttpError;
  /** The inject_secret answer's `status` object. */
  runStatus(s: CrnVmRunStatus): CrnVmRunStatus;
  /** An unexpected failure (a QMP refusal, a launcher error): status 500 and aleph's {"error", "error_type"}. */
  internalError(e: unknown): HttpError;
}

const QMP_RESPONSE_ERROR = "<class 'qmp.QMPResponseError'>";
const QMP_SOCKET_MISSING = 'VM is not running (QMP socket missing)';
const VM_RUNNING = { code: 'vm_running', description: 'Operation not allowed, instance already running' } as const;

/** QEMU's SevState enum values (the LSECRET error prints the state with %x). */
const QEMU_SEV_STATE: Record<string, number> = { running: 3 };

/**
 * Python's `json.dumps(value)` with its defaults: `", "` and `": "` separators,
 * ensure_ascii (every non-ASCII UTF-16 unit as a lower-case `\uXXXX`), keys in
 * insertion order, `undefined` members left out as JSON.stringify does.
 * Numbers are written as JavaScript writes them (Python would print an
 * integral float as `1.0`; the CRN only sends integers).
 */
export function pyJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : value > 0 ? 'Infinity' : value < 0 ? '-Infinity' : 'NaN';
  // ensure_ascii escapes everything outside ' '..'~', DEL (0x7f) included; JSON.stringify already escapes below ' '.
  if (typeof value === 'string') return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (Array.isArray(value)) return `[${value.map((v) => pyJsonDumps(v)).join(', ')}]`;
  if (typeof value === 'object') {
    const maybe = value as { toJSON?: () => unknown };
    if (typeof maybe.toJSON === 'function') return pyJsonDumps(maybe.toJSON());
    const parts: string[] = [];
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined || typeof v === 'function') continue;
      parts.push(`${pyJsonDumps(k)}: ${pyJsonDumps(v)}`);
    }
    return `{${parts.join(', ')}}`;
  }
  return 'null';
}

function describe(e: unknown): { message: string; name: string; desc?: string } {
  const err = e as { message?: unknown; name?: unknown; desc?: unknown } | null;
  return {
    message: typeof err?.message === 'string' ? err.message : String(e),
    name: typeof err?.name === 'string' ? err.name : 'Error',
    ...(typeof err?.desc === 'string' ? { desc: err.desc } : {}),
  };
}

const SEVKIT: ModeResponses = {
  mode: 'sevkit',
  json: (body) => Buffer.from(JSON.stringify(body), 'utf8'),
  notFound: () => errorJson(404, 'Not Found'),
  wrongMethod: (allow) => errorJson(405, 'Method Not Allowed', { Allow: allow }),
  alreadyInitialized: () => new HttpError(409, VM_RUNNING),
  measurementNotRunning: (state, reason, ref) => errorJson(409, state === 'allocated' ? 'Operation not running' : (reason ?? `VM ${ref} is ${state}`)),
  qemuNotReady: () => errorJson(503, 'VM is starting, QEMU is not ready yet', { 'Retry-After': '1' }),
  injectNotAwaiting: (state, ref) =>
    errorJson(409, state === 'running' || state === 'injecting' ? `VM ${ref} already received its secret` : `VM ${ref} is ${state}, not awaiting a secret`),
  secretRefused: (e, ref) => {
    const host = hostError(e);
    if (host.status !== 500) return host;
    const d = describe(e);
    return errorJson(422, `The secret packet was refused (${d.desc ?? d.message}); VM ${ref} still awaits its secret: send a packet built for this launch`);
  },
  runStatus: (s) => s,
  // The host's own faults by kind (507 disk, 503 dead device), else aleph's 500 shape.
  internalError: (e) => hostError(e),
};

const ALEPH: ModeResponses = {
  mode: 'aleph',
  json: (body) => Buffer.from(pyJsonDumps(body), 'utf8'),
  // aiohttp's HTTPNotFound() text, wrapped by aleph's error_middleware. aleph routes a GET
  // on a POST-only /control path to its catch-all 404 handler; sevkit answers every wrong
  // method that way (aleph sends other methods to its hostname VM router, whose answer
  // depends on DNS).
  notFound: () => new HttpError(404, { error: '404: Not Found' }),
  wrongMethod: () => new HttpError(404, { error: '404: Not Found' }),
  alreadyInitialized: () => new HttpError(400, VM_RUNNING),
  // aleph: `raise HTTPForbidden(body="Operation not running")` whenever the controller unit is inactive.
  measurementNotRunning: () => new HttpError(403, { error: 'Operation not running' }),
  // The unit is active but QEMU has not created its QMP socket yet: QemuVmClient raises RuntimeError.
  qemuNotReady: () => new HttpError(500, { error: QMP_SOCKET_MISSING, error_type: "<class 'RuntimeError'>" }),
  injectNotAwaiting: (state, ref) => {
    // A second packet while the first is in flight has no aleph counterpart (aleph would race two QMP injects).
    if (state === 'injecting') return SEVKIT.injectNotAwaiting(state, ref);
    const n = QEMU_SEV_STATE[state];
    // aleph has no state check: QEMU refuses (running) or there is no QEMU to ask.
    if (n !== undefined) return new HttpError(500, { error: `SEV: Not in correct state. (LSECRET) ${n.toString(16)}`, error_type: QMP_RESPONSE_ERROR });
    return new HttpError(500, { error: QMP_SOCKET_MISSING, error_type: "<class 'RuntimeError'>" });
  },
  // aleph passes the QMP error on as a 500 (its #668); the VM is still re-injectable there too.
  secretRefused: (e) => ALEPH.internalError(e),
  // QEMU's query-status member order, which aleph passes through json.dumps unchanged.
  runStatus: (s) => ({ status: s.status, ...(s.singlestep !== undefined ? { singlestep: s.singlestep } : {}), running: s.running }) as CrnVmRunStatus,
  internalError: (e) => {
    const d = describe(e);
    // A QEMU refusal reaches aleph as qmp's QMPResponseError carrying QEMU's desc.
    if (d.desc !== undefined) return new HttpError(500, { error: d.desc, error_type: QMP_RESPONSE_ERROR });
    return new HttpError(500, { error: d.message, error_type: `<class '${d.name}'>` });
  },
};

/** The answer table of `mode`; throws a TypeError for an unknown mode. */
export function modeResponses(mode: CrnMode = 'sevkit'): ModeResponses {
  if (mode === 'sevkit') return SEVKIT;
  if (mode === 'aleph') return ALEPH;
  throw new TypeError(`unknown CRN mode '${String(mode)}' (expected sevkit or aleph)`);
}

/** Sends `body` as JSON serialised the mode's way (Content-Type and Content-Length as sendJson). */
export function sendModeJson(m: ModeResponses, res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = m.json(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length });
  res.end(data);
}
