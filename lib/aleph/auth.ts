/**
 * aleph-vm's operator authentication (doc/operator_auth.md in aleph-vm):
 *
 *  X-SignedPubKey     {"payload": hex(JSON), "signature": "0x"+hex} — the owner's wallet
 *                     signs an ephemeral P-256 JWK plus domain, address, expiry, chain.
 *  X-SignedOperation  {"payload": hex(JSON), "signature": hex(r‖s)} — the ephemeral key
 *                     signs {"time", "method", "path", "domain"} with ES256.
 *
 * Both sides live here: `createAuthSession` / `signOperation` for the client,
 * `verifyAuthHeaders` for the server. Failures carry aleph's HTTP status
 * (400 malformed, 401 rejected) and its reason text.
 */
import * as crypto from 'node:crypto';
import { SevkitError } from '../errors.js';
import { ethRecoverAddress, solVerify, type Wallet, type WalletChain } from './wallet.js';

/** How far an operation's `time` may be from the server's clock (aleph: ±2 minutes). */
export const OPERATION_SKEW_MS = 2 * 60 * 1000;
/** aleph's SDK makes ephemeral keys valid for one day. */
export const DEFAULT_KEY_LIFETIME_MS = 24 * 60 * 60 * 1000;
/** Bound on each header so a hostile client cannot make us parse megabytes of JSON. */
export const MAX_AUTH_HEADER_BYTES = 8192;

/**
 * A request whose aleph signature headers are malformed (status 400, ERR_AUTH_MALFORMED) or do not verify (401,
 * ERR_AUTH_REJECTED); `reason` is the text aleph returns.
 */
export class AuthError extends SevkitError {
  readonly status: 400 | 401;
  /** The `error` text aleph puts in its JSON body. */
  readonly reason: string;
  constructor(status: 400 | 401, reason: string) {
    super(status === 401 ? 'ERR_AUTH_REJECTED' : 'ERR_AUTH_MALFORMED', `authentication failed: ${reason}`);
    this.status = status;
    this.reason = reason;
  }
}

/** The JSON the wallet signs in X-SignedPubKey: the ephemeral P-256 key (JWK), domain, address, expiry and chain. */
export interface PubKeyPayload {
  pubkey: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  alg: 'ECDSA';
  domain: string;
  address: string;
  expires: string;
  chain: WalletChain;
}

/** The JSON the ephemeral key signs in X-SignedOperation: time, method, path and domain. */
export interface OperationPayload {
  time: string;
  method: 'GET' | 'POST';
  path: string;
  domain: string;
}

/** The client's ephemeral signing identity for one CRN. */
export interface AuthSession {
  readonly domain: string;
  readonly address: string;
  readonly chain: WalletChain;
  /** Value of the X-SignedPubKey header (constant for the key's lifetime). */
  readonly signedPubKey: string;
  /** Headers for one operation (fresh timestamp each call). */
  headers(method: 'GET' | 'POST', path: string, now?: Date): Record<string, string>;
}

/** aleph's timestamps: ISO 8601 UTC with a trailing Z (microseconds allowed). */
export function isoUtc(d: Date): string {
  return d.toISOString();
}

/**
 * Generates an ephemeral P-256 key, has the wallet sign it for `domain`, and
 * returns a session that signs operations with it. The private key never leaves
 * the returned object.
 */
export function createAuthSession(wallet: Wallet, opts: { domain: string; now?: Date; lifetimeMs?: number }): AuthSession {
  const now = opts.now ?? new Date();
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const payload: PubKeyPayload = {
    pubkey: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! },
    alg: 'ECDSA',
    domain: opts.domain,
    address: wallet.address,
    expires: isoUtc(new Date(now.getTime() + (opts.lifetimeMs ?? DEFAULT_KEY_LIFETIME_MS))),
    chain: wallet.chain,
  };
  const payloadBytes = Buffer.from(JSON.stringify(payload), 'utf8');
  const sig = wallet.signPayload(payloadBytes);
  const signedPubKey = JSON.stringify({
    sender: wallet.address,
    payload: payloadBytes.toString('hex'),
    signature: `0x${Buffer.from(sig).toString('hex')}`,
    content: { domain: opts.domain },
  });
  return {
    domain: opts.domain,
    address: wallet.address,
    chain: wallet.chain,
    signedPubKey,
    headers(method, path, at) {
      return { 'X-SignedPubKey': signedPubKey, 'X-SignedOperation': signOperation(privateKey, { method, path, domain: opts.domain, time: at }) };
    },
  };
}

