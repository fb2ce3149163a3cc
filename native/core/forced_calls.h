#pragma once
// tool_choice "required" (and a named tool, which the HTTP layer offers alone, required) as a grammar that admits
// nothing but the template's tool calls. llama.cpp's chat layer builds, under REQUIRED, a grammar that still lets
// free text come before the call (its content rule), so a model can write prose until max_tokens and never call.
// The grammar here is built from llama.cpp's own parser for the template (common_chat_params::parser, a PEG arena):
// its tool-call rules (the ones it marks as the lazy grammar's triggers, i.e. exactly the calls), preceded only by
// the reasoning block the template lets the model write (its thinking tags), and built into GBNF by llama.cpp's
// build_grammar. No tool-call syntax is written here.
#include <functional>
#include <string>
#include <vector>

#include "chat.h"
#include "llama.h"

namespace core {

struct ForcedCalls {
  std::string grammar;  // GBNF applied from its root to the generated text (after the generation prompt)
  std::string refusal;  // why this template cannot force a schema-valid call; grammar empty then
};

// params: what common_chat_templates_apply returned for a request with tools and tool_choice REQUIRED.
// tools: the request's tools in OpenAI's shape (common_chat_tools_to_json_oaicompat). thinking: enable_thinking.
// parallel: parallel_tool_calls (false: at most one call). tokensOf: a text's tokens, as llama.cpp's reasoning budget
// tokenizes the thinking tags it watches for (empty where they would not spell the text exactly): the grammar has the
// tags written as those tokens, never spelled in other pieces the budget would not see.
ForcedCalls forcedToolCalls(const common_chat_params &params, const common_json &tools, bool thinking, bool parallel,
                            const std::function<std::vector<llama_token>(const std::string &)> &tokensOf);

}  // namespace core
