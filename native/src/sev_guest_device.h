// Pure C++ access to the SNP guest misc device (/dev/sev-guest): SNP_GET_REPORT,
// SNP_GET_EXT_REPORT and SNP_GET_DERIVED_KEY. Same contract as sev_device.h:
// no N-API here (these run on libuv pool threads), failures are SysResults.
#ifndef SEVKIT_SEV_GUEST_DEVICE_H
#define SEVKIT_SEV_GUEST_DEVICE_H

#include <cstdint>
#include <string>
#include <vector>

#include "sev_device.h"
#include "sev_guest_uapi.h"

namespace sevkit {

// Names the guest ioctls in errors ("SNP_GET_REPORT"), or nullptr.
const char* GuestIoctlName(uint32_t request);

// The report the firmware wrote (report_size bytes, bounded by the 4000-byte
// response); a non-zero MSG_REPORT_RSP status is an EIO SysResult with that
// status as fwStatus.
SysResult SnpGetReport(const std::string& path, const uint8_t (&userData)[SEVKIT_SNP_USER_DATA_SIZE], uint32_t vmpl,
                       std::vector<uint8_t>& report);

// Extended report: the report plus the host's certificate buffer (page
// multiple, at most SEVKIT_SNP_CERTS_MAX bytes, untrimmed; all zero when the
// host supplies none). Starts with one page and retries once with the size the
// driver asks for (EIO + VMM INVALID_LEN).
SysResult SnpGetExtReport(const std::string& path, const uint8_t (&userData)[SEVKIT_SNP_USER_DATA_SIZE],
                          uint32_t vmpl, std::vector<uint8_t>& report, std::vector<uint8_t>& certs);

// Derived key for the request; the response buffer is wiped before returning.
SysResult SnpGetDerivedKey(const std::string& path, const sevkit_snp_derived_key_req& req,
                           uint8_t (&key)[SEVKIT_SNP_DERIVED_KEY_SIZE]);

// Overwrites n bytes in a way the compiler may not elide (key material).
void WipeBytes(void* p, size_t n);

}  // namespace sevkit

#endif  // SEVKIT_SEV_GUEST_DEVICE_H
