/**
 * The SEV kernel hashes table QEMU writes into the OVMF hashes area for
 * `kernel-hashes=on` direct boot (QEMU build_kernel_loader_hashes):
 * GUID-LE table header + u16 length, then cmdline, initrd, kernel entries of
 * GUID-LE + u16 50 + SHA-256, padded with zeros to a multiple of 16 (176 bytes).
 */
import crypto from 'node:crypto';
import { bytesToGuid, guidToBytes } from '../firmware/guid.js';
import { LaunchInputError } from './errors.js';

/** The GUIDs of QEMU's kernel hashes table and its cmdline, initrd and kernel entries. */
export const HASHES_GUIDS = {
  TABLE: '9438d606-4f22-4cc9-b479-a793d411fd21',
  CMDLINE: '97d02dd8-bd20-4c94-aa78-e7714d36ab2a',
  INITRD: '44baf731-3a2f-4bd7-9af1-41e29169781d',
  KERNEL: '4de79437-abd2-427f-b835-d5b172d2045b',
} as const;

/** Length of the kernel hashes table as its header states it (168 bytes; 176 when padded to 16). */
export const HASHES_TABLE_SIZE = 168;

/** A GUIDed entry: GUID-LE || uintW_le(16 + W + len) || payload (sevctl build_entry). */
export function guidEntry(guid: string, payload: Uint8Array, lenWidth: 2 | 4): Buffer {
  const total = 16 + lenWidth + payload.length;
  const len = Buffer.alloc(lenWidth);
  if (lenWidth === 2) {
    if (total > 0xffff) throw new LaunchInputError(`GUID entry ${guid} too large (${total} bytes) for a 16-bit length`, 'ERR_LENGTH');
    len.writeUInt16LE(total);
  } else len.writeUInt32LE(total);
  return Buffer.concat([guidToBytes(guid), len, payload]);
}

export function padTo16(b: Buffer): Buffer {
  const pad = (16 - (b.length % 16)) % 16;
  return pad ? Buffer.concat([b, Buffer.alloc(pad)]) : b;
}

/** The direct-boot inputs QEMU hashes for kernel-hashes=on: the kernel, the initrd and the command line. */
export interface KernelHashesInput {
  /** The whole bzImage file as given to -kernel. */
  kernel: Uint8Array;
  /** The initrd file; absent = hash of the empty string (as QEMU). */
  initrd?: Uint8Array | null;
  /** The -append string; absent/empty = just the NUL byte. Not trimmed (QEMU does not trim). */
  cmdline?: string | Uint8Array | null;
}

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The command line's bytes as QEMU hashes them (the raw -append bytes). A string must be well-formed
 * Unicode: a lone surrogate would be re-encoded as U+FFFD and give a digest of bytes QEMU never saw, so it
 * is refused (LaunchInputError ERR_CMDLINE_UTF8); pass the raw bytes instead.
 */
export function cmdlineBytes(cmdline: string | Uint8Array | null | undefined): Buffer {
  if (cmdline == null) return Buffer.alloc(0);
  if (typeof cmdline !== 'string') return Buffer.from(cmdline);
  if (LONE_SURROGATE.test(cmdline))
    throw new LaunchInputError('kernel command line is not valid Unicode (a lone surrogate); give its raw bytes instead', 'ERR_CMDLINE_UTF8');
  return Buffer.from(cmdline, 'utf8');
}

/** The 176-byte padded hashes table whose bytes QEMU adds to the launch digest. */
export function buildKernelHashesTable(inp: KernelHashesInput): Buffer {
  const cmd = cmdlineBytes(inp.cmdline);
  const payload = Buffer.concat([
    guidEntry(HASHES_GUIDS.CMDLINE, sha256(cmd, Buffer.of(0)), 2),
    guidEntry(HASHES_GUIDS.INITRD, sha256(inp.initrd ?? Buffer.alloc(0)), 2),
    guidEntry(HASHES_GUIDS.KERNEL, sha256(inp.kernel), 2),
  ]);
  return padTo16(guidEntry(HASHES_GUIDS.TABLE, payload, 2));
}

/** The three SHA-256 hashes (32 bytes each) in a kernel hashes table. */
export interface KernelHashes {
  cmdline: Buffer;
  initrd: Buffer;
  kernel: Buffer;
}

/** Guest side (OVMF's check): parse a hashes table and return the three hashes. */
export function parseKernelHashesTable(table: Uint8Array): KernelHashes {
  const b = Buffer.from(table);
  if (b.length < HASHES_TABLE_SIZE)
    throw new LaunchInputError(`kernel hashes table has ${b.length} bytes, expected at least ${HASHES_TABLE_SIZE}`, 'ERR_LENGTH');
  if (bytesToGuid(b, 0) !== HASHES_GUIDS.TABLE) throw new LaunchInputError('kernel hashes table: wrong header GUID', 'ERR_HASHES_TABLE');
  const len = b.readUInt16LE(16);
  if (len !== HASHES_TABLE_SIZE) throw new LaunchInputError(`kernel hashes table: length field ${len}, expected ${HASHES_TABLE_SIZE}`, 'ERR_HASHES_TABLE');
  const out: Partial<KernelHashes> = {};
  for (let off = 18; off < len; off += 50) {
    const g = bytesToGuid(b, off);
    if (b.readUInt16LE(off + 16) !== 50) throw new LaunchInputError(`kernel hashes table: entry ${g} has a bad length`, 'ERR_HASHES_TABLE');
    const h = Buffer.from(b.subarray(off + 18, off + 50));
    if (g === HASHES_GUIDS.CMDLINE) out.cmdline = h;
    else if (g === HASHES_GUIDS.INITRD) out.initrd = h;
    else if (g === HASHES_GUIDS.KERNEL) out.kernel = h;
    else throw new LaunchInputError(`kernel hashes table: unknown entry GUID ${g}`, 'ERR_HASHES_TABLE');
  }
  if (!out.cmdline || !out.initrd || !out.kernel) throw new LaunchInputError('kernel hashes table: missing an entry', 'ERR_HASHES_TABLE');
  return out as KernelHashes;
}
