// A slot's KV as bytes (slot_state.h): the container's format, and BatchDecoder::saveState() and restoreState(),
// which move an idle slot's KV and checkpoints to host memory and back.
#include "slot_state.h"

#include <algorithm>
#include <string>

#include "backend.h"
#include "batch_decoder.h"
#include "decoder_slot.h"
#include "errors.h"

namespace core {
namespace {

constexpr uint32_t kStateMagic = 0x4c53530a;  // "LSS\n"

template <typename T>
void put(std::vector<uint8_t> &out, const T &v) {
  const auto *p = reinterpret_cast<const uint8_t *>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t> &data) : data_(data) {}
  template <typename T>
  bool get(T &v) {
    if (data_.size() - at_ < sizeof(T)) return false;
    std::copy_n(data_.data() + at_, sizeof(T), reinterpret_cast<uint8_t *>(&v));
    at_ += sizeof(T);
    return true;
  }
  // `n` bytes from here, or null when fewer are left.
  const uint8_t *take(uint64_t n) {
    if (data_.size() - at_ < n) return nullptr;
    const uint8_t *p = data_.data() + at_;
    at_ += static_cast<size_t>(n);
    return p;
  }
  size_t left() const { return data_.size() - at_; }

 private:
  const std::vector<uint8_t> &data_;
  size_t at_ = 0;
};

}  // namespace

size_t appendSeqState(llama_context *ctx, std::vector<uint8_t> &out, llama_seq_id seq, llama_state_seq_flags flags) {
  const size_t at = out.size();
  const size_t size = llama_state_seq_get_size_ext(ctx, seq, flags);
  if (size == 0) return 0;
  out.resize(at + size);
  const size_t written = llama_state_seq_get_data_ext(ctx, out.data() + at, size, seq, flags);
  out.resize(at + written);
  return written;
}

bool packState(std::vector<uint8_t> &out, const std::vector<Checkpoint> &checkpoints,
               const std::function<uint64_t(std::vector<uint8_t> &)> &writeSeq) {
  put(out, kStateMagic);
  put(out, static_cast<uint32_t>(checkpoints.size()));
  for (const Checkpoint &c : checkpoints) {
    put(out, c.nTokens);
    put(out, static_cast<uint64_t>(c.data.size()));
    out.insert(out.end(), c.data.begin(), c.data.end());
  }
  // The sequence state is written in place after its size, which is filled in once known.
  const size_t sizeAt = out.size();
  put(out, uint64_t{0});
  const uint64_t written = writeSeq(out);
  if (written == 0) return false;
  std::copy_n(reinterpret_cast<const uint8_t *>(&written), sizeof(written),
              out.begin() + static_cast<std::ptrdiff_t>(sizeAt));
  return true;
}

bool unpackState(const std::vector<uint8_t> &data, size_t nTokens, StateView &out) {
  Reader in(data);
  uint32_t magic = 0;
  uint32_t nCheckpoints = 0;
  bool ok = in.get(magic) && magic == kStateMagic && in.get(nCheckpoints);
  out.checkpoints.clear();
  for (uint32_t i = 0; ok && i < nCheckpoints; ++i) {
    int32_t n = 0;
    uint64_t size = 0;
    const uint8_t *bytes = nullptr;
    ok = in.get(n) && in.get(size) && (bytes = in.take(size)) != nullptr && n > 0 &&
         n <= static_cast<int32_t>(nTokens) && (out.checkpoints.empty() || n > out.checkpoints.back().first);
    if (ok) out.checkpoints.push_back({n, {bytes, size}});
  }
  uint64_t stateSize = 0;
  const uint8_t *state = nullptr;
  ok = ok && in.get(stateSize) && (state = in.take(stateSize)) != nullptr && stateSize > 0;
  out.seq = {state, stateSize};
  out.trailing = in.left();
  return ok;
}

SavedState BatchDecoder::saveState(int32_t slot) {
  std::lock_guard<std::mutex> lock(stepMutex_);
  Slot &s = idleSlot(slot, "save");
  takeLastLogError();
  SavedState out;
  const bool saved = packState(out.data, s.checkpoints, [&](std::vector<uint8_t> &buf) {
    return static_cast<uint64_t>(appendSeqState(ctx_, buf, slot, LLAMA_STATE_SEQ_FLAGS_NONE));
  });
  if (!saved) {
    const std::string why = takeLastLogError();
    throw Error(codes::kNativeError, "could not save slot " + std::to_string(slot) + (why.empty() ? "" : ": " + why));
  }
  out.tokens = s.cache.tokens();
  out.resume = resumeOf(s);
  return out;
}

int32_t BatchDecoder::restoreState(int32_t slot, const std::vector<llama_token> &tokens,
                                   const std::vector<uint8_t> &data) {
  std::lock_guard<std::mutex> lock(stepMutex_);
  Slot &s = idleSlot(slot, "restore");
  require(static_cast<int64_t>(tokens.size()) <= nCtxSlot_, "the state holds " + std::to_string(tokens.size()) +
                                                                " tokens but a slot holds at most " +
                                                                std::to_string(nCtxSlot_));
  for (llama_token t : tokens) model_->checkToken(t);
  const std::string what = "could not restore slot " + std::to_string(slot) + ": ";
  require(!data.empty(), what + "the state is empty");
  // The checkpoints stay views into `data` until the state is in.
  StateView view;
  const bool ok = unpackState(data, tokens.size(), view);
  llama_memory_t mem = llama_get_memory(ctx_);
  llama_memory_seq_rm(mem, slot, -1, -1);
  if (spec_) spec_->trim(slot, 0);  // the draft model catches up before the slot drafts
  s.cache.clear();
  s.checkpoints.clear();
  if (!ok) {
    publish();
    throw Error(codes::kInvalidArgument, what + "the state is not one saveState() gave (truncated or altered?)");
  }
  takeLastLogError();
  const size_t read =
      llama_state_seq_set_data_ext(ctx_, view.seq.data, view.seq.size, slot, LLAMA_STATE_SEQ_FLAGS_NONE);
  // Its positions must be exactly the tokens' (a state saved with other tokens would decode garbage after them).
  const llama_pos held = llama_memory_seq_pos_max(mem, slot) + 1;
  const size_t extra = view.seq.size - read + view.trailing;
  if (read == 0 || extra != 0 || held != static_cast<llama_pos>(tokens.size())) {
    const std::string why = takeLastLogError();
    llama_memory_seq_rm(mem, slot, -1, -1);
    publish();
    std::string problem;
    if (read == 0) {
      problem =
          "the state is not one this decoder can take (saved by another model, KV type or pool layout?), or "
          "the pool has no room for it" +
          (why.empty() ? std::string() : ": " + why);
    } else if (extra != 0) {
      problem = "the state has " + std::to_string(extra) + " bytes past its end";
    } else {
      problem = "the state holds " + std::to_string(held) + " positions but " + std::to_string(tokens.size()) +
                " tokens came with it";
    }
    throw Error(codes::kInvalidArgument, what + problem);
  }
  s.cache.assign(tokens);
  for (const auto &[n, bytes] : view.checkpoints) {
    Checkpoint c;
    c.nTokens = n;
    c.request = s.request;
    c.data.assign(bytes.data, bytes.data + bytes.size);
    s.checkpoints.push_back(std::move(c));
  }
  publish();
  return static_cast<int32_t>(s.cache.size());
}

}  // namespace core
