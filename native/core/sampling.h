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

}  // namespace core
