/**
 * Wallet signatures as aleph-vm accepts them for X-SignedPubKey: Ethereum
 * `personal_sign` (EIP-191, secp256k1 with public-key recovery, keccak-256
 * addresses) and Solana ed25519 over the ASCII hex of the payload.
 *
 * secp256k1 and keccak come from @noble (audited, widely used); ed25519 from
 * node's crypto. Nothing here logs or keeps key material beyond the object
 * that owns it.
 */
import crypto from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { SevkitError } from '../errors.js';

/** The chains whose wallets aleph accepts. */
export type WalletChain = 'ETH' | 'SOL';

/** A wallet key or address that cannot be used (ERR_WALLET unless another code is given). */
export class WalletError extends SevkitError {
  constructor(message: string, code = 'ERR_WALLET') {
    super(code, message);
  }
}

/** Something that can sign an aleph X-SignedPubKey payload on behalf of an address. */
export interface Wallet {
  readonly chain: WalletChain;
  /** Ethereum: EIP-55 checksummed 0x address. Solana: base58 public key. */
  readonly address: string;
  /**
   * Signs the raw payload bytes the way aleph's server verifies them and returns
   * the signature bytes (ETH: r‖s‖v, 65 bytes; SOL: 64-byte ed25519 signature).
   */
  signPayload(payload: Uint8Array): Uint8Array;
}

// ---------------------------------------------------------------- Ethereum

/** EIP-191 version 0x45 ("personal_sign") digest of a message. */
export function ethMessageHash(message: Uint8Array): Uint8Array {
  const prefix = Buffer.from(`\x19Ethereum Signed Message:\n${message.length}`, 'utf8');
  return keccak_256(Buffer.concat([prefix, message]));
}

/** EIP-55 mixed-case checksum of a 20-byte address. */
export function ethChecksumAddress(addr: Uint8Array | string): string {
  const hex = typeof addr === 'string' ? addr.replace(/^0x/i, '').toLowerCase() : Buffer.from(addr).toString('hex');
  if (!/^[0-9a-f]{40}$/.test(hex)) throw new WalletError(`not an Ethereum address: '${String(addr).slice(0, 60)}'`);
  const h = Buffer.from(keccak_256(Buffer.from(hex, 'ascii'))).toString('hex');
  let out = '0x';
  for (let i = 0; i < 40; i++) out += Number.parseInt(h[i]!, 16) >= 8 ? hex[i]!.toUpperCase() : hex[i]!;
  return out;
}

/** Whether `s` has the shape of an Ethereum address (0x and 40 hex digits; the checksum is not checked). */
export function isEthAddress(s: string): boolean {
  return /^0x[0-9a-fA-F]{40}$/.test(s);
}

/** The Ethereum address (EIP-55) of an uncompressed secp256k1 public key (65 bytes, 0x04‖X‖Y). */
export function ethAddressOfPublicKey(uncompressed: Uint8Array): string {
  // Address = last 20 bytes of keccak-256 over X‖Y (without the 0x04 prefix).
  return ethChecksumAddress(keccak_256(uncompressed.subarray(1)).subarray(12));
}

/**
 * The parts of an EIP-191 personal_sign signature (r‖s‖v, v ∈ {0, 1, 27, 28}) that secp256k1
 * recovery takes: the 64-byte compact r‖s and the recovery bit. Throws WalletError on a malformed one.
 */
export function splitEthSignature(signature: Uint8Array): { compact: Uint8Array; recovery: 0 | 1 } {
  if (signature.length !== 65) throw new WalletError(`Ethereum signature must be 65 bytes, got ${signature.length}`);
  const v = signature[64]!;
  const recovery = v >= 27 ? v - 27 : v;
  if (recovery !== 0 && recovery !== 1) throw new WalletError(`Ethereum signature has an invalid v byte ${v}`);
  return { compact: signature.subarray(0, 64), recovery };
}

/**
 * Recovers the signer address of an EIP-191 personal_sign signature
 * (r‖s‖v, v ∈ {0, 1, 27, 28}), as eth_account's `recover_message` does.
 * Throws WalletError on a malformed signature. Pure JS (1.5–2 ms): a daemon
 * uses EthRecoverWorker (recover-worker.ts) to keep it off its event loop.
 */
export function ethRecoverAddress(message: Uint8Array, signature: Uint8Array): string {
  const { compact, recovery } = splitEthSignature(signature);
  try {
    const sig = secp256k1.Signature.fromBytes(compact, 'compact').addRecoveryBit(recovery);
    const point = sig.recoverPublicKey(ethMessageHash(message));
    return ethAddressOfPublicKey(point.toBytes(false));
  } catch (e) {
    throw new WalletError(`Ethereum signature does not recover to a public key: ${(e as Error).message}`);
  }
}

/**
 * An Ethereum wallet (secp256k1) that signs X-SignedPubKey payloads with personal_sign; throws WalletError on an
 * invalid private key.
 */
export class EthWallet implements Wallet {
  readonly chain = 'ETH' as const;
  readonly address: string;
  readonly #secret: Uint8Array;

