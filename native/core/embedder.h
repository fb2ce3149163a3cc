#pragma once
// Embeddings over one llama_context made with embeddings = true: many inputs, one sequence each, packed into as
// few llama_decode calls as the sequence and token limits allow. Mechanism only: which requests share a call is
// the caller's policy (src/engine/embedder.ts gathers concurrent requests into one).
//
// Threading: embed() runs on a thread of the caller's (the addon's own thread for this context); calls are
// serialised by a mutex, since they share the context.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "llama.h"
#include "model.h"

namespace core {

struct EmbedderOptions {
  int32_t nSeqMax = 1;   // inputs in one llama_decode (the server's --parallel)
  int32_t nCtx = 0;      // the most tokens of one input; 0: the model's training context
  int32_t nBatch = 512;  // tokens in one llama_decode, and its ubatch: non-causal attention needs an input whole
  int32_t nThreads = 0;  // 0: llama.cpp's default
  int32_t nThreadsBatch = 0;
  int32_t pooling = -1;  // -1: the model's; else llama_pooling_type (0 none, 1 mean, 2 cls, 3 last)
};

struct Embedding {
  // One row of nEmbd floats per pooled input; with pooling none, one row per token.
  std::vector<float> values;
  int32_t rows = 0;
  int32_t tokens = 0;  // the input's token count
};

struct EmbedResult {
  std::vector<Embedding> embeddings;  // in input order
  int32_t decodes = 0;                // llama_decode calls it took
  int64_t decodeMicros = 0;
};

class Embedder {
 public:
  // Throws CONTEXT_FAILED when llama.cpp can't make the context, INVALID_ARGUMENT on bad options.
  Embedder(std::shared_ptr<Model> model, const EmbedderOptions &opts);
  ~Embedder();
  Embedder(const Embedder &) = delete;
  Embedder &operator=(const Embedder &) = delete;

  // Throws INVALID_ARGUMENT (an empty input, a token outside the vocabulary), CONTEXT_EXCEEDED (an input longer
  // than maxInputTokens()), DECODE_FAILED. Nothing is returned unless every input was embedded.
  EmbedResult embed(const std::vector<std::vector<llama_token>> &inputs);

  int32_t pooling() const { return pooling_; }
  int32_t nEmbd() const { return nEmbd_; }
  int32_t maxInputTokens() const { return maxInput_; }
  const EmbedderOptions &options() const { return opts_; }

 private:
  // Decodes inputs[first, last) in one call and appends their embeddings.
  void decodeGroup(const std::vector<std::vector<llama_token>> &inputs, size_t first, size_t last, EmbedResult &out);

  std::shared_ptr<Model> model_;
  EmbedderOptions opts_;
  llama_context *ctx_ = nullptr;
  llama_batch batch_{};
  int32_t pooling_ = 0;
  int32_t nEmbd_ = 0;
  int32_t maxInput_ = 0;
  int32_t seqsPerDecode_ = 1;
  std::mutex mutex_;
};

}  // namespace core
