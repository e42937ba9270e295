/**
 * One HTTP(S) request with one deadline on every byte: connecting, the headers and the whole body share a
 * single timer, and the body is bounded in size. fetch()'s per-request timeout did not do this for a
 * server that sends its headers and then one body byte a second, so a hostile CRN (or KDS proxy) could
 * hold a client for good. Redirects are refused, except (when asked) the one a TLS-terminating proxy
 * sends: the same URL on the same host, http → https.
 *
 * The owner's CRN client (lib/owner/client.ts) and the KDS client (lib/certs/kds.ts) both use it.
 */
import http from 'node:http';
import https from 'node:https';
import { SevkitError } from '../errors.js';

/** What went wrong, for callers that decide about retrying (transport) or wording (timeout). */
export type HttpFailureKind = 'timeout' | 'transport' | 'too-large' | 'redirect' | 'aborted';

/** A request that produced no complete answer. `phase` says how far it got. */
export class HttpRequestError extends SevkitError {
  constructor(
    readonly kind: HttpFailureKind,
    readonly phase: 'connect' | 'headers' | 'body',
    message: string,
    /** errno-style code of a transport failure (ECONNRESET, ECONNREFUSED, …). */
    readonly transportCode?: string,
    options?: { cause?: unknown },
  ) {
    super(
      kind === 'timeout' ? 'ERR_HTTP_TIMEOUT' : kind === 'too-large' ? 'ERR_HTTP_TOO_LARGE' : kind === 'redirect' ? 'ERR_HTTP_REDIRECT' : 'ERR_HTTP_TRANSPORT',
      message,
      options,
    );
  }
}

export interface HttpRequestOptions {
  url: string;
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Total time for connect + headers + body (and a followed redirect), in ms. */
  deadlineMs: number;
  /**
   * When that deadline began (Date.now() ms); default: now. A caller that retries within one deadline passes
   * its own start, so every attempt ends at the same moment and a timeout names the deadline it was given.
   */
  startedAt?: number;
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Follow one redirect to the same URL on the same host upgraded from http to https. */
  followHttpsUpgrade?: boolean;
  /** Cancels the request (e.g. the caller's overall deadline or Ctrl-C). */
  signal?: AbortSignal;
  /** Extra trusted CA certificates (PEM) for https, e.g. a private CRN's; default: Node's roots. */
  ca?: string | Buffer;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The URL that answered (differs from the request's after an https upgrade). */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * The target of a redirect if it is the same request upgraded to https on the same host (any port), else
 * a reason to refuse it. Path and query must not change: the owner's signature covers the path.
 */
export function httpsUpgradeTarget(from: URL, location: string): URL | string {
  let to: URL;
  try {
    to = new URL(location, from);
  } catch {
    return 'an unparsable Location';
  }
  if (from.protocol !== 'http:' || to.protocol !== 'https:') return `to ${to.protocol}//${to.host} (only an http → https upgrade is followed)`;
  if (to.hostname.toLowerCase() !== from.hostname.toLowerCase()) return `to another host (${to.hostname})`;
  if (to.pathname !== from.pathname || to.search !== from.search) return 'to another path';
  if (to.username || to.password) return 'with credentials in the URL';
  return to;
}

/** Sends one request; resolves with the complete answer or rejects with HttpRequestError. */
export async function httpRequest(o: HttpRequestOptions): Promise<HttpResponse> {
  const started = o.startedAt ?? Date.now();
  let url = new URL(o.url);
  for (let hop = 0; ; hop++) {
    const left = o.deadlineMs - (Date.now() - started);
    const r = await once(url, o, Math.max(1, left));
    if (!REDIRECTS.has(r.status)) return r;
    const loc = r.headers.location;
    const target = typeof loc === 'string' ? httpsUpgradeTarget(url, loc) : 'without a Location';
    if (!o.followHttpsUpgrade || hop > 0 || typeof target === 'string') {
      const why = !o.followHttpsUpgrade ? 'redirects are not followed' : hop > 0 ? 'a second redirect' : `redirect ${String(target)}`;
      throw new HttpRequestError('redirect', 'headers', `HTTP ${r.status} redirect refused: ${why}`);
    }
    url = target;
  }
}

/** One hop, given what is left of the whole deadline; its timeout names the whole deadline (o.deadlineMs), which is what the caller set. */
function once(url: URL, o: HttpRequestOptions, deadlineMs: number): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    let phase: 'connect' | 'headers' | 'body' = 'connect';
    let received = 0;
    let settled = false;
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!mod) {
      reject(new HttpRequestError('transport', 'connect', `unsupported protocol ${url.protocol}`));
      return;
    }
    const fail = (e: HttpRequestError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      req.destroy();
      reject(e);
    };
    const onAbort = (): void => fail(new HttpRequestError('aborted', phase, 'request cancelled', undefined, { cause: o.signal?.reason }));
    const timer = setTimeout(() => {
      const got = phase === 'body' ? ` (${received} body bytes received)` : '';
      fail(
        new HttpRequestError(
          'timeout',
          phase,
          `no complete answer within ${formatSeconds(o.deadlineMs)} (stalled ${phase === 'connect' ? 'connecting' : phase === 'headers' ? 'waiting for the headers' : 'in the body'}${got})`,
        ),
      );
    }, deadlineMs);
    const headers: Record<string, string> = { ...o.headers };
    if (o.body) headers['content-length'] = String(o.body.length);
    const req = mod.request(url, { method: o.method, headers, agent: false, ...(o.ca && url.protocol === 'https:' ? { ca: o.ca } : {}) }, (res) => {
      phase = 'body';
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > o.maxBytes) {
        fail(new HttpRequestError('too-large', 'body', `response of ${declared} bytes is larger than the ${o.maxBytes} accepted`));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (received > o.maxBytes) {
          fail(new HttpRequestError('too-large', 'body', `response larger than the ${o.maxBytes} bytes accepted`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (e) => fail(transportError(e, phase)));
      res.on('aborted', () => fail(new HttpRequestError('transport', 'body', 'connection closed mid-body', 'ECONNRESET')));
      res.on('end', () => {
        if (settled) return;
        if (!res.complete) {
          fail(new HttpRequestError('transport', 'body', 'connection closed mid-body', 'ECONNRESET'));
          return;
        }
        settled = true;
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), url: url.toString() });
      });
    });
    req.on('socket', (s) => {
      s.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
        if (phase === 'connect') phase = 'headers';
      });
    });
    req.on('error', (e) => fail(transportError(e, phase)));
    if (o.signal?.aborted) {
      onAbort();
      return;
    }
    o.signal?.addEventListener('abort', onAbort, { once: true });
    req.end(o.body ? Buffer.from(o.body.buffer, o.body.byteOffset, o.body.byteLength) : undefined);
  });
}

function transportError(e: unknown, phase: 'connect' | 'headers' | 'body'): HttpRequestError {
  const err = e as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : undefined;
  const text = err?.message === 'socket hang up' ? 'connection closed before an answer' : (err?.message ?? String(e));
  return new HttpRequestError(
    'transport',
    phase,
    code && !text.includes(code) ? `${code}: ${text}` : text,
    code ?? (err?.message === 'socket hang up' ? 'ECONNRESET' : undefined),
    { cause: e },
  );
}

/** "30 s", "1.5 s", "250 ms". */
export function formatSeconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/** Transport failures worth one more try of an idempotent request: the peer dropped or refused the connection. */
export function isRetryableTransport(e: unknown): boolean {
  return (
    e instanceof HttpRequestError &&
    e.kind === 'transport' &&
    ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'EAI_AGAIN'].includes(e.transportCode ?? '')
  );
}
