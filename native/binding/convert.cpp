#include "convert.h"

#include <cmath>

#include "errors.h"
#include "limits.h"

namespace binding {
namespace {

namespace limits = core::limits;

[[noreturn]] void bad(const std::string &message) {
  throw core::Error(core::codes::kInvalidArgument, message);
}

}  // namespace

std::string requireString(const Napi::CallbackInfo &info, size_t index, const char *name) {
  if (info.Length() <= index || !info[index].IsString()) bad(std::string(name) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

namespace {

// An Int32Array, or an array of integer token ids.
std::vector<llama_token> tokensFrom(const Napi::Value &v, const std::string &name) {
  std::vector<llama_token> out;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array arr = v.As<Napi::Int32Array>();
    out.assign(arr.Data(), arr.Data() + arr.ElementLength());
    return out;
  }
  if (!v.IsArray()) bad(name + " must be an Int32Array or an array of token ids");
  Napi::Array arr = v.As<Napi::Array>();
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsNumber()) bad(name + "[" + std::to_string(i) + "] is not a number");
    const double d = e.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < INT32_MIN || d > INT32_MAX) {
      bad(name + "[" + std::to_string(i) + "] is not an integer token id");
    }
    out.push_back(static_cast<llama_token>(d));
  }
  return out;
}

}  // namespace

std::vector<llama_token> requireTokens(const Napi::CallbackInfo &info, size_t index, const char *name) {
  if (info.Length() <= index) bad(std::string(name) + " must be an Int32Array or an array of token ids");
  return tokensFrom(info[index], name);
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

double optionalNumber(const Napi::Object &obj, const char *key, double fallback,
                      const core::limits::FloatRange &range) {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) bad(std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!range.contains(d)) bad(std::string(key) + " must be in " + core::limits::describe(range));
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
  if (v.IsUndefined() || v.IsNull()) return {};
  return tokensFrom(v, key);
}

namespace {

// Each struct's JS face is one list of fields, `field(name, member[, range or min, max])`, read by FromJs and written
// by ToJs, so a name is stated once. Ranges a core check shares are core/limits.h's. An absent field keeps the
// struct's default: defaults are stated in core only.
class FromJs {
 public:
  explicit FromJs(const Napi::Object &o) : o_(o) {}
  void operator()(const char *key, int32_t &v, int32_t min, int32_t max) const {
    v = optionalInt(o_, key, v, min, max);
  }
  void operator()(const char *key, int32_t &v, const limits::IntRange &range) const {
    v = optionalInt(o_, key, v, range.min, range.max);
  }
  void operator()(const char *key, float &v, const limits::FloatRange &range) const {
    v = static_cast<float>(optionalNumber(o_, key, v, range));
  }
  void operator()(const char *key, bool &v) const { v = optionalBool(o_, key, v); }
  void operator()(const char *key, std::string &v) const { v = optionalString(o_, key, v); }
  void operator()(const char *key, std::vector<std::string> &v) const { v = optionalStrings(o_, key, v); }

 private:
  const Napi::Object &o_;
};

class ToJs {
 public:
  explicit ToJs(Napi::Env env) : o_(Napi::Object::New(env)) {}
  template <typename T, typename... Range>
  void operator()(const char *key, const T &v, Range...) {
    o_.Set(key, v);
  }
  Napi::Object object() const { return o_; }

