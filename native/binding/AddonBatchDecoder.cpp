#include "AddonBatchDecoder.h"

#include "AddonModel.h"
#include "convert.h"
#include "js_errors.h"

namespace binding {
namespace {

Napi::Object stepResultToJs(Napi::Env env, const core::StepResult &result) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Array events = Napi::Array::New(env, result.events.size());
  for (size_t k = 0; k < result.events.size(); ++k) {
    const core::SlotEvent &e = result.events[k];
    Napi::Object ev = Napi::Object::New(env);
    ev.Set("slot", e.slot);
    ev.Set("token", e.token);
    ev.Set("text", e.text);
    ev.Set("end", core::endReasonName(e.end));
    if (!e.error.empty()) ev.Set("error", e.error);
    ev.Set("promptProcessed", e.promptProcessed);
    events.Set(static_cast<uint32_t>(k), ev);
  }
  o.Set("events", events);
  o.Set("batchTokens", result.batchTokens);
  o.Set("promptTokens", result.promptTokens);
  o.Set("generatedTokens", result.generatedTokens);
  o.Set("retries", result.retries);
  o.Set("decodeMicros", Napi::Number::New(env, static_cast<double>(result.decodeMicros)));
  return o;
}

// One step in flight: filled on the step thread, settled on the JS thread.
struct StepJob {
  StepJob(Napi::Env env, std::shared_ptr<int> inFlight)
      : deferred(Napi::Promise::Deferred::New(env)), inFlight(std::move(inFlight)) {}
  Napi::Promise::Deferred deferred;
  std::shared_ptr<int> inFlight;  // touched on the JS thread only
  core::StepResult result;
  std::string code;  // empty: success
  std::string message;
};

void settleStep(Napi::Env env, Napi::Function /*unused*/, StepJob *job) {
  std::unique_ptr<StepJob> owned(job);
  --*job->inFlight;
  if (env == nullptr) return;  // the environment is shutting down
  Napi::HandleScope scope(env);
  try {
    if (job->code.empty()) job->deferred.Resolve(stepResultToJs(env, job->result));
    else job->deferred.Reject(makeError(env, job->code, job->message).Value());
  } catch (const Napi::Error &e) {
    job->deferred.Reject(e.Value());
  }
}

int32_t slotArg(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsNumber())
    throw core::Error(core::codes::kInvalidArgument, "slot must be a number");
  return info[0].As<Napi::Number>().Int32Value();
}

}  // namespace

Napi::Function AddonBatchDecoder::Init(Napi::Env env) {
  return DefineClass(env, "BatchDecoder",
                     {
                         InstanceMethod("start", &AddonBatchDecoder::Start),
                         InstanceMethod("cancel", &AddonBatchDecoder::Cancel),
                         InstanceMethod("clear", &AddonBatchDecoder::Clear),
                         InstanceMethod("step", &AddonBatchDecoder::Step),
                         InstanceMethod("slotInfo", &AddonBatchDecoder::SlotInfo),
                         InstanceMethod("cachedTokens", &AddonBatchDecoder::CachedTokens),
                         InstanceMethod("info", &AddonBatchDecoder::Info),
                         InstanceMethod("dispose", &AddonBatchDecoder::Dispose),
                         InstanceAccessor("disposed", &AddonBatchDecoder::GetDisposed, nullptr),
                     });
}

// new BatchDecoder(model, options): creating the context allocates the KV cache; done synchronously
// because it is quick next to a model load, and the caller needs the object at once.
AddonBatchDecoder::AddonBatchDecoder(const Napi::CallbackInfo &info) : Napi::ObjectWrap<AddonBatchDecoder>(info) {
  Napi::Env env = info.Env();
  guard(env, [&]() {
    AddonModel *model = info.Length() > 0 ? AddonModel::from(env, info[0]) : nullptr;
    if (model == nullptr) throw core::Error(core::codes::kInvalidArgument, "model must be a Model");
    Napi::Object o = optionalObject(info, 1, "options");
    const core::DecoderOptions opts = decoderOptionsFrom(o);
    decoder_ = std::make_shared<core::BatchDecoder>(model->model(env), opts);
    stepThread_ = std::make_unique<core::SerialExecutor>();
  });
}

