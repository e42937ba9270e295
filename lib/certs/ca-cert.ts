/**
 * The AMD CA certificate (ARK, ASK): a 64-byte preamble then pubexp, modulus
 * and signature, each modulus_size/8 bytes little-endian (AMD SEV API spec
 * appendix "AMD Certificates"; virtee/sev src/certs/sev/ca/cert/v1.rs).
 */
import crypto, { type KeyObject } from 'node:crypto';
import { CA_PREAMBLE_SIZE, Usage, usageName, type CertHash } from './constants.js';
import { b64url, beToLeFixed, reversed, stripLeadingZeros } from './bytes.js';
import { CertificateError } from './errors.js';

/**
 * A decoded AMD CA certificate (ARK or ASK): 64-byte preamble, then pubexp, modulus and signature of
 * modulus_size/8 bytes each, little-endian.
 */
export interface CaCert {
  /** version (1) */
  version: number;
  /** key_id (16 bytes) */
  keyId: Buffer;
  /** certifying_id: key_id of the signer (16 bytes) */
  certifyingId: Buffer;
  /** key_usage: ARK 0x0000 or ASK 0x0013 */
  usage: number;
  /** reserved (16 bytes) */
  reserved: Buffer;
  /** pubexp_size in bits (equal to modulusSize) */
  pubexpSize: number;
  /** modulus_size in bits: 2048 or 4096 */
  modulusSize: number;
  /** pubexp: LE, modulusSize/8 bytes */
  pubexp: Buffer;
  /** modulus: LE, modulusSize/8 bytes */
  modulus: Buffer;
  /** signature: LE, modulusSize/8 bytes */
  signature: Buffer;
}

/** Options of decodeCaCert: a name for messages, a required key usage, trailing bytes allowed. */
export interface CaDecodeOptions {
  name?: string;
  usage?: number;
  /** Accept bytes after the certificate (chains); the decoded length is in `decodeCaCertAt`. */
  allowTrailing?: boolean;
}

/** Preamble of AMD's published Naples ARK, whose file lacked the signature (AMDESE/AMDSEV#17). */
const NAPLES_ARK_ID = Buffer.from('1bb987c359494606b174945601c9ea5b', 'hex');
/** The missing signature (LE, 256 bytes), as virtee/sev's tests/naples/ark.cert.sig. */
const NAPLES_ARK_SIG_B64 =
  'guWtjLis8Euw9PBBZfO5+HGvpNGGWt0R14OsYZi8EyPCaFlB/XZCKRdZI1NDHhF0yvZEleO3zAGq/arAZBUw199zG4mQLJbHeNGaZ5oP1IaRWZ2Xf0yx9CG5VOOuY7F40lXPUFR7kXDRUymVkRnAkqyKv+VKihfQwdQih6SwDt7RILxMK5QH0YUeD5NsH73L63t88dYYRm1v0xdztlYA379/9u3L+/7AIbvr3hqksHAQRaG0jbBW6XNqjnXPE3uNPnUAmq1ajSaH+cBpdFSATWc8SRvOfQnqjaOD61uYdxBiO10arncvDgRoiX9b8jbMNWpQA/ekniwWOf7WNUJ8VQ==';

function fail(name: string, field: string, msg: string): never {
  throw new CertificateError('ERR_CERT_DECODE', `${name}: ${msg}`, { cert: name, field });
}

function isNaplesArkPreamble(buf: Buffer): boolean {
  return (
    buf.readUInt32LE(0) === 1 &&
    buf.subarray(0x04, 0x14).equals(NAPLES_ARK_ID) &&
    buf.subarray(0x14, 0x24).equals(NAPLES_ARK_ID) &&
    buf.readUInt32LE(0x24) === Usage.ARK &&
    buf.subarray(0x28, 0x38).every((b) => b === 0) &&
    buf.readUInt32LE(0x38) === 2048 &&
    buf.readUInt32LE(0x3c) === 2048
  );
}

