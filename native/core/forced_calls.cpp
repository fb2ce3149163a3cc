#include "forced_calls.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "chat-peg-parser.h"
#include "json-schema-to-grammar.h"
#include "peg-parser.h"

namespace core {
namespace {

using json = common_json;
using tags = common_chat_peg_builder;  // the tag names llama.cpp's chat parsers put on calls and arguments

// A schema parser whose grammar is its child's, as common_peg_arena::build_grammar decides (schema_delegates): raw
// text for a string or an enum.
bool delegates(const json &parser) {
  if (!parser.value("raw", false) || !parser.contains("schema") || !parser.at("schema").is_object()) return false;
  const json &schema = parser.at("schema");
  if (!schema.contains("type")) return schema.contains("enum");
  const json &t = schema.at("type");
  if (t.is_string()) return t == "string";
  if (t.is_array()) {
    for (const auto &x : t) {
      if (x.is_string() && x != "null") return x == "string";
    }
  }
  return false;
}

// A string schema that any text satisfies.
bool plainString(const json &schema) {
  if (!schema.is_object()) return false;
  for (const auto &item : schema.items()) {
    if (item.key() != "type" && item.key() != "description" && item.key() != "title") return false;
  }
  const json t = schema.value("type", json());
  if (t == "string") return true;
  if (!t.is_array()) return false;
  return std::all_of(t.begin(), t.end(), [](const json &x) { return x == "string" || x == "null"; });
}

// llama.cpp's PEG arena in the form it saves and loads (common_peg_arena::to_json / from_json): parsers by id, rules
// by name, the root. Read to find the calls and what holds their arguments; added to, to put a root over them.
class Arena {
 public:
  explicit Arena(json j) : j_(std::move(j)) {}

  const json &node(size_t id) const { return j_.at("parsers").at(id); }
  std::string type(size_t id) const { return node(id).value("type", std::string()); }
  bool isTag(size_t id, const char *tag) const {
    return type(id) == "tag" && node(id).value("tag", std::string()) == tag;
  }

  // The parsers a parser is made of; a reference stands for its rule.
  std::vector<size_t> children(size_t id) const {
    const json &n = node(id);
    std::vector<size_t> out;
    if (n.contains("children")) {
      for (const auto &c : n.at("children")) out.push_back(c.get<size_t>());
    }
    if (n.contains("child")) out.push_back(n.at("child").get<size_t>());
    if (type(id) == "ref") {
      const json &rules = j_.at("rules");
      const std::string name = n.value("name", std::string());
      if (rules.contains(name)) out.push_back(rules.at(name).get<size_t>());
    }
    return out;
  }

  // The rules llama.cpp builds its lazy grammar from: the tool calls and nothing else.
  std::vector<size_t> triggerRules() const {
    std::vector<size_t> out;
    const json &parsers = j_.at("parsers");
    for (size_t id = 0; id < parsers.size(); ++id) {
      if (type(id) == "rule" && parsers[id].value("trigger", false)) out.push_back(id);
    }
    return out;
  }

  // Every parser reachable from `from` (itself included), each once; `descend` false stops below one.
  void walk(size_t from, const std::function<bool(size_t)> &descend) const {
    std::set<size_t> seen;
    std::vector<size_t> todo{from};
    while (!todo.empty()) {
      const size_t id = todo.back();
      todo.pop_back();
      if (!seen.insert(id).second || !descend(id)) continue;
      for (size_t c : children(id)) todo.push_back(c);
    }
  }

  bool isLiteral(size_t id, const std::string &text) const {
    return type(id) == "literal" && node(id).value("literal", std::string()) == text;
  }

  // A call or an argument (a parser tagged `own`) carries `name` in its name tag; nested parsers tagged `own` are
  // other calls or arguments.
  bool named(size_t id, const char *own, const char *nameTag, const std::string &name) const {
    bool found = false;
    walk(id, [&](size_t n) {
      if (found || (n != id && isTag(n, own))) return false;
      if (!isTag(n, nameTag)) return true;
      walk(n, [&](size_t m) {
        if (isLiteral(m, name)) found = true;
        return !found;
      });
      return false;
    });
    return found;
  }

  // Under `id`, a schema parser for exactly this schema that llama.cpp turns into the schema's own grammar. A raw
  // string (an XML-style argument) is any text up to its closing tag: that holds only a plain string schema.
  bool constrainedBy(size_t id, const json &schema) const {
    bool found = false;
    walk(id, [&](size_t n) {
      if (type(n) == "schema" && node(n).contains("schema") && node(n).at("schema") == schema &&
          (!delegates(node(n)) || plainString(schema))) {
        found = true;
      }
      return !found;
    });
    return found;
  }

