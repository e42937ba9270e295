/**
 * The report's bit fields as named flags: guest POLICY (u64 @0x008),
 * PLATFORM_INFO (u64 @0x040) and KEY_INFO (u32 @0x048). Decoders reject what the
 * spec says must be zero (policy bits 63:26, bit 17 clear; KEY_INFO bits 31:5,
 * reserved signing-key values); PLATFORM_INFO's unknown bits are kept and
 * reported, never fatal (Turin sets bit 6).
 */
import { ReportFormatError } from './errors.js';

/** Guest policy (SNP ABI "GUEST_POLICY"). */
export interface GuestPolicy {
  /** bits 7:0 ABI_MINOR: minimum firmware ABI minor. */
  abiMinor: number;
  /** bits 15:8 ABI_MAJOR: minimum firmware ABI major. */
  abiMajor: number;
  /** bit 16 SMT: host SMT allowed. */
  smt: boolean;
  /** bit 18 MIGRATE_MA: a migration agent allowed. */
  migrateMa: boolean;
  /** bit 19 DEBUG: debugging allowed (the host may decrypt guest memory). */
  debug: boolean;
  /** bit 20 SINGLE_SOCKET. */
  singleSocket: boolean;
  /** bit 21 CXL_ALLOW. */
  cxlAllow: boolean;
  /** bit 22 MEM_AES_256_XTS required. */
  memAes256Xts: boolean;
  /** bit 23 RAPL_DIS required. */
  raplDis: boolean;
  /** bit 24 CIPHERTEXT_HIDING (DRAM) required. */
  ciphertextHiding: boolean;
  /** bit 25 PAGE_SWAP_DISABLE. */
  pageSwapDisable: boolean;
}

const POLICY_BITS: [keyof GuestPolicy, number][] = [
  ['smt', 16],
  ['migrateMa', 18],
  ['debug', 19],
  ['singleSocket', 20],
  ['cxlAllow', 21],
  ['memAes256Xts', 22],
  ['raplDis', 23],
  ['ciphertextHiding', 24],
  ['pageSwapDisable', 25],
];

/** Bit 17 of POLICY is reserved and must be 1. */
export const POLICY_RESERVED_ONE = 1n << 17n;

/** Decode a POLICY u64. Throws ReportFormatError when bit 17 is clear or any of bits 63:26 is set. */
export function decodeGuestPolicy(v: bigint): GuestPolicy {
  if ((v & POLICY_RESERVED_ONE) === 0n) throw new ReportFormatError('POLICY', 'reserved bit 17 must be 1');
  if (v >> 26n !== 0n) throw new ReportFormatError('POLICY', `reserved bits 63:26 must be zero (policy 0x${v.toString(16)})`);
  const p = { abiMinor: Number(v & 0xffn), abiMajor: Number((v >> 8n) & 0xffn) } as GuestPolicy;
  for (const [k, bit] of POLICY_BITS) (p as unknown as Record<string, boolean>)[k] = ((v >> BigInt(bit)) & 1n) === 1n;
  return p;
}

/** Encode a guest policy (bit 17 set). Throws ReportFormatError for an ABI byte outside 0..255. */
export function encodeGuestPolicy(p: GuestPolicy): bigint {
  for (const k of ['abiMinor', 'abiMajor'] as const) {
    if (!Number.isInteger(p[k]) || p[k] < 0 || p[k] > 255)
      throw new ReportFormatError(`POLICY.${k === 'abiMinor' ? 'ABI_MINOR' : 'ABI_MAJOR'}`, `must be 0..255, got ${p[k]}`);
  }
  let v = BigInt(p.abiMinor) | (BigInt(p.abiMajor) << 8n) | POLICY_RESERVED_ONE;
  for (const [k, bit] of POLICY_BITS) if (p[k]) v |= 1n << BigInt(bit);
  return v;
}

