#pragma once
// JS <-> C++ value conversion with argument checks that name the argument.
#include <napi.h>

#include <string>
#include <vector>

#include "batch_decoder.h"
#include "chat_templates.h"
#include "embedder.h"
#include "limits.h"
#include "llama.h"
#include "model.h"

namespace binding {

std::string requireString(const Napi::CallbackInfo &info, size_t index, const char *name);
std::vector<llama_token> requireTokens(const Napi::CallbackInfo &info, size_t index, const char *name);
Napi::Int32Array tokensToJs(Napi::Env env, const std::vector<llama_token> &tokens);

// Optional fields of an options object (absent or undefined: fallback).
Napi::Object optionalObject(const Napi::CallbackInfo &info, size_t index, const char *name);
int32_t optionalInt(const Napi::Object &obj, const char *key, int32_t fallback, int32_t min, int32_t max);
double optionalNumber(const Napi::Object &obj, const char *key, double fallback, const core::limits::FloatRange &range);
bool optionalBool(const Napi::Object &obj, const char *key, bool fallback);
bool optionalBoolArg(const Napi::CallbackInfo &info, size_t index, const char *name, bool fallback);
std::string optionalString(const Napi::Object &obj, const char *key, const std::string &fallback);
std::vector<std::string> optionalStrings(const Napi::Object &obj, const char *key, std::vector<std::string> fallback);
std::vector<llama_token> optionalTokens(const Napi::Object &obj, const char *key);

// Options objects under the core structs' field names in camelCase. An absent field takes the core struct's default
// (the one place defaults are stated); *ToJs writes every field, so defaults() can report them.
// { nGpuLayers, useMmap, useMlock }
core::LoadOptions loadOptionsFrom(const Napi::Object &o);
Napi::Object loadOptionsToJs(Napi::Env env, const core::LoadOptions &opts);
// { nSlots, nCtxPerSlot, kvUnified, nCtxSlotMax, nBatch, nUbatch, nThreads, nThreadsBatch, flashAttn, kvType,
//   kvTypeV, offloadKv, swaFull }
core::DecoderOptions decoderOptionsFrom(const Napi::Object &o);
Napi::Object decoderOptionsToJs(Napi::Env env, const core::DecoderOptions &opts);
// { nSeqMax, nCtx, nBatch, nThreads, nThreadsBatch, pooling }
core::EmbedderOptions embedderOptionsFrom(const Napi::Object &o);
Napi::Object embedderOptionsToJs(Napi::Env env, const core::EmbedderOptions &opts);
// A start() call's parameters, sampling included; the prompt is a separate argument.
core::StartParams startParamsFrom(const Napi::Object &o);
// { template, jinja, reasoningFormat, defaultKwargs, enableThinking, prefillAssistant }
core::ChatTemplateOptions chatTemplateOptionsFrom(const Napi::Object &o);
Napi::Object chatTemplateOptionsToJs(Napi::Env env, const core::ChatTemplateOptions &opts);
// Sampling parameters of a start() call (camelCase names of core::SamplingParams), grammar included.
core::SamplingParams samplingFrom(const Napi::Object &o);
// { text, kind, lazy, triggers: [{ type, value, token }], generationPrompt }
core::GrammarSpec grammarFrom(const Napi::Value &v);
Napi::Object grammarToJs(Napi::Env env, const core::GrammarSpec &g);

}  // namespace binding
