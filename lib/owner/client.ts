/**
 * HTTP client for a CRN's confidential endpoints, speaking aleph-vm's wire
 * format (what aleph-sdk-python's VmConfidentialClient sends), so it works
 * against aleph's CRNs and against sevkit's reference CRN.
 */
import type { SevMeasurementResponse } from '../aleph/messages.js';
import { SevkitError } from '../errors.js';
import { createAuthSession, type AuthSession } from '../aleph/auth.js';
import type { Wallet } from '../aleph/wallet.js';
import { httpRequest, HttpRequestError, isRetryableTransport } from '../util/http-request.js';

/**
 * The CRN answered an operation with an HTTP error or a malformed body (ERR_CRN_HTTP); `detail` is the body's
 * first printable bytes.
 */
export class CrnHttpError extends SevkitError {
  constructor(
    readonly operation: string,
    readonly status: number,
    /** First bytes of the server's body, printable characters only. */
    readonly detail: string,
  ) {
    super('ERR_CRN_HTTP', `CRN ${operation}: HTTP ${status}${detail ? `: ${detail}` : ''}`);
  }
}

/** No complete answer from the CRN: unreachable, dropped, too slow (deadline) or redirected elsewhere. */
export class CrnUnreachableError extends SevkitError {
  constructor(
    readonly operation: string,
    readonly url: string,
    cause: unknown,
  ) {
    super(
      cause instanceof HttpRequestError && cause.kind === 'timeout' ? 'ERR_CRN_TIMEOUT' : 'ERR_CRN_UNREACHABLE',
      `CRN ${operation}: ${url}: ${describeFetchError(cause)}`,
      { cause },
    );
  }
}

function describeFetchError(e: unknown): string {
  if (e instanceof HttpRequestError) return e.kind === 'transport' ? `cannot reach it: ${e.message}` : e.message;
  const err = e as { message?: string };
  return err?.message ?? String(e);
}

/**
 * Options of CrnClient: the CRN's base URL, the owner's wallet, the signed domain, the per-request timeout (ms)
 * and the largest accepted body (bytes).
 */
export interface CrnClientOptions {
  /** Base URL, e.g. https://crn.example.org or http://127.0.0.1:4020. */
  url: string;
  /** The VM owner's wallet; required for the /control/machine endpoints. */
  wallet?: Wallet;
  /** Overrides the signed `domain` (default: the URL's hostname, as aleph's SDK does). */
  domain?: string;
  /** Deadline of one request, connect to the last body byte (default 30 s). */
  timeoutMs?: number;
  /**
   * Deadline of initialize (default 150 s): aleph-vm's dev line holds it open up to 120 s while the VM
   * comes up, so the ordinary request deadline would give up on a CRN that is working.
   */
  initializeTimeoutMs?: number;
  /** Largest response body accepted. */
  maxResponseBytes?: number;
  /** Extra tries of an idempotent GET after a dropped or refused connection, within its deadline (default 2). */
  getRetries?: number;
  /** Cancels every request in flight (the launch's overall deadline, Ctrl-C). */
  signal?: AbortSignal;
  /** Extra trusted CA certificates (PEM) for an https CRN. */
  tlsCa?: string | Buffer;
}

/** A measurement poll's answer: the value on 200, else the status, and when to ask again if the CRN said. */
export interface MeasurementPoll {
  status: number;
  value?: SevMeasurementResponse;
  detail: string;
  /** The CRN's Retry-After, in ms (seconds form only; dates are not trusted from a host). */
  retryAfterMs?: number;
}

/**
 * A client for a CRN's confidential endpoints in aleph-vm's wire format, signing /control/machine requests with
 * the owner's wallet; fails with CrnHttpError (including a malformed answer) or CrnUnreachableError. The
 * constructor throws SevkitError ERR_INPUT on a URL that is not http(s).
 */
export class CrnClient {
  readonly url: string;
  readonly domain: string;
  readonly #wallet?: Wallet;
  readonly #timeoutMs: number;
  readonly #initializeTimeoutMs: number;
  readonly #maxBytes: number;
  readonly #getRetries: number;
  readonly #signal?: AbortSignal;
  readonly #tlsCa?: string | Buffer;
  readonly #opts: CrnClientOptions;
  #auth?: AuthSession;

