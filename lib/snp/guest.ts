/**
 * Asking the AMD Secure Processor for attestation material from inside an
 * SEV-SNP guest: SNP_GET_REPORT, SNP_GET_EXT_REPORT and SNP_GET_DERIVED_KEY on
 * /dev/sev-guest (through the addon, off the JS thread), or the configfs-tsm
 * interface (Linux ≥ 6.7, tsm.ts) where it is present. Failures are
 * SnpGuestError (one line naming the device, the request, the errno and any
 * firmware or VMM status); bad arguments are SnpGuestInputError before any I/O.
 */
import { errnoName } from '../platform/errors.js';
import { getBinding } from '../binding.js';
import { SevkitError } from '../errors.js';
import { fwStatusMessage, fwStatusName } from '../platform/constants.js';
import { CertTableError, SnpError } from './errors.js';
import { tsmAvailable, tsmReport, type TsmOptions } from './tsm.js';

/** Where the guest driver's misc device lives. */
export const DEFAULT_GUEST_DEVICE = '/dev/sev-guest';
/** REPORT_DATA is exactly this long. */
export const REPORT_DATA_SIZE = 64;
/** Highest VMPL a request may name. */
export const MAX_VMPL = 3;

/** A request argument that is out of range (REPORT_DATA not 64 bytes, VMPL above 3, a bad derived-key selector). */
export class SnpGuestInputError extends SnpError {
  constructor(field: string, message: string) {
    super('ERR_SNP_GUEST_INPUT', `${field}: ${message}`, { field });
  }
}

/** VMM error names (exitinfo2 bits 63:32). */
const VMM_NAMES: Record<number, string> = { 1: 'INVALID_LEN', 2: 'BUSY', 0xffffffff: 'GENERIC' };

const HINTS: Readonly<Record<string, string>> = {
  ENOENT: 'no SNP guest device (not an SEV-SNP guest, or the sev-guest driver is not loaded)',
  EACCES: 'permission denied (the device node is not accessible to this user)',
  ENOTTY: 'not an SNP guest device, or the driver disabled its VMPCK after an earlier firmware error (reboot the guest)',
  EINVAL: 'the driver rejected the request',
  ETIMEDOUT: "the host kept the request throttled (VMM BUSY) past the driver's deadline",
  EBUSY: 'the host is busy',
};

/** A failed guest request: errno (`sysCode`), and the firmware / VMM status when the answer carried one. */
export class SnpGuestError extends SnpError {
  /** errno name of the failure ('ENOENT', 'EIO', ...). */
  readonly sysCode: string;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
  /** 'SNP_GET_REPORT', 'SNP_GET_EXT_REPORT', 'SNP_GET_DERIVED_KEY' */
  readonly command: string | undefined;
  /** firmware status (exitinfo2 bits 31:0, or the status inside the response) */
  readonly fwStatus: number | undefined;
  readonly fwStatusName: string | undefined;
  /** VMM error (exitinfo2 bits 63:32): 1 INVALID_LEN, 2 BUSY, 0xffffffff GENERIC */
  readonly vmmError: number | undefined;
  readonly vmmErrorName: string | undefined;

  constructor(info: {
    sysCode: string;
    syscall?: string;
    path?: string;
    command?: string;
    fwStatus?: number;
    vmmError?: number;
    detail?: string;
    cause?: unknown;
  }) {
    const where = info.path ?? DEFAULT_GUEST_DEVICE;
    const what = info.syscall === 'open' ? 'open' : (info.command ?? 'request');
    let msg = `${where}: ${what} failed: ${info.sysCode}`;
    if (info.fwStatus !== undefined) {
      msg += `, firmware status ${fwStatusName(info.fwStatus)} (0x${(info.fwStatus >>> 0).toString(16).padStart(2, '0')}): ${fwStatusMessage(info.fwStatus)}`;
      if (info.detail) msg += ` (${info.detail})`;
    } else if (info.detail) {
      msg += `, ${info.detail}`;
    } else if (info.vmmError === undefined && HINTS[info.sysCode]) {
      msg += `, ${HINTS[info.sysCode]}`;
    }
    if (info.vmmError !== undefined) msg += `, VMM error ${VMM_NAMES[info.vmmError] ?? 'UNKNOWN'} (0x${info.vmmError.toString(16)})`;
    super('ERR_SNP_GUEST', msg, info.cause === undefined ? {} : { cause: info.cause });
    this.sysCode = info.sysCode;
    this.syscall = info.syscall;
    this.path = info.path;
    this.command = info.command;
    this.fwStatus = info.fwStatus;
    this.fwStatusName = info.fwStatus === undefined ? undefined : fwStatusName(info.fwStatus);
    this.vmmError = info.vmmError;
    this.vmmErrorName = info.vmmError === undefined ? undefined : (VMM_NAMES[info.vmmError] ?? 'UNKNOWN');
  }
}

interface NativeShape {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  path?: unknown;
  command?: unknown;
  fwStatus?: unknown;
  vmmError?: unknown;
  detail?: unknown;
}

