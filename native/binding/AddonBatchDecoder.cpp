#include "AddonBatchDecoder.h"

#include "AddonModel.h"
#include "addon_data.h"
#include "convert.h"

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
    if (e.shifted > 0) ev.Set("shifted", e.shifted);
    if (e.hasProbs) {
      auto prob = [&](const core::TokenProb &p) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("token", p.token);
        o.Set("logprob", p.logprob);
        return o;
      };
      ev.Set("chosen", prob(e.chosen));
      Napi::Array top = Napi::Array::New(env, e.top.size());
      for (size_t i = 0; i < e.top.size(); ++i) top.Set(static_cast<uint32_t>(i), prob(e.top[i]));
      ev.Set("top", top);
    }
    events.Set(static_cast<uint32_t>(k), ev);
  }
  o.Set("events", events);
  o.Set("batchTokens", result.batchTokens);
  o.Set("promptTokens", result.promptTokens);
  o.Set("generatedTokens", result.generatedTokens);
  o.Set("retries", result.retries);
  o.Set("decodeMicros", Napi::Number::New(env, static_cast<double>(result.decodeMicros)));
  if (!result.drafts.empty() || result.draftMicros > 0) {
    Napi::Array drafts = Napi::Array::New(env, result.drafts.size());
    for (size_t i = 0; i < result.drafts.size(); ++i) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("slot", result.drafts[i].slot);
      d.Set("drafted", result.drafts[i].drafted);
      d.Set("accepted", result.drafts[i].accepted);
      drafts.Set(static_cast<uint32_t>(i), d);
    }
    o.Set("drafts", drafts);
    o.Set("draftMicros", Napi::Number::New(env, static_cast<double>(result.draftMicros)));
  }
  if (result.kvFull) o.Set("kvFull", true);
  return o;
}

Napi::Object resumeToJs(Napi::Env env, const core::ResumePoints &r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("from", r.from);
  Napi::Array at = Napi::Array::New(env, r.checkpoints.size());
  for (size_t i = 0; i < r.checkpoints.size(); ++i) at.Set(static_cast<uint32_t>(i), r.checkpoints[i]);
  o.Set("checkpoints", at);
  return o;
}

core::NgramOptions ngramFrom(const Napi::Object &o, const char *key, core::NgramOptions n) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return n;
  if (!v.IsObject()) throw core::Error(core::codes::kInvalidArgument, std::string(key) + " must be an object");
  Napi::Object g = v.As<Napi::Object>();
  n.sizeN = optionalInt(g, "sizeN", n.sizeN, 1, 1024);
  n.sizeM = optionalInt(g, "sizeM", n.sizeM, 1, 1024);
  n.minHits = optionalInt(g, "minHits", n.minHits, 1, 1024);
  return n;
}

// options.speculative: llama-server's speculative flags (core/speculation.h), the draft model as a Model.
core::SpeculativeOptions speculativeOptionsFrom(Napi::Env env, const Napi::Value &v) {
  core::SpeculativeOptions s;
  if (v.IsUndefined() || v.IsNull()) return s;
  if (!v.IsObject()) throw core::Error(core::codes::kInvalidArgument, "speculative must be an object");
  Napi::Object o = v.As<Napi::Object>();
  s.types = optionalStrings(o, "types", s.types);
  Napi::Value draft = o.Get("draftModel");
  if (!draft.IsUndefined() && !draft.IsNull()) {
    AddonModel *m = AddonModel::from(env, draft);
    if (m == nullptr) throw core::Error(core::codes::kInvalidArgument, "speculative.draftModel must be a Model");
    s.draftModel = m->model(env);
  }
  s.draftKvType = optionalString(o, "draftKvType", s.draftKvType);
  s.draftKvTypeV = optionalString(o, "draftKvTypeV", s.draftKvTypeV);
  s.nMax = optionalInt(o, "nMax", s.nMax, 0, core::limits::kMaxBatch);
  s.nMin = optionalInt(o, "nMin", s.nMin, 0, core::limits::kMaxBatch);
  s.pMin = static_cast<float>(optionalNumber(o, "pMin", s.pMin, {0.0, 1.0}));
  s.pSplit = static_cast<float>(optionalNumber(o, "pSplit", s.pSplit, {0.0, 1.0}));
  s.ngramSimple = ngramFrom(o, "ngramSimple", s.ngramSimple);
  s.ngramMapK = ngramFrom(o, "ngramMapK", s.ngramMapK);
  s.ngramMapK4v = ngramFrom(o, "ngramMapK4v", s.ngramMapK4v);
  s.ngramModMatch = optionalInt(o, "ngramModMatch", s.ngramModMatch, 1, 1024);
  s.ngramModMin = optionalInt(o, "ngramModMin", s.ngramModMin, 0, 1024);
  s.ngramModMax = optionalInt(o, "ngramModMax", s.ngramModMax, 0, 1024);
  s.lookupCacheStatic = optionalString(o, "lookupCacheStatic", s.lookupCacheStatic);
  s.lookupCacheDynamic = optionalString(o, "lookupCacheDynamic", s.lookupCacheDynamic);
  s.synthLen = optionalNumber(o, "synthLen", s.synthLen, {-1.0, 1025.0});
  Napi::Value rates = o.Get("synthRates");
  if (!rates.IsUndefined() && !rates.IsNull()) {
    if (!rates.IsArray()) throw core::Error(core::codes::kInvalidArgument, "speculative.synthRates must be an array");
    Napi::Array a = rates.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsNumber()) throw core::Error(core::codes::kInvalidArgument, "speculative.synthRates must hold numbers");
      s.synthRates.push_back(e.As<Napi::Number>().DoubleValue());
    }
  }
  return s;
}

