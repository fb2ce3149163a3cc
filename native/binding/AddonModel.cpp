#include "AddonModel.h"

#include <cmath>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "convert.h"
#include "js_errors.h"
#include "reference_generate.h"

namespace binding {
namespace {

// Live models per environment, so the environment's cleanup hook can free what JS did not.
std::mutex g_liveMutex;
std::set<AddonModel *> g_live;

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, AddonModel *owner, Napi::Object self, std::string path, core::LoadOptions opts,
             std::shared_ptr<std::atomic<bool>> abort, Napi::Value onProgress)
      : PromiseWorker(env),
        owner_(owner),
        self_(Napi::Persistent(self)),
        path_(std::move(path)),
        opts_(opts),
        abort_(std::move(abort)) {
    if (onProgress.IsFunction()) {
      progress_ = Napi::ThreadSafeFunction::New(env, onProgress.As<Napi::Function>(), "llamaLoadProgress", 0, 1);
      hasProgress_ = true;
    }
  }

 protected:
  void Run() override {
    float last = -1.0f;
    auto onProgress = [this, &last](float p) {
      // Throttle to whole percents: llama.cpp calls this once per tensor.
      if (hasProgress_ && (p >= 1.0f || p - last >= 0.01f)) {
        last = p;
        progress_.NonBlockingCall([p](Napi::Env env, Napi::Function cb) {
          try {
            cb.Call({Napi::Number::New(env, p)});
          } catch (...) {
            // A throwing progress callback must not take the process down.
          }
        });
      }
      return !abort_->load();
    };
    try {
      model_ = core::Model::load(path_, opts_, onProgress);
    } catch (...) {
      releaseProgress();
      throw;
    }
    releaseProgress();
  }

  Napi::Value Result(Napi::Env env) override {
    if (owner_->disposed()) {
      model_.reset();
      owner_->finishLoad(nullptr);
      throw makeError(env, core::codes::kLoadCancelled, "the model was disposed while loading");
    }
    owner_->finishLoad(std::move(model_));
    return env.Undefined();
  }

  void OnError(const Napi::Error &error) override {
    owner_->finishLoad(nullptr);
    PromiseWorker::OnError(error);
  }

 private:
  void releaseProgress() {
    if (hasProgress_) {
      progress_.Release();
      hasProgress_ = false;
    }
  }

  AddonModel *owner_;
  Napi::ObjectReference self_;  // keeps owner_ alive until the load settles
  std::string path_;
  core::LoadOptions opts_;
  std::shared_ptr<std::atomic<bool>> abort_;
  Napi::ThreadSafeFunction progress_;
  bool hasProgress_ = false;
  std::shared_ptr<core::Model> model_;
};

class ReferenceWorker : public PromiseWorker {
 public:
  ReferenceWorker(Napi::Env env, std::shared_ptr<core::Model> model, std::vector<llama_token> prompt,
                  core::ReferenceOptions opts)
      : PromiseWorker(env), model_(std::move(model)), prompt_(std::move(prompt)), opts_(opts) {}

 protected:
  void Run() override { out_ = core::referenceGreedy(*model_, prompt_, opts_); }
  Napi::Value Result(Napi::Env env) override { return tokensToJs(env, out_); }

 private:
  std::shared_ptr<core::Model> model_;
  std::vector<llama_token> prompt_;
  core::ReferenceOptions opts_;
  std::vector<llama_token> out_;
};

}  // namespace

struct ModelClassData {
  Napi::FunctionReference constructor;
};

Napi::Function AddonModel::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "Model",
                                    {
                                        InstanceMethod("load", &AddonModel::Load),
                                        InstanceMethod("abortLoad", &AddonModel::AbortLoad),
                                        InstanceMethod("dispose", &AddonModel::Dispose),
                                        InstanceAccessor("disposed", &AddonModel::GetDisposed, nullptr),
                                        InstanceAccessor("loaded", &AddonModel::GetLoaded, nullptr),
                                        InstanceMethod("info", &AddonModel::Info),
                                        InstanceMethod("tokenize", &AddonModel::Tokenize),
                                        InstanceMethod("detokenize", &AddonModel::Detokenize),
                                        InstanceMethod("tokenToPiece", &AddonModel::TokenToPiece),
                                        InstanceMethod("applyChatTemplate", &AddonModel::ApplyChatTemplate),
                                        InstanceMethod("referenceGreedy", &AddonModel::ReferenceGreedy),
                                    });
  // Owned by the environment, which deletes it at teardown.
  env.SetInstanceData<ModelClassData>(new ModelClassData{Napi::Persistent(ctor)});
  return ctor;
}

