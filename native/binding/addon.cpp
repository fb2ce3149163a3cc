// Module entry: classes, free functions, and the environment's addon data (with its cleanup hook).
#include <napi.h>

#include <thread>

#include "AddonBatchDecoder.h"
#include "AddonChatParser.h"
#include "AddonChatTemplates.h"
#include "AddonEmbedder.h"
#include "AddonModel.h"
#include "addon_data.h"
#include "backend.h"
#include "build-info.h"
#include "chat_templates.h"
#include "convert.h"
#include "js_errors.h"
#include "limits.h"
#include "llama.h"
#include "memory_probe.h"
#include "promise_job.h"
#include "quantize.h"

namespace binding {
namespace {

// quantize(input, output, type, { threads }) -> Promise<void>
Napi::Value Quantize(const Napi::CallbackInfo &info) {
  std::string in = requireString(info, 0, "input");
  std::string out = requireString(info, 1, "output");
  std::string type = requireString(info, 2, "type");
  const int threads = optionalInt(optionalObject(info, 3, "options"), "threads", 0, 0, core::limits::kMaxThreads);
  return queueOnPool(info.Env(), [in = std::move(in), out = std::move(out), type = std::move(type), threads]() {
    core::quantizeModel(in, out, type, threads);
  });
}

// probeMemory(path, loadOptions, decoderOptions) -> Promise<string>: llama.cpp's log of a load and a
// context creation, where it reports every buffer it allocates.
Napi::Value ProbeMemory(const Napi::CallbackInfo &info) {
  std::string path = requireString(info, 0, "path");
  const core::LoadOptions load = loadOptionsFrom(optionalObject(info, 1, "loadOptions"));
  const core::DecoderOptions decoder = decoderOptionsFrom(optionalObject(info, 2, "decoderOptions"));
  return queueOnPool(
      info.Env(), [path = std::move(path), load, decoder]() { return core::probeMemoryLog(path, load, decoder); },
      [](Napi::Env env, std::string &log) -> Napi::Value { return Napi::String::New(env, log); });
}

Napi::Value resolveString(Napi::Env env, std::string &s) {
  return Napi::String::New(env, s);
}

// jsonSchemaToGrammar(schemaJson) -> Promise<string>: llama.cpp's conversion, off the main thread.
Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo &info) {
  return queueOnPool(
      info.Env(), [schema = requireString(info, 0, "schema")]() { return core::jsonSchemaToGrammar(schema); },
      resolveString);
}

// chatTemplateMarkers(source) -> Promise<string[]>: the markers llama.cpp's chat layer names for a template.
Napi::Value ChatTemplateMarkers(const Napi::CallbackInfo &info) {
  return queueOnPool(
      info.Env(), [source = requireString(info, 0, "source")]() { return core::chatTemplateMarkers(source); },
      [](Napi::Env env, std::vector<std::string> &markers) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, markers.size());
        for (size_t i = 0; i < markers.size(); ++i) out.Set(static_cast<uint32_t>(i), markers[i]);
        return out;
      });
}

// checkGrammar(model, gbnf) -> Promise<string>: resolves with the grammar when llama.cpp parses it.
Napi::Value CheckGrammar(const Napi::CallbackInfo &info) {
  return queueOnPool(
      info.Env(),
      [m = AddonModel::modelArg(info, 0), grammar = requireString(info, 1, "grammar")]() {
        core::checkGrammar(*m, grammar);
        return grammar;
      },
      resolveString);
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
  const std::string name = requireString(info, 0, "level");
  const auto none = static_cast<core::LogLevel>(-1);
  const core::LogLevel level = core::parseLogLevel(name, none);
  if (level == none) throw makeError(env, core::codes::kInvalidArgument, "level must be none|error|warn|info|debug");
  core::setLogLevel(level);
  return env.Undefined();
}

// defaults() -> { load, decoder, chatTemplates, embedder }: the core structs' defaults, which the TypeScript layer uses
// instead of stating them again.
Napi::Value Defaults(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("load", loadOptionsToJs(env, core::LoadOptions{}));
  o.Set("decoder", decoderOptionsToJs(env, core::DecoderOptions{}));
  o.Set("chatTemplates", chatTemplateOptionsToJs(env, core::ChatTemplateOptions{}));
  o.Set("embedder", embedderOptionsToJs(env, core::EmbedderOptions{}));
  return o;
}

template <Napi::Value (*Fn)(const Napi::CallbackInfo &)>
void exportFunction(Napi::Env env, Napi::Object exports, const char *name) {
  exports.Set(name, Napi::Function::New(env, guarded<Fn>, name));
}

}  // namespace

// Runs once per environment: the main thread and each worker_thread that loads the addon.
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  return guard(env, [&]() {
    core::ensureBackend();
    initAddonData(env);
    exports.Set("Model", AddonModel::Init(env));
    exports.Set("BatchDecoder", AddonBatchDecoder::Init(env));
    exports.Set("ChatTemplates", AddonChatTemplates::Init(env));
    exports.Set("ChatParser", AddonChatParser::Init(env));
    exports.Set("Embedder", AddonEmbedder::Init(env));
    exportFunction<JsonSchemaToGrammar>(env, exports, "jsonSchemaToGrammar");
    exportFunction<CheckGrammar>(env, exports, "checkGrammar");
    exportFunction<ChatTemplateMarkers>(env, exports, "chatTemplateMarkers");
    exportFunction<Quantize>(env, exports, "quantize");
    exportFunction<SystemInfo>(env, exports, "systemInfo");
    exportFunction<ProbeMemory>(env, exports, "probeMemory");
    exportFunction<SetLogLevel>(env, exports, "setLogLevel");
    exportFunction<Defaults>(env, exports, "defaults");
    return exports;
  });
}

}  // namespace binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return binding::Init(env, exports);
}

NODE_API_MODULE(llama_addon, InitAddon)
