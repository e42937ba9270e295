// JS entry points for the /dev/sev commands. Each validates its arguments on
// the JS thread, copies them into native memory, and queues a SevWorker.
#include "commands.h"

#include <cstring>
#include <memory>
#include <vector>

#include "workers.h"

namespace sevkit {
namespace {

Napi::Buffer<uint8_t> CopyOut(Napi::Env env, const void* data, size_t len) {
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(data), len);
}

Napi::Value Simple(const Napi::CallbackInfo& info, uint32_t cmd, const char* resource) {
  std::string path = PathArg(info, 0);
  std::string p = path;
  return SevWorker::Queue(info.Env(), resource, std::move(path), [p, cmd]() { return SimpleCommand(p, cmd); }, nullptr);
}

}  // namespace

Napi::Value JsPlatformStatus(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0);
  auto out = std::make_shared<sevkit_user_data_status>();
  std::string p = path;
  return SevWorker::Queue(
      info.Env(), "sev:platformStatus", std::move(path), [p, out]() { return PlatformStatus(p, *out); },
      [out](Napi::Env env) -> Napi::Value { return CopyOut(env, out.get(), sizeof *out); });
}

Napi::Value JsFactoryReset(const Napi::CallbackInfo& info) {
  return Simple(info, SEVKIT_FACTORY_RESET, "sev:factoryReset");
}

Napi::Value JsPekGen(const Napi::CallbackInfo& info) { return Simple(info, SEVKIT_PEK_GEN, "sev:pekGen"); }

Napi::Value JsPdhGen(const Napi::CallbackInfo& info) { return Simple(info, SEVKIT_PDH_GEN, "sev:pdhGen"); }

Napi::Value JsSnpCommit(const Napi::CallbackInfo& info) { return Simple(info, SEVKIT_SNP_COMMIT, "sev:snpCommit"); }

Napi::Value JsPekCsr(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0);
  auto csr = std::make_shared<std::vector<uint8_t>>();
  std::string p = path;
  return SevWorker::Queue(
      info.Env(), "sev:pekCsr", std::move(path), [p, csr]() { return PekCsr(p, *csr); },
      [csr](Napi::Env env) -> Napi::Value { return CopyOut(env, csr->data(), csr->size()); });
}

Napi::Value JsPdhCertExport(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0);
  struct Out {
    std::vector<uint8_t> pdh, chain;
  };
  auto out = std::make_shared<Out>();
  std::string p = path;
  return SevWorker::Queue(
      info.Env(), "sev:pdhCertExport", std::move(path), [p, out]() { return PdhCertExport(p, out->pdh, out->chain); },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("pdh", CopyOut(env, out->pdh.data(), out->pdh.size()));
        o.Set("certChain", CopyOut(env, out->chain.data(), out->chain.size()));
        return o;
      });
}

Napi::Value JsPekCertImport(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0);
  auto pek = std::make_shared<std::vector<uint8_t>>(BlobArg(info, 1, "pek", 1, kBlobMax));
  auto oca = std::make_shared<std::vector<uint8_t>>(BlobArg(info, 2, "oca", 1, kBlobMax));
  std::string p = path;
  return SevWorker::Queue(
      info.Env(), "sev:pekCertImport", std::move(path), [p, pek, oca]() { return PekCertImport(p, *pek, *oca); },
      nullptr);
}

Napi::Value JsGetId(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0);
  struct Out {
    std::vector<uint8_t> id;
    uint32_t cmd = SEVKIT_GET_ID2;
  };
  auto out = std::make_shared<Out>();
  std::string p = path;
  return SevWorker::Queue(
      info.Env(), "sev:getId", std::move(path), [p, out]() { return GetId(p, out->id, out->cmd); },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("id", CopyOut(env, out->id.data(), out->id.size()));
        o.Set("command", Napi::String::New(env, CommandName(out->cmd)));
        return o;
      });
}

Napi::Value JsSnpPlatformStatus(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0);
  auto out = std::make_shared<sevkit_user_data_snp_status>();
  std::string p = path;
  return SevWorker::Queue(
      info.Env(), "sev:snpPlatformStatus", std::move(path), [p, out]() { return SnpPlatformStatus(p, *out); },
      [out](Napi::Env env) -> Napi::Value { return CopyOut(env, out.get(), sizeof *out); });
}

Napi::Value JsSnpSetConfig(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0);
  const std::vector<uint8_t> raw =
      BlobArg(info, 1, "config", sizeof(sevkit_user_data_snp_config), sizeof(sevkit_user_data_snp_config));
  auto cfg = std::make_shared<sevkit_user_data_snp_config>();
  std::memcpy(cfg.get(), raw.data(), sizeof *cfg);
  std::string p = path;
  return SevWorker::Queue(
      info.Env(), "sev:snpSetConfig", std::move(path), [p, cfg]() { return SnpSetConfig(p, *cfg); }, nullptr);
}

}  // namespace sevkit
