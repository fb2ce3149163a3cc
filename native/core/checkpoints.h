#pragma once
// Sliding-window checkpoints of a decoder slot. A sliding-window model keeps only the last window's KV in its SWA
// layers, so a prompt diverging from a slot's cache before its end could reuse none of it; as llama-server, the SWA
// state is saved (host memory) at chosen points of a prefill, and a later prompt resumes at the newest checkpoint at
// or before where it diverges. This header: what a checkpoint is and where a prefill pauses to take one. Taking,
// pruning and restoring them, and where a slot can resume, are BatchDecoder's members in checkpoints.cpp.
#include <cstdint>
#include <vector>

namespace core {

// The sliding-window layers' KV of one slot when it held nTokens tokens (LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY): with the
// full-attention layers' cells, which stay, it lets the slot resume at nTokens after its window has moved on.
struct Checkpoint {
  int32_t nTokens = 0;
  int64_t request = 0;  // the slot's request that made it
  std::vector<uint8_t> data;
};

// Where a prompt of n tokens pauses its prefill to checkpoint (token counts past `keep`, ascending, unique). As
// llama-server: min(nBatch, 4 + nUbatch) and 4 tokens before its end, and at user messages (the last one, and
// earlier ones more than minStep past the previous break or the slot's newest checkpoint `lastCheckpoint`, -1:
// none); and at `common`, where it stops sharing the cache it could not fully resume, since that is where a prefix
// shared by several prompts (a long system prompt) ends: the next prompt sharing it resumes there.
std::vector<int32_t> prefillBreaks(int32_t n, int32_t common, int32_t keep, std::vector<int32_t> userStarts,
                                   int32_t lastCheckpoint, int32_t nBatch, int32_t nUbatch, int32_t minStep);

}  // namespace core
