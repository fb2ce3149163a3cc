// Module entry: classes, free functions, and the environment cleanup hook.
#include <napi.h>

#include <thread>

#include "AddonBatchDecoder.h"
#include "AddonChatParser.h"
#include "AddonChatTemplates.h"
#include "AddonModel.h"
#include "backend.h"
#include "build-info.h"
#include "chat_templates.h"
#include "convert.h"
#include "js_errors.h"
#include "llama.h"
#include "memory_probe.h"
#include "quantize.h"

namespace binding {

void disposeAllModels();

namespace {

class QuantizeWorker : public PromiseWorker {
 public:
  QuantizeWorker(Napi::Env env, std::string in, std::string out, std::string type, int threads)
      : PromiseWorker(env), in_(std::move(in)), out_(std::move(out)), type_(std::move(type)), threads_(threads) {}

 protected:
  void Run() override { core::quantizeModel(in_, out_, type_, threads_); }

 private:
  std::string in_, out_, type_;
  int threads_;
};

Napi::Value Quantize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    std::string in = requireString(info, 0, "input");
    std::string out = requireString(info, 1, "output");
    std::string type = requireString(info, 2, "type");
    Napi::Object o = optionalObject(info, 3, "options");
    const int threads = optionalInt(o, "threads", 0, 0, 1024);
    auto *worker = new QuantizeWorker(env, std::move(in), std::move(out), std::move(type), threads);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

class ProbeMemoryWorker : public PromiseWorker {
 public:
  ProbeMemoryWorker(Napi::Env env, std::string path, core::LoadOptions load, core::DecoderOptions decoder)
      : PromiseWorker(env), path_(std::move(path)), load_(load), decoder_(std::move(decoder)) {}

 protected:
  void Run() override { log_ = core::probeMemoryLog(path_, load_, decoder_); }
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, log_); }

 private:
  std::string path_;
  core::LoadOptions load_;
  core::DecoderOptions decoder_;
  std::string log_;
};

// probeMemory(path, loadOptions, decoderOptions) -> Promise<string>: llama.cpp's log of a load and a
// context creation, where it reports every buffer it allocates.
Napi::Value ProbeMemory(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    std::string path = requireString(info, 0, "path");
    const core::LoadOptions load = loadOptionsFrom(optionalObject(info, 1, "loadOptions"));
    const core::DecoderOptions decoder = decoderOptionsFrom(optionalObject(info, 2, "decoderOptions"));
    auto *worker = new ProbeMemoryWorker(env, std::move(path), load, decoder);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

class GrammarWorker : public PromiseWorker {
 public:
  // From a JSON schema (schemaJson non-empty) or a GBNF grammar to check (model set).
  GrammarWorker(Napi::Env env, std::shared_ptr<core::Model> model, std::string input)
      : PromiseWorker(env), model_(std::move(model)), input_(std::move(input)) {}

 protected:
  void Run() override {
    if (model_) {
      core::checkGrammar(*model_, input_);
      grammar_ = input_;
    } else {
      grammar_ = core::jsonSchemaToGrammar(input_);
    }
  }
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, grammar_); }

 private:
  std::shared_ptr<core::Model> model_;
  std::string input_;
  std::string grammar_;
};

// jsonSchemaToGrammar(schemaJson) -> Promise<string>: llama.cpp's conversion, off the main thread.
Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto *worker = new GrammarWorker(env, nullptr, requireString(info, 0, "schema"));
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

// checkGrammar(model, gbnf) -> Promise<string>: resolves with the grammar when llama.cpp parses it.
Napi::Value CheckGrammar(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    AddonModel *model = info.Length() > 0 ? AddonModel::from(env, info[0]) : nullptr;
    if (model == nullptr) throw core::Error(core::codes::kInvalidArgument, "model must be a Model");
    auto *worker = new GrammarWorker(env, model->model(env), requireString(info, 1, "grammar"));
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value SystemInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  core::ensureBackend();
  Napi::Object o = Napi::Object::New(env);
  o.Set("llamaSystemInfo", llama_print_system_info());
  // llama-server's "b<build>-<commit>" (its /props build_info and its system_fingerprint).
  o.Set("buildInfo", llama_build_info());
  o.Set("commit", llama_commit());
  o.Set("supportsGpuOffload", llama_supports_gpu_offload());
  o.Set("supportsMmap", llama_supports_mmap());
  o.Set("supportsMlock", llama_supports_mlock());
  o.Set("maxDevices", Napi::Number::New(env, static_cast<double>(llama_max_devices())));
  o.Set("maxParallelSequences", Napi::Number::New(env, static_cast<double>(llama_max_parallel_sequences())));
  o.Set("hardwareConcurrency", Napi::Number::New(env, std::thread::hardware_concurrency()));
  Napi::Array devices = Napi::Array::New(env);
  const auto list = core::listDevices();
  for (size_t k = 0; k < list.size(); ++k) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", list[k].name);
    d.Set("description", list[k].description);
    d.Set("type", list[k].type);
    d.Set("memoryFreeBytes", Napi::Number::New(env, static_cast<double>(list[k].memoryFree)));
    d.Set("memoryTotalBytes", Napi::Number::New(env, static_cast<double>(list[k].memoryTotal)));
    devices.Set(static_cast<uint32_t>(k), d);
  }
  o.Set("devices", devices);
  o.Set("backendLog", core::backendInitLog());
  Napi::Array types = Napi::Array::New(env);
  const auto names = core::quantTypeNames();
  for (size_t k = 0; k < names.size(); ++k) types.Set(static_cast<uint32_t>(k), names[k]);
  o.Set("quantTypes", types);
  return o;
}

Napi::Value SetLogLevel(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const std::string name = requireString(info, 0, "level");
    const auto none = static_cast<core::LogLevel>(-1);
    const core::LogLevel level = core::parseLogLevel(name, none);
    if (level == none) throw makeError(env, core::codes::kInvalidArgument, "level must be none|error|warn|info|debug");
    core::setLogLevel(level);
    return env.Undefined();
  });
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  core::ensureBackend();
  exports.Set("Model", AddonModel::Init(env));
  exports.Set("BatchDecoder", AddonBatchDecoder::Init(env));
  exports.Set("ChatTemplates", AddonChatTemplates::Init(env));
  exports.Set("ChatParser", AddonChatParser::Init(env));
  exports.Set("jsonSchemaToGrammar", Napi::Function::New(env, JsonSchemaToGrammar, "jsonSchemaToGrammar"));
  exports.Set("checkGrammar", Napi::Function::New(env, CheckGrammar, "checkGrammar"));
  exports.Set("quantize", Napi::Function::New(env, Quantize, "quantize"));
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
  exports.Set("probeMemory", Napi::Function::New(env, ProbeMemory, "probeMemory"));
  exports.Set("setLogLevel", Napi::Function::New(env, SetLogLevel, "setLogLevel"));
  env.AddCleanupHook([]() { disposeAllModels(); });
  return exports;
}

}  // namespace binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return binding::Init(env, exports);
}

NODE_API_MODULE(llama_addon, InitAddon)
