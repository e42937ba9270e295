/*
 * sev_preload.c - LD_PRELOAD interposer that routes /dev/sev to the sevkit
 * software SEV platform (simulator daemon).
 *
 * THIS IS A TEST PLATFORM. Nothing that happens through this shim proves
 * anything about real AMD hardware.
 *
 * What it does: open()/openat() of the simulated device path (default /dev/sev,
 * or $SEVKIT_SIM_DEVICE) connects a UNIX stream socket to $SEVKIT_SIM_SOCKET and
 * hands that socket back as the "device" fd. ioctl(fd, SEV_ISSUE_CMD, ...) on
 * such an fd marshals the command struct and the user buffers it points to,
 * the daemon's firmware/driver model answers, and the shim copies results back
 * the way the kernel's copy_to_user would, never writing past the caller's own
 * lengths. Every other path, fd and request goes straight to libc.
 *
 * Wire format (all integers little-endian; each message is u32 length + body):
 *   OPEN  req : u8 type=1, u8 accmode (O_ACCMODE value), u16 path_len, path,
 *               u32 pid, u16 tag_len, tag ($SEVKIT_SIM_TAG, may be empty),
 *               then for the SNP guest device only, when it names a guest:
 *               u16 guest_len (1..128), guest (the <vm> of a path
 *               <guest device>/<vm>, else $SEVKIT_SIM_GUEST); a daemon reads
 *               frames without this trailer as before
 *         rep : i32 errno (0 = opened)
 *   IOCTL req : u8 type=2, u8 writable, u8 data_null, u8 0, u32 cmd,
 *               u32 struct_len, struct bytes,
 *               u32 nblobs, nblobs x { u8 present, u32 len, bytes }
 *               (present: 1 = copied, 0 = no address or a zero/oversized
 *               length (the driver's EINVAL), 2 = unreadable memory (EFAULT));
 *               an unreadable command struct is sent with struct_len 0
 *         rep : i32 errno (0 = ioctl returns 0), u8 error_set, u8[3] 0,
 *               u32 fw_error, u32 struct_len, struct bytes,
 *               u32 nout, nout x { u32 addr_off, u32 len_off, u32 len, bytes }
 * The daemon names output blobs by the offsets of their address/length fields
 * inside the command struct; the shim accepts only the offsets that command
 * really has (table below), so a confused daemon cannot make it write anywhere
 * the caller did not point.
 *
 * The SNP guest device (/dev/sev-guest, or $SEVKIT_SIM_GUEST_DEVICE) uses the
 * same OPEN with bit 7 of the accmode byte set. Which simulated guest's launch
 * its reports carry: $SEVKIT_SIM_GUEST=<vm> names one for the whole process,
 * and a path <guest device>/<vm> (which no real guest has: the device is no
 * directory) names one for that open; neither means the simulator's default
 * guest. A name longer than 128 bytes opens nothing (ENOENT): it must never
 * fall back to another guest's launch. Then:
 *   GUEST IOCTL req : u8 type=4, u8 msg_version, u8 req_state (0 = req_data
 *               NULL, 1 = copied, 2 = unreadable), u8 resp_null, u32 request,
 *               u32 req_len, request struct bytes
 *         rep : i32 errno, u32 fw_error, u32 vmm_error (exitinfo2, copied back
 *               when non-zero, as the driver does), u32 resp_len, response bytes
 *               (at most the response struct), u32 certs_len_out (non-zero:
 *               rewrite the ext request's certs_len), u32 ncerts, cert bytes
 *               (at most the caller's certs_len, only for SNP_GET_EXT_REPORT)
 */
/* We define open() and open64() separately, so the 64-bit-offset redirection
 * (node-gyp builds with _FILE_OFFSET_BITS=64) and fortified inline wrappers
 * must stay off in this file. */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "../include/sev_uapi.h"
#include "../include/sev_guest_uapi.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

/* Largest reply we accept: struct (<=128) + GET_ID2 id + PDH export blobs. */
#define SHIM_MAX_FRAME (1u << 20)
/* Most simulated devices one process keeps open at once. */
#define SHIM_MAX_FDS 256
/* Mirrors the kernel's default psp_cmd_timeout (100 s). */
#define SHIM_TIMEOUT_SEC 100

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);
typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef int (*close_fn)(int);
typedef int (*fstat_fn)(int, struct stat *);
typedef FILE *(*fopen_fn)(const char *, const char *);
typedef int (*fclose_fn)(FILE *);

static open_fn real_open, real_open64;
static openat_fn real_openat, real_openat64;
static open2_fn real___open_2, real___open64_2;
static openat2_fn real___openat_2, real___openat64_2;
static ioctl_fn real_ioctl;
static close_fn real_close;
static fstat_fn real_fstat, real_fstat64;
static fopen_fn real_fopen, real_fopen64;
static fclose_fn real_fclose;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* The environment is read once, at load time while the process is still
 * single-threaded: getenv() on a libuv pool thread would race with setenv()
 * on the JS thread. */
static char g_sock[108];
static char g_dev[4096];
static char g_guest_dev[4096];
static char g_tag[256];
/* $SEVKIT_SIM_GUEST: the simulated SNP guest (VM name) this process runs in. */
#define SHIM_GUEST_MAX 128
static char g_guest[SHIM_GUEST_MAX + 1];
static int g_guest_too_long;
static int g_sim_enabled;

