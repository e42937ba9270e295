/**
 * The CEK from AMD's Key Distribution Service
 * (GET https://kdsintf.amd.com/cek/id/{chip id} → raw 0x824-byte CEK signed by the ASK).
 * Fetch is injectable for tests; results are cached on disk by chip id so
 * everything works offline once a CEK has been seen.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KdsError } from './errors.js';
import { decodeSevCert } from './sev-cert.js';
import { Usage } from './constants.js';
import { writeFileAtomic } from '../util/fs.js';
import { cacheDir } from '../util/cache-dir.js';
import { httpRequest, HttpRequestError } from '../util/http-request.js';

/** AMD's Key Distribution Service endpoint for CEKs; the chip id in hex is appended. */
export const KDS_CEK_URL = 'https://kdsintf.amd.com/cek/id/';

/** The part of the fetch API fetchCek uses (so tests and proxies can replace it). */
export type FetchLike = (
  url: string,
  init: { signal: AbortSignal; headers?: Record<string, string> },
) => Promise<{
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  arrayBuffer(): Promise<ArrayBuffer>;
}>;

/** Options of fetchCek: fetch, cache directory, timeouts (ms), retries, offline mode. */
export interface KdsOptions {
  /** Replaces global fetch (tests, proxies). */
  fetch?: FetchLike;
  /** Cache directory; default ~/.cache/sevkit/kds (defaultKdsCacheDir). `false` disables. */
  cacheDir?: string | false;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /** Attempts in total (default 4: sevctl retries 3 times then tries once more). */
  attempts?: number;
  /** Upper bound for one Retry-After wait (default 30 s). */
  maxRetryAfterMs?: number;
  /** Wait used between attempts (tests pass a fake). */
  sleep?: (ms: number) => Promise<void>;
  /** Base URL (default AMD's). */
  baseUrl?: string;
  /** Never touch the network; only the cache. */
  offline?: boolean;
}

/** Where fetched CEKs are kept when no cacheDir is given: ~/.cache/sevkit/kds (the CLI passes $SEVKIT_KDS_CACHE or $XDG_CACHE_HOME's). */
export function defaultKdsCacheDir(): string {
  return path.join(cacheDir(), 'kds');
}

/** A chip id as KDS expects it (upper-case hex); throws KdsError when it is not hex. */
export function kdsChipIdHex(id: Uint8Array | string): string {
  const hex = typeof id === 'string' ? id.trim() : Buffer.from(id).toString('hex');
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length % 2 !== 0 || hex.length === 0) throw new KdsError(`chip id '${hex.slice(0, 40)}' is not hex`);
  return hex.toUpperCase();
}

function cachePath(dir: string, idHex: string): string {
  return path.join(dir, `cek-${idHex}.cert`);
}

/** A cached CEK for this chip id (validated), or undefined. */
export function cachedCek(id: Uint8Array | string, opts: { cacheDir?: string | false } = {}): Buffer | undefined {
  const dir = opts.cacheDir === undefined ? defaultKdsCacheDir() : opts.cacheDir;
  if (dir === false) return undefined;
  const p = cachePath(dir, kdsChipIdHex(id));
  let data: Buffer;
  try {
    data = fs.readFileSync(p);
  } catch {
    return undefined;
  }
  try {
    decodeSevCert(data, { name: p, usage: Usage.CEK });
    return data;
  } catch {
    return undefined; // a damaged cache entry is refetched, not trusted
  }
}

/** Store a CEK in the cache (temp file + rename, never half-written). */
export function storeCek(id: Uint8Array | string, cek: Buffer, opts: { cacheDir?: string | false } = {}): void {
  const dir = opts.cacheDir === undefined ? defaultKdsCacheDir() : opts.cacheDir;
  if (dir === false) return;
  decodeSevCert(cek, { name: 'CEK', usage: Usage.CEK });
  fs.mkdirSync(dir, { recursive: true });
  const p = cachePath(dir, kdsChipIdHex(id));
  writeFileAtomic(p, cek, 0o644);
}

/** Retry-After as seconds or an HTTP date; default 5 s like sevctl. */
export function parseRetryAfter(v: string | null, now = Date.now()): number {
  if (v === null || v.trim() === '') return 5000;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? 5000 : Math.max(0, t - now);
}

const sleepReal = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

/** Largest KDS answer read: a CEK is 2084 bytes; anything far larger is not one. */
const KDS_MAX_BYTES = 64 * 1024;

/**
 * The default transport: one deadline over connect, headers and the whole body (lib/util/http-request.ts),
 * the body bounded, no redirects. fetch() stopped timing once the body was streaming.
 */
