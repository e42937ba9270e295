/**
 * An aleph-style guest-owner client, written for the tests from the
 * description of aleph-sdk-python in shared/specs/aleph.md (§A.1.0, §B.1):
 * what aleph's own users send, built independently of sevkit's owner code
 * (lib/owner) and header code (lib/aleph/auth.ts), so the CRN is tested against
 * aleph's bytes rather than against itself.
 *
 *  - payloads serialised as Python's json.dumps does (", " and ": "), times as
 *    `datetime.utcnow().isoformat() + "Z"` (microseconds);
 *  - ETH wallets sign X-SignedPubKey with EIP-191 personal_sign (secp256k1,
 *    keccak-256), SOL wallets with ed25519 over the ASCII hex of the payload;
 *  - the ephemeral P-256 key signs X-SignedOperation, raw r‖s in hex;
 *  - initialize is multipart with file parts `session` and `godh`
 *    (filename = field name, application/octet-stream), as aiohttp sends bytes;
 *  - make_secret_table sizes the table by characters, then writes the UTF-8
 *    bytes over that many characters: a non-ASCII password grows the table
 *    past its declared length (pässwörd: 64 declared, 66 sent).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';

/** Python json.dumps with default arguments, for the JSON values these tests send. */
export function pyDumps(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (typeof v === 'string') {
    let out = '"';
    for (const ch of v) {
      const c = ch.codePointAt(0)!;
      if (ch === '"') out += '\\"';
      else if (ch === '\\') out += '\\\\';
      else if (ch === '\n') out += '\\n';
      else if (c >= 0x20 && c <= 0x7e) out += ch;
      else if (c > 0xffff) {
        const hi = 0xd800 + ((c - 0x10000) >> 10);
        const lo = 0xdc00 + ((c - 0x10000) & 0x3ff);
        out += `\\u${hi.toString(16)}\\u${lo.toString(16)}`;
      } else out += `\\u${c.toString(16).padStart(4, '0')}`;
    }
    return `${out}"`;
  }
  if (Array.isArray(v)) return `[${v.map(pyDumps).join(', ')}]`;
  return `{${Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `${pyDumps(k)}: ${pyDumps(x)}`)
    .join(', ')}}`;
}

/** `datetime.utcnow().isoformat() + "Z"`: microseconds, no zone offset. */
export function pyUtcIso(d: Date): string {
  const us = String(d.getUTCMilliseconds() * 1000 + Math.floor(Math.random() * 1000)).padStart(6, '0');
  return `${d.toISOString().slice(0, 19)}.${us}Z`;
}

