/**
 * OVMF footer GUID table (edk2 ResetVector/QEMU pc_sysfw_ovmf.c): the table
 * ends 32 bytes before the end of the image; its last entry is the footer
 * (u16 total length + GUID 96b582de-...). Entries are walked backwards, each
 * `data || u16 len || GUID-LE` with len counting data + 18.
 */
import { OvmfError } from './errors.js';
import { bytesToGuid, guidToBytes } from './guid.js';

/**
 * Size of QEMU's kernel-hashes table padded to 16 bytes (the table itself is 168): the smallest hashes
 * area QEMU's sev_add_kernel_loader_hashes accepts.
 */
export const PADDED_HASHES_TABLE_SIZE = 176;

/** Bytes between the end of the footer table and the end of the image (the reset vector lives there). */
const TABLE_END_GAP = 0x20;

/** GUIDs of the footer-table entries sevkit reads (edk2 OvmfPkg ResetVector; TDX for recognition only). */
export const OVMF_GUIDS = {
  FOOTER: '96b582de-1fb2-45f7-baea-a366c55a082d',
  /** SEV-ES reset block: u32 AP reset address. */
  SEV_ES_RESET_BLOCK: '00f771de-1a7e-4fcb-890e-68c77e2fb44e',
  /** SEV secret area: u32 base, u32 size. */
  SEV_SECRET: '4c2eb361-7d9b-4cc3-8081-127c90d3d294',
  /** SEV kernel hashes area: u32 base, u32 size. */
  SEV_HASH_TABLE: '7255371f-3a3b-4b04-927b-1da6efa8d454',
  /** SEV metadata offset (SNP): u32 offset from the end of the image. */
  SEV_METADATA: 'dc886566-984a-4798-a75e-5585a7bf67cc',
  TDX_METADATA: 'e47a6535-984a-4798-865e-4685a7bf8ec2',
} as const;

/** One footer-table entry: its GUID and its data (without the u16 length and the GUID). */
export interface OvmfEntry {
  guid: string;
  data: Buffer;
}

/** A guest-physical range declared by the firmware (u32 base, u32 size). */
export interface GpaRange {
  base: number;
  size: number;
}

/** What sevkit reads from an OVMF image's footer table. */
export interface OvmfInfo {
  /** Size of the whole image in bytes. */
  size: number;
  /** Entries in table order (first = lowest address). */
  entries: OvmfEntry[];
  /** Full u32 of the SEV-ES reset block (AP reset EIP), if present. */
  resetVector?: number;
  /** SEV secret area, if present with a non-zero base. */
  secretArea?: GpaRange;
  /** SEV kernel hashes area, if present with a non-zero base. */
  hashesArea?: GpaRange;
  /** Offset of the SEV metadata ("ASEV") from the end of the image. */
  sevMetadataOffset?: number;
}

const FOOTER_BYTES = Buffer.from('de82b596b21ff745baeaa366c55a082d', 'hex');

/** True if the image carries an OVMF footer GUID table. */
export function hasOvmfFooterTable(image: Uint8Array): boolean {
  if (image.length < 50) return false;
  return Buffer.from(image.buffer, image.byteOffset + image.length - 48, 16).equals(FOOTER_BYTES);
}

/** Parse the footer table; throws OvmfError (one line, naming `name`) if the image has none or it is malformed. */
export function parseOvmfFooterTable(image: Uint8Array, name = 'firmware'): OvmfEntry[] {
  const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const size = buf.length;
  if (!hasOvmfFooterTable(buf)) {
    throw new OvmfError(`${name}: no OVMF footer GUID table (not an OVMF image built with SEV support, or truncated)`, 'ERR_OVMF_NO_TABLE');
  }
  const total = buf.readUInt16LE(size - 50);
  if (total < 18 || total + 32 > size) throw new OvmfError(`${name}: OVMF footer table length ${total} is invalid`, 'ERR_OVMF_TABLE');
  const start = size - 32 - total;
  let end = size - 50; // end of the entries before the footer
  const entries: OvmfEntry[] = [];
  while (end - start >= 18) {
    const guid = bytesToGuid(buf, end - 16);
    const len = buf.readUInt16LE(end - 18);
    if (len < 18 || end - len < start) throw new OvmfError(`${name}: OVMF footer table entry ${guid} has invalid length ${len}`, 'ERR_OVMF_TABLE');
    entries.unshift({ guid, data: Buffer.from(buf.subarray(end - len, end - 18)) });
    end -= len;
  }
  return entries;
}

function range(e: OvmfEntry | undefined): GpaRange | undefined {
  if (!e || e.data.length < 8) return undefined;
  const base = e.data.readUInt32LE(0);
  const size = e.data.readUInt32LE(4);
  return base === 0 ? undefined : { base, size };
}

