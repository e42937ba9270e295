/**
 * Launch sessions (SEV API LAUNCH_START; sevctl `session`): the guest owner
 * makes an ephemeral GODH P-384 key, agrees a secret with the platform's PDH,
 * and wraps fresh TEK/TIK for the firmware. openSession is the firmware's
 * inverse, used by the simulator with the platform's PDH private key.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  asSevCert,
  emptySignature,
  encodeSevCert,
  sevCertPublicKey,
  Usage,
  Algo,
  Curve,
  EC_COORD_SIZE,
  SEV_CERT_SIZE,
  SEV_PUBKEY_SIZE,
  type SevCert,
} from '../certs/index.js';
import { decodeBase64, expectLength, wipe } from './bytes.js';
import { SessionError, LaunchInputError } from './errors.js';
import { Policy, type PolicyLike } from './policy.js';
import { unwrapSession, wrapSession, SESSION_SIZE } from './session-crypto.js';

export { SESSION_SIZE } from './session-crypto.js';
/** Size of the guest owner's Diffie-Hellman certificate (a SEV certificate, 0x824 bytes). */
export const GODH_SIZE = SEV_CERT_SIZE;

/** P-384 group order: a private scalar must be in [1, n-1]. */
const P384_N = BigInt('0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973');

/** A source of n random bytes (crypto.randomBytes unless a test fixes it). */
export type Rng = (n: number) => Buffer;

/**
 * Options of createSession: the randomness, fixed keys for known-answer tests, and which policy encoding the
 * policy MAC covers.
 */
export interface CreateSessionOptions {
  /** Randomness for TEK, TIK, nonce, wrap IV and the GODH scalar (default: crypto.randomBytes). */
  rng?: Rng;
  /** Fixed values (tests, KATs); each overrides the rng for that item. */
  tek?: Uint8Array;
  tik?: Uint8Array;
  nonce?: Uint8Array;
  wrapIv?: Uint8Array;
  /** GODH private scalar, 48 bytes big-endian. */
  godhPrivateKey?: Uint8Array;
  /**
   * Bytes under the policy MAC. 'firmware' (default) = u32le(policy), what the
   * firmware checks. 'sevctl' reproduces sevctl 0.6's truncated encoding (differs above 0x3F).
   */
  policyEncoding?: 'firmware' | 'sevctl';
}

/** The guest owner's launch session: the GODH certificate and session blob for QEMU, and the TEK/TIK to keep secret. */
export interface LaunchSession {
  /** The GODH certificate (0x824 bytes): QEMU's dh-cert-file, base64. */
  godh: Buffer;
  /** The 128-byte session blob: QEMU's session-file, base64. */
  session: Buffer;
  /** Transport encryption key: keep it secret, wipe it after building the secret. */
  tek: Buffer;
  /** Transport integrity key: keep it secret; needed to verify the measurement. */
  tik: Buffer;
  policy: Policy;
  /** The file contents sevctl writes (standard base64, no trailing newline). */
  godhB64: string;
  sessionB64: string;
}

/** A PDH (or GODH) certificate must hold an EC key whose coordinates fit 48 bytes. */
function checkEcCoords(cert: SevCert): void {
  const k = cert.pubkey;
  if (k.kind !== 'ec') throw new SessionError('ERR_SESSION_CERT', 'certificate does not hold an EC key', 'INVALID_CERTIFICATE');
  if (!k.qx.subarray(48).every((x) => x === 0) || !k.qy.subarray(48).every((x) => x === 0)) {
    throw new SessionError('ERR_SESSION_CERT', 'PDH: EC coordinates exceed 48 bytes', 'INVALID_CERTIFICATE');
  }
}

/** The PDH (or GODH) from bytes or a decoded cert; either form must carry usage PDH. */
function decodeKeyCert(cert: Uint8Array | SevCert, name: string, allowTrailing: boolean): SevCert {
  try {
    return asSevCert(cert, { name, allowTrailing, usage: Usage.PDH });
  } catch (e) {
    throw new SessionError('ERR_SESSION_CERT', (e as Error).message, 'INVALID_CERTIFICATE', { cause: e });
  }
}

/**
 * The unsigned GODH certificate sevctl makes (api 0.0, usage PDH, ECDH_SHA256,
 * both slots empty), filled from the raw point so no KeyObject import (a
 * costly point validation of a point we just computed) is needed; encoding is
 * lib/certs' codec.
 */
function godhCertFor(point: Buffer): SevCert {
  const le = (be: Buffer) => {
    const f = Buffer.alloc(EC_COORD_SIZE);
    for (let i = 0; i < be.length; i++) f[i] = be[be.length - 1 - i]!;
    return f;
  };
  return {
    version: 1,
    apiMajor: 0,
    apiMinor: 0,
    reserved: 0,
    usage: Usage.PDH,
    algo: Algo.ECDH_SHA256,
    pubkey: {
      kind: 'ec',
      curve: Curve.P384,
      qx: le(point.subarray(1, 49)),
      qy: le(point.subarray(49, 97)),
      padding: Buffer.alloc(SEV_PUBKEY_SIZE - 4 - 2 * EC_COORD_SIZE),
    },
    sigs: [emptySignature(), emptySignature()],
  };
}

