/**
 * The owner-signed secret envelope of aleph-vm's SNP guest agent (#1128 in
 * shared/specs/snp-launch.md §4.3–4.4), as sevkit sends and checks it:
 *
 *   {"secrets": {"<key>": "<value>", …}, "tls_key": "<hex SHA-384 of the agent's TLS point>",
 *    "id": "<32 hex digits>", "issued_at": <unix seconds>, "signature": "0x<r‖s‖v>"}
 *
 * The signature is an EIP-191 personal_sign by the VM owner's Ethereum wallet over
 *
 *   aleph-snp-inject-secret-v1|<tls_key hex>|<hex SHA-256 of the canonical secrets JSON>|<id>|<issued_at>
 *
 * aleph's message is the first three parts (channel binding to the per-boot TLS
 * key, and the secrets); sevkit adds `id` and `issued_at` so that the agent can
 * refuse a replay within one boot (one use per id, a freshness window) and say
 * so. aleph's exact byte encoding is not public (§6); this one is sevkit's.
 * Secrets are never logged or put into error messages.
 */
import crypto from 'node:crypto';
import { SevkitError } from '../errors.js';
import { ethRecoverAddress, isEthAddress, type Wallet } from './wallet.js';

/** First part of the signed message. */
export const INJECT_MESSAGE_PREFIX = 'aleph-snp-inject-secret-v1';
/** At most this many secrets per envelope (aleph's agent). */
export const MAX_SECRETS = 16;
/** Largest secret value, bytes of UTF-8 (aleph's agent). */
export const MAX_SECRET_BYTES = 64 * 1024;
/** Largest envelope body, bytes (aleph #1128). */
export const MAX_INJECT_BODY_BYTES = 2 * 1024 * 1024;
/** A secret's name: it becomes a file name in the agent's secrets directory. */
export const SECRET_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** The envelope on the wire. */
export interface InjectEnvelope {
  secrets: Record<string, string>;
  /** Hex SHA-384 of the agent's 97-byte TLS public point. */
  tls_key: string;
  /** 16 random bytes, hex: the agent accepts each id once. */
  id: string;
  /** When the owner signed, unix seconds. */
  issued_at: number;
  /** EIP-191 signature, 0x and 130 hex digits. */
  signature: string;
}

/**
 * An envelope the agent refuses; `status` is the HTTP answer (400 malformed,
 * 401 bad or stale signature, 403 not the owner or not for this key, 409 replay,
 * 413 too large).
 */
export class InjectEnvelopeError extends SevkitError {
  constructor(
    readonly status: 400 | 401 | 403 | 409 | 413,
    message: string,
    code = 'ERR_INJECT_ENVELOPE',
  ) {
    super(code, message);
  }
}

/** Check the secrets map (names, count, sizes). Throws InjectEnvelopeError 400 naming the key, never the value. */
export function checkSecrets(secrets: unknown): Record<string, string> {
  if (typeof secrets !== 'object' || secrets === null || Array.isArray(secrets))
    throw new InjectEnvelopeError(400, 'secrets must be an object of name → string');
  const keys = Object.keys(secrets);
  if (keys.length === 0) throw new InjectEnvelopeError(400, 'secrets is empty');
  if (keys.length > MAX_SECRETS) throw new InjectEnvelopeError(400, `at most ${MAX_SECRETS} secrets, got ${keys.length}`);
  const out: Record<string, string> = {};
  for (const k of keys) {
    if (!SECRET_NAME_RE.test(k)) throw new InjectEnvelopeError(400, `secret name ${JSON.stringify(k.slice(0, 70))} must match [A-Za-z0-9_-]{1,64}`);
    const v = (secrets as Record<string, unknown>)[k];
    if (typeof v !== 'string') throw new InjectEnvelopeError(400, `secret ${k}: the value must be a string`);
    if (Buffer.byteLength(v, 'utf8') > MAX_SECRET_BYTES) throw new InjectEnvelopeError(400, `secret ${k}: larger than ${MAX_SECRET_BYTES} bytes`);
    out[k] = v;
  }
  return out;
}

/** The canonical JSON of the secrets: keys sorted, no whitespace (UTF-8). */
export function canonicalSecretsJson(secrets: Record<string, string>): Buffer {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(secrets).sort()) sorted[k] = secrets[k]!;
  return Buffer.from(JSON.stringify(sorted), 'utf8');
}

/** The bytes the owner signs. */
export function injectMessage(o: { tlsKey: string; secrets: Record<string, string>; id: string; issuedAt: number }): Buffer {
  const sh = crypto.createHash('sha256').update(canonicalSecretsJson(o.secrets)).digest('hex');
  return Buffer.from(`${INJECT_MESSAGE_PREFIX}|${o.tlsKey.toLowerCase()}|${sh}|${o.id.toLowerCase()}|${o.issuedAt}`, 'utf8');
}

/** What the owner seals. */
export interface SignInjectOptions {
  /** The secrets, name → value (checked as the agent checks them). */
  secrets: Record<string, string>;
  /** SHA-384 of the agent's TLS point (48 bytes), from the verified handshake. */
  tlsKeyDigest: Uint8Array;
  /** Default: 16 random bytes. */
  id?: string;
  /** Default: now. */
  issuedAt?: number;
}