static void copy_env(char *dst, size_t cap, const char *name, const char *fallback)
{
	const char *v = getenv(name);
	if (!v || !v[0]) v = fallback;
	dst[0] = 0;
	if (!v) return;
	size_t n = strlen(v);
	if (n >= cap) return; /* too long for the destination: treat as unset */
	memcpy(dst, v, n + 1);
}

static void resolve_symbols(void)
{
	copy_env(g_sock, sizeof(g_sock), "SEVKIT_SIM_SOCKET", NULL);
	copy_env(g_dev, sizeof(g_dev), "SEVKIT_SIM_DEVICE", "/dev/sev");
	copy_env(g_guest_dev, sizeof(g_guest_dev), "SEVKIT_SIM_GUEST_DEVICE", "/dev/sev-guest");
	copy_env(g_tag, sizeof(g_tag), "SEVKIT_SIM_TAG", NULL);
	copy_env(g_guest, sizeof(g_guest), "SEVKIT_SIM_GUEST", NULL);
	{
		const char *g = getenv("SEVKIT_SIM_GUEST");
		g_guest_too_long = g && strlen(g) > SHIM_GUEST_MAX;
	}
	g_sim_enabled = g_sock[0] != 0 && g_dev[0] == '/';
	real_open = (open_fn)dlsym(RTLD_NEXT, "open");
	real_open64 = (open_fn)dlsym(RTLD_NEXT, "open64");
	real_openat = (openat_fn)dlsym(RTLD_NEXT, "openat");
	real_openat64 = (openat_fn)dlsym(RTLD_NEXT, "openat64");
	real___open_2 = (open2_fn)dlsym(RTLD_NEXT, "__open_2");
	real___open64_2 = (open2_fn)dlsym(RTLD_NEXT, "__open64_2");
	real___openat_2 = (openat2_fn)dlsym(RTLD_NEXT, "__openat_2");
	real___openat64_2 = (openat2_fn)dlsym(RTLD_NEXT, "__openat64_2");
	real_ioctl = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
	real_close = (close_fn)dlsym(RTLD_NEXT, "close");
	real_fstat = (fstat_fn)dlsym(RTLD_NEXT, "fstat");
	real_fstat64 = (fstat_fn)dlsym(RTLD_NEXT, "fstat64");
	real_fopen = (fopen_fn)dlsym(RTLD_NEXT, "fopen");
	real_fopen64 = (fopen_fn)dlsym(RTLD_NEXT, "fopen64");
	real_fclose = (fclose_fn)dlsym(RTLD_NEXT, "fclose");
}

static void init_once(void) { pthread_once(&g_once, resolve_symbols); }

__attribute__((constructor)) static void shim_load(void) { init_once(); }

/* ---- table of simulated devices ------------------------------------------ */

/* One slot per simulated open file (one daemon connection). The socket's
 * (st_dev, st_ino) names it, not the fd number, so every fd that refers to it
 * (dup, dup2, dup3, F_DUPFD, fork, SCM_RIGHTS) reaches the same device, as
 * they reach one struct file in the kernel. The slot goes when no fd of this
 * process refers to the socket any more. */

enum { SLOT_FREE = 0, SLOT_OPEN = 1, SLOT_CLOSING = 2 };

struct slot {
	dev_t dev;
	ino_t ino;
	int writable;        /* FMODE_WRITE: O_WRONLY or O_RDWR at open() */
	int guest;           /* the SNP guest device, not /dev/sev */
	int state;
	unsigned inflight;   /* threads holding a reference (guarded by g_tab) */
	pthread_mutex_t io;  /* one request at a time per open file */
};

static pthread_mutex_t g_tab = PTHREAD_MUTEX_INITIALIZER;
static struct slot g_slots[SHIM_MAX_FDS];
static int g_slots_ready;
static int g_open_count; /* atomic fast path: 0 means no simulated device is open */

static void slots_init_locked(void)
{
	if (g_slots_ready) return;
	for (int i = 0; i < SHIM_MAX_FDS; i++) {
		g_slots[i].state = SLOT_FREE;
		g_slots[i].inflight = 0;
		pthread_mutex_init(&g_slots[i].io, NULL);
	}
	g_slots_ready = 1;
}

/* The open slot `fd` refers to (with a reference held), or NULL. */
static struct slot *slot_acquire(int fd)
{
	if (fd < 0 || __atomic_load_n(&g_open_count, __ATOMIC_ACQUIRE) == 0) return NULL;
	init_once(); /* the real fstat: ours would come back here */
	struct stat st;
	if (!real_fstat || real_fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return NULL;
	struct slot *found = NULL;
	pthread_mutex_lock(&g_tab);
	if (g_slots_ready) {
		for (int i = 0; i < SHIM_MAX_FDS; i++) {
			if (g_slots[i].state == SLOT_OPEN && g_slots[i].ino == st.st_ino && g_slots[i].dev == st.st_dev) {
				found = &g_slots[i];
				found->inflight++;
				break;
			}
		}
	}
	pthread_mutex_unlock(&g_tab);
	return found;
}

static void slot_release(struct slot *s)
{
	pthread_mutex_lock(&g_tab);
	s->inflight--;
	if (s->state == SLOT_CLOSING && s->inflight == 0) s->state = SLOT_FREE;
	pthread_mutex_unlock(&g_tab);
}

/* Does any fd of this process still refer to the slot's socket? Without
 * /proc the answer is no: the slot goes with the first close, as before
 * dup'd fds were followed. */
static int slot_still_referenced(const struct slot *s)
{
	init_once();
	if (!real_fstat) return 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d) return 0;
	int self = dirfd(d), found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
		int fd = atoi(e->d_name);
		struct stat st;
		if (fd == self || real_fstat(fd, &st) != 0) continue;
		if (S_ISSOCK(st.st_mode) && st.st_ino == s->ino && st.st_dev == s->dev) found = 1;
	}
	closedir(d);
	return found;
}

