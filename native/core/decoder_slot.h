#pragma once
// BatchDecoder::Slot: one slot's state as the decoder's files share it (batch_decoder.cpp, decoder_batch.cpp,
// decoder_step.cpp, checkpoints.cpp, slot_kv.cpp, slot_state.cpp). Internal to the decoder: nothing outside those
// files includes it.
#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "batch_decoder.h"
#include "checkpoints.h"
#include "slot_sampler.h"
#include "token_cache.h"

namespace core {

struct BatchDecoder::Slot {
  int32_t id = 0;
  SlotState state = SlotState::kIdle;
  TokenCache cache;
  std::vector<Checkpoint> checkpoints;  // ascending nTokens, all <= cache.size()
  int64_t request = 0;                  // counts start()s
  std::vector<llama_token> pending;     // prompt tokens still to decode
  std::vector<int32_t> breaks;          // where the prefill pauses for a checkpoint (token counts, ascending)
  SlotSampler sampler;
  std::vector<llama_token> preserved;  // sorted
  bool renderSpecial = false;
  int32_t nProbs = 0;
  bool postSampling = false;
  bool contextShift = false;
  int32_t nKeep = 0;
  int32_t maxTokens = 0;
  int32_t generated = 0;
  llama_token last = LLAMA_TOKEN_NULL;  // sampled, not yet in the KV
  std::string utf8;                     // bytes held back until a character is complete
  std::atomic<bool> cancelRequested{false};
  int32_t draftTokens = 0;  // this request's verified drafts, and the tokens of them accepted
  int32_t draftAccepted = 0;
  std::vector<llama_token> draft;  // this step's draft, verified by its decode
  std::mt19937 synthRng;           // synthetic acceptance (benchmarking): seeded per request, as llama-server
  // Per step:
  int32_t logitIndex = -1;
  int32_t promptThisStep = 0;
};

}  // namespace core
