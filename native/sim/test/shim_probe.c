/*
 * shim_probe: drives /dev/sev the way the addon does (length probe, then fetch)
 * so the LD_PRELOAD shim can be tested without Node (and under valgrind).
 * Usage: shim_probe status|export OUT|getid|csr|rotate|reset|badcmd|twice|concurrent N
 * Prints one line per result; exit 0 on success, 1 on a failed ioctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../include/sev_uapi.h"

static const char *dev(void)
{
	const char *d = getenv("SEVKIT_DEVICE");
	return d && d[0] ? d : "/dev/sev";
}

static int issue(int fd, uint32_t cmd, void *data, uint32_t *fw)
{
	struct sevkit_issue_cmd c;
	memset(&c, 0, sizeof(c));
	c.cmd = cmd;
	c.data = (uint64_t)(uintptr_t)data;
	int rc = ioctl(fd, SEVKIT_SEV_ISSUE_CMD, &c);
	*fw = c.error;
	return rc;
}

static int fail(const char *what, uint32_t fw)
{
	const char *n = sevkit_ret_name(fw);
	printf("%s: errno=%d (%s) fw=%u %s\n", what, errno, strerror(errno), fw, n ? n : "?");
	return 1;
}

static void *status_thread(void *arg)
{
	int *ok = arg;
	int fd = open(dev(), O_RDONLY | O_CLOEXEC);
	if (fd < 0) { *ok = 0; return NULL; }
	for (int i = 0; i < 50; i++) {
		struct sevkit_user_data_status st;
		uint32_t fw;
		memset(&st, 0xAA, sizeof(st));
		if (issue(fd, SEVKIT_PLATFORM_STATUS, &st, &fw) != 0 || st.api_major != 1) { *ok = 0; break; }
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) return 2;
	const char *op = argv[1];
	int rw = strcmp(op, "status") && strcmp(op, "getid") && strcmp(op, "concurrent") && strcmp(op, "export-ro");
	int fd = open(dev(), (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) { printf("open %s: errno=%d (%s)\n", dev(), errno, strerror(errno)); return 1; }
	uint32_t fw = 0;
	int rc = 0;
	if (!strcmp(op, "status")) {
		struct sevkit_user_data_status st;
		if (issue(fd, SEVKIT_PLATFORM_STATUS, &st, &fw)) rc = fail("status", fw);
		else printf("%u.%u.%u state=%u flags=0x%x guests=%u\n", st.api_major, st.api_minor, st.build, st.state, st.flags, st.guest_count);
	} else if (!strcmp(op, "export") || !strcmp(op, "export-ro")) {
		struct sevkit_user_data_pdh_cert_export ex;
		memset(&ex, 0, sizeof(ex));
		int q = issue(fd, SEVKIT_PDH_CERT_EXPORT, &ex, &fw);
		if (!(q == -1 && errno == EIO && fw == SEVKIT_RET_INVALID_LEN)) { rc = fail("export probe", fw); goto out; }
		uint8_t *pdh = malloc(ex.pdh_cert_len), *chain = malloc(ex.cert_chain_len);
		ex.pdh_cert_address = (uint64_t)(uintptr_t)pdh;
		ex.cert_chain_address = (uint64_t)(uintptr_t)chain;
		if (issue(fd, SEVKIT_PDH_CERT_EXPORT, &ex, &fw)) { rc = fail("export", fw); free(pdh); free(chain); goto out; }
		printf("pdh=%u chain=%u\n", ex.pdh_cert_len, ex.cert_chain_len);
		if (argc > 2) {
			FILE *f = fopen(argv[2], "wb");
			if (f) {
				fwrite(pdh, 1, ex.pdh_cert_len, f);
				fwrite(chain, 1, ex.cert_chain_len, f);
				fclose(f);
			}
		}
		free(pdh);
		free(chain);
	} else if (!strcmp(op, "undersized")) {
		/* A non-zero too-small buffer: the shim must not write past 16 bytes. */
		struct sevkit_user_data_pdh_cert_export ex;
		uint8_t guard[64];
		memset(guard, 0x5A, sizeof(guard));
		uint8_t chain[8000];
		ex.pdh_cert_address = (uint64_t)(uintptr_t)guard;
		ex.pdh_cert_len = 16;
		ex.cert_chain_address = (uint64_t)(uintptr_t)chain;
		ex.cert_chain_len = sizeof(chain);
		int r = issue(fd, SEVKIT_PDH_CERT_EXPORT, &ex, &fw);
		int intact = 1;
		for (int i = 16; i < 64; i++) if (guard[i] != 0x5A) intact = 0;
		printf("rc=%d fw=%u pdh_len=%u chain_len=%u guard=%s\n", r, fw, ex.pdh_cert_len, ex.cert_chain_len, intact ? "intact" : "SMASHED");
	} else if (!strcmp(op, "getid")) {
		struct sevkit_user_data_get_id2 id;
		memset(&id, 0, sizeof(id));
		int q = issue(fd, SEVKIT_GET_ID2, &id, &fw);
		if (!(q == -1 && fw == SEVKIT_RET_INVALID_LEN)) { rc = fail("getid probe", fw); goto out; }
		uint8_t *buf = malloc(id.length);
		id.address = (uint64_t)(uintptr_t)buf;
		if (issue(fd, SEVKIT_GET_ID2, &id, &fw)) { rc = fail("getid", fw); free(buf); goto out; }
		for (uint32_t i = 0; i < id.length; i++) printf("%02X", buf[i]);
		printf("\n");
		free(buf);
	} else if (!strcmp(op, "rotate")) {
		if (issue(fd, SEVKIT_PDH_GEN, NULL, &fw)) rc = fail("rotate", fw);
		else printf("ok\n");
	} else if (!strcmp(op, "reset")) {
		if (issue(fd, SEVKIT_FACTORY_RESET, NULL, &fw)) rc = fail("reset", fw);
		else printf("ok\n");
	} else if (!strcmp(op, "twice")) {
		/* Two status ioctls on one fd: after a failed exchange the second must not succeed. */
		for (int i = 0; i < 2; i++) {
			struct sevkit_user_data_status st;
			memset(&st, 0, sizeof(st));
			int r = issue(fd, SEVKIT_PLATFORM_STATUS, &st, &fw);
			printf("%src=%d errno=%d", i ? " " : "", r, r ? errno : 0);
		}
		printf("\n");
	} else if (!strcmp(op, "badreq")) {
		int r = ioctl(fd, 0x1234, NULL);
		printf("rc=%d errno=%d\n", r, errno);
	} else if (!strcmp(op, "concurrent")) {
		int n = argc > 2 ? atoi(argv[2]) : 8;
		if (n < 1 || n > 256) n = 8;
		pthread_t th[256];
		int ok[256];
		for (int i = 0; i < n; i++) { ok[i] = 1; pthread_create(&th[i], NULL, status_thread, &ok[i]); }
		int all = 1;
		for (int i = 0; i < n; i++) { pthread_join(th[i], NULL); all &= ok[i]; }
		printf("%s\n", all ? "all ok" : "FAILED");
		rc = all ? 0 : 1;
	} else {
		rc = 2;
	}
out:
	close(fd);
	return rc;
}