  // The parsers reachable from `roots`, with the parsers each is part of.
  std::map<size_t, std::vector<size_t>> parents(const std::vector<size_t> &roots) const {
    std::map<size_t, std::vector<size_t>> out;
    for (size_t r : roots) {
      out[r];
      walk(r, [&](size_t n) {
        for (size_t c : children(n)) out[c].push_back(n);
        return true;
      });
    }
    return out;
  }

  bool hasTag(size_t id, const char *tag) const {
    bool found = false;
    walk(id, [&](size_t n) {
      if (isTag(n, tag)) found = true;
      return !found;
    });
    return found;
  }

  // The argument parsers under a call.
  std::vector<size_t> arguments(size_t call) const {
    std::vector<size_t> out;
    walk(call, [&](size_t n) {
      if (isTag(n, tags::TOOL_ARG)) {
        out.push_back(n);
        return false;
      }
      return true;
    });
    return out;
  }

  // Every text `id` matches carries the argument `name`. `rules`: the rules on the path here.
  bool mandatory(size_t id, const std::string &name, std::set<size_t> &rules) const {
    const std::string t = type(id);
    const auto cs = children(id);
    if (t == "tag" && isTag(id, tags::TOOL_ARG)) return named(id, tags::TOOL_ARG, tags::TOOL_ARG_NAME, name);
    if (t == "tag" || t == "atomic") return !cs.empty() && mandatory(cs.front(), name, rules);
    if (t == "sequence") return std::any_of(cs.begin(), cs.end(), [&](size_t c) { return mandatory(c, name, rules); });
    if (t == "choice") {
      return !cs.empty() && std::all_of(cs.begin(), cs.end(), [&](size_t c) { return mandatory(c, name, rules); });
    }
    if (t == "repetition") return node(id).value("min_count", 0) >= 1 && mandatory(cs.front(), name, rules);
    if (t == "rule" || t == "ref") {
      // A rule met again on the same path is a recursion: it adds nothing that must be there.
      if (cs.empty() || !rules.insert(id).second) return false;
      const bool must = mandatory(cs.back(), name, rules);
      rules.erase(id);
      return must;
    }
    return false;
  }

  json &at(size_t id) { return j_["parsers"][id]; }

  size_t add(json parser) {
    json &parsers = j_["parsers"];
    parsers.push_back(std::move(parser));
    return parsers.size() - 1;
  }
  void setRoot(size_t id) { j_["root"] = id; }
  const json &raw() const { return j_; }

