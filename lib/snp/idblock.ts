/**
 * SNP ID block (96 bytes) and ID authentication structure (4096 bytes), what QEMU's `sev-snp-guest`
 * takes as `id-block=` / `id-auth=` (base64) and the firmware checks at SNP_LAUNCH_FINISH
 * (shared/specs/snp-launch.md §2): the ID key (ECDSA P-384) signs the ID block, the optional author key signs
 * the ID key; the report then carries SHA-384 of each public key in AMD's 1028-byte format.
 *
 * AMD formats: integers little-endian; a signature is R and S as 72-byte LE integers then 368 zero bytes;
 * a public key is u32 curve (2 = P-384), QX and QY as 72-byte LE integers, then 880 zero bytes.
 */
import crypto from 'node:crypto';
import { LaunchError, LaunchInputError } from '../launch/errors.js';

/** SNP_LAUNCH_FINISH's ID block (struct sev_id_block): 96 bytes, QEMU's `id-block=` (base64). */
export const ID_BLOCK_SIZE = 96;
/** The ID authentication information structure (struct sev_id_auth): 4096 bytes, QEMU's `id-auth=` (base64). */
export const ID_AUTH_SIZE = 4096;
export const SNP_SIGNATURE_SIZE = 512;
export const SNP_PUBKEY_SIZE = 1028;
/** ID_KEY_ALGO / AUTH_KEY_ALGO: ECDSA P-384 with SHA-384. */
export const SNP_ALGO_ECDSA_P384_SHA384 = 1;
/** The curve field of AMD's public-key format for P-384. */
export const SNP_CURVE_P384 = 2;
/** Default policy of both upstream tools (SMT allowed, reserved bit 17). */
export const DEFAULT_SNP_POLICY = 0x30000n;
/** The only ID block version. */
export const ID_BLOCK_VERSION = 1;

const COORD = 72;
const P384_BYTES = 48;
const OFF = { idKeyAlgo: 0x000, authKeyAlgo: 0x004, idBlockSig: 0x040, idKey: 0x240, idKeySig: 0x680, authorKey: 0x880 } as const;

/** An ID block or ID auth that is malformed or whose signature does not verify. */
export class IdBlockError extends LaunchError {
  constructor(message: string, code = 'ERR_SNP_ID_BLOCK') {
    super(code, message);
  }
}

/** The fields of an ID block. */
export interface IdBlockFields {
  /** The expected launch digest (48 bytes). */
  ld: Uint8Array;
  /** Owner-chosen, not interpreted (16 bytes; default zero). */
  familyId?: Uint8Array;
  /** Owner-chosen, not interpreted (16 bytes; default zero). */
  imageId?: Uint8Array;
  /** u32, default 0. */
  guestSvn?: number;
  /** u64 guest policy; must equal the launch policy. Default 0x30000. */
  policy?: bigint | number;
}

function fixed(b: Uint8Array | undefined, n: number, what: string): Buffer {
  if (b === undefined) return Buffer.alloc(n);
  if (b.length !== n) throw new LaunchInputError(`${what} must be ${n} bytes, got ${b.length}`, 'ERR_SNP_ID_BLOCK_INPUT', 'INVALID_LEN');
  return Buffer.from(b);
}

/** The 96-byte ID block. Throws LaunchInputError on a wrong field size or range. */
export function buildIdBlock(f: IdBlockFields): Buffer {
  const b = Buffer.alloc(ID_BLOCK_SIZE);
  fixed(f.ld, 48, 'launch digest').copy(b, 0x00);
  fixed(f.familyId, 16, 'family ID').copy(b, 0x30);
  fixed(f.imageId, 16, 'image ID').copy(b, 0x40);
  b.writeUInt32LE(ID_BLOCK_VERSION, 0x50);
  const svn = f.guestSvn ?? 0;
  if (!Number.isInteger(svn) || svn < 0 || svn > 0xffffffff) throw new LaunchInputError(`guest SVN must be a u32, got ${svn}`, 'ERR_SNP_ID_BLOCK_INPUT');
  b.writeUInt32LE(svn, 0x54);
  const policy = BigInt(f.policy ?? DEFAULT_SNP_POLICY);
  if (policy < 0n || policy >> 64n !== 0n) throw new LaunchInputError(`policy 0x${policy.toString(16)} does not fit 64 bits`, 'ERR_SNP_ID_BLOCK_INPUT');
  b.writeBigUInt64LE(policy, 0x58);
  return b;
}

