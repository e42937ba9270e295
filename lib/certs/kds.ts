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

/** AMD's Key Distribution Service endpoint for CEKs; the chip id in hex is appended. */
export const KDS_CEK_URL = 'https://kdsintf.amd.com/cek/id/';

/** The part of the fetch API fetchCek uses (so tests and proxies can replace it). */
export type FetchLike = (url: string, init: { signal: AbortSignal; headers?: Record<string, string> }) => Promise<{
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
  const f: FetchLike = opts.fetch ?? (globalThis.fetch as unknown as FetchLike);
  const url = `${opts.baseUrl ?? KDS_CEK_URL}${idHex}`;
  const attempts = Math.max(1, opts.attempts ?? 4);
  const sleep = opts.sleep ?? sleepReal;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let lastStatus = 0;
  for (let i = 0; i < attempts; i++) {
    let res: Awaited<ReturnType<FetchLike>>;
    try {
      res = await f(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/octet-stream' } });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const why = err?.name === 'TimeoutError' || err?.name === 'AbortError'
        ? `timed out after ${timeoutMs} ms`
        : `${err?.message ?? String(e)}${err?.cause?.code ? ` (${err.cause.code})` : ''}`;
      throw new KdsError(`AMD KDS request for the CEK failed: ${why}; give the platform's chain explicitly, or fetch once online to cache the CEK`, { cause: e });
    }
    if (res.ok) {
      const body = Buffer.from(await res.arrayBuffer());
      try {
        decodeSevCert(body, { name: 'CEK from AMD KDS', usage: Usage.CEK });
      } catch (e) {
        throw new KdsError(`AMD KDS returned something that is not a CEK: ${(e as Error).message}`, { cause: e });
      }
      storeCekSafe(idHex, body, cacheOpts);
      return body;
    }
    lastStatus = res.status;
    const retryable = res.status === 429 || res.status >= 500;
    if (!retryable || i === attempts - 1) break;
    await sleep(Math.min(parseRetryAfter(res.headers.get('retry-after')), opts.maxRetryAfterMs ?? 30_000));
  }
  throw new KdsError(`AMD KDS answered HTTP ${lastStatus} for the CEK of chip ${idHex.slice(0, 16)}…`, { status: lastStatus });
}

function storeCekSafe(idHex: string, body: Buffer, o: { cacheDir: string | false }): void {
  try {
    storeCek(idHex, body, o);
  } catch {
    // The cache is an optimisation; an unwritable cache directory must not fail the fetch.
  }
}
