#pragma once
// Per-slot sampler chains built from OpenAI-style parameters.
#include <cstdint>
#include <memory>
#include <vector>

#include "llama.h"

namespace core {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int32_t topK = 0;          // 0: off
  float topP = 1.0f;         // 1: off
  float minP = 0.0f;         // 0: off
  uint32_t seed = LLAMA_DEFAULT_SEED;
  float repeatPenalty = 1.0f;  // 1: off
  float presencePenalty = 0.0f;
  float frequencyPenalty = 0.0f;
  int32_t penaltyLastN = 64;
  std::vector<llama_logit_bias> logitBias;
};

struct SamplerDeleter {
  void operator()(llama_sampler *s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// Throws INVALID_ARGUMENT for out-of-range values.
SamplerPtr makeSampler(const llama_model *model, const SamplingParams &params);

// A slot's sampler. Plain greedy (with optional logit bias) takes the argmax straight from the logits:
// llama_sampler_sample would first copy every logit into a candidate array, which on a 262k vocabulary
// costs about a millisecond per slot per step. The result is the same token llama.cpp's greedy picks
// (first maximum in id order, after bias).
class SlotSampler {
 public:
  SlotSampler() = default;
  SlotSampler(const llama_model *model, const SamplingParams &params);
  llama_token sample(llama_context *ctx, int32_t outputIndex);
  explicit operator bool() const { return fastGreedy_ || chain_ != nullptr; }

 private:
  SamplerPtr chain_;
  bool fastGreedy_ = false;
  int32_t nVocab_ = 0;
  std::vector<llama_logit_bias> bias_;  // sorted by token, for the fast path
};

}  // namespace core