/** Seal secrets for one agent with the owner's Ethereum wallet. Throws InjectEnvelopeError (bad secrets) or WalletError. */
export function signInjectEnvelope(wallet: Wallet, o: SignInjectOptions): InjectEnvelope {
  if (wallet.chain !== 'ETH') throw new InjectEnvelopeError(400, 'the SNP inject envelope is signed by an Ethereum wallet (aleph #1190: EVM owners only)');
  const secrets = checkSecrets(o.secrets);
  if (o.tlsKeyDigest.length !== 48) throw new InjectEnvelopeError(400, `the TLS key digest is 48 bytes, got ${o.tlsKeyDigest.length}`);
  const tls_key = Buffer.from(o.tlsKeyDigest).toString('hex');
  const id = o.id ?? crypto.randomBytes(16).toString('hex');
  const issued_at = o.issuedAt ?? Math.floor(Date.now() / 1000);
  const sig = wallet.signPayload(injectMessage({ tlsKey: tls_key, secrets, id, issuedAt: issued_at }));
  return { secrets, tls_key, id, issued_at, signature: `0x${Buffer.from(sig).toString('hex')}` };
}

/** What the agent checks an envelope against. */
export interface VerifyInjectOptions {
  /** The VM owner's Ethereum address (0x and 40 hex digits, any case). */
  owner: string;
  /** SHA-384 of this agent's TLS point. */
  tlsKeyDigest: Uint8Array;
  /** Agent clock, ms (default Date.now()). */
  now?: number;
  /** issued_at must be within this many ms of `now`, either way (default 5 minutes). */
  windowMs?: number;
}

/** Default freshness window of an envelope, ms. */
export const INJECT_WINDOW_MS = 5 * 60 * 1000;

/** A verified envelope: the secrets and the id to remember. */
export interface VerifiedInject {
  secrets: Record<string, string>;
  id: string;
  issuedAt: number;
  /** The recovered signer (EIP-55). */
  signer: string;
}

/**
 * Check an envelope (already JSON-parsed, still hostile): its shape, that it is
 * for this TLS key, fresh, and signed by the owner. Replays of an id are the
 * caller's to refuse (it keeps the ids). Throws InjectEnvelopeError.
 */
export function verifyInjectEnvelope(body: unknown, o: VerifyInjectOptions): VerifiedInject {
  if (!isEthAddress(o.owner)) throw new InjectEnvelopeError(400, `owner ${o.owner.slice(0, 50)} is not an Ethereum address`, 'ERR_INJECT_OWNER');
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new InjectEnvelopeError(400, 'the body must be a JSON object {secrets, tls_key, id, issued_at, signature}');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b))
    if (!['secrets', 'tls_key', 'id', 'issued_at', 'signature'].includes(k))
      throw new InjectEnvelopeError(400, `unexpected field ${JSON.stringify(k.slice(0, 40))}`);
  if (b.secrets === undefined || b.signature === undefined)
    throw new InjectEnvelopeError(401, 'an owner-signed envelope {secrets, tls_key, id, issued_at, signature} is required');
  const secrets = checkSecrets(b.secrets);
  if (typeof b.tls_key !== 'string' || !/^[0-9a-fA-F]{96}$/.test(b.tls_key))
    throw new InjectEnvelopeError(400, 'tls_key must be 96 hex digits (SHA-384 of the TLS key)');
  if (typeof b.id !== 'string' || !/^[0-9a-fA-F]{32}$/.test(b.id)) throw new InjectEnvelopeError(400, 'id must be 32 hex digits');
  if (typeof b.issued_at !== 'number' || !Number.isSafeInteger(b.issued_at) || b.issued_at < 0)
    throw new InjectEnvelopeError(400, 'issued_at must be unix seconds');
  if (typeof b.signature !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(b.signature))
    throw new InjectEnvelopeError(400, 'signature must be 0x and 130 hex digits');
  const mine = Buffer.from(o.tlsKeyDigest);
  if (!crypto.timingSafeEqual(Buffer.from(b.tls_key, 'hex'), mine))
    throw new InjectEnvelopeError(403, 'the envelope is for another TLS key (not this agent, or not this boot)', 'ERR_INJECT_TLS_KEY');
  const now = o.now ?? Date.now();
  const window = o.windowMs ?? INJECT_WINDOW_MS;
  if (Math.abs(b.issued_at * 1000 - now) > window)
    throw new InjectEnvelopeError(
      401,
      `the envelope was issued at ${b.issued_at}, outside ±${Math.round(window / 1000)} s of the agent's clock`,
      'ERR_INJECT_STALE',
    );
  let signer: string;
  try {
    signer = ethRecoverAddress(injectMessage({ tlsKey: b.tls_key, secrets, id: b.id, issuedAt: b.issued_at }), Buffer.from(b.signature.slice(2), 'hex'));
  } catch {
    throw new InjectEnvelopeError(401, 'the signature does not verify', 'ERR_INJECT_SIGNATURE');
  }
  if (signer.toLowerCase() !== o.owner.toLowerCase()) throw new InjectEnvelopeError(403, `signed by ${signer}, not by the VM owner`, 'ERR_INJECT_NOT_OWNER');
  return { secrets, id: b.id.toLowerCase(), issuedAt: b.issued_at, signer };
}