/** Builds an X-SignedOperation header value: ES256 (raw r‖s, hex) over the operation JSON. */
export function signOperation(key: crypto.KeyObject, op: { method: 'GET' | 'POST'; path: string; domain: string; time?: Date }): string {
  const payload: OperationPayload = { time: isoUtc(op.time ?? new Date()), method: op.method, path: op.path, domain: op.domain };
  const bytes = Buffer.from(JSON.stringify(payload), 'utf8');
  const sig = crypto.sign('sha256', bytes, { key, dsaEncoding: 'ieee-p1363' });
  return JSON.stringify({ payload: bytes.toString('hex'), signature: sig.toString('hex') });
}

// ---------------------------------------------------------------- server side

/** The wallet a request was verified to come from. */
export interface VerifiedCaller {
  /** Wallet address as signed (compare case-insensitively for ETH). */
  address: string;
  chain: WalletChain;
}

/** The parts of an HTTP request verifyAuthHeaders checks: method, routed path and headers. */
export interface VerifyRequest {
  method: string;
  /** The request path without the query string, as the server routed it. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

function header(req: VerifyRequest, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()] ?? req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function fromHex(s: unknown, allow0x: boolean): Buffer | undefined {
  if (typeof s !== 'string') return undefined;
  const h = allow0x ? s.replace(/^0x/, '') : s;
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) return undefined;
  return Buffer.from(h, 'hex');
}

// ISO 8601 with a mandatory zone: an operation without one cannot be placed in time.
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

export function parseIsoTime(s: unknown): number | undefined {
  if (typeof s !== 'string' || !ISO_WITH_ZONE.test(s)) return undefined;
  // Date.parse keeps milliseconds only; drop extra fractional digits it may refuse.
  const norm = s.replace(' ', 'T').replace(/(\.\d{3})\d+/, '$1');
  const t = Date.parse(norm);
  return Number.isFinite(t) ? t : undefined;
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The envelope both headers share, `{"payload": hex(JSON), "signature": hex}`, bounded
 * in size before any parsing. Returns the signed bytes, the signature and the payload
 * object (undefined when the payload is not a JSON object; callers name that failure).
 */
function decodeSignedHeader(
  req: VerifyRequest,
  name: 'X-SignedPubKey' | 'X-SignedOperation',
  badFields: string,
): { bytes: Buffer; signature: Buffer; payload: Record<string, unknown> | undefined } {
  const value = header(req, name);
  if (!value) throw new AuthError(400, `Missing ${name} header`);
  if (value.length > MAX_AUTH_HEADER_BYTES) throw new AuthError(400, `Invalid ${name} format`);
  const outer = parseJsonObject(value);
  if (!outer) throw new AuthError(400, `Invalid ${name} format`);
  const bytes = fromHex(outer.payload, false);
  const signature = fromHex(outer.signature, true);
  if (!bytes || !signature) throw new AuthError(400, badFields);
  return { bytes, signature, payload: parseJsonObject(bytes.toString('utf8')) };
}

/** What a verified X-SignedPubKey yields. */
interface VerifiedPubKey {
  payload: PubKeyPayload;
  key: crypto.KeyObject;
  /** ms since the epoch; the entry is worthless from then on. */
  expires: number;
}

/**
 * X-SignedPubKey headers that verified, keyed by their exact text, until they
 * expire. The wallet signature (secp256k1 recovery in pure JS, ~2 ms) is the
 * costly half of a request and its header is the same for a day, so a CRN
 * checks it once per key; only the operation's P-256 signature is checked per
 * request. Only verified headers enter, so a client can fill it only with keys
 * its wallet signed; the oldest entry goes when it is full.
 */
export class SignedPubKeyCache {
  readonly #max: number;
  readonly #entries = new Map<string, VerifiedPubKey>();

  constructor(maxEntries = 4096) {
    this.#max = Math.max(1, maxEntries);
  }

  /** Entries held (expired ones leave when next looked up or pushed out). */
  get size(): number {
    return this.#entries.size;
  }

  /** @internal the verified key for exactly this header text, unless it has expired by `now`. */
  get(value: string, now: number): VerifiedPubKey | undefined {
    const e = this.#entries.get(value);
    if (!e) return undefined;
    if (!(e.expires > now)) {
      this.#entries.delete(value);
      return undefined;
    }
    return e;
  }

