#include "chat_templates.h"

#include <algorithm>
#include <random>
#include <set>
#include <stdexcept>

// llama.cpp's common library.
#include "backend.h"
#include "chat.h"
#include "errors.h"
#include "forced_calls.h"
#include "json-schema-to-grammar.h"

namespace core {
namespace {

[[noreturn]] void invalid(const std::string &message) {
  throw Error(codes::kInvalidArgument, message);
}

common_json parseJson(const std::string &text, const char *what) {
  try {
    return common_json::parse(text);
  } catch (const std::exception &e) {
    invalid(std::string(what) + " is not valid JSON: " + e.what());
  }
}

bool isBuiltinName(const std::string &name) {
  std::vector<const char *> names(static_cast<size_t>(llama_chat_builtin_templates(nullptr, 0)));
  llama_chat_builtin_templates(names.data(), names.size());
  return std::any_of(names.begin(), names.end(), [&](const char *n) { return name == n; });
}

std::map<std::string, std::string> kwargsFrom(const common_json &obj, const char *what) {
  if (!obj.is_object()) invalid(std::string(what) + " must be an object");
  std::map<std::string, std::string> out;
  for (const auto &item : obj.items()) out[item.key()] = item.value().dump();
  return out;
}

// llama.cpp wraps what a template raised in its own context ("While executing ... Error: Jinja Exception: <msg>"):
// the client gets the template's message, as a template error.
[[noreturn]] void refuse(const std::exception &e) {
  const std::string what = e.what();
  for (const char *marker : {"Jinja Exception: ", "\nError: "}) {
    const size_t at = what.rfind(marker);
    if (at != std::string::npos) {
      std::string msg = what.substr(at + std::char_traits<char>::length(marker));
      if (msg.rfind("Jinja Exception: ", 0) == 0) msg.erase(0, 17);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      throw Error(codes::kTemplateFailed, msg);
    }
  }
  if (dynamic_cast<const std::invalid_argument *>(&e) != nullptr) invalid(what);
  throw Error(codes::kTemplateFailed, what);
}

std::string randomCallId() {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[pick(rng)];
  return id;
}

std::vector<llama_token> tokenizeSpecial(const llama_vocab *vocab, const std::string &text) {
  std::vector<llama_token> out(text.size() + 4);
  int32_t n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                             static_cast<int32_t>(out.size()), false, true);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                       static_cast<int32_t>(out.size()), false, true);
  }
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

std::string tokenPiece(const llama_vocab *vocab, llama_token id) {
  char buf[256];
  const int32_t n = llama_token_to_piece(vocab, id, buf, sizeof(buf), 0, true);
  if (n >= 0) return std::string(buf, static_cast<size_t>(n));
  std::string piece(static_cast<size_t>(-n), '\0');
  llama_token_to_piece(vocab, id, piece.data(), -n, 0, true);
  return piece;
}

}  // namespace

struct ChatTemplates::Impl {
  std::shared_ptr<Model> model;
  common_chat_templates_ptr templates;
  bool useJinja = true;
  common_reasoning_format reasoningFormat = COMMON_REASONING_FORMAT_DEEPSEEK;
  std::map<std::string, std::string> defaultKwargs;
  bool enableThinking = false;
  bool prefillAssistant = true;
};