std::shared_ptr<core::BatchDecoder> AddonBatchDecoder::decoder(Napi::Env env) const {
  if (!decoder_) throw makeError(env, core::codes::kDisposed, "the decoder has been disposed");
  return decoder_;
}

Napi::Value AddonBatchDecoder::Start(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto d = decoder(env);
    if (*stepsInFlight_ > 0) throw core::Error(core::codes::kBusy, "a step is running; start slots between steps");
    const int32_t slot = slotArg(info);
    core::StartParams p;
    p.prompt = requireTokens(info, 1, "tokens");
    Napi::Object o = optionalObject(info, 2, "params");
    p.maxTokens = optionalInt(o, "maxTokens", 256, 1, 1 << 24);
    p.sampling = samplingFrom(o);
    p.preservedTokens = optionalTokens(o, "preservedTokens");
    const core::StartResult r = d->start(slot, p);
    Napi::Object out = Napi::Object::New(env);
    out.Set("reusedTokens", r.reusedTokens);
    out.Set("promptTokens", r.promptTokens);
    return out;
  });
}

Napi::Value AddonBatchDecoder::Cancel(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value { return Napi::Boolean::New(env, decoder(env)->cancel(slotArg(info))); });
}

Napi::Value AddonBatchDecoder::Clear(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto d = decoder(env);
    if (*stepsInFlight_ > 0) throw core::Error(core::codes::kBusy, "a step is running; clear slots between steps");
    d->clear(slotArg(info));
    return env.Undefined();
  });
}

Napi::Value AddonBatchDecoder::Step(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto d = decoder(env);
    int32_t budget = d->nBatch();
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsNumber()) throw core::Error(core::codes::kInvalidArgument, "tokenBudget must be a number");
      budget = info[0].As<Napi::Number>().Int32Value();
    }
    auto *job = new StepJob(env, stepsInFlight_);
    ++*stepsInFlight_;
    Napi::Promise promise = job->deferred.Promise();
    auto done = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}),
                                              "llamaDecoderStep", 0, 1);
    stepThread_->post([d = std::move(d), budget, job, done]() mutable {
      try {
        job->result = d->step(budget);
      } catch (const core::Error &e) {
        job->code = e.code();
        job->message = e.what();
      } catch (const std::exception &e) {
        job->code = core::codes::kNativeError;
        job->message = e.what();
      } catch (...) {
        job->code = core::codes::kNativeError;
        job->message = "unknown native error";
      }
      d.reset();  // the last reference may free the context here, off the JS thread
      if (done.BlockingCall(job, settleStep) != napi_ok) delete job;  // environment gone: nothing to settle
      done.Release();
    });
    return promise;
  });
}

Napi::Value AddonBatchDecoder::SlotInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const core::SlotInfo s = decoder(env)->slotInfo(slotArg(info));
    Napi::Object o = Napi::Object::New(env);
    o.Set("state", core::slotStateName(s.state));
    o.Set("cachedTokens", s.cachedTokens);
    o.Set("pendingPrompt", s.pendingPrompt);
    o.Set("generated", s.generated);
    return o;
  });
}

Napi::Value AddonBatchDecoder::CachedTokens(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value { return tokensToJs(env, decoder(env)->cachedTokens(slotArg(info))); });
}

Napi::Value AddonBatchDecoder::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto d = decoder(env);
    const core::DecoderOptions &o = d->options();
    Napi::Object out = Napi::Object::New(env);
    out.Set("nSlots", d->nSlots());
    out.Set("nCtxPerSlot", d->nCtxPerSlot());
    out.Set("nBatch", o.nBatch);
    out.Set("nUbatch", o.nUbatch);
    out.Set("kvType", o.kvType);
    out.Set("kvUnified", o.kvUnified);
    out.Set("flashAttn", o.flashAttn);
    out.Set("swaFull", o.swaFull);
    out.Set("kvCellsUsed", Napi::Number::New(env, static_cast<double>(d->kvCellsUsed())));
    return out;
  });
}

Napi::Value AddonBatchDecoder::Dispose(const Napi::CallbackInfo &info) {
  decoder_.reset();
  stepThread_.reset();  // queued steps still run and settle; then the thread exits
  return info.Env().Undefined();
}

Napi::Value AddonBatchDecoder::GetDisposed(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), !decoder_);
}

}  // namespace binding
