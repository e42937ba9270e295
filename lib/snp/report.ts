/**
 * The SEV-SNP ATTESTATION_REPORT, versions 2–5: a typed view (C names in the
 * comments), a strict parser (reserved bytes must be zero, every error names
 * the field) and the encoder the simulator signs with. The report is always
 * 1184 bytes, little-endian; the signature covers bytes 0x000–0x29F.
 *
 * Versions: v2 has no CPUID bytes (0x188–0x19F all reserved); v3 and v4 share a
 * layout with CPUID_FAM_ID/MOD_ID/STEP at 0x188; v5 adds LAUNCH_MIT_VECTOR and
 * CURRENT_MIT_VECTOR at 0x1F8/0x200. The TCB byte layout follows the product
 * (CPUID family 0x1A → Turin), so a v2 report's layout comes from the caller.
 */
import { ReportFormatError } from './errors.js';
import { decodeGuestPolicy, decodeKeyInfo, decodePlatformInfo, encodeGuestPolicy, encodeKeyInfo, encodePlatformInfo } from './flags.js';
import type { GuestPolicy, KeyInfo, PlatformInfo } from './flags.js';
import { productFromCpuid, tcbLayoutOf } from './product.js';
import type { SnpProduct, TcbLayout } from './product.js';
import { decodeTcb, encodeTcb } from './tcb.js';
import type { TcbVersion } from './tcb.js';

/** Size of every report version, bytes. */
export const REPORT_SIZE = 0x4a0;
/** Length of the signed region (bytes 0x000–0x29F). */
export const SIGNED_LENGTH = 0x2a0;
/** Versions this codec reads and writes. */
export const MIN_REPORT_VERSION = 2;
/** Highest version this codec reads and writes. */
export const MAX_REPORT_VERSION = 5;
/** Offset of SIGNATURE.R. */
export const SIGNATURE_R_OFFSET = 0x2a0;
/** Offset of SIGNATURE.S. */
export const SIGNATURE_S_OFFSET = 0x2e8;
/** Bytes of each of R and S that carry the P-384 value (the rest of their 72 bytes are zero). */
export const SIGNATURE_COMPONENT_BYTES = 48;

/** CPUID identification (v3+): family = ext + base family, model = ext_model << 4 | base model. */
export interface ReportCpuid {
  /** CPUID_FAM_ID @0x188. */
  family: number;
  /** CPUID_MOD_ID @0x189. */
  model: number;
  /** CPUID_STEP @0x18A. */
  stepping: number;
}

/** A firmware version as major.minor.build. */
export interface FirmwareVersion {
  major: number;
  minor: number;
  build: number;
}

/** A decoded attestation report. Byte fields are copies (Buffers), never views of the input. */
export interface SnpReport {
  /** VERSION @0x000 (2..5). */
  version: number;
  /** GUEST_SVN @0x004. */
  guestSvn: number;
  /** POLICY @0x008. */
  policy: GuestPolicy;
  /** FAMILY_ID @0x010, 16 bytes. */
  familyId: Buffer;
  /** IMAGE_ID @0x020, 16 bytes. */
  imageId: Buffer;
  /** VMPL @0x030 (0–3; 0xFFFFFFFF in host-requested reports). */
  vmpl: number;
  /** SIGNATURE_ALGO @0x034 (1 = ECDSA P-384 with SHA-384). */
  signatureAlgo: number;
  /** CURRENT_TCB @0x038. */
  currentTcb: TcbVersion;
  /** PLATFORM_INFO @0x040. */
  platformInfo: PlatformInfo;
  /** KEY_INFO @0x048 (AUTHOR_KEY_EN, MASK_CHIP_KEY, SIGNING_KEY). */
  keyInfo: KeyInfo;
  /** REPORT_DATA @0x050, 64 bytes chosen by the guest. */
  reportData: Buffer;
  /** MEASUREMENT @0x090, 48-byte SHA-384 launch digest. */
  measurement: Buffer;
  /** HOST_DATA @0x0C0, 32 bytes supplied by the host at launch. */
  hostData: Buffer;
  /** ID_KEY_DIGEST @0x0E0, 48 bytes. */
  idKeyDigest: Buffer;
  /** AUTHOR_KEY_DIGEST @0x110, 48 bytes. */
  authorKeyDigest: Buffer;
  /** REPORT_ID @0x140, 32 bytes. */
  reportId: Buffer;
  /** REPORT_ID_MA @0x160, 32 bytes (all 0xFF without a migration agent). */
  reportIdMa: Buffer;
  /** REPORTED_TCB @0x180: the TCB the VCEK is derived from. */
  reportedTcb: TcbVersion;
  /** CPUID_FAM_ID/MOD_ID/STEP @0x188 (v3+); undefined for v2. */
  cpuid: ReportCpuid | undefined;
  /** CHIP_ID @0x1A0, 64 bytes (Turin: 8 significant bytes; all zero when masked). */
  chipId: Buffer;
  /** COMMITTED_TCB @0x1E0. */
  committedTcb: TcbVersion;
  /** CURRENT_BUILD/MINOR/MAJOR @0x1E8. */
  currentVersion: FirmwareVersion;
  /** COMMITTED_BUILD/MINOR/MAJOR @0x1EC. */
  committedVersion: FirmwareVersion;
  /** LAUNCH_TCB @0x1F0. */
  launchTcb: TcbVersion;
  /** LAUNCH_MIT_VECTOR @0x1F8 (v5); undefined before v5. */
  launchMitVector: bigint | undefined;
  /** CURRENT_MIT_VECTOR @0x200 (v5); undefined before v5. */
  currentMitVector: bigint | undefined;
  /** SIGNATURE.R @0x2A0: the 48 significant bytes, little-endian as stored. */
  signatureR: Buffer;
  /** SIGNATURE.S @0x2E8: the 48 significant bytes, little-endian as stored. */
  signatureS: Buffer;
}