ChatTemplates::ChatTemplates(std::shared_ptr<Model> model, const ChatTemplateOptions &opts)
    : impl_(std::make_unique<Impl>()) {
  Impl &m = *impl_;
  m.model = std::move(model);
  // A built-in name (not Jinja) is rendered by llama.cpp's legacy renderer, which knows it by name; as Jinja it
  // would render as its own literal text. chatml has a Jinja source in llama.cpp.
  const bool builtin =
      !opts.templateOverride.empty() && opts.templateOverride != "chatml" && isBuiltinName(opts.templateOverride);
  m.useJinja = opts.useJinja && !builtin;
  m.prefillAssistant = opts.prefillAssistant;
  try {
    m.reasoningFormat = common_reasoning_format_from_name(opts.reasoningFormat);
  } catch (const std::exception &e) {
    invalid(e.what());
  }
  m.defaultKwargs = kwargsFrom(parseJson(opts.defaultKwargs, "chat_template_kwargs"), "chat_template_kwargs");
  try {
    m.templates = common_chat_templates_init(m.model->raw(), opts.templateOverride);
  } catch (const std::exception &e) {
    throw Error(codes::kTemplateFailed, std::string("the chat template does not parse: ") + e.what());
  }
  const bool supportsThinking = m.useJinja && common_chat_templates_support_enable_thinking(m.templates.get());
  m.enableThinking = opts.enableThinking != 0 && supportsThinking;

  info_.source = common_chat_templates_source(m.templates.get());
  info_.fromModel = opts.templateOverride.empty() && m.model->info().hasChatTemplate;
  info_.jinja = m.useJinja;
  info_.supportsThinking = supportsThinking;
  info_.caps = common_chat_templates_get_caps(m.templates.get());
  // The chat format llama.cpp picks for a plain conversation and for one with tools, for the startup log.
  const std::string hello = R"({"messages":[{"role":"user","content":"hello"}]})";
  const std::string withTools =
      R"({"messages":[{"role":"user","content":"hello"}],"tools":[{"type":"function","function":{"name":"f",)"
      R"("description":"","parameters":{"type":"object","properties":{}}}}]})";
  for (auto [request, out] : {std::pair{&hello, &info_.exampleFormat}, std::pair{&withTools, &info_.toolsFormat}}) {
    try {
      *out = apply(*request).format;
    } catch (const std::exception &e) {
      *out = std::string("unavailable (") + e.what() + ")";
    }
  }
}

ChatTemplates::~ChatTemplates() = default;

