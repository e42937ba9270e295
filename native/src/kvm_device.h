// Pure C++ access to the /dev/kvm system fd: only KVM_GET_API_VERSION, which
// `sevkit ok` / sev-status report as sevctl does (sev-formats.md §8.2). Same
// rules as sev_device.h: no N-API, runs on a pool thread, failures as SysResult.
#ifndef SEVKIT_KVM_DEVICE_H
#define SEVKIT_KVM_DEVICE_H

#include <sys/ioctl.h>

#include <string>

#include "sev_device.h"

// <linux/kvm.h>: #define KVM_GET_API_VERSION _IO(KVMIO, 0x00), KVMIO 0xAE. Defined
// here so the addon builds without kernel headers; the assert pins the value.
#define SEVKIT_KVM_GET_API_VERSION _IO(0xAE, 0x00)
static_assert(SEVKIT_KVM_GET_API_VERSION == 0xAE00, "KVM_GET_API_VERSION value");

namespace sevkit {

// The name MakeSysError puts in `command` and the message for this ioctl.
constexpr const char* kKvmGetApiVersionName = "KVM_GET_API_VERSION";

// OpenCharDevice(path, O_RDWR) (as QEMU opens it, but never blocking and only a
// character device; on EACCES/EPERM/EROFS again
// O_RDONLY|O_CLOEXEC, as sevctl's File::open, since this ioctl needs no write
// access), ioctl(fd, KVM_GET_API_VERSION, 0), close. version = the ioctl's
// non-negative return value (12 on every Linux since 2.6.22).
SysResult KvmApiVersion(const std::string& path, int& version);

}  // namespace sevkit

#endif  // SEVKIT_KVM_DEVICE_H