/** Options for parseReport. */
export interface ParseReportOptions {
  /** TCB layout for a report without CPUID bytes (v2): default 'legacy' (Milan/Genoa). Ignored for v3+, whose CPUID decides. */
  layout?: TcbLayout;
  /** Accept versions outside 2..5 (parsed with the v5 layout above 5); default false. */
  allowAnyVersion?: boolean;
}

/** The reserved (must-be-zero) ranges of a version, [start, end) with the C name used in errors. */
function reservedRanges(version: number): [number, number, string][] {
  const r: [number, number, string][] = [[0x04c, 0x050, 'reserved@0x04C']];
  if (version === 2) r.push([0x188, 0x1a0, 'reserved@0x188 (v2 CPUID bytes)']);
  else r.push([0x18b, 0x1a0, 'reserved@0x18B']);
  r.push([0x1eb, 0x1ec, 'reserved@0x1EB'], [0x1ef, 0x1f0, 'reserved@0x1EF']);
  if (version < 5) r.push([0x1f8, 0x208, 'reserved@0x1F8 (mitigation vectors before v5)']);
  r.push(
    [0x208, 0x2a0, 'reserved@0x208'],
    [SIGNATURE_R_OFFSET + SIGNATURE_COMPONENT_BYTES, SIGNATURE_S_OFFSET, 'SIGNATURE.R high bytes'],
    [SIGNATURE_S_OFFSET + SIGNATURE_COMPONENT_BYTES, 0x330, 'SIGNATURE.S high bytes'],
    [0x330, REPORT_SIZE, 'reserved@0x330 (signature area)'],
  );
  return r;
}

/** The TCB layout of a report's bytes: CPUID family for v3+, else `fallback`. */
export function reportTcbLayout(b: Uint8Array, fallback: TcbLayout = 'legacy'): TcbLayout {
  const version = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true);
  if (version < 3) return fallback;
  const p = productFromCpuid(b[0x188]!, b[0x189]!);
  if (p !== undefined) return tcbLayoutOf(p);
  return b[0x188] === 0x1a ? 'turin' : fallback;
}

/**
 * Parse an attestation report. Throws ReportFormatError naming the field for a
 * wrong size, a version outside 2..5, a non-zero reserved byte, POLICY bit 17
 * clear or bits 63:26 set, KEY_INFO bits 31:5 set or a reserved SIGNING_KEY.
 * Semantic checks (signature algorithm, VMPL range) are the verifier's job.
 */
