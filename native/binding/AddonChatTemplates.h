#pragma once
// JS class ChatTemplates: a model's chat template on llama.cpp's chat layer. apply() renders a request (messages,
// tools, structured output, reasoning) on a worker thread and resolves with the prompt and its grammar.
#include <napi.h>

#include <memory>

#include "chat_templates.h"
#include "js_errors.h"

namespace binding {

class AddonChatTemplates : public GuardedWrap<AddonChatTemplates> {
 public:
  static Napi::Function Init(Napi::Env env);
  // new ChatTemplates(model, { template?, jinja?, reasoningFormat?, defaultKwargs?, enableThinking? })
  explicit AddonChatTemplates(const Napi::CallbackInfo &info);

 private:
  std::shared_ptr<const core::ChatTemplates> templates(Napi::Env env) const;
  Napi::Value Apply(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Dispose(const Napi::CallbackInfo &info);

  // Shared with running apply() workers, so dispose() during one is safe.
  std::shared_ptr<const core::ChatTemplates> templates_;
};

}  // namespace binding
