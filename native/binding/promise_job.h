#pragma once
// The one way long native calls leave the JS thread: queueOnPool() runs `work` on libuv's pool, queueOnThread() on a
// core::SerialExecutor (the decoder's step thread), and both settle the returned Promise on the JS thread.
// - `work` must not touch JS. What it throws is caught by captureFailure and rejects with its code. What it captured
//   is released on the thread that ran it, right after it returns (a decoder's last reference may go there).
// - `toJs(env, result)` (`toJs(env)` when work returns void) builds the resolved value on the JS thread.
// - `settled`, when given, runs on the JS thread before the promise settles, whether work failed or not.
#include <napi.h>

#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "js_errors.h"
#include "serial_executor.h"

namespace binding {

using Settled = std::function<void()>;

// The toJs of work whose promise resolves with undefined.
struct ResolveUndefined {
  template <typename... Result>
  Napi::Value operator()(Napi::Env env, Result &...) const {
    return env.Undefined();
  }
};

class PromiseJob {
 public:
  template <typename Work, typename ToJs>
  static std::unique_ptr<PromiseJob> make(Napi::Env env, Work work, ToJs toJs, Settled settled) {
    using R = std::invoke_result_t<Work &>;
    std::unique_ptr<PromiseJob> job(new PromiseJob(env, std::move(settled)));
    if constexpr (std::is_void_v<R>) {
      job->work_ = std::move(work);
      job->resolve_ = [toJs = std::move(toJs)](Napi::Env e) -> Napi::Value { return toJs(e); };
    } else {
      auto result = std::make_shared<R>();
      job->work_ = [result, work = std::move(work)]() { *result = work(); };
      job->resolve_ = [result, toJs = std::move(toJs)](Napi::Env e) -> Napi::Value { return toJs(e, *result); };
    }
    return job;
  }

  Napi::Promise promise() const { return deferred_.Promise(); }
  void run();                  // off the JS thread
  void settle(Napi::Env env);  // on the JS thread

 private:
  PromiseJob(Napi::Env env, Settled settled)
      : deferred_(Napi::Promise::Deferred::New(env)), settled_(std::move(settled)) {}

  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> resolve_;
  Settled settled_;
  std::optional<Failure> failure_;
};

namespace detail {
Napi::Promise dispatchOnPool(Napi::Env env, std::unique_ptr<PromiseJob> job);
Napi::Promise dispatchOnThread(Napi::Env env, core::SerialExecutor &thread, std::unique_ptr<PromiseJob> job);
}  // namespace detail

template <typename Work, typename ToJs = ResolveUndefined>
Napi::Promise queueOnPool(Napi::Env env, Work work, ToJs toJs = {}, Settled settled = nullptr) {
  return detail::dispatchOnPool(env, PromiseJob::make(env, std::move(work), std::move(toJs), std::move(settled)));
}

template <typename Work, typename ToJs = ResolveUndefined>
Napi::Promise queueOnThread(Napi::Env env, core::SerialExecutor &thread, Work work, ToJs toJs = {},
                            Settled settled = nullptr) {
  return detail::dispatchOnThread(env, thread,
                                  PromiseJob::make(env, std::move(work), std::move(toJs), std::move(settled)));
}

}  // namespace binding