 private:
  json j_;
};

// Schema keywords the per-argument check understands; anything else (anyOf, patternProperties, minProperties...)
// is only held by a grammar of the whole object.
bool plainObjectSchema(const json &schema) {
  static const std::set<std::string> kKnown = {"type",  "properties", "required", "additionalProperties", "description",
                                               "title", "$schema",    "$defs",    "definitions"};
  if (!schema.is_object()) return false;
  for (const auto &item : schema.items()) {
    if (!kKnown.count(item.key())) return false;
  }
  return !schema.contains("type") || schema.at("type") == "object";
}

// Why this call's grammar can produce arguments the schema refuses; empty when it cannot.
std::string strayArguments(const Arena &a, size_t call, const json &schema) {
  if (a.constrainedBy(call, schema)) return "";
  if (!plainObjectSchema(schema)) return "its arguments are not held to the schema as a whole";
  const json properties = schema.value("properties", json::object());
  const json required = schema.value("required", json::array());
  const std::vector<size_t> args = a.arguments(call);
  if (args.empty()) {
    // Arguments of any shape (Gemma 4's own value syntax): valid only when the schema takes any object.
    const bool closed = schema.contains("additionalProperties") && schema.at("additionalProperties") == false;
    if (properties.empty() && required.empty() && !closed) return "";
    return "its arguments are free-form, not held to the schema";
  }
  for (size_t arg : args) {
    bool known = false;
    for (const auto &p : properties.items()) {
      if (!a.named(arg, tags::TOOL_ARG, tags::TOOL_ARG_NAME, p.key())) continue;
      known = true;
      // A value held by its schema's grammar, or raw text where the schema takes any string.
      const bool rawString = plainString(p.value()) && a.hasTag(arg, tags::TOOL_ARG_STRING_VALUE);
      if (!rawString && !a.constrainedBy(arg, p.value())) {
        return "the value of '" + p.key() + "' is not held to its schema";
      }
    }
    if (!known) return "it can write an argument the schema does not name";
  }
  for (const auto &r : required) {
    std::set<size_t> rules;
    if (!r.is_string() || !a.mandatory(call, r.get<std::string>(), rules)) {
      return "it can leave out the required argument " + r.dump();
    }
  }
  return "";
}

// Text of a message that opens after `end` in the prompt: the thinking end tag also ends a message (gpt-oss's
// analysis channel is a message of its own), so after the reasoning the assistant's next message opens.
std::string headerAfterReasoning(const common_chat_params &params, const std::string &end) {
  std::string assistant;
  bool endsMessages = false;
  for (const auto &d : params.message_delimiters.delimiters) {
    if (d.delimiter.empty()) continue;
    if (d.role == COMMON_CHAT_ROLE_ASSISTANT) assistant = d.delimiter;
    else if (params.prompt.find(end + d.delimiter) != std::string::npos) endsMessages = true;
  }
  if (!endsMessages) return "";
  return assistant.empty() ? params.generation_prompt : assistant;
}

}  // namespace

ForcedCalls forcedToolCalls(const common_chat_params &params, const common_json &tools, bool thinking, bool parallel,
                            const std::function<std::vector<llama_token>(const std::string &)> &tokensOf) {
  ForcedCalls out;
  const std::string format = common_chat_format_name(params.format);
  if (params.parser.empty()) {
    out.refusal = "llama.cpp's chat layer knows no tool-call format for this template";
    return out;
  }
  Arena a(json::parse(params.parser));
  const std::vector<size_t> triggers = a.triggerRules();
  // The outermost of them: a trigger rule inside another is a call the outer one wraps (DeepSeek's call inside its
  // calls section, Qwen 2.5's call inside its repetition of calls), not a whole answer of its own.
  std::vector<size_t> calls;
  for (size_t rule : triggers) {
    bool inner = false;
    for (size_t other : triggers) {
      if (other == rule) continue;
      a.walk(other, [&](size_t n) {
        if (n != other && n == rule) inner = true;
        return !inner;
      });
    }
    if (!inner) calls.push_back(rule);
  }
  if (calls.empty()) {
    out.refusal = "llama.cpp's chat layer knows no tool-call format for this template (" + format + ")";
    return out;
  }

  // Every tool offered has a call whose arguments the grammar holds to its schema. A tool's call is the largest
  // part of the calls' grammar that names it and no other tool (its rule, or all of it when one tool is offered).
  const auto up = a.parents(calls);
  std::map<std::string, std::set<size_t>> above;  // tool name -> the parsers its name tags are part of
  std::vector<std::string> names;
  for (const auto &tool : tools) names.push_back(tool.at("function").at("name").get<std::string>());
  for (const auto &[id, from] : up) {
    if (!a.isTag(id, tags::TOOL_NAME)) continue;
    for (const auto &name : names) {
      if (!a.named(id, tags::TOOL_NAME, tags::TOOL_NAME, name)) continue;
      std::vector<size_t> todo{id};
      while (!todo.empty()) {
        const size_t n = todo.back();
        todo.pop_back();
        if (!above[name].insert(n).second) continue;
        for (size_t p : up.at(n)) todo.push_back(p);
      }
    }
  }
  for (size_t t = 0; t < names.size(); ++t) {
    const std::string &name = names[t];
    const json &function = tools[t].at("function");
    const json schema = function.contains("parameters") ? function.at("parameters") : json::object();
    auto own = [&](size_t n) {
      if (!above[name].count(n)) return false;
      for (const auto &other : names) {
        if (other != name && above[other].count(n)) return false;
      }
      return true;
    };
    std::vector<size_t> own_calls;
    for (size_t n : above[name]) {
      const auto &from = up.at(n);
      const bool root = std::find(calls.begin(), calls.end(), n) != calls.end();
      if (own(n) && (root || std::none_of(from.begin(), from.end(), own))) own_calls.push_back(n);
    }
    if (own_calls.empty()) {
      out.refusal = "llama.cpp's tool-call grammar for this template (" + format + ") has no call of '" + name + "'";
      return out;
    }
    for (size_t call : own_calls) {
      const std::string why = strayArguments(a, call, schema);
      if (!why.empty()) {
        out.refusal = "llama.cpp's tool-call grammar for this template (" + format + ") cannot hold a call of '" +
                      name + "' to its parameters: " + why;
        return out;
      }
    }
  }

  // parallel_tool_calls false: one call. Some formats repeat calls one or more times whatever parallel_tool_calls
  // says (Qwen 2.5's `(tool-call space)+`, functionary v3.2's `(tool-a | tool-b)+`): that repetition is held to one.
  if (!parallel) {
    std::vector<size_t> repeats;
    for (const auto &[id, from] : up) {
      if (a.type(id) != "repetition" || a.node(id).value("min_count", 0) != 1) continue;
      bool repeatsCalls = false;
      a.walk(id, [&](size_t n) {
        if (a.isTag(n, tags::TOOL_NAME)) repeatsCalls = true;
        return !repeatsCalls;
      });
      if (repeatsCalls) repeats.push_back(id);
    }
    for (size_t id : repeats) a.at(id)["max_count"] = 1;
  }

  // The calls as llama.cpp's parser reads them. Its optional whitespace (`space`) becomes GBNF's `space` rule, but the
  // parser's lookaheads, which GBNF cannot write, refuse some of it: GLM's call ends with &"</tool_call>", so the
  // whitespace its grammar lets in before that tag makes the call unreadable. The forced calls leave it out.
  for (const auto &[id, from] : up) {
    if (a.type(id) == "space") a.at(id) = {{"type", "epsilon"}};
  }

  // The root: the reasoning the template lets through, then the calls.
  auto literal = [&](const std::string &s) { return a.add({{"type", "literal"}, {"literal", s}}); };
  // A thinking tag as the tokens the reasoning budget watches for (GBNF's <[id]>), not any other spelling of it.
  auto tag = [&](const std::string &s) {
    const std::vector<llama_token> ids = tokensOf(s);
    if (ids.empty()) return literal(s);
    std::string gbnf;
    for (llama_token id : ids) gbnf += (gbnf.empty() ? "<[" : " <[") + std::to_string(id) + "]>";
    return a.add({{"type", "gbnf"}, {"child", literal(s)}, {"grammar", ids.size() > 1 ? "(" + gbnf + ")" : gbnf}});
  };
  auto sequence = [&](std::vector<size_t> parts) { return a.add({{"type", "sequence"}, {"children", parts}}); };
  auto optional = [&](size_t p) {
    return a.add({{"type", "repetition"}, {"child", p}, {"min_count", 0}, {"max_count", 1}});
  };
  std::vector<size_t> root;
  const auto &ends = params.thinking_end_tags;
  const std::string &start = params.thinking_start_tag;
  if (!ends.empty()) {
    // The generation prompt may leave a reasoning block open (some templates always do, thinking or not).
    const std::string &gp = params.generation_prompt;
    const size_t opened = start.empty() ? std::string::npos : gp.rfind(start);
    size_t closed = std::string::npos;
    for (const auto &e : ends) {
      const size_t at = gp.rfind(e);
      if (at != std::string::npos && (closed == std::string::npos || at > closed)) closed = at;
    }
    const bool open = opened != std::string::npos && (closed == std::string::npos || closed < opened);
    if (open || (thinking && !start.empty())) {
      // Reasoning runs to an end tag. The first one closes it; the others (where a template lists them) open the
      // call themselves, as llama.cpp's parsers read them.
      std::vector<size_t> close{tag(ends.front())};
      const std::string header = headerAfterReasoning(params, ends.front());
      if (!header.empty()) close.push_back(literal(header));
      const size_t closing = ends.size() > 1 ? optional(sequence(close)) : sequence(close);
      const size_t block = sequence({a.add({{"type", "until"}, {"delimiters", ends}}), closing});
      root.push_back(open ? block : optional(sequence({tag(start), block})));
    }
  }
  root.push_back(calls.size() == 1 ? calls.front() : a.add({{"type", "choice"}, {"children", calls}}));
  a.setRoot(root.size() == 1 ? root.front() : sequence(root));

  const common_peg_arena arena = common_peg_arena::from_json(a.raw());
  out.grammar = build_grammar([&](const common_grammar_builder &builder) {
    // As llama.cpp's chat layer does before it builds a tool grammar: the schemas' $refs are resolved.
    for (const auto &tool : tools) {
      const json &function = tool.at("function");
      json schema = function.contains("parameters") ? function.at("parameters") : json::object();
      builder.resolve_refs(schema);
    }
    arena.build_grammar(builder, false);
  });
  return out;
}

}  // namespace core
