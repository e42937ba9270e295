/**
 * AMD Key Distribution Service client for SNP: VCEK, cert_chain and CRL URLs
 * per product (hwID of 64 bytes, 8 on Turin; SPLs from REPORTED_TCB, FMC first
 * on Turin), AMD's throttling respected (the same URL at most once per 10 s;
 * 429 answered with backoff, Retry-After honoured), an on-disk cache keyed by
 * product/hwID/TCB, and an offline mode that only reads the cache.
 *
 * The cache holds what KDS returned after it parsed as the thing asked for; it
 * is not a trust store: everything read from it is verified again by verify.ts,
 * so a stale or tampered entry can only make a verification fail.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseRetryAfter } from '../certs/kds.js';
import { writeFileAtomic } from '../util/fs.js';
import { httpRequest, HttpRequestError, isRetryableTransport } from '../util/http-request.js';
import { parseCrl } from './crl.js';
import { SnpError, SnpKdsError } from './errors.js';
import { hwidLength } from './product.js';
import type { SnpProduct } from './product.js';
import type { TcbVersion } from './tcb.js';
import { parseAmdCert, parseAmdCerts } from './x509.js';
import type { AmdCert } from './x509.js';

/** AMD's KDS. */
export const KDS_BASE_URL = 'https://kdsintf.amd.com';
/** AMD throttles repeats of the same request to once per this many ms. */
export const KDS_SAME_REQUEST_INTERVAL_MS = 10_000;
/** Largest KDS answer read (a VCEK is ~1.4 KB, a cert_chain ~4.7 KB, a CRL a few KB). */
const KDS_MAX_BYTES = 256 * 1024;

/** Which chain: VCEK (ASK) or VLEK (ASVK). */
export type KeyKind = 'vcek' | 'vlek';

/** Options of a KdsClient. */
export interface KdsClientOptions {
  /** Base URL (default AMD's); tests point it at a local server. */
  baseUrl?: string;
  /** Directory of the on-disk cache; absent: no disk cache. */
  cacheDir?: string;
  /** Never touch the network: answer from the cache or fail. */
  offline?: boolean;
  /** Deadline for one HTTP request, connect to last body byte (default 20 s). */
  requestDeadlineMs?: number;
  /** Deadline for one fetch including throttle waits and retries (default 120 s). */
  totalDeadlineMs?: number;
  /** Attempts per fetch (default 4). */
  attempts?: number;
  /** Gap between requests for the same URL (default 10 s, AMD's rule). */
  sameRequestIntervalMs?: number;
  /** First backoff after a 429 / 5xx without Retry-After (default 10 s, doubling, capped at 30 s). */
  backoffMs?: number;
  /** Cancels every wait and request. */
  signal?: AbortSignal;
  /** Wait used between attempts (tests pass a fake). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Clock (tests). */
  now?: () => number;
}

/** A fetched (or cached) item and where it came from. */
export interface KdsResult<T> {
  value: T;
  der: Buffer;
  source: 'cache' | 'kds';
  url: string;
}

const realSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new SnpKdsError('KDS request cancelled', { code: 'ERR_SNP_KDS_CANCELLED' }));
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(new SnpKdsError('KDS request cancelled', { code: 'ERR_SNP_KDS_CANCELLED' }));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** The hwID path element: CHIP_ID hex, first 8 bytes on Turin. Throws SnpKdsError for a masked (all-zero) or short chip id. */
export function kdsHwid(product: SnpProduct, chipId: Uint8Array): string {
  const n = hwidLength(product);
  if (chipId.length < n) throw new SnpKdsError(`chip id is ${chipId.length} bytes, ${product} needs ${n}`, { code: 'ERR_SNP_KDS_HWID' });
  const id = Buffer.from(chipId.subarray(0, n));
  if (id.every((x) => x === 0))
    throw new SnpKdsError('the chip id is masked (all zero): KDS cannot look up a VCEK for it; give the VCEK (file or certificate table)', {
      code: 'ERR_SNP_KDS_HWID',
    });
  return id.toString('hex');
}