/* After an fd of slot `s` was closed: retire the slot when it was the last. */
static void slot_after_close(struct slot *s)
{
	if (!slot_still_referenced(s)) {
		pthread_mutex_lock(&g_tab);
		if (s->state == SLOT_OPEN) {
			s->state = SLOT_CLOSING;
			__atomic_sub_fetch(&g_open_count, 1, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&g_tab);
	}
	slot_release(s);
}

/* ---- user memory ----------------------------------------------------------- */

/* copy_from_user()/copy_to_user(): a bad caller pointer is EFAULT, never a
 * crash. process_vm_readv/writev on our own pid checks the whole range (and
 * page protections) without touching it; the memcpy that follows is what a
 * memory checker (valgrind, ASan) sees, so definedness stays tracked. */
static int user_read(void *dst, const void *src, size_t n)
{
	if (n == 0) return 0;
	struct iovec local = { dst, n }, remote = { (void *)(uintptr_t)src, n };
	ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	if (r < 0 && (errno == ENOSYS || errno == EPERM)) r = (ssize_t)n; /* seccomp'd: trust the caller, as before */
	if (r != (ssize_t)n) { errno = EFAULT; return -1; }
	memcpy(dst, src, n);
	return 0;
}

static int user_write(void *dst, const void *src, size_t n)
{
	if (n == 0) return 0;
	struct iovec local = { (void *)(uintptr_t)src, n }, remote = { dst, n };
	ssize_t r = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
	if (r < 0 && (errno == ENOSYS || errno == EPERM)) r = (ssize_t)n;
	if (r != (ssize_t)n) { errno = EFAULT; return -1; }
	memcpy(dst, src, n);
	return 0;
}

/* ---- byte helpers -------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32); }

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Returns 0, or -1 with errno (EOF is reported as ECONNRESET). */
static int read_all(int fd, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n == 0) { errno = ECONNRESET; return -1; }
		if (n < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_frame(int fd, const uint8_t *body, uint32_t len)
{
	uint8_t hdr[4];
	put_u32(hdr, len);
	if (write_all(fd, hdr, 4) < 0) return -1;
	return write_all(fd, body, len);
}

/* Reads one frame into a malloc'd buffer. */
static uint8_t *recv_frame(int fd, uint32_t *len_out)
{
	uint8_t hdr[4];
	if (read_all(fd, hdr, 4) < 0) return NULL;
	uint32_t len = get_u32(hdr);
	if (len > SHIM_MAX_FRAME) { errno = EPROTO; return NULL; }
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) { errno = ENOMEM; return NULL; }
	if (read_all(fd, buf, len) < 0) { int e = errno; free(buf); errno = e; return NULL; }
	*len_out = len;
	return buf;
}

/* Daemon unreachable or talking nonsense: the device is gone, as far as the
 * caller can tell. Timeouts keep their own meaning. */
static int transport_errno(int e)
{
	if (e == EAGAIN || e == EWOULDBLOCK) return ETIMEDOUT;
	if (e == ENOMEM) return ENOMEM;
	return ENODEV;
}

/* A daemon's errno must be one a syscall could return. */
static int errno_in_range(int32_t e) { return e >= 0 && e < 4096; }

/* ---- open ----------------------------------------------------------------- */

/* A path <guest device>/<vm> (one component, non-empty): the <vm>, else NULL. */
static const char *guest_path_name(const char *path)
{
	if (g_guest_dev[0] != '/') return NULL;
	size_t n = strlen(g_guest_dev);
	if (strncmp(path, g_guest_dev, n) != 0 || path[n] != '/' || path[n + 1] == 0) return NULL;
	if (strchr(path + n + 1, '/')) return NULL;
	return path + n + 1;
}

static int is_guest_path(const char *path)
{
	return g_guest_dev[0] == '/' && (strcmp(path, g_guest_dev) == 0 || guest_path_name(path) != NULL);
}

static int is_sim_path(const char *path)
{
	if (!path || path[0] != '/' || !g_sim_enabled) return 0;
	return strcmp(path, g_dev) == 0 || is_guest_path(path);
}

static int sim_open(const char *path, int flags)
{
	int guest = is_guest_path(path);
	/* Which SNP guest: the path's <vm> wins over $SEVKIT_SIM_GUEST. */
	const char *guest_name = NULL;
	size_t guest_len = 0;
	if (guest) {
		const char *from_path = guest_path_name(path);
		if (from_path) {
			guest_name = from_path;
		} else if (g_guest_too_long) {
			errno = ENOENT;
			return -1;
		} else if (g_guest[0]) {
			guest_name = g_guest;
		}
		if (guest_name) {
			guest_len = strlen(guest_name);
			if (guest_len > SHIM_GUEST_MAX) { errno = ENOENT; return -1; }
		}
	}
	const char *sock_path = g_sock;
	struct sockaddr_un addr;
	size_t plen = strlen(sock_path);
	if (plen >= sizeof(addr.sun_path)) { errno = ENAMETOOLONG; return -1; }
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, sock_path, plen + 1);

	int type = SOCK_STREAM;
	if (flags & O_CLOEXEC) type |= SOCK_CLOEXEC;
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0) return -1;
	struct timeval tv = { SHIM_TIMEOUT_SEC, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int rc;
	do {
		rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	} while (rc < 0 && errno == EINTR);
	if (rc < 0) { real_close(fd); errno = ENODEV; return -1; }

	size_t path_len = strlen(path);
	if (path_len > 4096) { real_close(fd); errno = ENAMETOOLONG; return -1; }
	/* Optional tag ($SEVKIT_SIM_TAG): lets a test aim injected faults at its own processes. */
	const char *tag = g_tag;
	size_t tag_len = strlen(tag);
	uint8_t req[4 + 4096 + 4 + 2 + 255 + 2 + SHIM_GUEST_MAX];
	size_t req_len = 0;
	req[req_len++] = 1;
	req[req_len++] = (uint8_t)((flags & O_ACCMODE) | (guest ? 0x80 : 0));
	req[req_len++] = (uint8_t)path_len;
	req[req_len++] = (uint8_t)(path_len >> 8);
	memcpy(req + req_len, path, path_len);
	req_len += path_len;
	/* The pid lets a test aim injected faults at its own process. */
	put_u32(req + req_len, (uint32_t)getpid());
	req_len += 4;
	req[req_len++] = (uint8_t)tag_len;
	req[req_len++] = 0;
	memcpy(req + req_len, tag, tag_len);
	req_len += tag_len;
	if (guest_name) {
		req[req_len++] = (uint8_t)guest_len;
		req[req_len++] = (uint8_t)(guest_len >> 8);
		memcpy(req + req_len, guest_name, guest_len);
		req_len += guest_len;
	}
	uint32_t rlen = 0;
	uint8_t *rep = NULL;
	if (send_frame(fd, req, (uint32_t)req_len) < 0 || !(rep = recv_frame(fd, &rlen)) || rlen < 4) {
		int e = transport_errno(errno);
		free(rep);
		real_close(fd);
		errno = e;
		return -1;
	}
	int32_t err = (int32_t)get_u32(rep);
	free(rep);
	if (!errno_in_range(err)) err = ENODEV;
	if (err != 0) { real_close(fd); errno = err; return -1; }

	struct stat st;
	if (real_fstat(fd, &st) != 0) { real_close(fd); errno = ENODEV; return -1; }
	pthread_mutex_lock(&g_tab);
	slots_init_locked();
	struct slot *s = NULL;
	for (int i = 0; i < SHIM_MAX_FDS; i++) {
		if (g_slots[i].state == SLOT_FREE) { s = &g_slots[i]; break; }
	}
	if (!s) {
		pthread_mutex_unlock(&g_tab);
		real_close(fd);
		errno = EMFILE;
		return -1;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->writable = (flags & O_ACCMODE) != O_RDONLY;
	s->guest = guest;
	s->state = SLOT_OPEN;
	s->inflight = 0;
	__atomic_add_fetch(&g_open_count, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g_tab);
	return fd;
}

#define OPEN_MODE_ARG(flags, mode)                                  \
	mode_t mode = 0;                                                \
	if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) { \
		va_list ap;                                                 \
		va_start(ap, flags);                                        \
		mode = (mode_t)va_arg(ap, int);                             \
		va_end(ap);                                                 \
	}