/** SEC1 ECPrivateKey DER around a 48-byte scalar (version 1, curve secp384r1, no public key: OpenSSL derives it). */
const SEC1_P384_HEAD = Buffer.from('303e0201010430', 'hex');
const SEC1_P384_TAIL = Buffer.from('a00706052b81040022', 'hex');

/** The PDH's KeyObject (SPKI import, cached by lib/certs); an off-curve point is INVALID_CERTIFICATE. */
function pdhPublicKey(cert: SevCert): KeyObject {
  checkEcCoords(cert);
  try {
    return sevCertPublicKey(cert, 'PDH');
  } catch (e) {
    throw new SessionError('ERR_SESSION_CERT', 'PDH: public key is not a valid P-384 point', 'INVALID_CERTIFICATE', { cause: e });
  }
}

function scalarOk(s: Buffer): boolean {
  const v = BigInt(`0x${s.toString('hex')}`);
  return v > 0n && v < P384_N;
}

/**
 * Owner side: create a launch session for the platform whose PDH certificate
 * is given (a PDH file, or any chain file starting with the PDH).
 */
export function createSession(pdh: Uint8Array | SevCert, policyIn: PolicyLike, opts: CreateSessionOptions = {}): LaunchSession {
  const policy = Policy.from(policyIn);
  const rng: Rng = opts.rng ?? ((n) => crypto.randomBytes(n));
  const pdhCert = decodeKeyCert(pdh, 'PDH', true);
  const pdhKey = pdhPublicKey(pdhCert);

  // KeyObjects + crypto.diffieHellman: the legacy createECDH().computeSecret path costs ~1.6x as much.
  let scalar: Buffer | undefined;
  let godhKey: KeyObject;
  if (opts.godhPrivateKey) {
    scalar = Buffer.from(expectLength(opts.godhPrivateKey, 48, 'GODH private key'));
    if (!scalarOk(scalar)) {
      wipe(scalar);
      throw new LaunchInputError('GODH private key is not a valid P-384 scalar', 'ERR_GODH_KEY');
    }
  } else if (opts.rng) {
    do {
      wipe(scalar);
      scalar = rng(48);
    } while (!scalarOk(scalar));
  }
  if (scalar) {
    const der = Buffer.concat([SEC1_P384_HEAD, scalar, SEC1_P384_TAIL]);
    try {
      godhKey = crypto.createPrivateKey({ key: der, format: 'der', type: 'sec1' });
    } finally {
      wipe(der, scalar);
    }
  } else {
    godhKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  }
  let z: Buffer;
  try {
    z = crypto.diffieHellman({ privateKey: godhKey, publicKey: pdhKey });
  } catch (e) {
    throw new SessionError('ERR_SESSION_CERT', 'PDH: public key is not a valid P-384 point', 'INVALID_CERTIFICATE', { cause: e });
  }
  // The SPKI DER of a P-384 key ends with the 97-byte uncompressed point.
  const godhPoint = crypto.createPublicKey(godhKey).export({ format: 'der', type: 'spki' }).subarray(-97);
  const godh = encodeSevCert(godhCertFor(godhPoint));

  const tek = opts.tek ? Buffer.from(expectLength(opts.tek, 16, 'TEK')) : rng(16);
  const tik = opts.tik ? Buffer.from(expectLength(opts.tik, 16, 'TIK')) : rng(16);
  const nonce = opts.nonce ? Buffer.from(expectLength(opts.nonce, 16, 'nonce')) : rng(16);
  const wrapIv = opts.wrapIv ? Buffer.from(expectLength(opts.wrapIv, 16, 'wrap IV')) : rng(16);
  try {
    const policyBytes = opts.policyEncoding === 'sevctl' ? policy.sevctlBytes() : policy.bytes();
    const session = wrapSession({ z, nonce, wrapIv, tek, tik, policyBytes });
    return { godh, session, tek, tik, policy, godhB64: godh.toString('base64'), sessionB64: session.toString('base64') };
  } finally {
    wipe(z);
  }
}

/** A private key as a KeyObject, PEM text, or PKCS#8 DER (Buffer or base64). */
export type PrivateKeyInput = KeyObject | string | Buffer;

function toPrivateKey(k: PrivateKeyInput): KeyObject {
  if (typeof k === 'object' && !Buffer.isBuffer(k)) return k;
  try {
    const text = Buffer.isBuffer(k) ? k.toString('latin1') : k;
    if (text.includes('-----BEGIN')) return crypto.createPrivateKey(text);
    return crypto.createPrivateKey({ key: Buffer.isBuffer(k) ? k : Buffer.from(k, 'base64'), format: 'der', type: 'pkcs8' });
  } catch (e) {
    throw new LaunchInputError(`PDH private key: cannot be parsed (${(e as Error).message})`, 'ERR_PDH_KEY');
  }
}

