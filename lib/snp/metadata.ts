/**
 * The OVMF SEV metadata ("ASEV") that tells an SNP VMM which guest ranges to pre-validate and how: at
 * (image size − offset), where the offset is the footer-table entry dc886566-… (lib/firmware/ovmf.ts parses the
 * footer). 16-byte header (signature "ASEV", u32 length, u32 version 1, u32 item count), then 12-byte items
 * (u32 GPA, u32 size, u32 type) — shared/specs/snp-launch.md §1.2.
 */
import { OvmfError } from '../firmware/errors.js';
import { OVMF_GUIDS, type OvmfInfo } from '../firmware/ovmf.js';

/** Section types of the SEV metadata. */
export const SevSectionType = {
  SNP_SEC_MEMORY: 1,
  SNP_SECRETS: 2,
  CPUID: 3,
  SVSM_CAA: 4,
  SNP_KERNEL_HASHES: 0x10,
} as const;
/** One of SevSectionType's values. */
export type SevSectionType = (typeof SevSectionType)[keyof typeof SevSectionType];

/** The name of a section type ("SNP_SECRETS", ...). */
export function sevSectionName(t: number): string {
  return Object.entries(SevSectionType).find(([, v]) => v === t)?.[0] ?? `type 0x${t.toString(16)}`;
}

/** One metadata item. */
export interface SevMetadataSection {
  /** Guest physical address (u32). */
  gpa: number;
  /** Size in bytes (u32). */
  size: number;
  type: SevSectionType;
}

const HEADER_SIZE = 16;
const ITEM_SIZE = 12;
const SIGNATURE = Buffer.from('ASEV', 'ascii');
/**
 * Most bytes all sections together may cover. edk2's AmdSev and OvmfPkgX64 builds cover about 0.1 MiB; a corrupt
 * size field (0x40001000) would otherwise cost a quarter-million page steps per digest, and as many per variant.
 */
export const MAX_METADATA_BYTES = 64 << 20;

/**
 * The SEV metadata sections of an OVMF image, in table order; [] when the footer table has no metadata entry
 * (a firmware without SNP support, e.g. Debian's OVMF_CODE). Throws OvmfError on a metadata block that is
 * out of the image, has the wrong signature or version, a length that does not hold its items, or an item of
 * an unknown type (sev-snp-measure refuses those too, rather than guessing how a VMM would measure them).
 */
export function parseSevMetadata(image: Uint8Array, info: OvmfInfo, name = 'firmware'): SevMetadataSection[] {
  if (info.sevMetadataOffset === undefined) return [];
  const buf = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const off = info.sevMetadataOffset;
  const start = buf.length - off;
  if (off < HEADER_SIZE || start < 0)
    throw new OvmfError(
      `${name}: SEV metadata offset 0x${off.toString(16)} (${OVMF_GUIDS.SEV_METADATA}) points outside the ${buf.length}-byte image`,
      'ERR_SNP_METADATA',
    );
  if (!buf.subarray(start, start + 4).equals(SIGNATURE)) throw new OvmfError(`${name}: wrong SEV metadata signature (expected "ASEV")`, 'ERR_SNP_METADATA');
  const length = buf.readUInt32LE(start + 4);
  const version = buf.readUInt32LE(start + 8);
  const count = buf.readUInt32LE(start + 12);
  if (version !== 1) throw new OvmfError(`${name}: SEV metadata version ${version}, only version 1 is known`, 'ERR_SNP_METADATA');
  if (length < HEADER_SIZE + count * ITEM_SIZE || start + length > buf.length) {
    throw new OvmfError(`${name}: SEV metadata length ${length} does not hold its ${count} items inside the image`, 'ERR_SNP_METADATA');
  }
  const known = new Set<number>(Object.values(SevSectionType));
  let total = 0;
  const out: SevMetadataSection[] = [];
  for (let i = 0; i < count; i++) {
    const p = start + HEADER_SIZE + i * ITEM_SIZE;
    const gpa = buf.readUInt32LE(p);
    const size = buf.readUInt32LE(p + 4);
    const type = buf.readUInt32LE(p + 8);
    if (!known.has(type))
      throw new OvmfError(
        `${name}: SEV metadata item ${i} has unknown section type 0x${type.toString(16)} (GPA 0x${gpa.toString(16)}, size 0x${size.toString(16)})`,
        'ERR_SNP_METADATA_TYPE',
      );
    // Whole pages below 4 GiB, as the VMM validates them; anything else is a corrupt table (and a huge size
    // would make every digest of it a minute of hashing).
    if (gpa % 4096 !== 0 || size % 4096 !== 0 || gpa + size > 0x1_0000_0000) {
      throw new OvmfError(
        `${name}: SEV metadata item ${i} (${sevSectionName(type)}, GPA 0x${gpa.toString(16)}, size 0x${size.toString(16)}) is not whole 4 KiB pages below 4 GiB`,
        'ERR_SNP_METADATA',
      );
    }
    total += size;
    if (total > MAX_METADATA_BYTES)
      throw new OvmfError(
        `${name}: SEV metadata sections cover more than ${MAX_METADATA_BYTES >> 20} MiB (item ${i}: ${sevSectionName(type)}, size 0x${size.toString(16)}); real OVMF builds cover under 1 MiB, so the table is corrupt`,
        'ERR_SNP_METADATA',
      );
    out.push({ gpa, size, type: type as SevSectionType });
  }
  return out;
}