int32_t slotArg(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsNumber())
    throw core::Error(core::codes::kInvalidArgument, "slot must be a number");
  return info[0].As<Napi::Number>().Int32Value();
}

}  // namespace

Napi::Function AddonBatchDecoder::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "BatchDecoder",
                                    {
                                        method<&AddonBatchDecoder::Start>("start"),
                                        method<&AddonBatchDecoder::Cancel>("cancel"),
                                        method<&AddonBatchDecoder::Clear>("clear"),
                                        method<&AddonBatchDecoder::Step>("step"),
                                        method<&AddonBatchDecoder::SlotInfo>("slotInfo"),
                                        method<&AddonBatchDecoder::CopyPrefix>("copyPrefix"),
                                        method<&AddonBatchDecoder::SaveState>("saveState"),
                                        method<&AddonBatchDecoder::RestoreState>("restoreState"),
                                        method<&AddonBatchDecoder::EraseSlot>("eraseSlot"),
                                        method<&AddonBatchDecoder::CachedPrefix>("cachedPrefix"),
                                        method<&AddonBatchDecoder::ResumePoints>("resumePoints"),
                                        method<&AddonBatchDecoder::Info>("info"),
                                        method<&AddonBatchDecoder::Dispose>("dispose"),
                                        method<&AddonBatchDecoder::Release>("release"),
                                        getter<&AddonBatchDecoder::GetDisposed>("disposed"),
                                        StaticMethod("create", &guarded<&AddonBatchDecoder::Create>),
                                    });
  addonData(env).decoderClass = Napi::Persistent(ctor);
  return ctor;
}

using DecoderHandle = std::shared_ptr<core::BatchDecoder>;

// new BatchDecoder(model, options): creating the context allocates the KV cache on the JS thread (tens of ms; more on
// a GPU). BatchDecoder.create(model, options) does it on the pool and wraps the result: a server whose other models
// are streaming (router mode) uses that. The wrap passes the created decoder as a third, External argument.
AddonBatchDecoder::AddonBatchDecoder(const Napi::CallbackInfo &info) : GuardedWrap<AddonBatchDecoder>(info) {
  Napi::Env env = info.Env();
  guard(env, [&]() {
    if (info.Length() > 2 && info[2].IsExternal()) {
      // Moved out: the External lives until the GC collects it, and must not keep the decoder (and its model) alive.
      decoder_ = std::move(*info[2].As<Napi::External<DecoderHandle>>().Data());
      if (!decoder_) throw core::Error(core::codes::kInvalidArgument, "the created decoder was already taken");
      stepThread_ = std::make_unique<core::SerialExecutor>();
      return;
    }
    std::shared_ptr<core::Model> model = AddonModel::modelArg(info, 0);
    const Napi::Object options = optionalObject(info, 1, "options");
    core::DecoderOptions opts = decoderOptionsFrom(options);
    opts.speculative = speculativeOptionsFrom(env, options.Get("speculative"));
    decoder_ = std::make_shared<core::BatchDecoder>(std::move(model), opts);
    stepThread_ = std::make_unique<core::SerialExecutor>();
  });
}

