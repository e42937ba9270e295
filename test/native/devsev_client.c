/*
 * A plain C client of /dev/sev, written against the kernel's own uapi header
 * (<linux/psp-sev.h>, not sevkit's), for running under the simulator's
 * LD_PRELOAD shim: every ioctl's success and error paths, checked against
 * what the Linux ccp driver (drivers/crypto/ccp/sev-dev.c) returns.
 *
 * Exit 0: all checks passed; 1: some failed (each printed); 77: no kernel
 * header to build against (the test skips). The platform must start INIT,
 * self-owned, SNP initialized (the simulator's defaults, pre-6.16 driver);
 * the run ends with it reset and INIT again.
 */
#define _GNU_SOURCE
#if defined(__has_include)
#if !__has_include(<linux/psp-sev.h>)
#define NO_UAPI_HEADER 1
#endif
#endif

#ifdef NO_UAPI_HEADER
#include <stdio.h>
int main(void) { puts("no <linux/psp-sev.h>"); return 77; }
#else

#include <errno.h>
#include <fcntl.h>
#include <linux/psp-sev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* SNP ioctls (Linux 6.9+, 6.11 for VLEK) are newer than some build hosts'
 * headers, which end at SEV_GET_ID2: their ids and sizes from the 6.11 uapi. */
#define C_SNP_PLATFORM_STATUS 9
#define C_SNP_COMMIT 10
#define C_SNP_SET_CONFIG 11
#define C_SNP_VLEK_LOAD 12
#define C_SEV_MAX 13
#define C_RET_INVALID_KEY 0x27
/* The driver's blob limit lives in the kernel-internal include/linux/psp-sev.h. */
#define C_FW_BLOB_MAX_SIZE 0x4000

static int failures, checks;

