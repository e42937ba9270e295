/**
 * Launch secrets (SEV API LAUNCH_SECRET): the EFI secret table the guest's
 * OVMF/GRUB/efi_secret reads, its AES-128-CTR encryption with the TEK and the
 * 52-byte packet header whose MAC (TIK) binds it to the launch measurement:
 *   MAC = HMAC-SHA256(TIK, 0x01 || u32le(flags) || IV || u32le(guest_len) || u32le(trans_len) || ciphertext || MEASURE)
 */
import crypto from 'node:crypto';
import { bytesToGuid, guidToBytes, isGuid } from '../firmware/guid.js';
import { expectLength, wipe } from './bytes.js';
import { SecretError, LaunchInputError } from './errors.js';
import { aes128ctr, hmacSha256, safeEqual } from './kdf.js';

/** The GUID heading the EFI secret table OVMF's consumers read. */
export const SECRET_TABLE_GUID = '1e74f542-71dd-4d66-963e-ef4287ff173b';
/** GRUB_EFI_DISKPASSWD_GUID: the LUKS passphrase GRUB's efisecret module consumes. */
export const DISK_PASSWORD_GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';
/** Names accepted for well-known secret GUIDs ('disk-password', 'luks-key'). */
export const SECRET_GUID_ALIASES: Record<string, string> = {
  'disk-password': DISK_PASSWORD_GUID,
  'luks-key': DISK_PASSWORD_GUID,
};
/** Size of the LAUNCH_SECRET packet header (flags, IV, MAC): 52 bytes. */
export const SECRET_PACKET_HEADER_SIZE = 52;
/** Packet header flag bit 0: payload compressed (not supported by sevkit). */
export const SECRET_FLAG_COMPRESSED = 0x1;

/** sevctl: raw data, header length excludes padding. aleph: data + NUL, header length = padded length. */
export type SecretLayout = 'sevctl' | 'aleph';

/** One entry of the secret table: its GUID and bytes. */
export interface SecretEntry {
  guid: string;
  /** The entry's bytes; a string is its UTF-8 encoding (lengths count bytes, never characters). */
  data: Uint8Array | string;
}

/** Resolve a GUID or one of the aliases (disk-password, luks-key). */
export function resolveSecretGuid(nameOrGuid: string): string {
  const alias = SECRET_GUID_ALIASES[nameOrGuid.toLowerCase()];
  if (alias) return alias;
  if (!isGuid(nameOrGuid)) {
    throw new LaunchInputError(`'${nameOrGuid}' is not a GUID or a known alias (${Object.keys(SECRET_GUID_ALIASES).join(', ')})`, 'ERR_GUID');
  }
  return nameOrGuid.toLowerCase();
}

/**
 * The padded plaintext secret table (built in one buffer so no unwiped copies
 * of the secrets remain). Every length is a byte count: aleph's SDK counts the
 * characters of a password instead, so a non-ASCII one gets a table whose
 * lengths disagree with its bytes (spec §B.1 Algorithm S); this one does not.
 */
export function buildSecretTable(input: SecretEntry[], layout: SecretLayout = 'sevctl'): Buffer {
  if (layout !== 'sevctl' && layout !== 'aleph')
    throw new LaunchInputError(`unknown secret table layout '${String(layout)}' (expected sevctl or aleph)`, 'ERR_SECRET_LAYOUT');
  const encoded: Buffer[] = [];
  const entries = input.map((e) => {
    if (typeof e.data !== 'string') return { guid: e.guid, data: e.data };
    const b = Buffer.from(e.data, 'utf8');
    encoded.push(b);
    return { guid: e.guid, data: b };
  });
  try {
    return layoutTable(entries, layout);
  } finally {
    for (const b of encoded) wipe(b);
  }
}

function layoutTable(entries: { guid: string; data: Uint8Array }[], layout: SecretLayout): Buffer {
  const nul = layout === 'aleph' ? 1 : 0;
  const guids = entries.map((e) => guidToBytes(resolveSecretGuid(e.guid)));
  let unpadded = 20;
  for (const e of entries) unpadded += 20 + e.data.length + nul;
  if (unpadded > 0xffffffff) throw new LaunchInputError('secret table too large', 'ERR_LENGTH');
  const padded = unpadded + ((16 - (unpadded % 16)) % 16);
  const table = Buffer.alloc(padded);
  guidToBytes(SECRET_TABLE_GUID).copy(table, 0);
  table.writeUInt32LE(layout === 'aleph' ? padded : unpadded, 16);
  let off = 20;
  entries.forEach((e, i) => {
    guids[i]!.copy(table, off);
    table.writeUInt32LE(20 + e.data.length + nul, off + 16);
    table.set(e.data, off + 20);
    off += 20 + e.data.length + nul; // the aleph NUL is already zero
  });
  return table;
}

