#include "reference_generate.h"

#include <algorithm>
#include <memory>

#include "errors.h"

namespace core {

std::vector<llama_token> referenceGreedy(const Model &model, const std::vector<llama_token> &prompt,
                                         const ReferenceOptions &opts) {
  if (prompt.empty()) throw Error(codes::kInvalidArgument, "prompt must contain at least one token");
  if (opts.nPredict < 0) throw Error(codes::kInvalidArgument, "nPredict must be >= 0");
  for (llama_token t : prompt) model.checkToken(t);

  const int nPrompt = static_cast<int>(prompt.size());
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(opts.nCtx > 0 ? opts.nCtx : nPrompt + opts.nPredict);
  const int nBatch = opts.nBatch > 0 ? opts.nBatch : nPrompt;
  cp.n_batch = static_cast<uint32_t>(std::max(nBatch, 1));
  cp.n_ubatch = cp.n_batch;
  cp.n_seq_max = 1;
  cp.no_perf = true;
  if (opts.nThreads > 0) {
    cp.n_threads = opts.nThreads;
    cp.n_threads_batch = opts.nThreads;
  }
  if (static_cast<uint32_t>(nPrompt + opts.nPredict) > cp.n_ctx) {
    throw Error(codes::kContextExceeded, "prompt (" + std::to_string(nPrompt) + ") + nPredict exceeds the context (" +
                                             std::to_string(cp.n_ctx) + ")");
  }
  std::unique_ptr<llama_context, decltype(&llama_free)> ctx(llama_init_from_model(model.raw(), cp), llama_free);
  if (!ctx) throw Error(codes::kContextFailed, "could not create a llama_context");

  std::vector<llama_token> tokens(prompt);
  // Prompt in chunks of nBatch, then one token at a time.
  for (int pos = 0; pos < nPrompt; pos += nBatch) {
    const int n = std::min(nBatch, nPrompt - pos);
    if (llama_decode(ctx.get(), llama_batch_get_one(tokens.data() + pos, n)) != 0) {
      throw Error(codes::kDecodeFailed, "llama_decode failed on the prompt");
    }
  }
  std::unique_ptr<llama_sampler, decltype(&llama_sampler_free)> greedy(llama_sampler_init_greedy(), llama_sampler_free);
  std::vector<llama_token> out;
  for (int i = 0; i < opts.nPredict; ++i) {
    llama_token next = llama_sampler_sample(greedy.get(), ctx.get(), -1);
    if (model.isEog(next)) break;
    out.push_back(next);
    if (i + 1 == opts.nPredict) break;
    if (llama_decode(ctx.get(), llama_batch_get_one(&next, 1)) != 0) {
      throw Error(codes::kDecodeFailed, "llama_decode failed while generating");
    }
  }
  return out;
}

}  // namespace core
