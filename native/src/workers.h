// Promise-returning AsyncWorker for every /dev/sev command.
//
// The contract that keeps this thread-safe: everything a command needs is
// copied into a native Job on the JS thread, Execute() runs only Job::Run (the
// pure C++ device layer) on a libuv pool thread, and Job::Resolve copies the
// result out into fresh JS values back on the JS thread (OnOK). No JS handle
// or JS-owned buffer is ever touched from Execute().
//
// A Job is a plain struct with
//   std::string path;                         the device path (for errors)
//   SysResult Run();                          pool thread
//   Napi::Value Resolve(Napi::Env) const;     JS thread, only after success
// The worker owns it by value: no shared_ptr, so no atomics (which would also
// tie the binary to newer glibc symbols).
#ifndef SEVKIT_WORKERS_H
#define SEVKIT_WORKERS_H

#include <napi.h>

#include <utility>

#include "js_errors.h"
#include "sev_device.h"

namespace sevkit {

template <typename Job>
class SevWorker : public Napi::AsyncWorker {
 public:
  static Napi::Promise Queue(Napi::Env env, const char* resource, Job job) {
    auto* w = new SevWorker(env, resource, std::move(job));
    Napi::Promise p = w->deferred_.Promise();
    w->AsyncWorker::Queue();  // node-addon-api deletes the worker after OnOK/OnError
    return p;
  }

 protected:
  void Execute() override { result_ = job_.Run(); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (result_.ok()) {
      deferred_.Resolve(job_.Resolve(env));
    } else {
      deferred_.Reject(MakeSysError(env, result_, job_.path));
    }
  }

  // Reached only if Execute threw (e.g. std::bad_alloc); the wrapper turned it into a message.
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(e.Value());
  }

 private:
  SevWorker(Napi::Env env, const char* resource, Job job)
      : Napi::AsyncWorker(env, resource), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)) {}

  Napi::Promise::Deferred deferred_;
  Job job_;
  SysResult result_;
};

}  // namespace sevkit

#endif  // SEVKIT_WORKERS_H
