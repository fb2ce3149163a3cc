#include "embedder.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "backend.h"
#include "errors.h"

namespace core {

Embedder::Embedder(std::shared_ptr<Model> model, const EmbedderOptions &opts) : model_(std::move(model)), opts_(opts) {
  ensureBackend();
  require(opts.nSeqMax >= 1 && static_cast<size_t>(opts.nSeqMax) <= llama_max_parallel_sequences(),
          "nSeqMax must be in [1, " + std::to_string(llama_max_parallel_sequences()) + "]");
  require(opts.nCtx >= 0, "nCtx must be >= 0");
  require(opts.nBatch >= 1, "nBatch must be >= 1");
  require(opts.nThreads >= 0 && opts.nThreadsBatch >= 0, "threads must be >= 0");
  require(opts.pooling >= -1 && opts.pooling <= LLAMA_POOLING_TYPE_LAST,
          "pooling must be -1 (the model's), 0 none, 1 mean, 2 cls or 3 last");
  const int32_t nCtxTrain = llama_model_n_ctx_train(model_->raw());
  // Learned position embeddings (BERT) have nCtxTrain rows: a longer input would read past them.
  const int32_t perInput = opts.nCtx > 0 ? std::min(opts.nCtx, nCtxTrain) : nCtxTrain;
  maxInput_ = std::min(perInput, opts.nBatch);
  require(maxInput_ >= 1, "the model's training context is empty");

  llama_context_params cp = llama_context_default_params();
  cp.embeddings = true;
  cp.pooling_type = static_cast<enum llama_pooling_type>(opts.pooling);
  cp.n_ctx = static_cast<uint32_t>(static_cast<int64_t>(maxInput_) * opts.nSeqMax);
  cp.n_batch = static_cast<uint32_t>(opts.nBatch);
  cp.n_ubatch = static_cast<uint32_t>(opts.nBatch);
  cp.n_seq_max = static_cast<uint32_t>(opts.nSeqMax);
  cp.kv_unified = false;  // a causal embedding model's KV: maxInput_ cells per sequence, cleared after every call
  cp.no_perf = true;
  if (opts.nThreads > 0) cp.n_threads = opts.nThreads;
  cp.n_threads_batch = opts.nThreadsBatch > 0 ? opts.nThreadsBatch : cp.n_threads;

  auto create = [&]() {
    takeLastLogError();
    llama_context *ctx = llama_init_from_model(model_->raw(), cp);
    if (ctx == nullptr) {
      const std::string why = takeLastLogError();
      throw Error(codes::kContextFailed, "could not create the embedding context" + (why.empty() ? "" : ": " + why));
    }
    return ctx;
  };
  // Over a model with a KV cache (a causal one), llama.cpp's pooling across several sequences is unsafe for mean (a
  // ggml assertion as the context is made: the tiny llama preset, 3 sequences) and wrong for cls (another
  // sequence's row): such a model gets a one-sequence context for those two. A one-sequence context says which case
  // this is. Non-causal models (BERT: no KV cache), and last or none pooling, pack inputs across nSeqMax sequences
  // (test/engine/embedder.test.ts checks packed against alone for each).
  const uint32_t nSeqMax = cp.n_seq_max;
  cp.n_seq_max = 1;
  cp.n_ctx = static_cast<uint32_t>(maxInput_);
  ctx_ = create();
  pooling_ = static_cast<int32_t>(llama_pooling_type(ctx_));
  const bool oneSequence =
      llama_get_memory(ctx_) != nullptr && (pooling_ == LLAMA_POOLING_TYPE_MEAN || pooling_ == LLAMA_POOLING_TYPE_CLS);
  if (nSeqMax > 1 && !oneSequence) {
    llama_free(ctx_);
    ctx_ = nullptr;
    cp.n_seq_max = nSeqMax;
    cp.n_ctx = static_cast<uint32_t>(static_cast<int64_t>(maxInput_) * nSeqMax);
    ctx_ = create();
  }
  seqsPerDecode_ = static_cast<int32_t>(cp.n_seq_max);
  if (pooling_ == LLAMA_POOLING_TYPE_RANK) {
    llama_free(ctx_);
    ctx_ = nullptr;
    throw Error(codes::kInvalidArgument, "rank pooling is for reranking, which is not offered; pass another pooling");
  }
  nEmbd_ = llama_model_n_embd_out(model_->raw());
  batch_ = llama_batch_init(opts.nBatch, 0, 1);
}

Embedder::~Embedder() {
  llama_batch_free(batch_);
  llama_free(ctx_);
}

EmbedResult Embedder::embed(const std::vector<std::vector<llama_token>> &inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto &tokens = inputs[i];
    if (tokens.empty()) throw Error(codes::kInvalidArgument, "input " + std::to_string(i) + " has no tokens");
    if (tokens.size() > static_cast<size_t>(maxInput_)) {
      throw Error(codes::kContextExceeded, "input " + std::to_string(i) + " has " + std::to_string(tokens.size()) +
                                               " tokens; the most one input may have is " + std::to_string(maxInput_));
    }
    for (llama_token t : tokens) model_->checkToken(t);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  EmbedResult out;
  out.embeddings.reserve(inputs.size());
  // Greedy packing in input order: a call takes inputs while it has a free sequence and room for all their tokens.
  size_t first = 0;
  while (first < inputs.size()) {
    size_t last = first;
    size_t tokens = 0;
    while (last < inputs.size() && last - first < static_cast<size_t>(seqsPerDecode_) &&
           tokens + inputs[last].size() <= static_cast<size_t>(opts_.nBatch)) {
      tokens += inputs[last].size();
      ++last;
    }
    decodeGroup(inputs, first, last, out);
    first = last;
  }
  return out;
}

void Embedder::decodeGroup(const std::vector<std::vector<llama_token>> &inputs, size_t first, size_t last,
                           EmbedResult &out) {
  batch_.n_tokens = 0;
  for (size_t k = first; k < last; ++k) {
    const auto seq = static_cast<llama_seq_id>(k - first);
    const auto &tokens = inputs[k];
    for (size_t p = 0; p < tokens.size(); ++p) {
      const int32_t i = batch_.n_tokens++;
      batch_.token[i] = tokens[p];
      batch_.pos[i] = static_cast<llama_pos>(p);
      batch_.n_seq_id[i] = 1;
      batch_.seq_id[i][0] = seq;
      batch_.logits[i] = true;  // every token is an output: pooling reads them all
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  takeLastLogError();
  const int32_t rc = llama_decode(ctx_, batch_);
  out.decodeMicros +=
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  ++out.decodes;
  // A causal model's KV (non-causal ones have none) is not kept between calls: every input starts at position 0.
  if (llama_memory_t mem = llama_get_memory(ctx_)) llama_memory_clear(mem, true);
  if (rc != 0) {
    const std::string why = takeLastLogError();
    throw Error(codes::kDecodeFailed,
                "llama_decode returned " + std::to_string(rc) + " while embedding" + (why.empty() ? "" : ": " + why));
  }
  const size_t n = static_cast<size_t>(nEmbd_);
  int32_t row = 0;
  for (size_t k = first; k < last; ++k) {
    Embedding e;
    e.tokens = static_cast<int32_t>(inputs[k].size());
    if (pooling_ == LLAMA_POOLING_TYPE_NONE) {
      e.values.reserve(n * inputs[k].size());
      for (int32_t t = 0; t < e.tokens; ++t, ++row) {
        const float *v = llama_get_embeddings_ith(ctx_, row);
        if (v == nullptr) throw Error(codes::kDecodeFailed, "llama.cpp returned no embedding for a token");
        e.values.insert(e.values.end(), v, v + n);
      }
      e.rows = e.tokens;
    } else {
      const float *v = llama_get_embeddings_seq(ctx_, static_cast<llama_seq_id>(k - first));
      if (v == nullptr) throw Error(codes::kDecodeFailed, "llama.cpp returned no pooled embedding for a sequence");
      e.values.assign(v, v + n);
      e.rows = 1;
    }
    out.embeddings.push_back(std::move(e));
  }
}

}  // namespace core
