/**
 * Deterministic key material for the simulator: every key and signature the
 * simulated firmware makes is a function of the state's seed and a label, so
 * the same seed and the same command history give byte-identical state.
 *
 * This is what a TEST platform needs (reproducible fixtures); real firmware
 * draws from a TRNG. Nothing here is meant for production keys.
 */
import crypto, { type KeyObject } from 'node:crypto';
import { p384 } from '@noble/curves/nist.js';

/** HMAC-DRBG (NIST SP 800-90A, HMAC-SHA256, no reseed, no additional input). */
export class HmacDrbg {
  private k: Buffer = Buffer.alloc(32, 0);
  private v: Buffer = Buffer.alloc(32, 1);

  constructor(seedMaterial: Uint8Array) {
    this.update(seedMaterial);
  }

  private hmac(key: Buffer, ...parts: Uint8Array[]): Buffer {
    const h = crypto.createHmac('sha256', key);
    for (const p of parts) h.update(p);
    return h.digest();
  }

  private update(data?: Uint8Array): void {
    this.k = this.hmac(this.k, this.v, Buffer.from([0]), data ?? Buffer.alloc(0));
    this.v = this.hmac(this.k, this.v);
    if (data && data.length > 0) {
      this.k = this.hmac(this.k, this.v, Buffer.from([1]), data);
      this.v = this.hmac(this.k, this.v);
    }
  }

  generate(n: number): Buffer {
    const out = Buffer.alloc(n);
    let off = 0;
    while (off < n) {
      this.v = this.hmac(this.k, this.v);
      off += this.v.copy(out, off);
    }
    this.update();
    return out;
  }
}

/** A DRBG for one purpose: seed and label are both part of the seed material. */
export function drbgFor(seed: string, label: string): HmacDrbg {
  return new HmacDrbg(Buffer.from(`sevkit-sim-test-platform\0${seed}\0${label}`, 'utf8'));
}

const P384_N = p384.Point.CURVE().n;

function bytesToBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex'));
}

function bigIntToBytes(x: bigint, len: number): Buffer {
  const hex = x.toString(16).padStart(len * 2, '0');
  if (hex.length > len * 2) throw new RangeError('integer too large for field');
  return Buffer.from(hex, 'hex');
}

/** P-384 private key derived from (seed, label), as a Node KeyObject. */
export function deriveP384(seed: string, label: string): KeyObject {
  const drbg = drbgFor(seed, `p384:${label}`);
  for (;;) {
    const d = bytesToBigInt(drbg.generate(48));
    if (d === 0n || d >= P384_N) continue; // rejection sampling keeps it uniform
    const dBytes = bigIntToBytes(d, 48);
    const pub = Buffer.from(p384.getPublicKey(dBytes, false));
    const key = crypto.createPrivateKey({
      key: {
        kty: 'EC',
        crv: 'P-384',
        d: dBytes.toString('base64url'),
        x: pub.subarray(1, 49).toString('base64url'),
        y: pub.subarray(49, 97).toString('base64url'),
      },
      format: 'jwk',
    });
    dBytes.fill(0);
    return key;
  }
}

/** Raw 48-byte scalar of a P-384 KeyObject (caller zeroes it). */
function p384Scalar(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-384' || !jwk.d) throw new TypeError('not a P-384 private key');
  return Buffer.from(jwk.d, 'base64url');
}

/**
 * ECDSA P-384 with RFC 6979 nonces over an explicit hash (SHA-256 for
 * ECDSA_SHA256 certs); returns r‖s big-endian, 48 bytes each.
 */
export function ecdsaSignDeterministic(key: KeyObject, hash: 'sha256' | 'sha384', msg: Uint8Array): Buffer {
  const digest = crypto.createHash(hash).update(msg).digest();
  const d = p384Scalar(key);
  try {
    const sig = p384.sign(digest, d, { prehash: false, lowS: false });
    return Buffer.from(sig);
  } finally {
    d.fill(0);
  }
}

// ---- RSA ---------------------------------------------------------------

function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [a % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) throw new RangeError('not invertible');
  return ((oldS % m) + m) % m;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

const SMALL_PRIMES: number[] = (() => {
  const limit = 4000;
  const sieve = new Uint8Array(limit + 1);
  const out: number[] = [];
  for (let i = 2; i <= limit; i++) {
    if (sieve[i]) continue;
    out.push(i);
    for (let j = i * i; j <= limit; j += i) sieve[j] = 1;
  }
  return out;
})();

