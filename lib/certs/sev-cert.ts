/**
 * The SEV certificate (0x824 bytes): PDH, PEK, OCA, CEK and the tenant's GODH.
 * Layout: AMD SEV API spec "Certificates" / virtee/sev src/certs/sev/sev/cert/v1.
 * Decoding keeps every byte so that encode(decode(x)) == x.
 */
import crypto, { type KeyObject } from 'node:crypto';
import {
  Algo,
  Curve,
  EC_COORD_SIZE,
  P384_SIZE,
  SEV_CERT_BODY_SIZE,
  SEV_CERT_SIZE,
  SEV_CERT_USAGES,
  SEV_PUBKEY_SIZE,
  SEV_SIG1_OFFSET,
  SEV_SIG2_OFFSET,
  SIGNATURE_ALGOS,
  SIGNER_USAGES,
  Usage,
  algoInfo,
  algoName,
  usageName,
} from './constants.js';
import { b64url, beToLeFixed, reversed, stripLeadingZeros } from './bytes.js';
import { CertificateError } from './errors.js';

/** ECC public key inside the 1028-byte pubkey union (struct sev_ecc_pubkey). */
export interface SevEcPubKey {
  kind: 'ec';
  /** curve: 1 = P-256, 2 = P-384 */
  curve: number;
  /** qx: 72-byte LE field */
  qx: Buffer;
  /** qy: 72-byte LE field */
  qy: Buffer;
  /** rest of the union (880 bytes, zero in valid certs but covered by signatures) */
  padding: Buffer;
}

/** RSA public key inside the union (struct sev_rsa_pubkey). */
export interface SevRsaPubKey {
  kind: 'rsa';
  /** modulus_size in bits */
  modulusSize: number;
  /** pub_exp: 512-byte LE field */
  pubexp: Buffer;
  /** modulus: 512-byte LE field */
  modulus: Buffer;
}

/** One 520-byte signature slot (struct sev_sig). */
export interface SevSignature {
  /** sig_usage: usage of the signing key */
  usage: number;
  /** sig_algo */
  algo: number;
  /** 512-byte signature union: ECDSA r LE[72] ‖ s LE[72] ‖ zeros, or one LE RSA integer */
  value: Buffer;
}

/** A decoded SEV certificate (the 0x824-byte format of PDH, PEK, OCA and CEK); field names follow the AMD spec. */
export interface SevCert {
  /** version (always 1) */
  version: number;
  /** api_major */
  apiMajor: number;
  /** api_minor */
  apiMinor: number;
  /** reserved u16 */
  reserved: number;
  /** pubkey_usage */
  usage: number;
  /** pubkey_algo */
  algo: number;
  pubkey: SevEcPubKey | SevRsaPubKey;
  /** sig1, sig2 */
  sigs: [SevSignature, SevSignature];
}

/** Options of decodeSevCert / asSevCert: a name for messages, a required usage, trailing bytes allowed. */
export interface DecodeOptions {
  /** Name used in error messages (e.g. "PEK" or a file name). */
  name?: string;
  /** Require this pubkey_usage. */
  usage?: number;
  /** Accept a buffer longer than 0x824 bytes and decode its first certificate. */
  allowTrailing?: boolean;
}

function fail(name: string, field: string, msg: string): never {
  throw new CertificateError('ERR_CERT_DECODE', `${name}: ${msg}`, { cert: name, field });
}

/** True if a slot counts as empty (unknown signer usage or non-signature algorithm). */
export function isEmptySlot(s: SevSignature): boolean {
  return !SIGNER_USAGES.includes(s.usage) || !SIGNATURE_ALGOS.includes(s.algo);
}

/** A fresh empty signature slot (usage INV, algo NONE, 512 zero bytes). */
export function emptySignature(): SevSignature {
  return { usage: Usage.INV, algo: Algo.NONE, value: Buffer.alloc(512) };
}

/**
 * Decodes and checks one 0x824-byte SEV certificate (version 1, a SEV usage, a known algorithm, P-384 or
 * RSA-2048/4096 key); throws CertificateError (ERR_CERT_DECODE) naming the field.
 */