SHIM_EXPORT int open(const char *path, int flags, ...)
{
	init_once();
	OPEN_MODE_ARG(flags, mode);
	if (is_sim_path(path)) return sim_open(path, flags);
	return real_open(path, flags, mode);
}

SHIM_EXPORT int open64(const char *path, int flags, ...)
{
	init_once();
	OPEN_MODE_ARG(flags, mode);
	if (is_sim_path(path)) return sim_open(path, flags);
	return (real_open64 ? real_open64 : real_open)(path, flags, mode);
}

SHIM_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	init_once();
	OPEN_MODE_ARG(flags, mode);
	if (is_sim_path(path)) return sim_open(path, flags);
	return real_openat(dirfd, path, flags, mode);
}

SHIM_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	init_once();
	OPEN_MODE_ARG(flags, mode);
	if (is_sim_path(path)) return sim_open(path, flags);
	return (real_openat64 ? real_openat64 : real_openat)(dirfd, path, flags, mode);
}

SHIM_EXPORT int __open_2(const char *path, int flags)
{
	init_once();
	if (is_sim_path(path)) return sim_open(path, flags);
	return real___open_2 ? real___open_2(path, flags) : real_open(path, flags);
}

SHIM_EXPORT int __open64_2(const char *path, int flags)
{
	init_once();
	if (is_sim_path(path)) return sim_open(path, flags);
	return real___open64_2 ? real___open64_2(path, flags) : real_open(path, flags);
}

SHIM_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	init_once();
	if (is_sim_path(path)) return sim_open(path, flags);
	return real___openat_2 ? real___openat_2(dirfd, path, flags) : real_openat(dirfd, path, flags);
}

