#ifndef SEVKIT_CPUID_H
#define SEVKIT_CPUID_H

#include <napi.h>

namespace sevkit {

// cpuid(leaf, subleaf = 0) -> [eax, ebx, ecx, edx]
Napi::Value JsCpuid(const Napi::CallbackInfo& info);

}  // namespace sevkit

#endif  // SEVKIT_CPUID_H
