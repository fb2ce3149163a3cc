#include "AddonChatTemplates.h"

#include "AddonModel.h"
#include "convert.h"
#include "promise_job.h"

namespace binding {
namespace {

// { prompt, grammar, preservedTokens, additionalStops, userStarts, format, parserConfig, thinking, reasoningStart,
//   reasoningEnds, generationPrompt }
Napi::Value chatPromptToJs(Napi::Env env, const core::ChatPrompt &prompt) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("prompt", prompt.prompt);
  o.Set("grammar", prompt.grammar.text.empty() ? env.Null() : Napi::Value(grammarToJs(env, prompt.grammar)));
  o.Set("preservedTokens", tokensToJs(env, prompt.preservedTokens));
  Napi::Array stops = Napi::Array::New(env, prompt.additionalStops.size());
  for (size_t i = 0; i < prompt.additionalStops.size(); ++i)
    stops.Set(static_cast<uint32_t>(i), prompt.additionalStops[i]);
  o.Set("additionalStops", stops);
  Napi::Array users = Napi::Array::New(env, prompt.userStarts.size());
  for (size_t i = 0; i < prompt.userStarts.size(); ++i) users.Set(static_cast<uint32_t>(i), prompt.userStarts[i]);
  o.Set("userStarts", users);
  o.Set("format", prompt.format);
  o.Set("parserConfig", prompt.parserConfig);
  o.Set("thinking", prompt.thinking);
  o.Set("reasoningStart", prompt.reasoningStart);
  Napi::Array ends = Napi::Array::New(env, prompt.reasoningEnds.size());
  for (size_t i = 0; i < prompt.reasoningEnds.size(); ++i) ends.Set(static_cast<uint32_t>(i), prompt.reasoningEnds[i]);
  o.Set("reasoningEnds", ends);
  o.Set("generationPrompt", prompt.generationPrompt);
  return o;
}

}  // namespace

Napi::Function AddonChatTemplates::Init(Napi::Env env) {
  return DefineClass(env, "ChatTemplates",
                     {
                         method<&AddonChatTemplates::Apply>("apply"),
                         method<&AddonChatTemplates::Info>("info"),
                         method<&AddonChatTemplates::Dispose>("dispose"),
                     });
}

AddonChatTemplates::AddonChatTemplates(const Napi::CallbackInfo &info) : GuardedWrap<AddonChatTemplates>(info) {
  Napi::Env env = info.Env();
  guard(env, [&]() {
    std::shared_ptr<core::Model> model = AddonModel::modelArg(info, 0);
    const core::ChatTemplateOptions opts = chatTemplateOptionsFrom(optionalObject(info, 1, "options"));
    templates_ = std::make_shared<const core::ChatTemplates>(std::move(model), opts);
  });
}

std::shared_ptr<const core::ChatTemplates> AddonChatTemplates::templates(Napi::Env env) const {
  if (!templates_) throw makeError(env, core::codes::kDisposed, "the chat templates have been disposed");
  return templates_;
}

// apply(requestJson) -> Promise<{ prompt, grammar, preservedTokens, additionalStops, format, parserConfig, thinking }>
Napi::Value AddonChatTemplates::Apply(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  return queueOnPool(
      env, [t = templates(env), request = requireString(info, 0, "request")]() { return t->apply(request); },
      [](Napi::Env e, core::ChatPrompt &prompt) { return chatPromptToJs(e, prompt); });
}

Napi::Value AddonChatTemplates::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
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
}

Napi::Value AddonChatTemplates::Dispose(const Napi::CallbackInfo &info) {
  templates_.reset();
  return info.Env().Undefined();
}

}  // namespace binding
