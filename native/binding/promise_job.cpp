#include "promise_job.h"

namespace binding {

void PromiseJob::run() {
  failure_ = captureFailure(work_);
  work_ = nullptr;
}

void PromiseJob::settle(Napi::Env env) {
  Napi::HandleScope scope(env);
  try {
    if (settled_) {
      std::optional<Failure> failed = captureFailure(settled_);
      if (!failure_) failure_ = std::move(failed);
    }
    Napi::Value value;
    if (!failure_) failure_ = captureFailure([&]() { value = resolve_(env); });
    if (failure_) deferred_.Reject(makeError(env, *failure_).Value());
    else deferred_.Resolve(value);
  } catch (const Napi::Error &e) {
    deferred_.Reject(e.Value());
  }
}

namespace detail {
namespace {

class PoolWorker final : public Napi::AsyncWorker {
 public:
  PoolWorker(Napi::Env env, std::unique_ptr<PromiseJob> job)
      : Napi::AsyncWorker(env, "llamaPromiseJob"), job_(std::move(job)) {}

 protected:
  void Execute() override { job_->run(); }
  void OnOK() override { job_->settle(Env()); }  // run() captured any failure: OnError is never called

 private:
  std::unique_ptr<PromiseJob> job_;
};

void settleOnJsThread(Napi::Env env, Napi::Function /*unused*/, PromiseJob *job) {
  std::unique_ptr<PromiseJob> owned(job);
  if (env != nullptr) job->settle(env);  // null: the environment is shutting down
}

}  // namespace

Napi::Promise dispatchOnPool(Napi::Env env, std::unique_ptr<PromiseJob> job) {
  Napi::Promise promise = job->promise();
  (new PoolWorker(env, std::move(job)))->Queue();  // deletes itself after OnOK
  return promise;
}

Napi::Promise dispatchOnThread(Napi::Env env, core::SerialExecutor &thread, std::unique_ptr<PromiseJob> job) {
  Napi::Promise promise = job->promise();
  auto done = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}),
                                            "llamaPromiseJob", 0, 1);
  thread.post([job = job.release(), done]() mutable {
    job->run();
    if (done.BlockingCall(job, settleOnJsThread) != napi_ok) delete job;  // environment gone: nothing to settle
    done.Release();
  });
  return promise;
}

}  // namespace detail
}  // namespace binding