ChatPrompt ChatTemplates::apply(const std::string &requestJson) const {
  const Impl &m = *impl_;
  const common_json body = parseJson(requestJson, "the chat request");
  if (!body.is_object() || !body.contains("messages")) invalid("the chat request needs 'messages'");

  common_chat_templates_inputs inputs;
  try {
    inputs.messages = common_chat_msgs_parse_oaicompat(body.at("messages"));
    inputs.tools = common_chat_tools_parse_oaicompat(body.value("tools", common_json()));
  } catch (const std::exception &e) {
    invalid(e.what());
  }
  const std::string toolChoice = body.value("tool_choice", std::string("auto"));
  if (toolChoice != "auto" && toolChoice != "none" && toolChoice != "required") {
    invalid("tool_choice must be auto, none or required, not '" + toolChoice + "'");
  }
  inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(toolChoice);
  const bool hasTools = !inputs.tools.empty();
  if (hasTools && !m.useJinja) {
    invalid(
        "tools need a Jinja chat template, and this server renders a built-in template (--no-jinja or a named "
        "--chat-template)");
  }
  if (body.contains("json_schema") && !body.at("json_schema").is_null())
    inputs.json_schema = body.at("json_schema").dump();
  inputs.grammar = body.value("grammar", std::string());
  if (hasTools && inputs.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE && !inputs.grammar.empty()) {
    invalid("a grammar cannot be combined with tools");
  }
  inputs.use_jinja = m.useJinja;
  const auto caps = common_chat_templates_get_caps(m.templates.get());
  const auto parallel = caps.find("supports_parallel_tool_calls");
  inputs.parallel_tool_calls = body.value("parallel_tool_calls", parallel != caps.end() && parallel->second);
  inputs.add_generation_prompt = body.value("add_generation_prompt", true);
  // As llama-server (prefill_assistant): a conversation that ends with the assistant is continued, not answered.
  if (!body.contains("add_generation_prompt") && !inputs.messages.empty() &&
      inputs.messages.back().role == "assistant") {
    if (inputs.messages.size() >= 2 && inputs.messages[inputs.messages.size() - 2].role == "assistant") {
      invalid("a conversation cannot end with two assistant messages");
    }
    if (!inputs.messages.back().tool_calls.empty()) invalid("an assistant message with tool calls cannot be continued");
    inputs.continue_final_message = COMMON_CHAT_CONTINUATION_AUTO;
    inputs.add_generation_prompt = false;
  }
  inputs.reasoning_format = m.reasoningFormat;
  try {
    if (body.contains("reasoning_format")) {
      inputs.reasoning_format = common_reasoning_format_from_name(body.at("reasoning_format").get<std::string>());
    }
  } catch (const std::exception &e) {
    invalid(e.what());
  }
  inputs.enable_thinking = m.enableThinking;
  inputs.chat_template_kwargs = m.defaultKwargs;
  if (body.contains("chat_template_kwargs") && !body.at("chat_template_kwargs").is_null()) {
    for (const auto &[k, v] : kwargsFrom(body.at("chat_template_kwargs"), "chat_template_kwargs")) {
      inputs.chat_template_kwargs[k] = v;
    }
  }
  const auto thinking = inputs.chat_template_kwargs.find("enable_thinking");
  if (thinking != inputs.chat_template_kwargs.end()) {
    if (thinking->second == "true") inputs.enable_thinking = true;
    else if (thinking->second == "false") inputs.enable_thinking = false;
    else invalid("chat_template_kwargs.enable_thinking must be a boolean");
  }
  const std::string effort = body.value("reasoning_effort", std::string());
  if (effort == "none") {
    inputs.enable_thinking = false;
    inputs.chat_template_kwargs.erase("reasoning_effort");
  } else if (!effort.empty()) {
    inputs.chat_template_kwargs["reasoning_effort"] = common_json(effort).dump();
  }

  common_chat_params params;
  try {
    params = common_chat_templates_apply(m.templates.get(), inputs);
  } catch (const std::exception &e) {
    refuse(e);
  }

  // tool_choice "required": a grammar of nothing but the calls (llama.cpp's own lets prose come first), or a refusal.
  const bool forced = hasTools && inputs.tool_choice == COMMON_CHAT_TOOL_CHOICE_REQUIRED;
  if (forced) {
    const llama_vocab *vocab = m.model->vocab();
    // A tag's tokens as common_sampler_init tokenizes the budget's tags, if they spell it exactly (no space put
    // before it, as SentencePiece can).
    auto tokensOf = [vocab](const std::string &text) {
      std::vector<llama_token> ids = tokenizeSpecial(vocab, text);
      std::string spelled;
      for (llama_token id : ids) spelled += tokenPiece(vocab, id);
      if (spelled != text) ids.clear();
      return ids;
    };
    ForcedCalls calls = forcedToolCalls(params, common_chat_tools_to_json_oaicompat(inputs.tools),
                                        inputs.enable_thinking, inputs.parallel_tool_calls, tokensOf);
    if (!calls.refusal.empty()) throw Error(codes::kToolChoiceUnforceable, calls.refusal);
    params.grammar = std::move(calls.grammar);
    params.grammar_lazy = false;
    params.grammar_triggers.clear();
  }

  ChatPrompt out;
  out.prompt = std::move(params.prompt);
  out.generationPrompt = params.generation_prompt;
  if (!params.thinking_end_tags.empty()) {
    out.reasoningStart = params.thinking_start_tag;
    out.reasoningEnds = params.thinking_end_tags;
  }
  out.format = common_chat_format_name(params.format);
  out.additionalStops = params.additional_stops;
  for (const auto &d : params.message_delimiters.delimiters) {
    if (d.role == COMMON_CHAT_ROLE_USER && !d.delimiter.empty()) out.userStarts.push_back(d.delimiter);
  }
  const llama_vocab *vocab = m.model->vocab();
  for (const auto &t : params.preserved_tokens) {
    const auto ids = tokenizeSpecial(vocab, t);
    if (ids.size() == 1) out.preservedTokens.push_back(ids[0]);
  }
  if (!params.grammar.empty()) {
    // As llama-server: the chat layer's grammars (tool calls, output formats) start after the generation prompt.
    out.grammar.text = std::move(params.grammar);
    // The forced-call grammar starts at the first generated token; llama.cpp's own are advanced past the prompt.
    out.grammar.kind = forced ? GrammarSpec::kUser : GrammarSpec::kToolCalls;
    out.grammar.lazy = params.grammar_lazy;
    out.grammar.generationPrompt = params.generation_prompt;
    for (const auto &t : params.grammar_triggers) {
      GrammarTrigger g;
      g.type = static_cast<int32_t>(t.type);
      g.value = t.value;
      g.token = t.token;
      if (t.type == COMMON_GRAMMAR_TRIGGER_TYPE_WORD) {
        // A trigger word that is one preserved token is matched as that token.
        const auto ids = tokenizeSpecial(vocab, t.value);
        if (ids.size() == 1 &&
            std::find(out.preservedTokens.begin(), out.preservedTokens.end(), ids[0]) != out.preservedTokens.end()) {
          g.type = GrammarTrigger::kToken;
          g.token = ids[0];
        }
      }
      out.grammar.triggers.push_back(std::move(g));
    }
    if (out.grammar.lazy && out.grammar.triggers.empty())
      throw Error(codes::kTemplateFailed, "lazy grammar without triggers");
  }
  out.thinking = !params.thinking_end_tags.empty() && inputs.enable_thinking;
  common_json cfg = common_json::object();
  cfg["format"] = static_cast<int>(params.format);
  cfg["generation_prompt"] = params.generation_prompt;
  cfg["parser"] = params.parser;
  cfg["reasoning_format"] = std::string(common_reasoning_format_name(inputs.reasoning_format));
  cfg["parse_tool_calls"] = hasTools && inputs.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE;
  cfg["is_continuation"] = inputs.continue_final_message != COMMON_CHAT_CONTINUATION_NONE;
  cfg["stream"] = body.value("stream", false);
  out.parserConfig = cfg.dump();
  return out;
}