/** The fields of a 96-byte ID block (version included). */
export function parseIdBlock(b: Uint8Array): { ld: Buffer; familyId: Buffer; imageId: Buffer; version: number; guestSvn: number; policy: bigint } {
  if (b.length !== ID_BLOCK_SIZE) throw new IdBlockError(`ID block has ${b.length} bytes, expected ${ID_BLOCK_SIZE}`, 'ERR_SNP_ID_BLOCK_SIZE');
  const x = Buffer.from(b);
  return {
    ld: x.subarray(0, 48),
    familyId: x.subarray(0x30, 0x40),
    imageId: x.subarray(0x40, 0x50),
    version: x.readUInt32LE(0x50),
    guestSvn: x.readUInt32LE(0x54),
    policy: x.readBigUInt64LE(0x58),
  };
}

/**
 * Load an ECDSA P-384 private key (PEM: PKCS#8, SEC1 or encrypted PKCS#8 with `passphrase`; or DER PKCS#8/SEC1).
 * Throws LaunchInputError naming `name` if it is not a P-384 EC private key or cannot be decrypted.
 */
export function loadSnpSigningKey(data: string | Uint8Array, name = 'key', passphrase?: string): crypto.KeyObject {
  let key: crypto.KeyObject | undefined;
  const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
  const pem = buf.includes('-----BEGIN');
  const attempts: crypto.PrivateKeyInput[] = pem
    ? [{ key: buf, format: 'pem', ...(passphrase !== undefined ? { passphrase } : {}) }]
    : [
        { key: buf, format: 'der', type: 'pkcs8' },
        { key: buf, format: 'der', type: 'sec1' },
      ];
  const encrypted = pem && (buf.includes('ENCRYPTED PRIVATE KEY') || buf.includes('Proc-Type: 4,ENCRYPTED'));
  for (const a of attempts) {
    try {
      key = crypto.createPrivateKey(a);
      break;
    } catch {
      // the next form, or the error below
    }
  }
  const why = encrypted
    ? passphrase === undefined
      ? 'encrypted, and no passphrase was given'
      : 'cannot be decrypted with the passphrase given'
    : 'not a private key in PEM or DER';
  if (!key) throw new LaunchInputError(`${name}: ${why}`, 'ERR_SNP_KEY');
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new LaunchInputError(
      `${name}: an SNP ID or author key must be ECDSA P-384, this is ${key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : (key.asymmetricKeyType ?? 'unknown')}`,
      'ERR_SNP_KEY',
    );
  }
  return key;
}

const le72 = (be: Buffer): Buffer => {
  const out = Buffer.alloc(COORD);
  for (let i = 0; i < be.length; i++) out[i] = be[be.length - 1 - i]!;
  return out;
};
const be48 = (le: Uint8Array): Buffer => {
  const out = Buffer.alloc(P384_BYTES);
  for (let i = 0; i < P384_BYTES; i++) out[i] = le[P384_BYTES - 1 - i]!;
  return out;
};

/** AMD's 1028-byte public-key format of a P-384 key (private or public KeyObject). */
export function encodeSnpPublicKey(key: crypto.KeyObject): Buffer {
  const pub = key.type === 'private' ? crypto.createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  if (jwk.crv !== 'P-384' || !jwk.x || !jwk.y) throw new LaunchInputError('SNP public keys must be P-384', 'ERR_SNP_KEY');
  const out = Buffer.alloc(SNP_PUBKEY_SIZE);
  out.writeUInt32LE(SNP_CURVE_P384, 0);
  le72(Buffer.from(jwk.x, 'base64url')).copy(out, 4);
  le72(Buffer.from(jwk.y, 'base64url')).copy(out, 4 + COORD);
  return out;
}

/** A public KeyObject from AMD's 1028-byte format; IdBlockError when the curve is not P-384 or the point is invalid. */
export function decodeSnpPublicKey(b: Uint8Array): crypto.KeyObject {
  if (b.length !== SNP_PUBKEY_SIZE) throw new IdBlockError(`SNP public key has ${b.length} bytes, expected ${SNP_PUBKEY_SIZE}`, 'ERR_SNP_PUBKEY');
  const x = Buffer.from(b);
  if (x.readUInt32LE(0) !== SNP_CURVE_P384)
    throw new IdBlockError(`SNP public key curve ${x.readUInt32LE(0)}, expected ${SNP_CURVE_P384} (P-384)`, 'ERR_SNP_PUBKEY');
  const hi = (off: number) => x.subarray(off + P384_BYTES, off + COORD).some((v) => v !== 0);
  if (hi(4) || hi(4 + COORD)) throw new IdBlockError('SNP public key coordinate exceeds 384 bits', 'ERR_SNP_PUBKEY');
  try {
    return crypto.createPublicKey({
      key: { kty: 'EC', crv: 'P-384', x: be48(x.subarray(4)).toString('base64url'), y: be48(x.subarray(4 + COORD)).toString('base64url') },
      format: 'jwk',
    });
  } catch {
    throw new IdBlockError('SNP public key is not a point on P-384', 'ERR_SNP_PUBKEY');
  }
}

