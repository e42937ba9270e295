/**
 * GUIDs as EFI stores them: the first three fields little-endian ("mixed
 * endian"), the last two as written. OVMF's footer table, QEMU's kernel-hashes
 * table and the launch-secret table all name their entries this way.
 */
import { GuidError } from './errors.js';

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True if `s` is a textual GUID (any case). */
export function isGuid(s: string): boolean {
  return GUID_RE.test(s);
}

const guidCache = new Map<string, Buffer>();

/** Textual UUID → 16 bytes in EFI/Microsoft mixed-endian order (first 3 groups byte-swapped). */
export function guidToBytes(guid: string): Buffer {
  const hit = guidCache.get(guid);
  if (hit) return Buffer.from(hit);
  if (!GUID_RE.test(guid)) throw new GuidError(`invalid GUID '${guid}'`);
  const hex = guid.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  const out = Buffer.alloc(16);
  out[0] = b[3]!;
  out[1] = b[2]!;
  out[2] = b[1]!;
  out[3] = b[0]!;
  out[4] = b[5]!;
  out[5] = b[4]!;
  out[6] = b[7]!;
  out[7] = b[6]!;
  b.copy(out, 8, 8, 16);
  if (guidCache.size < 256) guidCache.set(guid, Buffer.from(out));
  return out;
}

/** Inverse of guidToBytes: 16 mixed-endian bytes → lower-case textual UUID. */
export function bytesToGuid(buf: Uint8Array, offset = 0): string {
  const b = Buffer.from(buf.buffer, buf.byteOffset + offset, 16);
  const h = (i: number) => b[i]!.toString(16).padStart(2, '0');
  return h(3) + h(2) + h(1) + h(0) + '-' + h(5) + h(4) + '-' + h(7) + h(6) + '-' + h(8) + h(9) + '-' + [10, 11, 12, 13, 14, 15].map(h).join('');
}
