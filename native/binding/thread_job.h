#pragma once
// Work for the decoder's own thread (core::SerialExecutor) that settles a Promise on the JS thread: the one way
// long native calls leave the JS thread besides libuv's pool (PromiseWorker). `work` runs on that thread and must
// not touch JS; `toJs` builds the resolved value on the JS thread.
#include <napi.h>

#include <functional>
#include <memory>
#include <string>

#include "js_errors.h"
#include "serial_executor.h"

namespace binding {

template <typename R>
class ThreadJob {
 public:
  using Work = std::function<R()>;
  using ToJs = std::function<Napi::Value(Napi::Env, R &)>;

  // `inFlight` counts queued and running jobs on the JS thread (start()/clear() refuse while it is > 0).
  static Napi::Promise queue(Napi::Env env, core::SerialExecutor &thread, std::shared_ptr<int> inFlight, Work work,
                             ToJs toJs) {
    auto *job = new ThreadJob(env, std::move(inFlight), std::move(work), std::move(toJs));
    ++*job->inFlight_;
    Napi::Promise promise = job->deferred_.Promise();
    auto done = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}),
                                              "llamaThreadJob", 0, 1);
    thread.post([job, done]() mutable {
      captureError([&]() { job->result_ = job->work_(); }, job->code_, job->message_);
      job->work_ = nullptr;  // what the work captured (the decoder) is released here, off the JS thread
      if (done.BlockingCall(job, settle) != napi_ok) delete job;  // environment gone: nothing to settle
      done.Release();
    });
    return promise;
  }

 private:
  ThreadJob(Napi::Env env, std::shared_ptr<int> inFlight, Work work, ToJs toJs)
      : deferred_(Napi::Promise::Deferred::New(env)),
        inFlight_(std::move(inFlight)),
        work_(std::move(work)),
        toJs_(std::move(toJs)) {}

  static void settle(Napi::Env env, Napi::Function /*unused*/, ThreadJob *job) {
    std::unique_ptr<ThreadJob> owned(job);
    --*job->inFlight_;
    if (env == nullptr) return;  // the environment is shutting down
    Napi::HandleScope scope(env);
    std::string code, message;
    if (job->code_.empty()) {
      Napi::Value value;
      if (captureError([&]() { value = job->toJs_(env, job->result_); }, code, message)) {
        job->deferred_.Resolve(value);
        return;
      }
    } else {
      code = job->code_;
      message = job->message_;
    }
    job->deferred_.Reject(makeError(env, code, message).Value());
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<int> inFlight_;  // touched on the JS thread only
  Work work_;
  ToJs toJs_;
  R result_{};
  std::string code_;  // empty: success
  std::string message_;
};

}  // namespace binding
