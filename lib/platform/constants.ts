/**
 * /dev/sev constants under their C names (include/uapi/linux/psp-sev.h and
 * include/linux/psp-sev.h; kernel-qemu.md §1.2, §1.6). The native addon
 * exports the same numbers from native/include/sev_uapi.h and a test checks
 * that both agree.
 */

/** `SEV_ISSUE_CMD` = _IOWR('S', 0x0, struct sev_issue_cmd). */
export const SEV_ISSUE_CMD = 0xc0105300;

/** `SEV_FW_BLOB_MAX_SIZE`: the driver's limit for PEK_CSR / PDH_CERT_EXPORT / PEK_CERT_IMPORT blobs. */
export const SEV_FW_BLOB_MAX_SIZE = 0x4000;

/** Size of one SEV certificate (PDH, PEK, OCA, CEK): `SEV_CERT` in sev-tool. */
export const SEV_PLATFORM_CERT_SIZE = 0x824;

/** Command ids (`enum` in uapi psp-sev.h). */
export const SevCmd = {
  SEV_FACTORY_RESET: 0,
  SEV_PLATFORM_STATUS: 1,
  SEV_PEK_GEN: 2,
  SEV_PEK_CSR: 3,
  SEV_PDH_GEN: 4,
  SEV_PDH_CERT_EXPORT: 5,
  SEV_PEK_CERT_IMPORT: 6,
  SEV_GET_ID: 7,
  SEV_GET_ID2: 8,
  SNP_PLATFORM_STATUS: 9,
  SNP_COMMIT: 10,
  SNP_SET_CONFIG: 11,
  SNP_VLEK_LOAD: 12,
  SEV_MAX: 13,
} as const;
/** A /dev/sev command name, a key of SevCmd ('SEV_PLATFORM_STATUS', ...). */
export type SevCmdName = keyof typeof SevCmd;

/** Firmware status codes (`enum sev_ret_code`), including the SNP-era ones. */
export const SevRet = {
  SEV_RET_NO_FW_CALL: -1,
  SEV_RET_SUCCESS: 0x00,
  SEV_RET_INVALID_PLATFORM_STATE: 0x01,
  SEV_RET_INVALID_GUEST_STATE: 0x02,
  SEV_RET_INVALID_CONFIG: 0x03,
  SEV_RET_INVALID_LEN: 0x04,
  SEV_RET_ALREADY_OWNED: 0x05,
  SEV_RET_INVALID_CERTIFICATE: 0x06,
  SEV_RET_POLICY_FAILURE: 0x07,
  SEV_RET_INACTIVE: 0x08,
  SEV_RET_INVALID_ADDRESS: 0x09,
  SEV_RET_BAD_SIGNATURE: 0x0a,
  SEV_RET_BAD_MEASUREMENT: 0x0b,
  SEV_RET_ASID_OWNED: 0x0c,
  SEV_RET_INVALID_ASID: 0x0d,
  SEV_RET_WBINVD_REQUIRED: 0x0e,
  SEV_RET_DFFLUSH_REQUIRED: 0x0f,
  SEV_RET_INVALID_GUEST: 0x10,
  SEV_RET_INVALID_COMMAND: 0x11,
  SEV_RET_ACTIVE: 0x12,
  SEV_RET_HWSEV_RET_PLATFORM: 0x13,
  SEV_RET_HWSEV_RET_UNSAFE: 0x14,
  SEV_RET_UNSUPPORTED: 0x15,
  SEV_RET_INVALID_PARAM: 0x16,
  SEV_RET_RESOURCE_LIMIT: 0x17,
  SEV_RET_SECURE_DATA_INVALID: 0x18,
  SEV_RET_INVALID_PAGE_SIZE: 0x19,
  SEV_RET_INVALID_PAGE_STATE: 0x1a,
  SEV_RET_INVALID_MDATA_ENTRY: 0x1b,
  SEV_RET_INVALID_PAGE_OWNER: 0x1c,
  SEV_RET_AEAD_OFLOW: 0x1d,
  SEV_RET_EXIT_RING_BUFFER: 0x1f,
  SEV_RET_RMP_INIT_REQUIRED: 0x20,
  SEV_RET_BAD_SVN: 0x21,
  SEV_RET_BAD_VERSION: 0x22,
  SEV_RET_SHUTDOWN_REQUIRED: 0x23,
  SEV_RET_UPDATE_FAILED: 0x24,
  SEV_RET_RESTORE_REQUIRED: 0x25,
  SEV_RET_RMP_INITIALIZATION_FAILED: 0x26,
  SEV_RET_INVALID_KEY: 0x27,
} as const;
/** A firmware status name, a key of SevRet ('SEV_RET_INVALID_PLATFORM_STATE', ...). */
export type SevRetName = keyof typeof SevRet;

