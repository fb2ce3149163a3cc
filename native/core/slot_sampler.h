#pragma once
// The sampler of one slot. Plain greedy takes the argmax straight from the logits; anything else (temperature,
// penalties, DRY, grammars with lazy triggers, ...) is llama.cpp's common_sampler, the one llama-server uses, so a
// request samples the same way on both servers.
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "llama.h"

struct common_sampler;

namespace core {

// A grammar constraint as llama.cpp's chat layer describes it (common_chat_params).
struct GrammarTrigger {
  enum Type { kToken = 0, kWord = 1, kPattern = 2, kPatternFull = 3 };
  int32_t type = kWord;
  std::string value;
  llama_token token = LLAMA_TOKEN_NULL;  // kToken only
};

struct GrammarSpec {
  // Who wrote the grammar: output-format and tool-call grammars are advanced past the generation prompt the
  // template already wrote; a user's grammar starts from its root.
  enum Kind { kUser = 0, kOutputFormat = 1, kToolCalls = 2 };
  std::string text;  // GBNF; empty: unconstrained
  int32_t kind = kUser;
  bool lazy = false;  // applied only once a trigger appears (tool calls amid free text)
  std::vector<GrammarTrigger> triggers;
  std::string generationPrompt;
};

// llama.cpp's reasoning budget (common/reasoning-budget.h), as llama-server's reasoning_budget_tokens: at most
// `tokens` tokens between the template's thinking tags, then the first end tag is forced. With a lazy grammar it also
// keeps the grammar out of the reasoning, as in llama-server, whatever the budget.
struct ReasoningBudget {
  int32_t tokens = -1;  // -1: no limit
  std::string start;    // the template's thinking tags (common_chat_params); ends empty: no reasoning block
  std::vector<std::string> ends;
  std::string generationPrompt;  // what the prompt already wrote (it may have opened the block)
};

// Neutral defaults: greedy, every filter off. The server layer applies llama-server's defaults (src/config.ts).
struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  float dynatempRange = 0.0f;
  float dynatempExponent = 1.0f;
  int32_t topK = 0;  // 0: off
  float topP = 1.0f;
  float minP = 0.0f;
  float typicalP = 1.0f;
  float topNSigma = -1.0f;
  float xtcProbability = 0.0f;
  float xtcThreshold = 0.1f;
  int32_t minKeep = 0;
  uint32_t seed = LLAMA_DEFAULT_SEED;
  float repeatPenalty = 1.0f;  // 1: off
  float presencePenalty = 0.0f;
  float frequencyPenalty = 0.0f;
  int32_t penaltyLastN = 64;   // -1: the whole context
  float dryMultiplier = 0.0f;  // 0: off
  float dryBase = 1.75f;
  int32_t dryAllowedLength = 2;
  int32_t dryPenaltyLastN = -1;
  std::vector<std::string> drySequenceBreakers = {"\n", ":", "\"", "*"};
  int32_t mirostat = 0;  // 0 off, 1, 2
  float mirostatTau = 5.0f;
  float mirostatEta = 0.1f;
  std::vector<std::string> samplers;  // order by llama.cpp names; empty: llama.cpp's default order
  bool ignoreEos = false;
  std::vector<llama_logit_bias> logitBias;
  GrammarSpec grammar;
  ReasoningBudget reasoning;
};

struct CommonSamplerDeleter {
  void operator()(common_sampler *s) const;
};

class SlotSampler {
 public:
  SlotSampler() = default;
  // Throws INVALID_ARGUMENT for out-of-range values or a grammar that does not parse.
  SlotSampler(const llama_model *model, const SamplingParams &params);
  // Prompt tokens, so penalties see the history as in llama-server (no effect on the greedy path).
  void acceptPrompt(const std::vector<llama_token> &tokens);
  // Tokens this slot's request generated before (it resumes): recorded as sample() records its own, grammar state
  // included. Throws INVALID_ARGUMENT when the grammar rejects one.
  void acceptOutput(const std::vector<llama_token> &tokens);
  // Samples the token at `outputIndex` and records it (penalties, grammar state).
  llama_token sample(llama_context *ctx, int32_t outputIndex);
  // Speculative verification (common_sampler_sample_and_accept_n): samples outputs[i] for i = 0.. while the sampled
  // token equals draft[i]; returns the tokens sampled (the accepted draft and the target's next token), all recorded.
  std::vector<llama_token> sampleAndAcceptN(llama_context *ctx, const std::vector<int32_t> &outputs,
                                            const std::vector<llama_token> &draft);
  // Benchmarking only (llama-server's synthetic acceptance): draft[i] is accepted with probability probs[i] whatever
  // the target samples, an end-of-generation token never; the first rejection takes the target's token.
  std::vector<llama_token> sampleSynthetic(llama_context *ctx, const std::vector<int32_t> &outputs,
                                           const std::vector<llama_token> &draft, const std::vector<double> &probs,
                                           std::mt19937 &rng, const llama_vocab *vocab);
  bool constrained() const { return constrained_; }
  // What the last sample() chose from after the chain (most likely first), or nullptr on the greedy path.
  const llama_token_data_array *candidates() const;
  explicit operator bool() const { return fastGreedy_ || common_ != nullptr; }

 private:
  // The token at `outputIndex`, not recorded (the fast path records nothing).
  llama_token pick(llama_context *ctx, int32_t outputIndex);

  std::unique_ptr<common_sampler, CommonSamplerDeleter> common_;
  bool fastGreedy_ = false;
  bool constrained_ = false;
  int32_t nVocab_ = 0;
  std::vector<llama_logit_bias> bias_;  // sorted by token, merged, for the fast path
};

}  // namespace core