/** What the firmware side of LAUNCH_START takes: the GODH, the session blob, the PDH private key and the policy. */
export interface OpenSessionInput {
  /** GODH certificate (raw 0x824 bytes, or the base64 text of a dh-cert-file). */
  godh: Uint8Array | string;
  /** Session blob (raw 128 bytes or base64). */
  session: Uint8Array | string;
  /** The platform's PDH private key (KeyObject, PEM, or PKCS#8 DER). */
  pdhPrivateKey: PrivateKeyInput;
  /** The launch policy the VMM passed to LAUNCH_START. */
  policy: PolicyLike;
}

/**
 * Firmware side of LAUNCH_START: validate the GODH certificate
 * (INVALID_CERTIFICATE), ECDH with the PDH private key, check the wrap MAC
 * (BAD_MEASUREMENT) and the policy MAC (POLICY_FAILURE), return TEK/TIK.
 */
export function openSession(inp: OpenSessionInput): { tek: Buffer; tik: Buffer } {
  const godhRaw = typeof inp.godh === 'string' ? decodeB64As(inp.godh, 'GODH certificate', 'INVALID_CERTIFICATE') : Buffer.from(inp.godh);
  const sessionRaw = typeof inp.session === 'string' ? decodeB64As(inp.session, 'session blob', 'INVALID_LEN') : Buffer.from(inp.session);
  if (godhRaw.length !== GODH_SIZE)
    throw new SessionError('ERR_SESSION_CERT', `GODH certificate has ${godhRaw.length} bytes, expected ${GODH_SIZE}`, 'INVALID_CERTIFICATE');
  if (sessionRaw.length !== SESSION_SIZE)
    throw new SessionError('ERR_SESSION_LENGTH', `session blob has ${sessionRaw.length} bytes, expected ${SESSION_SIZE}`, 'INVALID_LEN');
  const policy = Policy.from(inp.policy);
  const godh = decodeKeyCert(godhRaw, 'GODH', false);
  let godhKey: KeyObject;
  try {
    godhKey = sevCertPublicKey(godh, 'GODH');
  } catch (e) {
    throw new SessionError('ERR_SESSION_CERT', (e as Error).message, 'INVALID_CERTIFICATE', { cause: e });
  }
  const priv = toPrivateKey(inp.pdhPrivateKey);
  let z: Buffer;
  try {
    z = crypto.diffieHellman({ privateKey: priv, publicKey: godhKey });
  } catch (e) {
    throw new SessionError('ERR_SESSION_CERT', `GODH: key agreement with the PDH key failed (${(e as Error).message})`, 'INVALID_CERTIFICATE', { cause: e });
  }
  try {
    return unwrapSession(z, sessionRaw, policy.bytes());
  } finally {
    wipe(z);
  }
}

function decodeB64As(s: string, what: string, fw: 'INVALID_CERTIFICATE' | 'INVALID_LEN'): Buffer {
  try {
    return decodeBase64(s, what);
  } catch {
    throw new SessionError('ERR_BASE64', `${what}: not valid base64`, fw);
  }
}

/** Paths of the four files of a session named `name` in `dir`. */
export function sessionFilePaths(dir: string, name = 'vm'): { godh: string; session: string; tek: string; tik: string } {
  // NAME may itself hold a directory (aleph passes `--name <dir>/vm`), relative to `dir`.
  const p = (s: string) => path.resolve(dir, `${name}_${s}`);
  return { godh: p('godh.b64'), session: p('session.b64'), tek: p('tek.bin'), tik: p('tik.bin') };
}

/**
 * Write NAME_godh.b64, NAME_session.b64, NAME_tek.bin, NAME_tik.bin as sevctl
 * does, but all-or-nothing: every file goes to a temp name first and is renamed
 * only when all four are written; key files are created mode 0600.
 */
export function writeSessionFiles(s: LaunchSession, dir = '.', name = 'vm'): ReturnType<typeof sessionFilePaths> {
  const paths = sessionFilePaths(dir, name);
  const items: [string, Buffer | string, number][] = [
    [paths.godh, s.godhB64, 0o644],
    [paths.session, s.sessionB64, 0o644],
    [paths.tek, s.tek, 0o600],
    [paths.tik, s.tik, 0o600],
  ];
  const tmp: string[] = [];
  let current = paths.godh;
  try {
    for (const [file, data, mode] of items) {
      current = file;
      const t = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
      tmp.push(t);
      const fd = fs.openSync(t, 'wx', mode);
      try {
        fs.writeFileSync(fd, data);
        fs.fchmodSync(fd, mode);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    items.forEach(([file], i) => fs.renameSync(tmp[i]!, file));
  } catch (e) {
    for (const t of tmp) fs.rmSync(t, { force: true });
    const err = e as NodeJS.ErrnoException;
    throw new LaunchInputError(`${current}: cannot write session file: ${err.code ?? err.message}`, 'ERR_SESSION_WRITE');
  }
  return paths;
}
