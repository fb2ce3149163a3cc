#include "slot_sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "errors.h"
#include "limits.h"
#include "sampling.h"  // llama.cpp common/sampling.h (ours is slot_sampler.h)

namespace core {
namespace {

void validate(const llama_model *model, const SamplingParams &p) {
  limits::requireIn(p.temperature, limits::kTemperature, "temperature");
  limits::requireIn(p.dynatempRange, limits::kDynatempRange, "dynatemp_range");
  limits::requireIn(p.dynatempExponent, limits::kDynatempExponent, "dynatemp_exponent");
  limits::requireIn(p.topK, limits::kTopK, "top_k");
  limits::requireIn(p.topP, limits::kTopP, "top_p");
  limits::requireIn(p.minP, limits::kMinP, "min_p");
  limits::requireIn(p.typicalP, limits::kTypicalP, "typical_p");
  limits::requireIn(p.topNSigma, limits::kTopNSigma, "top_n_sigma");
  limits::requireIn(p.xtcProbability, limits::kXtcProbability, "xtc_probability");
  limits::requireIn(p.xtcThreshold, limits::kXtcThreshold, "xtc_threshold");
  limits::requireIn(p.minKeep, limits::kMinKeep, "min_keep");
  limits::requireIn(p.repeatPenalty, limits::kRepeatPenalty, "repeat_penalty");
  limits::requireIn(p.presencePenalty, limits::kPresencePenalty, "presence_penalty");
  limits::requireIn(p.frequencyPenalty, limits::kFrequencyPenalty, "frequency_penalty");
  limits::requireIn(p.penaltyLastN, limits::kPenaltyLastN, "repeat_last_n");
  limits::requireIn(p.dryMultiplier, limits::kDryMultiplier, "dry_multiplier");
  limits::requireIn(p.dryBase, limits::kDryBase, "dry_base");
  limits::requireIn(p.dryAllowedLength, limits::kDryAllowedLength, "dry_allowed_length");
  limits::requireIn(p.dryPenaltyLastN, limits::kDryPenaltyLastN, "dry_penalty_last_n");
  limits::requireIn(p.mirostat, limits::kMirostat, "mirostat");
  limits::requireIn(p.mirostatTau, limits::kMirostatTau, "mirostat_tau");
  limits::requireIn(p.mirostatEta, limits::kMirostatEta, "mirostat_eta");
  limits::requireIn(p.reasoning.tokens, limits::kReasoningBudget, "reasoning_budget_tokens");
  const int32_t nVocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  for (const auto &b : p.logitBias) {
    require(b.token >= 0 && b.token < nVocab,
            "logit_bias token " + std::to_string(b.token) + " is outside the vocabulary");
    require(!std::isnan(b.bias), "logit_bias values must be numbers");
  }
  for (const auto &name : p.samplers) {
    require(common_sampler_types_from_names({name}).size() == 1, "unknown sampler '" + name + "' in samplers");
  }
  // llama.cpp aborts the process on these instead of failing the request.
  require(p.grammar.text.rfind("%llguidance", 0) != 0, "llguidance grammars are not supported by this server");
  require(!(p.grammar.lazy && p.grammar.triggers.empty()) || p.grammar.text.empty(), "a lazy grammar needs triggers");
}

bool budgeted(const SamplingParams &p) {
  return p.reasoning.tokens >= 0 && !p.reasoning.ends.empty() && !p.reasoning.start.empty();
}

std::vector<llama_token> tokenized(const llama_model *model, const std::string &text) {
  return common_tokenize(llama_model_get_vocab(model), text, false, true);
}

bool penalised(const SamplingParams &p) {
  return p.repeatPenalty != 1.0f || p.presencePenalty != 0.0f || p.frequencyPenalty != 0.0f || p.dryMultiplier != 0.0f;
}

common_params_sampling toCommon(const llama_model *model, const SamplingParams &p) {
  common_params_sampling c;
  c.seed = p.seed;
  c.temp = p.temperature;
  c.dynatemp_range = p.dynatempRange;
  c.dynatemp_exponent = p.dynatempExponent;
  c.top_k = p.topK;
  c.top_p = p.topP;
  c.min_p = p.minP;
  c.typ_p = p.typicalP;
  c.top_n_sigma = p.topNSigma;
  c.xtc_probability = p.xtcProbability;
  c.xtc_threshold = p.xtcThreshold;
  c.min_keep = p.minKeep;
  c.penalty_last_n = p.penaltyLastN == -1 ? llama_model_n_ctx_train(model) : p.penaltyLastN;
  c.penalty_repeat = p.repeatPenalty;
  c.penalty_freq = p.frequencyPenalty;
  c.penalty_present = p.presencePenalty;
  c.dry_multiplier = p.dryMultiplier;
  c.dry_base = p.dryBase;
  c.dry_allowed_length = p.dryAllowedLength;
  c.dry_penalty_last_n = p.dryPenaltyLastN == -1 ? llama_model_n_ctx_train(model) : p.dryPenaltyLastN;
  c.dry_sequence_breakers = p.drySequenceBreakers;
  c.mirostat = p.mirostat;
  c.mirostat_tau = p.mirostatTau;
  c.mirostat_eta = p.mirostatEta;
  c.ignore_eos = p.ignoreEos;
  c.no_perf = true;
  if (!p.samplers.empty()) c.samplers = common_sampler_types_from_names(p.samplers);
  c.logit_bias = p.logitBias;
  if (!p.grammar.text.empty()) {
    c.grammar = common_grammar(static_cast<common_grammar_type>(p.grammar.kind + 1), p.grammar.text);
    c.grammar_lazy = p.grammar.lazy;
    for (const auto &t : p.grammar.triggers) {
      common_grammar_trigger ct;
      ct.type = static_cast<common_grammar_trigger_type>(t.type);
      ct.value = t.value;
      ct.token = t.token;
      c.grammar_triggers.push_back(std::move(ct));
    }
    c.generation_prompt = p.grammar.generationPrompt;
  }
  // The tags as llama-server passes them (server-schema.cpp): the first end tag is what an exhausted budget forces.
  if (!p.reasoning.ends.empty() && !p.reasoning.start.empty()) {
    c.reasoning_budget_tokens = p.reasoning.tokens;
    c.reasoning_budget_start = tokenized(model, p.reasoning.start);
    for (const auto &e : p.reasoning.ends) {
      if (!e.empty()) c.reasoning_budget_end.push_back(tokenized(model, e));
    }
    if (!c.reasoning_budget_end.empty()) c.reasoning_budget_forced = c.reasoning_budget_end.front();
    // The budget learns from the generation prompt whether it opened the block. What follows the opening tag there
    // ("<think>\n") would be counted, or with a budget of 0 taken for the forced end tag: it stops at the tag, unless
    // a grammar must be advanced past the whole prompt.
    std::string prompt = p.reasoning.generationPrompt;
    const bool grammarPrefill = !p.grammar.text.empty() && !p.grammar.lazy && p.grammar.kind != GrammarSpec::kUser;
    const size_t opened = prompt.rfind(p.reasoning.start);
    bool open = opened != std::string::npos;
    for (const auto &e : p.reasoning.ends) {
      const size_t closed = e.empty() ? std::string::npos : prompt.rfind(e);
      if (closed != std::string::npos && open && closed > opened) open = false;
    }
    if (!grammarPrefill && open) prompt.resize(opened + p.reasoning.start.size());
    if (!prompt.empty()) c.generation_prompt = prompt;
  }
  return c;
}

}  // namespace

void CommonSamplerDeleter::operator()(common_sampler *s) const {
  common_sampler_free(s);
}

SlotSampler::SlotSampler(const llama_model *model, const SamplingParams &p) {
  validate(model, p);
  const llama_vocab *vocab = llama_model_get_vocab(model);
  nVocab_ = llama_vocab_n_tokens(vocab);
  std::vector<llama_logit_bias> bias = p.logitBias;
  if (p.ignoreEos) {
    for (llama_token t = 0; t < nVocab_; ++t) {
      if (llama_vocab_is_eog(vocab, t)) bias.push_back({t, -INFINITY});
    }
  }
  constrained_ = !p.grammar.text.empty();
  if (p.temperature <= 0.0f && !penalised(p) && !constrained_ && !budgeted(p) && p.mirostat == 0) {
    // The model's suppressed tokens are banned, as common_sampler does.
    int32_t nSuppress = 0;
    const llama_token *suppress = llama_vocab_get_suppress_tokens(vocab, &nSuppress);
    for (int32_t i = 0; i < nSuppress; ++i) bias.push_back({suppress[i], -INFINITY});
    // Later entries for the same token add up, as in llama.cpp's logit-bias sampler.
    std::stable_sort(bias.begin(), bias.end(), [](const auto &a, const auto &b) { return a.token < b.token; });
    for (const auto &b : bias) {
      if (!bias_.empty() && bias_.back().token == b.token) bias_.back().bias += b.bias;
      else bias_.push_back(b);
    }
    fastGreedy_ = true;
    return;
  }
  common_params_sampling c = toCommon(model, p);
  c.logit_bias = bias;
  try {
    common_.reset(common_sampler_init(model, c));
  } catch (const std::exception &e) {
    throw Error(codes::kInvalidArgument, std::string("sampler: ") + e.what());
  }
  if (!common_) throw Error(codes::kInvalidArgument, "llama.cpp could not create the sampler");
}

const llama_token_data_array *SlotSampler::candidates() const {
  return common_ ? common_sampler_get_candidates(common_.get(), true) : nullptr;
}

void SlotSampler::acceptPrompt(const std::vector<llama_token> &tokens) {
  if (!common_) return;
  for (llama_token t : tokens) common_sampler_accept(common_.get(), t, false);
}

void SlotSampler::acceptOutput(const std::vector<llama_token> &tokens) {
  if (!common_) return;
  try {
    for (llama_token t : tokens) common_sampler_accept(common_.get(), t, true);
  } catch (const std::exception &e) {
    throw Error(codes::kInvalidArgument, std::string("the resumed output does not fit the sampler: ") + e.what());
  }
}

llama_token SlotSampler::sample(llama_context *ctx, int32_t outputIndex) {
  const llama_token tok = pick(ctx, outputIndex);
  if (common_) common_sampler_accept(common_.get(), tok, true);
  return tok;
}

std::vector<llama_token> SlotSampler::sampleAndAcceptN(llama_context *ctx, const std::vector<int32_t> &outputs,
                                                       const std::vector<llama_token> &draft) {
  if (common_) return common_sampler_sample_and_accept_n(common_.get(), ctx, outputs, draft);
  // The fast path has no state: the same rule on its argmax.
  std::vector<llama_token> ids;
  for (size_t i = 0; i < outputs.size(); ++i) {
    ids.push_back(pick(ctx, outputs[i]));
    if (i == draft.size() || ids.back() != draft[i]) break;
  }
  return ids;
}

std::vector<llama_token> SlotSampler::sampleSynthetic(llama_context *ctx, const std::vector<int32_t> &outputs,
                                                      const std::vector<llama_token> &draft,
                                                      const std::vector<double> &probs, std::mt19937 &rng,
                                                      const llama_vocab *vocab) {
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  std::vector<llama_token> ids;
  for (size_t i = 0; i < draft.size(); ++i) {
    const llama_token target = pick(ctx, outputs[i]);
    const bool accept = i < probs.size() && dist(rng) < probs[i] && !llama_vocab_is_eog(vocab, draft[i]);
    if (accept) {
      // As llama-server: a synthetic acceptance does not advance the grammar or reasoning state.
      if (common_) common_sampler_accept(common_.get(), draft[i], false);
      ids.push_back(draft[i]);
      continue;
    }
    if (common_) common_sampler_accept(common_.get(), target, true);
    ids.push_back(target);
    return ids;
  }
  ids.push_back(sample(ctx, outputs[draft.size()]));
  return ids;
}

llama_token SlotSampler::pick(llama_context *ctx, int32_t outputIndex) {
  if (common_) return common_sampler_sample(common_.get(), ctx, outputIndex);
  const float *logits = llama_get_logits_ith(ctx, outputIndex);
  if (logits == nullptr) throw Error(codes::kDecodeFailed, "no logits for this output");
  llama_token best = 0;
  float bestValue = -INFINITY;
  bool found = false;
  auto consider = [&](llama_token id, float v) {
    if (!found || v > bestValue) {
      best = id;
      bestValue = v;
      found = true;
    }
  };
  llama_token from = 0;
  for (const auto &b : bias_) {
    for (llama_token i = from; i < b.token; ++i) consider(i, logits[i]);
    consider(b.token, logits[b.token] + b.bias);
    from = b.token + 1;
  }
  for (llama_token i = from; i < nVocab_; ++i) consider(i, logits[i]);
  return best;
}

}  // namespace core
