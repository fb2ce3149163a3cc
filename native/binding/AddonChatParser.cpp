#include "AddonChatParser.h"

#include "convert.h"
#include "js_errors.h"

namespace binding {

Napi::Function AddonChatParser::Init(Napi::Env env) {
  return DefineClass(env, "ChatParser",
                     {
                         method<&AddonChatParser::Push>("push"),
                         method<&AddonChatParser::Message>("message"),
                     });
}

AddonChatParser::AddonChatParser(const Napi::CallbackInfo &info) : GuardedWrap<AddonChatParser>(info) {
  guard(info.Env(), [&]() { parser_ = std::make_unique<core::ChatParser>(requireString(info, 0, "config")); });
}

// push(text, final) -> [{ content?, reasoning?, toolIndex?, toolId?, toolName?, toolArguments? }]
Napi::Value AddonChatParser::Push(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const std::string text = requireString(info, 0, "text");
  const bool final = optionalBoolArg(info, 1, "final", false);
  const auto deltas = parser_->push(text, final);
  Napi::Array out = Napi::Array::New(env, deltas.size());
  for (size_t i = 0; i < deltas.size(); ++i) {
    const core::ChatDelta &d = deltas[i];
    Napi::Object o = Napi::Object::New(env);
    if (!d.content.empty()) o.Set("content", d.content);
    if (!d.reasoning.empty()) o.Set("reasoning", d.reasoning);
    if (d.toolIndex >= 0) {
      o.Set("toolIndex", d.toolIndex);
      if (!d.toolId.empty()) o.Set("toolId", d.toolId);
      if (!d.toolName.empty()) o.Set("toolName", d.toolName);
      if (!d.toolArguments.empty()) o.Set("toolArguments", d.toolArguments);
    }
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// message() -> { content, reasoning, toolCalls: [{ id, name, arguments }] }
Napi::Value AddonChatParser::Message(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const core::ChatMessageOut &m = parser_->message();
  Napi::Object o = Napi::Object::New(env);
  o.Set("content", m.content);
  o.Set("reasoning", m.reasoning);
  Napi::Array calls = Napi::Array::New(env, m.toolCalls.size());
  for (size_t i = 0; i < m.toolCalls.size(); ++i) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("id", m.toolCalls[i].id);
    c.Set("name", m.toolCalls[i].name);
    c.Set("arguments", m.toolCalls[i].arguments);
    calls.Set(static_cast<uint32_t>(i), c);
  }
  o.Set("toolCalls", calls);
  return o;
}

}  // namespace binding