SHIM_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	init_once();
	if (is_sim_path(path)) return sim_open(path, flags);
	return real___openat64_2 ? real___openat64_2(dirfd, path, flags) : real_openat(dirfd, path, flags);
}

/* ---- fopen ---------------------------------------------------------------- */

/* glibc's fopen() opens through an internal __open that no interposer sees,
 * so stdio clients of /dev/sev are routed here. */
static FILE *sim_fopen(const char *path, const char *mode)
{
	int flags, plus = strchr(mode, '+') != NULL;
	switch (mode[0]) {
	case 'r': flags = plus ? O_RDWR : O_RDONLY; break;
	case 'w': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC; break;
	case 'a': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
	default: errno = EINVAL; return NULL;
	}
	if (strchr(mode, 'e')) flags |= O_CLOEXEC;
	/* O_CREAT|O_EXCL on a node that exists: what the kernel says for /dev/sev. */
	if (strchr(mode, 'x') && (flags & O_CREAT)) { errno = EEXIST; return NULL; }
	int fd = sim_open(path, flags);
	if (fd < 0) return NULL;
	char m[3] = { mode[0], plus ? '+' : 0, 0 };
	FILE *f = fdopen(fd, m);
	if (!f) { int e = errno; close(fd); errno = e; }
	return f;
}

SHIM_EXPORT FILE *fopen(const char *path, const char *mode)
{
	init_once();
	if (is_sim_path(path) && mode) return sim_fopen(path, mode);
	return real_fopen(path, mode);
}

SHIM_EXPORT FILE *fopen64(const char *path, const char *mode)
{
	init_once();
	if (is_sim_path(path) && mode) return sim_fopen(path, mode);
	return (real_fopen64 ? real_fopen64 : real_fopen)(path, mode);
}

/* ---- close ---------------------------------------------------------------- */

SHIM_EXPORT int close(int fd)
{
	init_once();
	struct slot *s = slot_acquire(fd);
	if (!s) return real_close(fd);
	/* Like the kernel keeping the file alive for a running ioctl: wait for it. */
	pthread_mutex_lock(&s->io);
	int rc = real_close(fd);
	int e = errno;
	pthread_mutex_unlock(&s->io);
	slot_after_close(s);
	errno = e;
	return rc;
}

/* fclose() closes its fd with glibc's internal close: follow it here. */
SHIM_EXPORT int fclose(FILE *f)
{
	init_once();
	struct slot *s = f ? slot_acquire(fileno(f)) : NULL;
	if (!s) return real_fclose(f);
	pthread_mutex_lock(&s->io);
	int rc = real_fclose(f);
	int e = errno;
	pthread_mutex_unlock(&s->io);
	slot_after_close(s);
	errno = e;
	return rc;
}

/* ---- fstat ---------------------------------------------------------------- */

/* The addon refuses a device path that is not a character device (a FIFO must
 * not hang it). A simulated fd is a socket underneath, so it reports itself as
 * the misc character device the kernel's /dev/sev is (major 10). */
static int sim_fstat(fstat_fn real, int fd, struct stat *st)
{
	init_once();
	if (!real) { errno = ENOSYS; return -1; }
	struct slot *s = slot_acquire(fd);
	int rc = real(fd, st);
	if (s) {
		if (rc == 0) {
			st->st_mode = (st->st_mode & 07777) | S_IFCHR;
			st->st_rdev = makedev(10, s->guest ? 125 : 124);
		}
		slot_release(s);
	}
	return rc;
}

SHIM_EXPORT int fstat(int fd, struct stat *st) { return sim_fstat(real_fstat, fd, st); }
/* x86-64: struct stat64 has struct stat's layout. */
_Static_assert(sizeof(struct stat64) == sizeof(struct stat), "stat64 layout");
SHIM_EXPORT int fstat64(int fd, struct stat64 *st) { return sim_fstat(real_fstat64 ? real_fstat64 : real_fstat, fd, (struct stat *)st); }

/* ---- ioctl ---------------------------------------------------------------- */

/* Every command struct in layout_for() fits sim_ioctl()'s copy of it. */
#define SHIM_MAX_STRUCT 128
_Static_assert(sizeof(struct sevkit_user_data_get_id) <= SHIM_MAX_STRUCT, "get_id fits");
_Static_assert(sizeof(struct sevkit_user_data_snp_config) <= SHIM_MAX_STRUCT, "snp_config fits");
_Static_assert(sizeof(struct sevkit_user_data_snp_status) <= SHIM_MAX_STRUCT, "snp_status fits");
_Static_assert(sizeof(struct sevkit_user_data_pdh_cert_export) <= SHIM_MAX_STRUCT, "pdh_cert_export fits");
_Static_assert(sizeof(struct sevkit_user_data_pek_cert_import) <= SHIM_MAX_STRUCT, "pek_cert_import fits");
_Static_assert(sizeof(struct sevkit_user_data_snp_vlek_load) <= SHIM_MAX_STRUCT, "vlek_load fits");

struct blob_field { uint32_t addr_off, len_off; };

struct cmd_layout {
	uint32_t struct_size;   /* bytes at data */
	int copy_in;            /* the kernel copy_from_user()s the struct */
	int nin;                /* input blobs (PEK_CERT_IMPORT) */
	struct blob_field in[2];
	int nout;               /* output blobs the driver may copy_to_user */
	struct blob_field out[2];
};

