// A slot's KV cells changed outside a decode: dropped (forgetKv), copied into another slot (copyPrefix) and shifted
// when a generating slot is full (shiftContext, llama-server's context shift). The tokens and checkpoints that
// describe the cells change with them.
#include <algorithm>
#include <string>

#include "backend.h"
#include "batch_decoder.h"
#include "decoder_slot.h"
#include "errors.h"
#include "slot_state.h"

namespace core {

void BatchDecoder::forgetKv(Slot &s) {
  llama_memory_seq_rm(llama_get_memory(ctx_), s.id, -1, -1);
  if (spec_) spec_->trim(s.id, 0);
  s.cache.clear();
  s.checkpoints.clear();
}

int32_t BatchDecoder::copyPrefix(int32_t src, int32_t dst, int32_t count) {
  std::unique_lock<std::mutex> lock(stepMutex_, std::try_to_lock);
  if (!lock.owns_lock()) throw Error(codes::kBusy, "a step is running; copy slots between steps");
  checkSlot(src);
  Slot &to = idleSlot(dst, "copy into");
  if (src == dst) return static_cast<int32_t>(to.cache.size());
  const Slot &from = *slots_[static_cast<size_t>(src)];
  const int32_t n = count < 0 ? static_cast<int32_t>(from.cache.size())
                              : std::min<int32_t>(count, static_cast<int32_t>(from.cache.size()));
  llama_memory_t mem = llama_get_memory(ctx_);
  llama_memory_seq_rm(mem, dst, -1, -1);
  if (spec_) spec_->copy(src, dst, n, opts_.kvUnified);
  if (n > 0 && opts_.kvUnified) {
    // One stream: the cells are shared, only their sequence sets change.
    llama_memory_seq_cp(mem, src, dst, 0, n);
  } else if (n > 0) {
    // Between streams llama.cpp copies whole sequences only, and defers the data to the next decode, where it
    // would overwrite whatever is written into dst before (a checkpoint restored by start(), a saveState() of
    // dst would read stale data): copy through host memory now instead, then cut the tail.
    std::vector<uint8_t> state;
    takeLastLogError();
    const bool copied =
        appendSeqState(ctx_, state, src, LLAMA_STATE_SEQ_FLAGS_NONE) > 0 &&
        llama_state_seq_set_data_ext(ctx_, state.data(), state.size(), dst, LLAMA_STATE_SEQ_FLAGS_NONE) == state.size();
    if (!copied) {
      const std::string why = takeLastLogError();
      llama_memory_seq_rm(mem, dst, -1, -1);
      to.cache.clear();
      to.checkpoints.clear();
      publish();
      throw Error(codes::kNativeError, "could not copy slot " + std::to_string(src) + " to slot " +
                                           std::to_string(dst) + (why.empty() ? "" : ": " + why));
    }
    llama_memory_seq_rm(mem, dst, n, -1);
  }
  to.cache.assign(std::vector<llama_token>(from.cache.tokens().begin(), from.cache.tokens().begin() + n));
  to.checkpoints.clear();
  for (const Checkpoint &c : from.checkpoints) {
    if (c.nTokens <= n) to.checkpoints.push_back(c);
  }
  publish();
  return n;
}

bool BatchDecoder::shiftContext(Slot &s) {
  // As llama-server: keep the first nKeep tokens, drop half of the rest, move what follows back.
  llama_memory_t mem = llama_get_memory(ctx_);
  if (!llama_memory_can_shift(mem)) return false;
  const int32_t n = static_cast<int32_t>(s.cache.size());
  const int32_t keep = std::clamp(s.nKeep, 0, n - 2);
  const int32_t discard = (n - keep) / 2;
  if (discard < 1) return false;
  if (!llama_memory_seq_rm(mem, s.id, keep, keep + discard)) return false;
  // The draft model shifts alike, once it holds every token the target does.
  if (spec_ && !spec_->catchUp(s.id, s.cache.tokens())) spec_->trim(s.id, keep);
  llama_memory_seq_add(mem, s.id, keep + discard, n, -discard);
  s.cache.erase(static_cast<size_t>(keep), static_cast<size_t>(keep + discard));
  if (spec_) spec_->shift(s.id, keep, discard, n);
  s.checkpoints.clear();  // their positions moved
  return true;
}

}  // namespace core