/** Decode one CA certificate at the start of `input`; returns it and how many bytes it used. */
export function decodeCaCertAt(input: Uint8Array, opts: CaDecodeOptions = {}): { cert: CaCert; length: number } {
  const name = opts.name ?? 'CA certificate';
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < CA_PREAMBLE_SIZE) fail(name, 'size', `size is ${buf.length} bytes, shorter than the 64-byte preamble`);
  const version = buf.readUInt32LE(0);
  if (version !== 1) fail(name, 'version', `version is ${version}, expected 1`);
  const usage = buf.readUInt32LE(0x24);
  if (usage !== Usage.ARK && usage !== Usage.ASK) fail(name, 'key_usage', `key_usage 0x${usage.toString(16)} is not ARK or ASK`);
  if (opts.usage !== undefined && usage !== opts.usage) fail(name, 'key_usage', `key_usage is ${usageName(usage)}, expected ${usageName(opts.usage)}`);
  const pubexpSize = buf.readUInt32LE(0x38);
  const modulusSize = buf.readUInt32LE(0x3c);
  if (modulusSize !== 2048 && modulusSize !== 4096) fail(name, 'modulus_size', `modulus_size ${modulusSize} is not 2048 or 4096`);
  if (pubexpSize !== modulusSize) fail(name, 'pubexp_size', `pubexp_size ${pubexpSize} differs from modulus_size ${modulusSize}`);
  const n = modulusSize / 8;
  const full = CA_PREAMBLE_SIZE + 3 * n;
  let signature: Buffer;
  let length = full;
  if (buf.length < full) {
    // Only AMD's truncated Naples ARK gets its known signature; any other short file is an error.
    if (buf.length === CA_PREAMBLE_SIZE + 2 * n && isNaplesArkPreamble(buf)) {
      signature = Buffer.from(NAPLES_ARK_SIG_B64, 'base64');
      length = buf.length;
    } else {
      fail(name, 'size', `size is ${buf.length} bytes, expected ${full} for a ${modulusSize}-bit ${usageName(usage)}`);
    }
  } else {
    if (!opts.allowTrailing && buf.length !== full)
      fail(name, 'size', `size is ${buf.length} bytes, expected ${full} for a ${modulusSize}-bit ${usageName(usage)}`);
    signature = Buffer.from(buf.subarray(CA_PREAMBLE_SIZE + 2 * n, full));
  }
  return {
    cert: {
      version,
      keyId: Buffer.from(buf.subarray(0x04, 0x14)),
      certifyingId: Buffer.from(buf.subarray(0x14, 0x24)),
      usage,
      reserved: Buffer.from(buf.subarray(0x28, 0x38)),
      pubexpSize,
      modulusSize,
      pubexp: Buffer.from(buf.subarray(CA_PREAMBLE_SIZE, CA_PREAMBLE_SIZE + n)),
      modulus: Buffer.from(buf.subarray(CA_PREAMBLE_SIZE + n, CA_PREAMBLE_SIZE + 2 * n)),
      signature,
    },
    length,
  };
}

/** Decodes and checks one AMD CA certificate; throws CertificateError (ERR_CERT_DECODE) naming the field. */
export function decodeCaCert(input: Uint8Array, opts: CaDecodeOptions = {}): CaCert {
  return decodeCaCertAt(input, opts).cert;
}

/** The encoded size in bytes of a CA certificate with this modulus size in bits (64 + 3 * bits/8). */
export function caCertSize(modulusSize: number): number {
  return CA_PREAMBLE_SIZE + 3 * (modulusSize / 8);
}

/**
 * Encodes a CaCert; throws CertificateError (ERR_CERT_ENCODE) on a modulus size other than 2048/4096 or a
 * wrongly sized field.
 */