export function parseReport(bytes: Uint8Array, opts: ParseReportOptions = {}): SnpReport {
  if (bytes.length !== REPORT_SIZE) throw new ReportFormatError('size', `must be exactly ${REPORT_SIZE} bytes, got ${bytes.length}`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = b.readUInt32LE(0);
  if (!opts.allowAnyVersion && (version < MIN_REPORT_VERSION || version > MAX_REPORT_VERSION)) {
    throw new ReportFormatError('VERSION', `${version} is not supported (2..5)`);
  }
  for (const [start, end, name] of reservedRanges(version)) {
    for (let i = start; i < end; i++)
      if (b[i] !== 0) throw new ReportFormatError(name, `byte 0x${i.toString(16).toUpperCase()} must be zero, is 0x${b[i]!.toString(16)}`);
  }
  const layout = reportTcbLayout(b, opts.layout ?? 'legacy');
  const copy = (off: number, len: number) => Buffer.from(b.subarray(off, off + len));
  const fw = (off: number): FirmwareVersion => ({ build: b[off]!, minor: b[off + 1]!, major: b[off + 2]! });
  return {
    version,
    guestSvn: b.readUInt32LE(0x004),
    policy: decodeGuestPolicy(b.readBigUInt64LE(0x008)),
    familyId: copy(0x010, 16),
    imageId: copy(0x020, 16),
    vmpl: b.readUInt32LE(0x030),
    signatureAlgo: b.readUInt32LE(0x034),
    currentTcb: decodeTcb(b, layout, 0x038, 'CURRENT_TCB'),
    platformInfo: decodePlatformInfo(b.readBigUInt64LE(0x040)),
    keyInfo: decodeKeyInfo(b.readUInt32LE(0x048)),
    reportData: copy(0x050, 64),
    measurement: copy(0x090, 48),
    hostData: copy(0x0c0, 32),
    idKeyDigest: copy(0x0e0, 48),
    authorKeyDigest: copy(0x110, 48),
    reportId: copy(0x140, 32),
    reportIdMa: copy(0x160, 32),
    reportedTcb: decodeTcb(b, layout, 0x180, 'REPORTED_TCB'),
    cpuid: version >= 3 ? { family: b[0x188]!, model: b[0x189]!, stepping: b[0x18a]! } : undefined,
    chipId: copy(0x1a0, 64),
    committedTcb: decodeTcb(b, layout, 0x1e0, 'COMMITTED_TCB'),
    currentVersion: fw(0x1e8),
    committedVersion: fw(0x1ec),
    launchTcb: decodeTcb(b, layout, 0x1f0, 'LAUNCH_TCB'),
    launchMitVector: version >= 5 ? b.readBigUInt64LE(0x1f8) : undefined,
    currentMitVector: version >= 5 ? b.readBigUInt64LE(0x200) : undefined,
    signatureR: copy(SIGNATURE_R_OFFSET, SIGNATURE_COMPONENT_BYTES),
    signatureS: copy(SIGNATURE_S_OFFSET, SIGNATURE_COMPONENT_BYTES),
  };
}

function put(out: Buffer, off: number, v: Uint8Array, len: number, field: string): void {
  if (v.length !== len) throw new ReportFormatError(field, `must be ${len} bytes, got ${v.length}`);
  out.set(v, off);
}

function u32(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ReportFormatError(field, `must be a u32, got ${v}`);
  return v;
}

function u64(v: bigint, field: string): bigint {
  if (v < 0n || v > 0xffffffffffffffffn) throw new ReportFormatError(field, 'must be a u64');
  return v;
}

function u8(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new ReportFormatError(field, `must be 0..255, got ${v}`);
  return v;
}

/**
 * Encode a report into its 1184 bytes (the inverse of parseReport). The TCBs are
 * written in their own layouts; v2 must have no CPUID, v3+ must have one;
 * mitigation vectors only in v5. The signature bytes are copied as given (zero
 * them, hash `signedRegion()`, then `setSignature()` to sign). Throws
 * ReportFormatError naming the field for a wrong length or value.
 */
export function encodeReport(r: SnpReport): Buffer {
  if (!Number.isInteger(r.version) || r.version < MIN_REPORT_VERSION || r.version > MAX_REPORT_VERSION)
    throw new ReportFormatError('VERSION', `${r.version} is not supported (2..5)`);
  const out = Buffer.alloc(REPORT_SIZE);
  out.writeUInt32LE(r.version, 0x000);
  out.writeUInt32LE(u32(r.guestSvn, 'GUEST_SVN'), 0x004);
  out.writeBigUInt64LE(encodeGuestPolicy(r.policy), 0x008);
  put(out, 0x010, r.familyId, 16, 'FAMILY_ID');
  put(out, 0x020, r.imageId, 16, 'IMAGE_ID');
  out.writeUInt32LE(u32(r.vmpl, 'VMPL'), 0x030);
  out.writeUInt32LE(u32(r.signatureAlgo, 'SIGNATURE_ALGO'), 0x034);
  out.set(encodeTcb(r.currentTcb), 0x038);
  out.writeBigUInt64LE(u64(encodePlatformInfo(r.platformInfo), 'PLATFORM_INFO'), 0x040);
  out.writeUInt32LE(encodeKeyInfo(r.keyInfo), 0x048);
  put(out, 0x050, r.reportData, 64, 'REPORT_DATA');
  put(out, 0x090, r.measurement, 48, 'MEASUREMENT');
  put(out, 0x0c0, r.hostData, 32, 'HOST_DATA');
  put(out, 0x0e0, r.idKeyDigest, 48, 'ID_KEY_DIGEST');
  put(out, 0x110, r.authorKeyDigest, 48, 'AUTHOR_KEY_DIGEST');
  put(out, 0x140, r.reportId, 32, 'REPORT_ID');
  put(out, 0x160, r.reportIdMa, 32, 'REPORT_ID_MA');
  out.set(encodeTcb(r.reportedTcb), 0x180);
  if (r.version === 2) {
    if (r.cpuid !== undefined) throw new ReportFormatError('CPUID_FAM_ID', 'a version 2 report has no CPUID bytes');
  } else {
    if (r.cpuid === undefined) throw new ReportFormatError('CPUID_FAM_ID', `a version ${r.version} report needs CPUID bytes`);
    out[0x188] = u8(r.cpuid.family, 'CPUID_FAM_ID');
    out[0x189] = u8(r.cpuid.model, 'CPUID_MOD_ID');
    out[0x18a] = u8(r.cpuid.stepping, 'CPUID_STEP');
  }
  put(out, 0x1a0, r.chipId, 64, 'CHIP_ID');
  out.set(encodeTcb(r.committedTcb), 0x1e0);
  const fw = (off: number, v: FirmwareVersion, name: string) => {
    out[off] = u8(v.build, `${name}_BUILD`);
    out[off + 1] = u8(v.minor, `${name}_MINOR`);
    out[off + 2] = u8(v.major, `${name}_MAJOR`);
  };
  fw(0x1e8, r.currentVersion, 'CURRENT');
  fw(0x1ec, r.committedVersion, 'COMMITTED');
  out.set(encodeTcb(r.launchTcb), 0x1f0);
  if (r.version >= 5) {
    out.writeBigUInt64LE(u64(r.launchMitVector ?? 0n, 'LAUNCH_MIT_VECTOR'), 0x1f8);
    out.writeBigUInt64LE(u64(r.currentMitVector ?? 0n, 'CURRENT_MIT_VECTOR'), 0x200);
  } else if ((r.launchMitVector ?? 0n) !== 0n || (r.currentMitVector ?? 0n) !== 0n) {
    throw new ReportFormatError('LAUNCH_MIT_VECTOR', `mitigation vectors exist only from version 5 (this is ${r.version})`);
  }
  put(out, SIGNATURE_R_OFFSET, r.signatureR, SIGNATURE_COMPONENT_BYTES, 'SIGNATURE.R');
  put(out, SIGNATURE_S_OFFSET, r.signatureS, SIGNATURE_COMPONENT_BYTES, 'SIGNATURE.S');
  return out;
}

/** The signed bytes 0x000–0x29F of an encoded report (a view, not a copy). */
export function signedRegion(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== REPORT_SIZE) throw new ReportFormatError('size', `must be exactly ${REPORT_SIZE} bytes, got ${bytes.length}`);
  return bytes.subarray(0, SIGNED_LENGTH);
}