static const struct cmd_layout *layout_for(uint32_t cmd)
{
	static const struct cmd_layout none = { 0, 0, 0, { { 0, 0 } }, 0, { { 0, 0 } } };
	static const struct cmd_layout status = { sizeof(struct sevkit_user_data_status), 0, 0, { { 0, 0 } }, 0, { { 0, 0 } } };
	static const struct cmd_layout pek_csr = {
		sizeof(struct sevkit_user_data_pek_csr), 1, 0, { { 0, 0 } }, 1,
		{ { offsetof(struct sevkit_user_data_pek_csr, address), offsetof(struct sevkit_user_data_pek_csr, length) } } };
	static const struct cmd_layout pdh_export = {
		sizeof(struct sevkit_user_data_pdh_cert_export), 1, 0, { { 0, 0 } }, 2,
		{ { offsetof(struct sevkit_user_data_pdh_cert_export, pdh_cert_address),
		    offsetof(struct sevkit_user_data_pdh_cert_export, pdh_cert_len) },
		  { offsetof(struct sevkit_user_data_pdh_cert_export, cert_chain_address),
		    offsetof(struct sevkit_user_data_pdh_cert_export, cert_chain_len) } } };
	static const struct cmd_layout pek_import = {
		sizeof(struct sevkit_user_data_pek_cert_import), 1, 2,
		{ { offsetof(struct sevkit_user_data_pek_cert_import, pek_cert_address),
		    offsetof(struct sevkit_user_data_pek_cert_import, pek_cert_len) },
		  { offsetof(struct sevkit_user_data_pek_cert_import, oca_cert_address),
		    offsetof(struct sevkit_user_data_pek_cert_import, oca_cert_len) } }, 0, { { 0, 0 } } };
	static const struct cmd_layout get_id = { sizeof(struct sevkit_user_data_get_id), 0, 0, { { 0, 0 } }, 0, { { 0, 0 } } };
	static const struct cmd_layout get_id2 = {
		sizeof(struct sevkit_user_data_get_id2), 1, 0, { { 0, 0 } }, 1,
		{ { offsetof(struct sevkit_user_data_get_id2, address), offsetof(struct sevkit_user_data_get_id2, length) } } };
	static const struct cmd_layout snp_status = { sizeof(struct sevkit_user_data_snp_status), 0, 0, { { 0, 0 } }, 0, { { 0, 0 } } };
	static const struct cmd_layout snp_config = { sizeof(struct sevkit_user_data_snp_config), 1, 0, { { 0, 0 } }, 0, { { 0, 0 } } };
	/* The wrapped VLEK is read by the driver; sent as an input blob of fixed size. */
	static const struct cmd_layout vlek = { sizeof(struct sevkit_user_data_snp_vlek_load), 1, 0, { { 0, 0 } }, 0, { { 0, 0 } } };

	switch (cmd) {
	case SEVKIT_PLATFORM_STATUS: return &status;
	case SEVKIT_PEK_CSR: return &pek_csr;
	case SEVKIT_PDH_CERT_EXPORT: return &pdh_export;
	case SEVKIT_PEK_CERT_IMPORT: return &pek_import;
	case SEVKIT_GET_ID: return &get_id;
	case SEVKIT_GET_ID2: return &get_id2;
	case SEVKIT_SNP_PLATFORM_STATUS: return &snp_status;
	case SEVKIT_SNP_SET_CONFIG: return &snp_config;
	case SEVKIT_SNP_VLEK_LOAD: return &vlek;
	default: return &none;
	}
}

/* A send or receive that stopped part-way (timeout, oversized or cut frame)
 * leaves the stream mid-message: a later ioctl on this fd would read the rest
 * of an old reply as its own. Like the kernel's psp_dead, the device stays
 * failed for this fd from then on. Called with s->io held, so the fd is ours. */
static int transport_failed(int fd)
{
	int e = transport_errno(errno);
	shutdown(fd, SHUT_RDWR); /* the socket, so every fd of this device */
	errno = e;
	return -1;
}

/* One request/response exchange for `cmd`, the caller's struct as read once by
 * ioctl(); only `error` is written back to argp. Returns the ioctl result with
 * errno set. */