export function decodeSevCert(input: Uint8Array, opts: DecodeOptions = {}): SevCert {
  const name = opts.name ?? 'SEV certificate';
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < SEV_CERT_SIZE || (!opts.allowTrailing && buf.length !== SEV_CERT_SIZE)) {
    fail(name, 'size', `size is ${buf.length} bytes, expected ${SEV_CERT_SIZE} (0x824)`);
  }
  const version = buf.readUInt32LE(0);
  if (version !== 1) fail(name, 'version', `version is ${version}, expected 1`);
  const usage = buf.readUInt32LE(8);
  if (!SEV_CERT_USAGES.includes(usage)) fail(name, 'pubkey_usage', `pubkey_usage 0x${usage.toString(16)} is not OCA, PEK, PDH or CEK`);
  if (opts.usage !== undefined && usage !== opts.usage) {
    fail(name, 'pubkey_usage', `pubkey_usage is ${usageName(usage)}, expected ${usageName(opts.usage)}`);
  }
  const algo = buf.readUInt32LE(12);
  const info = algoInfo(algo);
  if (!info) fail(name, 'pubkey_algo', `pubkey_algo 0x${algo.toString(16)} is not a known key algorithm`);
  let pubkey: SevEcPubKey | SevRsaPubKey;
  if (info.type === 'ec') {
    const curve = buf.readUInt32LE(0x10);
    if (curve !== Curve.P384) fail(name, 'curve', `curve ${curve} is not P-384 (2)`);
    pubkey = {
      kind: 'ec',
      curve,
      qx: Buffer.from(buf.subarray(0x14, 0x14 + EC_COORD_SIZE)),
      qy: Buffer.from(buf.subarray(0x5c, 0x5c + EC_COORD_SIZE)),
      padding: Buffer.from(buf.subarray(0xa4, 0x10 + SEV_PUBKEY_SIZE)),
    };
  } else {
    const modulusSize = buf.readUInt32LE(0x10);
    if (modulusSize !== 2048 && modulusSize !== 4096) fail(name, 'modulus_size', `RSA modulus_size ${modulusSize} is not 2048 or 4096`);
    pubkey = {
      kind: 'rsa',
      modulusSize,
      pubexp: Buffer.from(buf.subarray(0x14, 0x214)),
      modulus: Buffer.from(buf.subarray(0x214, 0x414)),
    };
  }
  const slot = (off: number): SevSignature => ({
    usage: buf.readUInt32LE(off),
    algo: buf.readUInt32LE(off + 4),
    value: Buffer.from(buf.subarray(off + 8, off + 520)),
  });
  return {
    version,
    apiMajor: buf[4]!,
    apiMinor: buf[5]!,
    reserved: buf.readUInt16LE(6),
    usage,
    algo,
    pubkey,
    sigs: [slot(SEV_SIG1_OFFSET), slot(SEV_SIG2_OFFSET)],
  };
}

function checkLen(b: Buffer, len: number, what: string): void {
  if (b.length !== len) throw new CertificateError('ERR_CERT_ENCODE', `cannot encode: ${what} is ${b.length} bytes, expected ${len}`, { field: what });
}

/** Encodes a SevCert to its 0x824 bytes; throws CertificateError (ERR_CERT_ENCODE) when a field has the wrong size. */
export function encodeSevCert(cert: SevCert): Buffer {
  const out = Buffer.alloc(SEV_CERT_SIZE);
  out.writeUInt32LE(cert.version, 0);
  out[4] = cert.apiMajor;
  out[5] = cert.apiMinor;
  out.writeUInt16LE(cert.reserved, 6);
  out.writeUInt32LE(cert.usage, 8);
  out.writeUInt32LE(cert.algo, 12);
  const k = cert.pubkey;
  if (k.kind === 'ec') {
    checkLen(k.qx, EC_COORD_SIZE, 'qx');
    checkLen(k.qy, EC_COORD_SIZE, 'qy');
    checkLen(k.padding, SEV_PUBKEY_SIZE - 4 - 2 * EC_COORD_SIZE, 'pubkey padding');
    out.writeUInt32LE(k.curve, 0x10);
    k.qx.copy(out, 0x14);
    k.qy.copy(out, 0x5c);
    k.padding.copy(out, 0xa4);
  } else {
    checkLen(k.pubexp, 512, 'pubexp');
    checkLen(k.modulus, 512, 'modulus');
    out.writeUInt32LE(k.modulusSize, 0x10);
    k.pubexp.copy(out, 0x14);
    k.modulus.copy(out, 0x214);
  }
  cert.sigs.forEach((s, i) => {
    const off = i === 0 ? SEV_SIG1_OFFSET : SEV_SIG2_OFFSET;
    checkLen(s.value, 512, `sig${i + 1}`);
    out.writeUInt32LE(s.usage, off);
    out.writeUInt32LE(s.algo, off + 4);
    s.value.copy(out, off + 8);
  });
  return out;
}

