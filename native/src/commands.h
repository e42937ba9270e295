// JS entry points (one per SEV command, plus KVM_GET_API_VERSION); all return Promises.
#ifndef SEVKIT_COMMANDS_H
#define SEVKIT_COMMANDS_H

#include <napi.h>

namespace sevkit {

Napi::Value JsPlatformStatus(const Napi::CallbackInfo& info);     // (path) -> Buffer(12)
Napi::Value JsFactoryReset(const Napi::CallbackInfo& info);       // (path) -> undefined
Napi::Value JsPekGen(const Napi::CallbackInfo& info);             // (path) -> undefined
Napi::Value JsPekCsr(const Napi::CallbackInfo& info);             // (path) -> Buffer
Napi::Value JsPdhGen(const Napi::CallbackInfo& info);             // (path) -> undefined
Napi::Value JsPdhCertExport(const Napi::CallbackInfo& info);      // (path) -> {pdh, certChain}
Napi::Value JsPekCertImport(const Napi::CallbackInfo& info);      // (path, pek, oca) -> undefined
Napi::Value JsGetId(const Napi::CallbackInfo& info);              // (path) -> {id, command}
Napi::Value JsSnpPlatformStatus(const Napi::CallbackInfo& info);  // (path) -> Buffer(32)
Napi::Value JsSnpCommit(const Napi::CallbackInfo& info);          // (path) -> undefined
Napi::Value JsSnpSetConfig(const Napi::CallbackInfo& info);       // (path, Buffer(64)) -> undefined
Napi::Value JsKvmApiVersion(const Napi::CallbackInfo& info);      // (path) -> number (KVM_GET_API_VERSION)

}  // namespace sevkit

#endif  // SEVKIT_COMMANDS_H
