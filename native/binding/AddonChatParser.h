#pragma once
// JS class ChatParser: one request's output parsed as it grows into content, reasoning and tool-call deltas.
// push() is synchronous: it parses text already generated, a few microseconds per token (docs/PERFORMANCE.md).
#include <napi.h>

#include <memory>

#include "chat_templates.h"
#include "js_errors.h"

namespace binding {

class AddonChatParser : public GuardedWrap<AddonChatParser> {
 public:
  static Napi::Function Init(Napi::Env env);
  // new ChatParser(parserConfigJson)
  explicit AddonChatParser(const Napi::CallbackInfo &info);

 private:
  Napi::Value Push(const Napi::CallbackInfo &info);
  Napi::Value Message(const Napi::CallbackInfo &info);

  std::unique_ptr<core::ChatParser> parser_;
};

}  // namespace binding
