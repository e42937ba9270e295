/*
 * sev_guest_uapi.h - the /dev/sev-guest user ABI (Linux include/uapi/linux/sev-guest.h),
 * written from the layout in shared/specs/snp-attestation.md §4.1-4.2 with sevkit
 * names, so the addon and the simulator shim build on kernels whose headers lack it.
 * C and C++; every size and offset is checked at compile time.
 */
#ifndef SEVKIT_SEV_GUEST_UAPI_H
#define SEVKIT_SEV_GUEST_UAPI_H

#include <stddef.h>
#include <stdint.h>

/* _IOWR('S', n, struct sevkit_snp_guest_request_ioctl), 32-byte argument. */
#define SEVKIT_SNP_GET_REPORT 0xC0205300u
#define SEVKIT_SNP_GET_DERIVED_KEY 0xC0205301u
#define SEVKIT_SNP_GET_EXT_REPORT 0xC0205302u

/* The message version the kernel's own configfs path uses; 0 is EINVAL. */
#define SEVKIT_SNP_MSG_VERSION 1u
#define SEVKIT_SNP_REPORT_SIZE 1184u   /* 0x4A0, versions 2..5 */
#define SEVKIT_SNP_RESP_SIZE 4000u     /* struct snp_report_resp */
#define SEVKIT_SNP_RESP_HDR 32u        /* status, report_size, reserved; the report follows */
#define SEVKIT_SNP_USER_DATA_SIZE 64u
#define SEVKIT_SNP_MAX_VMPL 3u
#define SEVKIT_SNP_DERIVED_KEY_SIZE 32u
#define SEVKIT_SNP_PAGE_SIZE 4096u
/* SEV_FW_BLOB_MAX_SIZE: the driver refuses a larger certificate buffer (EINVAL). */
#define SEVKIT_SNP_CERTS_MAX 0x4000u

/* exitinfo2 bits 63:32 (vmm_error). */
#define SEVKIT_SNP_VMM_ERR_INVALID_LEN 1u
#define SEVKIT_SNP_VMM_ERR_BUSY 2u
#define SEVKIT_SNP_VMM_ERR_GENERIC 0xFFFFFFFFu

#pragma pack(push, 1)

struct sevkit_snp_guest_request_ioctl {
	uint8_t msg_version;
	uint8_t pad[7];
	uint64_t req_data;   /* user pointer to the request struct */
	uint64_t resp_data;  /* user pointer to the response struct */
	uint32_t fw_error;   /* exitinfo2 bits 31:0 */
	uint32_t vmm_error;  /* exitinfo2 bits 63:32 */
};

struct sevkit_snp_report_req {
	uint8_t user_data[64];
	uint32_t vmpl;
	uint8_t rsvd[28];
};

struct sevkit_snp_ext_report_req {
	struct sevkit_snp_report_req data;
	uint64_t certs_address;
	uint32_t certs_len;
	uint8_t tail_pad[4]; /* the kernel struct's natural tail padding */
};

struct sevkit_snp_derived_key_req {
	uint32_t root_key_select; /* 0 VCEK, 1 VMRK */
	uint32_t rsvd;
	uint64_t guest_field_select;
	uint32_t vmpl;
	uint32_t guest_svn;
	uint64_t tcb_version;
};

struct sevkit_snp_report_resp {
	uint32_t status;      /* MSG_REPORT_RSP status: 0, 0x16 INVALID_PARAM, 0x27 INVALID_KEY */
	uint32_t report_size;
	uint8_t rsvd[24];
	uint8_t report[SEVKIT_SNP_RESP_SIZE - SEVKIT_SNP_RESP_HDR];
};

struct sevkit_snp_derived_key_resp {
	uint32_t status;
	uint8_t rsvd[28];
	uint8_t key[32];
};

#pragma pack(pop)

#ifdef __cplusplus
#define SEVKIT_GUEST_ASSERT static_assert
#else
#define SEVKIT_GUEST_ASSERT _Static_assert
#endif
SEVKIT_GUEST_ASSERT(sizeof(struct sevkit_snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl is 32 bytes");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_guest_request_ioctl, req_data) == 8, "req_data @8");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_guest_request_ioctl, fw_error) == 24, "exitinfo2 @24");
SEVKIT_GUEST_ASSERT(sizeof(struct sevkit_snp_report_req) == 96, "snp_report_req is 96 bytes");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_report_req, vmpl) == 64, "vmpl @64");
SEVKIT_GUEST_ASSERT(sizeof(struct sevkit_snp_ext_report_req) == 112, "snp_ext_report_req is 112 bytes");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_ext_report_req, certs_address) == 96, "certs_address @96");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_ext_report_req, certs_len) == 104, "certs_len @104");
SEVKIT_GUEST_ASSERT(sizeof(struct sevkit_snp_derived_key_req) == 32, "snp_derived_key_req is 32 bytes");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_derived_key_req, guest_field_select) == 8, "guest_field_select @8");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_derived_key_req, tcb_version) == 24, "tcb_version @24");
SEVKIT_GUEST_ASSERT(sizeof(struct sevkit_snp_report_resp) == 4000, "snp_report_resp is 4000 bytes");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_report_resp, report) == 0x20, "report @0x20");
SEVKIT_GUEST_ASSERT(sizeof(struct sevkit_snp_derived_key_resp) == 64, "snp_derived_key_resp is 64 bytes");
SEVKIT_GUEST_ASSERT(offsetof(struct sevkit_snp_derived_key_resp, key) == 32, "key @32");
#undef SEVKIT_GUEST_ASSERT

/* "INVALID_LEN" etc. for a vmm_error, or NULL. */
static inline const char *sevkit_snp_vmm_error_name(uint32_t e)
{
	switch (e) {
	case SEVKIT_SNP_VMM_ERR_INVALID_LEN: return "SNP_GUEST_VMM_ERR_INVALID_LEN";
	case SEVKIT_SNP_VMM_ERR_BUSY: return "SNP_GUEST_VMM_ERR_BUSY";
	case SEVKIT_SNP_VMM_ERR_GENERIC: return "SNP_GUEST_VMM_ERR_GENERIC";
	default: return NULL;
	}
}

#endif /* SEVKIT_SEV_GUEST_UAPI_H */
