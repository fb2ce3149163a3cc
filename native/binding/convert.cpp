#include "convert.h"

#include <cmath>

#include "errors.h"

namespace binding {
namespace {

[[noreturn]] void bad(const std::string &message) {
  throw core::Error(core::codes::kInvalidArgument, message);
}

}  // namespace

std::string requireString(const Napi::CallbackInfo &info, size_t index, const char *name) {
  if (info.Length() <= index || !info[index].IsString()) bad(std::string(name) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

std::vector<llama_token> requireTokens(const Napi::CallbackInfo &info, size_t index, const char *name) {
  if (info.Length() <= index) bad(std::string(name) + " must be an Int32Array or an array of token ids");
  Napi::Value v = info[index];
  std::vector<llama_token> out;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array arr = v.As<Napi::Int32Array>();
    out.assign(arr.Data(), arr.Data() + arr.ElementLength());
    return out;
  }
  if (!v.IsArray()) bad(std::string(name) + " must be an Int32Array or an array of token ids");
  Napi::Array arr = v.As<Napi::Array>();
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsNumber()) bad(std::string(name) + "[" + std::to_string(i) + "] is not a number");
    const double d = e.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < INT32_MIN || d > INT32_MAX) {
      bad(std::string(name) + "[" + std::to_string(i) + "] is not an integer token id");
    }
    out.push_back(static_cast<llama_token>(d));
  }
  return out;
}

Napi::Int32Array tokensToJs(Napi::Env env, const std::vector<llama_token> &tokens) {
  Napi::Int32Array arr = Napi::Int32Array::New(env, tokens.size());
  std::copy(tokens.begin(), tokens.end(), arr.Data());
  return arr;
}

Napi::Object optionalObject(const Napi::CallbackInfo &info, size_t index, const char *name) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return Napi::Object::New(info.Env());
  if (!info[index].IsObject()) bad(std::string(name) + " must be an object");
  return info[index].As<Napi::Object>();
}

int32_t optionalInt(const Napi::Object &obj, const char *key, int32_t fallback, int32_t min, int32_t max) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) bad(std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < min || d > max) {
    bad(std::string(key) + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return static_cast<int32_t>(d);
}

double optionalNumber(const Napi::Object &obj, const char *key, double fallback, double min, double max) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) bad(std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < min || d > max) {
    bad(std::string(key) + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return d;
}

bool optionalBool(const Napi::Object &obj, const char *key, bool fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) bad(std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

bool optionalBoolArg(const Napi::CallbackInfo &info, size_t index, const char *name, bool fallback) {
  if (info.Length() <= index || info[index].IsUndefined()) return fallback;
  if (!info[index].IsBoolean()) bad(std::string(name) + " must be a boolean");
  return info[index].As<Napi::Boolean>().Value();
}

std::string optionalString(const Napi::Object &obj, const char *key, const std::string &fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsString()) bad(std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<std::string> optionalStrings(const Napi::Object &obj, const char *key, std::vector<std::string> fallback) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsArray()) bad(std::string(key) + " must be an array of strings");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsString()) bad(std::string(key) + "[" + std::to_string(i) + "] must be a string");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

std::vector<llama_token> optionalTokens(const Napi::Object &obj, const char *key) {
  Napi::Value v = obj.Get(key);
  std::vector<llama_token> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array arr = v.As<Napi::Int32Array>();
    out.assign(arr.Data(), arr.Data() + arr.ElementLength());
    return out;
  }
  if (!v.IsArray()) bad(std::string(key) + " must be an array of token ids");
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsNumber()) bad(std::string(key) + "[" + std::to_string(i) + "] is not a number");
    out.push_back(e.As<Napi::Number>().Int32Value());
  }
  return out;
}

// Every field's fallback is the core struct's own default: defaults are stated there only.
core::LoadOptions loadOptionsFrom(const Napi::Object &o) {
  core::LoadOptions opts;
  opts.nGpuLayers = optionalInt(o, "nGpuLayers", opts.nGpuLayers, -1, 100000);
  opts.useMmap = optionalBool(o, "useMmap", opts.useMmap);
  opts.useMlock = optionalBool(o, "useMlock", opts.useMlock);
  return opts;
}

Napi::Object loadOptionsToJs(Napi::Env env, const core::LoadOptions &opts) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("nGpuLayers", opts.nGpuLayers);
  o.Set("useMmap", opts.useMmap);
  o.Set("useMlock", opts.useMlock);
  return o;
}