/** VCEK URL of a chip at a TCB: `/vcek/v1/<P>/<hwid>?[fmcSPL=..&]blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..` (decimal, unpadded). */
export function vcekUrl(product: SnpProduct, chipId: Uint8Array, tcb: TcbVersion, baseUrl = KDS_BASE_URL): string {
  const q = `${product === 'Turin' ? `fmcSPL=${tcb.fmc ?? 0}&` : ''}blSPL=${tcb.bootloader}&teeSPL=${tcb.tee}&snpSPL=${tcb.snp}&ucodeSPL=${tcb.microcode}`;
  return `${baseUrl}/vcek/v1/${product}/${kdsHwid(product, chipId)}?${q}`;
}

/** cert_chain URL: ASK then ARK (vcek), ASVK then ARK (vlek). */
export function certChainUrl(product: SnpProduct, kind: KeyKind = 'vcek', baseUrl = KDS_BASE_URL): string {
  return `${baseUrl}/${kind}/v1/${product}/cert_chain`;
}

/** CRL URL (DER, signed by the ARK). */
export function crlUrl(product: SnpProduct, kind: KeyKind = 'vcek', baseUrl = KDS_BASE_URL): string {
  return `${baseUrl}/${kind}/v1/${product}/crl`;
}

/** Cache file name part for a TCB: `fmc0_bl3_tee0_snp8_ucode115` (fmc on Turin only). */
function tcbKey(product: SnpProduct, t: TcbVersion): string {
  return `${product === 'Turin' ? `fmc${t.fmc ?? 0}_` : ''}bl${t.bootloader}_tee${t.tee}_snp${t.snp}_ucode${t.microcode}`;
}

/** A parsed cert_chain: the intermediate (ASK or ASVK) and the ARK. */
export interface CertChain {
  intermediate: AmdCert;
  ark: AmdCert;
}

/**
 * KDS client. One instance remembers when it last asked for each URL, so
 * repeats wait out AMD's 10 s rule instead of being throttled.
 */
export class KdsClient {
  private readonly o: KdsClientOptions;
  private readonly lastRequest = new Map<string, number>();
  private readonly base: string;

  constructor(opts: KdsClientOptions = {}) {
    this.o = opts;
    this.base = (opts.baseUrl ?? KDS_BASE_URL).replace(/\/+$/, '');
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private cacheFile(...parts: string[]): string | undefined {
    return this.o.cacheDir === undefined ? undefined : path.join(this.o.cacheDir, ...parts);
  }

  private readCache(file: string | undefined): Buffer | undefined {
    if (!file) return undefined;
    try {
      return fs.readFileSync(file);
    } catch {
      return undefined;
    }
  }

  private writeCache(file: string | undefined, data: Buffer): void {
    if (!file) return;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      writeFileAtomic(file, data, 0o644);
    } catch {
      // A cache that cannot be written costs a refetch later, never a failed verification.
    }
  }

