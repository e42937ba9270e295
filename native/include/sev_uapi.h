/*
 * sev_uapi.h - vendored definitions of the Linux /dev/sev user ABI.
 *
 * Why vendored: Debian bookworm's <linux/psp-sev.h> (linux-libc-dev 6.1) stops at
 * SEV_GET_ID2 and SEV_RET_SECURE_DATA_INVALID; it has none of the SNP commands,
 * structs or status codes. The addon and the simulator shim must agree on one
 * layout regardless of the build host, so everything lives here under SEVKIT_
 * names (no clash if someone also includes the system header).
 *
 * Layouts follow include/uapi/linux/psp-sev.h (Linux >= 6.11); all user structs are
 * packed and little-endian. Sizes and offsets are pinned with static asserts
 * below and exported to TypeScript, which checks its own decoders against them.
 *
 * Usable from C (the LD_PRELOAD shim) and C++ (the addon).
 */
#ifndef SEVKIT_SEV_UAPI_H
#define SEVKIT_SEV_UAPI_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
#define SEVKIT_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define SEVKIT_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define SEVKIT_PACKED __attribute__((packed))

/* ---- ioctl ------------------------------------------------------------- */

/* _IOWR('S', 0x0, struct sev_issue_cmd) with a 16-byte struct. Written out so the
 * value does not depend on <linux/ioctl.h> being present (and is checked below
 * when it is). */
#define SEVKIT_SEV_ISSUE_CMD 0xC0105300UL

/* ---- command ids (enum in uapi psp-sev.h) ------------------------------ */
enum sevkit_cmd_id {
	SEVKIT_FACTORY_RESET = 0,       /* no struct; needs O_RDWR */
	SEVKIT_PLATFORM_STATUS = 1,     /* sevkit_user_data_status (out) */
	SEVKIT_PEK_GEN = 2,             /* no struct; needs O_RDWR */
	SEVKIT_PEK_CSR = 3,             /* sevkit_user_data_pek_csr; needs O_RDWR */
	SEVKIT_PDH_GEN = 4,             /* no struct; needs O_RDWR */
	SEVKIT_PDH_CERT_EXPORT = 5,     /* sevkit_user_data_pdh_cert_export; O_RDWR unless INIT */
	SEVKIT_PEK_CERT_IMPORT = 6,     /* sevkit_user_data_pek_cert_import; needs O_RDWR */
	SEVKIT_GET_ID = 7,              /* sevkit_user_data_get_id (deprecated) */
	SEVKIT_GET_ID2 = 8,             /* sevkit_user_data_get_id2 */
	SEVKIT_SNP_PLATFORM_STATUS = 9, /* sevkit_user_data_snp_status (out) */
	SEVKIT_SNP_COMMIT = 10,         /* no struct; no write check in the driver */
	SEVKIT_SNP_SET_CONFIG = 11,     /* sevkit_user_data_snp_config; needs O_RDWR */
	SEVKIT_SNP_VLEK_LOAD = 12,      /* sevkit_user_data_snp_vlek_load; needs O_RDWR */
	SEVKIT_SEV_MAX = 13
};

