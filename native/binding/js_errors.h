#pragma once
// Turning core errors into JS errors with a `code` property. No C++ exception crosses into JS:
// every entry point runs its body through guard(), every worker through PromiseWorker::Execute.
#include <napi.h>

#include <string>
#include <type_traits>

#include "errors.h"

namespace binding {

Napi::Error makeError(Napi::Env env, const std::string &code, const std::string &message);

// The one catch ladder: runs fn off or on the JS thread; on failure fills code and message and returns false.
template <typename Fn>
bool captureError(Fn &&fn, std::string &code, std::string &message) {
  try {
    fn();
    return true;
  } catch (const Napi::Error &) {
    throw;  // already a JS error (and a std::exception, so it must come first)
  } catch (const core::Error &e) {
    code = e.code();
    message = e.what();
  } catch (const std::exception &e) {
    code = core::codes::kNativeError;
    message = e.what();
  } catch (...) {
    code = core::codes::kNativeError;
    message = "unknown native error";
  }
  return false;
}

// Runs fn on the JS thread; a core::Error or std::exception becomes a thrown JS error carrying its code.
template <typename Fn>
auto guard(Napi::Env env, Fn &&fn) -> decltype(fn()) {
  using R = decltype(fn());
  std::string code, message;
  if constexpr (std::is_void_v<R>) {
    if (captureError(fn, code, message)) return;
    throw makeError(env, code, message);
  } else {
    R out{};
    if (captureError([&]() { out = fn(); }, code, message)) return out;
    throw makeError(env, code, message);
  }
}

// An AsyncWorker that settles a Promise. Run() executes on a libuv worker thread and must not touch
// JS; Result() builds the resolved value on the main thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

  void Execute() final;
  void OnOK() override;
  void OnError(const Napi::Error &error) override;
  void fail(const std::string &code, const std::string &message) {
    code_ = code;
    SetError(message);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string code_ = core::codes::kNativeError;
};

}  // namespace binding