  /** @internal */
  set(value: string, e: VerifiedPubKey): void {
    if (this.#entries.size >= this.#max && !this.#entries.has(value)) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(value, e);
  }

  readonly #inFlight = new Map<string, Promise<VerifiedPubKey>>();

  /** @internal the check of exactly this header text that is under way, if any. */
  inFlight(value: string): Promise<VerifiedPubKey> | undefined {
    return this.#inFlight.get(value);
  }

  /** @internal holds `check` as this header's check under way; a success enters the cache, a failure does not. */
  track(value: string, check: Promise<VerifiedPubKey>): Promise<VerifiedPubKey> {
    this.#inFlight.set(value, check);
    check.then(
      (v) => {
        this.#inFlight.delete(value);
        this.set(value, v);
      },
      () => this.#inFlight.delete(value),
    );
    return check;
  }
}

function decodePubKeyHeader(req: VerifyRequest, now: number, cache?: SignedPubKeyCache): VerifiedPubKey {
  const raw = cache ? header(req, 'X-SignedPubKey') : undefined;
  const hit = raw !== undefined ? cache!.get(raw, now) : undefined;
  if (hit) return hit;
  const h = parsePubKeyHeader(req, now);
  let ok: boolean;
  try {
    ok = h.chain === 'ETH' ? ethRecoverAddress(h.bytes, h.signature).toLowerCase() === h.address.toLowerCase() : solSigned(h);
  } catch {
    ok = false;
  }
  const v = verifiedPubKey(h, ok);
  if (raw !== undefined) cache!.set(raw, v);
  return v;
}

/** decodePubKeyHeader with the wallet signature checked by `recoverEth` (off the event loop); one check per header text at a time. */
async function decodePubKeyHeaderAsync(
  req: VerifyRequest,
  now: number,
  recoverEth: (message: Uint8Array, signature: Uint8Array) => Promise<string>,
  cache?: SignedPubKeyCache,
): Promise<VerifiedPubKey> {
  const raw = cache ? header(req, 'X-SignedPubKey') : undefined;
  const hit = raw !== undefined ? cache!.get(raw, now) : undefined;
  if (hit) return hit;
  const inFlight = raw !== undefined ? cache!.inFlight(raw) : undefined;
  if (inFlight) return inFlight;
  const h = parsePubKeyHeader(req, now);
  const check = (async () => {
    let ok: boolean;
    try {
      ok = h.chain === 'ETH' ? (await recoverEth(h.bytes, h.signature)).toLowerCase() === h.address.toLowerCase() : solSigned(h);
    } catch {
      ok = false;
    }
    return verifiedPubKey(h, ok);
  })();
  if (raw === undefined) return check;
  return cache!.track(raw, check);
}

/** An X-SignedPubKey whose fields are well-formed and unexpired; its wallet signature not yet checked. */
interface ParsedPubKey {
  bytes: Buffer;
  signature: Buffer;
  address: string;
  chain: WalletChain;
  payload: Record<string, unknown>;
  expires: number;
}

function parsePubKeyHeader(req: VerifyRequest, now: number): ParsedPubKey {
  const { bytes, signature, payload: p } = decodeSignedHeader(req, 'X-SignedPubKey', 'Invalid X-SignedPubKey data');
  if (!p || typeof p.address !== 'string' || typeof p.expires !== 'string' || !p.pubkey || typeof p.pubkey !== 'object') {
    throw new AuthError(400, 'Invalid X-SignedPubKey data');
  }
  const chain = p.chain ?? 'ETH';
  if (chain !== 'ETH' && chain !== 'SOL') throw new AuthError(400, 'Unsupported chain');
  const expires = parseIsoTime(p.expires);
  if (expires === undefined) throw new AuthError(400, 'Invalid X-SignedPubKey data');
  if (!(expires > now)) throw new AuthError(401, 'Token expired');
  return { bytes, signature, address: p.address, chain, payload: p, expires };
}

function solSigned(h: ParsedPubKey): boolean {
  return solVerify(h.address, Buffer.from(h.bytes.toString('hex'), 'ascii'), h.signature);
}

/** The header's ephemeral P-256 key, once the wallet is known to have signed exactly these payload bytes (`signed`). */
function verifiedPubKey(h: ParsedPubKey, signed: boolean): VerifiedPubKey {
  if (!signed) throw new AuthError(401, 'Invalid signature');
  const jwk = h.payload.pubkey as Record<string, unknown>;
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new AuthError(400, 'Invalid X-SignedPubKey data');
  }
  let key: crypto.KeyObject;
  try {
    // createPublicKey checks that the point is on the curve.
    key = crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, format: 'jwk' });
  } catch {
    throw new AuthError(400, 'Invalid X-SignedPubKey data');
  }
  return { payload: { ...(h.payload as unknown as PubKeyPayload), chain: h.chain }, key, expires: h.expires };
}

