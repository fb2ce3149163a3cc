#include "AddonModel.h"

#include <utility>

#include "convert.h"
#include "limits.h"
#include "promise_job.h"
#include "reference_generate.h"

namespace binding {
namespace {

// llama.cpp's load progress for a JS callback, in whole percents (llama.cpp reports once per tensor). Reported and
// released on the loading thread.
class LoadProgress {
 public:
  LoadProgress(Napi::Env env, Napi::Value callback) {
    if (!callback.IsFunction()) return;
    tsfn_ = Napi::ThreadSafeFunction::New(env, callback.As<Napi::Function>(), "llamaLoadProgress", 0, 1);
    active_ = true;
  }

  void report(float p) {
    if (!active_ || (p < 1.0f && p - last_ < 0.01f)) return;
    last_ = p;
    tsfn_.NonBlockingCall([p](Napi::Env env, Napi::Function cb) {
      try {
        cb.Call({Napi::Number::New(env, p)});
      } catch (...) {
        // A throwing progress callback must not take the process down, nor fail the load.
      }
    });
  }

  void release() {
    if (!active_) return;
    tsfn_.Release();
    active_ = false;
  }

 private:
  Napi::ThreadSafeFunction tsfn_;
  bool active_ = false;
  float last_ = -1.0f;
};

}  // namespace

Napi::Function AddonModel::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "Model",
                                    {
                                        method<&AddonModel::Load>("load"),
                                        method<&AddonModel::AbortLoad>("abortLoad"),
                                        method<&AddonModel::Dispose>("dispose"),
                                        method<&AddonModel::Release>("release"),
                                        getter<&AddonModel::GetDisposed>("disposed"),
                                        getter<&AddonModel::GetLoaded>("loaded"),
                                        method<&AddonModel::Info>("info"),
                                        method<&AddonModel::Tokenize>("tokenize"),
                                        method<&AddonModel::Detokenize>("detokenize"),
                                        method<&AddonModel::TokenToPiece>("tokenToPiece"),
                                        method<&AddonModel::ApplyChatTemplate>("applyChatTemplate"),
                                        method<&AddonModel::ReferenceGreedy>("referenceGreedy"),
                                    });
  addonData(env).modelClass = Napi::Persistent(ctor);
  return ctor;
}

AddonModel *AddonModel::from(Napi::Env env, Napi::Value value) {
  const Napi::FunctionReference &modelClass = addonData(env).modelClass;
  if (modelClass.IsEmpty() || !value.IsObject() || !value.As<Napi::Object>().InstanceOf(modelClass.Value()))
    return nullptr;
  return Unwrap(value.As<Napi::Object>());
}

std::shared_ptr<core::Model> AddonModel::modelArg(const Napi::CallbackInfo &info, size_t index) {
  AddonModel *model = info.Length() > index ? from(info.Env(), info[index]) : nullptr;
  if (model == nullptr) throw core::Error(core::codes::kInvalidArgument, "model must be a Model");
  return model->model(info.Env());
}

AddonModel::AddonModel(const Napi::CallbackInfo &info)
    : GuardedWrap<AddonModel>(info), live_(addonData(info.Env()).liveModels) {
  guard(info.Env(), [&]() { live_->insert(this); });
}

AddonModel::~AddonModel() {
  live_->erase(this);
  dispose();
}

void AddonModel::dispose() {
  disposed_ = true;
  abortLoad_->store(true);
  std::shared_ptr<core::Model> old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    old.swap(model_);
  }
  // `old` is freed here, outside the lock, unless a worker still holds it.
}

std::shared_ptr<core::Model> AddonModel::model(Napi::Env env) {
  if (disposed_) throw makeError(env, core::codes::kDisposed, "the model has been disposed");
  std::lock_guard<std::mutex> lock(mutex_);
  if (!model_) {
    throw makeError(env, loading_ ? core::codes::kBusy : core::codes::kInvalidArgument,
                    loading_ ? "the model is still loading" : "no model is loaded: call load() first");
  }
  return model_;
}

// load(path, options, onProgress?) -> Promise<void>
Napi::Value AddonModel::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (disposed_) throw makeError(env, core::codes::kDisposed, "the model has been disposed");
  if (loading_ || model_) throw makeError(env, core::codes::kBusy, "load() was already called on this model");
  std::string path = requireString(info, 0, "path");
  const core::LoadOptions opts = loadOptionsFrom(optionalObject(info, 1, "options"));
  Napi::Value onProgress = info.Length() > 2 ? info[2] : env.Undefined();
  if (!onProgress.IsUndefined() && !onProgress.IsFunction()) {
    throw makeError(env, core::codes::kInvalidArgument, "onProgress must be a function");
  }
  abortLoad_->store(false);
  auto progress = std::make_shared<LoadProgress>(env, onProgress);
  // Keeps this object alive until the load settles.
  auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
  Napi::Promise promise = queueOnPool(
      env,
      [path = std::move(path), opts, abort = abortLoad_, progress]() {
        struct Release {
          LoadProgress &progress;
          ~Release() { progress.release(); }
        } release{*progress};
        return core::Model::load(path, opts, [&](float p) {
          progress->report(p);
          return !abort->load();
        });
      },
      [this](Napi::Env e, std::shared_ptr<core::Model> &loaded) -> Napi::Value {
        if (disposed_) throw makeError(e, core::codes::kLoadCancelled, "the model was disposed while loading");
        std::lock_guard<std::mutex> lock(mutex_);
        model_ = std::move(loaded);
        return e.Undefined();
      },
      [this, self]() { loading_ = false; });
  loading_ = true;  // after queueing, which may throw; the load settles on this thread, so not before this
  return promise;
}