/**
 * Accept either a decoded certificate or its raw bytes. A required usage is
 * checked on both forms, so a caller handing over an already-decoded cert
 * gets the same role check as one handing over bytes.
 */
export function asSevCert(c: SevCert | Uint8Array, opts: DecodeOptions = {}): SevCert {
  if (c instanceof Uint8Array) return decodeSevCert(c, opts);
  if (opts.usage !== undefined && c.usage !== opts.usage) {
    fail(opts.name ?? 'SEV certificate', 'pubkey_usage', `pubkey_usage is ${usageName(c.usage)}, expected ${usageName(opts.usage)}`);
  }
  return c;
}

/** The signed bytes [0, 0x414) of a SEV certificate. */
export function sevCertBody(cert: SevCert | Uint8Array): Buffer {
  const raw = cert instanceof Uint8Array ? Buffer.from(cert) : encodeSevCert(cert);
  return raw.subarray(0, SEV_CERT_BODY_SIZE);
}

const ecKeyCache = new Map<string, KeyObject>();

/** DER SubjectPublicKeyInfo prefix for an uncompressed P-384 point (id-ecPublicKey, secp384r1, BIT STRING of 97 bytes). */
const P384_SPKI_PREFIX = Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex');

/**
 * P-384 public KeyObject from little-endian coordinates (the first 48 bytes of
 * each field are used). Imported as SPKI DER rather than JWK: OpenSSL still
 * refuses a point off the curve, but skips the full key check a JWK import runs
 * (about half the cost). Throws whatever createPublicKey throws for a bad point.
 */
export function p384PublicKey(qxLe: Uint8Array, qyLe: Uint8Array): KeyObject {
  const der = Buffer.alloc(P384_SPKI_PREFIX.length + 1 + 2 * P384_SIZE);
  P384_SPKI_PREFIX.copy(der);
  let o = P384_SPKI_PREFIX.length;
  der[o++] = 4;
  for (let i = P384_SIZE - 1; i >= 0; i--) der[o++] = qxLe[i]!;
  for (let i = P384_SIZE - 1; i >= 0; i--) der[o++] = qyLe[i]!;
  return crypto.createPublicKey({ key: der, format: 'der', type: 'spki' });
}

/** Node KeyObject for the certificate's public key (P-384 from the LE coordinates, or RSA). */
export function sevCertPublicKey(c: SevCert | Uint8Array, name?: string): KeyObject {
  const cert = asSevCert(c, name === undefined ? {} : { name });
  const label = name ?? usageName(cert.usage);
  const k = cert.pubkey;
  try {
    if (k.kind === 'ec') {
      // Importing a point validates it on the curve, which costs as much as a
      // signature check; chains reuse the same few keys, so keep recent ones.
      const id = `${k.qx.toString('hex', 0, P384_SIZE)}${k.qy.toString('hex', 0, P384_SIZE)}`;
      const hit = ecKeyCache.get(id);
      if (hit) return hit;
      const key = p384PublicKey(k.qx, k.qy);
      if (ecKeyCache.size >= 64) ecKeyCache.delete(ecKeyCache.keys().next().value!);
      ecKeyCache.set(id, key);
      return key;
    }
    const n = k.modulusSize / 8;
    return crypto.createPublicKey({
      key: { kty: 'RSA', n: b64url(stripLeadingZeros(reversed(k.modulus.subarray(0, n)))), e: b64url(stripLeadingZeros(reversed(k.pubexp.subarray(0, n)))) },
      format: 'jwk',
    });
  } catch (e) {
    throw new CertificateError('ERR_CERT_KEY', `${label}: public key is not a valid ${k.kind === 'ec' ? 'P-384 point' : 'RSA key'}`, {
      cert: label,
      field: 'pubkey',
      cause: e,
    });
  }
}

