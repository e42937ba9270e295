/**
 * The /dev/sev user ABI as the simulator sees it (mirrors native/include/sev_uapi.h;
 * kernel-qemu.md §1.2–1.3, §1.6).
 */
import os from 'node:os';
import { SevCmd, SevRet } from '../platform/constants.js';

/**
 * The simulator's short names for the ABI values of lib/platform/constants.ts
 * (`SEV_PEK_GEN` → `PEK_GEN`, `SEV_RET_INVALID_LEN` → `INVALID_LEN`): one table of
 * numbers for the addon's side and the model's, so they cannot drift apart.
 */
type Unprefixed<T, P extends string> = { readonly [K in keyof T as K extends `${P}${infer R}` ? R : K]: T[K] };
function unprefixed<T extends Record<string, number>, P extends string>(table: T, prefix: P): Unprefixed<T, P> {
  return Object.fromEntries(Object.entries(table).map(([k, v]) => [k.startsWith(prefix) ? k.slice(prefix.length) : k, v])) as Unprefixed<T, P>;
}

const { MAX: _max, ...commands } = unprefixed(SevCmd, 'SEV_');
export const Cmd = { ...commands, SEV_MAX: SevCmd.SEV_MAX } as const;
export type CmdName = Exclude<keyof typeof Cmd, 'SEV_MAX'>;

export function cmdName(id: number): string {
  for (const [k, v] of Object.entries(Cmd)) if (v === id) return k;
  return `CMD_${id}`;
}

/** Firmware status codes (enum sev_ret_code); NO_FW_CALL is kernel-only, never a firmware answer. */
const { NO_FW_CALL: _noFwCall, ...statuses } = unprefixed(SevRet, 'SEV_RET_');
export const Ret = statuses;

/** Accepts 10, "0x0a", "BAD_SIGNATURE" or "SEV_RET_BAD_SIGNATURE". */
export function parseRet(v: number | string): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : undefined;
  const s = v.trim();
  if (/^(0x[0-9a-f]+|\d+)$/i.test(s)) return Number(s);
  const name = s.toUpperCase().replace(/^SEV_RET_/, '');
  return (Ret as Record<string, number>)[name];
}

/** Errno values (Linux). ENOTSUPP is kernel-internal 524 and leaks from GET_ID on old firmware. */
export const Errno = {
  EPERM: os.constants.errno.EPERM,
  ENOENT: os.constants.errno.ENOENT,
  EIO: os.constants.errno.EIO,
  ENXIO: os.constants.errno.ENXIO,
  ENOMEM: os.constants.errno.ENOMEM,
  EACCES: os.constants.errno.EACCES,
  EFAULT: os.constants.errno.EFAULT,
  EBUSY: os.constants.errno.EBUSY,
  ENODEV: os.constants.errno.ENODEV,
  EINVAL: os.constants.errno.EINVAL,
  ENOTTY: os.constants.errno.ENOTTY,
  ETIMEDOUT: os.constants.errno.ETIMEDOUT,
  ENOTSUPP: 524,
} as const;

export function parseErrno(v: number | string): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 ? v : undefined;
  if (/^\d+$/.test(v)) return Number(v);
  const name = v.toUpperCase();
  if (name === 'ENOTSUPP') return 524;
  return (os.constants.errno as Record<string, number>)[name];
}

export const PlatformState = { UNINIT: 0, INIT: 1, WORKING: 2 } as const;
export const STATUS_FLAG_OWNER = 0x0001;
export const STATUS_FLAG_CONFIG_ES = 0x0100;

/** Driver limit on PEK_CSR / PDH_CERT_EXPORT / PEK_CERT_IMPORT blobs (SEV_FW_BLOB_MAX_SIZE). */
export const FW_BLOB_MAX_SIZE = 0x4000;
export const SEV_CERT_SIZE = 0x824;
export const CHIP_ID_SIZE = 64;

/** Byte size of the struct each command's `data` points to. */
export const STRUCT_SIZE: Record<number, number> = {
  [Cmd.FACTORY_RESET]: 0,
  [Cmd.PLATFORM_STATUS]: 12,
  [Cmd.PEK_GEN]: 0,
  [Cmd.PEK_CSR]: 12,
  [Cmd.PDH_GEN]: 0,
  [Cmd.PDH_CERT_EXPORT]: 24,
  [Cmd.PEK_CERT_IMPORT]: 24,
  [Cmd.GET_ID]: 128,
  [Cmd.GET_ID2]: 12,
  [Cmd.SNP_PLATFORM_STATUS]: 32,
  [Cmd.SNP_COMMIT]: 0,
  [Cmd.SNP_SET_CONFIG]: 64,
  [Cmd.SNP_VLEK_LOAD]: 16,
};

/** Offsets of (address, length) pairs of the blobs a command copies out. */
export const OUT_BLOBS = {
  pekCsr: { addrOff: 0, lenOff: 8 },
  pdh: { addrOff: 0, lenOff: 8 },
  chain: { addrOff: 12, lenOff: 20 },
  getId2: { addrOff: 0, lenOff: 8 },
} as const;