core::DecoderOptions decoderOptionsFrom(const Napi::Object &o) {
  core::DecoderOptions opts;
  opts.nSlots = optionalInt(o, "nSlots", opts.nSlots, 1, 4096);
  opts.nCtxPerSlot = optionalInt(o, "nCtxPerSlot", opts.nCtxPerSlot, 1, 1 << 24);
  opts.kvUnified = optionalBool(o, "kvUnified", opts.kvUnified);
  opts.nCtxSlotMax = optionalInt(o, "nCtxSlotMax", opts.nCtxSlotMax, 0, 1 << 24);
  opts.nBatch = optionalInt(o, "nBatch", opts.nBatch, 1, 1 << 20);
  opts.nUbatch = optionalInt(o, "nUbatch", opts.nUbatch, 1, 1 << 20);
  opts.nThreads = optionalInt(o, "nThreads", opts.nThreads, 0, 1024);
  opts.nThreadsBatch = optionalInt(o, "nThreadsBatch", opts.nThreadsBatch, 0, 1024);
  opts.flashAttn = optionalInt(o, "flashAttn", opts.flashAttn, -1, 1);
  opts.kvType = optionalString(o, "kvType", opts.kvType);
  opts.kvTypeV = optionalString(o, "kvTypeV", opts.kvTypeV);
  opts.offloadKv = optionalBool(o, "offloadKv", opts.offloadKv);
  opts.swaFull = optionalBool(o, "swaFull", opts.swaFull);
  return opts;
}

Napi::Object decoderOptionsToJs(Napi::Env env, const core::DecoderOptions &opts) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("nSlots", opts.nSlots);
  o.Set("nCtxPerSlot", opts.nCtxPerSlot);
  o.Set("kvUnified", opts.kvUnified);
  o.Set("nCtxSlotMax", opts.nCtxSlotMax);
  o.Set("nBatch", opts.nBatch);
  o.Set("nUbatch", opts.nUbatch);
  o.Set("nThreads", opts.nThreads);
  o.Set("nThreadsBatch", opts.nThreadsBatch);
  o.Set("flashAttn", opts.flashAttn);
  o.Set("kvType", opts.kvType);
  o.Set("kvTypeV", opts.kvTypeV);
  o.Set("offloadKv", opts.offloadKv);
  o.Set("swaFull", opts.swaFull);
  return o;
}

core::StartParams startParamsFrom(const Napi::Object &o) {
  core::StartParams p;
  p.maxTokens = optionalInt(o, "maxTokens", p.maxTokens, 1, 1 << 24);
  p.sampling = samplingFrom(o);
  p.preservedTokens = optionalTokens(o, "preservedTokens");
  p.renderSpecial = optionalBool(o, "renderSpecial", p.renderSpecial);
  p.reusePrefix = optionalBool(o, "reusePrefix", p.reusePrefix);
  p.nProbs = optionalInt(o, "nProbs", p.nProbs, 0, 1024);
  p.postSampling = optionalBool(o, "postSampling", p.postSampling);
  p.contextShift = optionalBool(o, "contextShift", p.contextShift);
  p.nKeep = optionalInt(o, "nKeep", p.nKeep, -1, 1 << 24);
  return p;
}

core::ChatTemplateOptions chatTemplateOptionsFrom(const Napi::Object &o) {
  core::ChatTemplateOptions opts;
  opts.templateOverride = optionalString(o, "template", opts.templateOverride);
  opts.useJinja = optionalBool(o, "jinja", opts.useJinja);
  opts.reasoningFormat = optionalString(o, "reasoningFormat", opts.reasoningFormat);
  opts.defaultKwargs = optionalString(o, "defaultKwargs", opts.defaultKwargs);
  opts.enableThinking = optionalInt(o, "enableThinking", opts.enableThinking, -1, 1);
  opts.prefillAssistant = optionalBool(o, "prefillAssistant", opts.prefillAssistant);
  return opts;
}

Napi::Object chatTemplateOptionsToJs(Napi::Env env, const core::ChatTemplateOptions &opts) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("template", opts.templateOverride);
  o.Set("jinja", opts.useJinja);
  o.Set("reasoningFormat", opts.reasoningFormat);
  o.Set("defaultKwargs", opts.defaultKwargs);
  o.Set("enableThinking", opts.enableThinking);
  o.Set("prefillAssistant", opts.prefillAssistant);
  return o;
}

core::GrammarSpec grammarFrom(const Napi::Value &v) {
  core::GrammarSpec g;
  if (v.IsUndefined() || v.IsNull()) return g;
  if (!v.IsObject()) bad("grammar must be an object");
  Napi::Object o = v.As<Napi::Object>();
  g.text = optionalString(o, "text", g.text);
  g.kind = optionalInt(o, "kind", g.kind, core::GrammarSpec::kUser, core::GrammarSpec::kToolCalls);
  g.lazy = optionalBool(o, "lazy", g.lazy);
  g.generationPrompt = optionalString(o, "generationPrompt", g.generationPrompt);
  Napi::Value triggers = o.Get("triggers");
  if (!triggers.IsUndefined() && !triggers.IsNull()) {
    if (!triggers.IsArray()) bad("grammar.triggers must be an array");
    Napi::Array arr = triggers.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value e = arr.Get(i);
      if (!e.IsObject()) bad("grammar.triggers[" + std::to_string(i) + "] must be an object");
      Napi::Object t = e.As<Napi::Object>();
      core::GrammarTrigger trigger;
      trigger.type =
          optionalInt(t, "type", trigger.type, core::GrammarTrigger::kToken, core::GrammarTrigger::kPatternFull);
      trigger.value = optionalString(t, "value", trigger.value);
      trigger.token = optionalInt(t, "token", trigger.token, LLAMA_TOKEN_NULL, INT32_MAX);
      if (trigger.type == core::GrammarTrigger::kToken && trigger.token < 0) bad("a token trigger needs a token");
      g.triggers.push_back(std::move(trigger));
    }
  }
  return g;
}