/* ---- firmware status codes (enum sev_ret_code) ------------------------- */
/* error is a u32 in the ioctl struct; NO_FW_CALL is -1 i.e. 0xFFFFFFFF there. */
#define SEVKIT_RET_NO_FW_CALL (-1)
enum sevkit_ret_code {
	SEVKIT_RET_SUCCESS = 0x00,
	SEVKIT_RET_INVALID_PLATFORM_STATE = 0x01,
	SEVKIT_RET_INVALID_GUEST_STATE = 0x02,
	SEVKIT_RET_INVALID_CONFIG = 0x03, /* kernel spelling: SEV_RET_INAVLID_CONFIG */
	SEVKIT_RET_INVALID_LEN = 0x04,
	SEVKIT_RET_ALREADY_OWNED = 0x05,
	SEVKIT_RET_INVALID_CERTIFICATE = 0x06,
	SEVKIT_RET_POLICY_FAILURE = 0x07,
	SEVKIT_RET_INACTIVE = 0x08,
	SEVKIT_RET_INVALID_ADDRESS = 0x09,
	SEVKIT_RET_BAD_SIGNATURE = 0x0A,
	SEVKIT_RET_BAD_MEASUREMENT = 0x0B,
	SEVKIT_RET_ASID_OWNED = 0x0C,
	SEVKIT_RET_INVALID_ASID = 0x0D,
	SEVKIT_RET_WBINVD_REQUIRED = 0x0E,
	SEVKIT_RET_DFFLUSH_REQUIRED = 0x0F,
	SEVKIT_RET_INVALID_GUEST = 0x10,
	SEVKIT_RET_INVALID_COMMAND = 0x11,
	SEVKIT_RET_ACTIVE = 0x12,
	SEVKIT_RET_HWSEV_RET_PLATFORM = 0x13,
	SEVKIT_RET_HWSEV_RET_UNSAFE = 0x14,
	SEVKIT_RET_UNSUPPORTED = 0x15,
	SEVKIT_RET_INVALID_PARAM = 0x16,
	SEVKIT_RET_RESOURCE_LIMIT = 0x17,
	SEVKIT_RET_SECURE_DATA_INVALID = 0x18,
	SEVKIT_RET_INVALID_PAGE_SIZE = 0x19,
	SEVKIT_RET_INVALID_PAGE_STATE = 0x1A,
	SEVKIT_RET_INVALID_MDATA_ENTRY = 0x1B,
	SEVKIT_RET_INVALID_PAGE_OWNER = 0x1C,
	SEVKIT_RET_AEAD_OFLOW = 0x1D,
	/* 0x1E is not defined */
	SEVKIT_RET_EXIT_RING_BUFFER = 0x1F,
	SEVKIT_RET_RMP_INIT_REQUIRED = 0x20,
	SEVKIT_RET_BAD_SVN = 0x21,
	SEVKIT_RET_BAD_VERSION = 0x22,
	SEVKIT_RET_SHUTDOWN_REQUIRED = 0x23,
	SEVKIT_RET_UPDATE_FAILED = 0x24,
	SEVKIT_RET_RESTORE_REQUIRED = 0x25,
	SEVKIT_RET_RMP_INITIALIZATION_FAILED = 0x26,
	SEVKIT_RET_INVALID_KEY = 0x27,
	SEVKIT_RET_MAX
};

/* ---- platform state (enum sev_state, include/linux/psp-sev.h) ---------- */
enum sevkit_state {
	SEVKIT_STATE_UNINIT = 0,
	SEVKIT_STATE_INIT = 1,
	SEVKIT_STATE_WORKING = 2
};

/* PLATFORM_STATUS flags (u32 at byte 3). */
#define SEVKIT_STATUS_FLAGS_OWNER 0x0001u     /* 1 = externally owned */
#define SEVKIT_STATUS_FLAGS_CONFIG_ES 0x0100u /* INIT with SEV-ES (TMR given) */

/* SNP_PLATFORM_STATUS byte 3 and flags word (LSB-first bitfields in the kernel). */
#define SEVKIT_SNP_STATUS_IS_RMP_INITIALIZED 0x01u
#define SEVKIT_SNP_FLAG_MASK_CHIP_ID 0x01u
#define SEVKIT_SNP_FLAG_MASK_CHIP_KEY 0x02u
#define SEVKIT_SNP_FLAG_VLEK_EN 0x04u
#define SEVKIT_SNP_FLAG_FEATURE_INFO 0x08u
#define SEVKIT_SNP_FLAG_RAPL_DIS 0x10u
#define SEVKIT_SNP_FLAG_CIPHERTEXT_HIDING_CAP 0x20u
#define SEVKIT_SNP_FLAG_CIPHERTEXT_HIDING_EN 0x40u
/* SNP_SET_CONFIG flags word */
#define SEVKIT_SNP_CONFIG_MASK_CHIP_ID 0x01u
#define SEVKIT_SNP_CONFIG_MASK_CHIP_KEY 0x02u

/* Driver limit on PEK_CSR / PDH_CERT_EXPORT / PEK_CERT_IMPORT blobs. */
#define SEVKIT_FW_BLOB_MAX_SIZE 0x4000u
/* One SEV certificate (PDH, PEK, OCA, CEK). */
#define SEVKIT_CERT_SIZE 0x824u
/* GET_ID2 has no driver limit; we refuse anything above this (64 bytes/socket). */
#define SEVKIT_ID_MAX_SIZE 0x4000u
/* SNP_VLEK_LOAD: wrapped hashstick size and required len field. */
#define SEVKIT_VLEK_WRAPPED_SIZE 432u

/* ---- structs ----------------------------------------------------------- */

struct sevkit_issue_cmd {
	uint32_t cmd;   /* in: command id */
	uint64_t data;  /* in: user pointer to the command's struct */
	uint32_t error; /* out: firmware status (SEV_RET_*) */
} SEVKIT_PACKED;

struct sevkit_user_data_status {
	uint8_t api_major;
	uint8_t api_minor;
	uint8_t state;
	uint32_t flags; /* bit 0 owner, bit 8 CONFIG_ES */
	uint8_t build;
	uint32_t guest_count;
} SEVKIT_PACKED;

struct sevkit_user_data_pek_csr {
	uint64_t address;
	uint32_t length;
} SEVKIT_PACKED;

