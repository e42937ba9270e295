// Raw CPUID for host checks (0x0, 0x80000001..4, 0x8000001F) and for QEMU's
// cbitpos / reduced-phys-bits. Synchronous: CPUID is a single instruction.
#include "cpuid.h"

#include "js_errors.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace sevkit {

Napi::Value JsCpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t leaf = Uint32Arg(info, 0, "leaf");
  const uint32_t subleaf = info.Length() > 1 && !info[1].IsUndefined() ? Uint32Arg(info, 1, "subleaf") : 0;
#if defined(__x86_64__) || defined(__i386__)
  unsigned int a = 0, b = 0, c = 0, d = 0;
  // Deliberately unchecked against the max leaf: callers want the raw answer,
  // and the host probes compare against leaf 0 / 0x80000000 themselves.
  __cpuid_count(leaf, subleaf, a, b, c, d);
  Napi::Array r = Napi::Array::New(env, 4);
  r.Set(uint32_t{0}, Napi::Number::New(env, a));
  r.Set(uint32_t{1}, Napi::Number::New(env, b));
  r.Set(uint32_t{2}, Napi::Number::New(env, c));
  r.Set(uint32_t{3}, Napi::Number::New(env, d));
  return r;
#else
  (void)leaf;
  (void)subleaf;
  Napi::Error e = Napi::Error::New(env, "cpuid is only available on x86");
  e.Set("code", Napi::String::New(env, "ENOTSUP"));
  throw e;
#endif
}

}  // namespace sevkit