  private constructor(secret: Uint8Array) {
    if (!secp256k1.utils.isValidSecretKey(secret)) throw new WalletError('not a valid secp256k1 private key');
    this.#secret = Uint8Array.from(secret);
    this.address = ethAddressOfPublicKey(secp256k1.getPublicKey(this.#secret, false));
  }

  static fromPrivateKey(key: Uint8Array | string): EthWallet {
    if (typeof key === 'string') {
      const hex = key.trim().replace(/^0x/i, '');
      if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new WalletError('Ethereum private key must be 32 bytes of hex');
      const bytes = Buffer.from(hex, 'hex');
      try {
        return new EthWallet(bytes);
      } finally {
        bytes.fill(0); // the wallet keeps its own copy
      }
    }
    if (key.length !== 32) throw new WalletError('Ethereum private key must be 32 bytes');
    return new EthWallet(key);
  }

  static generate(): EthWallet {
    return new EthWallet(secp256k1.utils.randomSecretKey());
  }

  signPayload(payload: Uint8Array): Uint8Array {
    const rec = secp256k1.sign(ethMessageHash(payload), this.#secret, { prehash: false, format: 'recovered' });
    // noble puts the recovery byte first; Ethereum puts v = 27 + recovery last.
    const out = new Uint8Array(65);
    out.set(rec.subarray(1), 0);
    out[64] = 27 + rec[0]!;
    return out;
  }

  /** Destroys the private key held by this object. */
  dispose(): void {
    this.#secret.fill(0);
  }
}

// ---------------------------------------------------------------- Solana

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function base58Encode(bytes: Uint8Array): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
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

export function base58Decode(s: string): Uint8Array {
  if (s.length === 0 || s.length > 128) throw new WalletError('base58 string is empty or too long');
  let n = 0n;
  for (const c of s) {
    const d = B58.indexOf(c);
    if (d < 0) throw new WalletError(`invalid base58 character '${c}'`);
    n = n * 58n + BigInt(d);
  }
  const out: number[] = [];
  while (n > 0n) {
    out.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  for (const c of s) {
    if (c !== '1') break;
    out.unshift(0);
  }
  return Uint8Array.from(out);
}

/** Whether `s` is a Solana address: base58 of a 32-byte ed25519 public key. */
export function isSolAddress(s: string): boolean {
  if (!/^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(s)) return false;
  try {
    return base58Decode(s).length === 32;
  } catch {
    return false;
  }
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Verifies an ed25519 signature by the Solana address (base58 public key). */
export function solVerify(address: string, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  let pub: Uint8Array;
  try {
    pub = base58Decode(address);
  } catch {
    return false;
  }
  if (pub.length !== 32) return false;
  try {
    const key = crypto.createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
    return crypto.verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/**
 * A Solana wallet (ed25519) that signs X-SignedPubKey payloads as aleph verifies them; throws WalletError on an
 * invalid key.
 */
export class SolWallet implements Wallet {
  readonly chain = 'SOL' as const;
  readonly address: string;
  readonly #key: crypto.KeyObject;

  private constructor(seed: Uint8Array) {
    const der = Buffer.concat([ED25519_PKCS8_PREFIX, seed]);
    this.#key = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    der.fill(0);
    const jwk = crypto.createPublicKey(this.#key).export({ format: 'jwk' });
    this.address = base58Encode(Buffer.from(jwk.x!, 'base64url'));
  }

  /**
   * From a 32-byte seed or a 64-byte Solana secret key (seed‖public key, as in
   * solana-keygen's JSON array files). The public half of a 64-byte key must match.
   */
  static fromSecretKey(key: Uint8Array): SolWallet {
    if (key.length !== 32 && key.length !== 64) throw new WalletError('Solana secret key must be 32 or 64 bytes');
    const w = new SolWallet(key.subarray(0, 32));
    if (key.length === 64 && base58Encode(key.subarray(32)) !== w.address) {
      throw new WalletError('Solana secret key: public half does not match the seed');
    }
    return w;
  }

  static generate(): SolWallet {
    const seed = crypto.randomBytes(32);
    const w = new SolWallet(seed);
    seed.fill(0);
    return w;
  }

  signPayload(payload: Uint8Array): Uint8Array {
    // aleph (solathon) verifies over the ASCII bytes of the payload's hex string.
    return crypto.sign(null, Buffer.from(Buffer.from(payload).toString('hex'), 'ascii'), this.#key);
  }
}

/**
 * Reads a wallet key file: an Ethereum private key as (0x-)hex, or a Solana
 * key as solana-keygen's JSON array of 64 bytes (or a base58 secret key).
 */
export function parseWalletKey(text: string, source = 'wallet key'): Wallet {
  const t = text.trim();
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(t)) return EthWallet.fromPrivateKey(t);
  if (t.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(t);
    } catch {
      throw new WalletError(`${source}: not valid JSON`);
    }
    if (!Array.isArray(arr) || !arr.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)) {
      throw new WalletError(`${source}: expected a JSON array of bytes`);
    }
    const bytes = Uint8Array.from(arr as number[]);
    try {
      return SolWallet.fromSecretKey(bytes);
    } finally {
      bytes.fill(0);
    }
  }
  if (/^[1-9A-HJ-NP-Za-km-z]{80,90}$/.test(t)) {
    const bytes = base58Decode(t);
    try {
      return SolWallet.fromSecretKey(bytes);
    } finally {
      bytes.fill(0);
    }
  }
  throw new WalletError(`${source}: expected an Ethereum private key (64 hex digits) or a Solana key (JSON byte array or base58)`);
}