/** Default key algorithm for a usage, as the firmware and sevctl make them. */
export function defaultAlgoFor(usage: number): number {
  return usage === Usage.PDH ? Algo.ECDH_SHA256 : Algo.ECDSA_SHA256;
}

/** Options of createSevCert: the usage, the public key (P-384 EC or RSA-2048/4096) and the algorithm. */
export interface CreateSevCertOptions {
  usage: number;
  /** pubkey_algo; defaults to ECDH_SHA256 for PDH, ECDSA_SHA256 otherwise */
  algo?: number;
  publicKey: KeyObject;
  apiMajor?: number;
  apiMinor?: number;
}

/** A new unsigned SEV certificate (both slots empty: usage INV, algo NONE). */
export function createSevCert(opts: CreateSevCertOptions): SevCert {
  const algo = opts.algo ?? defaultAlgoFor(opts.usage);
  const info = algoInfo(algo);
  const name = usageName(opts.usage);
  if (!SEV_CERT_USAGES.includes(opts.usage))
    throw new CertificateError('ERR_CERT_ENCODE', `${name}: usage is not a SEV certificate usage`, { cert: name, field: 'usage' });
  if (!info) throw new CertificateError('ERR_CERT_ENCODE', `${name}: unknown algorithm ${algoName(algo)}`, { cert: name, field: 'algo' });
  const jwk = opts.publicKey.export({ format: 'jwk' });
  let pubkey: SevEcPubKey | SevRsaPubKey;
  if (info.type === 'ec') {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-384')
      throw new CertificateError('ERR_CERT_ENCODE', `${name}: ${algoName(algo)} needs a P-384 public key`, { cert: name, field: 'pubkey' });
    pubkey = {
      kind: 'ec',
      curve: Curve.P384,
      qx: beToLeFixed(Buffer.from(jwk.x!, 'base64url'), EC_COORD_SIZE),
      qy: beToLeFixed(Buffer.from(jwk.y!, 'base64url'), EC_COORD_SIZE),
      padding: Buffer.alloc(SEV_PUBKEY_SIZE - 4 - 2 * EC_COORD_SIZE),
    };
  } else {
    if (jwk.kty !== 'RSA') throw new CertificateError('ERR_CERT_ENCODE', `${name}: ${algoName(algo)} needs an RSA public key`, { cert: name, field: 'pubkey' });
    const nBe = Buffer.from(jwk.n!, 'base64url');
    const bits = stripLeadingZeros(nBe).length * 8;
    if (bits !== 2048 && bits !== 4096)
      throw new CertificateError('ERR_CERT_ENCODE', `${name}: RSA key must be 2048 or 4096 bits`, { cert: name, field: 'pubkey' });
    pubkey = { kind: 'rsa', modulusSize: bits, pubexp: beToLeFixed(Buffer.from(jwk.e!, 'base64url'), 512), modulus: beToLeFixed(nBe, 512) };
  }
  return {
    version: 1,
    apiMajor: opts.apiMajor ?? 0,
    apiMinor: opts.apiMinor ?? 0,
    reserved: 0,
    usage: opts.usage,
    algo,
    pubkey,
    sigs: [emptySignature(), emptySignature()],
  };
}

/** Options of signSevCert: the signer's usage, algorithm and private key. */
export interface SignSevCertOptions {
  /** Usage of the signing key (OCA, CEK, PEK, or ASK for the CEK). */
  signerUsage: number;
  /** ECDSA_SHA256/384 for EC signers, RSA_SHA256/384 for an ASK. */
  signerAlgo: number;
  privateKey: KeyObject;
}

/** Which signature slot signSevCert writes: 1, 2, or the first empty one. */
export type SlotChoice = 1 | 2 | 'first-empty';

/**
 * Sign a SEV certificate's body into a signature slot and return the new
 * certificate. EC signers produce ECDSA P-384 with r,s little-endian; RSA
 * signers (the ASK signing a CEK) produce RSA-PSS with salt = digest length,
 * the signature stored little-endian across the 512-byte field.
 */