/**
 * Human text per firmware status: QEMU's `sev_fw_errlist` where it has one,
 * otherwise the AMD SEV/SNP API spec's meaning.
 */
export const SEV_RET_MESSAGES: Readonly<Record<number, string>> = {
  [-1]: 'no firmware call was made',
  0x00: 'success',
  0x01: 'Platform state is invalid',
  0x02: 'Guest state is invalid',
  0x03: 'Platform configuration is invalid',
  0x04: 'Buffer too small',
  0x05: 'Platform is already owned',
  0x06: 'Certificate is invalid',
  0x07: 'Policy is not allowed',
  0x08: 'Guest is not active',
  0x09: 'Invalid address',
  0x0a: 'Bad signature',
  0x0b: 'Bad measurement',
  0x0c: 'ASID is already owned',
  0x0d: 'Invalid ASID',
  0x0e: 'WBINVD is required',
  0x0f: 'DF_FLUSH is required',
  0x10: 'Guest handle is invalid',
  0x11: 'Invalid command',
  0x12: 'Guest is active',
  0x13: 'Hardware error',
  0x14: 'Hardware unsafe',
  0x15: 'Feature not supported',
  0x16: 'Invalid parameter',
  0x17: 'Required firmware resource depleted',
  0x18: 'Part-specific integrity check failure',
  0x19: 'Invalid page size',
  0x1a: 'Invalid page state',
  0x1b: 'Invalid metadata entry',
  0x1c: 'Invalid page owner',
  0x1d: 'AEAD algorithm would have overflowed',
  0x1f: 'RMP ring buffer exit',
  0x20: 'RMP must be initialised first',
  0x21: 'Bad security version number',
  0x22: 'Bad version',
  0x23: 'SNP shutdown is required',
  0x24: 'Firmware update failed',
  0x25: 'Restore is required',
  0x26: 'RMP initialisation failed',
  0x27: 'Invalid key',
};

const RET_BY_CODE = new Map<number, SevRetName>(Object.entries(SevRet).map(([k, v]) => [v, k as SevRetName]));

/** `SEV_RET_*` name of a firmware status; unknown codes get `SEV_RET_UNKNOWN_0x..`. 0xFFFFFFFF is NO_FW_CALL. */
export function fwStatusName(code: number): string {
  const c = code === 0xffffffff ? -1 : code;
  return RET_BY_CODE.get(c) ?? `SEV_RET_UNKNOWN_0x${(c >>> 0).toString(16)}`;
}

/** Human description of a firmware status. */
export function fwStatusMessage(code: number): string {
  const c = code === 0xffffffff ? -1 : code;
  return SEV_RET_MESSAGES[c] ?? 'unknown firmware status';
}

/** Platform states (`enum sev_state`). */
export const SevStateCode = {
  SEV_STATE_UNINIT: 0,
  SEV_STATE_INIT: 1,
  SEV_STATE_WORKING: 2,
} as const;

/** PLATFORM_STATUS flags: bit 0 owner (1 = externally owned). */
export const SEV_STATUS_FLAGS_OWNER = 0x0001;
/** PLATFORM_STATUS flags: bit 8, firmware INIT'ed with SEV-ES (TMR given). */
export const SEV_STATUS_FLAGS_CONFIG_ES = 0x0100;

/** SNP_PLATFORM_STATUS flags word (bit order of the kernel's LSB-first bitfields). */
export const SnpStatusFlag = {
  mask_chip_id: 1 << 0,
  mask_chip_key: 1 << 1,
  vlek_en: 1 << 2,
  feature_info: 1 << 3,
  rapl_dis: 1 << 4,
  ciphertext_hiding_cap: 1 << 5,
  ciphertext_hiding_en: 1 << 6,
} as const;

/** SNP_SET_CONFIG flags word. */
export const SnpConfigFlag = {
  mask_chip_id: 1 << 0,
  mask_chip_key: 1 << 1,
} as const;
