/**
 * NIST SP 800-108 KDF in counter mode with HMAC-SHA256, as the SEV firmware and
 * sevctl use it: block_i = HMAC(K, u32le(i) || label || 0x00 || context || u32le(L*8)).
 */
import crypto from 'node:crypto';

/**
 * The SEV KDF (NIST SP 800-108 counter mode, HMAC-SHA256) deriving `lengthBytes` of key material; throws
 * RangeError on a non-positive length.
 */
export function kdf(key: Uint8Array, lengthBytes: number, label: string, context: Uint8Array = Buffer.alloc(0)): Buffer {
  if (!Number.isInteger(lengthBytes) || lengthBytes <= 0) throw new RangeError(`kdf: invalid length ${lengthBytes}`);
  const labelBytes = Buffer.from(label, 'ascii');
  const bits = Buffer.alloc(4);
  bits.writeUInt32LE(lengthBytes * 8);
  const blocks = Math.ceil(lengthBytes / 32);
  const out = Buffer.alloc(blocks * 32);
  const counter = Buffer.alloc(4);
  for (let i = 1; i <= blocks; i++) {
    counter.writeUInt32LE(i);
    const h = crypto.createHmac('sha256', key);
    h.update(counter).update(labelBytes).update(Buffer.of(0)).update(context).update(bits);
    const block = h.digest();
    block.copy(out, (i - 1) * 32);
    block.fill(0); // key material: the caller gets its own copy below
  }
  const res = Buffer.from(out.subarray(0, lengthBytes));
  out.fill(0);
  return res;
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = crypto.createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** AES-128-CTR with a full 16-byte initial counter block (big-endian increment). */
export function aes128ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  const c = crypto.createCipheriv('aes-128-ctr', key, iv);
  const out = c.update(data);
  // CTR is a stream mode: final() never yields bytes, so skip the concat copy.
  const tail = c.final();
  return tail.length ? Buffer.concat([out, tail]) : out;
}

/** Constant-time equality that also answers false (not throws) on length mismatch. */
export function safeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    crypto.timingSafeEqual(a, a); // keep timing independent of where the mismatch is
    return false;
  }
  return crypto.timingSafeEqual(a, b);
}