function deadlineFetch(timeoutMs: number): FetchLike {
  return async (url, init) => {
    const r = await httpRequest({
      url,
      method: 'GET',
      ...(init.headers ? { headers: init.headers } : {}),
      deadlineMs: timeoutMs,
      maxBytes: KDS_MAX_BYTES,
      signal: init.signal,
    });
    return {
      ok: r.status >= 200 && r.status < 300,
      status: r.status,
      headers: { get: (n: string) => (typeof r.headers[n.toLowerCase()] === 'string' ? (r.headers[n.toLowerCase()] as string) : null) },
      arrayBuffer: async () => r.body.buffer.slice(r.body.byteOffset, r.body.byteOffset + r.body.byteLength) as ArrayBuffer,
    };
  };
}

/** Runs fn under a deadline that also covers reading the body, whatever the transport. */
async function withDeadline<T>(timeoutMs: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new Error(`timed out after ${timeoutMs} ms`);
      e.name = 'TimeoutError';
      ac.abort(e);
      reject(e);
    }, timeoutMs);
  });
  expired.catch(() => undefined);
  try {
    return await Promise.race([fn(ac.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The CEK of a chip: from the cache when present, else from KDS (retrying on
 * 429 and 5xx, honouring Retry-After), then cached. Throws KdsError.
 */
export async function fetchCek(id: Uint8Array | string, opts: KdsOptions = {}): Promise<Buffer> {
  const idHex = kdsChipIdHex(id);
  const cacheOpts = { cacheDir: opts.cacheDir === undefined ? defaultKdsCacheDir() : opts.cacheDir };
  const hit = cachedCek(idHex, cacheOpts);
  if (hit) return hit;
  if (opts.offline) throw new KdsError(`no cached CEK for chip ${idHex.slice(0, 16)}… and offline mode forbids contacting AMD KDS`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const f: FetchLike = opts.fetch ?? deadlineFetch(timeoutMs);
  const url = `${opts.baseUrl ?? KDS_CEK_URL}${idHex}`;
  const attempts = Math.max(1, opts.attempts ?? 4);
  const sleep = opts.sleep ?? sleepReal;
  let lastStatus = 0;
  for (let i = 0; i < attempts; i++) {
    let answer: { ok: boolean; status: number; retryAfter: string | null; body?: Buffer };
    try {
      // The deadline covers the body too: a KDS (or proxy) that dribbles it fails like one that stalls.
      answer = await withDeadline(timeoutMs, async (signal) => {
        const res = await f(url, { signal, headers: { accept: 'application/octet-stream' } });
        if (!res.ok) return { ok: false, status: res.status, retryAfter: res.headers.get('retry-after') };
        const body = Buffer.from(await res.arrayBuffer());
        if (body.length > KDS_MAX_BYTES)
          throw new HttpRequestError('too-large', 'body', `answer of ${body.length} bytes is larger than the ${KDS_MAX_BYTES} accepted`);
        return { ok: true, status: res.status, retryAfter: null, body };
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string }; kind?: string };
      const why =
        err?.name === 'TimeoutError' || err?.name === 'AbortError' || err?.kind === 'timeout'
          ? `timed out after ${timeoutMs} ms`
          : `${err?.message ?? String(e)}${err?.cause?.code ? ` (${err.cause.code})` : ''}`;
      throw new KdsError(
        `AMD KDS request for the CEK failed: ${why} (${originOf(url)}); give the platform's chain explicitly, or fetch once online to cache the CEK`,
        { cause: e },
      );
    }
    if (answer.ok) {
      const body = answer.body!;
      try {
        decodeSevCert(body, { name: 'CEK from AMD KDS', usage: Usage.CEK });
      } catch (e) {
        throw new KdsError(`AMD KDS returned something that is not a CEK: ${(e as Error).message}`, { cause: e });
      }
      storeCekSafe(idHex, body, cacheOpts);
      return body;
    }
    lastStatus = answer.status;
    const retryable = answer.status === 429 || answer.status >= 500;
    if (!retryable || i === attempts - 1) break;
    await sleep(Math.min(parseRetryAfter(answer.retryAfter), opts.maxRetryAfterMs ?? 30_000));
  }
  throw new KdsError(`AMD KDS answered HTTP ${lastStatus} for the CEK of chip ${idHex.slice(0, 16)}…`, { status: lastStatus });
}

/** scheme://host[:port] of a URL, for messages (never its path: it holds the chip id). */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'KDS';
  }
}

function storeCekSafe(idHex: string, body: Buffer, o: { cacheDir: string | false }): void {
  try {
    storeCek(idHex, body, o);
  } catch {
    // The cache is an optimisation; an unwritable cache directory must not fail the fetch.
  }
}