function generatePrime(bits: number, e: bigint, drbg: HmacDrbg): bigint {
  for (;;) {
    const raw = drbg.generate(bits / 8);
    raw[0] |= 0xc0; // top two bits set: the product has exactly 2*bits bits
    raw[raw.length - 1] |= 1;
    let cand = bytesToBigInt(raw);
    // Walk odd numbers from the random start; sieve with small primes first.
    for (let step = 0; step < 4096; step++, cand += 2n) {
      let small = false;
      for (const p of SMALL_PRIMES) {
        if (cand % BigInt(p) === 0n) {
          small = true;
          break;
        }
      }
      if (small) continue;
      if (gcd(cand - 1n, e) !== 1n) continue;
      // Primality is a property of the number, so a native probabilistic test keeps the result deterministic.
      if (!crypto.checkPrimeSync(cand)) continue;
      return cand;
    }
  }
}

export interface DetRsaKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** RSA key of `bits` bits (e = 65537) derived from (seed, label). Takes seconds for 4096 bits. */
export function deriveRsa(seed: string, label: string, bits: number): DetRsaKey {
  const drbg = drbgFor(seed, `rsa${bits}:${label}`);
  const e = 65537n;
  for (;;) {
    const p = generatePrime(bits / 2, e, drbg);
    const q = generatePrime(bits / 2, e, drbg);
    if (p === q) continue;
    const n = p * q;
    if (n.toString(2).length !== bits) continue;
    const phi = (p - 1n) * (q - 1n);
    const d = modInverse(e, phi);
    const len = bits / 8;
    const half = bits / 16;
    const jwk = {
      kty: 'RSA',
      n: bigIntToBytes(n, len).toString('base64url'),
      e: bigIntToBytes(e, 3).toString('base64url'),
      d: bigIntToBytes(d, len).toString('base64url'),
      p: bigIntToBytes(p, half).toString('base64url'),
      q: bigIntToBytes(q, half).toString('base64url'),
      dp: bigIntToBytes(d % (p - 1n), half).toString('base64url'),
      dq: bigIntToBytes(d % (q - 1n), half).toString('base64url'),
      qi: bigIntToBytes(modInverse(q, p), half).toString('base64url'),
    };
    const privateKey = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
    return { privateKey, publicKey: crypto.createPublicKey(privateKey) };
  }
}

function mgf1(hash: string, seed: Buffer, len: number): Buffer {
  const out: Buffer[] = [];
  let have = 0;
  for (let c = 0; have < len; c++) {
    const ctr = Buffer.alloc(4);
    ctr.writeUInt32BE(c);
    const h = crypto.createHash(hash).update(seed).update(ctr).digest();
    out.push(h);
    have += h.length;
  }
  return Buffer.concat(out).subarray(0, len);
}

/**
 * RSASSA-PSS (MGF1 with the same hash, salt length = digest length) with the
 * salt drawn from (seed, label) instead of a TRNG. Returns the big-endian
 * signature; verifies like any PSS signature.
 */
export function rsaPssSignDeterministic(key: KeyObject, hash: 'sha256' | 'sha384', msg: Uint8Array, seed: string, label: string): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'RSA' || !jwk.d || !jwk.p || !jwk.q || !jwk.dp || !jwk.dq || !jwk.qi) throw new TypeError('not an RSA private key');
  const big = (s: string) => bytesToBigInt(Buffer.from(s, 'base64url'));
  const n = big(jwk.n!);
  const modBits = n.toString(2).length;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const mHash = crypto.createHash(hash).update(msg).digest();
  const hLen = mHash.length;
  const salt = drbgFor(seed, `pss-salt:${label}`).generate(hLen);
  const h = crypto.createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  const db = Buffer.alloc(emLen - hLen - 1);
  db[db.length - hLen - 1] = 0x01;
  salt.copy(db, db.length - hLen);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i] ^= mask[i]!;
  db[0] &= 0xff >> (8 * emLen - emBits);
  const em = Buffer.concat([db, h, Buffer.from([0xbc])]);
  // s = EM^d mod n. A raw (unpadded) private-key operation does exactly that, natively.
  const modLen = Math.ceil(modBits / 8);
  const input = Buffer.alloc(modLen);
  em.copy(input, modLen - em.length);
  return crypto.privateDecrypt({ key, padding: crypto.constants.RSA_NO_PADDING }, input);
}

/** Deterministic bytes for identifiers (chip id, CA key ids, mnonce in tests). */
export function deriveBytes(seed: string, label: string, n: number): Buffer {
  return drbgFor(seed, `bytes:${label}`).generate(n);
}
