// Pure C++ access to the /dev/sev misc device: open, SEV_ISSUE_CMD, close.
//
// No N-API in here on purpose: these functions run on libuv pool threads, and
// keeping JS out of this layer makes the threading rule ("never touch JS from
// Execute") true by construction. Every function takes only native data and
// reports failures as a SysResult instead of throwing.
#ifndef SEVKIT_SEV_DEVICE_H
#define SEVKIT_SEV_DEVICE_H

#include <cstdint>
#include <string>
#include <vector>

#include "sev_uapi.h"

namespace sevkit {

// Outcome of one device operation. err == 0 means success.
struct SysResult {
  int err = 0;                    // errno value (positive), or 0
  const char* syscall = nullptr;  // "open" or "ioctl"
  bool hasFwStatus = false;       // true when the kernel reported EIO with a firmware status
  uint32_t fwStatus = 0;          // sev_issue_cmd.error (SEV_RET_*)
  uint32_t command = 0;           // the SEV command id the failure belongs to
  const char* commandName = nullptr;  // overrides CommandName(command) for non-SEV ioctls (KVM)
  std::string detail;             // extra context for protocol failures (bad lengths)
  bool hasVmmError = false;       // /dev/sev-guest: exitinfo2 bits 63:32 were non-zero
  uint32_t vmmError = 0;          // SEVKIT_SNP_VMM_ERR_* (1 INVALID_LEN, 2 BUSY, ~0 GENERIC)

  bool ok() const { return err == 0; }
};

// open(path, accmode | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), then fstat: the fd
// when it is a character device; otherwise -1 with r.err/r.syscall set (a path
// that is not a character device gives ENODEV, syscall "open", r.detail naming
// what it is). Never blocks, whatever the path points to.
int OpenCharDevice(const std::string& path, int accmode, SysResult& r);

// Which open(2) mode a command needs (kernel-qemu.md §1.2 and §2.1).
enum class Access {
  ReadOnly,         // status and id queries
  ReadWrite,        // every command the driver gates on FMODE_WRITE
  PreferReadWrite,  // PDH_CERT_EXPORT: write only needed while UNINIT, so fall back to read-only
};

// The kernel's limit on PEK_CSR / PDH_CERT_EXPORT / PEK_CERT_IMPORT blobs; we also
// bound GET_ID2 by it since the driver does not.
constexpr uint32_t kBlobMax = SEVKIT_FW_BLOB_MAX_SIZE;

// Commands without a data struct (FACTORY_RESET, PEK_GEN, PDH_GEN, SNP_COMMIT).
SysResult SimpleCommand(const std::string& path, uint32_t cmd);

SysResult PlatformStatus(const std::string& path, sevkit_user_data_status& out);

// Length probe then exact fetch.
SysResult PekCsr(const std::string& path, std::vector<uint8_t>& csr);
SysResult PdhCertExport(const std::string& path, std::vector<uint8_t>& pdh, std::vector<uint8_t>& chain);

SysResult PekCertImport(const std::string& path, const std::vector<uint8_t>& pek, const std::vector<uint8_t>& oca);

// GET_ID2 (probe + fetch); on EINVAL (kernel without GET_ID2) falls back to the
// deprecated fixed-size GET_ID. usedCmd tells which one answered.
SysResult GetId(const std::string& path, std::vector<uint8_t>& id, uint32_t& usedCmd);

SysResult SnpPlatformStatus(const std::string& path, sevkit_user_data_snp_status& out);
SysResult SnpSetConfig(const std::string& path, const sevkit_user_data_snp_config& config);

// Access mode used for a given command id (exported for tests and docs).
Access AccessFor(uint32_t cmd);

// "PLATFORM_STATUS" etc. for a command id, or nullptr.
const char* CommandName(uint32_t cmd);

}  // namespace sevkit

#endif  // SEVKIT_SEV_DEVICE_H
