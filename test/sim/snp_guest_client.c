/*
 * A plain C client of the SNP guest device (/dev/sev-guest) for the simulator's
 * shim, built against sevkit's own uapi header (native/include/sev_guest_uapi.h):
 * success paths, the extended report's certificate-buffer protocol, message
 * status, bad pointers (EFAULT, never a crash), and that the shim never writes
 * past the caller's response struct or certs_len (guard bytes). Run it under
 * valgrind for memory errors in the shim. Prints "N checks, M failed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../native/include/sev_guest_uapi.h"

static int checks, failed;
#define CHECK(cond, ...)                                  \
	do {                                                  \
		checks++;                                         \
		if (!(cond)) {                                    \
			failed++;                                     \
			printf("FAIL line %d: ", __LINE__);           \
			printf(__VA_ARGS__);                          \
			printf(" (errno %d)\n", errno);               \
		}                                                 \
	} while (0)

static int guest_ioctl(int fd, unsigned long nr, void *req, void *resp, struct sevkit_snp_guest_request_ioctl *io)
{
	memset(io, 0, sizeof(*io));
	io->msg_version = 1;
	io->req_data = (uint64_t)(uintptr_t)req;
	io->resp_data = (uint64_t)(uintptr_t)resp;
	return ioctl(fd, nr, io);
}

/* Whether the report's MEASUREMENT (0x90, 48 bytes) is 48 times the hex byte in $name (unset: no check). */
static void check_measurement(const uint8_t *report, const char *name, const char *what)
{
	const char *hex = getenv(name);
	if (!hex || !hex[0]) return;
	unsigned v = (unsigned)strtoul(hex, NULL, 16);
	int same = 1;
	for (int i = 0; i < 48; i++) same &= report[0x90 + i] == v;
	CHECK(same, "%s: MEASUREMENT is 48 x 0x%02x", what, v);
}

