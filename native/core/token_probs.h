#pragma once
// The probabilities a slot's event carries with nProbs (logprobs): the generated token's and the nProbs most likely
// tokens', from the raw logits or after the sampler chain.
#include <cstdint>

#include "batch_decoder.h"
#include "llama.h"
#include "slot_sampler.h"

namespace core {

// Fills ev.chosen and ev.top for token `tok` sampled at output `outputIndex`: log-softmax of the logits, or with
// postSampling the probabilities the sampler drew from (most likely first).
void recordProbs(llama_context *ctx, int32_t outputIndex, int32_t nVocab, const SlotSampler &sampler, int32_t nProbs,
                 bool postSampling, llama_token tok, SlotEvent &ev);

}  // namespace core