export function signSevCert(c: SevCert | Uint8Array, slot: SlotChoice, opts: SignSevCertOptions): SevCert {
  const cert = structuredCloneCert(asSevCert(c));
  const name = usageName(cert.usage);
  let idx: number;
  if (slot === 'first-empty') {
    idx = cert.sigs.findIndex(isEmptySlot);
    if (idx < 0) throw new CertificateError('ERR_CERT_SIGN', `${name}: both signature slots are already used`, { cert: name, field: 'sig' });
  } else if (slot === 1 || slot === 2) {
    idx = slot - 1;
  } else {
    throw new CertificateError('ERR_CERT_SIGN', `${name}: signature slot must be 1, 2 or 'first-empty'`, { cert: name, field: 'sig' });
  }
  const info = algoInfo(opts.signerAlgo);
  if (!info || info.ecdh || !SIGNER_USAGES.includes(opts.signerUsage)) {
    throw new CertificateError('ERR_CERT_SIGN', `${name}: cannot sign with usage ${usageName(opts.signerUsage)} / algorithm ${algoName(opts.signerAlgo)}`, {
      cert: name,
      field: 'sig',
    });
  }
  const keyType = opts.privateKey.asymmetricKeyType;
  const body = sevCertBody(cert);
  const value = Buffer.alloc(512);
  if (info.type === 'ec') {
    if (keyType !== 'ec' || opts.privateKey.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
      throw new CertificateError('ERR_CERT_SIGN', `${name}: ${algoName(opts.signerAlgo)} needs a P-384 private key`, { cert: name, field: 'sig' });
    }
    const sig = crypto.sign(info.hash, body, { key: opts.privateKey, dsaEncoding: 'ieee-p1363' });
    beToLeFixed(sig.subarray(0, P384_SIZE), EC_COORD_SIZE).copy(value, 0);
    beToLeFixed(sig.subarray(P384_SIZE), EC_COORD_SIZE).copy(value, EC_COORD_SIZE);
  } else {
    if (keyType !== 'rsa')
      throw new CertificateError('ERR_CERT_SIGN', `${name}: ${algoName(opts.signerAlgo)} needs an RSA private key`, { cert: name, field: 'sig' });
    const sig = crypto.sign(info.hash, body, {
      key: opts.privateKey,
      padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
      saltLength: info.hash === 'sha256' ? 32 : 48,
    });
    beToLeFixed(sig, 512).copy(value, 0);
  }
  cert.sigs[idx] = { usage: opts.signerUsage, algo: opts.signerAlgo, value };
  return cert;
}

/** A deep copy of a SevCert (fresh Buffers), so signing never mutates the caller's certificate. */
export function structuredCloneCert(c: SevCert): SevCert {
  const k = c.pubkey;
  return {
    ...c,
    pubkey:
      k.kind === 'ec'
        ? { ...k, qx: Buffer.from(k.qx), qy: Buffer.from(k.qy), padding: Buffer.from(k.padding) }
        : { ...k, pubexp: Buffer.from(k.pubexp), modulus: Buffer.from(k.modulus) },
    sigs: [
      { ...c.sigs[0], value: Buffer.from(c.sigs[0].value) },
      { ...c.sigs[1], value: Buffer.from(c.sigs[1].value) },
    ],
  };
}

/** Hash of the signed body with the certificate's own algorithm hash (lowercase hex). */
export function sevCertFingerprint(c: SevCert | Uint8Array): string {
  const cert = asSevCert(c);
  const hash = algoInfo(cert.algo)?.hash ?? 'sha256';
  return crypto.createHash(hash).update(sevCertBody(cert)).digest('hex');
}

/** sevctl's display string, e.g. `PDH EP384 D256 dbec0c…78a2`. */
export function sevCertDisplay(c: SevCert | Uint8Array): string {
  const cert = asSevCert(c);
  const info = algoInfo(cert.algo)!;
  const hbits = info.hash === 'sha256' ? 256 : 384;
  let desc: string;
  if (cert.pubkey.kind === 'ec') {
    const cbits = cert.pubkey.curve === Curve.P256 ? 256 : 384;
    desc = `EP${cbits} ${cert.usage === Usage.PDH ? 'D' : 'E'}${hbits}`;
  } else {
    desc = `R${cert.pubkey.modulusSize} R${hbits}`;
  }
  return `${usageName(cert.usage)} ${desc} ${sevCertFingerprint(cert)}`;
}