AddonModel *AddonModel::from(Napi::Env env, Napi::Value value) {
  auto *data = env.GetInstanceData<ModelClassData>();
  if (data == nullptr || !value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->constructor.Value()))
    return nullptr;
  return Napi::ObjectWrap<AddonModel>::Unwrap(value.As<Napi::Object>());
}

AddonModel::AddonModel(const Napi::CallbackInfo &info) : Napi::ObjectWrap<AddonModel>(info) {
  std::lock_guard<std::mutex> lock(g_liveMutex);
  g_live.insert(this);
}

AddonModel::~AddonModel() {
  {
    std::lock_guard<std::mutex> lock(g_liveMutex);
    g_live.erase(this);
  }
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

void AddonModel::finishLoad(std::shared_ptr<core::Model> model) {
  loading_ = false;
  if (disposed_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  model_ = std::move(model);
}

Napi::Value AddonModel::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (disposed_) throw makeError(env, core::codes::kDisposed, "the model has been disposed");
    if (loading_ || model_) throw makeError(env, core::codes::kBusy, "load() was already called on this model");
    std::string path = requireString(info, 0, "path");
    Napi::Object o = optionalObject(info, 1, "options");
    const core::LoadOptions opts = loadOptionsFrom(o);
    Napi::Value onProgress = info.Length() > 2 ? info[2] : env.Undefined();
    if (!onProgress.IsUndefined() && !onProgress.IsFunction()) {
      throw makeError(env, core::codes::kInvalidArgument, "onProgress must be a function");
    }
    loading_ = true;
    abortLoad_->store(false);
    auto *worker =
        new LoadWorker(env, this, info.This().As<Napi::Object>(), std::move(path), opts, abortLoad_, onProgress);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value AddonModel::AbortLoad(const Napi::CallbackInfo &info) {
  abortLoad_->store(true);
  return info.Env().Undefined();
}

Napi::Value AddonModel::Dispose(const Napi::CallbackInfo &info) {
  dispose();
  return info.Env().Undefined();
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
  return guard(env, [&]() -> Napi::Value {
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
  });
}

Napi::Value AddonModel::Tokenize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const std::string text = requireString(info, 0, "text");
    const bool addSpecial = optionalBoolArg(info, 1, "addSpecial", true);
    const bool parseSpecial = optionalBoolArg(info, 2, "parseSpecial", false);
    return tokensToJs(env, model(env)->tokenize(text, addSpecial, parseSpecial));
  });
}

Napi::Value AddonModel::Detokenize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const auto tokens = requireTokens(info, 0, "tokens");
    const bool removeSpecial = optionalBoolArg(info, 1, "removeSpecial", false);
    const bool unparseSpecial = optionalBoolArg(info, 2, "unparseSpecial", false);
    return Napi::String::New(env, model(env)->detokenize(tokens, removeSpecial, unparseSpecial));
  });
}

Napi::Value AddonModel::TokenToPiece(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) {
      throw makeError(env, core::codes::kInvalidArgument, "token must be a number");
    }
    const bool special = optionalBoolArg(info, 1, "special", false);
    const std::string piece = model(env)->tokenPiece(info[0].As<Napi::Number>().Int32Value(), special);
    return Napi::Buffer<char>::Copy(env, piece.data(), piece.size());
  });
}

Napi::Value AddonModel::ApplyChatTemplate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
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
      messages.push_back(
          {m.Get("role").As<Napi::String>().Utf8Value(), m.Get("content").As<Napi::String>().Utf8Value()});
    }
    const bool addAssistant = optionalBoolArg(info, 1, "addAssistant", true);
    std::string tmpl;
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) tmpl = requireString(info, 2, "template");
    return Napi::String::New(env, model(env)->applyChatTemplate(messages, addAssistant, tmpl));
  });
}

Napi::Value AddonModel::ReferenceGreedy(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto prompt = requireTokens(info, 0, "tokens");
    Napi::Object o = optionalObject(info, 1, "options");
    core::ReferenceOptions opts;
    opts.nPredict = optionalInt(o, "nPredict", 16, 0, 1 << 20);
    opts.nCtx = optionalInt(o, "nCtx", 0, 0, 1 << 24);
    opts.nThreads = optionalInt(o, "nThreads", 0, 0, 1024);
    opts.nBatch = optionalInt(o, "nBatch", 0, 0, 1 << 20);
    auto *worker = new ReferenceWorker(env, model(env), std::move(prompt), opts);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

void disposeAllModels() {
  std::set<AddonModel *> live;
  {
    std::lock_guard<std::mutex> lock(g_liveMutex);
    live = g_live;
  }
  for (AddonModel *m : live) m->dispose();
}

}  // namespace binding