Napi::Object grammarToJs(Napi::Env env, const core::GrammarSpec &g) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("text", g.text);
  o.Set("kind", g.kind);
  o.Set("lazy", g.lazy);
  o.Set("generationPrompt", g.generationPrompt);
  Napi::Array triggers = Napi::Array::New(env, g.triggers.size());
  for (size_t i = 0; i < g.triggers.size(); ++i) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("type", g.triggers[i].type);
    t.Set("value", g.triggers[i].value);
    t.Set("token", g.triggers[i].token);
    triggers.Set(static_cast<uint32_t>(i), t);
  }
  o.Set("triggers", triggers);
  return o;
}

core::SamplingParams samplingFrom(const Napi::Object &o) {
  core::SamplingParams p;
  auto num = [&](const char *key, float fallback, double min, double max) {
    return static_cast<float>(optionalNumber(o, key, fallback, min, max));
  };
  p.temperature = num("temperature", p.temperature, 0.0, 1e6);
  p.dynatempRange = num("dynatempRange", p.dynatempRange, 0.0, 1e6);
  p.dynatempExponent = num("dynatempExponent", p.dynatempExponent, 0.0, 1e6);
  p.topK = optionalInt(o, "topK", p.topK, 0, 1 << 30);
  p.topP = num("topP", p.topP, 0.0, 1.0);
  p.minP = num("minP", p.minP, 0.0, 1.0);
  p.typicalP = num("typicalP", p.typicalP, 0.0, 1.0);
  p.topNSigma = num("topNSigma", p.topNSigma, -1e6, 1e6);
  p.xtcProbability = num("xtcProbability", p.xtcProbability, 0.0, 1.0);
  p.xtcThreshold = num("xtcThreshold", p.xtcThreshold, 0.0, 1.0);
  p.minKeep = optionalInt(o, "minKeep", p.minKeep, 0, 1 << 30);
  p.seed = static_cast<uint32_t>(optionalNumber(o, "seed", p.seed, 0.0, 4294967295.0));
  p.repeatPenalty = num("repeatPenalty", p.repeatPenalty, 0.0, 100.0);
  p.presencePenalty = num("presencePenalty", p.presencePenalty, -100.0, 100.0);
  p.frequencyPenalty = num("frequencyPenalty", p.frequencyPenalty, -100.0, 100.0);
  p.penaltyLastN = optionalInt(o, "penaltyLastN", p.penaltyLastN, -1, 1 << 24);
  p.dryMultiplier = num("dryMultiplier", p.dryMultiplier, 0.0, 1e6);
  p.dryBase = num("dryBase", p.dryBase, 0.0, 1e6);
  p.dryAllowedLength = optionalInt(o, "dryAllowedLength", p.dryAllowedLength, 0, 1 << 24);
  p.dryPenaltyLastN = optionalInt(o, "dryPenaltyLastN", p.dryPenaltyLastN, -1, 1 << 24);
  p.drySequenceBreakers = optionalStrings(o, "drySequenceBreakers", p.drySequenceBreakers);
  p.mirostat = optionalInt(o, "mirostat", p.mirostat, 0, 2);
  p.mirostatTau = num("mirostatTau", p.mirostatTau, 0.0, 1e6);
  p.mirostatEta = num("mirostatEta", p.mirostatEta, 0.0, 1e6);
  p.samplers = optionalStrings(o, "samplers", p.samplers);
  p.ignoreEos = optionalBool(o, "ignoreEos", p.ignoreEos);
  Napi::Value bias = o.Get("logitBias");
  if (!bias.IsUndefined() && !bias.IsNull()) {
    if (!bias.IsArray()) bad("logitBias must be an array of [token, bias]");
    Napi::Array arr = bias.As<Napi::Array>();
    for (uint32_t k = 0; k < arr.Length(); ++k) {
      Napi::Value e = arr.Get(k);
      if (!e.IsArray() || e.As<Napi::Array>().Length() != 2 || !e.As<Napi::Array>().Get(0u).IsNumber() ||
          !e.As<Napi::Array>().Get(1u).IsNumber()) {
        bad("logitBias[" + std::to_string(k) + "] must be [token, bias]");
      }
      Napi::Array pair = e.As<Napi::Array>();
      p.logitBias.push_back(
          {pair.Get(0u).As<Napi::Number>().Int32Value(), pair.Get(1u).As<Napi::Number>().FloatValue()});
    }
  }
  p.grammar = grammarFrom(o.Get("grammar"));
  return p;
}

}  // namespace binding
