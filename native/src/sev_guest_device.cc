// /dev/sev-guest device layer: see sev_guest_device.h.
#include "sev_guest_device.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace sevkit {
namespace {

// One fd per request, as for /dev/sev: a device that goes away is seen at once.
class GuestFd {
 public:
  GuestFd() = default;
  GuestFd(const GuestFd&) = delete;
  GuestFd& operator=(const GuestFd&) = delete;
  ~GuestFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd_ = -1;
};

SysResult Base(uint32_t request) {
  SysResult r;
  r.commandName = GuestIoctlName(request);
  return r;
}

SysResult Protocol(uint32_t request, int err, std::string detail) {
  SysResult r = Base(request);
  r.err = err;
  r.syscall = "ioctl";
  r.detail = std::move(detail);
  return r;
}

// The guest driver gates nothing on FMODE_WRITE, but snpguest and go-sev-guest
// open it read-write and so does the kernel's documentation: do the same.
SysResult Open(const std::string& path, uint32_t request, GuestFd& fd) {
  SysResult r = Base(request);
  fd.fd_ = OpenCharDevice(path, O_RDWR, r);
  return r;
}

// True when exitinfo2 carries no firmware answer: the kernel presets it to
// 0xff (newer kernels: SEV_RET_NO_FW_CALL, all ones) for driver-side failures.
bool NoFirmwareCall(const sevkit_snp_guest_request_ioctl& a) {
  return (a.fw_error == 0xffu && a.vmm_error == 0) || (a.fw_error == 0xFFFFFFFFu && a.vmm_error == 0xFFFFFFFFu);
}

SysResult Issue(int fd, uint32_t request, void* req, void* resp) {
  sevkit_snp_guest_request_ioctl a;
  std::memset(&a, 0, sizeof a);
  a.msg_version = SEVKIT_SNP_MSG_VERSION;
  a.req_data = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(req));
  a.resp_data = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(resp));
  SysResult r = Base(request);
  if (::ioctl(fd, request, &a) < 0) {
    r.err = errno;
    r.syscall = "ioctl";
    if (!NoFirmwareCall(a)) {
      if (a.fw_error != 0) {
        r.hasFwStatus = true;
        r.fwStatus = a.fw_error;
      }
      if (a.vmm_error != 0) {
        r.hasVmmError = true;
        r.vmmError = a.vmm_error;
      }
    }
  }
  return r;
}

// A successful ioctl still carries the message status; then the report size.
SysResult TakeReport(uint32_t request, const sevkit_snp_report_resp& resp, std::vector<uint8_t>& report) {
  if (resp.status != 0) {
    SysResult r = Protocol(request, EIO, "in the report response");
    r.hasFwStatus = true;
    r.fwStatus = resp.status;
    return r;
  }
  if (resp.report_size < SEVKIT_SNP_REPORT_SIZE || resp.report_size > sizeof resp.report) {
    return Protocol(request, EPROTO,
                    "firmware reported a " + std::to_string(resp.report_size) + "-byte report (expected " +
                        std::to_string(SEVKIT_SNP_REPORT_SIZE) + ".." + std::to_string(sizeof resp.report) + ")");
  }
  report.assign(resp.report, resp.report + resp.report_size);
  return SysResult{};
}

}  // namespace

void WipeBytes(void* p, size_t n) {
  volatile uint8_t* v = static_cast<volatile uint8_t*>(p);
  while (n-- > 0) *v++ = 0;
}

const char* GuestIoctlName(uint32_t request) {
  switch (request) {
    case SEVKIT_SNP_GET_REPORT: return "SNP_GET_REPORT";
    case SEVKIT_SNP_GET_DERIVED_KEY: return "SNP_GET_DERIVED_KEY";
    case SEVKIT_SNP_GET_EXT_REPORT: return "SNP_GET_EXT_REPORT";
    default: return nullptr;
  }
}