  /** GET with throttling, retries and one overall deadline. Throws SnpKdsError. */
  private async get(url: string): Promise<Buffer> {
    const o = this.o;
    if (o.offline) throw new SnpKdsError(`offline: ${url} is not in the cache`, { code: 'ERR_SNP_KDS_OFFLINE' });
    const sleep = o.sleep ?? realSleep;
    const attempts = o.attempts ?? 4;
    const start = this.now();
    const total = o.totalDeadlineMs ?? 120_000;
    const interval = o.sameRequestIntervalMs ?? KDS_SAME_REQUEST_INTERVAL_MS;
    let backoff = o.backoffMs ?? 10_000;
    let last = '';
    let lastStatus: number | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const prev = this.lastRequest.get(url);
      let wait = prev === undefined ? 0 : prev + interval - this.now();
      if (wait > 0) {
        if (this.now() + wait - start > total) break;
        await sleep(wait, o.signal);
      }
      this.lastRequest.set(url, this.now());
      const left = total - (this.now() - start);
      if (left <= 0) break;
      try {
        const r = await httpRequest({
          url,
          method: 'GET',
          deadlineMs: Math.min(o.requestDeadlineMs ?? 20_000, left),
          maxBytes: KDS_MAX_BYTES,
          ...(o.signal ? { signal: o.signal } : {}),
        });
        if (r.status === 200) return r.body;
        lastStatus = r.status;
        last = `HTTP ${r.status}`;
        if (r.status !== 429 && r.status < 500)
          throw new SnpKdsError(`${url}: KDS answered HTTP ${r.status}${r.status === 404 ? ' (no such chip / TCB, or a non-production part)' : ''}`, {
            status: r.status,
          });
        const ra = r.headers['retry-after'];
        wait = typeof ra === 'string' && ra.trim() !== '' ? parseRetryAfter(ra, this.now()) : backoff;
        backoff = Math.min(backoff * 2, 30_000);
      } catch (e) {
        if (e instanceof SnpKdsError) throw e;
        if (e instanceof HttpRequestError && (e.kind === 'timeout' || isRetryableTransport(e))) {
          last = e.message;
          wait = Math.min(backoff, 5_000);
        } else throw new SnpKdsError(`${url}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      if (attempt === attempts) break;
      if (this.now() + wait - start > total) break;
      await sleep(wait, o.signal);
    }
    throw new SnpKdsError(
      `${url}: no answer from KDS within ${attempts} attempts / ${Math.round(total / 1000)} s (last: ${last || 'deadline'})${lastStatus === 429 ? '; AMD is throttling, try again later' : ''}`,
      {
        ...(lastStatus !== undefined ? { status: lastStatus } : {}),
        code: lastStatus === 429 ? 'ERR_SNP_KDS_THROTTLED' : 'ERR_SNP_KDS',
      },
    );
  }

  /**
   * The VCEK of a chip at REPORTED_TCB: from the cache, else KDS (then cached
   * by product/hwID/TCB). Throws SnpKdsError (masked chip id, offline miss, HTTP) or SnpCertError (KDS sent no certificate).
   */
  async vcek(product: SnpProduct, chipId: Uint8Array, reportedTcb: TcbVersion): Promise<KdsResult<AmdCert>> {
    const url = vcekUrl(product, chipId, reportedTcb, this.base);
    const file = this.cacheFile('vcek', product, kdsHwid(product, chipId), `${tcbKey(product, reportedTcb)}.der`);
    const cached = this.readCache(file);
    if (cached) {
      try {
        return { value: parseAmdCert(cached, `cached VCEK ${file}`), der: cached, source: 'cache', url };
      } catch {
        // A damaged entry is refetched, never trusted.
      }
    }
    const der = await this.get(url);
    const value = parseAmdCert(der, `VCEK from ${url}`);
    this.writeCache(file, der);
    return { value, der, source: 'kds', url };
  }

  /** The ASK (or ASVK) and ARK of a product: cache, else KDS. Throws SnpKdsError or SnpCertError. */
  async certChain(product: SnpProduct, kind: KeyKind = 'vcek'): Promise<KdsResult<CertChain>> {
    const url = certChainUrl(product, kind, this.base);
    const file = this.cacheFile(kind, product, 'cert_chain.pem');
    const parse = (b: Buffer, name: string): CertChain => {
      const certs = parseAmdCerts(b, name);
      if (certs.length !== 2) throw new SnpKdsError(`${name}: a cert_chain holds 2 certificates, got ${certs.length}`, { code: 'ERR_SNP_KDS_BODY' });
      return { intermediate: certs[0]!, ark: certs[1]! };
    };
    const cached = this.readCache(file);
    if (cached) {
      try {
        return { value: parse(cached, `cached ${file}`), der: cached, source: 'cache', url };
      } catch {
        // refetch
      }
    }
    const body = await this.get(url);
    const value = parse(body, `cert_chain from ${url}`);
    this.writeCache(file, body);
    return { value, der: body, source: 'kds', url };
  }

  /** The CRL of a product: cache while before its nextUpdate, else KDS. Throws SnpKdsError or SnpCertError. */
  async crl(product: SnpProduct, kind: KeyKind = 'vcek'): Promise<KdsResult<ReturnType<typeof parseCrl>>> {
    const url = crlUrl(product, kind, this.base);
    const file = this.cacheFile(kind, product, 'crl.der');
    const cached = this.readCache(file);
    if (cached) {
      try {
        const c = parseCrl(cached, `cached CRL ${file}`);
        if (!c.nextUpdate || c.nextUpdate.getTime() > this.now() || this.o.offline) return { value: c, der: cached, source: 'cache', url };
      } catch (e) {
        if (!(e instanceof SnpError)) throw e;
      }
    }
    const der = await this.get(url);
    const value = parseCrl(der, `CRL from ${url}`);
    this.writeCache(file, der);
    return { value, der, source: 'kds', url };
  }
}