#define CHECK(cond, ...)                                          \
	do {                                                          \
		checks++;                                                 \
		if (!(cond)) {                                            \
			failures++;                                           \
			printf("FAIL line %d: %s: ", __LINE__, #cond);       \
			printf(__VA_ARGS__);                                  \
			printf("\n");                                         \
		}                                                         \
	} while (0)

/* One SEV_ISSUE_CMD; returns errno (0 on success), *error the firmware status. */
static int issue(int fd, uint32_t cmd, void *data, uint32_t *error)
{
	struct sev_issue_cmd arg;
	memset(&arg, 0, sizeof(arg));
	arg.cmd = cmd;
	arg.data = (uint64_t)(uintptr_t)data;
	arg.error = 0;
	int rc = ioctl(fd, SEV_ISSUE_CMD, &arg);
	if (error) *error = arg.error;
	return rc == 0 ? 0 : errno;
}

static void *bad_ptr(void) { return (void *)(uintptr_t)8; }

static void *ro_page(void)
{
	void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void platform_status(int ro)
{
	struct sev_user_data_status st;
	uint32_t err = 99;
	memset(&st, 0xee, sizeof(st));
	CHECK(issue(ro, SEV_PLATFORM_STATUS, &st, &err) == 0, "PLATFORM_STATUS on a read-only fd");
	CHECK(err == 0, "error %u", err);
	CHECK(st.api_major >= 1 && st.state == 1, "api %u state %u", st.api_major, st.state);
	CHECK((st.flags & 0x100) != 0, "CONFIG_ES flag 0x%x", st.flags);
	CHECK(issue(ro, SEV_PLATFORM_STATUS, bad_ptr(), &err) == EFAULT, "status to a bad pointer");
	CHECK(issue(ro, SEV_PLATFORM_STATUS, ro_page(), &err) == EFAULT, "status into a read-only page");
}

static void issue_cmd_struct(int ro)
{
	errno = 0;
	CHECK(ioctl(ro, SEV_ISSUE_CMD, NULL) == -1 && errno == EFAULT, "NULL sev_issue_cmd: errno %d", errno);
	errno = 0;
	CHECK(ioctl(ro, SEV_ISSUE_CMD, bad_ptr()) == -1 && errno == EFAULT, "bad sev_issue_cmd pointer: errno %d", errno);
	/* The kernel copies the whole sev_issue_cmd back: a read-only one is EFAULT. */
	struct sev_user_data_status st;
	struct sev_issue_cmd *ro_arg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro_arg != MAP_FAILED, "mmap");
	if (ro_arg != MAP_FAILED) {
		ro_arg->cmd = SEV_PLATFORM_STATUS;
		ro_arg->data = (uint64_t)(uintptr_t)&st;
		mprotect(ro_arg, 4096, PROT_READ);
		errno = 0;
		CHECK(ioctl(ro, SEV_ISSUE_CMD, ro_arg) == -1 && errno == EFAULT, "read-only sev_issue_cmd: errno %d", errno);
	}
	errno = 0;
	CHECK(ioctl(ro, _IOWR('S', 0x1, struct sev_issue_cmd), &st) == -1 && errno == EINVAL, "other ioctl number: errno %d", errno);
	CHECK(issue(ro, C_SEV_MAX, &st, NULL) == EINVAL, "cmd SEV_MAX");
	CHECK(issue(ro, 99, &st, NULL) == EINVAL, "cmd 99");
	/* A driver-side failure leaves `error` as the caller set it. */
	struct sev_issue_cmd arg = { .cmd = SEV_PDH_GEN, .data = 0, .error = 0xdeadbeef };
	errno = 0;
	CHECK(ioctl(ro, SEV_ISSUE_CMD, &arg) == -1 && errno == EPERM && arg.error == 0xdeadbeef, "EPERM keeps error: errno %d error 0x%x", errno, arg.error);
}

static void write_access(int ro)
{
	uint32_t err = 0;
	struct sev_user_data_pek_csr csr = { .address = 0, .length = 0 };
	struct sev_user_data_pek_cert_import imp;
	memset(&imp, 0, sizeof(imp));
	CHECK(issue(ro, SEV_FACTORY_RESET, NULL, &err) == EPERM, "FACTORY_RESET ro");
	CHECK(issue(ro, SEV_PEK_GEN, NULL, &err) == EPERM, "PEK_GEN ro");
	CHECK(issue(ro, SEV_PDH_GEN, NULL, &err) == EPERM, "PDH_GEN ro");
	CHECK(issue(ro, SEV_PEK_CSR, &csr, &err) == EPERM, "PEK_CSR ro (even the length query)");
	CHECK(issue(ro, SEV_PEK_CERT_IMPORT, &imp, &err) == EPERM, "PEK_CERT_IMPORT ro");
	uint8_t cfg[64] = { 0 };
	CHECK(issue(ro, C_SNP_SET_CONFIG, cfg, &err) == EPERM, "SNP_SET_CONFIG ro");
}

static void pdh_export(int ro, uint8_t *pdh_out)
{
	uint32_t err = 0;
	struct sev_user_data_pdh_cert_export ex;
	memset(&ex, 0, sizeof(ex));
	CHECK(issue(ro, SEV_PDH_CERT_EXPORT, &ex, &err) == EIO && err == SEV_RET_INVALID_LEN, "length query: error %u", err);
	CHECK(ex.pdh_cert_len == 2084 && ex.cert_chain_len == 3 * 2084, "lengths %u %u", ex.pdh_cert_len, ex.cert_chain_len);
	uint8_t *pdh = malloc(ex.pdh_cert_len), *chain = malloc(ex.cert_chain_len);
	ex.pdh_cert_address = (uint64_t)(uintptr_t)pdh;
	ex.cert_chain_address = (uint64_t)(uintptr_t)chain;
	CHECK(issue(ro, SEV_PDH_CERT_EXPORT, &ex, &err) == 0 && err == 0, "fetch on INIT with a read-only fd: error %u", err);
	uint32_t usage = pdh[8] | pdh[9] << 8 | pdh[10] << 16 | (uint32_t)pdh[11] << 24;
	CHECK(usage == 0x1003, "PDH pubkey_usage 0x%x", usage);
	if (pdh_out) memcpy(pdh_out, pdh, 2084);
	struct sev_user_data_pdh_cert_export shrt = ex;
	shrt.pdh_cert_len = 16;
	CHECK(issue(ro, SEV_PDH_CERT_EXPORT, &shrt, &err) == EIO && err == SEV_RET_INVALID_LEN && shrt.pdh_cert_len == 2084, "short buffer: error %u len %u", err, shrt.pdh_cert_len);
	struct sev_user_data_pdh_cert_export big = ex;
	big.pdh_cert_len = C_FW_BLOB_MAX_SIZE + 1;
	CHECK(issue(ro, SEV_PDH_CERT_EXPORT, &big, &err) == EFAULT, "length above 16 KiB");
	struct sev_user_data_pdh_cert_export badp = ex;
	badp.pdh_cert_address = (uint64_t)(uintptr_t)bad_ptr();
	CHECK(issue(ro, SEV_PDH_CERT_EXPORT, &badp, &err) == EFAULT, "bad PDH address");
	CHECK(issue(ro, SEV_PDH_CERT_EXPORT, bad_ptr(), &err) == EFAULT, "bad struct pointer");
	free(pdh);
	free(chain);
}

static void pek_csr(int rw)
{
	uint32_t err = 0;
	struct sev_user_data_pek_csr csr = { .address = 0, .length = 0 };
	CHECK(issue(rw, SEV_PEK_CSR, &csr, &err) == EIO && err == SEV_RET_INVALID_LEN && csr.length == 2084, "query: error %u len %u", err, csr.length);
	uint8_t *buf = malloc(csr.length);
	csr.address = (uint64_t)(uintptr_t)buf;
	CHECK(issue(rw, SEV_PEK_CSR, &csr, &err) == 0, "fetch: error %u", err);
	uint32_t usage = buf[8] | buf[9] << 8 | buf[10] << 16 | (uint32_t)buf[11] << 24;
	CHECK(usage == 0x1002, "CSR pubkey_usage 0x%x", usage);
	struct sev_user_data_pek_csr big = { .address = csr.address, .length = C_FW_BLOB_MAX_SIZE + 1 };
	CHECK(issue(rw, SEV_PEK_CSR, &big, &err) == EFAULT, "length above 16 KiB");
	struct sev_user_data_pek_csr badp = { .address = (uint64_t)(uintptr_t)bad_ptr(), .length = 2084 };
	CHECK(issue(rw, SEV_PEK_CSR, &badp, &err) == EFAULT, "bad CSR address");
	free(buf);
}

static void pek_import(int rw)
{
	uint32_t err = 0;
	uint8_t *zero = calloc(1, 2084);
	struct sev_user_data_pek_cert_import imp = {
		.pek_cert_address = (uint64_t)(uintptr_t)zero, .pek_cert_len = 2084,
		.oca_cert_address = (uint64_t)(uintptr_t)zero, .oca_cert_len = 2084,
	};
	struct sev_user_data_pek_cert_import t = imp;
	t.pek_cert_address = 0;
	CHECK(issue(rw, SEV_PEK_CERT_IMPORT, &t, &err) == EINVAL, "no PEK address");
	t = imp;
	t.oca_cert_len = 0;
	CHECK(issue(rw, SEV_PEK_CERT_IMPORT, &t, &err) == EINVAL, "zero OCA length");
	t = imp;
	t.pek_cert_len = C_FW_BLOB_MAX_SIZE + 1;
	CHECK(issue(rw, SEV_PEK_CERT_IMPORT, &t, &err) == EINVAL, "PEK length above 16 KiB");
	t = imp;
	t.oca_cert_address = (uint64_t)(uintptr_t)bad_ptr();
	CHECK(issue(rw, SEV_PEK_CERT_IMPORT, &t, &err) == EFAULT, "unreadable OCA");
	CHECK(issue(rw, SEV_PEK_CERT_IMPORT, bad_ptr(), &err) == EFAULT, "bad struct pointer");
	CHECK(issue(rw, SEV_PEK_CERT_IMPORT, &imp, &err) == EIO && err == SEV_RET_INVALID_CERTIFICATE, "all-zero certificates: error %u", err);
	free(zero);
}

static void get_id(int ro)
{
	uint32_t err = 0;
	struct sev_user_data_get_id id;
	memset(&id, 0, sizeof(id));
	CHECK(issue(ro, SEV_GET_ID, &id, &err) == 0, "GET_ID: error %u", err);
	int nonzero = 0;
	for (int i = 0; i < 64; i++) nonzero |= id.socket1[i];
	CHECK(nonzero, "GET_ID socket1 is all zero");
	CHECK(issue(ro, SEV_GET_ID, bad_ptr(), &err) == EFAULT, "GET_ID to a bad pointer");

	struct sev_user_data_get_id2 id2 = { .address = 0, .length = 0 };
	CHECK(issue(ro, SEV_GET_ID2, &id2, &err) == EIO && err == SEV_RET_INVALID_LEN && id2.length == 64, "GET_ID2 query: error %u len %u", err, id2.length);
	uint8_t buf[64];
	id2.address = (uint64_t)(uintptr_t)buf;
	CHECK(issue(ro, SEV_GET_ID2, &id2, &err) == 0 && memcmp(buf, id.socket1, 64) == 0, "GET_ID2 fetch equals GET_ID socket1");
	struct sev_user_data_get_id2 huge = { .address = id2.address, .length = 1u << 30 };
	CHECK(issue(ro, SEV_GET_ID2, &huge, &err) == ENOMEM, "GET_ID2 with 1 GiB: kzalloc fails");
	struct sev_user_data_get_id2 badp = { .address = (uint64_t)(uintptr_t)bad_ptr(), .length = 64 };
	CHECK(issue(ro, SEV_GET_ID2, &badp, &err) == EFAULT, "GET_ID2 to a bad address");
	CHECK(issue(ro, SEV_GET_ID2, NULL, &err) == EFAULT, "GET_ID2 NULL data");
}

static void snp(int ro, int rw)
{
	uint32_t err = 0;
	uint8_t st[32];
	memset(st, 0, sizeof(st));
	CHECK(issue(ro, C_SNP_PLATFORM_STATUS, NULL, &err) == EINVAL, "SNP_PLATFORM_STATUS NULL data");
	CHECK(issue(ro, C_SNP_PLATFORM_STATUS, st, &err) == 0 && st[2] == 1, "SNP_PLATFORM_STATUS: state %u", st[2]);
	CHECK(issue(ro, C_SNP_PLATFORM_STATUS, bad_ptr(), &err) == EFAULT, "SNP status to a bad pointer");
	CHECK(issue(rw, C_SNP_SET_CONFIG, NULL, &err) == EINVAL, "SNP_SET_CONFIG NULL data");
	CHECK(issue(rw, C_SNP_SET_CONFIG, bad_ptr(), &err) == EFAULT, "SNP_SET_CONFIG bad pointer");
	uint8_t vlek[16];
	memset(vlek, 0, sizeof(vlek));
	CHECK(issue(rw, C_SNP_VLEK_LOAD, NULL, &err) == EINVAL, "SNP_VLEK_LOAD NULL data");
	CHECK(issue(rw, C_SNP_VLEK_LOAD, vlek, &err) == EINVAL, "SNP_VLEK_LOAD len 0");
	vlek[0] = 16;
	CHECK(issue(ro, C_SNP_VLEK_LOAD, vlek, &err) == EPERM, "SNP_VLEK_LOAD ro");
	CHECK(issue(rw, C_SNP_VLEK_LOAD, vlek, &err) == EIO && err == C_RET_INVALID_KEY, "SNP_VLEK_LOAD: error 0x%x", err);
	CHECK(issue(ro, C_SNP_COMMIT, NULL, &err) == 0, "SNP_COMMIT needs no write access");
	/* SNP_SET_CONFIG: reported TCB = the current one, no mask flags. */
	uint8_t cfg[64];
	memset(cfg, 0, sizeof(cfg));
	memcpy(cfg, st + 16, 8);
	CHECK(issue(rw, C_SNP_SET_CONFIG, cfg, &err) == 0, "SNP_SET_CONFIG: error 0x%x", err);
	cfg[8] = 0x80; /* a reserved flag bit */
	CHECK(issue(rw, C_SNP_SET_CONFIG, cfg, &err) == EIO && err == SEV_RET_INVALID_PARAM, "SNP_SET_CONFIG reserved flag: error 0x%x", err);
}

/* Linux >= 6.16 ("implicit SEV/SNP init and shutdown in ioctls"): a command
 * that INITs the platform SHUTs it down again. */
static int kernel_616;

/* Last: the commands that change the platform's state. */
static void lifecycle(int ro, int rw)
{
	uint32_t err = 0;
	struct sev_user_data_status st;
	CHECK(issue(rw, SEV_PEK_GEN, NULL, &err) == 0 && err == 0, "PEK_GEN: error %u", err);
	CHECK(issue(rw, SEV_FACTORY_RESET, NULL, &err) == 0, "FACTORY_RESET: error %u", err);
	CHECK(issue(ro, SEV_PLATFORM_STATUS, &st, &err) == 0 && st.state == 0 && (st.flags & 0x100) == 0, "after reset: state %u flags 0x%x", st.state, st.flags);
	struct sev_user_data_pdh_cert_export ex;
	memset(&ex, 0, sizeof(ex));
	CHECK(issue(ro, SEV_PDH_CERT_EXPORT, &ex, &err) == EPERM, "export on UNINIT needs a writable fd");
	CHECK(issue(rw, SEV_PDH_CERT_EXPORT, &ex, &err) == EIO && err == SEV_RET_INVALID_LEN, "export on UNINIT INITs implicitly: error %u", err);
	if (kernel_616)
		CHECK(issue(ro, SEV_PLATFORM_STATUS, &st, &err) == 0 && st.state == 0, "6.16: SHUTDOWN again after the implicit INIT: state %u", st.state);
	else
		CHECK(issue(ro, SEV_PLATFORM_STATUS, &st, &err) == 0 && st.state == 1 && (st.flags & 0x100) != 0, "pre-6.16: left INIT: state %u flags 0x%x", st.state, st.flags);
	/* 6.16 copies the struct before its writable check: EFAULT wins over EPERM on UNINIT. */
	CHECK(issue(ro, SEV_PDH_CERT_EXPORT, bad_ptr(), &err) == (kernel_616 ? EFAULT : (st.state == 0 ? EPERM : EFAULT)), "bad struct on a read-only fd");
	CHECK(issue(rw, SEV_FACTORY_RESET, NULL, &err) == 0, "FACTORY_RESET again");
	CHECK(issue(rw, SEV_PDH_GEN, NULL, &err) == 0, "PDH_GEN on UNINIT INITs implicitly");
}

static int status_ok(int fd)
{
	struct sev_user_data_status st;
	return issue(fd, SEV_PLATFORM_STATUS, &st, NULL) == 0 && st.api_major >= 1;
}

static void dup_fds(int rw)
{
	int ro = open("/dev/sev", O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0, "open O_RDONLY: errno %d", errno);
	int d = dup(ro);
	CHECK(d >= 0 && status_ok(d), "dup'd read-only fd");
	CHECK(issue(d, SEV_PDH_GEN, NULL, NULL) == EPERM, "a dup of a read-only fd stays read-only");
	close(ro);
	CHECK(status_ok(d), "the dup works after the original is closed");
	int d2 = dup2(rw, 200);
	CHECK(d2 == 200 && issue(d2, SEV_PDH_GEN, NULL, NULL) == 0, "dup2'd read-write fd runs PDH_GEN");
	int d3 = fcntl(rw, F_DUPFD_CLOEXEC, 300);
	CHECK(d3 >= 300 && status_ok(d3), "F_DUPFD_CLOEXEC");
	close(d2);
	close(d3);
	CHECK(status_ok(rw), "the original still works after its dups are closed");
	close(d);
	struct sev_user_data_status st;
	CHECK(issue(d, SEV_PLATFORM_STATUS, &st, NULL) == EBADF, "a closed fd is EBADF");
	pid_t pid = fork();
	if (pid == 0) {
		int e = issue(rw, SEV_PLATFORM_STATUS, &st, NULL);
		if (e) printf("child: PLATFORM_STATUS errno %d\n", e);
		fflush(stdout);
		_exit(e ? 1 : 0);
	}
	int ws = 0;
	waitpid(pid, &ws, 0);
	CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "a forked child uses the inherited fd");
}