/**
 * Verifies both headers of a request for the CRN whose domain is `domain` and
 * returns the authenticated wallet address. Order and reasons follow aleph-vm.
 * With `cache`, a X-SignedPubKey seen and verified before costs a map lookup.
 */
export function verifyAuthHeaders(req: VerifyRequest, opts: { domain: string; now?: Date; cache?: SignedPubKeyCache }): VerifiedCaller {
  const now = (opts.now ?? new Date()).getTime();
  return verifyOperation(req, now, opts.domain, decodePubKeyHeader(req, now, opts.cache));
}

/**
 * verifyAuthHeaders for a server: an Ethereum wallet signature not in `cache` is
 * checked by `recoverEth` (EthRecoverWorker.recover: off the event loop), and
 * requests that carry the same new header at once share one check. Same
 * answers and AuthErrors as verifyAuthHeaders.
 */
export async function verifyAuthHeadersAsync(
  req: VerifyRequest,
  opts: { domain: string; now?: Date; cache?: SignedPubKeyCache; recoverEth: (message: Uint8Array, signature: Uint8Array) => Promise<string> },
): Promise<VerifiedCaller> {
  const now = (opts.now ?? new Date()).getTime();
  return verifyOperation(req, now, opts.domain, await decodePubKeyHeaderAsync(req, now, opts.recoverEth, opts.cache));
}

/** The X-SignedOperation half: signed by the header's ephemeral key, for this domain, path, method and about now. */
function verifyOperation(req: VerifyRequest, now: number, domain: string, pk: VerifiedPubKey): VerifiedCaller {
  const { bytes: opBytes, signature: opSig, payload: op } = decodeSignedHeader(req, 'X-SignedOperation', 'Invalid X-SignedOperation fields');
  if (!op || typeof op.path !== 'string' || typeof op.domain !== 'string' || (op.method !== 'GET' && op.method !== 'POST')) {
    throw new AuthError(400, 'Invalid X-SignedOperation fields');
  }
  const t = parseIsoTime(op.time);
  // aleph rejects stale or future times as a field validation error (400).
  if (t === undefined || t < now - OPERATION_SKEW_MS || t > now + OPERATION_SKEW_MS) {
    throw new AuthError(400, 'Invalid X-SignedOperation fields');
  }
  if (op.domain !== domain) throw new AuthError(401, `Invalid domain: Signed: '${clip(op.domain)}' != '${clip(domain)}'`);
  if (op.path !== req.path) throw new AuthError(401, `Invalid path. Signed: '${clip(op.path)}' != '${clip(req.path)}'`);
  if (op.method !== req.method.toUpperCase()) throw new AuthError(401, `Invalid method. Signed: '${op.method}' != '${clip(req.method)}'`);

  if (opSig.length !== 64 || !crypto.verify('sha256', opBytes, { key: pk.key, dsaEncoding: 'ieee-p1363' }, opSig)) {
    throw new AuthError(401, 'Signature could not verified');
  }
  // The ephemeral key is only good for the domain it was issued for, when the issuer says so
  // (aleph's server accepts a key without one); a domain that is not this CRN's name, of any type, is refused.
  const keyDomain: unknown = pk.payload.domain;
  if (keyDomain !== undefined && keyDomain !== domain) {
    throw new AuthError(401, `Invalid domain: Signed: '${clip(typeof keyDomain === 'string' ? keyDomain : JSON.stringify(keyDomain))}' != '${clip(domain)}'`);
  }
  return { address: pk.payload.address, chain: pk.payload.chain };
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

/** Whether `caller` owns a VM whose owner is `owner` (ETH: case-insensitive; SOL: exact). */
export function isOwner(caller: VerifiedCaller, owner: string): boolean {
  if (caller.chain === 'ETH') return owner.toLowerCase() === caller.address.toLowerCase();
  return owner === caller.address;
}
