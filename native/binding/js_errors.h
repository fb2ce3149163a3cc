#pragma once
// Turning core errors into JS errors with a `code` property. No C++ exception crosses into JS:
// every entry point runs its body through guard(), every worker through PromiseWorker::Execute.
#include <napi.h>

#include <string>

#include "errors.h"

namespace binding {

Napi::Error makeError(Napi::Env env, const std::string &code, const std::string &message);

// Runs fn; converts core::Error / std::exception into a thrown JS error carrying its code.
template <typename Fn>
auto guard(Napi::Env env, Fn &&fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error &) {
    throw;
  } catch (const core::Error &e) {
    throw makeError(env, e.code(), e.what());
  } catch (const std::exception &e) {
    throw makeError(env, core::codes::kNativeError, e.what());
  } catch (...) {
    throw makeError(env, core::codes::kNativeError, "unknown native error");
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