 private:
  Napi::Object o_;
};

constexpr auto loadFields = [](auto &o, auto &&field) {
  field("nGpuLayers", o.nGpuLayers, -1, 100000);
  field("useMmap", o.useMmap);
  field("useMlock", o.useMlock);
};

constexpr auto decoderFields = [](auto &o, auto &&field) {
  field("nSlots", o.nSlots, 1, limits::kMaxSeqs);
  field("nCtxPerSlot", o.nCtxPerSlot, 1, limits::kMaxCount);
  field("kvUnified", o.kvUnified);
  field("nCtxSlotMax", o.nCtxSlotMax, 0, limits::kMaxCount);
  field("nBatch", o.nBatch, 1, limits::kMaxBatch);
  field("nUbatch", o.nUbatch, 1, limits::kMaxBatch);
  field("nThreads", o.nThreads, 0, limits::kMaxThreads);
  field("nThreadsBatch", o.nThreadsBatch, 0, limits::kMaxThreads);
  field("flashAttn", o.flashAttn, -1, 1);
  field("kvType", o.kvType);
  field("kvTypeV", o.kvTypeV);
  field("offloadKv", o.offloadKv);
  field("swaFull", o.swaFull);
  field("ctxCheckpoints", o.ctxCheckpoints, 0, limits::kMaxCheckpoints);
  field("checkpointMinStep", o.checkpointMinStep, 0, limits::kMaxCount);
};

constexpr auto embedderFields = [](auto &o, auto &&field) {
  field("nSeqMax", o.nSeqMax, 1, limits::kMaxSeqs);
  field("nCtx", o.nCtx, 0, limits::kMaxCount);
  field("nBatch", o.nBatch, 1, limits::kMaxBatch);
  field("nThreads", o.nThreads, 0, limits::kMaxThreads);
  field("nThreadsBatch", o.nThreadsBatch, 0, limits::kMaxThreads);
  field("pooling", o.pooling, -1, 3);
};

constexpr auto chatTemplateFields = [](auto &o, auto &&field) {
  field("template", o.templateOverride);
  field("jinja", o.useJinja);
  field("reasoningFormat", o.reasoningFormat);
  field("defaultKwargs", o.defaultKwargs);
  field("enableThinking", o.enableThinking, -1, 1);
  field("prefillAssistant", o.prefillAssistant);
};

constexpr auto grammarFields = [](auto &g, auto &&field) {
  field("text", g.text);
  field("kind", g.kind, core::GrammarSpec::kUser, core::GrammarSpec::kToolCalls);
  field("lazy", g.lazy);
  field("generationPrompt", g.generationPrompt);
};

constexpr auto reasoningFields = [](auto &r, auto &&field) {
  field("tokens", r.tokens, limits::kReasoningBudget);
  field("start", r.start);
  field("ends", r.ends);
  field("generationPrompt", r.generationPrompt);
};

constexpr auto triggerFields = [](auto &t, auto &&field) {
  field("type", t.type, core::GrammarTrigger::kToken, core::GrammarTrigger::kPatternFull);
  field("value", t.value);
  field("token", t.token, LLAMA_TOKEN_NULL, INT32_MAX);
};

constexpr auto startFields = [](auto &p, auto &&field) {
  field("maxTokens", p.maxTokens, limits::kMaxTokens);
  field("renderSpecial", p.renderSpecial);
  field("reusePrefix", p.reusePrefix);
  field("nProbs", p.nProbs, limits::kNProbs);
  field("postSampling", p.postSampling);
  field("contextShift", p.contextShift);
  field("nKeep", p.nKeep, limits::kNKeep);
  field("resumeTokens", p.resumeTokens, limits::kResumeTokens);
};

constexpr auto samplingFields = [](auto &p, auto &&field) {
  field("temperature", p.temperature, limits::kTemperature);
  field("dynatempRange", p.dynatempRange, limits::kDynatempRange);
  field("dynatempExponent", p.dynatempExponent, limits::kDynatempExponent);
  field("topK", p.topK, limits::kTopK);
  field("topP", p.topP, limits::kTopP);
  field("minP", p.minP, limits::kMinP);
  field("typicalP", p.typicalP, limits::kTypicalP);
  field("topNSigma", p.topNSigma, limits::kTopNSigma);
  field("xtcProbability", p.xtcProbability, limits::kXtcProbability);
  field("xtcThreshold", p.xtcThreshold, limits::kXtcThreshold);
  field("minKeep", p.minKeep, limits::kMinKeep);
  field("repeatPenalty", p.repeatPenalty, limits::kRepeatPenalty);
  field("presencePenalty", p.presencePenalty, limits::kPresencePenalty);
  field("frequencyPenalty", p.frequencyPenalty, limits::kFrequencyPenalty);
  field("penaltyLastN", p.penaltyLastN, limits::kPenaltyLastN);
  field("dryMultiplier", p.dryMultiplier, limits::kDryMultiplier);
  field("dryBase", p.dryBase, limits::kDryBase);
  field("dryAllowedLength", p.dryAllowedLength, limits::kDryAllowedLength);
  field("dryPenaltyLastN", p.dryPenaltyLastN, limits::kDryPenaltyLastN);
  field("drySequenceBreakers", p.drySequenceBreakers);
  field("mirostat", p.mirostat, limits::kMirostat);
  field("mirostatTau", p.mirostatTau, limits::kMirostatTau);
  field("mirostatEta", p.mirostatEta, limits::kMirostatEta);
  field("samplers", p.samplers);
  field("ignoreEos", p.ignoreEos);
};

template <typename Struct, typename Fields>
Struct fromJs(const Napi::Object &o, Fields fields) {
  Struct out;
  fields(out, FromJs(o));
  return out;
}

template <typename Struct, typename Fields>
Napi::Object toJs(Napi::Env env, const Struct &in, Fields fields) {
  ToJs out(env);
  fields(in, out);
  return out.object();
}

}  // namespace