struct ChatParser::Impl {
  common_chat_parser_params params;
  std::string generated;
  common_chat_msg msg;
  std::vector<std::string> ids;
  std::set<size_t> sentNames;
};

ChatParser::ChatParser(const std::string &configJson) : impl_(std::make_unique<Impl>()) {
  const common_json cfg = parseJson(configJson, "the parser configuration");
  if (!cfg.is_object()) invalid("the parser configuration must be an object");
  auto &p = impl_->params;
  try {
    p.format = static_cast<common_chat_format>(cfg.value("format", 0));
    if (p.format < 0 || p.format >= COMMON_CHAT_FORMAT_COUNT) invalid("unknown chat format");
    p.generation_prompt = cfg.value("generation_prompt", std::string());
    p.reasoning_format = common_reasoning_format_from_name(cfg.value("reasoning_format", std::string("none")));
    p.reasoning_in_content =
        cfg.value("stream", false) && p.reasoning_format == COMMON_REASONING_FORMAT_DEEPSEEK_LEGACY;
    p.parse_tool_calls = cfg.value("parse_tool_calls", true);
    p.is_continuation = cfg.value("is_continuation", false);
    const std::string parser = cfg.value("parser", std::string());
    if (!parser.empty()) p.parser.load(parser);
  } catch (const Error &) {
    throw;
  } catch (const std::exception &e) {
    invalid(std::string("bad parser configuration: ") + e.what());
  }
  if (p.is_continuation) {
    // The prefilled part of a continued message is not sent again.
    try {
      impl_->msg = common_chat_parse("", true, p);
    } catch (const std::exception &) {}
  }
}

ChatParser::~ChatParser() = default;