static void stdio(void)
{
	FILE *r = fopen("/dev/sev", "r");
	CHECK(r != NULL, "fopen r: errno %d", errno);
	if (r) {
		CHECK(status_ok(fileno(r)), "status through fopen(\"r\")");
		CHECK(issue(fileno(r), SEV_PDH_GEN, NULL, NULL) == EPERM, "fopen(\"r\") is read-only");
		CHECK(fclose(r) == 0, "fclose");
	}
	FILE *w = fopen("/dev/sev", "r+e");
	CHECK(w != NULL, "fopen r+e: errno %d", errno);
	if (w) {
		CHECK(issue(fileno(w), SEV_PDH_GEN, NULL, NULL) == 0, "PDH_GEN through fopen(\"r+\")");
		fclose(w);
	}
}

int main(int argc, char **argv)
{
	kernel_616 = argc > 1 && strcmp(argv[1], "6.16") == 0;
	int rw = open("/dev/sev", O_RDWR);
	int ro = open("/dev/sev", O_RDONLY);
	if (rw < 0 || ro < 0) {
		printf("FAIL: open /dev/sev: %s\n", strerror(errno));
		return 1;
	}
	uint8_t before[2084], after[2084];
	platform_status(ro);
	issue_cmd_struct(ro);
	write_access(ro);
	pdh_export(ro, before);
	pek_csr(rw);
	pek_import(rw);
	get_id(ro);
	snp(ro, rw);
	dup_fds(rw);
	stdio();
	CHECK(issue(rw, SEV_PDH_GEN, NULL, NULL) == 0, "PDH_GEN");
	pdh_export(ro, after);
	CHECK(memcmp(before, after, sizeof(before)) != 0, "PDH_GEN gives a new PDH");
	lifecycle(ro, rw);
	close(ro);
	close(rw);
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
#endif
