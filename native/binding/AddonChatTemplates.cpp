#include "AddonChatTemplates.h"

#include "AddonModel.h"
#include "convert.h"
#include "js_errors.h"

namespace binding {
namespace {

class ApplyWorker : public PromiseWorker {
 public:
  ApplyWorker(Napi::Env env, std::shared_ptr<const core::ChatTemplates> templates, std::string request)
      : PromiseWorker(env), templates_(std::move(templates)), request_(std::move(request)) {}

 protected:
  void Run() override { prompt_ = templates_->apply(request_); }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("prompt", prompt_.prompt);
    o.Set("grammar", prompt_.grammar.text.empty() ? env.Null() : Napi::Value(grammarToJs(env, prompt_.grammar)));
    o.Set("preservedTokens", tokensToJs(env, prompt_.preservedTokens));
    Napi::Array stops = Napi::Array::New(env, prompt_.additionalStops.size());
    for (size_t i = 0; i < prompt_.additionalStops.size(); ++i)
      stops.Set(static_cast<uint32_t>(i), prompt_.additionalStops[i]);
    o.Set("additionalStops", stops);
    o.Set("format", prompt_.format);
    o.Set("parserConfig", prompt_.parserConfig);
    o.Set("thinking", prompt_.thinking);
    return o;
  }

 private:
  std::shared_ptr<const core::ChatTemplates> templates_;
  std::string request_;
  core::ChatPrompt prompt_;
};

}  // namespace

Napi::Function AddonChatTemplates::Init(Napi::Env env) {
  return DefineClass(env, "ChatTemplates",
                     {
                         InstanceMethod("apply", &AddonChatTemplates::Apply),
                         InstanceMethod("info", &AddonChatTemplates::Info),
                         InstanceMethod("dispose", &AddonChatTemplates::Dispose),
                     });
}

AddonChatTemplates::AddonChatTemplates(const Napi::CallbackInfo &info) : Napi::ObjectWrap<AddonChatTemplates>(info) {
  Napi::Env env = info.Env();
  guard(env, [&]() {
    AddonModel *model = info.Length() > 0 ? AddonModel::from(env, info[0]) : nullptr;
    if (model == nullptr) throw core::Error(core::codes::kInvalidArgument, "model must be a Model");
    Napi::Object o = optionalObject(info, 1, "options");
    core::ChatTemplateOptions opts;
    opts.templateOverride = optionalString(o, "template", "");
    opts.useJinja = optionalBool(o, "jinja", true);
    opts.reasoningFormat = optionalString(o, "reasoningFormat", opts.reasoningFormat);
    opts.defaultKwargs = optionalString(o, "defaultKwargs", opts.defaultKwargs);
    opts.enableThinking = optionalInt(o, "enableThinking", -1, -1, 1);
    opts.prefillAssistant = optionalBool(o, "prefillAssistant", true);
    templates_ = std::make_shared<const core::ChatTemplates>(model->model(env), opts);
  });
}

std::shared_ptr<const core::ChatTemplates> AddonChatTemplates::templates(Napi::Env env) const {
  if (!templates_) throw makeError(env, core::codes::kDisposed, "the chat templates have been disposed");
  return templates_;
}

// apply(requestJson) -> Promise<{ prompt, grammar, preservedTokens, additionalStops, format, parserConfig, thinking }>
Napi::Value AddonChatTemplates::Apply(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto *worker = new ApplyWorker(env, templates(env), requireString(info, 0, "request"));
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value AddonChatTemplates::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const core::ChatTemplateInfo &i = templates(env)->info();
    Napi::Object o = Napi::Object::New(env);
    o.Set("source", i.source);
    o.Set("fromModel", i.fromModel);
    o.Set("jinja", i.jinja);
    o.Set("supportsThinking", i.supportsThinking);
    o.Set("exampleFormat", i.exampleFormat);
    o.Set("toolsFormat", i.toolsFormat);
    Napi::Object caps = Napi::Object::New(env);
    for (const auto &[k, v] : i.caps) caps.Set(k, v);
    o.Set("caps", caps);
    return o;
  });
}

Napi::Value AddonChatTemplates::Dispose(const Napi::CallbackInfo &info) {
  templates_.reset();
  return info.Env().Undefined();
}

}  // namespace binding
