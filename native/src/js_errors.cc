#include "js_errors.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <climits>

#include "sev_guest_uapi.h"

namespace sevkit {
namespace {

constexpr int kKernelENOTSUPP = 524;
constexpr size_t kPathMax = PATH_MAX;

[[noreturn]] void ThrowWithCode(Napi::Error err, const char* code) {
  err.Set("code", Napi::String::New(err.Env(), code));
  throw err;
}

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

}  // namespace

std::string ErrnoName(int err) {
  // A table rather than strerrorname_np(): that needs glibc 2.32, and the
  // prebuilt addon must load on older SEV hosts (RHEL 8: glibc 2.28).
  switch (err) {
#define SEVKIT_E(name) \
  case name:           \
    return #name;
    SEVKIT_E(EPERM) SEVKIT_E(ENOENT) SEVKIT_E(ESRCH) SEVKIT_E(EINTR) SEVKIT_E(EIO) SEVKIT_E(ENXIO)
    SEVKIT_E(E2BIG) SEVKIT_E(EBADF) SEVKIT_E(EAGAIN) SEVKIT_E(ENOMEM) SEVKIT_E(EACCES) SEVKIT_E(EFAULT)
    SEVKIT_E(EBUSY) SEVKIT_E(EEXIST) SEVKIT_E(ENODEV) SEVKIT_E(ENOTDIR) SEVKIT_E(EISDIR) SEVKIT_E(EINVAL)
    SEVKIT_E(ENFILE) SEVKIT_E(EMFILE) SEVKIT_E(ENOTTY) SEVKIT_E(ETXTBSY) SEVKIT_E(ENOSPC) SEVKIT_E(EROFS)
    SEVKIT_E(ENAMETOOLONG) SEVKIT_E(ENOSYS) SEVKIT_E(ELOOP) SEVKIT_E(EPROTO) SEVKIT_E(EOVERFLOW)
    SEVKIT_E(ENOTSUP) SEVKIT_E(ECONNREFUSED) SEVKIT_E(ECONNRESET) SEVKIT_E(EPIPE) SEVKIT_E(ETIMEDOUT)
    SEVKIT_E(EHOSTDOWN) SEVKIT_E(ENOMEDIUM) SEVKIT_E(ENOLINK) SEVKIT_E(ESHUTDOWN)
#undef SEVKIT_E
    case kKernelENOTSUPP:
      return "ENOTSUPP";
    default:
      // Unnamed here: the TypeScript layer names it with util.getSystemErrorName.
      return "E" + std::to_string(err);
  }
}

Napi::Value MakeSysError(Napi::Env env, const SysResult& r, const std::string& path) {
  const std::string code = ErrnoName(r.err);
  const char* cmdName = r.commandName != nullptr ? r.commandName : CommandName(r.command);
  const std::string syscall = r.syscall != nullptr ? r.syscall : "ioctl";

  std::string msg = syscall + " " + path;
  if (syscall == "ioctl" && cmdName != nullptr) msg += " (" + std::string(cmdName) + ")";
  msg += ": " + code;
  std::string fwName;
  if (r.hasFwStatus) {
    const char* n = sevkit_ret_name(static_cast<int64_t>(r.fwStatus));
    fwName = n != nullptr ? n : "SEV_RET_UNKNOWN_" + Hex(r.fwStatus);
    msg += ", firmware status " + fwName + " (" + Hex(r.fwStatus) + ")";
    if (!r.detail.empty()) msg += " " + r.detail;
  } else if (!r.detail.empty()) {
    msg += ", " + r.detail;
  } else if (r.err == kKernelENOTSUPP) {
    msg += ", firmware too old for this command";
  } else {
    msg += ", " + std::string(std::strerror(r.err));
  }

  std::string vmmName;
  if (r.hasVmmError) {
    const char* n = sevkit_snp_vmm_error_name(r.vmmError);
    vmmName = n != nullptr ? n : "SNP_GUEST_VMM_ERR_UNKNOWN_" + Hex(r.vmmError);
    msg += ", VMM error " + vmmName + " (" + Hex(r.vmmError) + ")";
  }

  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  err.Set("errno", Napi::Number::New(env, -r.err));
  err.Set("syscall", Napi::String::New(env, syscall));
  err.Set("path", Napi::String::New(env, path));
  if (cmdName != nullptr) err.Set("command", Napi::String::New(env, cmdName));
  if (!r.detail.empty()) err.Set("detail", Napi::String::New(env, r.detail));
  if (r.hasFwStatus) {
    // NO_FW_CALL is -1 in the kernel's enum; report it as such, not 4294967295.
    const double status = r.fwStatus == 0xFFFFFFFFu ? -1.0 : static_cast<double>(r.fwStatus);
    err.Set("fwStatus", Napi::Number::New(env, status));
    err.Set("fwStatusName", Napi::String::New(env, fwName));
  }
  if (r.hasVmmError) {
    err.Set("vmmError", Napi::Number::New(env, static_cast<double>(r.vmmError)));
    err.Set("vmmErrorName", Napi::String::New(env, vmmName));
  }
  return err.Value();
}

std::string PathArg(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsString()) {
    ThrowWithCode(Napi::TypeError::New(env, "device path must be a string"), "ERR_INVALID_ARG_TYPE");
  }
  std::string path = info[index].As<Napi::String>().Utf8Value();
  if (path.empty() || path.size() >= kPathMax) {
    ThrowWithCode(Napi::RangeError::New(env, "device path must be 1.." + std::to_string(kPathMax - 1) + " bytes"),
                  "ERR_OUT_OF_RANGE");
  }
  // open(2) would silently stop at an embedded NUL and open a different file.
  if (path.find('\0') != std::string::npos) {
    ThrowWithCode(Napi::TypeError::New(env, "device path must not contain NUL bytes"), "ERR_INVALID_ARG_VALUE");
  }
  return path;
}

std::vector<uint8_t> BlobArg(const Napi::CallbackInfo& info, size_t index, const char* name, size_t minLen,
                             size_t maxLen) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowWithCode(Napi::TypeError::New(env, std::string(name) + " must be a Buffer or Uint8Array"),
                  "ERR_INVALID_ARG_TYPE");
  }
  Napi::Uint8Array arr = info[index].As<Napi::Uint8Array>();
  const size_t len = arr.ElementLength();
  if (len < minLen || len > maxLen) {
    ThrowWithCode(Napi::RangeError::New(env, std::string(name) + " must be " + std::to_string(minLen) + ".." +
                                                 std::to_string(maxLen) + " bytes, got " + std::to_string(len)),
                  "ERR_OUT_OF_RANGE");
  }
  // Copy-in: the pool thread must never see JS-owned memory.
  const uint8_t* p = arr.Data();
  return std::vector<uint8_t>(p, p + len);
}

uint32_t Uint32Arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsNumber()) {
    ThrowWithCode(Napi::TypeError::New(env, std::string(name) + " must be a number"), "ERR_INVALID_ARG_TYPE");
  }
  const double v = info[index].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 4294967295.0) || std::floor(v) != v) {
    ThrowWithCode(Napi::RangeError::New(env, std::string(name) + " must be an integer in 0..0xffffffff"),
                  "ERR_OUT_OF_RANGE");
  }
  return static_cast<uint32_t>(v);
}

}  // namespace sevkit
