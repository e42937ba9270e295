/**
 * The /dev/sev user ABI as the simulator sees it (mirrors native/include/sev_uapi.h;
 * kernel-qemu.md §1.2–1.3, §1.6).
 */
import os from 'node:os';

export const Cmd = {
  FACTORY_RESET: 0,
  PLATFORM_STATUS: 1,
  PEK_GEN: 2,
  PEK_CSR: 3,
  PDH_GEN: 4,
  PDH_CERT_EXPORT: 5,
  PEK_CERT_IMPORT: 6,
  GET_ID: 7,
  GET_ID2: 8,
  SNP_PLATFORM_STATUS: 9,
  SNP_COMMIT: 10,
  SNP_SET_CONFIG: 11,
  SNP_VLEK_LOAD: 12,
  SEV_MAX: 13,
} as const;
export type CmdName = Exclude<keyof typeof Cmd, 'SEV_MAX'>;

export function cmdName(id: number): string {
  for (const [k, v] of Object.entries(Cmd)) if (v === id) return k;
  return `CMD_${id}`;
}

/** Firmware status codes (enum sev_ret_code). */
export const Ret = {
  SUCCESS: 0x00,
  INVALID_PLATFORM_STATE: 0x01,
  INVALID_GUEST_STATE: 0x02,
  INVALID_CONFIG: 0x03,
  INVALID_LEN: 0x04,
  ALREADY_OWNED: 0x05,
  INVALID_CERTIFICATE: 0x06,
  POLICY_FAILURE: 0x07,
  INACTIVE: 0x08,
  INVALID_ADDRESS: 0x09,
  BAD_SIGNATURE: 0x0a,
  BAD_MEASUREMENT: 0x0b,
  ASID_OWNED: 0x0c,
  INVALID_ASID: 0x0d,
  WBINVD_REQUIRED: 0x0e,
  DFFLUSH_REQUIRED: 0x0f,
  INVALID_GUEST: 0x10,
  INVALID_COMMAND: 0x11,
  ACTIVE: 0x12,
  HWSEV_RET_PLATFORM: 0x13,
  HWSEV_RET_UNSAFE: 0x14,
  UNSUPPORTED: 0x15,
  INVALID_PARAM: 0x16,
  RESOURCE_LIMIT: 0x17,
  SECURE_DATA_INVALID: 0x18,
  INVALID_PAGE_SIZE: 0x19,
  INVALID_PAGE_STATE: 0x1a,
  INVALID_MDATA_ENTRY: 0x1b,
  INVALID_PAGE_OWNER: 0x1c,
  AEAD_OFLOW: 0x1d,
  EXIT_RING_BUFFER: 0x1f,
  RMP_INIT_REQUIRED: 0x20,
  BAD_SVN: 0x21,
  BAD_VERSION: 0x22,
  SHUTDOWN_REQUIRED: 0x23,
  UPDATE_FAILED: 0x24,
  RESTORE_REQUIRED: 0x25,
  RMP_INITIALIZATION_FAILED: 0x26,
  INVALID_KEY: 0x27,
} as const;

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
