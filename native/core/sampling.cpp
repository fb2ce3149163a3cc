#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "errors.h"

namespace core {
namespace {

void check(bool ok, const std::string &message) {
  if (!ok) throw Error(codes::kInvalidArgument, message);
}

}  // namespace

SamplerPtr makeSampler(const llama_model *model, const SamplingParams &p) {
  check(std::isfinite(p.temperature) && p.temperature >= 0.0f, "temperature must be >= 0");
  check(p.topK >= 0, "top_k must be >= 0");
  check(std::isfinite(p.topP) && p.topP > 0.0f && p.topP <= 1.0f, "top_p must be in (0, 1]");
  check(std::isfinite(p.minP) && p.minP >= 0.0f && p.minP <= 1.0f, "min_p must be in [0, 1]");
  check(std::isfinite(p.repeatPenalty) && p.repeatPenalty > 0.0f, "repeat_penalty must be > 0");
  check(std::isfinite(p.presencePenalty) && std::isfinite(p.frequencyPenalty), "penalties must be finite");
  check(p.penaltyLastN >= -1, "penalty_last_n must be >= -1");
  const llama_vocab *vocab = llama_model_get_vocab(model);
  const int32_t nVocab = llama_vocab_n_tokens(vocab);
  for (const auto &b : p.logitBias) {
    check(b.token >= 0 && b.token < nVocab,
          "logit_bias token " + std::to_string(b.token) + " is outside the vocabulary");
    check(!std::isnan(b.bias), "logit_bias values must be numbers");
  }

  llama_sampler_chain_params cp = llama_sampler_chain_default_params();
  cp.no_perf = true;
  SamplerPtr chain(llama_sampler_chain_init(cp));
  if (!p.logitBias.empty()) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_logit_bias(nVocab, static_cast<int32_t>(p.logitBias.size()),
                                                                       p.logitBias.data()));
  }
  if (p.repeatPenalty != 1.0f || p.presencePenalty != 0.0f || p.frequencyPenalty != 0.0f) {
    const int32_t lastN = p.penaltyLastN == -1 ? llama_model_n_ctx_train(model) : p.penaltyLastN;
    llama_sampler_chain_add(chain.get(), llama_sampler_init_penalties(nVocab, lastN, p.repeatPenalty,
                                                                      p.frequencyPenalty, p.presencePenalty));
  }
  if (p.temperature <= 0.0f) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
    return chain;
  }
  if (p.topK > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(p.topK));
  if (p.topP < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(p.topP, 1));
  if (p.minP > 0.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(p.minP, 1));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(p.temperature));
  llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(p.seed));
  return chain;
}

SlotSampler::SlotSampler(const llama_model *model, const SamplingParams &p) : chain_(makeSampler(model, p)) {
  const bool penalties = p.repeatPenalty != 1.0f || p.presencePenalty != 0.0f || p.frequencyPenalty != 0.0f;
  if (p.temperature <= 0.0f && !penalties) {
    fastGreedy_ = true;
    nVocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model));
    bias_ = p.logitBias;
    // Later entries for the same token add up, as in llama.cpp's logit-bias sampler.
    std::stable_sort(bias_.begin(), bias_.end(), [](const auto &a, const auto &b) { return a.token < b.token; });
    std::vector<llama_logit_bias> merged;
    for (const auto &b : bias_) {
      if (!merged.empty() && merged.back().token == b.token) merged.back().bias += b.bias;
      else merged.push_back(b);
    }
    bias_.swap(merged);
    chain_.reset();
  }
}

llama_token SlotSampler::sample(llama_context *ctx, int32_t outputIndex) {
  if (!fastGreedy_) return llama_sampler_sample(chain_.get(), ctx, outputIndex);
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
