#include "AddonEmbedder.h"

#include <cstring>

#include "AddonModel.h"
#include "convert.h"
#include "promise_job.h"

namespace binding {
namespace {

// inputs: an array of Int32Array (or arrays of numbers), one per input.
std::vector<std::vector<llama_token>> inputsArg(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsArray())
    throw core::Error(core::codes::kInvalidArgument, "inputs must be an array of token arrays");
  const Napi::Array list = info[0].As<Napi::Array>();
  std::vector<std::vector<llama_token>> out;
  out.reserve(list.Length());
  for (uint32_t k = 0; k < list.Length(); ++k) {
    const Napi::Value v = list.Get(k);
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      const Napi::Int32Array a = v.As<Napi::Int32Array>();
      out.emplace_back(a.Data(), a.Data() + a.ElementLength());
    } else if (v.IsArray()) {
      const Napi::Array a = v.As<Napi::Array>();
      std::vector<llama_token> tokens(a.Length());
      for (uint32_t i = 0; i < a.Length(); ++i) {
        const Napi::Value t = a.Get(i);
        if (!t.IsNumber()) throw core::Error(core::codes::kInvalidArgument, "a token must be a number");
        tokens[i] = t.As<Napi::Number>().Int32Value();
      }
      out.push_back(std::move(tokens));
    } else {
      throw core::Error(core::codes::kInvalidArgument,
                        "inputs[" + std::to_string(k) + "] must be an Int32Array or an array of tokens");
    }
  }
  return out;
}

Napi::Object resultToJs(Napi::Env env, const core::EmbedResult &r, int32_t nEmbd) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Array list = Napi::Array::New(env, r.embeddings.size());
  for (size_t k = 0; k < r.embeddings.size(); ++k) {
    const core::Embedding &e = r.embeddings[k];
    Napi::Float32Array values = Napi::Float32Array::New(env, e.values.size());
    std::memcpy(values.Data(), e.values.data(), e.values.size() * sizeof(float));
    Napi::Object item = Napi::Object::New(env);
    item.Set("values", values);
    item.Set("rows", e.rows);
    item.Set("tokens", e.tokens);
    list.Set(static_cast<uint32_t>(k), item);
  }
  o.Set("embeddings", list);
  o.Set("nEmbd", nEmbd);
  o.Set("decodes", r.decodes);
  o.Set("decodeMicros", Napi::Number::New(env, static_cast<double>(r.decodeMicros)));
  return o;
}

}  // namespace

Napi::Function AddonEmbedder::Init(Napi::Env env) {
  return DefineClass(env, "Embedder",
                     {
                         method<&AddonEmbedder::Embed>("embed"),
                         method<&AddonEmbedder::Info>("info"),
                         method<&AddonEmbedder::Dispose>("dispose"),
                         getter<&AddonEmbedder::GetDisposed>("disposed"),
                     });
}

// new Embedder(model, options): synchronous, like the decoder's context (quick next to the model's load).
AddonEmbedder::AddonEmbedder(const Napi::CallbackInfo &info) : GuardedWrap<AddonEmbedder>(info) {
  Napi::Env env = info.Env();
  guard(env, [&]() {
    std::shared_ptr<core::Model> model = AddonModel::modelArg(info, 0);
    const core::EmbedderOptions opts = embedderOptionsFrom(optionalObject(info, 1, "options"));
    embedder_ = std::make_shared<core::Embedder>(std::move(model), opts);
    thread_ = std::make_unique<core::SerialExecutor>();
  });
}

std::shared_ptr<core::Embedder> AddonEmbedder::embedder(Napi::Env env) const {
  if (!embedder_) throw makeError(env, core::codes::kDisposed, "the embedder has been disposed");
  return embedder_;
}

// embed(inputs) -> Promise<{ embeddings: [{ values, rows, tokens }], nEmbd, decodes, decodeMicros }>
Napi::Value AddonEmbedder::Embed(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto e = embedder(env);
  auto inputs = inputsArg(info);
  const int32_t nEmbd = e->nEmbd();
  return queueOnThread(
      env, *thread_, [e = std::move(e), inputs = std::move(inputs)]() { return e->embed(inputs); },
      [nEmbd](Napi::Env en, core::EmbedResult &r) -> Napi::Value { return resultToJs(en, r, nEmbd); });
}

Napi::Value AddonEmbedder::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto e = embedder(env);
  Napi::Object out = embedderOptionsToJs(env, e->options());
  out.Set("pooling", e->pooling());  // what the context uses: the model's when the options said -1
  out.Set("nEmbd", e->nEmbd());
  out.Set("maxInputTokens", e->maxInputTokens());
  return out;
}

Napi::Value AddonEmbedder::Dispose(const Napi::CallbackInfo &info) {
  embedder_.reset();
  thread_.reset();  // queued calls still run and settle; then the thread exits
  return info.Env().Undefined();
}

Napi::Value AddonEmbedder::GetDisposed(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), !embedder_);
}

}  // namespace binding
