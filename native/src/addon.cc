// Module entry: registers the command functions, cpuid, and the layout and
// constant tables. See lib/binding.ts for the documented JS surface.
#include <napi.h>

#include "commands.h"
#include "cpuid.h"
#include "sev_guest.h"
#include "tables.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace sevkit;
  exports.Set("platformStatus", Napi::Function::New(env, JsPlatformStatus, "platformStatus"));
  exports.Set("factoryReset", Napi::Function::New(env, JsFactoryReset, "factoryReset"));
  exports.Set("pekGen", Napi::Function::New(env, JsPekGen, "pekGen"));
  exports.Set("pekCsr", Napi::Function::New(env, JsPekCsr, "pekCsr"));
  exports.Set("pdhGen", Napi::Function::New(env, JsPdhGen, "pdhGen"));
  exports.Set("pdhCertExport", Napi::Function::New(env, JsPdhCertExport, "pdhCertExport"));
  exports.Set("pekCertImport", Napi::Function::New(env, JsPekCertImport, "pekCertImport"));
  exports.Set("getId", Napi::Function::New(env, JsGetId, "getId"));
  exports.Set("snpPlatformStatus", Napi::Function::New(env, JsSnpPlatformStatus, "snpPlatformStatus"));
  exports.Set("snpCommit", Napi::Function::New(env, JsSnpCommit, "snpCommit"));
  exports.Set("snpSetConfig", Napi::Function::New(env, JsSnpSetConfig, "snpSetConfig"));
  exports.Set("snpGuestReport", Napi::Function::New(env, JsSnpGuestReport, "snpGuestReport"));
  exports.Set("snpGuestExtReport", Napi::Function::New(env, JsSnpGuestExtReport, "snpGuestExtReport"));
  exports.Set("snpGuestDerivedKey", Napi::Function::New(env, JsSnpGuestDerivedKey, "snpGuestDerivedKey"));
  exports.Set("kvmApiVersion", Napi::Function::New(env, JsKvmApiVersion, "kvmApiVersion"));
  exports.Set("cpuid", Napi::Function::New(env, JsCpuid, "cpuid"));
  exports.Set("layout", LayoutTable(env));
  exports.Set("constants", ConstantTable(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(NODE_GYP_MODULE_NAME, Init)
