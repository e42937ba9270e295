// JS entry points for the /dev/sev commands. Each validates its arguments on
// the JS thread, copies them into a native Job, and queues a SevWorker.
#include "commands.h"

#include <cstring>
#include <string>
#include <vector>

#include "kvm_device.h"
#include "workers.h"

namespace sevkit {
namespace {

Napi::Buffer<uint8_t> CopyOut(Napi::Env env, const void* data, size_t len) {
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(data), len);
}

struct SimpleJob {
  std::string path;
  uint32_t cmd;
  SysResult Run() { return SimpleCommand(path, cmd); }
  Napi::Value Resolve(Napi::Env env) const { return env.Undefined(); }
};

Napi::Value Simple(const Napi::CallbackInfo& info, uint32_t cmd, const char* resource) {
  return SevWorker<SimpleJob>::Queue(info.Env(), resource, SimpleJob{PathArg(info, 0), cmd});
}

struct StatusJob {
  std::string path;
  sevkit_user_data_status out{};
  SysResult Run() { return PlatformStatus(path, out); }
  Napi::Value Resolve(Napi::Env env) const { return CopyOut(env, &out, sizeof out); }
};

struct PekCsrJob {
  std::string path;
  std::vector<uint8_t> csr;
  SysResult Run() { return PekCsr(path, csr); }
  Napi::Value Resolve(Napi::Env env) const { return CopyOut(env, csr.data(), csr.size()); }
};

struct ExportJob {
  std::string path;
  std::vector<uint8_t> pdh, chain;
  SysResult Run() { return PdhCertExport(path, pdh, chain); }
  Napi::Value Resolve(Napi::Env env) const {
    Napi::Object o = Napi::Object::New(env);
    o.Set("pdh", CopyOut(env, pdh.data(), pdh.size()));
    o.Set("certChain", CopyOut(env, chain.data(), chain.size()));
    return o;
  }
};

struct ImportJob {
  std::string path;
  std::vector<uint8_t> pek, oca;
  SysResult Run() { return PekCertImport(path, pek, oca); }
  Napi::Value Resolve(Napi::Env env) const { return env.Undefined(); }
};

struct GetIdJob {
  std::string path;
  std::vector<uint8_t> id;
  uint32_t cmd = SEVKIT_GET_ID2;
  SysResult Run() { return GetId(path, id, cmd); }
  Napi::Value Resolve(Napi::Env env) const {
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", CopyOut(env, id.data(), id.size()));
    o.Set("command", Napi::String::New(env, CommandName(cmd)));
    return o;
  }
};

struct SnpStatusJob {
  std::string path;
  sevkit_user_data_snp_status out{};
  SysResult Run() { return SnpPlatformStatus(path, out); }
  Napi::Value Resolve(Napi::Env env) const { return CopyOut(env, &out, sizeof out); }
};

struct SnpConfigJob {
  std::string path;
  sevkit_user_data_snp_config config{};
  SysResult Run() { return SnpSetConfig(path, config); }
  Napi::Value Resolve(Napi::Env env) const { return env.Undefined(); }
};

struct KvmVersionJob {
  std::string path;
  int version = -1;
  SysResult Run() { return KvmApiVersion(path, version); }
  Napi::Value Resolve(Napi::Env env) const { return Napi::Number::New(env, version); }
};

}  // namespace

Napi::Value JsPlatformStatus(const Napi::CallbackInfo& info) {
  return SevWorker<StatusJob>::Queue(info.Env(), "sev:platformStatus", StatusJob{PathArg(info, 0)});
}

Napi::Value JsFactoryReset(const Napi::CallbackInfo& info) {
  return Simple(info, SEVKIT_FACTORY_RESET, "sev:factoryReset");
}

Napi::Value JsPekGen(const Napi::CallbackInfo& info) { return Simple(info, SEVKIT_PEK_GEN, "sev:pekGen"); }

Napi::Value JsPdhGen(const Napi::CallbackInfo& info) { return Simple(info, SEVKIT_PDH_GEN, "sev:pdhGen"); }

Napi::Value JsSnpCommit(const Napi::CallbackInfo& info) { return Simple(info, SEVKIT_SNP_COMMIT, "sev:snpCommit"); }

Napi::Value JsPekCsr(const Napi::CallbackInfo& info) {
  return SevWorker<PekCsrJob>::Queue(info.Env(), "sev:pekCsr", PekCsrJob{PathArg(info, 0), {}});
}

Napi::Value JsPdhCertExport(const Napi::CallbackInfo& info) {
  return SevWorker<ExportJob>::Queue(info.Env(), "sev:pdhCertExport", ExportJob{PathArg(info, 0), {}, {}});
}

Napi::Value JsPekCertImport(const Napi::CallbackInfo& info) {
  ImportJob job{PathArg(info, 0), BlobArg(info, 1, "pek", 1, kBlobMax), BlobArg(info, 2, "oca", 1, kBlobMax)};
  return SevWorker<ImportJob>::Queue(info.Env(), "sev:pekCertImport", std::move(job));
}

Napi::Value JsGetId(const Napi::CallbackInfo& info) {
  return SevWorker<GetIdJob>::Queue(info.Env(), "sev:getId", GetIdJob{PathArg(info, 0), {}, SEVKIT_GET_ID2});
}

Napi::Value JsSnpPlatformStatus(const Napi::CallbackInfo& info) {
  return SevWorker<SnpStatusJob>::Queue(info.Env(), "sev:snpPlatformStatus", SnpStatusJob{PathArg(info, 0)});
}

Napi::Value JsSnpSetConfig(const Napi::CallbackInfo& info) {
  SnpConfigJob job{PathArg(info, 0)};
  const std::vector<uint8_t> raw =
      BlobArg(info, 1, "config", sizeof(sevkit_user_data_snp_config), sizeof(sevkit_user_data_snp_config));
  std::memcpy(&job.config, raw.data(), sizeof job.config);
  return SevWorker<SnpConfigJob>::Queue(info.Env(), "sev:snpSetConfig", std::move(job));
}

Napi::Value JsKvmApiVersion(const Napi::CallbackInfo& info) {
  return SevWorker<KvmVersionJob>::Queue(info.Env(), "kvm:apiVersion", KvmVersionJob{PathArg(info, 0)});
}

}  // namespace sevkit
