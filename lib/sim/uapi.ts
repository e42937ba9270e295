/**
 * The /dev/sev user ABI as the simulator sees it (mirrors native/include/sev_uapi.h;
 * kernel-qemu.md §1.2–1.3, §1.6).
 */
import os from 'node:os';
import { SEV_FW_BLOB_MAX_SIZE, SEV_PLATFORM_CERT_SIZE, SevCmd, SevRet, SevStateCode } from '../platform/constants.js';
import { SEV_STRUCTS } from '../platform/layout.js';

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

/** enum sev_state, by short name. */
export const PlatformState = unprefixed(SevStateCode, 'SEV_STATE_');

/** Driver limit on PEK_CSR / PDH_CERT_EXPORT / PEK_CERT_IMPORT blobs (SEV_FW_BLOB_MAX_SIZE). */
export const FW_BLOB_MAX_SIZE = SEV_FW_BLOB_MAX_SIZE;
export const SEV_CERT_SIZE = SEV_PLATFORM_CERT_SIZE;
export const CHIP_ID_SIZE = 64;

const { sev_user_data_pek_csr: csr, sev_user_data_pdh_cert_export: pdh, sev_user_data_get_id2: id2 } = SEV_STRUCTS;

/** Offsets of (address, length) pairs of the blobs a command copies out (the shim accepts only these). */
export const OUT_BLOBS = {
  pekCsr: { addrOff: csr.offsets.address, lenOff: csr.offsets.length },
  pdh: { addrOff: pdh.offsets.pdh_cert_address, lenOff: pdh.offsets.pdh_cert_len },
  chain: { addrOff: pdh.offsets.cert_chain_address, lenOff: pdh.offsets.cert_chain_len },
  getId2: { addrOff: id2.offsets.address, lenOff: id2.offsets.length },
} as const;