export function encodeCaCert(cert: CaCert): Buffer {
  const n = cert.modulusSize / 8;
  const chk = (b: Buffer, len: number, what: string) => {
    if (b.length !== len)
      throw new CertificateError('ERR_CERT_ENCODE', `cannot encode ${usageName(cert.usage)}: ${what} is ${b.length} bytes, expected ${len}`, {
        cert: usageName(cert.usage),
        field: what,
      });
  };
  if (cert.modulusSize !== 2048 && cert.modulusSize !== 4096) {
    throw new CertificateError('ERR_CERT_ENCODE', `cannot encode ${usageName(cert.usage)}: modulus_size ${cert.modulusSize} is not 2048 or 4096`, {
      field: 'modulus_size',
    });
  }
  chk(cert.keyId, 16, 'key_id');
  chk(cert.certifyingId, 16, 'certifying_id');
  chk(cert.reserved, 16, 'reserved');
  chk(cert.pubexp, n, 'pubexp');
  chk(cert.modulus, n, 'modulus');
  chk(cert.signature, n, 'signature');
  const out = Buffer.alloc(CA_PREAMBLE_SIZE + 3 * n);
  out.writeUInt32LE(cert.version, 0);
  cert.keyId.copy(out, 0x04);
  cert.certifyingId.copy(out, 0x14);
  out.writeUInt32LE(cert.usage, 0x24);
  cert.reserved.copy(out, 0x28);
  out.writeUInt32LE(cert.pubexpSize, 0x38);
  out.writeUInt32LE(cert.modulusSize, 0x3c);
  cert.pubexp.copy(out, CA_PREAMBLE_SIZE);
  cert.modulus.copy(out, CA_PREAMBLE_SIZE + n);
  cert.signature.copy(out, CA_PREAMBLE_SIZE + 2 * n);
  return out;
}

/** Decoded cert or raw bytes; a required usage is checked on both forms (as in asSevCert). */
export function asCaCert(c: CaCert | Uint8Array, opts: CaDecodeOptions = {}): CaCert {
  if (c instanceof Uint8Array) return decodeCaCert(c, opts);
  if (opts.usage !== undefined && c.usage !== opts.usage) {
    fail(opts.name ?? 'CA certificate', 'key_usage', `key_usage is ${usageName(c.usage)}, expected ${usageName(opts.usage)}`);
  }
  return c;
}

/** Signed bytes: preamble ‖ pubexp ‖ modulus. */
export function caCertBody(c: CaCert | Uint8Array): Buffer {
  const cert = asCaCert(c);
  const raw = encodeCaCert(cert);
  return raw.subarray(0, CA_PREAMBLE_SIZE + 2 * (cert.modulusSize / 8));
}

/** PSS parameters AMD uses, chosen by key size: 2048 → SHA-256/salt 32, 4096 → SHA-384/salt 48. */
export function caHashFor(modulusSize: number): { hash: CertHash; saltLength: number } {
  return modulusSize === 2048 ? { hash: 'sha256', saltLength: 32 } : { hash: 'sha384', saltLength: 48 };
}

/** The RSA public key of a CA certificate; throws CertificateError (ERR_CERT_KEY) when it is not a valid RSA key. */
export function caCertPublicKey(c: CaCert | Uint8Array, name?: string): KeyObject {
  const cert = asCaCert(c);
  const label = name ?? usageName(cert.usage);
  try {
    return crypto.createPublicKey({
      key: { kty: 'RSA', n: b64url(stripLeadingZeros(reversed(cert.modulus))), e: b64url(stripLeadingZeros(reversed(cert.pubexp))) },
      format: 'jwk',
    });
  } catch (e) {
    throw new CertificateError('ERR_CERT_KEY', `${label}: public key is not a valid RSA key`, { cert: label, field: 'modulus', cause: e });
  }
}

/** Options of createCaCert: ARK or ASK usage, the RSA public key and the 16-byte key ids. */
export interface CreateCaCertOptions {
  usage: number;
  publicKey: KeyObject;
  /** 16 bytes; random if omitted */
  keyId?: Buffer;
  /** 16 bytes; the signer's key_id (defaults to keyId, i.e. self-certified) */
  certifyingId?: Buffer;
}