static int sim_ioctl(int fd, struct slot *s, struct sevkit_issue_cmd *argp, struct sevkit_issue_cmd cmd)
{
	const struct cmd_layout *lay = layout_for(cmd.cmd);
	uint8_t *data = (uint8_t *)(uintptr_t)cmd.data;
	uint8_t orig[SHIM_MAX_STRUCT];
	memset(orig, 0, sizeof(orig));
	uint32_t in_len = 0;
	/* An unreadable struct goes as none: the model fails with EFAULT where
	 * the driver's copy_from_user() would (after its own earlier checks). */
	if (lay->copy_in && data && user_read(orig, data, lay->struct_size) == 0) in_len = lay->struct_size;

	/* Request size: header + struct + blobs (each at most the driver limit). */
	size_t cap = 12 + in_len + 4 + 2 * (5 + SEVKIT_FW_BLOB_MAX_SIZE);
	uint8_t *req = malloc(cap);
	if (!req) { errno = ENOMEM; return -1; }
	size_t off = 0;
	req[off++] = 2;
	req[off++] = (uint8_t)(s->writable ? 1 : 0);
	req[off++] = (uint8_t)(data ? 0 : 1);
	req[off++] = 0;
	put_u32(req + off, cmd.cmd); off += 4;
	put_u32(req + off, in_len); off += 4;
	memcpy(req + off, orig, in_len); off += in_len;
	uint32_t nblobs = in_len ? (uint32_t)lay->nin : 0;
	put_u32(req + off, nblobs); off += 4;
	for (uint32_t i = 0; i < nblobs; i++) {
		uint64_t addr = get_u64(orig + lay->in[i].addr_off);
		uint32_t len = get_u32(orig + lay->in[i].len_off);
		/* psp_copy_user_blob(): no address, zero or oversized length is the
		 * daemon's EINVAL to report; we only copy what the driver would. */
		int present = addr != 0 && len != 0 && len <= SEVKIT_FW_BLOB_MAX_SIZE;
		if (present && user_read(req + off + 5, (const void *)(uintptr_t)addr, len) != 0) present = 2; /* memdup_user(): EFAULT */
		req[off++] = (uint8_t)present;
		put_u32(req + off, present == 1 ? len : 0); off += 4;
		if (present == 1) off += len;
	}

	int rc = send_frame(fd, req, (uint32_t)off);
	free(req);
	if (rc < 0) return transport_failed(fd);
	uint32_t rlen = 0;
	uint8_t *rep = recv_frame(fd, &rlen);
	if (!rep) return transport_failed(fd);

	int result = -1;
	int err = EPROTO;
	size_t p = 0;
	if (rlen < 16) goto bad;
	int32_t rep_errno = (int32_t)get_u32(rep);
	if (!errno_in_range(rep_errno)) goto bad;
	int error_set = rep[4];
	uint32_t fw_error = get_u32(rep + 8);
	uint32_t out_struct_len = get_u32(rep + 12);
	p = 16;
	if (out_struct_len > lay->struct_size || rlen - p < out_struct_len) goto bad;
	const uint8_t *out_struct = rep + p;
	p += out_struct_len;
	if (rlen - p < 4) goto bad;
	uint32_t nout = get_u32(rep + p);
	p += 4;
	if (nout > (uint32_t)lay->nout) goto bad;

	/* Validate the whole reply before touching caller memory. */
	size_t scan = p;
	for (uint32_t i = 0; i < nout; i++) {
		if (rlen - scan < 12) goto bad;
		uint32_t ao = get_u32(rep + scan), lo = get_u32(rep + scan + 4), bl = get_u32(rep + scan + 8);
		int known = 0;
		for (int k = 0; k < lay->nout; k++)
			if (lay->out[k].addr_off == ao && lay->out[k].len_off == lo) known = 1;
		if (!known) goto bad;
		scan += 12;
		if (rlen - scan < bl) goto bad;
		scan += bl;
	}

	if (error_set) cmd.error = fw_error;
	err = rep_errno;
	result = rep_errno == 0 ? 0 : -1;
	int struct_ok = 1;
	if (out_struct_len > 0) {
		if (!data || user_write(data, out_struct, out_struct_len) != 0) {
			struct_ok = 0;
			err = EFAULT;
			result = -1;
		}
	}
	for (uint32_t i = 0; i < nout && data && struct_ok; i++) {
		uint32_t ao = get_u32(rep + p), lo = get_u32(rep + p + 4), bl = get_u32(rep + p + 8);
		p += 12;
		uint64_t addr = get_u64(orig + ao);
		uint32_t cap_len = get_u32(orig + lo); /* what the caller said it has room for */
		uint32_t n = bl < cap_len ? bl : cap_len;
		if (addr && n && user_write((void *)(uintptr_t)addr, rep + p, n) != 0) { err = EFAULT; result = -1; }
		p += bl;
	}
	free(rep);
	/* sev_ioctl() copies the whole sev_issue_cmd back after every handled
	 * command (EFAULT if it cannot), `error` updated when the firmware ran. */
	if (user_write(argp, &cmd, sizeof(cmd)) != 0) { err = EFAULT; result = -1; }
	errno = err;
	return result;
bad:
	free(rep);
	errno = EPROTO;
	return -1;
}

/* ---- the SNP guest device --------------------------------------------------- */

static uint32_t guest_req_size(uint32_t request)
{
	switch (request) {
	case SEVKIT_SNP_GET_REPORT: return sizeof(struct sevkit_snp_report_req);
	case SEVKIT_SNP_GET_DERIVED_KEY: return sizeof(struct sevkit_snp_derived_key_req);
	case SEVKIT_SNP_GET_EXT_REPORT: return sizeof(struct sevkit_snp_ext_report_req);
	default: return 0;
	}
}

static uint32_t guest_resp_size(uint32_t request)
{
	return request == SEVKIT_SNP_GET_DERIVED_KEY ? sizeof(struct sevkit_snp_derived_key_resp)
						     : sizeof(struct sevkit_snp_report_resp);
}

/* snp_guest_ioctl(): the request struct is read once, sent with the caller's
 * lengths; the reply is validated whole before any caller memory is written,
 * and never written past the response struct or the caller's certs_len. */
