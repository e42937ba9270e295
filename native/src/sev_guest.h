// JS entry points for the SNP guest device (/dev/sev-guest); all return Promises
// and run the ioctl on a libuv pool thread (SevWorker).
#ifndef SEVKIT_SEV_GUEST_H
#define SEVKIT_SEV_GUEST_H

#include <napi.h>

namespace sevkit {

Napi::Value JsSnpGuestReport(const Napi::CallbackInfo& info);      // (path, Buffer(64), vmpl) -> Buffer(report)
Napi::Value JsSnpGuestExtReport(const Napi::CallbackInfo& info);   // (path, Buffer(64), vmpl) -> {report, certs}
Napi::Value JsSnpGuestDerivedKey(const Napi::CallbackInfo& info);  // (path, Buffer(32) request) -> Buffer(32)

}  // namespace sevkit

#endif  // SEVKIT_SEV_GUEST_H
