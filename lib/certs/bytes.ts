/** Little-endian bignum helpers: every integer in SEV/AMD certificates is stored LSB first. */

/** Reverse a copy (LE field <-> BE integer bytes). */
export function reversed(b: Uint8Array): Buffer {
  const out = Buffer.from(b);
  out.reverse();
  return out;
}

/** Drop leading zero bytes of a big-endian integer (keeps at least one byte). */
export function stripLeadingZeros(be: Buffer): Buffer {
  let i = 0;
  while (i < be.length - 1 && be[i] === 0) i++;
  return be.subarray(i);
}

/** LE field → big-endian integer of exactly `len` bytes, or undefined if it does not fit. */
export function leToBeFixed(le: Uint8Array, len: number): Buffer | undefined {
  const be = stripLeadingZeros(reversed(le));
  if (be.length > len) return undefined;
  const out = Buffer.alloc(len);
  be.copy(out, len - be.length);
  return out;
}

/** Big-endian integer → LE field of `len` bytes (zero-padded at the high end). */
export function beToLeFixed(be: Uint8Array, len: number): Buffer {
  const s = stripLeadingZeros(Buffer.from(be));
  if (s.length > len) throw new RangeError(`integer of ${s.length} bytes does not fit a ${len}-byte field`);
  const out = Buffer.alloc(len);
  for (let i = 0; i < s.length; i++) out[i] = s[s.length - 1 - i]!;
  return out;
}

export function b64url(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url');
}

export function isAllZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}