struct sevkit_user_data_pek_cert_import {
	uint64_t pek_cert_address;
	uint32_t pek_cert_len;
	uint64_t oca_cert_address;
	uint32_t oca_cert_len;
} SEVKIT_PACKED;

struct sevkit_user_data_pdh_cert_export {
	uint64_t pdh_cert_address;
	uint32_t pdh_cert_len;
	uint64_t cert_chain_address;
	uint32_t cert_chain_len;
} SEVKIT_PACKED;

struct sevkit_user_data_get_id {
	uint8_t socket1[64];
	uint8_t socket2[64];
} SEVKIT_PACKED;

struct sevkit_user_data_get_id2 {
	uint64_t address;
	uint32_t length;
} SEVKIT_PACKED;

struct sevkit_user_data_snp_status {
	uint8_t api_major;
	uint8_t api_minor;
	uint8_t state;
	uint8_t rmp_flags; /* bit 0 is_rmp_initialized */
	uint32_t build_id;
	uint32_t flags; /* SEVKIT_SNP_FLAG_* */
	uint32_t guest_count;
	uint64_t current_tcb_version;
	uint64_t reported_tcb_version;
} SEVKIT_PACKED;

struct sevkit_user_data_snp_config {
	uint64_t reported_tcb;
	uint32_t flags; /* SEVKIT_SNP_CONFIG_* */
	uint8_t rsvd1[52];
} SEVKIT_PACKED;

struct sevkit_user_data_snp_vlek_load {
	uint32_t len; /* must be sizeof(struct) = 16 */
	uint8_t vlek_wrapped_version; /* must be 0 */
	uint8_t rsvd[3];
	uint64_t vlek_wrapped_address; /* 432-byte wrapped hashstick */
} SEVKIT_PACKED;

/* ---- layout pins (kernel-qemu.md §1.3) ---------------------------------- */
SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_issue_cmd) == 16, "sev_issue_cmd size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_issue_cmd, data) == 4, "sev_issue_cmd.data");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_issue_cmd, error) == 12, "sev_issue_cmd.error");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_status) == 12, "status size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_status, state) == 2, "status.state");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_status, flags) == 3, "status.flags");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_status, build) == 7, "status.build");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_status, guest_count) == 8, "status.guest_count");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_pek_csr) == 12, "pek_csr size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_pek_csr, length) == 8, "pek_csr.length");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_pek_cert_import) == 24, "pek_cert_import size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_pek_cert_import, pek_cert_len) == 8, "pek_cert_len");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_pek_cert_import, oca_cert_address) == 12, "oca_cert_address");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_pek_cert_import, oca_cert_len) == 20, "oca_cert_len");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_pdh_cert_export) == 24, "pdh_cert_export size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_pdh_cert_export, pdh_cert_len) == 8, "pdh_cert_len");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_pdh_cert_export, cert_chain_address) == 12, "cert_chain_address");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_pdh_cert_export, cert_chain_len) == 20, "cert_chain_len");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_get_id) == 128, "get_id size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_get_id, socket2) == 64, "get_id.socket2");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_get_id2) == 12, "get_id2 size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_get_id2, length) == 8, "get_id2.length");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_snp_status) == 32, "snp_status size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_status, rmp_flags) == 3, "snp_status.rmp");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_status, build_id) == 4, "snp_status.build_id");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_status, flags) == 8, "snp_status.flags");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_status, guest_count) == 12, "snp_status.guest_count");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_status, current_tcb_version) == 16, "snp_status.current_tcb");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_status, reported_tcb_version) == 24, "snp_status.reported_tcb");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_snp_config) == 64, "snp_config size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_config, flags) == 8, "snp_config.flags");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_config, rsvd1) == 12, "snp_config.rsvd1");

SEVKIT_STATIC_ASSERT(sizeof(struct sevkit_user_data_snp_vlek_load) == 16, "vlek_load size");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_vlek_load, vlek_wrapped_version) == 4, "vlek.version");
SEVKIT_STATIC_ASSERT(offsetof(struct sevkit_user_data_snp_vlek_load, vlek_wrapped_address) == 8, "vlek.address");

#if defined(__linux__) && __has_include(<linux/ioctl.h>)
#include <linux/ioctl.h>
SEVKIT_STATIC_ASSERT(_IOWR('S', 0x0, struct sevkit_issue_cmd) == SEVKIT_SEV_ISSUE_CMD, "SEV_ISSUE_CMD value");
#endif

