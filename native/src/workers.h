// Promise-returning AsyncWorker for every /dev/sev command.
//
// The contract that keeps this thread-safe: everything a command needs is
// copied into native memory on the JS thread (constructor arguments), Execute()
// runs only the pure C++ device layer on a libuv pool thread, and the result is
// copied out into fresh JS values back on the JS thread (OnOK). No JS handle or
// JS-owned buffer is ever touched from Execute().
#ifndef SEVKIT_WORKERS_H
#define SEVKIT_WORKERS_H

#include <napi.h>

#include <functional>
#include <string>
#include <utility>

#include "js_errors.h"
#include "sev_device.h"

namespace sevkit {

class SevWorker : public Napi::AsyncWorker {
 public:
  // run: executes on the pool thread; must capture only native data.
  // resolve: builds the resolution value on the JS thread after success.
  using Run = std::function<SysResult()>;
  using Resolve = std::function<Napi::Value(Napi::Env)>;

  static Napi::Promise Queue(Napi::Env env, const char* resource, std::string path, Run run, Resolve resolve) {
    auto* w = new SevWorker(env, resource, std::move(path), std::move(run), std::move(resolve));
    Napi::Promise p = w->deferred_.Promise();
    w->AsyncWorker::Queue();  // node-addon-api deletes the worker after OnOK/OnError
    return p;
  }

 protected:
  void Execute() override { result_ = run_(); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (result_.ok()) {
      deferred_.Resolve(resolve_ ? resolve_(env) : env.Undefined());
    } else {
      deferred_.Reject(MakeSysError(env, result_, path_));
    }
  }

  // Reached only if Execute threw (e.g. std::bad_alloc); the wrapper turned it into a message.
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(e.Value());
  }

 private:
  SevWorker(Napi::Env env, const char* resource, std::string path, Run run, Resolve resolve)
      : Napi::AsyncWorker(env, resource),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        run_(std::move(run)),
        resolve_(std::move(resolve)) {}

  Napi::Promise::Deferred deferred_;
  std::string path_;
  Run run_;
  Resolve resolve_;
  SysResult result_;
};

}  // namespace sevkit

#endif  // SEVKIT_WORKERS_H
