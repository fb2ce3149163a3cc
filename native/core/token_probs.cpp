// Logprobs of a sampled token (token_probs.h).
#include "token_probs.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <vector>

namespace core {

void recordProbs(llama_context *ctx, int32_t outputIndex, int32_t nVocab, const SlotSampler &sampler, int32_t nProbs,
                 bool postSampling, llama_token tok, SlotEvent &ev) {
  ev.hasProbs = true;
  const auto *candidates = postSampling ? sampler.candidates() : nullptr;
  if (candidates != nullptr) {
    // After the sampler chain: the probabilities it sampled from, most likely first.
    ev.chosen = {tok, 0.0f};
    for (size_t i = 0; i < candidates->size; ++i) {
      const llama_token_data &d = candidates->data[i];
      if (d.id == tok) ev.chosen.logprob = d.p;
      if (static_cast<int32_t>(ev.top.size()) < nProbs && d.p > 0.0f) ev.top.push_back({d.id, d.p});
    }
    return;
  }
  const float *logits = llama_get_logits_ith(ctx, outputIndex);
  float max = -INFINITY;
  for (int32_t i = 0; i < nVocab; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  for (int32_t i = 0; i < nVocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  const float logZ = max + static_cast<float>(std::log(sum));
  // The nProbs largest logits: a min-heap of that size over the vocabulary.
  auto greater = [&](llama_token a, llama_token b) { return logits[a] > logits[b]; };
  std::priority_queue<llama_token, std::vector<llama_token>, decltype(greater)> heap(greater);
  for (llama_token i = 0; i < nVocab; ++i) {
    if (static_cast<int32_t>(heap.size()) < nProbs) heap.push(i);
    else if (logits[i] > logits[heap.top()]) {
      heap.pop();
      heap.push(i);
    }
  }
  ev.top.resize(heap.size());
  for (size_t k = heap.size(); k-- > 0;) {
    ev.top[k] = {heap.top(), logits[heap.top()] - logZ};
    heap.pop();
  }
  ev.chosen = {tok, logits[tok] - logZ};
  if (postSampling) {
    // Greedy: the chain leaves only the chosen token.
    ev.chosen.logprob = 1.0f;
    ev.top = {{tok, 1.0f}};
  }
}

}  // namespace core
