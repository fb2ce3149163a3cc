#pragma once
// The plainest possible greedy generation: one sequence, one llama_context, the loop of
// llama.cpp's examples/simple. It is the reference the batch decoder is checked against.
#include <vector>

#include "llama.h"
#include "model.h"

namespace core {

struct ReferenceOptions {
  int nPredict = 16;
  int nCtx = 0;      // 0: prompt + nPredict
  int nThreads = 0;  // 0: llama.cpp's default
  int nBatch = 0;    // 0: the whole prompt in one llama_decode
};

// Returns the generated tokens; stops early on an end-of-generation token (not included).
std::vector<llama_token> referenceGreedy(const Model &model, const std::vector<llama_token> &prompt,
                                         const ReferenceOptions &opts);

}  // namespace core