int main(void)
{
	const char *dev = getenv("SEVKIT_SIM_GUEST_DEVICE");
	if (!dev || !dev[0]) dev = "/dev/sev-guest";
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "open %s", dev);
	if (fd < 0) {
		printf("%d checks, %d failed\n", checks, failed);
		return 1;
	}
	struct sevkit_snp_guest_request_ioctl io;

	/* A plain report, with guard bytes after the 4000-byte response. */
	struct sevkit_snp_report_req req;
	memset(&req, 0, sizeof(req));
	for (int i = 0; i < 64; i++) req.user_data[i] = (uint8_t)(i * 3);
	req.vmpl = 2;
	uint8_t *resp = malloc(sizeof(struct sevkit_snp_report_resp) + 64);
	memset(resp, 0xA5, sizeof(struct sevkit_snp_report_resp) + 64);
	int rc = guest_ioctl(fd, SEVKIT_SNP_GET_REPORT, &req, resp, &io);
	CHECK(rc == 0, "SNP_GET_REPORT");
	struct sevkit_snp_report_resp *r = (struct sevkit_snp_report_resp *)resp;
	CHECK(r->status == 0 && r->report_size == SEVKIT_SNP_REPORT_SIZE, "status %u size %u", r->status, r->report_size);
	CHECK(memcmp(r->report + 0x50, req.user_data, 64) == 0, "REPORT_DATA echoed");
	uint32_t vmpl;
	memcpy(&vmpl, r->report + 0x30, 4);
	CHECK(vmpl == 2, "VMPL echoed (%u)", vmpl);
	int guard_ok = 1;
	for (int i = 0; i < 64; i++) guard_ok &= resp[sizeof(struct sevkit_snp_report_resp) + i] == 0xA5;
	CHECK(guard_ok, "nothing written past the response struct");
	CHECK(io.fw_error == 0 && io.vmm_error == 0, "exitinfo2 left zero on success");
	check_measurement(r->report, "SEVKIT_TEST_MEASUREMENT_BYTE", dev);

	/* VMPL 4: the ioctl succeeds, the response carries INVALID_PARAM. */
	req.vmpl = 4;
	rc = guest_ioctl(fd, SEVKIT_SNP_GET_REPORT, &req, resp, &io);
	CHECK(rc == 0 && r->status == 0x16, "VMPL 4: rc %d status 0x%x", rc, r->status);
	req.vmpl = 0;

	/* Driver checks. */
	memset(&io, 0, sizeof(io));
	io.req_data = (uint64_t)(uintptr_t)&req;
	io.resp_data = (uint64_t)(uintptr_t)resp;
	errno = 0;
	CHECK(ioctl(fd, SEVKIT_SNP_GET_REPORT, &io) == -1 && errno == EINVAL, "msg_version 0 is EINVAL");
	errno = 0;
	CHECK(guest_ioctl(fd, SEVKIT_SNP_GET_REPORT, NULL, resp, &io) == -1 && errno == EINVAL, "NULL req_data is EINVAL");
	CHECK(io.fw_error == 0xff, "the driver's preset exitinfo2 (0xff) copied back (0x%x)", io.fw_error);
	errno = 0;
	CHECK(guest_ioctl(fd, SEVKIT_SNP_GET_REPORT, (void *)(uintptr_t)8, resp, &io) == -1 && errno == EFAULT, "bad req_data is EFAULT");
	errno = 0;
	CHECK(ioctl(fd, SEVKIT_SNP_GET_REPORT, (void *)(uintptr_t)8) == -1 && errno == EFAULT, "bad ioctl argument is EFAULT");
	errno = 0;
	CHECK(guest_ioctl(fd, 0xC0205310u, &req, resp, &io) == -1 && errno == ENOTTY, "unknown request is ENOTTY");
	/* A read-only response buffer: EFAULT, not a crash. */
	void *ro = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	errno = 0;
	CHECK(guest_ioctl(fd, SEVKIT_SNP_GET_REPORT, &req, ro, &io) == -1 && errno == EFAULT, "read-only resp_data is EFAULT");
	munmap(ro, 8192);

	/* Extended report: one page is too small; the driver says how much. */
	struct sevkit_snp_ext_report_req ext;
	memset(&ext, 0, sizeof(ext));
	memcpy(&ext.data, &req, sizeof(req));
	size_t cap = 4 * 4096;
	uint8_t *certs = malloc(cap + 64);
	memset(certs, 0xA5, cap + 64);
	ext.certs_address = (uint64_t)(uintptr_t)certs;
	ext.certs_len = 4096;
	errno = 0;
	rc = guest_ioctl(fd, SEVKIT_SNP_GET_EXT_REPORT, &ext, resp, &io);
	CHECK(rc == -1 && errno == EIO, "one page: EIO");
	CHECK(io.vmm_error == SEVKIT_SNP_VMM_ERR_INVALID_LEN && io.fw_error == 0, "VMM INVALID_LEN (vmm %u fw %u)", io.vmm_error, io.fw_error);
	CHECK(ext.certs_len > 4096 && ext.certs_len % 4096 == 0 && ext.certs_len <= cap, "certs_len rewritten to %u", ext.certs_len);
	int untouched = 1;
	for (size_t i = 4096; i < cap + 64; i++) untouched &= certs[i] == 0xA5;
	CHECK(untouched, "nothing written past a one-page certs_len");
	uint32_t need = ext.certs_len;
	rc = guest_ioctl(fd, SEVKIT_SNP_GET_EXT_REPORT, &ext, resp, &io);
	CHECK(rc == 0 && r->status == 0, "ext report with %u bytes", need);
	static const uint8_t vcek_guid[16] = { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd };
	int found = 0;
	for (int e = 0; e < 8; e++) found |= memcmp(certs + 24 * e, vcek_guid, 16) == 0;
	CHECK(found, "the table has a VCEK entry");
	guard_ok = 1;
	for (size_t i = need; i < cap + 64; i++) guard_ok &= certs[i] == 0xA5;
	CHECK(guard_ok, "nothing written past certs_len");
	ext.certs_len = 100;
	errno = 0;
	CHECK(guest_ioctl(fd, SEVKIT_SNP_GET_EXT_REPORT, &ext, resp, &io) == -1 && errno == EINVAL, "certs_len not a page multiple is EINVAL");
	ext.certs_len = 0;
	CHECK(guest_ioctl(fd, SEVKIT_SNP_GET_EXT_REPORT, &ext, resp, &io) == 0 && r->status == 0, "certs_len 0 is a plain report");

	/* Derived key. */
	struct sevkit_snp_derived_key_req kreq;
	memset(&kreq, 0, sizeof(kreq));
	kreq.guest_field_select = 0x9; /* policy + measurement */
	struct sevkit_snp_derived_key_resp k1, k2;
	CHECK(guest_ioctl(fd, SEVKIT_SNP_GET_DERIVED_KEY, &kreq, &k1, &io) == 0 && k1.status == 0, "derived key");
	CHECK(guest_ioctl(fd, SEVKIT_SNP_GET_DERIVED_KEY, &kreq, &k2, &io) == 0 && memcmp(k1.key, k2.key, 32) == 0, "derived key is stable");
	kreq.root_key_select = 5;
	CHECK(guest_ioctl(fd, SEVKIT_SNP_GET_DERIVED_KEY, &kreq, &k2, &io) == 0 && k2.status == 0x16, "bad root key: INVALID_PARAM status");

	/* dup'd fd reaches the same device. */
	int fd2 = dup(fd);
	close(fd);
	req.vmpl = 1;
	CHECK(guest_ioctl(fd2, SEVKIT_SNP_GET_REPORT, &req, resp, &io) == 0 && r->status == 0, "report through a dup'd fd");
	close(fd2);

	/* <dev>/<vm> names a guest for that open: its launch, whatever $SEVKIT_SIM_GUEST says. */
	char path[512];
	const char *named = getenv("SEVKIT_TEST_NAMED_GUEST");
	if (named && named[0]) {
		snprintf(path, sizeof(path), "%s/%s", dev, named);
		int nfd = open(path, O_RDWR | O_CLOEXEC);
		CHECK(nfd >= 0, "open %s", path);
		memset(resp, 0, sizeof(struct sevkit_snp_report_resp));
		req.vmpl = 0;
		CHECK(nfd >= 0 && guest_ioctl(nfd, SEVKIT_SNP_GET_REPORT, &req, resp, &io) == 0 && r->status == 0, "report of %s", path);
		check_measurement(r->report, "SEVKIT_TEST_NAMED_BYTE", path);
		if (nfd >= 0) close(nfd);
	}

	/* A named guest the simulator has no launch for: no device, never another guest's. */
	snprintf(path, sizeof(path), "%s/no-such-guest", dev);
	errno = 0;
	CHECK(open(path, O_RDWR) == -1 && errno == ENOENT, "%s: ENOENT (errno %d)", path, errno);
	errno = 0;
	CHECK(fopen(path, "r") == NULL && errno == ENOENT, "fopen %s: ENOENT (errno %d)", path, errno);
	char name[300];
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	snprintf(path, sizeof(path), "%s/%s", dev, name);
	errno = 0;
	CHECK(open(path, O_RDWR) == -1 && errno == ENOENT, "an over-long guest name: ENOENT (errno %d)", errno);
	free(resp);
	free(certs);
	printf("%d checks, %d failed\n", checks, failed);
	return failed ? 1 : 0;
}
