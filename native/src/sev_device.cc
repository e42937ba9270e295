// /dev/sev device layer: see sev_device.h for the threading contract.
#include "sev_device.h"

#include <cerrno>
#include <cstdint>
#include <cstring>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sevkit {
namespace {

// Owns one file descriptor for the duration of a single command. The device is
// opened per command (not cached) so that permission changes and a device that
// disappears (module unload) are seen immediately, and so nothing leaks if JS
// forgets about the platform object.
class Fd {
 public:
  Fd() = default;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  void reset(int fd) { fd_ = fd; }

 private:
  int fd_ = -1;
};

SysResult OpenDevice(const std::string& path, uint32_t cmd, Fd& fd) {
  SysResult r;
  r.command = cmd;
  const Access access = AccessFor(cmd);
  int f = OpenCharDevice(path, access == Access::ReadOnly ? O_RDONLY : O_RDWR, r);
  if (f < 0 && access == Access::PreferReadWrite && (r.err == EACCES || r.err == EPERM || r.err == EROFS)) {
    // Export only needs write access to INIT an UNINIT platform; a read-only
    // caller can still export from an INIT platform.
    r = SysResult{};
    r.command = cmd;
    f = OpenCharDevice(path, O_RDONLY, r);
  }
  if (f < 0) return r;
  fd.reset(f);
  return r;
}

SysResult Issue(int fd, uint32_t cmd, void* data) {
  sevkit_issue_cmd arg;
  std::memset(&arg, 0, sizeof arg);
  arg.cmd = cmd;
  arg.data = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data));
  // The kernel leaves `error` untouched on driver-side failures, so it must
  // start at 0 or a stale value would be reported as a firmware status.
  arg.error = 0;
  SysResult r;
  r.command = cmd;
  if (::ioctl(fd, SEVKIT_SEV_ISSUE_CMD, &arg) < 0) {
    r.err = errno;
    r.syscall = "ioctl";
    if (r.err == EIO && arg.error != 0) {
      r.hasFwStatus = true;
      r.fwStatus = arg.error;
    } else if (r.err == EIO) {
      // The driver turns a firmware status into EIO, and SUCCESS is no
      // failure: an EIO with `error` still 0 came from the driver before any
      // firmware call (or one that did not report), so there is no status.
      r.detail = "EIO from the driver without a firmware status (no firmware command reported one)";
    }
  }
  return r;
}

SysResult ProtocolError(uint32_t cmd, int err, std::string detail) {
  SysResult r;
  r.command = cmd;
  r.err = err;
  r.syscall = "ioctl";
  r.detail = std::move(detail);
  return r;
}

// A zero-length query must fail with EIO + INVALID_LEN; anything else is either
// a real error (returned as is) or a firmware/kernel that broke the protocol.
bool IsLengthAnswer(const SysResult& r) {
  return r.err == EIO && r.hasFwStatus && r.fwStatus == SEVKIT_RET_INVALID_LEN;
}

SysResult CheckLength(uint32_t cmd, const char* what, uint32_t len) {
  if (len == 0) return ProtocolError(cmd, EPROTO, std::string("firmware reported a zero ") + what + " length");
  if (len > kBlobMax) {
    return ProtocolError(cmd, EOVERFLOW,
                         std::string("firmware asked for a ") + std::to_string(len) + "-byte " + what +
                             ", over the " + std::to_string(kBlobMax) + "-byte limit");
  }
  return SysResult{};
}

SysResult UnexpectedSuccess(uint32_t cmd) {
  return ProtocolError(cmd, EPROTO, "length query succeeded instead of reporting SEV_RET_INVALID_LEN");
}

// After the fetch the kernel copies back the firmware's lengths; they must not
// exceed what we allocated (then the blob is truncated to them).
SysResult Shrink(uint32_t cmd, const char* what, std::vector<uint8_t>& buf, uint32_t returned) {
  if (returned > buf.size()) {
    return ProtocolError(cmd, EPROTO,
                         std::string("firmware returned a ") + std::to_string(returned) + "-byte " + what +
                             " for a " + std::to_string(buf.size()) + "-byte buffer");
  }
  buf.resize(returned);
  return SysResult{};
}

const char* FileTypeName(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISBLK(mode)) return "a block device";
  return "not a device";
}

}  // namespace

