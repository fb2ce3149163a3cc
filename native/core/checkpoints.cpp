// Sliding-window checkpoints (checkpoints.h): where a prefill pauses to take one, taking one (pruned as
// llama-server prunes them), where a slot can resume a prompt, and restoring the checkpoint it resumes at. The
// checkpoints ride along in saved states (slot_state.cpp) and slot copies (slot_kv.cpp); the step pauses at the
// breaks (decoder_batch.cpp).
#include "checkpoints.h"

#include <algorithm>

#include "backend.h"
#include "batch_decoder.h"
#include "decoder_slot.h"
#include "slot_state.h"

namespace core {

std::vector<int32_t> prefillBreaks(int32_t n, int32_t common, int32_t keep, std::vector<int32_t> userStarts,
                                   int32_t lastCheckpoint, int32_t nBatch, int32_t nUbatch, int32_t minStep) {
  std::vector<int32_t> breaks;
  for (int32_t at : {common, n - std::min(nBatch, 4 + nUbatch), n - 4}) {
    if (at > keep && at < n) breaks.push_back(at);
  }
  std::sort(userStarts.begin(), userStarts.end());
  int32_t last = lastCheckpoint;
  for (int32_t at : userStarts) {
    if (at <= keep || at >= n) continue;
    if (at == userStarts.back() || last < 0 || at > last + minStep) {
      breaks.push_back(at);
      last = at;
    }
  }
  std::sort(breaks.begin(), breaks.end());
  breaks.erase(std::unique(breaks.begin(), breaks.end()), breaks.end());
  return breaks;
}

bool BatchDecoder::checkpointing() const {
  return nSwa_ > 0 && !opts_.swaFull && opts_.ctxCheckpoints > 0;
}

int32_t BatchDecoder::resumeFrom(const Slot &s) const {
  if (nSwa_ <= 0 || opts_.swaFull || s.cache.size() == 0) return 0;
  // Continuing at position k needs the sliding window's cells before k; llama.cpp keeps every position from
  // seq_pos_min on, so the window covers k when pos_min < k - n_swa (or nothing was dropped yet).
  const llama_pos posMin = llama_memory_seq_pos_min(llama_get_memory(ctx_), s.id);
  if (posMin == 0) return 0;
  if (posMin < 0) return static_cast<int32_t>(s.cache.size()) + 1;
  return posMin + nSwa_ + 1;
}

ResumePoints BatchDecoder::resumeOf(const Slot &s) const {
  ResumePoints r;
  r.from = resumeFrom(s);
  for (const Checkpoint &c : s.checkpoints) r.checkpoints.push_back(c.nTokens);
  return r;
}

size_t BatchDecoder::resumeAt(Slot &s, size_t keep) {
  if (keep == 0 || static_cast<int64_t>(keep) >= resumeFrom(s)) return keep;
  for (auto it = s.checkpoints.rbegin(); it != s.checkpoints.rend(); ++it) {
    if (it->nTokens > static_cast<int32_t>(keep)) continue;
    // Replaces the slot's sliding-window cells only; the full-attention layers keep theirs, cut at nTokens next.
    takeLastLogError();
    const size_t read =
        llama_state_seq_set_data_ext(ctx_, it->data.data(), it->data.size(), s.id, LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY);
    takeLastLogError();
    return read == it->data.size() ? static_cast<size_t>(it->nTokens) : 0;
  }
  return 0;
}

void BatchDecoder::checkpoint(Slot &s) {
  const int32_t n = static_cast<int32_t>(s.cache.size());
  if (n == 0 || (!s.checkpoints.empty() && s.checkpoints.back().nTokens >= n)) return;
  // As llama-server: earlier requests' checkpoints too close to an older one go (a conversation keeps its first
  // and its latest turns'), then the oldest while there are too many.
  int32_t last = -1;
  for (auto it = s.checkpoints.begin(); it != s.checkpoints.end();) {
    if (it->request != s.request && last >= 0 && it->nTokens <= last + opts_.checkpointMinStep) {
      it = s.checkpoints.erase(it);
      continue;
    }
    last = it->nTokens;
    ++it;
  }
  while (static_cast<int32_t>(s.checkpoints.size()) >= opts_.ctxCheckpoints) s.checkpoints.erase(s.checkpoints.begin());
  Checkpoint c;
  c.nTokens = n;
  c.request = s.request;
  if (appendSeqState(ctx_, c.data, s.id, LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY) == 0) {
    takeLastLogError();  // no checkpoint: a later prompt may prefill more, nothing fails
    return;
  }
  s.checkpoints.push_back(std::move(c));
}

}  // namespace core
