#pragma once
// llama.cpp's chat layer (common/chat.h) behind plain types, used as llama-server uses it: the model's Jinja
// template rendered with tools, structured output and reasoning (common_chat_templates_apply), and the parser
// that turns generated text back into content, reasoning and tool calls (common_chat_parse). No Node here.
//
// Requests and parser configurations cross this boundary as JSON text in OpenAI's shapes, so the HTTP layer
// hands over what it validated without a second schema in C++.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model.h"
#include "slot_sampler.h"

namespace core {

struct ChatTemplateOptions {
  // Jinja source, or the name of one of llama.cpp's built-in templates (chatml, llama3, gemma, ...).
  // Empty: the model's own template, chatml when it has none (as llama-server).
  std::string templateOverride;
  // false: llama.cpp's legacy renderer (llama_chat_apply_template), which knows a fixed list of templates.
  bool useJinja = true;
  // Default for requests that name none: none | deepseek | deepseek-legacy | auto.
  std::string reasoningFormat = "deepseek";
  // Template variables for every request (chat_template_kwargs), JSON object text.
  std::string defaultKwargs = "{}";
  // -1 auto (on when the template supports it), 0 off, 1 on.
  int32_t enableThinking = -1;
  // A conversation that ends with an assistant message is continued, not answered (llama-server's default).
  bool prefillAssistant = true;
};

struct ChatTemplateInfo {
  std::string source;  // the template text in use
  bool fromModel = false;
  bool jinja = true;
  bool supportsThinking = false;
  std::map<std::string, bool> caps;  // supports_tools, supports_system_role, ...
  std::string exampleFormat;         // chat format of a plain conversation (common_chat_format_name)
  std::string toolsFormat;           // chat format when tools are given
};

// What one request renders to, and what its slot and its parser need.
struct ChatPrompt {
  std::string prompt;
  GrammarSpec grammar;                       // text empty: unconstrained
  std::vector<llama_token> preservedTokens;  // single-token specials the output keeps in its text (tool markers)
  std::vector<std::string> additionalStops;
  // Text that opens a user message in this format (common_chat_params' message delimiters), to find the messages
  // in the prompt's tokens.
  std::vector<std::string> userStarts;
  std::string format;        // common_chat_format_name
  std::string parserConfig;  // JSON for ChatParser
  bool thinking = false;     // the prompt leaves the model thinking
  // The format's reasoning block (common_chat_params' thinking tags; none: ends empty) and what the prompt already
  // wrote of the answer, for llama.cpp's reasoning budget (ReasoningBudget).
  std::string reasoningStart;
  std::vector<std::string> reasoningEnds;
  std::string generationPrompt;
};

class ChatTemplates {
 public:
  // Throws TEMPLATE_FAILED when the template does not parse.
  ChatTemplates(std::shared_ptr<Model> model, const ChatTemplateOptions &opts);
  ~ChatTemplates();
  ChatTemplates(const ChatTemplates &) = delete;
  ChatTemplates &operator=(const ChatTemplates &) = delete;

  // request: {messages, tools?, tool_choice?, parallel_tool_calls?, json_schema?, grammar?, add_generation_prompt?,
  // reasoning_format?, chat_template_kwargs?, reasoning_effort?, stream?}. Throws INVALID_ARGUMENT for a request
  // llama.cpp refuses, TEMPLATE_FAILED with the template's own message when rendering raises, and
  // TOOL_CHOICE_UNFORCEABLE when tool_choice is "required" and this template cannot force a call whose arguments
  // follow their schema (forced_calls.h); under "required" the grammar admits only calls (after any reasoning).
  // Safe to call from several threads at once.
  ChatPrompt apply(const std::string &requestJson) const;
  const ChatTemplateInfo &info() const { return info_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ChatTemplateInfo info_;
};

struct ChatToolCall {
  std::string id;
  std::string name;
  std::string arguments;
};

struct ChatMessageOut {
  std::string content;
  std::string reasoning;
  std::vector<ChatToolCall> toolCalls;
};

// One piece of a streamed message: text for content or reasoning, or a part of tool call `toolIndex`
// (its id and name come once, first; then its arguments in pieces), as OpenAI's stream deltas carry them.
struct ChatDelta {
  std::string content;
  std::string reasoning;
  int32_t toolIndex = -1;
  std::string toolId;
  std::string toolName;
  std::string toolArguments;
};

// Parses one request's output as it grows. Not thread-safe; one per request.
class ChatParser {
 public:
  // configJson: a ChatPrompt's parserConfig, optionally with "reasoning_format" and "stream" overrides.
  explicit ChatParser(const std::string &configJson);
  ~ChatParser();
  ChatParser(const ChatParser &) = delete;
  ChatParser &operator=(const ChatParser &) = delete;

  // Adds generated text; `final` parses the whole output as complete. Returns the deltas since the last call.
  std::vector<ChatDelta> push(const std::string &text, bool final);
  const ChatMessageOut &message() const { return message_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ChatMessageOut message_;
};

// The markers a template's format uses (llama.cpp's chat layer's preserved tokens, thinking tags, trigger words and
// extra stops), for a test model whose vocabulary should hold them as single tokens. No model needed.
std::vector<std::string> chatTemplateMarkers(const std::string &source);

// JSON Schema (text) to GBNF, as llama-server converts `json_schema`. Throws INVALID_ARGUMENT with the reason.
std::string jsonSchemaToGrammar(const std::string &schemaJson);

// Throws INVALID_ARGUMENT when llama.cpp cannot parse the grammar (GBNF with a `root` rule).
void checkGrammar(const Model &model, const std::string &grammar);

}  // namespace core
