/**
 * The extended report's certificate table as a host hands it to the guest
 * (spec §3.4): 24-byte entries {GUID (RFC 4122 byte order, as the text reads),
 * offset u32 LE, length u32 LE}, an all-zero entry, then the DER certificates;
 * offsets count from the start of the table.
 */

/** GUIDs of the certificate table entries. */
export const CertTableGuid = {
  ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
  ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  VCEK: '63da758d-e664-4564-adc5-f4b93be8accd',
  VLEK: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
} as const;

const ENTRY = 24;

function guidBytes(guid: string): Buffer {
  const b = Buffer.from(guid.replace(/-/g, ''), 'hex');
  if (b.length !== 16) throw new RangeError(`not a GUID: ${guid}`);
  return b;
}

/** Encode entries (GUID text → DER) into a table; an empty list gives the 24-byte all-zero table. */
export function encodeCertTable(entries: [string, Buffer][]): Buffer {
  const header = (entries.length + 1) * ENTRY;
  const head = Buffer.alloc(header);
  let off = header;
  entries.forEach(([guid, der], i) => {
    guidBytes(guid).copy(head, i * ENTRY);
    head.writeUInt32LE(off, i * ENTRY + 16);
    head.writeUInt32LE(der.length, i * ENTRY + 20);
    off += der.length;
  });
  return Buffer.concat([head, ...entries.map(([, der]) => der)]);
}
