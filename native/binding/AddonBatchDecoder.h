#pragma once
// JS class BatchDecoder: start/cancel/clear slots, step() as a Promise on the decoder's own step thread.
#include <napi.h>

#include <memory>

#include "batch_decoder.h"
#include "js_errors.h"
#include "promise_job.h"
#include "serial_executor.h"

namespace binding {

class AddonBatchDecoder : public GuardedWrap<AddonBatchDecoder> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit AddonBatchDecoder(const Napi::CallbackInfo &info);

 private:
  std::shared_ptr<core::BatchDecoder> decoder(Napi::Env env) const;
  // The decoder, or BUSY while a step is queued or running (`what`: the refused action).
  std::shared_ptr<core::BatchDecoder> betweenSteps(Napi::Env env, const char *what) const;
  // Work for the step thread, counted in stepsInFlight_ until its promise settles.
  template <typename Work, typename ToJs = ResolveUndefined>
  Napi::Promise queueOnStepThread(Napi::Env env, Work work, ToJs toJs = {}) {
    Napi::Promise promise =
        queueOnThread(env, *stepThread_, std::move(work), std::move(toJs), [n = stepsInFlight_]() { --*n; });
    ++*stepsInFlight_;  // after queueing, which may throw; the job settles on this thread, so not before this
    return promise;
  }
  Napi::Value Start(const Napi::CallbackInfo &info);
  Napi::Value Cancel(const Napi::CallbackInfo &info);
  Napi::Value Clear(const Napi::CallbackInfo &info);
  Napi::Value Step(const Napi::CallbackInfo &info);
  Napi::Value SlotInfo(const Napi::CallbackInfo &info);
  Napi::Value CopyPrefix(const Napi::CallbackInfo &info);
  Napi::Value SaveState(const Napi::CallbackInfo &info);
  Napi::Value RestoreState(const Napi::CallbackInfo &info);
  Napi::Value EraseSlot(const Napi::CallbackInfo &info);
  Napi::Value CachedPrefix(const Napi::CallbackInfo &info);
  Napi::Value ResumePoints(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Dispose(const Napi::CallbackInfo &info);
  Napi::Value Release(const Napi::CallbackInfo &info);
  static Napi::Value Create(const Napi::CallbackInfo &info);
  Napi::Value GetDisposed(const Napi::CallbackInfo &info);

  // Shared with queued steps, so dispose() during a step frees the context after it ends.
  std::shared_ptr<core::BatchDecoder> decoder_;
  std::unique_ptr<core::SerialExecutor> stepThread_;
  // Steps queued or running, counted on the JS thread: start()/clear() refuse while one is pending, so
  // "between steps" means the same thing whether or not the step thread has picked the step up yet.
  std::shared_ptr<int> stepsInFlight_ = std::make_shared<int>(0);
};

}  // namespace binding