std::shared_ptr<core::BatchDecoder> AddonBatchDecoder::decoder(Napi::Env env) const {
  if (!decoder_) throw makeError(env, core::codes::kDisposed, "the decoder has been disposed");
  return decoder_;
}

std::shared_ptr<core::BatchDecoder> AddonBatchDecoder::betweenSteps(Napi::Env env, const char *what) const {
  auto d = decoder(env);
  if (*stepsInFlight_ > 0) {
    throw core::Error(core::codes::kBusy, std::string("a step is running; ") + what + " slots between steps");
  }
  return d;
}

Napi::Value AddonBatchDecoder::Start(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto d = betweenSteps(env, "start");
  const int32_t slot = slotArg(info);
  core::StartParams p = startParamsFrom(optionalObject(info, 2, "params"));
  p.prompt = requireTokens(info, 1, "tokens");
  const core::StartResult r = d->start(slot, p);
  Napi::Object out = Napi::Object::New(env);
  out.Set("reusedTokens", r.reusedTokens);
  out.Set("promptTokens", r.promptTokens);
  return out;
}

Napi::Value AddonBatchDecoder::Cancel(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return Napi::Boolean::New(env, decoder(env)->cancel(slotArg(info)));
}

Napi::Value AddonBatchDecoder::Clear(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto d = betweenSteps(env, "clear");
  d->clear(slotArg(info));
  return env.Undefined();
}

Napi::Value AddonBatchDecoder::Step(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto d = decoder(env);
  int32_t budget = d->nBatch();
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsNumber()) throw core::Error(core::codes::kInvalidArgument, "tokenBudget must be a number");
    budget = info[0].As<Napi::Number>().Int32Value();
  }
  // draftLimits: per slot, the most tokens it may draft this step (absent: the configured maximum).
  std::vector<int32_t> limits;
  if (info.Length() > 1 && !info[1].IsUndefined()) limits = requireTokens(info, 1, "draftLimits");
  return queueOnStepThread(
      env, [d = std::move(d), budget, limits = std::move(limits)]() { return d->step(budget, limits); },
      [](Napi::Env e, core::StepResult &r) -> Napi::Value { return stepResultToJs(e, r); });
}

// copyPrefix(src, dst, count?) -> tokens copied: dst (idle) gets src's cached KV, between steps.
Napi::Value AddonBatchDecoder::CopyPrefix(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto d = betweenSteps(env, "copy");
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw core::Error(core::codes::kInvalidArgument, "copyPrefix(src, dst, count?) takes slot numbers");
  }
  const int32_t count = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  return Napi::Number::New(
      env, d->copyPrefix(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(), count));
}

// saveState(slot) -> Promise<{ tokens: Int32Array, state: Uint8Array, resume: { from, checkpoints } }>: the slot's KV
// in host memory, taken on the step thread (after any step queued before it). The bytes are copied into a JS buffer
// there, on the JS thread; the core's copy goes with the job.
Napi::Value AddonBatchDecoder::SaveState(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const int32_t slot = slotArg(info);
  return queueOnStepThread(
      env, [d = decoder(env), slot]() { return d->saveState(slot); },
      [](Napi::Env e, core::SavedState &saved) -> Napi::Value {
        Napi::Uint8Array state = Napi::Uint8Array::New(e, saved.data.size());
        std::copy(saved.data.begin(), saved.data.end(), state.Data());
        Napi::Object out = Napi::Object::New(e);
        out.Set("tokens", tokensToJs(e, saved.tokens));
        out.Set("state", state);
        out.Set("resume", resumeToJs(e, saved.resume));
        return out;
      });
}

// restoreState(slot, tokens, state: Uint8Array) -> Promise<tokens held>: the bytes are copied on the JS thread, so
// the caller may reuse its buffer at once and nothing off the JS thread touches JS memory.
Napi::Value AddonBatchDecoder::RestoreState(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const int32_t slot = slotArg(info);
  std::vector<llama_token> tokens = requireTokens(info, 1, "tokens");
  if (info.Length() < 3 || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw core::Error(core::codes::kInvalidArgument, "state must be a Uint8Array");
  }
  Napi::Uint8Array bytes = info[2].As<Napi::Uint8Array>();
  std::vector<uint8_t> data(bytes.Data(), bytes.Data() + bytes.ByteLength());
  return queueOnStepThread(
      env,
      [d = decoder(env), slot, tokens = std::move(tokens), data = std::move(data)]() {
        return d->restoreState(slot, tokens, data);
      },
      [](Napi::Env e, int32_t &n) -> Napi::Value { return Napi::Number::New(e, n); });
}