int OpenCharDevice(const std::string& path, int accmode, SysResult& r) {
  // O_NONBLOCK: opening a FIFO (or a tty, or whatever the path points to) must
  // not park a pool thread forever; a real /dev/sev or /dev/kvm ignores it.
  // O_NOCTTY: a terminal named by mistake must not become our controlling tty.
  int f = ::open(path.c_str(), accmode | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (f < 0) {
    r.err = errno;
    r.syscall = "open";
    return -1;
  }
  struct stat st;
  if (::fstat(f, &st) != 0) {
    r.err = errno;
    r.syscall = "open";
    ::close(f);
    return -1;
  }
  if (!S_ISCHR(st.st_mode)) {
    // An ioctl on a FIFO or a file would fail anyway, but only after reading
    // or blocking on something that is not a device: refuse it here.
    r.err = ENODEV;
    r.syscall = "open";
    r.detail = std::string("not a character device (") + FileTypeName(st.st_mode) + ")";
    ::close(f);
    return -1;
  }
  return f;
}

Access AccessFor(uint32_t cmd) {
  switch (cmd) {
    case SEVKIT_PLATFORM_STATUS:
    case SEVKIT_GET_ID:
    case SEVKIT_GET_ID2:
    case SEVKIT_SNP_PLATFORM_STATUS:
    // The driver has no FMODE_WRITE check for SNP_COMMIT; asking for more than
    // the kernel needs would only lock out read-only operators.
    case SEVKIT_SNP_COMMIT:
      return Access::ReadOnly;
    case SEVKIT_PDH_CERT_EXPORT:
      return Access::PreferReadWrite;
    default:
      return Access::ReadWrite;
  }
}

const char* CommandName(uint32_t cmd) {
  switch (cmd) {
    case SEVKIT_FACTORY_RESET: return "FACTORY_RESET";
    case SEVKIT_PLATFORM_STATUS: return "PLATFORM_STATUS";
    case SEVKIT_PEK_GEN: return "PEK_GEN";
    case SEVKIT_PEK_CSR: return "PEK_CSR";
    case SEVKIT_PDH_GEN: return "PDH_GEN";
    case SEVKIT_PDH_CERT_EXPORT: return "PDH_CERT_EXPORT";
    case SEVKIT_PEK_CERT_IMPORT: return "PEK_CERT_IMPORT";
    case SEVKIT_GET_ID: return "GET_ID";
    case SEVKIT_GET_ID2: return "GET_ID2";
    case SEVKIT_SNP_PLATFORM_STATUS: return "SNP_PLATFORM_STATUS";
    case SEVKIT_SNP_COMMIT: return "SNP_COMMIT";
    case SEVKIT_SNP_SET_CONFIG: return "SNP_SET_CONFIG";
    case SEVKIT_SNP_VLEK_LOAD: return "SNP_VLEK_LOAD";
    default: return nullptr;
  }
}

SysResult SimpleCommand(const std::string& path, uint32_t cmd) {
  Fd fd;
  SysResult r = OpenDevice(path, cmd, fd);
  if (!r.ok()) return r;
  // These commands take no struct; the kernel ignores `data`.
  return Issue(fd.get(), cmd, nullptr);
}

SysResult PlatformStatus(const std::string& path, sevkit_user_data_status& out) {
  Fd fd;
  SysResult r = OpenDevice(path, SEVKIT_PLATFORM_STATUS, fd);
  if (!r.ok()) return r;
  std::memset(&out, 0, sizeof out);
  return Issue(fd.get(), SEVKIT_PLATFORM_STATUS, &out);
}

SysResult PekCsr(const std::string& path, std::vector<uint8_t>& csr) {
  const uint32_t cmd = SEVKIT_PEK_CSR;
  Fd fd;
  SysResult r = OpenDevice(path, cmd, fd);
  if (!r.ok()) return r;

  sevkit_user_data_pek_csr q;
  std::memset(&q, 0, sizeof q);
  r = Issue(fd.get(), cmd, &q);
  if (r.ok()) return UnexpectedSuccess(cmd);
  if (!IsLengthAnswer(r)) return r;
  r = CheckLength(cmd, "CSR", q.length);
  if (!r.ok()) return r;

  csr.assign(q.length, 0);
  q.address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(csr.data()));
  r = Issue(fd.get(), cmd, &q);
  if (!r.ok()) return r;
  return Shrink(cmd, "CSR", csr, q.length);
}