/** A secret table as parseSecretTable walked it: the header length, the layout and the entries. */
export interface ParsedSecretTable {
  /** The header's length field. */
  length: number;
  /** 'aleph' when the length covers the padding, 'sevctl' otherwise. */
  layout: SecretLayout;
  entries: { guid: string; data: Buffer }[];
}

/**
 * Guest side: walk a secret table as OVMF's consumers do (by length fields,
 * bounded by the header length). Trailing zero padding inside the declared
 * length ends the walk.
 */
export function parseSecretTable(table: Uint8Array): ParsedSecretTable {
  const b = Buffer.from(table.buffer, table.byteOffset, table.byteLength);
  if (b.length < 20) throw new SecretError('ERR_SECRET_TABLE', `secret table has ${b.length} bytes, too short for its header`);
  if (bytesToGuid(b, 0) !== SECRET_TABLE_GUID)
    throw new SecretError('ERR_SECRET_TABLE', `secret table header GUID is ${bytesToGuid(b, 0)}, expected ${SECRET_TABLE_GUID}`);
  const length = b.readUInt32LE(16);
  if (length < 20 || length > b.length) throw new SecretError('ERR_SECRET_TABLE', `secret table length field ${length} is outside 20..${b.length}`);
  const entries: { guid: string; data: Buffer }[] = [];
  let off = 20;
  while (off + 20 <= length) {
    const elen = b.readUInt32LE(off + 16);
    if (elen === 0 && b.subarray(off, off + 20).every((x) => x === 0)) break; // padding
    if (elen < 20 || off + elen > length) throw new SecretError('ERR_SECRET_TABLE', `secret table entry at offset ${off} has invalid length ${elen}`);
    entries.push({ guid: bytesToGuid(b, off), data: Buffer.from(b.subarray(off + 20, off + elen)) });
    off += elen;
  }
  if (off < length && !b.subarray(off, length).every((x) => x === 0)) {
    throw new SecretError('ERR_SECRET_TABLE', `secret table has ${length - off} trailing bytes that are not an entry`);
  }
  return { length, layout: length % 16 === 0 && length === b.length && off < length ? 'aleph' : 'sevctl', entries };
}

/** Entry data as text, without the NUL terminator the aleph layout appends. */
export function secretEntryText(data: Uint8Array): string {
  let end = data.length;
  while (end > 0 && data[end - 1] === 0) end--;
  return Buffer.from(data.buffer, data.byteOffset, end).toString('utf8');
}

/** LAUNCH_SECRET packet header (52 bytes). */
export interface PacketHeader {
  /** flags u32 @0x00 */
  flags: number;
  /** iv[16] @0x04 */
  iv: Buffer;
  /** mac[32] @0x14 */
  mac: Buffer;
}

/** Encodes the 52-byte LAUNCH_SECRET packet header; throws LaunchInputError when the IV or MAC has the wrong size. */
export function encodePacketHeader(h: PacketHeader): Buffer {
  const b = Buffer.alloc(SECRET_PACKET_HEADER_SIZE);
  b.writeUInt32LE(h.flags >>> 0, 0);
  expectLength(h.iv, 16, 'packet IV').copy(b, 4);
  expectLength(h.mac, 32, 'packet MAC').copy(b, 20);
  return b;
}

/** Decodes a 52-byte LAUNCH_SECRET packet header; throws SecretError (ERR_SECRET_HEADER) on another size. */
export function decodePacketHeader(buf: Uint8Array): PacketHeader {
  if (buf.length !== SECRET_PACKET_HEADER_SIZE) {
    throw new SecretError('ERR_SECRET_HEADER', `packet header has ${buf.length} bytes, expected ${SECRET_PACKET_HEADER_SIZE}`, 'INVALID_LEN');
  }
  const b = Buffer.from(buf);
  return { flags: b.readUInt32LE(0), iv: b.subarray(4, 20), mac: b.subarray(20, 52) };
}

/** Accept the 32-byte MEASURE or the whole 48-byte LAUNCH_MEASURE blob. */
function measureOf(m: Uint8Array): Buffer {
  if (m.length === 48 || m.length === 32) return Buffer.from(m.subarray(0, 32));
  throw new LaunchInputError(`launch measurement has ${m.length} bytes, expected 32 (MEASURE) or 48 (MEASURE || MNONCE)`, 'ERR_LENGTH', 'INVALID_LEN');
}

function packetMac(tik: Uint8Array, flags: number, iv: Uint8Array, guestLen: number, ciphertext: Uint8Array, measure: Uint8Array): Buffer {
  // 0x01 || flags || IV || guest_len || trans_len, then ciphertext and MEASURE
  const head = Buffer.allocUnsafe(29);
  head[0] = 0x01;
  head.writeUInt32LE(flags >>> 0, 1);
  head.set(iv, 5);
  head.writeUInt32LE(guestLen >>> 0, 21);
  head.writeUInt32LE(ciphertext.length >>> 0, 25);
  return hmacSha256(tik, head, ciphertext, measure);
}