/** SHA-384 of the key in AMD's format: the report's ID_KEY_DIGEST / AUTHOR_KEY_DIGEST (48 bytes). */
export function snpKeyDigest(key: crypto.KeyObject | Uint8Array): Buffer {
  const enc = key instanceof Uint8Array ? key : encodeSnpPublicKey(key);
  return crypto.createHash('sha384').update(enc).digest();
}

/** ECDSA P-384/SHA-384 signature over `msg`, in AMD's 512-byte format. */
export function signSnp(key: crypto.KeyObject, msg: Uint8Array): Buffer {
  const rs = crypto.sign('sha384', msg, { key, dsaEncoding: 'ieee-p1363' });
  const out = Buffer.alloc(SNP_SIGNATURE_SIZE);
  le72(rs.subarray(0, P384_BYTES)).copy(out, 0);
  le72(rs.subarray(P384_BYTES)).copy(out, COORD);
  return out;
}

/** True if the 512-byte AMD-format signature verifies over `msg` under `key` (a KeyObject or the 1028-byte format). */
export function verifySnp(key: crypto.KeyObject | Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== SNP_SIGNATURE_SIZE) return false;
  const s = Buffer.from(sig);
  // R and S are 384-bit: anything in the high bytes of their 72-byte fields is not a valid signature.
  if (s.subarray(P384_BYTES, COORD).some((v) => v !== 0) || s.subarray(COORD + P384_BYTES, 2 * COORD).some((v) => v !== 0)) return false;
  const pub = key instanceof Uint8Array ? decodeSnpPublicKey(key) : key;
  const rs = Buffer.concat([be48(s.subarray(0)), be48(s.subarray(COORD))]);
  return crypto.verify('sha384', msg, { key: pub, dsaEncoding: 'ieee-p1363' }, rs);
}

/** The parts of an ID auth structure. */
export interface IdAuthParts {
  /** ID key's signature over the ID block (512 bytes, AMD format). */
  idBlockSig: Uint8Array;
  /** ID public key, 1028-byte AMD format. */
  idKey: Uint8Array;
  /** Author key's signature over idKey (512 bytes); absent without an author key. */
  idKeySig?: Uint8Array;
  /** Author public key, 1028 bytes; absent without an author key. */
  authorKey?: Uint8Array;
}

/**
 * The 4096-byte ID auth structure from its parts. Both algorithm fields are 1 whether or not an author key is
 * given (the firmware reads the author fields only with author-key-enabled=on); absent author fields are zero.
 */
export function assembleIdAuth(p: IdAuthParts): Buffer {
  if ((p.idKeySig === undefined) !== (p.authorKey === undefined))
    throw new LaunchInputError('an author key needs its signature over the ID key, and the other way round', 'ERR_SNP_ID_BLOCK_INPUT');
  const b = Buffer.alloc(ID_AUTH_SIZE);
  b.writeUInt32LE(SNP_ALGO_ECDSA_P384_SHA384, OFF.idKeyAlgo);
  b.writeUInt32LE(SNP_ALGO_ECDSA_P384_SHA384, OFF.authKeyAlgo);
  fixed(p.idBlockSig, SNP_SIGNATURE_SIZE, 'ID block signature').copy(b, OFF.idBlockSig);
  fixed(p.idKey, SNP_PUBKEY_SIZE, 'ID key').copy(b, OFF.idKey);
  if (p.idKeySig && p.authorKey) {
    fixed(p.idKeySig, SNP_SIGNATURE_SIZE, 'ID key signature').copy(b, OFF.idKeySig);
    fixed(p.authorKey, SNP_PUBKEY_SIZE, 'author key').copy(b, OFF.authorKey);
  }
  return b;
}