/** Parse an OVMF image: reset vector, secret area, hashes area. Throws if the footer table is missing. */
export function parseOvmf(image: Uint8Array, name = 'firmware'): OvmfInfo {
  const entries = parseOvmfFooterTable(image, name);
  const find = (g: string) => entries.find((e) => e.guid === g);
  const info: OvmfInfo = { size: image.length, entries };
  const reset = find(OVMF_GUIDS.SEV_ES_RESET_BLOCK);
  if (reset && reset.data.length >= 4) info.resetVector = reset.data.readUInt32LE(0);
  const secret = range(find(OVMF_GUIDS.SEV_SECRET));
  if (secret) info.secretArea = secret;
  const hashes = range(find(OVMF_GUIDS.SEV_HASH_TABLE));
  if (hashes) info.hashesArea = hashes;
  const meta = find(OVMF_GUIDS.SEV_METADATA);
  if (meta && meta.data.length >= 4) info.sevMetadataOffset = meta.data.readUInt32LE(0);
  return info;
}

/** The SEV-ES AP reset address, or OvmfError when the image has no SEV-ES reset block. */
export function requireResetVector(info: OvmfInfo, name = 'firmware'): number {
  if (info.resetVector === undefined) {
    throw new OvmfError(
      `${name}: OVMF footer table has no SEV-ES reset block (${OVMF_GUIDS.SEV_ES_RESET_BLOCK}); it cannot boot SEV-ES APs`,
      'ERR_OVMF_NO_RESET',
    );
  }
  return info.resetVector;
}

/** The launch-secret area, or OvmfError when the image declares none (or at base 0). */
export function requireSecretArea(info: OvmfInfo, name = 'firmware'): GpaRange {
  if (!info.secretArea) {
    throw new OvmfError(
      `${name}: OVMF has no SEV secret area (${OVMF_GUIDS.SEV_SECRET} absent or base 0); use an AmdSev build or give the GPA explicitly`,
      'ERR_OVMF_NO_SECRET',
    );
  }
  return info.secretArea;
}

/**
 * The kernel-hashes area, or OvmfError when it is absent, at base 0, or smaller than the 176-byte padded
 * table: QEMU's sev_add_kernel_loader_hashes refuses such an area too ("SEV: guest firmware hashes table
 * area is invalid (base=0x… size=0x…)"), so a digest for it would describe a guest that never starts.
 */
export function requireHashesArea(info: OvmfInfo, name = 'firmware'): GpaRange {
  if (!info.hashesArea) {
    throw new OvmfError(
      `${name}: Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement (${OVMF_GUIDS.SEV_HASH_TABLE} absent or base 0)`,
      'ERR_OVMF_NO_HASHES',
    );
  }
  const { base, size } = info.hashesArea;
  if (size < PADDED_HASHES_TABLE_SIZE) {
    throw new OvmfError(
      `${name}: guest firmware hashes table area is invalid (base=0x${base.toString(16)} size=0x${size.toString(16)}): smaller than the ${PADDED_HASHES_TABLE_SIZE}-byte padded table`,
      'ERR_OVMF_HASHES_SIZE',
    );
  }
  return info.hashesArea;
}

/**
 * The footer table for `entries` (table order: first = lowest address), ending with the footer entry;
 * callers place it TABLE_END_GAP (32) bytes before the end of their image (see placeOvmfFooterTable).
 */
export function buildOvmfFooterTable(entries: readonly OvmfEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const len = Buffer.alloc(2);
    len.writeUInt16LE(e.data.length + 18);
    parts.push(Buffer.from(e.data), len, guidToBytes(e.guid));
  }
  const body = Buffer.concat(parts);
  const total = Buffer.alloc(2);
  total.writeUInt16LE(body.length + 18);
  return Buffer.concat([body, total, guidToBytes(OVMF_GUIDS.FOOTER)]);
}

/** Writes the footer table for `entries` into `image` (in place) where OVMF keeps it; returns `image`. */
export function placeOvmfFooterTable(image: Buffer, entries: readonly OvmfEntry[]): Buffer {
  const table = buildOvmfFooterTable(entries);
  if (table.length + TABLE_END_GAP > image.length)
    throw new OvmfError(`OVMF footer table of ${table.length} bytes does not fit a ${image.length}-byte image`, 'ERR_OVMF_TABLE');
  table.copy(image, image.length - TABLE_END_GAP - table.length);
  return image;
}

/**
 * Replaces the data of the existing entry `guid` in `image` (in place, same length), e.g. to point a
 * stock build's zero secret area at a page. OvmfError when the entry is absent or `data` has another size.
 */
export function patchOvmfEntry(image: Buffer, guid: string, data: Uint8Array, name = 'firmware'): void {
  const entries = parseOvmfFooterTable(image, name);
  let end = image.length - 50;
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.guid === guid) {
      if (e.data.length !== data.length) throw new OvmfError(`${name}: OVMF entry ${guid} holds ${e.data.length} bytes, not ${data.length}`, 'ERR_OVMF_TABLE');
      Buffer.from(data).copy(image, end - 18 - e.data.length);
      return;
    }
    end -= e.data.length + 18;
  }
  throw new OvmfError(`${name}: OVMF footer table has no entry ${guid}`, 'ERR_OVMF_TABLE');
}
