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

core::LoadOptions loadOptionsFrom(const Napi::Object &o) {
  core::LoadOptions opts;
  opts.nGpuLayers = optionalInt(o, "nGpuLayers", -1, -1, 100000);
  opts.useMmap = optionalBool(o, "useMmap", true);
  opts.useMlock = optionalBool(o, "useMlock", false);
  return opts;
}

core::DecoderOptions decoderOptionsFrom(const Napi::Object &o) {
  core::DecoderOptions opts;
  opts.nSlots = optionalInt(o, "nSlots", 1, 1, 4096);
  opts.nCtxPerSlot = optionalInt(o, "nCtxPerSlot", 4096, 1, 1 << 24);
  opts.kvUnified = optionalBool(o, "kvUnified", false);
  opts.nBatch = optionalInt(o, "nBatch", 512, 1, 1 << 20);
  opts.nUbatch = optionalInt(o, "nUbatch", 512, 1, 1 << 20);
  opts.nThreads = optionalInt(o, "nThreads", 0, 0, 1024);
  opts.nThreadsBatch = optionalInt(o, "nThreadsBatch", 0, 0, 1024);
  opts.flashAttn = optionalInt(o, "flashAttn", -1, -1, 1);
  Napi::Value kv = o.Get("kvType");
  if (!kv.IsUndefined()) {
    if (!kv.IsString()) bad("kvType must be a string");
    opts.kvType = kv.As<Napi::String>().Utf8Value();
  }
  opts.swaFull = optionalBool(o, "swaFull", false);
  return opts;
}

}  // namespace binding