/** Wrap an addon rejection into a SnpGuestError; anything else (SevkitErrors, argument errors) passes through. */
export function toSnpGuestError(e: unknown, device: string): unknown {
  if (e instanceof SevkitError || !(e instanceof Error)) return e;
  const n = e as Error & NativeShape;
  if (typeof n.code !== 'string' || typeof n.syscall !== 'string') return e;
  const code = errnoName(n.code, n.errno);
  return new SnpGuestError({
    sysCode: code,
    syscall: n.syscall,
    path: typeof n.path === 'string' ? n.path : device,
    ...(typeof n.command === 'string' ? { command: n.command } : {}),
    ...(typeof n.fwStatus === 'number' ? { fwStatus: n.fwStatus } : {}),
    ...(typeof n.vmmError === 'number' ? { vmmError: n.vmmError } : {}),
    ...(typeof n.detail === 'string' ? { detail: n.detail } : {}),
    cause: e,
  });
}

/** What to ask for. */
export interface ReportRequest {
  /** REPORT_DATA: exactly 64 bytes (a nonce, or a hash binding a key); default 64 zero bytes. */
  reportData?: Uint8Array;
  /** VMPL 0..3 the report is made for (default 0; must be ≥ the guest's own VMPL). */
  vmpl?: number;
}

/** Where to ask. */
export interface GuestDeviceOptions {
  /** The guest device (default /dev/sev-guest). */
  device?: string;
}

/** Options of requestReport: the ioctl device and the configfs-tsm tree. */
export interface RequestReportOptions extends GuestDeviceOptions {
  /** 'auto' (default): configfs-tsm when its report directory exists, else the ioctl. */
  via?: 'auto' | 'ioctl' | 'tsm';
  /** configfs-tsm options (root directory, file-system seam). */
  tsm?: TsmOptions;
}

/** A report and, when the host supplied one, its certificate table. */
export interface GuestReport {
  /** The attestation report (1184 bytes for versions 2..5). */
  report: Buffer;
  /** The certificate table trimmed to its entries' extent (empty when the host supplied none). */
  certTable: Buffer;
  /** Which interface answered. */
  source: 'ioctl' | 'tsm';
}

function checkRequest(req: ReportRequest): { data: Buffer; vmpl: number } {
  const data = req.reportData === undefined ? Buffer.alloc(REPORT_DATA_SIZE) : Buffer.from(req.reportData);
  if (data.length !== REPORT_DATA_SIZE) throw new SnpGuestInputError('REPORT_DATA', `must be exactly ${REPORT_DATA_SIZE} bytes, got ${data.length}`);
  const vmpl = req.vmpl ?? 0;
  if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > MAX_VMPL) throw new SnpGuestInputError('VMPL', `must be an integer 0..${MAX_VMPL}, got ${String(vmpl)}`);
  return { data, vmpl };
}

/** SNP_GET_REPORT → the report. Throws SnpGuestInputError, SnpGuestError. */
export async function getReport(req: ReportRequest = {}, opts: GuestDeviceOptions = {}): Promise<Buffer> {
  const { data, vmpl } = checkRequest(req);
  const device = opts.device ?? DEFAULT_GUEST_DEVICE;
  try {
    return await getBinding().snpGuestReport(device, data, vmpl);
  } catch (e) {
    throw toSnpGuestError(e, device);
  }
}

/** SNP_GET_EXT_REPORT → the report and the trimmed certificate table. Throws SnpGuestInputError, SnpGuestError, CertTableError. */
export async function getExtReport(req: ReportRequest = {}, opts: GuestDeviceOptions = {}): Promise<{ report: Buffer; certTable: Buffer }> {
  const { data, vmpl } = checkRequest(req);
  const device = opts.device ?? DEFAULT_GUEST_DEVICE;
  let r: { report: Buffer; certs: Buffer };
  try {
    r = await getBinding().snpGuestExtReport(device, data, vmpl);
  } catch (e) {
    throw toSnpGuestError(e, device);
  }
  return { report: r.report, certTable: trimCertTable(r.certs) };
}

const ENTRY = 24;

/**
 * The extent of a certificate table (spec §3.4): entries up to the all-zero
 * one, each offset at or past the header and offset+length inside the buffer;
 * returns the table cut at the furthest certificate end, or an empty Buffer
 * when it has no entries (a host that supplies none leaves zeros). Throws
 * CertTableError for an entry that points outside the buffer.
 */
export function trimCertTable(buf: Buffer): Buffer {
  let end = 0;
  let n = 0;
  for (; ; n++) {
    const at = n * ENTRY;
    if (at + ENTRY > buf.length) {
      if (n === 0 && buf.length === 0) return Buffer.alloc(0);
      throw new CertTableError(`no terminating all-zero entry within ${buf.length} bytes`);
    }
    const e = buf.subarray(at, at + ENTRY);
    if (e.every((b) => b === 0)) break;
    const off = e.readUInt32LE(16);
    const len = e.readUInt32LE(20);
    const header = (n + 1) * ENTRY;
    if (off < header || off + len > buf.length)
      throw new CertTableError(`entry ${n} (offset ${off}, length ${len}) lies outside the ${buf.length}-byte table`, { field: `entry ${n}` });
    end = Math.max(end, off + len);
  }
  if (n === 0) return Buffer.alloc(0);
  return Buffer.from(buf.subarray(0, Math.max(end, (n + 1) * ENTRY)));
}

