/**
 * A loopback stand-in for AMD's Key Distribution Service, serving the
 * simulator's TEST chain at KDS's URL paths (spec §3.1), so a KDS client is
 * tested over real HTTP:
 *
 *   GET /vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..(&fmcSPL=.. Turin)  → VCEK (DER)
 *   GET /vcek/v1/{product}/cert_chain   → PEM, ASK then ARK
 *   GET /vlek/v1/{product}/cert_chain   → PEM, ASVK then ARK
 *   GET /vcek|vlek/v1/{product}/crl     → the ARK-signed CRL (DER)
 *
 * hwid is the chip id in hex (any case; 64 bytes, Turin 8: a full-length Turin
 * hwid is 404 as at AMD); SPLs are decimal 0..255 in any order, zero-padded or
 * not; unknown or missing parameters are 400. With `throttle`, a request
 * repeated within 10 s is answered 429, as AMD throttles. Binds 127.0.0.1 only.
 * Nothing it serves chains to AMD.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseProduct, tcbLayoutOf, type SnpProduct } from '../../snp/product.js';
import { makeTcb } from '../../snp/tcb.js';
import { toPem } from './certs.js';
import type { SimSnpGuest } from './guest.js';

/** Options of the stand-in. */
export interface SimKdsOptions {
  /** Port (default 0: any free one). */
  port?: number;
  /** Answer 429 to a request repeated within `throttleWindowMs` (default false). */
  throttle?: boolean;
  /** The throttle window (default 10 000 ms, AMD's "once per 10 seconds"). */
  throttleWindowMs?: number;
  /** Send `Retry-After: <s>` with a 429 (AMD has not been seen to; default none). */
  retryAfterSeconds?: number;
  /** Clock for the throttle (tests); default Date.now. */
  now?: () => number;
}

/** One request as served (for tests): path with query, and the status answered. */
export interface SimKdsHit {
  url: string;
  status: number;
}

const SPL_KEYS = ['blSPL', 'teeSPL', 'snpSPL', 'ucodeSPL'] as const;

/** What a route produced: a status and a body. */
interface Answer {
  status: number;
  body: Buffer | string;
  type?: string;
}

export class SimKdsServer {
  /** Every request served, in order. */
  readonly hits: SimKdsHit[] = [];
  private readonly last = new Map<string, number>();

  private constructor(
    private readonly server: http.Server,
    private readonly guest: SimSnpGuest,
    private readonly opts: SimKdsOptions,
  ) {}

  /** Start listening on 127.0.0.1. */
  static async start(guest: SimSnpGuest, opts: SimKdsOptions = {}): Promise<SimKdsServer> {
    const server = http.createServer();
    const kds = new SimKdsServer(server, guest, opts);
    server.on('request', (req, res) => kds.handle(req, res));
    server.on('clientError', (_e, sock) => sock.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return kds;
  }

  /** Base URL to give a KDS client instead of https://kdsintf.amd.com. */
  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${a.port}`;
  }

  /** Stop listening and drop open connections. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/';
    let a: Answer;
    try {
      a = req.method === 'GET' ? this.route(url) : { status: 405, body: 'only GET\n' };
    } catch (e) {
      a = { status: 500, body: `internal error: ${(e as Error).message}\n` };
    }
    const now = (this.opts.now ?? Date.now)();
    if (a.status === 200 && this.opts.throttle) {
      const prev = this.last.get(url);
      if (prev !== undefined && now - prev < (this.opts.throttleWindowMs ?? 10_000)) {
        a = { status: 429, body: 'Too Many Requests\n' };
      } else {
        this.last.set(url, now);
      }
    }
    this.hits.push({ url, status: a.status });
    const headers: http.OutgoingHttpHeaders = { 'content-type': a.type ?? 'text/plain', 'content-length': Buffer.byteLength(a.body) };
    if (a.status === 429 && this.opts.retryAfterSeconds !== undefined) headers['retry-after'] = String(this.opts.retryAfterSeconds);
    res.on('error', () => res.destroy());
    req.resume(); // a GET has no body worth reading; do not let one stall the socket
    res.writeHead(a.status, headers);
    res.end(a.body);
  }

  private route(raw: string): Answer {
    const u = new URL(raw, 'http://kds.invalid');
    const parts = u.pathname.split('/').filter((p) => p.length > 0);
    if (parts.length !== 4 || (parts[0] !== 'vcek' && parts[0] !== 'vlek') || parts[1] !== 'v1') return { status: 404, body: 'not found\n' };
    const kind = parts[0];
    const product = parseProduct(parts[2]!);
    // KDS spells products with a capital; anything else is not a product path.
    if (!product || product !== parts[2]) return { status: 404, body: `unknown product ${parts[2]}\n` };
    const leaf = parts[3]!;
    if (leaf === 'cert_chain') {
      const c = this.guest.chain(product, undefined, kind === 'vlek');
      const inter = kind === 'vlek' ? c.asvk! : c.ask;
      return { status: 200, body: toPem(inter) + toPem(c.ark), type: 'application/x-pem-file' };
    }
    if (leaf === 'crl') return { status: 200, body: this.guest.chain(product).crl, type: 'application/pkix-crl' };
    if (kind === 'vlek') return { status: 404, body: 'VLEKs are not served to end users\n' };
    return this.vcek(product, leaf, u.searchParams);
  }

  private vcek(product: SnpProduct, hwidHex: string, q: URLSearchParams): Answer {
    const keys: string[] = [...SPL_KEYS, ...(product === 'Turin' ? ['fmcSPL'] : [])];
    for (const k of q.keys()) if (!keys.includes(k)) return { status: 400, body: `unknown parameter ${k}\n` };
    const spl: Record<string, number> = {};
    for (const k of keys) {
      const v = q.get(k);
      if (v === null || !/^\d{1,3}$/.test(v) || Number(v) > 255) return { status: 400, body: `${k} must be a decimal 0..255\n` };
      spl[k] = Number(v);
    }
    if (!/^[0-9a-fA-F]+$/.test(hwidHex) || hwidHex.length % 2) return { status: 400, body: 'hwid must be hex\n' };
    const ours = this.guest.hwid(product);
    if (!Buffer.from(hwidHex, 'hex').equals(ours)) return { status: 404, body: 'unknown hardware id\n' };
    const tcb = makeTcb(tcbLayoutOf(product), { bootloader: spl.blSPL!, tee: spl.teeSPL!, snp: spl.snpSPL!, microcode: spl.ucodeSPL!, fmc: spl.fmcSPL ?? 0 });
    return { status: 200, body: this.guest.chain(product, tcb).vcek, type: 'application/octet-stream' };
  }
}