/**
 * What buildSecret takes: the TEK and TIK (16 bytes each), the host's measurement, and the secret entries (or a
 * raw plaintext).
 */
export interface BuildSecretInput {
  tek: Uint8Array;
  tik: Uint8Array;
  /** The host's launch measurement (32-byte MEASURE or the 48-byte blob). */
  measurement: Uint8Array;
  /** Secret entries for a table... */
  entries?: SecretEntry[];
  layout?: SecretLayout;
  /** ...or an arbitrary plaintext (the crate's API). */
  plaintext?: Uint8Array;
  iv?: Uint8Array;
  /** Maximum payload size, e.g. the OVMF secret area size. */
  maxSize?: number;
}

/** A launch secret for LAUNCH_SECRET: the 52-byte packet header and the encrypted payload. */
export interface BuiltSecret {
  header: Buffer;
  payload: Buffer;
  iv: Buffer;
}

/** Owner side: table → ciphertext + MACed packet header. */
export function buildSecret(inp: BuildSecretInput): BuiltSecret {
  expectLength(inp.tek, 16, 'TEK');
  expectLength(inp.tik, 16, 'TIK');
  const measure = measureOf(inp.measurement);
  if ((inp.entries ? 1 : 0) + (inp.plaintext ? 1 : 0) !== 1) throw new LaunchInputError('buildSecret needs either entries or a plaintext', 'ERR_SECRET_ARGS');
  const iv = inp.iv ? Buffer.from(expectLength(inp.iv, 16, 'IV')) : crypto.randomBytes(16);
  const plain = inp.entries ? buildSecretTable(inp.entries, inp.layout) : Buffer.from(inp.plaintext!);
  try {
    if (plain.length === 0) throw new LaunchInputError('secret is empty', 'ERR_SECRET_EMPTY');
    if (inp.maxSize !== undefined && plain.length > inp.maxSize) {
      throw new SecretError(
        'ERR_SECRET_TOO_LARGE',
        `secret payload is ${plain.length} bytes, larger than the firmware secret area (${inp.maxSize} bytes)`,
        'INVALID_LEN',
      );
    }
    const payload = aes128ctr(inp.tek, iv, plain);
    const mac = packetMac(inp.tik, 0, iv, plain.length, payload, measure);
    return { header: encodePacketHeader({ flags: 0, iv, mac }), payload, iv };
  } finally {
    wipe(plain);
  }
}

/** What the firmware side of LAUNCH_SECRET takes: the packet header and payload, the TEK, TIK and measurement. */
export interface OpenSecretInput {
  header: Uint8Array;
  payload: Uint8Array;
  tek: Uint8Array;
  tik: Uint8Array;
  /** The launch measurement of this guest context (32 or 48 bytes). */
  measurement: Uint8Array;
  /** guest_len of the LAUNCH_SECRET command; defaults to the payload length (as QEMU passes it). */
  guestLength?: number;
}

/**
 * Firmware side of LAUNCH_SECRET: check the packet MAC in constant time
 * (BAD_MEASUREMENT on mismatch), then decrypt. The caller owns (and should
 * wipe) the returned plaintext.
 */
export function openSecret(inp: OpenSecretInput): Buffer {
  const h = decodePacketHeader(inp.header);
  expectLength(inp.tek, 16, 'TEK');
  expectLength(inp.tik, 16, 'TIK');
  const measure = measureOf(inp.measurement);
  if (h.flags & SECRET_FLAG_COMPRESSED)
    throw new SecretError('ERR_SECRET_COMPRESSED', 'packet header requests a compressed payload, which is not supported', 'UNSUPPORTED');
  if (h.flags & ~SECRET_FLAG_COMPRESSED)
    throw new SecretError('ERR_SECRET_FLAGS', `packet header has unknown flags 0x${h.flags.toString(16)}`, 'INVALID_PARAM');
  const guestLen = inp.guestLength ?? inp.payload.length;
  if (guestLen !== inp.payload.length)
    throw new SecretError('ERR_SECRET_LENGTH', `guest length ${guestLen} differs from the payload length ${inp.payload.length}`, 'INVALID_LEN');
  if (inp.payload.length === 0) throw new SecretError('ERR_SECRET_LENGTH', 'secret payload is empty', 'INVALID_LEN');
  const mac = packetMac(inp.tik, h.flags, h.iv, guestLen, inp.payload, measure);
  if (!safeEqual(mac, h.mac))
    throw new SecretError('ERR_SECRET_MAC', 'packet header MAC does not match (wrong TIK, measurement or tampered packet)', 'BAD_MEASUREMENT');
  return aes128ctr(inp.tek, h.iv, inp.payload);
}
