// JS entry points for /dev/sev-guest: arguments are checked and copied into a
// native Job on the JS thread; sev_guest_device runs on the pool thread.
#include "sev_guest.h"

#include <cstring>
#include <string>
#include <vector>

#include "sev_guest_device.h"
#include "workers.h"

namespace sevkit {
namespace {

struct ReportArgs {
  std::string path;
  uint8_t userData[SEVKIT_SNP_USER_DATA_SIZE];
  uint32_t vmpl;
};

ReportArgs ParseReportArgs(const Napi::CallbackInfo& info) {
  ReportArgs a{PathArg(info, 0), {}, 0};
  const std::vector<uint8_t> data =
      BlobArg(info, 1, "reportData", SEVKIT_SNP_USER_DATA_SIZE, SEVKIT_SNP_USER_DATA_SIZE);
  std::memcpy(a.userData, data.data(), sizeof a.userData);
  a.vmpl = Uint32Arg(info, 2, "vmpl");
  if (a.vmpl > SEVKIT_SNP_MAX_VMPL) {
    Napi::RangeError e = Napi::RangeError::New(info.Env(), "vmpl must be 0..3");
    e.Set("code", Napi::String::New(info.Env(), "ERR_OUT_OF_RANGE"));
    throw e;
  }
  return a;
}

Napi::Buffer<uint8_t> Copy(Napi::Env env, const std::vector<uint8_t>& v) {
  return Napi::Buffer<uint8_t>::Copy(env, v.data(), v.size());
}

struct ReportJob {
  std::string path;
  uint8_t userData[SEVKIT_SNP_USER_DATA_SIZE];
  uint32_t vmpl;
  std::vector<uint8_t> report;
  SysResult Run() { return SnpGetReport(path, userData, vmpl, report); }
  Napi::Value Resolve(Napi::Env env) const { return Copy(env, report); }
};

struct ExtReportJob {
  std::string path;
  uint8_t userData[SEVKIT_SNP_USER_DATA_SIZE];
  uint32_t vmpl;
  std::vector<uint8_t> report, certs;
  SysResult Run() { return SnpGetExtReport(path, userData, vmpl, report, certs); }
  Napi::Value Resolve(Napi::Env env) const {
    Napi::Object o = Napi::Object::New(env);
    o.Set("report", Copy(env, report));
    o.Set("certs", Copy(env, certs));
    return o;
  }
};

struct DerivedKeyJob {
  std::string path;
  sevkit_snp_derived_key_req req;
  uint8_t key[SEVKIT_SNP_DERIVED_KEY_SIZE];
  DerivedKeyJob(std::string p, const sevkit_snp_derived_key_req& r) : path(std::move(p)), req(r), key{} {}
  DerivedKeyJob(DerivedKeyJob&& o) noexcept : path(std::move(o.path)), req(o.req) {
    std::memcpy(key, o.key, sizeof key);
    WipeBytes(o.key, sizeof o.key);
  }
  DerivedKeyJob(const DerivedKeyJob&) = delete;
  DerivedKeyJob& operator=(const DerivedKeyJob&) = delete;
  // The key leaves only as the JS Buffer; no copy stays in native memory.
  ~DerivedKeyJob() { WipeBytes(key, sizeof key); }
  SysResult Run() { return SnpGetDerivedKey(path, req, key); }
  Napi::Value Resolve(Napi::Env env) const { return Napi::Buffer<uint8_t>::Copy(env, key, sizeof key); }
};

}  // namespace

Napi::Value JsSnpGuestReport(const Napi::CallbackInfo& info) {
  ReportArgs a = ParseReportArgs(info);
  ReportJob job{std::move(a.path), {}, a.vmpl, {}};
  std::memcpy(job.userData, a.userData, sizeof job.userData);
  return SevWorker<ReportJob>::Queue(info.Env(), "sev-guest:report", std::move(job));
}

Napi::Value JsSnpGuestExtReport(const Napi::CallbackInfo& info) {
  ReportArgs a = ParseReportArgs(info);
  ExtReportJob job{std::move(a.path), {}, a.vmpl, {}, {}};
  std::memcpy(job.userData, a.userData, sizeof job.userData);
  return SevWorker<ExtReportJob>::Queue(info.Env(), "sev-guest:extReport", std::move(job));
}

Napi::Value JsSnpGuestDerivedKey(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0);
  const std::vector<uint8_t> raw = BlobArg(info, 1, "request", sizeof(sevkit_snp_derived_key_req),
                                           sizeof(sevkit_snp_derived_key_req));
  sevkit_snp_derived_key_req req;
  std::memcpy(&req, raw.data(), sizeof req);
  if (req.vmpl > SEVKIT_SNP_MAX_VMPL) {
    Napi::RangeError e = Napi::RangeError::New(info.Env(), "derived-key vmpl must be 0..3");
    e.Set("code", Napi::String::New(info.Env(), "ERR_OUT_OF_RANGE"));
    throw e;
  }
  return SevWorker<DerivedKeyJob>::Queue(info.Env(), "sev-guest:derivedKey", DerivedKeyJob(std::move(path), req));
}

}  // namespace sevkit
