/**
 * The one base64 rule for values a peer sends (a CRN, an owner, a host):
 * standard alphabet, padded to a multiple of 4, canonical (no stray bits in
 * the last character), nothing else — no whitespace, no URL alphabet. A value
 * that another decoder would "repair" is refused, because two parties that
 * decode the same text differently can be made to disagree about what was
 * signed or measured. Readers of text files strip the file's surrounding
 * whitespace before calling this; the simulator's QEMU wrapper keeps glib's
 * looser rule on purpose, because that is what QEMU accepts.
 */

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes of `s` under the one strict rule, or undefined when `s` is not a string or breaks it. The empty string is zero bytes. */
export function decodeStrictBase64(s: unknown): Buffer | undefined {
  if (typeof s !== 'string' || !B64_RE.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}