static int sim_guest_ioctl(int fd, uint32_t request, void *arg)
{
	uint32_t req_size = guest_req_size(request);
	if (req_size == 0) { errno = ENOTTY; return -1; } /* the driver's default case */
	struct sevkit_snp_guest_request_ioctl io;
	if (!arg || user_read(&io, arg, sizeof(io)) != 0) { errno = EFAULT; return -1; }

	uint8_t req[4 + 4 + 4 + 128];
	_Static_assert(sizeof(struct sevkit_snp_ext_report_req) <= 128, "guest requests fit");
	uint8_t body[128];
	int req_state = 0;
	if (io.req_data) req_state = user_read(body, (const void *)(uintptr_t)io.req_data, req_size) == 0 ? 1 : 2;
	size_t off = 0;
	req[off++] = 4;
	req[off++] = io.msg_version;
	req[off++] = (uint8_t)req_state;
	req[off++] = (uint8_t)(io.resp_data ? 0 : 1);
	put_u32(req + off, request); off += 4;
	uint32_t sent = req_state == 1 ? req_size : 0;
	put_u32(req + off, sent); off += 4;
	memcpy(req + off, body, sent); off += sent;
	if (send_frame(fd, req, (uint32_t)off) < 0) return transport_failed(fd);
	uint32_t rlen = 0;
	uint8_t *rep = recv_frame(fd, &rlen);
	if (!rep) return transport_failed(fd);

	uint32_t resp_max = guest_resp_size(request);
	uint64_t certs_addr = 0;
	uint32_t certs_cap = 0;
	if (request == SEVKIT_SNP_GET_EXT_REPORT && sent) {
		certs_addr = get_u64(body + offsetof(struct sevkit_snp_ext_report_req, certs_address));
		certs_cap = get_u32(body + offsetof(struct sevkit_snp_ext_report_req, certs_len));
	}
	size_t p = 0;
	if (rlen < 16) goto bad;
	int32_t rep_errno = (int32_t)get_u32(rep);
	if (!errno_in_range(rep_errno)) goto bad;
	uint32_t fw_error = get_u32(rep + 4), vmm_error = get_u32(rep + 8), resp_len = get_u32(rep + 12);
	p = 16;
	if (resp_len > resp_max || rlen - p < resp_len) goto bad;
	const uint8_t *resp = rep + p;
	p += resp_len;
	if (rlen - p < 8) goto bad;
	uint32_t certs_len_out = get_u32(rep + p), ncerts = get_u32(rep + p + 4);
	p += 8;
	if (rlen - p != ncerts) goto bad;
	if (ncerts > 0 && (certs_addr == 0 || ncerts > certs_cap)) goto bad;
	if (certs_len_out != 0 && request != SEVKIT_SNP_GET_EXT_REPORT) goto bad;
	const uint8_t *certs = rep + p;

	int err = rep_errno, result = rep_errno == 0 ? 0 : -1;
	if (resp_len > 0 && user_write((void *)(uintptr_t)io.resp_data, resp, resp_len) != 0) { err = EFAULT; result = -1; }
	if (ncerts > 0 && user_write((void *)(uintptr_t)certs_addr, certs, ncerts) != 0) { err = EFAULT; result = -1; }
	if (certs_len_out != 0) {
		uint8_t le[4];
		put_u32(le, certs_len_out);
		void *at = (uint8_t *)(uintptr_t)io.req_data + offsetof(struct sevkit_snp_ext_report_req, certs_len);
		if (user_write(at, le, 4) != 0) { err = EFAULT; result = -1; }
	}
	if (fw_error != 0 || vmm_error != 0) {
		io.fw_error = fw_error;
		io.vmm_error = vmm_error;
		if (user_write(arg, &io, sizeof(io)) != 0) { err = EFAULT; result = -1; }
	}
	free(rep);
	errno = err;
	return result;
bad:
	free(rep);
	errno = EPROTO;
	return -1;
}

SHIM_EXPORT int ioctl(int fd, unsigned long request, ...)
{
	init_once();
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);

	struct slot *s = slot_acquire(fd);
	if (!s) return real_ioctl(fd, request, arg);

	int rc;
	int e;
	pthread_mutex_lock(&s->io);
	if (s->state != SLOT_OPEN) {
		rc = -1;
		e = EBADF;
	} else if (s->guest) {
		rc = sim_guest_ioctl(fd, (uint32_t)request, arg);
		e = errno;
	} else if (request != SEVKIT_SEV_ISSUE_CMD) {
		/* The driver has exactly one ioctl. */
		rc = -1;
		e = EINVAL;
	} else {
		/* Read the caller's struct once, as the kernel's copy_from_user() does:
		 * the id checked here is the id issued, whatever other threads write. */
		struct sevkit_issue_cmd *argp = (struct sevkit_issue_cmd *)arg;
		struct sevkit_issue_cmd cmd;
		if (!arg || user_read(&cmd, argp, sizeof(cmd)) != 0) {
			rc = -1;
			e = EFAULT;
		} else if (cmd.cmd >= SEVKIT_SEV_MAX) {
			/* cmd > SEV_MAX, or SEV_MAX itself at the switch default: EINVAL, nothing copied back. */
			rc = -1;
			e = EINVAL;
		} else {
			rc = sim_ioctl(fd, s, argp, cmd);
			e = errno;
		}
	}
	pthread_mutex_unlock(&s->io);
	slot_release(s);
	errno = e;
	return rc;
}