  constructor(opts: CrnClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new SevkitError('ERR_INPUT', `--crn must be an http(s) URL, got '${opts.url}'`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SevkitError('ERR_INPUT', `--crn must be an http(s) URL, got '${opts.url}'`);
    this.url = u.origin + u.pathname.replace(/\/+$/, '');
    this.domain = opts.domain ?? u.hostname.replace(/^\[|\]$/g, '');
    this.#wallet = opts.wallet;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#initializeTimeoutMs = opts.initializeTimeoutMs ?? 150_000;
    this.#maxBytes = opts.maxResponseBytes ?? 1 << 20;
    this.#getRetries = opts.getRetries ?? 2;
    if (opts.signal) this.#signal = opts.signal;
    if (opts.tlsCa) this.#tlsCa = opts.tlsCa;
    this.#opts = opts;
  }

  /**
   * The same client whose requests also end when `signal` aborts (the launch's own deadline), so nothing
   * stays in flight after the caller gave up. It shares no state; its auth session is its own.
   */
  withSignal(signal: AbortSignal): CrnClient {
    return new CrnClient({ ...this.#opts, signal: this.#signal ? AbortSignal.any([this.#signal, signal]) : signal });
  }

  #authHeaders(method: 'GET' | 'POST', path: string): Record<string, string> {
    if (!this.#wallet) throw new SevkitError('ERR_INPUT', 'a wallet key is needed to act on a VM (--wallet-key)');
    this.#auth ??= createAuthSession(this.#wallet, { domain: this.domain });
    return this.#auth.headers(method, path);
  }

  /**
   * One request under one deadline covering connect, headers and the whole body (lib/util/http-request.ts).
   * A GET that lost its connection is tried again, at most getRetries times and only within the same
   * deadline; a POST never is (the CRN may have acted on it).
   */
  async #request(
    operation: string,
    method: 'GET' | 'POST',
    path: string,
    init: { headers?: Record<string, string> | (() => Record<string, string>); body?: string | FormData; query?: string; timeoutMs?: number } = {},
  ): Promise<{ status: number; body: Buffer; contentType: string; retryAfter?: string }> {
    let body: Buffer | undefined;
    let contentType: string | undefined;
    if (typeof init.body === 'string') body = Buffer.from(init.body, 'utf8');
    else if (init.body) {
      // The multipart encoding (and its boundary) as fetch would send it.
      const enc = new Response(init.body);
      body = Buffer.from(await enc.arrayBuffer());
      contentType = enc.headers.get('content-type') ?? undefined;
    }
    const deadlineMs = init.timeoutMs ?? this.#timeoutMs;
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      // Signed headers carry a timestamp: sign again for each attempt.
      const headers = { ...(typeof init.headers === 'function' ? init.headers() : init.headers), ...(contentType ? { 'Content-Type': contentType } : {}) };
      try {
        const r = await httpRequest({
          url: this.url + path + (init.query ?? ''),
          method,
          headers,
          ...(body ? { body } : {}),
          deadlineMs,
          startedAt: started,
          maxBytes: this.#maxBytes,
          followHttpsUpgrade: true,
          ...(this.#signal ? { signal: this.#signal } : {}),
          ...(this.#tlsCa ? { ca: this.#tlsCa } : {}),
        });
        const ra = r.headers['retry-after'];
        return { status: r.status, body: r.body, contentType: String(r.headers['content-type'] ?? ''), ...(typeof ra === 'string' ? { retryAfter: ra } : {}) };
      } catch (e) {
        if (e instanceof HttpRequestError && e.kind === 'too-large') throw new CrnHttpError(operation, 200, e.message);
        const pause = 200 * (attempt + 1);
        const retry =
          method === 'GET' && attempt < this.#getRetries && isRetryableTransport(e) && Date.now() - started + pause < deadlineMs && !this.#signal?.aborted;
        if (!retry) throw new CrnUnreachableError(operation, this.url, e);
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  static detail(body: Buffer): string {
    const text = body.subarray(0, 300).toString('utf8');
    try {
      const j = JSON.parse(text) as { error?: unknown; description?: unknown };
      if (typeof j.error === 'string') return printable(j.error, 200);
      if (typeof j.description === 'string') return printable(j.description, 200);
    } catch {
      // not JSON (aleph's 403 is plain text)
    }
    return printable(text, 200);
  }

  #ensureOk(operation: string, r: { status: number; body: Buffer }): void {
    if (r.status < 200 || r.status >= 300) throw new CrnHttpError(operation, r.status, CrnClient.detail(r.body));
  }

  /** GET /about/certificates: the raw PDH‖PEK‖OCA‖CEK bytes. */
  async getCertificates(): Promise<Buffer> {
    const r = await this.#request('certificates', 'GET', '/about/certificates');
    this.#ensureOk('certificates', r);
    return r.body;
  }

  async statusConfig(): Promise<Record<string, unknown>> {
    const r = await this.#request('status/config', 'GET', '/status/config');
    this.#ensureOk('status/config', r);
    return parseJson('status/config', r.body) as Record<string, unknown>;
  }

  /** POST /control/allocate (sevkit's reference CRN only). */
  async allocate(token: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const r = await this.#request('allocate', 'POST', '/control/allocate', {
      headers: { 'X-Auth-Signature': token, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    this.#ensureOk('allocate', r);
    return parseJson('allocate', r.body) as Record<string, unknown>;
  }

  /** Uploads the session and GODH (base64 text, as `sevctl session` writes them). */
  async initialize(ref: string, files: { session: string; godh: string }): Promise<string> {
    const path = `/control/machine/${ref}/confidential/initialize`;
    const form = new FormData();
    // aleph's SDK sends both as file parts named like the field, application/octet-stream.
    form.append('session', new Blob([files.session], { type: 'application/octet-stream' }), 'session');
    form.append('godh', new Blob([files.godh], { type: 'application/octet-stream' }), 'godh');
    const r = await this.#request('initialize', 'POST', path, { headers: this.#authHeaders('POST', path), body: form, timeoutMs: this.#initializeTimeoutMs });
    this.#ensureOk('initialize', r);
    return r.body.toString('utf8');
  }

  /**
   * One measurement request. With waitSeconds the CRN may hold it until the VM awaits its secret
   * (`?wait=S`, PROTOCOL.md §1); the deadline then grows by that long. The signature covers the path
   * without the query, as the server routes it.
   */
  async measurementOnce(ref: string, opts: { waitSeconds?: number } = {}): Promise<MeasurementPoll> {
    const path = `/control/machine/${ref}/confidential/measurement`;
    const wait = opts.waitSeconds !== undefined ? Math.min(120, Math.max(1, Math.floor(opts.waitSeconds))) : undefined;
    const r = await this.#request('measurement', 'GET', path, {
      headers: () => this.#authHeaders('GET', path),
      ...(wait ? { query: `?wait=${wait}`, timeoutMs: this.#timeoutMs + wait * 1000 } : {}),
    });
    const retryAfterMs = r.retryAfter !== undefined && /^\s*\d{1,6}\s*$/.test(r.retryAfter) ? Number(r.retryAfter) * 1000 : undefined;
    if (r.status !== 200) return { status: r.status, detail: CrnClient.detail(r.body), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    return { status: 200, value: parseMeasurement(r.body), detail: '' };
  }

  async injectSecret(ref: string, packet: { packet_header: string; secret: string }): Promise<{ status: unknown }> {
    const path = `/control/machine/${ref}/confidential/inject_secret`;
    const r = await this.#request('inject_secret', 'POST', path, {
      headers: { ...this.#authHeaders('POST', path), 'Content-Type': 'application/json' },
      body: JSON.stringify({ packet_header: packet.packet_header, secret: packet.secret }),
    });
    this.#ensureOk('inject_secret', r);
    return parseJson('inject_secret', r.body) as { status: unknown };
  }
}

/**
 * Text a CRN sent, made safe to print on the owner's terminal: printable ASCII only
 * (no escape sequences, no line breaks), at most `max` characters.
 */
export function printable(text: string, max: number): string {
  return text.replace(/[^\x20-\x7e]/g, '').slice(0, max);
}

function parseJson(operation: string, body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new CrnHttpError(operation, 200, 'response is not JSON');
  }
}

/** Validates the shape of a measurement answer; a hostile CRN gets no leeway. */
export function parseMeasurement(body: Buffer): SevMeasurementResponse {
  const j = parseJson('measurement', body) as Partial<SevMeasurementResponse> | null;
  const si = j?.sev_info as Record<string, unknown> | undefined;
  const bad = (what: string): never => {
    throw new CrnHttpError('measurement', 200, `malformed answer: ${what}`);
  };
  if (!j || typeof j !== 'object' || !si || typeof si !== 'object') bad('missing sev_info');
  for (const k of ['api_major', 'api_minor', 'build_id', 'policy', 'handle'] as const) {
    const v = si![k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) bad(`sev_info.${k} is not an unsigned integer`);
  }
  // QEMU's SevState names ('launch-secret', 'running', …): anything else would only reach the owner's terminal.
  if (typeof si!.state !== 'string' || !/^[\x20-\x7e]{1,64}$/.test(si!.state)) bad('sev_info.state is not a short printable string');
  if (typeof si!.enabled !== 'boolean') bad('sev_info.enabled is not a boolean');
  if (typeof j!.launch_measure !== 'string') bad('launch_measure is not a string');
  const info = si as unknown as SevMeasurementResponse['sev_info'];
  return {
    sev_info: {
      enabled: info.enabled,
      api_major: info.api_major,
      api_minor: info.api_minor,
      build_id: info.build_id,
      policy: info.policy,
      state: info.state,
      handle: info.handle,
    },
    launch_measure: j!.launch_measure!,
  };
}