/** The fields of a 4096-byte ID auth structure (views into a copy). */
export function parseIdAuth(b: Uint8Array): { idKeyAlgo: number; authKeyAlgo: number; idBlockSig: Buffer; idKey: Buffer; idKeySig: Buffer; authorKey: Buffer } {
  if (b.length !== ID_AUTH_SIZE) throw new IdBlockError(`ID auth has ${b.length} bytes, expected ${ID_AUTH_SIZE}`, 'ERR_SNP_ID_AUTH_SIZE');
  const x = Buffer.from(b);
  return {
    idKeyAlgo: x.readUInt32LE(OFF.idKeyAlgo),
    authKeyAlgo: x.readUInt32LE(OFF.authKeyAlgo),
    idBlockSig: x.subarray(OFF.idBlockSig, OFF.idBlockSig + SNP_SIGNATURE_SIZE),
    idKey: x.subarray(OFF.idKey, OFF.idKey + SNP_PUBKEY_SIZE),
    idKeySig: x.subarray(OFF.idKeySig, OFF.idKeySig + SNP_SIGNATURE_SIZE),
    authorKey: x.subarray(OFF.authorKey, OFF.authorKey + SNP_PUBKEY_SIZE),
  };
}

/** What createIdBlock makes. */
export interface SignedIdBlock {
  /** 96 bytes: QEMU `id-block=` (base64). */
  idBlock: Buffer;
  /** 4096 bytes: QEMU `id-auth=` (base64). */
  idAuth: Buffer;
  /** The report's ID_KEY_DIGEST. */
  idKeyDigest: Buffer;
  /** The report's AUTHOR_KEY_DIGEST with author-key-enabled=on; null without an author key (the report then has zeros). */
  authorKeyDigest: Buffer | null;
}

/** Build and sign an ID block: the ID key signs the block, the author key (optional) signs the ID key. */
export function createIdBlock(f: IdBlockFields, idKey: crypto.KeyObject, authorKey?: crypto.KeyObject): SignedIdBlock {
  const idBlock = buildIdBlock(f);
  const idPub = encodeSnpPublicKey(idKey);
  const author = authorKey ? { authorKey: encodeSnpPublicKey(authorKey), idKeySig: signSnp(authorKey, idPub) } : {};
  const idAuth = assembleIdAuth({ idBlockSig: signSnp(idKey, idBlock), idKey: idPub, ...author });
  return { idBlock, idAuth, idKeyDigest: snpKeyDigest(idPub), authorKeyDigest: author.authorKey ? snpKeyDigest(author.authorKey) : null };
}

/**
 * The checks the firmware makes at SNP_LAUNCH_FINISH on an ID block and its auth structure (snp-launch.md
 * §2.3, steps 1–2; the caller compares LD and policy): algorithms, the ID key's signature over the block and,
 * with `authorKeyEnabled`, the author's signature over the ID key. Returns the two key digests for the report;
 * throws IdBlockError (code ERR_SNP_ID_SIGNATURE for a signature that does not verify).
 */
export function verifyIdAuth(
  idBlock: Uint8Array,
  idAuth: Uint8Array,
  opts: { authorKeyEnabled?: boolean } = {},
): { fields: ReturnType<typeof parseIdBlock>; idKeyDigest: Buffer; authorKeyDigest: Buffer | null } {
  const fields = parseIdBlock(idBlock);
  const a = parseIdAuth(idAuth);
  if (fields.version !== ID_BLOCK_VERSION) throw new IdBlockError(`ID block version ${fields.version}, expected ${ID_BLOCK_VERSION}`);
  if (a.idKeyAlgo !== SNP_ALGO_ECDSA_P384_SHA384)
    throw new IdBlockError(`ID key algorithm ${a.idKeyAlgo}, only 1 (ECDSA P-384/SHA-384) is known`, 'ERR_SNP_ID_ALGO');
  if (!verifySnp(a.idKey, idBlock, a.idBlockSig)) throw new IdBlockError('the ID block signature does not verify under the ID key', 'ERR_SNP_ID_SIGNATURE');
  let authorKeyDigest: Buffer | null = null;
  if (opts.authorKeyEnabled) {
    if (a.authKeyAlgo !== SNP_ALGO_ECDSA_P384_SHA384)
      throw new IdBlockError(`author key algorithm ${a.authKeyAlgo}, only 1 (ECDSA P-384/SHA-384) is known`, 'ERR_SNP_ID_ALGO');
    if (!verifySnp(a.authorKey, a.idKey, a.idKeySig))
      throw new IdBlockError('the ID key signature does not verify under the author key', 'ERR_SNP_ID_SIGNATURE');
    authorKeyDigest = snpKeyDigest(a.authorKey);
  }
  return { fields, idKeyDigest: snpKeyDigest(a.idKey), authorKeyDigest };
}
