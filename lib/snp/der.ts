/**
 * A minimal strict DER reader for the few values asn1-x509 leaves opaque: the
 * RSASSA-PSS parameters and the contents of AMD's certificate extensions
 * (INTEGER, IA5String, OCTET STRING). Definite lengths only; every read is
 * bounds-checked and fails with an SnpCertError naming the certificate part.
 */
import { SnpCertError } from './errors.js';

/** One decoded TLV: its tag byte, contents, and where the next TLV starts. */
export interface Tlv {
  tag: number;
  value: Buffer;
  end: number;
}

/** Read one TLV at `off`. `what` names the certificate and part for errors. */
export function readTlv(b: Buffer, off: number, what: [cert: string, field: string]): Tlv {
  const fail = (m: string) => new SnpCertError(what[0], `${what[1]}: ${m}`, { field: what[1] });
  if (off + 2 > b.length) throw fail('truncated DER');
  const tag = b[off]!;
  if ((tag & 0x1f) === 0x1f) throw fail('multi-byte DER tags are not expected here');
  let len = b[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3) throw fail('unsupported DER length');
    if (p + n > b.length) throw fail('truncated DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
    if (len < 0x80 || (n > 1 && b[p] === 0)) throw fail('non-minimal DER length');
    p += n;
  }
  if (p + len > b.length) throw fail('DER value runs past its container');
  return { tag, value: b.subarray(p, p + len), end: p + len };
}

/** Read exactly one TLV spanning all of `b` (no trailing bytes). */
export function readOnly(b: Buffer, what: [string, string]): Tlv {
  const t = readTlv(b, 0, what);
  if (t.end !== b.length) throw new SnpCertError(what[0], `${what[1]}: trailing bytes after the DER value`, { field: what[1] });
  return t;
}

/** All TLVs inside a constructed value. */
export function children(value: Buffer, what: [string, string]): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < value.length;) {
    const t = readTlv(value, off, what);
    out.push(t);
    off = t.end;
  }
  return out;
}

/** A DER INTEGER's contents as a non-negative safe integer; throws for negative, non-minimal or too large values. */
export function derUint(t: Tlv, what: [string, string]): number {
  const fail = (m: string) => new SnpCertError(what[0], `${what[1]}: ${m}`, { field: what[1] });
  if (t.tag !== 0x02) throw fail(`expected INTEGER, got tag 0x${t.tag.toString(16)}`);
  const v = t.value;
  if (v.length === 0) throw fail('empty INTEGER');
  if (v[0]! & 0x80) throw fail('negative INTEGER');
  if (v.length > 1 && v[0] === 0 && !(v[1]! & 0x80)) throw fail('non-minimal INTEGER');
  if (v.length > 7) throw fail('INTEGER too large');
  let n = 0;
  for (const x of v) n = n * 256 + x;
  return n;
}

/** Decode an OBJECT IDENTIFIER's contents to dotted text. */
export function derOid(t: Tlv, what: [string, string]): string {
  if (t.tag !== 0x06 || t.value.length === 0) throw new SnpCertError(what[0], `${what[1]}: expected OBJECT IDENTIFIER`, { field: what[1] });
  const parts: number[] = [];
  let acc = 0;
  for (const x of t.value) {
    acc = acc * 128 + (x & 0x7f);
    if (!(x & 0x80)) {
      parts.push(acc);
      acc = 0;
    }
  }
  const first = parts.shift() ?? 0;
  return [first < 80 ? Math.floor(first / 40) : 2, first < 80 ? first % 40 : first - 80, ...parts].join('.');
}