// eraseSlot(slot) -> Promise<void>: clear() queued behind any step, for callers that can't wait for one to end.
Napi::Value AddonBatchDecoder::EraseSlot(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto d = decoder(env);
  const int32_t slot = slotArg(info);
  return queueOnStepThread(env, [d = std::move(d), slot]() { d->clear(slot); });
}

Napi::Value AddonBatchDecoder::SlotInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const core::SlotInfo s = decoder(env)->slotInfo(slotArg(info));
  Napi::Object o = Napi::Object::New(env);
  o.Set("state", core::slotStateName(s.state));
  o.Set("cachedTokens", s.cachedTokens);
  o.Set("pendingPrompt", s.pendingPrompt);
  o.Set("generated", s.generated);
  o.Set("draftTokens", s.draftTokens);
  o.Set("draftAccepted", s.draftAccepted);
  return o;
}

Napi::Value AddonBatchDecoder::CachedPrefix(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return tokensToJs(env, decoder(env)->cachedPrefix(slotArg(info)));
}

Napi::Value AddonBatchDecoder::ResumePoints(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return resumeToJs(env, decoder(env)->resumePoints(slotArg(info)));
}

Napi::Value AddonBatchDecoder::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto d = decoder(env);
  const core::DecoderOptions &o = d->options();
  Napi::Object out = decoderOptionsToJs(env, o);
  out.Set("nCtxPerSlot", d->nCtxPerSlot());  // with kvUnified and nCtxSlotMax, what one slot may use
  out.Set("kvTypeV", o.kvTypeV.empty() ? o.kvType : o.kvTypeV);
  out.Set("kvCellsUsed", Napi::Number::New(env, static_cast<double>(d->kvCellsUsed())));
  out.Set("checkpointBytes", Napi::Number::New(env, static_cast<double>(d->checkpointBytes())));
  out.Set("draftMax", d->draftMax());
  out.Set("speculativeTypes", d->speculativeTypes());
  return out;
}

Napi::Value AddonBatchDecoder::Dispose(const Napi::CallbackInfo &info) {
  decoder_.reset();
  stepThread_.reset();  // queued steps still run and settle; then the thread exits
  return info.Env().Undefined();
}

// BatchDecoder.create(model, options) -> Promise<BatchDecoder>: the options are read here, the context is created on
// the pool.
Napi::Value AddonBatchDecoder::Create(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::shared_ptr<core::Model> model = AddonModel::modelArg(info, 0);
  const Napi::Object options = optionalObject(info, 1, "options");
  core::DecoderOptions opts = decoderOptionsFrom(options);
  opts.speculative = speculativeOptionsFrom(env, options.Get("speculative"));
  return queueOnPool(
      env, [model = std::move(model), opts]() { return std::make_shared<core::BatchDecoder>(model, opts); },
      [](Napi::Env e, DecoderHandle &created) -> Napi::Value {
        auto external = Napi::External<DecoderHandle>::New(e, new DecoderHandle(std::move(created)),
                                                           [](Napi::Env, DecoderHandle *h) { delete h; });
        return addonData(e).decoderClass.New({e.Undefined(), e.Undefined(), external});
      });
}

// release() -> Promise<void>: dispose(), with the context and its step thread freed on the pool (freeing a KV cache
// and joining the thread take long enough to stall other models' streams).
Napi::Value AddonBatchDecoder::Release(const Napi::CallbackInfo &info) {
  DecoderHandle decoder = std::move(decoder_);
  std::shared_ptr<core::SerialExecutor> thread(std::move(stepThread_));
  return queueOnPool(info.Env(), [decoder = std::move(decoder), thread = std::move(thread)]() mutable {
    thread.reset();
    decoder.reset();
    core::returnFreedMemory();
  });
}

Napi::Value AddonBatchDecoder::GetDisposed(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), !decoder_);
}

}  // namespace binding