/** The report signature as IEEE P1363 R‖S (96 bytes, big-endian each), as node:crypto verifies it. */
export function signatureP1363(r: Pick<SnpReport, 'signatureR' | 'signatureS'>): Buffer {
  return Buffer.concat([Buffer.from(r.signatureR).reverse(), Buffer.from(r.signatureS).reverse()]);
}

/**
 * Write a P1363 R‖S signature (96 bytes, as node:crypto's `sign` with
 * `dsaEncoding: 'ieee-p1363'` returns) into an encoded report, little-endian,
 * in place. Throws ReportFormatError for a signature that is not 96 bytes.
 */
export function setSignature(report: Buffer, p1363: Uint8Array): void {
  if (report.length !== REPORT_SIZE) throw new ReportFormatError('size', `must be exactly ${REPORT_SIZE} bytes, got ${report.length}`);
  const n = SIGNATURE_COMPONENT_BYTES;
  if (p1363.length !== 2 * n) throw new ReportFormatError('SIGNATURE', `an R‖S signature is ${2 * n} bytes, got ${p1363.length}`);
  report.fill(0, SIGNATURE_R_OFFSET, REPORT_SIZE);
  report.set(Buffer.from(p1363.subarray(0, n)).reverse(), SIGNATURE_R_OFFSET);
  report.set(Buffer.from(p1363.subarray(n)).reverse(), SIGNATURE_S_OFFSET);
}

/** Whether a report's signature area is all zero (SIGNING_KEY none or MASK_CHIP_KEY). */
export function signatureIsZero(r: Pick<SnpReport, 'signatureR' | 'signatureS'>): boolean {
  return r.signatureR.every((x) => x === 0) && r.signatureS.every((x) => x === 0);
}

/** The product a report names through its CPUID bytes (v3+), or undefined (v2, or an unknown part). */
export function reportProduct(r: Pick<SnpReport, 'cpuid'>): SnpProduct | undefined {
  return r.cpuid === undefined ? undefined : productFromCpuid(r.cpuid.family, r.cpuid.model);
}

/** `1.55.29`-style rendering. */
export function formatFirmwareVersion(v: FirmwareVersion): string {
  return `${v.major}.${v.minor}.${v.build}`;
}