core::LoadOptions loadOptionsFrom(const Napi::Object &o) {
  return fromJs<core::LoadOptions>(o, loadFields);
}

Napi::Object loadOptionsToJs(Napi::Env env, const core::LoadOptions &opts) {
  return toJs(env, opts, loadFields);
}

core::DecoderOptions decoderOptionsFrom(const Napi::Object &o) {
  return fromJs<core::DecoderOptions>(o, decoderFields);
}

Napi::Object decoderOptionsToJs(Napi::Env env, const core::DecoderOptions &opts) {
  return toJs(env, opts, decoderFields);
}

core::EmbedderOptions embedderOptionsFrom(const Napi::Object &o) {
  return fromJs<core::EmbedderOptions>(o, embedderFields);
}

Napi::Object embedderOptionsToJs(Napi::Env env, const core::EmbedderOptions &opts) {
  return toJs(env, opts, embedderFields);
}

core::ChatTemplateOptions chatTemplateOptionsFrom(const Napi::Object &o) {
  return fromJs<core::ChatTemplateOptions>(o, chatTemplateFields);
}

Napi::Object chatTemplateOptionsToJs(Napi::Env env, const core::ChatTemplateOptions &opts) {
  return toJs(env, opts, chatTemplateFields);
}

core::StartParams startParamsFrom(const Napi::Object &o) {
  core::StartParams p = fromJs<core::StartParams>(o, startFields);
  p.sampling = samplingFrom(o);
  p.preservedTokens = optionalTokens(o, "preservedTokens");
  p.userStarts = optionalTokens(o, "userStarts");
  return p;
}

core::GrammarSpec grammarFrom(const Napi::Value &v) {
  core::GrammarSpec g;
  if (v.IsUndefined() || v.IsNull()) return g;
  if (!v.IsObject()) bad("grammar must be an object");
  Napi::Object o = v.As<Napi::Object>();
  grammarFields(g, FromJs(o));
  Napi::Value triggers = o.Get("triggers");
  if (!triggers.IsUndefined() && !triggers.IsNull()) {
    if (!triggers.IsArray()) bad("grammar.triggers must be an array");
    Napi::Array arr = triggers.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value e = arr.Get(i);
      if (!e.IsObject()) bad("grammar.triggers[" + std::to_string(i) + "] must be an object");
      core::GrammarTrigger trigger = fromJs<core::GrammarTrigger>(e.As<Napi::Object>(), triggerFields);
      if (trigger.type == core::GrammarTrigger::kToken && trigger.token < 0) bad("a token trigger needs a token");
      g.triggers.push_back(std::move(trigger));
    }
  }
  return g;
}

Napi::Object grammarToJs(Napi::Env env, const core::GrammarSpec &g) {
  Napi::Object o = toJs(env, g, grammarFields);
  Napi::Array triggers = Napi::Array::New(env, g.triggers.size());
  for (size_t i = 0; i < g.triggers.size(); ++i)
    triggers.Set(static_cast<uint32_t>(i), toJs(env, g.triggers[i], triggerFields));
  o.Set("triggers", triggers);
  return o;
}

core::SamplingParams samplingFrom(const Napi::Object &o) {
  core::SamplingParams p = fromJs<core::SamplingParams>(o, samplingFields);
  p.seed = static_cast<uint32_t>(optionalNumber(o, "seed", p.seed, {0.0, 4294967295.0}));
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
  Napi::Value reasoning = o.Get("reasoningBudget");
  if (!reasoning.IsUndefined() && !reasoning.IsNull()) {
    if (!reasoning.IsObject()) bad("reasoningBudget must be an object");
    p.reasoning = fromJs<core::ReasoningBudget>(reasoning.As<Napi::Object>(), reasoningFields);
  }
  return p;
}

}  // namespace binding