Napi::Value AddonModel::AbortLoad(const Napi::CallbackInfo &info) {
  abortLoad_->store(true);
  return info.Env().Undefined();
}

Napi::Value AddonModel::Dispose(const Napi::CallbackInfo &info) {
  dispose();
  return info.Env().Undefined();
}

// release() -> Promise<void>: dispose(), with the weights freed on the pool (unmapping and freeing them takes long
// enough to stall other models' streams). Work still running keeps its own reference, as with dispose().
Napi::Value AddonModel::Release(const Napi::CallbackInfo &info) {
  disposed_ = true;
  abortLoad_->store(true);
  std::shared_ptr<core::Model> old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    old.swap(model_);
  }
  return queueOnPool(info.Env(), [old = std::move(old)]() mutable {
    old.reset();
    core::returnFreedMemory();
  });
}

Napi::Value AddonModel::GetDisposed(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), disposed_);
}

Napi::Value AddonModel::GetLoaded(const Napi::CallbackInfo &info) {
  std::lock_guard<std::mutex> lock(mutex_);
  return Napi::Boolean::New(info.Env(), static_cast<bool>(model_));
}

Napi::Value AddonModel::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  const core::ModelInfo &i = m->info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", i.architecture);
  o.Set("name", i.name);
  o.Set("description", i.description);
  o.Set("fileType", i.fileType);
  o.Set("nParams", Napi::Number::New(env, static_cast<double>(i.nParams)));
  o.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(i.sizeBytes)));
  o.Set("nCtxTrain", i.nCtxTrain);
  o.Set("nEmbd", i.nEmbd);
  o.Set("nLayer", i.nLayer);
  o.Set("nHead", i.nHead);
  o.Set("nHeadKv", i.nHeadKv);
  o.Set("nSwa", i.nSwa);
  o.Set("nVocab", i.nVocab);
  o.Set("vocabType", i.vocabType);
  o.Set("bos", i.bos);
  o.Set("eos", i.eos);
  o.Set("eot", i.eot);
  o.Set("eogTokens", tokensToJs(env, i.eogTokens));
  o.Set("addBos", i.addBos);
  o.Set("offloadedLayers", i.offloadedLayers);
  o.Set("offloadableLayers", i.offloadableLayers);
  o.Set("chatTemplate", i.hasChatTemplate ? Napi::Value(Napi::String::New(env, i.chatTemplate)) : env.Null());
  Napi::Object meta = Napi::Object::New(env);
  for (const auto &kv : i.metadata) meta.Set(kv.first, kv.second);
  o.Set("metadata", meta);
  return o;
}

Napi::Value AddonModel::Tokenize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const std::string text = requireString(info, 0, "text");
  const bool addSpecial = optionalBoolArg(info, 1, "addSpecial", true);
  const bool parseSpecial = optionalBoolArg(info, 2, "parseSpecial", false);
  return tokensToJs(env, model(env)->tokenize(text, addSpecial, parseSpecial));
}

Napi::Value AddonModel::Detokenize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const auto tokens = requireTokens(info, 0, "tokens");
  const bool removeSpecial = optionalBoolArg(info, 1, "removeSpecial", false);
  const bool unparseSpecial = optionalBoolArg(info, 2, "unparseSpecial", false);
  return Napi::String::New(env, model(env)->detokenize(tokens, removeSpecial, unparseSpecial));
}

Napi::Value AddonModel::TokenToPiece(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw makeError(env, core::codes::kInvalidArgument, "token must be a number");
  }
  const bool special = optionalBoolArg(info, 1, "special", false);
  const std::string piece = model(env)->tokenPiece(info[0].As<Napi::Number>().Int32Value(), special);
  return Napi::Buffer<char>::Copy(env, piece.data(), piece.size());
}

Napi::Value AddonModel::ApplyChatTemplate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    throw makeError(env, core::codes::kInvalidArgument, "messages must be an array");
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<core::ChatMessage> messages;
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value e = arr.Get(k);
    if (!e.IsObject())
      throw makeError(env, core::codes::kInvalidArgument, "messages[" + std::to_string(k) + "] must be an object");
    Napi::Object m = e.As<Napi::Object>();
    if (!m.Get("role").IsString() || !m.Get("content").IsString()) {
      throw makeError(env, core::codes::kInvalidArgument,
                      "messages[" + std::to_string(k) + "] needs string role and content");
    }
    messages.push_back({m.Get("role").As<Napi::String>().Utf8Value(), m.Get("content").As<Napi::String>().Utf8Value()});
  }
  const bool addAssistant = optionalBoolArg(info, 1, "addAssistant", true);
  std::string tmpl;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) tmpl = requireString(info, 2, "template");
  return Napi::String::New(env, model(env)->applyChatTemplate(messages, addAssistant, tmpl));
}

Napi::Value AddonModel::ReferenceGreedy(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto prompt = requireTokens(info, 0, "tokens");
  Napi::Object o = optionalObject(info, 1, "options");
  core::ReferenceOptions opts;
  opts.nPredict = optionalInt(o, "nPredict", opts.nPredict, 0, 1 << 20);
  opts.nCtx = optionalInt(o, "nCtx", opts.nCtx, 0, core::limits::kMaxCount);
  opts.nThreads = optionalInt(o, "nThreads", opts.nThreads, 0, core::limits::kMaxThreads);
  opts.nBatch = optionalInt(o, "nBatch", opts.nBatch, 0, core::limits::kMaxBatch);
  return queueOnPool(
      env, [m = model(env), prompt = std::move(prompt), opts]() { return core::referenceGreedy(*m, prompt, opts); },
      [](Napi::Env e, std::vector<llama_token> &out) -> Napi::Value { return tokensToJs(e, out); });
}

}  // namespace binding
