/**
 * The certificate table an extended report (SNP_GET_EXT_REPORT, configfs-tsm
 * `auxblob`) carries: 24-byte entries {guid[16] in RFC 4122 byte order,
 * offset u32 LE, length u32 LE} ended by an all-zero entry, then the DER
 * certificates, offsets counted from the start of the table. A source of the
 * VCEK/VLEK and the ASK/ARK that needs no network.
 */
import { CertTableError } from './errors.js';

/** Entry size, bytes. */
export const CERT_TABLE_ENTRY_SIZE = 24;
/** More entries than this is not a certificate table (the kernel caps the blob at 16 KiB). */
const MAX_ENTRIES = 64;

/** The GUIDs AMD and the kernel define. */
export const CERT_TABLE_GUIDS = {
  ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
  ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  VCEK: '63da758d-e664-4564-adc5-f4b93be8accd',
  VLEK: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  CRL: '92f81bc3-5811-4d3d-97ff-d19f88dc67ea',
} as const;

/** What an entry holds; `other` for a GUID this table does not name. */
export type CertTableKind = keyof typeof CERT_TABLE_GUIDS | 'other';

/** One entry with its bytes (a copy). */
export interface CertTableEntry {
  guid: string;
  kind: CertTableKind;
  data: Buffer;
}

function guidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function guidBytes(g: string): Buffer {
  const h = g.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(h)) throw new CertTableError(`'${g}' is not a GUID`, { field: 'guid' });
  return Buffer.from(h, 'hex');
}

const KIND_OF = new Map<string, CertTableKind>(Object.entries(CERT_TABLE_GUIDS).map(([k, g]) => [g, k as CertTableKind]));

/**
 * Parse a certificate table. An empty (or all-zero) buffer is an empty table.
 * Throws CertTableError for a table without its zero terminator, an offset
 * inside the header, an entry running past the buffer, or duplicate GUIDs.
 */
export function parseCertTable(buf: Uint8Array): CertTableEntry[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const raw: { guid: string; offset: number; length: number }[] = [];
  let headerEnd = -1;
  for (let i = 0; i < MAX_ENTRIES + 1; i++) {
    const off = i * CERT_TABLE_ENTRY_SIZE;
    if (off === b.length && i === 0) return [];
    if (off + CERT_TABLE_ENTRY_SIZE > b.length)
      throw new CertTableError(`entry ${i} runs past the ${b.length}-byte buffer (no terminating zero entry)`, { field: `entry ${i}` });
    const e = b.subarray(off, off + CERT_TABLE_ENTRY_SIZE);
    if (e.every((x) => x === 0)) {
      headerEnd = off + CERT_TABLE_ENTRY_SIZE;
      break;
    }
    raw.push({ guid: guidText(e.subarray(0, 16)), offset: e.readUInt32LE(16), length: e.readUInt32LE(20) });
  }
  if (headerEnd < 0) throw new CertTableError(`more than ${MAX_ENTRIES} entries`);
  const seen = new Set<string>();
  return raw.map((r, i) => {
    if (seen.has(r.guid)) throw new CertTableError(`GUID ${r.guid} appears twice`, { field: `entry ${i}` });
    seen.add(r.guid);
    if (r.offset < headerEnd)
      throw new CertTableError(`entry ${i} (${r.guid}) points into the header (offset ${r.offset} < ${headerEnd})`, { field: `entry ${i}` });
    if (r.offset + r.length > b.length)
      throw new CertTableError(`entry ${i} (${r.guid}) runs past the buffer (${r.offset}+${r.length} > ${b.length})`, { field: `entry ${i}` });
    return { guid: r.guid, kind: KIND_OF.get(r.guid) ?? 'other', data: Buffer.from(b.subarray(r.offset, r.offset + r.length)) };
  });
}

/** Build a certificate table (the inverse of parseCertTable), e.g. for a simulated host's extended report. */
export function encodeCertTable(entries: { guid: string; data: Uint8Array }[]): Buffer {
  if (entries.length > MAX_ENTRIES) throw new CertTableError(`more than ${MAX_ENTRIES} entries`);
  const header = Buffer.alloc((entries.length + 1) * CERT_TABLE_ENTRY_SIZE);
  let off = header.length;
  entries.forEach((e, i) => {
    const at = i * CERT_TABLE_ENTRY_SIZE;
    guidBytes(e.guid).copy(header, at);
    header.writeUInt32LE(off, at + 16);
    header.writeUInt32LE(e.data.length, at + 20);
    off += e.data.length;
  });
  return Buffer.concat([header, ...entries.map((e) => Buffer.from(e.data))]);
}

/** The entry of a kind, if the table has one. */
export function certTableEntry(entries: CertTableEntry[], kind: CertTableKind): Buffer | undefined {
  return entries.find((e) => e.kind === kind)?.data;
}