/** A new CA certificate with a zero signature; sign it with signCaCert. */
export function createCaCert(opts: CreateCaCertOptions): CaCert {
  const name = usageName(opts.usage);
  if (opts.usage !== Usage.ARK && opts.usage !== Usage.ASK)
    throw new CertificateError('ERR_CERT_ENCODE', `${name}: CA usage must be ARK or ASK`, { cert: name, field: 'key_usage' });
  const jwk = opts.publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'RSA') throw new CertificateError('ERR_CERT_ENCODE', `${name}: CA key must be RSA`, { cert: name, field: 'pubkey' });
  const nBe = stripLeadingZeros(Buffer.from(jwk.n!, 'base64url'));
  const bits = nBe.length * 8;
  if (bits !== 2048 && bits !== 4096)
    throw new CertificateError('ERR_CERT_ENCODE', `${name}: RSA key must be 2048 or 4096 bits`, { cert: name, field: 'pubkey' });
  const keyId = opts.keyId ?? crypto.randomBytes(16);
  return {
    version: 1,
    keyId: Buffer.from(keyId),
    certifyingId: Buffer.from(opts.certifyingId ?? keyId),
    usage: opts.usage,
    reserved: Buffer.alloc(16),
    pubexpSize: bits,
    modulusSize: bits,
    pubexp: beToLeFixed(Buffer.from(jwk.e!, 'base64url'), bits / 8),
    modulus: beToLeFixed(nBe, bits / 8),
    signature: Buffer.alloc(bits / 8),
  };
}

/** Options of signCaCert: the signer's RSA private key and key id. */
export interface SignCaCertOptions {
  privateKey: KeyObject;
  /** key_id of the signer, written into certifying_id (kept as-is when omitted). */
  signerKeyId?: Buffer;
}

/** RSA-PSS-sign a CA certificate as AMD does (hash/salt by the certificate's size). */
export function signCaCert(c: CaCert | Uint8Array, opts: SignCaCertOptions): CaCert {
  const src = asCaCert(c);
  const cert: CaCert = { ...src, certifyingId: Buffer.from(opts.signerKeyId ?? src.certifyingId), signature: Buffer.alloc(src.modulusSize / 8) };
  if (opts.privateKey.asymmetricKeyType !== 'rsa')
    throw new CertificateError('ERR_CERT_SIGN', `${usageName(cert.usage)}: CA signatures need an RSA private key`, {
      cert: usageName(cert.usage),
      field: 'signature',
    });
  const { hash, saltLength } = caHashFor(cert.modulusSize);
  const sig = crypto.sign(hash, caCertBody(cert), { key: opts.privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength });
  if (sig.length !== cert.modulusSize / 8)
    throw new CertificateError('ERR_CERT_SIGN', `${usageName(cert.usage)}: signer key size differs from the certificate's ${cert.modulusSize} bits`, {
      cert: usageName(cert.usage),
      field: 'signature',
    });
  cert.signature = beToLeFixed(sig, cert.modulusSize / 8);
  return cert;
}

/** Hex digest of the certificate's signed body (SHA-256 for 2048-bit keys, SHA-384 for 4096), as sevctl shows it. */
export function caCertFingerprint(c: CaCert | Uint8Array): string {
  const cert = asCaCert(c);
  return crypto.createHash(caHashFor(cert.modulusSize).hash).update(caCertBody(cert)).digest('hex');
}

/** sevctl's display string, e.g. `ARK R4096 R384 3d2c11…03ed`. */
export function caCertDisplay(c: CaCert | Uint8Array): string {
  const cert = asCaCert(c);
  const hbits = cert.modulusSize === 2048 ? 256 : 384;
  return `${usageName(cert.usage)} R${cert.modulusSize} R${hbits} ${caCertFingerprint(cert)}`;
}
