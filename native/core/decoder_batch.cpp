// Batch assembly: which tokens go into a step's llama_decode. Every generating slot adds its sampled token (with
// logits) and its draft, if any; prefilling slots share what is left of the budget in slot order starting after the
// last one served, each pausing at its checkpoint breaks (checkpoints.h). Marks each slot's share for the step
// (decoder_step.cpp).
#include <algorithm>

#include "batch_decoder.h"
#include "decoder_slot.h"

namespace core {
namespace {

void batchAdd(llama_batch &b, llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
  const int32_t i = b.n_tokens++;
  b.token[i] = token;
  b.pos[i] = pos;
  b.n_seq_id[i] = 1;
  b.seq_id[i][0] = seq;
  b.logits[i] = logits;
}

}  // namespace

int32_t BatchDecoder::assembleBatch(int32_t prefillBudget) {
  batch_.n_tokens = 0;
  int32_t lastServed = -1;
  for (auto &sp : slots_) {
    sp->logitIndex = -1;
    sp->promptThisStep = 0;
    if (sp->state != SlotState::kGenerating) continue;
    sp->logitIndex = batch_.n_tokens;
    llama_pos pos = static_cast<llama_pos>(sp->cache.size());
    batchAdd(batch_, sp->last, pos++, sp->id, true);
    // Its draft follows, each token with logits: the target's verdict on every position comes from this decode.
    for (llama_token t : sp->draft) batchAdd(batch_, t, pos++, sp->id, true);
  }
  int32_t remaining = prefillBudget;
  for (int32_t k = 0; k < opts_.nSlots && remaining > 0; ++k) {
    Slot &s = *slots_[static_cast<size_t>((nextPrefill_ + k) % opts_.nSlots)];
    if (s.state != SlotState::kPrefill) continue;
    const int32_t pending = static_cast<int32_t>(s.pending.size());
    int32_t take = std::min<int32_t>(pending, remaining);
    if (!s.breaks.empty()) {
      // A break starts a batch of its own, and the sliding-window state before it is saved: a next prompt that
      // diverges near there (a re-rendered reply, a regenerated turn, another user after a shared system prompt)
      // resumes at it instead of from the start.
      const int32_t at = static_cast<int32_t>(s.cache.size());
      if (std::binary_search(s.breaks.begin(), s.breaks.end(), at)) checkpoint(s);
      const auto next = std::upper_bound(s.breaks.begin(), s.breaks.end(), at);
      if (next != s.breaks.end() && *next < at + take) take = *next - at;
    }
    const bool finishes = take == pending;
    for (int32_t j = 0; j < take; ++j) {
      const bool logits = finishes && j == take - 1;
      if (logits) s.logitIndex = batch_.n_tokens;
      batchAdd(batch_, s.pending[static_cast<size_t>(j)], static_cast<llama_pos>(s.cache.size() + j), s.id, logits);
    }
    s.promptThisStep = take;
    remaining -= take;
    lastServed = s.id;
  }
  return lastServed;
}

}  // namespace core
