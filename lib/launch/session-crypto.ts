/**
 * The launch-session cryptography shared by both ends (SEV API LAUNCH_START,
 * sev-formats §5): the KDF chain from the ECDH secret, the TEK||TIK wrap and
 * its MAC, and the policy MAC. Certificate handling lives in session.ts.
 */
import { aes128ctr, hmacSha256, kdf, safeEqual } from './kdf.js';
import { expectLength, wipe } from './bytes.js';
import { SessionError } from './errors.js';

/** Size of the LAUNCH_START session blob (`struct sev_session_buf`): 0x80 = 128 bytes. */
export const SESSION_SIZE = 0x80;

/** LAUNCH_START session data (`struct sev_session_buf`, 128 bytes). */
export interface SessionFields {
  /** nonce[16] @0x00 */
  nonce: Buffer;
  /** wrap_tk[32] @0x10: AES-128-CTR(KEK, wrap_iv, TEK||TIK) */
  wrapTk: Buffer;
  /** wrap_iv[16] @0x30 */
  wrapIv: Buffer;
  /** wrap_mac[32] @0x40: HMAC-SHA256(KIK, wrap_tk) */
  wrapMac: Buffer;
  /** policy_mac[32] @0x60: HMAC-SHA256(TIK, policy bytes) */
  policyMac: Buffer;
}

/** Encodes the 128-byte session blob; throws LaunchInputError when a field has the wrong size. */
export function encodeSession(f: SessionFields): Buffer {
  const b = Buffer.alloc(SESSION_SIZE);
  expectLength(f.nonce, 16, 'session nonce').copy(b, 0x00);
  expectLength(f.wrapTk, 32, 'session wrap_tk').copy(b, 0x10);
  expectLength(f.wrapIv, 16, 'session wrap_iv').copy(b, 0x30);
  expectLength(f.wrapMac, 32, 'session wrap_mac').copy(b, 0x40);
  expectLength(f.policyMac, 32, 'session policy_mac').copy(b, 0x60);
  return b;
}

/** Splits a 128-byte session blob into its fields; throws SessionError (ERR_SESSION_LENGTH) on another size. */
export function decodeSession(blob: Uint8Array): SessionFields {
  if (blob.length !== SESSION_SIZE) {
    throw new SessionError('ERR_SESSION_LENGTH', `session blob has ${blob.length} bytes, expected ${SESSION_SIZE}`, 'INVALID_LEN');
  }
  const b = Buffer.from(blob);
  return {
    nonce: b.subarray(0x00, 0x10),
    wrapTk: b.subarray(0x10, 0x30),
    wrapIv: b.subarray(0x30, 0x40),
    wrapMac: b.subarray(0x40, 0x60),
    policyMac: b.subarray(0x60, 0x80),
  };
}

/** The keys derived from the ECDH secret: the 16-byte master secret, KEK (wraps TEK‖TIK) and KIK (MACs the wrap). */
export interface SessionKeys {
  master: Buffer;
  kek: Buffer;
  kik: Buffer;
}

/** master = KDF(z, 16, "sev-master-secret", nonce); KEK/KIK = KDF(master, 16, "sev-kek"/"sev-kik", ""). */
export function deriveSessionKeys(z: Uint8Array, nonce: Uint8Array): SessionKeys {
  const master = kdf(z, 16, 'sev-master-secret', nonce);
  return { master, kek: kdf(master, 16, 'sev-kek'), kik: kdf(master, 16, 'sev-kik') };
}

/** What wrapSession needs: the ECDH secret, nonce, wrap IV, the 16-byte TEK and TIK, and the 4 policy bytes. */
export interface WrapInput {
  /** Shared secret (ECDH X coordinate, 48 bytes; any length is accepted for the upstream KAT). */
  z: Uint8Array;
  nonce: Uint8Array;
  wrapIv: Uint8Array;
  tek: Uint8Array;
  tik: Uint8Array;
  /** The 4 policy bytes under the policy MAC (Policy.bytes()). */
  policyBytes: Uint8Array;
}

/** Guest-owner side: build the 128-byte session blob. */
export function wrapSession(inp: WrapInput): Buffer {
  expectLength(inp.nonce, 16, 'nonce');
  expectLength(inp.wrapIv, 16, 'wrap IV');
  expectLength(inp.tek, 16, 'TEK');
  expectLength(inp.tik, 16, 'TIK');
  expectLength(inp.policyBytes, 4, 'policy bytes');
  const keys = deriveSessionKeys(inp.z, inp.nonce);
  const tk = Buffer.concat([inp.tek, inp.tik]);
  try {
    const wrapTk = aes128ctr(keys.kek, inp.wrapIv, tk);
    const wrapMac = hmacSha256(keys.kik, wrapTk);
    const policyMac = hmacSha256(inp.tik, inp.policyBytes);
    return encodeSession({ nonce: Buffer.from(inp.nonce), wrapTk, wrapIv: Buffer.from(inp.wrapIv), wrapMac, policyMac });
  } finally {
    wipe(tk, keys.master, keys.kek, keys.kik);
  }
}

/**
 * Firmware side: check the wrap MAC (else BAD_MEASUREMENT), unwrap TEK/TIK,
 * then check the policy MAC over the policy the VMM passed (else POLICY_FAILURE).
 */
export function unwrapSession(z: Uint8Array, session: Uint8Array, policyBytes: Uint8Array): { tek: Buffer; tik: Buffer } {
  const f = decodeSession(session);
  expectLength(policyBytes, 4, 'policy bytes');
  const keys = deriveSessionKeys(z, f.nonce);
  try {
    if (!safeEqual(hmacSha256(keys.kik, f.wrapTk), f.wrapMac)) {
      throw new SessionError(
        'ERR_SESSION_WRAP_MAC',
        'session: wrap MAC does not match (wrong PDH key, corrupted session or GODH certificate)',
        'BAD_MEASUREMENT',
      );
    }
    const tk = aes128ctr(keys.kek, f.wrapIv, f.wrapTk);
    const tek = Buffer.from(tk.subarray(0, 16));
    const tik = Buffer.from(tk.subarray(16, 32));
    wipe(tk);
    if (!safeEqual(hmacSha256(tik, policyBytes), f.policyMac)) {
      wipe(tek, tik);
      throw new SessionError('ERR_SESSION_POLICY_MAC', 'session: policy MAC does not match the launch policy', 'POLICY_FAILURE');
    }
    return { tek, tik };
  } finally {
    wipe(keys.master, keys.kek, keys.kik);
  }
}
