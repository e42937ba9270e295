// /dev/kvm: KVM_GET_API_VERSION. See kvm_device.h.
#include "kvm_device.h"

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace sevkit {

SysResult KvmApiVersion(const std::string& path, int& version) {
  SysResult r;
  r.commandName = kKvmGetApiVersionName;
  int fd = OpenCharDevice(path, O_RDWR, r);
  if (fd < 0 && (r.err == EACCES || r.err == EPERM || r.err == EROFS)) {
    // A read-only fd answers this ioctl; sevctl's check passes for such users too.
    r = SysResult{};
    r.commandName = kKvmGetApiVersionName;
    fd = OpenCharDevice(path, O_RDONLY, r);
  }
  if (fd < 0) return r;
  // The third argument is unused by the kernel for this ioctl; 0 as QEMU passes.
  const int v = ::ioctl(fd, SEVKIT_KVM_GET_API_VERSION, 0);
  const int ioctlErrno = errno;
  ::close(fd);
  if (v < 0) {
    r.err = ioctlErrno;
    r.syscall = "ioctl";
    return r;
  }
  version = v;
  return r;
}

}  // namespace sevkit