SysResult PdhCertExport(const std::string& path, std::vector<uint8_t>& pdh, std::vector<uint8_t>& chain) {
  const uint32_t cmd = SEVKIT_PDH_CERT_EXPORT;
  Fd fd;
  SysResult r = OpenDevice(path, cmd, fd);
  if (!r.ok()) return r;

  sevkit_user_data_pdh_cert_export q;
  std::memset(&q, 0, sizeof q);
  r = Issue(fd.get(), cmd, &q);
  if (r.ok()) return UnexpectedSuccess(cmd);
  if (!IsLengthAnswer(r)) return r;
  r = CheckLength(cmd, "PDH certificate", q.pdh_cert_len);
  if (!r.ok()) return r;
  r = CheckLength(cmd, "certificate chain", q.cert_chain_len);
  if (!r.ok()) return r;

  pdh.assign(q.pdh_cert_len, 0);
  chain.assign(q.cert_chain_len, 0);
  q.pdh_cert_address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(pdh.data()));
  q.cert_chain_address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(chain.data()));
  r = Issue(fd.get(), cmd, &q);
  if (!r.ok()) return r;
  r = Shrink(cmd, "PDH certificate", pdh, q.pdh_cert_len);
  if (!r.ok()) return r;
  return Shrink(cmd, "certificate chain", chain, q.cert_chain_len);
}

SysResult PekCertImport(const std::string& path, const std::vector<uint8_t>& pek, const std::vector<uint8_t>& oca) {
  const uint32_t cmd = SEVKIT_PEK_CERT_IMPORT;
  // The binding layer already bounds these; re-check so this layer is safe on its own.
  if (pek.empty() || pek.size() > kBlobMax || oca.empty() || oca.size() > kBlobMax) {
    SysResult r;
    r.command = cmd;
    r.err = EINVAL;
    r.syscall = "ioctl";
    r.detail = "certificate lengths must be 1.." + std::to_string(kBlobMax) + " bytes";
    return r;
  }
  Fd fd;
  SysResult r = OpenDevice(path, cmd, fd);
  if (!r.ok()) return r;
  // The kernel only reads these buffers; the copies keep the caller's vectors const.
  std::vector<uint8_t> pekCopy(pek), ocaCopy(oca);
  sevkit_user_data_pek_cert_import q;
  std::memset(&q, 0, sizeof q);
  q.pek_cert_address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(pekCopy.data()));
  q.pek_cert_len = static_cast<uint32_t>(pekCopy.size());
  q.oca_cert_address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ocaCopy.data()));
  q.oca_cert_len = static_cast<uint32_t>(ocaCopy.size());
  return Issue(fd.get(), cmd, &q);
}

SysResult GetId(const std::string& path, std::vector<uint8_t>& id, uint32_t& usedCmd) {
  Fd fd;
  SysResult r = OpenDevice(path, SEVKIT_GET_ID2, fd);
  if (!r.ok()) return r;

  usedCmd = SEVKIT_GET_ID2;
  sevkit_user_data_get_id2 q;
  std::memset(&q, 0, sizeof q);
  r = Issue(fd.get(), SEVKIT_GET_ID2, &q);
  if (r.err == EINVAL) {
    // Kernels before GET_ID2 reject the unknown command id with EINVAL; the old
    // GET_ID writes a fixed 2 x 64-byte struct in place, so no probe is needed.
    usedCmd = SEVKIT_GET_ID;
    sevkit_user_data_get_id legacy;
    std::memset(&legacy, 0, sizeof legacy);
    r = Issue(fd.get(), SEVKIT_GET_ID, &legacy);
    if (!r.ok()) return r;
    bool second = false;
    for (uint8_t b : legacy.socket2) second = second || b != 0;
    id.assign(legacy.socket1, legacy.socket1 + sizeof legacy.socket1);
    if (second) id.insert(id.end(), legacy.socket2, legacy.socket2 + sizeof legacy.socket2);
    return r;
  }
  if (r.ok()) return UnexpectedSuccess(SEVKIT_GET_ID2);
  if (!IsLengthAnswer(r)) return r;
  r = CheckLength(SEVKIT_GET_ID2, "ID", q.length);
  if (!r.ok()) return r;

  id.assign(q.length, 0);
  q.address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(id.data()));
  r = Issue(fd.get(), SEVKIT_GET_ID2, &q);
  if (!r.ok()) return r;
  return Shrink(SEVKIT_GET_ID2, "ID", id, q.length);
}

SysResult SnpPlatformStatus(const std::string& path, sevkit_user_data_snp_status& out) {
  Fd fd;
  SysResult r = OpenDevice(path, SEVKIT_SNP_PLATFORM_STATUS, fd);
  if (!r.ok()) return r;
  std::memset(&out, 0, sizeof out);
  return Issue(fd.get(), SEVKIT_SNP_PLATFORM_STATUS, &out);
}

SysResult SnpSetConfig(const std::string& path, const sevkit_user_data_snp_config& config) {
  Fd fd;
  SysResult r = OpenDevice(path, SEVKIT_SNP_SET_CONFIG, fd);
  if (!r.ok()) return r;
  sevkit_user_data_snp_config copy = config;
  return Issue(fd.get(), SEVKIT_SNP_SET_CONFIG, &copy);
}

}  // namespace sevkit
