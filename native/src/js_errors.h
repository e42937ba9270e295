// Turns a device-layer SysResult into the JS Error a promise rejects with, and
// validates JS arguments before any work is queued.
#ifndef SEVKIT_JS_ERRORS_H
#define SEVKIT_JS_ERRORS_H

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sev_device.h"

namespace sevkit {

// Node-style errno name ("ENOENT"); 524, the kernel-internal ENOTSUPP that
// GET_ID leaks on old firmware, gets its kernel name.
std::string ErrnoName(int err);

// Error with code, errno (negative, as Node's SystemError), syscall, path,
// command and, for EIO, fwStatus/fwStatusName.
Napi::Value MakeSysError(Napi::Env env, const SysResult& r, const std::string& path);

// Argument checks. They throw a TypeError/RangeError (with a Node-style
// ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE code) on the JS thread.
std::string PathArg(const Napi::CallbackInfo& info, size_t index);
std::vector<uint8_t> BlobArg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t minLen,
                             size_t maxLen);
uint32_t Uint32Arg(const Napi::CallbackInfo& info, size_t index, const char* name);

}  // namespace sevkit

#endif  // SEVKIT_JS_ERRORS_H