/** PLATFORM_INFO: the host's configuration when the report was made. */
export interface PlatformInfo {
  /** bit 0 SMT_EN. */
  smtEn: boolean;
  /** bit 1 TSME_EN. */
  tsmeEn: boolean;
  /** bit 2 ECC_EN. */
  eccEn: boolean;
  /** bit 3 RAPL_DIS. */
  raplDis: boolean;
  /** bit 4 CIPHERTEXT_HIDING_DRAM_EN. */
  ciphertextHidingDramEn: boolean;
  /** bit 5 ALIAS_CHECK_COMPLETE. */
  aliasCheckComplete: boolean;
  /** bit 6: reserved in the ABI documents, set on real Turin hosts (called IOMMU_WRITE_SAFE by some). Exposed as the raw bit. */
  bit6: boolean;
  /** bit 7 TIO_EN. */
  tioEn: boolean;
  /** bits 63:8, undefined today: kept (so the report re-encodes) and reported, not fatal. */
  unknownBits: bigint;
}

const PLATFORM_BITS: [keyof PlatformInfo, number][] = [
  ['smtEn', 0],
  ['tsmeEn', 1],
  ['eccEn', 2],
  ['raplDis', 3],
  ['ciphertextHidingDramEn', 4],
  ['aliasCheckComplete', 5],
  ['bit6', 6],
  ['tioEn', 7],
];

/** Decode PLATFORM_INFO; never throws (unknown bits are kept in `unknownBits`). */
export function decodePlatformInfo(v: bigint): PlatformInfo {
  const p = { unknownBits: v & ~0xffn } as PlatformInfo;
  for (const [k, bit] of PLATFORM_BITS) (p as unknown as Record<string, boolean>)[k] = ((v >> BigInt(bit)) & 1n) === 1n;
  return p;
}

/** Encode PLATFORM_INFO. */
export function encodePlatformInfo(p: PlatformInfo): bigint {
  let v = p.unknownBits & ~0xffn;
  for (const [k, bit] of PLATFORM_BITS) if (p[k]) v |= 1n << BigInt(bit);
  return v;
}

/** SIGNING_KEY values of KEY_INFO bits 4:2. */
export const SigningKey = { VCEK: 0, VLEK: 1, NONE: 7 } as const;
/** Which key signed the report. */
export type SigningKeyKind = 'VCEK' | 'VLEK' | 'NONE';

/** KEY_INFO. */
export interface KeyInfo {
  /** bit 0 AUTHOR_KEY_EN: AUTHOR_KEY_DIGEST is meaningful. */
  authorKeyEn: boolean;
  /** bit 1 MASK_CHIP_KEY: the report is not signed by the chip key (signature zero). */
  maskChipKey: boolean;
  /** bits 4:2 SIGNING_KEY. */
  signingKey: SigningKeyKind;
}

/** Decode KEY_INFO. Throws ReportFormatError for bits 31:5 set or a reserved SIGNING_KEY (2–6). */
export function decodeKeyInfo(v: number): KeyInfo {
  if (v >>> 5 !== 0) throw new ReportFormatError('KEY_INFO', `reserved bits 31:5 must be zero (0x${(v >>> 0).toString(16)})`);
  const sk = (v >>> 2) & 7;
  const signingKey: SigningKeyKind | undefined = sk === 0 ? 'VCEK' : sk === 1 ? 'VLEK' : sk === 7 ? 'NONE' : undefined;
  if (signingKey === undefined) throw new ReportFormatError('KEY_INFO.SIGNING_KEY', `value ${sk} is reserved (0 VCEK, 1 VLEK, 7 none)`);
  return { authorKeyEn: (v & 1) === 1, maskChipKey: (v & 2) === 2, signingKey };
}

/** Encode KEY_INFO. */
export function encodeKeyInfo(k: KeyInfo): number {
  return (k.authorKeyEn ? 1 : 0) | (k.maskChipKey ? 2 : 0) | (SigningKey[k.signingKey] << 2);
}

/** The set flag names of a flags object, for display and JSON (`['smt', 'debug']`). */
export function setFlags(o: object): string[] {
  return Object.entries(o)
    .filter(([, v]) => v === true)
    .map(([k]) => k);
}