std::vector<ChatDelta> ChatParser::push(const std::string &text, bool final) {
  Impl &m = *impl_;
  m.generated += text;
  common_chat_msg next;
  try {
    next = common_chat_parse(m.generated, !final, m.params);
  } catch (const std::exception &) {
    if (!final) return {};  // not parseable yet: wait for more text
    // The output does not match the template's format (a model off its format): keep what a lenient parse
    // recovers, else the raw text as content. Nothing the model wrote is dropped.
    try {
      next = common_chat_parse(m.generated, true, m.params);
    } catch (const std::exception &) {
      next = common_chat_msg();
    }
    if (next.empty()) {
      next.role = "assistant";
      next.content = m.generated;
    }
  }
  if (next.empty() && !final) return {};
  next.set_tool_call_ids(m.ids, randomCallId);
  std::vector<common_chat_msg_diff> diffs;
  try {
    diffs = common_chat_msg_diff::compute_diffs(m.msg, next);
  } catch (const std::exception &) {
    if (!final) return {};  // the partial parse went back on itself: wait for a stable one
  }
  m.msg = std::move(next);

  // As llama-server streams them: a tool call's id and name go out once, with or before its first arguments.
  std::vector<ChatDelta> out;
  auto header = [&](size_t i) {
    ChatDelta d;
    d.toolIndex = static_cast<int32_t>(i);
    d.toolId = m.msg.tool_calls[i].id;
    d.toolName = m.msg.tool_calls[i].name;
    m.sentNames.insert(i);
    return d;
  };
  for (auto &d : diffs) {
    if (d.tool_call_index == std::string::npos) {
      ChatDelta c;
      c.content = std::move(d.content_delta);
      c.reasoning = std::move(d.reasoning_content_delta);
      if (!c.content.empty() || !c.reasoning.empty()) out.push_back(std::move(c));
      continue;
    }
    const size_t i = d.tool_call_index;
    if (i >= m.msg.tool_calls.size()) continue;
    if (!m.sentNames.count(i)) {
      if (d.tool_call_delta.arguments.empty() && !final) continue;  // the name may still grow
      out.push_back(header(i));
    }
    if (!d.tool_call_delta.arguments.empty()) {
      ChatDelta a;
      a.toolIndex = static_cast<int32_t>(i);
      a.toolArguments = std::move(d.tool_call_delta.arguments);
      out.push_back(std::move(a));
    }
  }
  if (final) {
    for (size_t i = 0; i < m.msg.tool_calls.size(); ++i) {
      if (!m.sentNames.count(i) && !m.msg.tool_calls[i].name.empty()) out.push_back(header(i));
    }
  }

  message_.content = m.msg.content;
  message_.reasoning = m.msg.reasoning_content;
  message_.toolCalls.clear();
  for (const auto &tc : m.msg.tool_calls) message_.toolCalls.push_back({tc.id, tc.name, tc.arguments});
  return out;
}

std::vector<std::string> chatTemplateMarkers(const std::string &source) {
  if (source.empty()) invalid("the chat template is empty");
  common_chat_templates_ptr templates;
  try {
    templates = common_chat_templates_init(nullptr, source, "<s>", "</s>");
  } catch (const std::exception &e) {
    throw Error(codes::kTemplateFailed, std::string("the chat template does not parse: ") + e.what());
  }
  std::vector<std::string> out;
  auto add = [&](const std::string &marker) {
    if (!marker.empty() && std::find(out.begin(), out.end(), marker) == out.end()) out.push_back(marker);
  };
  const common_json tools =
      common_json::parse(R"([{"type":"function","function":{"name":"f","description":"","parameters":{"type":"object",)"
                         R"("properties":{"a":{"type":"string"}},"required":["a"]}}}])");
  for (const bool thinking : {false, true}) {
    for (const bool withTools : {false, true}) {
      common_chat_templates_inputs inputs;
      inputs.messages = common_chat_msgs_parse_oaicompat(common_json::parse(R"([{"role":"user","content":"hi"}])"));
      if (withTools) inputs.tools = common_chat_tools_parse_oaicompat(tools);
      inputs.enable_thinking = thinking;
      common_chat_params params;
      try {
        params = common_chat_templates_apply(templates.get(), inputs);
      } catch (const std::exception &) {
        continue;  // a template that refuses this conversation names no markers for it
      }
      for (const auto &t : params.preserved_tokens) add(t);
      add(params.thinking_start_tag);
      for (const auto &t : params.thinking_end_tags) add(t);
      for (const auto &t : params.grammar_triggers) {
        if (t.type == COMMON_GRAMMAR_TRIGGER_TYPE_WORD) add(t.value);
      }
      for (const auto &t : params.additional_stops) add(t);
    }
  }
  return out;
}

std::string jsonSchemaToGrammar(const std::string &schemaJson) {
  const common_json schema = parseJson(schemaJson, "the JSON schema");
  try {
    return json_schema_to_grammar(schema);
  } catch (const std::exception &e) {
    invalid(std::string("the JSON schema cannot be converted to a grammar: ") + e.what());
  }
}

void checkGrammar(const Model &model, const std::string &grammar) {
  if (grammar.rfind("%llguidance", 0) == 0) invalid("llguidance grammars are not supported by this server");
  takeLastLogError();
  llama_sampler *s = llama_sampler_init_grammar(model.vocab(), grammar.c_str(), "root");
  if (s == nullptr) {
    const std::string why = takeLastLogError();
    invalid("the grammar does not parse" + (why.empty() ? std::string() : ": " + why));
  }
  llama_sampler_free(s);
}

}  // namespace core