SysResult SnpGetReport(const std::string& path, const uint8_t (&userData)[SEVKIT_SNP_USER_DATA_SIZE], uint32_t vmpl,
                       std::vector<uint8_t>& report) {
  const uint32_t request = SEVKIT_SNP_GET_REPORT;
  if (vmpl > SEVKIT_SNP_MAX_VMPL) return Protocol(request, EINVAL, "VMPL must be 0..3");
  GuestFd fd;
  SysResult r = Open(path, request, fd);
  if (!r.ok()) return r;
  sevkit_snp_report_req req;
  std::memset(&req, 0, sizeof req);
  std::memcpy(req.user_data, userData, sizeof req.user_data);
  req.vmpl = vmpl;
  // 4000 bytes: on the heap, pool threads have small stacks.
  std::vector<uint8_t> buf(sizeof(sevkit_snp_report_resp), 0);
  r = Issue(fd.fd_, request, &req, buf.data());
  if (!r.ok()) return r;
  sevkit_snp_report_resp resp;
  std::memcpy(&resp, buf.data(), sizeof resp);
  return TakeReport(request, resp, report);
}

SysResult SnpGetExtReport(const std::string& path, const uint8_t (&userData)[SEVKIT_SNP_USER_DATA_SIZE],
                          uint32_t vmpl, std::vector<uint8_t>& report, std::vector<uint8_t>& certs) {
  const uint32_t request = SEVKIT_SNP_GET_EXT_REPORT;
  if (vmpl > SEVKIT_SNP_MAX_VMPL) return Protocol(request, EINVAL, "VMPL must be 0..3");
  GuestFd fd;
  SysResult r = Open(path, request, fd);
  if (!r.ok()) return r;
  std::vector<uint8_t> buf(sizeof(sevkit_snp_report_resp), 0);
  uint32_t len = SEVKIT_SNP_PAGE_SIZE;
  for (int attempt = 0; attempt < 2; attempt++) {
    certs.assign(len, 0);
    sevkit_snp_ext_report_req req;
    std::memset(&req, 0, sizeof req);
    std::memcpy(req.data.user_data, userData, sizeof req.data.user_data);
    req.data.vmpl = vmpl;
    req.certs_address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(certs.data()));
    req.certs_len = len;
    r = Issue(fd.fd_, request, &req, buf.data());
    if (r.ok()) {
      sevkit_snp_report_resp resp;
      std::memcpy(&resp, buf.data(), sizeof resp);
      return TakeReport(request, resp, report);
    }
    if (!(r.err == EIO && r.hasVmmError && r.vmmError == SEVKIT_SNP_VMM_ERR_INVALID_LEN) || attempt == 1) break;
    // The driver rewrote certs_len with what the host needs; it must be a
    // larger page multiple within the driver's own limit.
    const uint32_t want = req.certs_len;
    if (want <= len || want % SEVKIT_SNP_PAGE_SIZE != 0 || want > SEVKIT_SNP_CERTS_MAX) {
      certs.clear();
      return Protocol(request, EPROTO,
                      "the host asked for a " + std::to_string(want) + "-byte certificate buffer (had " +
                          std::to_string(len) + "; limit " + std::to_string(SEVKIT_SNP_CERTS_MAX) + ", page multiples)");
    }
    len = want;
  }
  certs.clear();
  return r;
}

SysResult SnpGetDerivedKey(const std::string& path, const sevkit_snp_derived_key_req& req,
                           uint8_t (&key)[SEVKIT_SNP_DERIVED_KEY_SIZE]) {
  const uint32_t request = SEVKIT_SNP_GET_DERIVED_KEY;
  GuestFd fd;
  SysResult r = Open(path, request, fd);
  if (!r.ok()) return r;
  sevkit_snp_derived_key_req copy = req;
  sevkit_snp_derived_key_resp resp;
  std::memset(&resp, 0, sizeof resp);
  r = Issue(fd.fd_, request, &copy, &resp);
  if (r.ok() && resp.status != 0) {
    r = Protocol(request, EIO, "in the derived-key response");
    r.hasFwStatus = true;
    r.fwStatus = resp.status;
  } else if (r.ok()) {
    std::memcpy(key, resp.key, sizeof resp.key);
  }
  WipeBytes(&resp, sizeof resp);
  return r;
}

}  // namespace sevkit