/** An aleph account: ETH (eth_account) or SOL (solathon/nacl). */
export interface AlephAccount {
  chain: 'ETH' | 'SOL';
  address: string;
  /** The signature aleph's account.sign_raw gives for the X-SignedPubKey payload bytes, as its header carries it. */
  signPubKeyPayload(payload: Buffer): string;
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
function b58(bytes: Uint8Array): string {
  let n = BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
  let s = '';
  while (n > 0n) {
    s = B58[Number(n % 58n)] + s;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    s = `1${s}`;
  }
  return s;
}

/** An Ethereum account from a 32-byte private key. */
export function ethAccount(priv: Buffer = crypto.randomBytes(32)): AlephAccount {
  const pub = secp256k1.getPublicKey(priv, false);
  const addrHex = Buffer.from(keccak_256(pub.subarray(1)).subarray(12)).toString('hex');
  // EIP-55 checksum, as eth_account prints addresses.
  const h = Buffer.from(keccak_256(Buffer.from(addrHex, 'ascii'))).toString('hex');
  const address = `0x${[...addrHex].map((c, i) => (Number.parseInt(h[i]!, 16) >= 8 ? c.toUpperCase() : c)).join('')}`;
  return {
    chain: 'ETH',
    address,
    signPubKeyPayload(payload) {
      const prefix = Buffer.from(`\x19Ethereum Signed Message:\n${payload.length}`, 'utf8');
      const digest = keccak_256(Buffer.concat([prefix, payload]));
      const rec = secp256k1.sign(digest, priv, { prehash: false, format: 'recovered' });
      // noble: recovery byte first; Ethereum: r‖s‖v with v = 27 + recovery.
      return `0x${Buffer.from(rec.subarray(1)).toString('hex')}${(27 + rec[0]!).toString(16)}`;
    },
  };
}

/** A Solana account (ed25519). aleph's server verifies over the ASCII hex of the payload, so that is what is signed. */
export function solAccount(): AlephAccount {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return {
    chain: 'SOL',
    address: b58(raw),
    signPubKeyPayload(payload) {
      return `0x${crypto.sign(null, Buffer.from(payload.toString('hex'), 'ascii'), privateKey).toString('hex')}`;
    },
  };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** One HTTP exchange, with a deadline; nothing is parsed. */
export function rawRequest(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, timeout: o.timeoutMs ?? 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} in time`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** aleph's VmConfidentialClient over HTTP, one ephemeral key per client (as the SDK). */
export class AlephStyleClient {
  readonly domain: string;
  readonly #key: crypto.KeyObject;
  readonly signedPubKey: string;

  constructor(
    readonly url: string,
    readonly account: AlephAccount,
    opts: { domain?: string } = {},
  ) {
    this.domain = opts.domain ?? new URL(url).hostname;
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#key = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    const payload = Buffer.from(
      pyDumps({
        pubkey: { crv: 'P-256', kty: 'EC', x: jwk.x!, y: jwk.y! },
        alg: 'ECDSA',
        domain: this.domain,
        address: account.address,
        expires: pyUtcIso(new Date(Date.now() + 24 * 3600 * 1000)),
        chain: account.chain,
      }),
      'utf8',
    );
    this.signedPubKey = pyDumps({
      sender: account.address,
      payload: payload.toString('hex'),
      signature: account.signPubKeyPayload(payload),
      content: { domain: this.domain },
    });
  }

  /** The two auth headers for one operation. */
  authHeaders(method: 'GET' | 'POST', path: string): Record<string, string> {
    const op = Buffer.from(pyDumps({ time: pyUtcIso(new Date()), method, path, domain: this.domain }), 'utf8');
    const sig = crypto.sign('sha256', op, { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return { 'X-SignedPubKey': this.signedPubKey, 'X-SignedOperation': pyDumps({ payload: op.toString('hex'), signature: sig.toString('hex') }) };
  }

  static path(ref: string, op: string): string {
    return `/control/machine/${ref}/confidential/${op}`;
  }

  getCertificates(): Promise<RawResponse> {
    return rawRequest(`${this.url}/about/certificates`);
  }

  /** multipart/form-data as aiohttp builds it from `data={"session": bytes, "godh": bytes}`. */
  initialize(ref: string, session: string | Buffer, godh: string | Buffer, opts: { omit?: 'session' | 'godh' } = {}): Promise<RawResponse> {
    const boundary = crypto.randomBytes(16).toString('hex');
    const part = (name: string, data: string | Buffer) =>
      Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: form-data; name="${name}"; filename="${name}"\r\n\r\n`),
        Buffer.from(data),
        Buffer.from('\r\n'),
      ]);
    const parts = [...(opts.omit === 'session' ? [] : [part('session', session)]), ...(opts.omit === 'godh' ? [] : [part('godh', godh)])];
    const body = Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);
    const p = AlephStyleClient.path(ref, 'initialize');
    return rawRequest(`${this.url}${p}`, {
      method: 'POST',
      body,
      headers: { ...this.authHeaders('POST', p), 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': String(body.length) },
    });
  }

  measurement(ref: string): Promise<RawResponse> {
    const p = AlephStyleClient.path(ref, 'measurement');
    return rawRequest(`${this.url}${p}`, { headers: this.authHeaders('GET', p) });
  }

  injectSecret(ref: string, packetHeader: string, secret: string): Promise<RawResponse> {
    const p = AlephStyleClient.path(ref, 'inject_secret');
    const body = Buffer.from(pyDumps({ packet_header: packetHeader, secret }), 'utf8');
    return rawRequest(`${this.url}${p}`, {
      method: 'POST',
      body,
      headers: { ...this.authHeaders('POST', p), 'Content-Type': 'application/json', 'Content-Length': String(body.length) },
    });
  }

  /**
   * aleph-client waits after initialize, then reads the measurement; this polls
   * through aleph's not-ready answers (500 QMP socket missing, 403 not running)
   * until a 200 or the deadline.
   */
  async waitMeasurement(ref: string, deadlineMs = 60_000): Promise<{ sev_info: AlephSevInfoPy; launch_measure: string }> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await this.measurement(ref);
      if (r.status === 200) return JSON.parse(r.text) as { sev_info: AlephSevInfoPy; launch_measure: string };
      if (Date.now() > end) throw new Error(`measurement not ready: HTTP ${r.status} ${r.text}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

export interface AlephSevInfoPy {
  enabled: boolean;
  api_major: number;
  api_minor: number;
  build_id: number;
  policy: number;
  state: string;
  handle: number;
}

// ------------------------------------------------------------------ aleph-sdk-python utils (Algorithms M and S)

const guidLe = (g: string): Buffer => {
  const h = Buffer.from(g.replace(/-/g, ''), 'hex');
  return Buffer.concat([
    Buffer.from(h.subarray(0, 4)).reverse(),
    Buffer.from(h.subarray(4, 6)).reverse(),
    Buffer.from(h.subarray(6, 8)).reverse(),
    h.subarray(8),
  ]);
};

/**
 * make_secret_table(secret): lengths from len(secret) (code points), a
 * zero buffer of the rounded length, then `table[40:40+len(secret)] =
 * secret.encode()` — a slice assignment that grows the bytearray by the extra
 * UTF-8 bytes of a non-ASCII password.
 */
export function alephMakeSecretTable(secret: string): Buffer {
  const chars = [...secret].length;
  const length = (16 + 4 + 16 + 4 + chars + 1 + 15) & ~15;
  const t = Buffer.alloc(length);
  guidLe('1e74f542-71dd-4d66-963e-ef4287ff173b').copy(t, 0);
  t.writeUInt32LE(length, 16);
  guidLe('736869e5-84f0-4973-92ec-06879ce3da0b').copy(t, 20);
  t.writeUInt32LE(16 + 4 + chars + 1, 36);
  return Buffer.concat([t.subarray(0, 40), Buffer.from(secret, 'utf8'), t.subarray(40 + chars)]);
}

/** validate_measure: HMAC(TIK, 0x04 ‖ api ‖ build ‖ policy ‖ sha256(firmware) ‖ mnonce) == MEASURE. */
export function alephValidateMeasure(m: { sev_info: AlephSevInfoPy; launch_measure: string }, tik: Buffer, firmwareSha256: Buffer): boolean {
  const lm = Buffer.from(m.launch_measure, 'base64');
  const pol = Buffer.alloc(4);
  pol.writeUInt32LE(m.sev_info.policy >>> 0);
  const h = crypto
    .createHmac('sha256', tik)
    .update(Buffer.from([0x04, m.sev_info.api_major, m.sev_info.api_minor, m.sev_info.build_id]))
    .update(pol)
    .update(firmwareSha256)
    .update(lm.subarray(32, 48))
    .digest();
  return h.equals(lm.subarray(0, 32));
}

/** build_secret: AES-128-CTR(TEK, IV) of the table and the 52-byte header MACed with the TIK over len(table). */
export function alephBuildSecret(tek: Buffer, tik: Buffer, launchMeasure: string, table: Buffer): { packetHeader: string; secret: string } {
  const iv = crypto.randomBytes(16);
  const c = crypto.createCipheriv('aes-128-ctr', tek, iv);
  const enc = Buffer.concat([c.update(table), c.final()]);
  const header = Buffer.alloc(52);
  iv.copy(header, 4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(table.length);
  const mac = crypto
    .createHmac('sha256', tik)
    .update(Buffer.from([0x01]))
    .update(header.subarray(0, 20))
    .update(len)
    .update(len)
    .update(enc)
    .update(Buffer.from(launchMeasure, 'base64').subarray(0, 32))
    .digest();
  mac.copy(header, 20);
  return { packetHeader: header.toString('base64'), secret: enc.toString('base64') };
}