/**
 * A report from whichever interface the guest has: configfs-tsm when its
 * report directory exists (or `via: 'tsm'`), else SNP_GET_EXT_REPORT.
 */
export async function requestReport(req: ReportRequest = {}, opts: RequestReportOptions = {}): Promise<GuestReport> {
  const checked = checkRequest(req);
  const via = opts.via ?? 'auto';
  if (via === 'tsm' || (via === 'auto' && (await tsmAvailable(opts.tsm)))) {
    const r = await tsmReport({ reportData: checked.data, vmpl: checked.vmpl }, opts.tsm);
    return { report: r.report, certTable: trimCertTable(r.auxblob), source: 'tsm' };
  }
  const r = await getExtReport({ reportData: checked.data, vmpl: checked.vmpl }, opts);
  return { ...r, source: 'ioctl' };
}

/** Which launch values a derived key is bound to (GUEST_FIELD_SELECT). */
export interface DerivedKeyFields {
  policy?: boolean;
  imageId?: boolean;
  familyId?: boolean;
  measurement?: boolean;
  guestSvn?: boolean;
  tcbVersion?: boolean;
  /** Only with message version 2 firmware (≥ 1.58); the kernel's 32-byte struct cannot carry the vector itself. */
  launchMitVector?: boolean;
}

/** An SNP_GET_DERIVED_KEY request. */
export interface DerivedKeyRequest {
  /** Root key: the chip's VCEK (default) or the VM root key (VMRK, survives migration). */
  rootKey?: 'vcek' | 'vmrk';
  /** Launch fields mixed in (default none). */
  fields?: DerivedKeyFields;
  /** VMPL the key is for (0..3, default 0). */
  vmpl?: number;
  /** GUEST_SVN to mix in (≤ the guest's own; default 0). */
  guestSvn?: number;
  /** TCB_VERSION to mix in (8 bytes as the report stores it, or its u64; ≤ CURRENT_TCB; default 0). */
  tcbVersion?: Uint8Array | bigint;
}

const FIELD_BITS: [keyof DerivedKeyFields, bigint][] = [
  ['policy', 1n],
  ['imageId', 2n],
  ['familyId', 4n],
  ['measurement', 8n],
  ['guestSvn', 16n],
  ['tcbVersion', 32n],
  ['launchMitVector', 64n],
];

/** The 32-byte `struct snp_derived_key_req`. Throws SnpGuestInputError for out-of-range values. */
export function encodeDerivedKeyRequest(req: DerivedKeyRequest = {}): Buffer {
  const out = Buffer.alloc(32);
  const root = req.rootKey ?? 'vcek';
  if (root !== 'vcek' && root !== 'vmrk') throw new SnpGuestInputError('ROOT_KEY_SELECT', `must be vcek or vmrk, got ${String(root)}`);
  out.writeUInt32LE(root === 'vcek' ? 0 : 1, 0);
  let select = 0n;
  for (const [k, bit] of FIELD_BITS) if (req.fields?.[k]) select |= bit;
  out.writeBigUInt64LE(select, 8);
  const vmpl = req.vmpl ?? 0;
  if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > MAX_VMPL) throw new SnpGuestInputError('VMPL', `must be an integer 0..${MAX_VMPL}, got ${String(vmpl)}`);
  out.writeUInt32LE(vmpl, 16);
  const svn = req.guestSvn ?? 0;
  if (!Number.isInteger(svn) || svn < 0 || svn > 0xffffffff) throw new SnpGuestInputError('GUEST_SVN', `must be a u32, got ${String(svn)}`);
  out.writeUInt32LE(svn, 20);
  const tcb = req.tcbVersion ?? 0n;
  if (typeof tcb === 'bigint') {
    if (tcb < 0n || tcb > 0xffffffffffffffffn) throw new SnpGuestInputError('TCB_VERSION', 'must be a u64');
    out.writeBigUInt64LE(tcb, 24);
  } else {
    if (tcb.length !== 8) throw new SnpGuestInputError('TCB_VERSION', `must be 8 bytes, got ${tcb.length}`);
    out.set(tcb, 24);
  }
  return out;
}

/** SNP_GET_DERIVED_KEY → the 32-byte key (the caller zeroes it when done). Throws SnpGuestInputError, SnpGuestError. */
export async function getDerivedKey(req: DerivedKeyRequest = {}, opts: GuestDeviceOptions = {}): Promise<Buffer> {
  const raw = encodeDerivedKeyRequest(req);
  const device = opts.device ?? DEFAULT_GUEST_DEVICE;
  try {
    return await getBinding().snpGuestDerivedKey(device, raw);
  } catch (e) {
    throw toSnpGuestError(e, device);
  }
}