/* Static name tables (C strings) usable by both the shim and the addon. */
static inline const char *sevkit_ret_name(int64_t code)
{
	switch (code) {
	case SEVKIT_RET_NO_FW_CALL: return "SEV_RET_NO_FW_CALL";
	case 0xFFFFFFFFLL: return "SEV_RET_NO_FW_CALL";
	case SEVKIT_RET_SUCCESS: return "SEV_RET_SUCCESS";
	case SEVKIT_RET_INVALID_PLATFORM_STATE: return "SEV_RET_INVALID_PLATFORM_STATE";
	case SEVKIT_RET_INVALID_GUEST_STATE: return "SEV_RET_INVALID_GUEST_STATE";
	case SEVKIT_RET_INVALID_CONFIG: return "SEV_RET_INVALID_CONFIG";
	case SEVKIT_RET_INVALID_LEN: return "SEV_RET_INVALID_LEN";
	case SEVKIT_RET_ALREADY_OWNED: return "SEV_RET_ALREADY_OWNED";
	case SEVKIT_RET_INVALID_CERTIFICATE: return "SEV_RET_INVALID_CERTIFICATE";
	case SEVKIT_RET_POLICY_FAILURE: return "SEV_RET_POLICY_FAILURE";
	case SEVKIT_RET_INACTIVE: return "SEV_RET_INACTIVE";
	case SEVKIT_RET_INVALID_ADDRESS: return "SEV_RET_INVALID_ADDRESS";
	case SEVKIT_RET_BAD_SIGNATURE: return "SEV_RET_BAD_SIGNATURE";
	case SEVKIT_RET_BAD_MEASUREMENT: return "SEV_RET_BAD_MEASUREMENT";
	case SEVKIT_RET_ASID_OWNED: return "SEV_RET_ASID_OWNED";
	case SEVKIT_RET_INVALID_ASID: return "SEV_RET_INVALID_ASID";
	case SEVKIT_RET_WBINVD_REQUIRED: return "SEV_RET_WBINVD_REQUIRED";
	case SEVKIT_RET_DFFLUSH_REQUIRED: return "SEV_RET_DFFLUSH_REQUIRED";
	case SEVKIT_RET_INVALID_GUEST: return "SEV_RET_INVALID_GUEST";
	case SEVKIT_RET_INVALID_COMMAND: return "SEV_RET_INVALID_COMMAND";
	case SEVKIT_RET_ACTIVE: return "SEV_RET_ACTIVE";
	case SEVKIT_RET_HWSEV_RET_PLATFORM: return "SEV_RET_HWSEV_RET_PLATFORM";
	case SEVKIT_RET_HWSEV_RET_UNSAFE: return "SEV_RET_HWSEV_RET_UNSAFE";
	case SEVKIT_RET_UNSUPPORTED: return "SEV_RET_UNSUPPORTED";
	case SEVKIT_RET_INVALID_PARAM: return "SEV_RET_INVALID_PARAM";
	case SEVKIT_RET_RESOURCE_LIMIT: return "SEV_RET_RESOURCE_LIMIT";
	case SEVKIT_RET_SECURE_DATA_INVALID: return "SEV_RET_SECURE_DATA_INVALID";
	case SEVKIT_RET_INVALID_PAGE_SIZE: return "SEV_RET_INVALID_PAGE_SIZE";
	case SEVKIT_RET_INVALID_PAGE_STATE: return "SEV_RET_INVALID_PAGE_STATE";
	case SEVKIT_RET_INVALID_MDATA_ENTRY: return "SEV_RET_INVALID_MDATA_ENTRY";
	case SEVKIT_RET_INVALID_PAGE_OWNER: return "SEV_RET_INVALID_PAGE_OWNER";
	case SEVKIT_RET_AEAD_OFLOW: return "SEV_RET_AEAD_OFLOW";
	case SEVKIT_RET_EXIT_RING_BUFFER: return "SEV_RET_EXIT_RING_BUFFER";
	case SEVKIT_RET_RMP_INIT_REQUIRED: return "SEV_RET_RMP_INIT_REQUIRED";
	case SEVKIT_RET_BAD_SVN: return "SEV_RET_BAD_SVN";
	case SEVKIT_RET_BAD_VERSION: return "SEV_RET_BAD_VERSION";
	case SEVKIT_RET_SHUTDOWN_REQUIRED: return "SEV_RET_SHUTDOWN_REQUIRED";
	case SEVKIT_RET_UPDATE_FAILED: return "SEV_RET_UPDATE_FAILED";
	case SEVKIT_RET_RESTORE_REQUIRED: return "SEV_RET_RESTORE_REQUIRED";
	case SEVKIT_RET_RMP_INITIALIZATION_FAILED: return "SEV_RET_RMP_INITIALIZATION_FAILED";
	case SEVKIT_RET_INVALID_KEY: return "SEV_RET_INVALID_KEY";
	default: return NULL;
	}
}

#endif /* SEVKIT_SEV_UAPI_H */
