/**
 * SevError: every failure of a /dev/sev command, in Node's SystemError shape
 * (code, errno, syscall, path) plus the SEV command and, for firmware failures
 * (EIO), the firmware status number and SEV_RET_* name. Its message is one line
 * naming the device path, the code and the firmware status, ready for the CLI.
 */
import { getSystemErrorName } from 'node:util';
import { SevkitError } from '../errors.js';
import { fwStatusMessage, fwStatusName } from './constants.js';

/**
 * The fields a SevError is built from: the errno-style code, the syscall and device, and the firmware status
 * when the kernel returned EIO.
 */
export interface SevErrorInfo {
  /** errno name ('ENOENT', 'EIO', 'ENOTSUPP', ...) or a protocol code ('EPROTO'). */
  code: string;
  /** Negative errno as in Node's SystemError (-2 for ENOENT); 0 when not from a syscall. */
  errno?: number;
  syscall?: 'open' | 'ioctl' | string;
  /** Device path. */
  path?: string;
  /** SEV command name without prefix ('PDH_CERT_EXPORT'). */
  command?: string;
  /** sev_issue_cmd.error when the kernel returned EIO. */
  fwStatus?: number;
  /** Protocol detail from the addon (bad lengths). */
  detail?: string;
  /** Overrides the generated message. */
  message?: string;
  cause?: unknown;
}

/** Short operator-facing explanation per errno, for the one-line message. */
const HINTS: Readonly<Record<string, string>> = {
  ENOENT: 'no such device (is the ccp module loaded and SEV enabled in the BIOS?)',
  ENODEV: 'no SEV firmware behind this device',
  EACCES: 'permission denied (the device node is not accessible to this user)',
  EPERM: 'operation needs the device opened read-write (write permission on the node)',
  EROFS: 'the device node is on a read-only file system',
  ENOTTY: 'not a SEV device (SEV_ISSUE_CMD is not understood)',
  EBUSY: 'firmware busy (guests running, or the PSP stopped responding)',
  EINVAL: 'the kernel rejected the command (unsupported by this kernel, or the platform is not initialised)',
  EFAULT: 'the kernel could not access the command buffers',
  ENOMEM: 'the kernel is out of memory',
  ETIMEDOUT: 'the PSP did not answer in time',
  ENOTSUPP: 'the firmware is too old for this command (needs SEV API >= 0.16)',
  EISDIR: 'is a directory, not a device',
};

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(2, '0')}`;
}

/**
 * Every failure of a /dev/sev command: Node's SystemError shape (code, errno, syscall, path) plus the SEV
 * command and, for EIO, the firmware status number and its SEV_RET_* name.
 */
export class SevError extends SevkitError {
  readonly errno: number;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
  readonly command: string | undefined;
  readonly fwStatus: number | undefined;
  readonly fwStatusName: string | undefined;
  readonly detail: string | undefined;

  constructor(info: SevErrorInfo) {
    super(info.code, info.message ?? SevError.describe(info), { cause: info.cause });
    this.errno = info.errno ?? 0;
    this.syscall = info.syscall;
    this.path = info.path;
    this.command = info.command;
    this.fwStatus = info.fwStatus === 0xffffffff ? -1 : info.fwStatus;
    this.fwStatusName = info.fwStatus === undefined ? undefined : fwStatusName(info.fwStatus);
    this.detail = info.detail;
  }

  /** `<path>: <what> failed: <CODE>, firmware status <SEV_RET_*> (0x..): <text>` — one line. */
  static describe(info: SevErrorInfo): string {
    const where = info.path ?? 'SEV device';
    const what = info.syscall === 'open' ? 'open' : (info.command ?? info.syscall ?? 'command');
    let msg = `${where}: ${what} failed: ${info.code}`;
    if (info.fwStatus !== undefined) {
      msg += `, firmware status ${fwStatusName(info.fwStatus)} (${hex(info.fwStatus)}): ${fwStatusMessage(info.fwStatus)}`;
    } else if (info.detail) {
      msg += `, ${info.detail}`;
    } else if (HINTS[info.code]) {
      msg += `, ${HINTS[info.code]}`;
    }
    return msg;
  }

  /** True when this is a firmware failure with the given SEV_RET_* name. */
  isFirmware(name: string): boolean {
    return this.fwStatusName === name;
  }
}

interface NativeErrorShape {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  path?: unknown;
  command?: unknown;
  fwStatus?: unknown;
  detail?: unknown;
  message?: unknown;
}

/**
 * Wrap a rejection from the binding into a SevError; anything that is not an
 * addon system error (argument TypeErrors, SevkitErrors) passes through unchanged.
 */
export function toSevError(e: unknown, device?: string): unknown {
  if (e instanceof SevkitError) return e;
  if (!(e instanceof Error)) return e;
  const n = e as Error & NativeErrorShape;
  if (typeof n.code !== 'string' || typeof n.syscall !== 'string') return e;
  const code = errnoName(n.code, n.errno);
  return new SevError({
    code,
    errno: typeof n.errno === 'number' ? n.errno : 0,
    syscall: n.syscall,
    path: typeof n.path === 'string' ? n.path : device,
    command: typeof n.command === 'string' ? n.command : undefined,
    fwStatus: typeof n.fwStatus === 'number' ? n.fwStatus : undefined,
    detail: typeof n.detail === 'string' ? n.detail : undefined,
    cause: e,
  });
}

/**
 * The errno name of an addon error: the addon names the errnos a SEV device can produce; anything else
 * arrives as "E<n>" and gets Node's own name for its (negative) errno, or stays "E<n>" when Node has none.
 */
export function errnoName(code: string, errno: unknown): string {
  if (!/^E\d+$/.test(code) || typeof errno !== 'number' || errno >= 0) return code;
  try {
    return getSystemErrorName(errno);
  } catch {
    return code;
  }
}
