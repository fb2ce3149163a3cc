#include "batch_decoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <queue>

#include "backend.h"
#include "errors.h"
#include "utf8.h"

namespace core {
namespace {

// The tokens a slot's KV holds, at positions 0..size()-1. It remembers how long a prefix is unchanged since the
// last publishTo(), so bringing the published copy up to date costs only the tokens that changed.
class TokenCache {
 public:
  const std::vector<llama_token> &tokens() const { return tokens_; }
  size_t size() const { return tokens_.size(); }
  llama_token operator[](size_t i) const { return tokens_[i]; }

  void push_back(llama_token t) { tokens_.push_back(t); }
  template <typename It>
  void append(It first, It last) {
    tokens_.insert(tokens_.end(), first, last);
  }
  void truncate(size_t n) {
    if (n >= tokens_.size()) return;
    tokens_.resize(n);
    changedFrom(n);
  }
  void erase(size_t from, size_t to) {
    tokens_.erase(tokens_.begin() + static_cast<std::ptrdiff_t>(from),
                  tokens_.begin() + static_cast<std::ptrdiff_t>(to));
    changedFrom(from);
  }
  void assign(std::vector<llama_token> tokens) {
    tokens_ = std::move(tokens);
    changedFrom(0);
  }
  void clear() { assign({}); }

  // `copy` equals tokens() as of the last call; makes it equal again.
  void publishTo(std::vector<llama_token> &copy) {
    copy.resize(unchanged_);
    copy.insert(copy.end(), tokens_.begin() + static_cast<std::ptrdiff_t>(unchanged_), tokens_.end());
    unchanged_ = tokens_.size();
  }

 private:
  void changedFrom(size_t i) { unchanged_ = std::min(unchanged_, i); }

  std::vector<llama_token> tokens_;
  size_t unchanged_ = 0;
};

// The sliding-window layers' KV of one slot when it held nTokens tokens (LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY): with the
// full-attention layers' cells, which stay, it lets the slot resume at nTokens after its window has moved on.
struct Checkpoint {
  int32_t nTokens = 0;
  int64_t request = 0;  // the slot's request that made it
  std::vector<uint8_t> data;
};

}  // namespace

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
  // Per step:
  int32_t logitIndex = -1;
  int32_t promptThisStep = 0;
};

const char *endReasonName(EndReason r) {
  switch (r) {
    case EndReason::kNone: return "";
    case EndReason::kStop: return "stop";
    case EndReason::kLength: return "length";
    case EndReason::kContextFull: return "context_full";
    case EndReason::kCancelled: return "cancelled";
    case EndReason::kError: return "error";
  }
  return "";
}

const char *slotStateName(SlotState s) {
  switch (s) {
    case SlotState::kIdle: return "idle";
    case SlotState::kPrefill: return "prefill";
    case SlotState::kGenerating: return "generating";
  }
  return "";
}

namespace {

void require(bool ok, const std::string &message) {
  if (!ok) throw Error(codes::kInvalidArgument, message);
}

// The KV cache types llama-server's -ctk/-ctv take.
ggml_type kvTypeOf(const std::string &name) {
  static const std::pair<const char *, ggml_type> kTypes[] = {
      {"f32", GGML_TYPE_F32},       {"f16", GGML_TYPE_F16},   {"bf16", GGML_TYPE_BF16},
      {"q8_0", GGML_TYPE_Q8_0},     {"q4_0", GGML_TYPE_Q4_0}, {"q4_1", GGML_TYPE_Q4_1},
      {"iq4_nl", GGML_TYPE_IQ4_NL}, {"q5_0", GGML_TYPE_Q5_0}, {"q5_1", GGML_TYPE_Q5_1},
  };
  for (const auto &[n, t] : kTypes) {
    if (name == n) return t;
  }
  throw Error(codes::kInvalidArgument,
              "kvType must be one of f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1, not '" + name + "'");
}

bool quantized(ggml_type t) {
  return t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16;
}

// Appends sequence `seq`'s state (llama_state_seq_get_data_ext with `flags`) to `out`, written in place; returns its
// size, 0 when llama.cpp could not write it (then `out` is as it was).
size_t appendSeqState(llama_context *ctx, std::vector<uint8_t> &out, llama_seq_id seq, llama_state_seq_flags flags) {
  const size_t at = out.size();
  const size_t size = llama_state_seq_get_size_ext(ctx, seq, flags);
  if (size == 0) return 0;
  out.resize(at + size);
  const size_t written = llama_state_seq_get_data_ext(ctx, out.data() + at, size, seq, flags);
  out.resize(at + written);
  return written;
}

void batchAdd(llama_batch &b, llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
  const int32_t i = b.n_tokens++;
  b.token[i] = token;
  b.pos[i] = pos;
  b.n_seq_id[i] = 1;
  b.seq_id[i][0] = seq;
  b.logits[i] = logits;
}

}  // namespace

BatchDecoder::BatchDecoder(std::shared_ptr<Model> model, const DecoderOptions &opts)
    : model_(std::move(model)), opts_(opts), faults_(FaultPlan::fromEnv()) {
  ensureBackend();
  require(opts.nSlots >= 1 && static_cast<size_t>(opts.nSlots) <= llama_max_parallel_sequences(),
          "nSlots must be in [1, " + std::to_string(llama_max_parallel_sequences()) + "]");
  require(opts.nCtxPerSlot >= 16, "nCtxPerSlot must be >= 16");
  require(opts.nBatch >= opts.nSlots, "nBatch must be >= nSlots (every generating slot adds one token per step)");
  require(opts.nUbatch >= 1, "nUbatch must be >= 1");
  require(opts.nThreads >= 0 && opts.nThreadsBatch >= 0, "threads must be >= 0");
  require(opts.ctxCheckpoints >= 0 && opts.checkpointMinStep >= 0, "ctxCheckpoints and checkpointMinStep must be >= 0");
  require(opts.flashAttn >= -1 && opts.flashAttn <= 1, "flashAttn must be -1 (auto), 0 or 1");
  const ggml_type kvType = kvTypeOf(opts.kvType);
  const ggml_type kvTypeV = opts.kvTypeV.empty() ? kvType : kvTypeOf(opts.kvTypeV);
  require(!((quantized(kvType) || quantized(kvTypeV)) && opts.flashAttn == 0),
          "a quantized KV cache needs flash attention (flashAttn auto or on)");
  const int64_t nCtxTotal = static_cast<int64_t>(opts.nCtxPerSlot) * opts.nSlots;
  require(nCtxTotal <= (1 << 24), "nCtxPerSlot * nSlots is too large");

  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(nCtxTotal);
  cp.n_batch = static_cast<uint32_t>(opts.nBatch);
  cp.n_ubatch = static_cast<uint32_t>(std::min(opts.nUbatch, opts.nBatch));
  cp.n_seq_max = static_cast<uint32_t>(opts.nSlots);
  // One logits row per slot per step at most: on a 262k-token vocabulary each row is 1 MiB.
  cp.n_outputs_max = static_cast<uint32_t>(opts.nSlots);
  cp.kv_unified = opts.kvUnified;
  cp.swa_full = opts.swaFull;
  cp.flash_attn_type = static_cast<llama_flash_attn_type>(opts.flashAttn);
  cp.type_k = kvType;
  cp.type_v = kvTypeV;
  cp.offload_kqv = opts.offloadKv;
  cp.no_perf = true;
  if (opts.nThreads > 0) cp.n_threads = opts.nThreads;
  cp.n_threads_batch = opts.nThreadsBatch > 0 ? opts.nThreadsBatch : cp.n_threads;

  takeLastLogError();
  ctx_ = llama_init_from_model(model_->raw(), cp);
  if (ctx_ == nullptr) {
    const std::string why = takeLastLogError();
    throw Error(codes::kContextFailed, "could not create the decoder context" + (why.empty() ? "" : ": " + why));
  }
  const int32_t slotMax = opts.kvUnified && opts.nCtxSlotMax > 0 ? opts.nCtxSlotMax : opts.nCtxPerSlot;
  nCtxSlot_ = std::min<int32_t>(slotMax, static_cast<int32_t>(llama_n_ctx_seq(ctx_)));
  nSwa_ = llama_model_n_swa(model_->raw());
  batch_ = llama_batch_init(opts.nBatch, 0, 1);
  slots_.reserve(static_cast<size_t>(opts.nSlots));
  for (int32_t i = 0; i < opts.nSlots; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->id = i;
  }
  views_.resize(slots_.size());
}

BatchDecoder::~BatchDecoder() {
  slots_.clear();
  llama_batch_free(batch_);
  llama_free(ctx_);
}

void BatchDecoder::checkSlot(int32_t slot) const {
  if (slot < 0 || slot >= opts_.nSlots) {
    throw Error(codes::kInvalidArgument,
                "slot " + std::to_string(slot) + " does not exist (slots 0.." + std::to_string(opts_.nSlots - 1) + ")");
  }
}

StartResult BatchDecoder::start(int32_t slot, const StartParams &params) {
  std::unique_lock<std::mutex> lock(stepMutex_, std::try_to_lock);
  if (!lock.owns_lock()) throw Error(codes::kBusy, "a step is running; start slots between steps");
  checkSlot(slot);
  Slot &s = *slots_[static_cast<size_t>(slot)];
  if (s.state != SlotState::kIdle) throw Error(codes::kBusy, "slot " + std::to_string(slot) + " is busy");
  const auto &prompt = params.prompt;
  require(!prompt.empty(), "the prompt must contain at least one token");
  require(params.maxTokens >= 1, "maxTokens must be >= 1");
  for (llama_token t : prompt) model_->checkToken(t);
  if (static_cast<int64_t>(prompt.size()) >= nCtxSlot_) {
    throw Error(codes::kContextExceeded, "the prompt has " + std::to_string(prompt.size()) +
                                             " tokens but a slot holds at most " + std::to_string(nCtxSlot_) +
                                             " (prompt and generated tokens together)");
  }
  require(params.resumeTokens >= 0 && static_cast<size_t>(params.resumeTokens) < prompt.size(),
          "resumeTokens must be in [0, prompt length)");
  const auto outputFrom = prompt.end() - params.resumeTokens;
  const std::vector<llama_token> own(prompt.begin(), outputFrom);
  const std::vector<llama_token> output(outputFrom, prompt.end());
  SlotSampler sampler(model_->raw(), params.sampling);
  sampler.acceptPrompt(own);
  sampler.acceptOutput(output);
  std::vector<llama_token> preserved = params.preservedTokens;
  for (llama_token t : preserved) model_->checkToken(t);
  std::sort(preserved.begin(), preserved.end());
  std::string held = heldBack(output, params.renderSpecial, preserved);

  // Prompt cache: keep the longest common prefix, but always re-evaluate at least one token so the
  // first sampled token has fresh logits.
  size_t keep = 0;
  while (params.reusePrefix && keep < s.cache.size() && keep < prompt.size() && s.cache[keep] == prompt[keep]) ++keep;
  if (keep >= prompt.size()) keep = prompt.size() - 1;
  llama_memory_t mem = llama_get_memory(ctx_);
  const size_t common = keep;
  keep = resumeAt(s, keep);
  if (keep == 0 || !llama_memory_seq_rm(mem, slot, static_cast<llama_pos>(keep), -1)) {
    llama_memory_seq_rm(mem, slot, -1, -1);
    keep = 0;
  }
  s.cache.truncate(keep);
  // Checkpoints past the kept prefix describe tokens this prompt replaces.
  while (!s.checkpoints.empty() && s.checkpoints.back().nTokens > static_cast<int32_t>(keep)) s.checkpoints.pop_back();
  ++s.request;
  s.breaks.clear();
  if (checkpointing()) {
    // Where this prompt's prefill pauses to save the sliding-window state (see stepLocked): as llama-server,
    // min(n_batch, 4 + n_ubatch) and 4 tokens before its end and at user messages; and where it stops sharing the cache
    // it could not fully resume, since that is where a prefix shared by several prompts (a long system prompt) ends —
    // the next prompt sharing it resumes there.
    const int32_t n = static_cast<int32_t>(prompt.size());
    for (int32_t at : {static_cast<int32_t>(common), n - std::min(opts_.nBatch, 4 + opts_.nUbatch), n - 4}) {
      if (at > static_cast<int32_t>(keep) && at < n) s.breaks.push_back(at);
    }
    std::vector<int32_t> users = params.userStarts;
    std::sort(users.begin(), users.end());
    int32_t last = s.checkpoints.empty() ? -1 : s.checkpoints.back().nTokens;
    for (int32_t at : users) {
      if (at <= static_cast<int32_t>(keep) || at >= n) continue;
      if (at == users.back() || last < 0 || at > last + opts_.checkpointMinStep) {
        s.breaks.push_back(at);
        last = at;
      }
    }
    std::sort(s.breaks.begin(), s.breaks.end());
    s.breaks.erase(std::unique(s.breaks.begin(), s.breaks.end()), s.breaks.end());
  }
  s.pending.assign(prompt.begin() + static_cast<std::ptrdiff_t>(keep), prompt.end());
  s.sampler = std::move(sampler);
  s.preserved = std::move(preserved);
  s.renderSpecial = params.renderSpecial;
  s.nProbs = std::max(0, params.nProbs);
  s.postSampling = params.postSampling;
  s.contextShift = params.contextShift;
  s.nKeep = params.nKeep < 0 ? static_cast<int32_t>(own.size()) : params.nKeep;
  s.generated = params.resumeTokens;
  s.maxTokens = params.resumeTokens + params.maxTokens;
  s.last = LLAMA_TOKEN_NULL;
  s.utf8 = std::move(held);
  s.cancelRequested.store(false);
  s.state = SlotState::kPrefill;
  publish();
  return StartResult{static_cast<int32_t>(keep), static_cast<int32_t>(prompt.size())};
}

bool BatchDecoder::cancel(int32_t slot) {
  checkSlot(slot);
  slots_[static_cast<size_t>(slot)]->cancelRequested.store(true);
  std::unique_lock<std::mutex> lock(stepMutex_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  std::vector<SlotEvent> ignored;
  applyCancels(ignored);
  publish();
  return true;
}

void BatchDecoder::clear(int32_t slot) {
  std::unique_lock<std::mutex> lock(stepMutex_, std::try_to_lock);
  if (!lock.owns_lock()) throw Error(codes::kBusy, "a step is running; clear slots between steps");
  checkSlot(slot);
  Slot &s = *slots_[static_cast<size_t>(slot)];
  if (s.state != SlotState::kIdle) throw Error(codes::kBusy, "slot " + std::to_string(slot) + " is busy");
  forgetKv(s);
  publish();
}

void BatchDecoder::forgetKv(Slot &s) {
  llama_memory_seq_rm(llama_get_memory(ctx_), s.id, -1, -1);
  s.cache.clear();
  s.checkpoints.clear();
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

std::string BatchDecoder::heldBack(const std::vector<llama_token> &output, bool renderSpecial,
                                   const std::vector<llama_token> &preserved) const {
  // What the output's events gave out is its pieces' complete UTF-8 prefix (takeText looks only at the tail, so
  // emitting token by token or all at once leaves the same bytes); the rest was held back, and continues now.
  std::string pieces;
  for (llama_token t : output)
    pieces += model_->tokenPiece(t, renderSpecial || std::binary_search(preserved.begin(), preserved.end(), t));
  return pieces.substr(completeUtf8Prefix(pieces));
}

std::string BatchDecoder::takeText(Slot &s, bool flush) {
  const size_t n = flush ? s.utf8.size() : completeUtf8Prefix(s.utf8);
  std::string out = s.utf8.substr(0, n);
  s.utf8.erase(0, n);
  return out;
}

void BatchDecoder::endSlot(Slot &s, EndReason reason, std::vector<SlotEvent> &events, const std::string &error) {
  SlotEvent ev;
  ev.slot = s.id;
  ev.text = takeText(s, true);
  ev.end = reason;
  ev.error = error;
  events.push_back(std::move(ev));
  s.state = SlotState::kIdle;
  s.pending.clear();
  s.sampler = SlotSampler();
  s.last = LLAMA_TOKEN_NULL;
}

void BatchDecoder::applyCancels(std::vector<SlotEvent> &events) {
  for (auto &sp : slots_) {
    if (!sp->cancelRequested.exchange(false)) continue;
    if (sp->state != SlotState::kIdle) endSlot(*sp, EndReason::kCancelled, events);
  }
}

bool BatchDecoder::hasWork() const {
  std::lock_guard<std::mutex> lock(viewMutex_);
  return std::any_of(views_.begin(), views_.end(), [](const SlotView &v) { return v.info.state != SlotState::kIdle; });
}

StepResult BatchDecoder::step(int32_t tokenBudget) {
  std::lock_guard<std::mutex> lock(stepMutex_);
  StepResult r;
  try {
    r = stepLocked(tokenBudget);
  } catch (...) {
    publish();
    throw;
  }
  publish();
  return r;
}

StepResult BatchDecoder::stepLocked(int32_t tokenBudget) {
  StepResult r;
  applyCancels(r.events);

  int32_t nGen = 0;
  for (auto &sp : slots_) nGen += sp->state == SlotState::kGenerating ? 1 : 0;
  const int32_t budget = std::clamp(tokenBudget, 1, opts_.nBatch);
  int32_t prefillBudget = std::max(0, budget - nGen);

  int32_t ret = 0;
  int32_t lastServed = -1;
  for (;;) {
    batch_.n_tokens = 0;
    lastServed = -1;
    for (auto &sp : slots_) {
      sp->logitIndex = -1;
      sp->promptThisStep = 0;
      if (sp->state != SlotState::kGenerating) continue;
      sp->logitIndex = batch_.n_tokens;
      batchAdd(batch_, sp->last, static_cast<llama_pos>(sp->cache.size()), sp->id, true);
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
    if (batch_.n_tokens == 0) {
      // Only prompt tokens were asked for and not even one fitted (r.retries > 0): the pool is full.
      if (r.retries > 0) return kvFull(r);
      return r;
    }
    if (r.retries == 0) ++decodingSteps_;  // once per step, however often its batch shrinks

    const auto t0 = std::chrono::steady_clock::now();
    ret = decodeBatch();
    r.decodeMicros +=
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
    if (ret != 1) break;
    // 1: no room in the KV for this batch; llama_decode left the memory unchanged. Retry with less prompt, down
    // to none; with only the generating slots' tokens left, no slot fails: the caller makes room.
    ++r.retries;
    if (batch_.n_tokens == nGen) return kvFull(r);
    prefillBudget /= 2;
  }

  if (ret != 0) {
    // The slots in this batch fail; others are untouched. A failed decode may leave some ubatches in
    // the KV, so the affected slots forget theirs.
    const std::string why = takeLastLogError();
    const std::string message = "llama_decode failed (" + std::to_string(ret) + ")" + (why.empty() ? "" : ": " + why);
    for (auto &sp : slots_) {
      if (sp->logitIndex < 0 && sp->promptThisStep == 0) continue;
      forgetKv(*sp);
      endSlot(*sp, EndReason::kError, r.events, message);
    }
    return r;
  }

  r.batchTokens = batch_.n_tokens;
  r.generatedTokens = nGen;
  int32_t sampled = 0;
  if (lastServed >= 0) nextPrefill_ = (lastServed + 1) % opts_.nSlots;
  for (auto &sp : slots_) {
    Slot &s = *sp;
    if (s.state == SlotState::kGenerating) s.cache.push_back(s.last);
    if (s.promptThisStep > 0) {
      s.cache.append(s.pending.begin(), s.pending.begin() + s.promptThisStep);
      s.pending.erase(s.pending.begin(), s.pending.begin() + s.promptThisStep);
      r.promptTokens += s.promptThisStep;
    }
    if (s.logitIndex < 0) {
      if (s.promptThisStep > 0) {
        SlotEvent ev;
        ev.slot = s.id;
        ev.promptProcessed = s.promptThisStep;
        r.events.push_back(std::move(ev));
      }
      continue;
    }
    llama_token tok = LLAMA_TOKEN_NULL;
    try {
      if (!faults_.empty() && faults_.samplerThrows(decodingSteps_, s.id, sampled++))
        throw std::runtime_error("injected fault (" + std::string(FaultPlan::kEnvVar) + " sampler_throw)");
      tok = s.sampler.sample(ctx_, s.logitIndex);
    } catch (const std::exception &e) {
      // A sampler that fails (a grammar with no valid continuation, say) ends its own slot only.
      endSlot(s, EndReason::kError, r.events, std::string("sampling failed: ") + e.what());
      continue;
    }
    s.state = SlotState::kGenerating;
    SlotEvent ev;
    ev.slot = s.id;
    ev.promptProcessed = s.promptThisStep;
    if (s.nProbs > 0) recordProbs(s, s.logitIndex, tok, ev);
    EndReason end = EndReason::kNone;
    if (model_->isEog(tok)) {
      end = EndReason::kStop;
    } else {
      ev.token = tok;
      ++s.generated;
      const bool special = s.renderSpecial || std::binary_search(s.preserved.begin(), s.preserved.end(), tok);
      s.utf8 += model_->tokenPiece(tok, special);
      s.last = tok;
      if (s.generated >= s.maxTokens) {
        end = EndReason::kLength;
      } else if (static_cast<int32_t>(s.cache.size()) >= nCtxSlot_) {
        const size_t before = s.cache.size();
        if (s.contextShift && shiftContext(s)) ev.shifted = static_cast<int32_t>(before - s.cache.size());
        else end = EndReason::kContextFull;
      }
    }
    ev.text = takeText(s, end != EndReason::kNone);
    ev.end = end;
    r.events.push_back(std::move(ev));
    if (end != EndReason::kNone) {
      s.state = SlotState::kIdle;
      s.pending.clear();
      s.sampler = SlotSampler();
      s.last = LLAMA_TOKEN_NULL;
    }
  }
  // Cancels that arrived during the decode end their slots now.
  applyCancels(r.events);
  return r;
}

StepResult &BatchDecoder::kvFull(StepResult &r) {
  // Nothing of this step stays: the slots keep their pending prompt, their sampled token and their positions,
  // and the per-step marks go. Cancels are applied (they end slots whether or not a batch fits).
  for (auto &sp : slots_) {
    sp->logitIndex = -1;
    sp->promptThisStep = 0;
  }
  batch_.n_tokens = 0;
  takeLastLogError();  // llama_decode's warning is not an error of any later call
  r.kvFull = true;
  applyCancels(r.events);
  return r;
}

int32_t BatchDecoder::decodeBatch() {
  if (!faults_.empty()) {
    if (const auto planned = faults_.decodeReturn(decodingSteps_)) return *planned;
  }
  return llama_decode(ctx_, batch_);
}

SlotInfo BatchDecoder::slotInfo(int32_t slot) const {
  checkSlot(slot);
  std::lock_guard<std::mutex> lock(viewMutex_);
  return views_[static_cast<size_t>(slot)].info;
}

std::vector<llama_token> BatchDecoder::cachedPrefix(int32_t slot) const {
  checkSlot(slot);
  std::lock_guard<std::mutex> lock(viewMutex_);
  return views_[static_cast<size_t>(slot)].cache;
}

ResumePoints BatchDecoder::resumePoints(int32_t slot) const {
  checkSlot(slot);
  std::lock_guard<std::mutex> lock(viewMutex_);
  return views_[static_cast<size_t>(slot)].resume;
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
  llama_memory_seq_add(mem, s.id, keep + discard, n, -discard);
  s.cache.erase(static_cast<size_t>(keep), static_cast<size_t>(keep + discard));
  s.checkpoints.clear();  // their positions moved
  return true;
}

void BatchDecoder::recordProbs(Slot &s, int32_t outputIndex, llama_token tok, SlotEvent &ev) {
  ev.hasProbs = true;
  const auto *candidates = s.postSampling ? s.sampler.candidates() : nullptr;
  if (candidates != nullptr) {
    // After the sampler chain: the probabilities it sampled from, most likely first.
    ev.chosen = {tok, 0.0f};
    for (size_t i = 0; i < candidates->size; ++i) {
      const llama_token_data &d = candidates->data[i];
      if (d.id == tok) ev.chosen.logprob = d.p;
      if (static_cast<int32_t>(ev.top.size()) < s.nProbs && d.p > 0.0f) ev.top.push_back({d.id, d.p});
    }
    return;
  }
  const float *logits = llama_get_logits_ith(ctx_, outputIndex);
  const int32_t nVocab = model_->info().nVocab;
  float max = -INFINITY;
  for (int32_t i = 0; i < nVocab; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  for (int32_t i = 0; i < nVocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  const float logZ = max + static_cast<float>(std::log(sum));
  // The nProbs largest logits: a min-heap of that size over the vocabulary.
  auto greater = [&](llama_token a, llama_token b) { return logits[a] > logits[b]; };
  std::priority_queue<llama_token, std::vector<llama_token>, decltype(greater)> heap(greater);
  for (llama_token i = 0; i < nVocab; ++i) {
    if (static_cast<int32_t>(heap.size()) < s.nProbs) heap.push(i);
    else if (logits[i] > logits[heap.top()]) {
      heap.pop();
      heap.push(i);
    }
  }
  ev.top.resize(heap.size());
  for (size_t k = heap.size(); k-- > 0;) {
    ev.top[k] = {heap.top(), logits[heap.top()] - logZ};
    heap.pop();
  }
  ev.chosen = {tok, logits[tok] - logZ};
  if (s.postSampling) {
    // Greedy: the chain leaves only the chosen token.
    ev.chosen.logprob = 1.0f;
    ev.top = {{tok, 1.0f}};
  }
}

BatchDecoder::Slot &BatchDecoder::idleSlot(int32_t slot, const char *what) {
  checkSlot(slot);
  Slot &s = *slots_[static_cast<size_t>(slot)];
  if (s.state != SlotState::kIdle)
    throw Error(codes::kBusy, "slot " + std::to_string(slot) + " is busy; " + what + " idle slots only");
  return s;
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

namespace {

// saveState()'s buffer: magic, the checkpoints (count, then each one's token count, size and bytes), then the
// sequence state (size and bytes). Host byte order: it never leaves the process.
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

SavedState BatchDecoder::saveState(int32_t slot) {
  std::lock_guard<std::mutex> lock(stepMutex_);
  Slot &s = idleSlot(slot, "save");
  takeLastLogError();
  SavedState out;
  put(out.data, kStateMagic);
  put(out.data, static_cast<uint32_t>(s.checkpoints.size()));
  for (const Checkpoint &c : s.checkpoints) {
    put(out.data, c.nTokens);
    put(out.data, static_cast<uint64_t>(c.data.size()));
    out.data.insert(out.data.end(), c.data.begin(), c.data.end());
  }
  // The sequence state is written in place after its size, which is filled in once known.
  const size_t sizeAt = out.data.size();
  put(out.data, uint64_t{0});
  const uint64_t written = appendSeqState(ctx_, out.data, slot, LLAMA_STATE_SEQ_FLAGS_NONE);
  if (written == 0) {
    const std::string why = takeLastLogError();
    throw Error(codes::kNativeError, "could not save slot " + std::to_string(slot) + (why.empty() ? "" : ": " + why));
  }
  std::copy_n(reinterpret_cast<const uint8_t *>(&written), sizeof(written),
              out.data.begin() + static_cast<std::ptrdiff_t>(sizeAt));
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
  // Unpack what saveState() packed; the checkpoints stay views into `data` until the state is in.
  Reader in(data);
  uint32_t magic = 0;
  uint32_t nCheckpoints = 0;
  const bool framed = in.get(magic) && magic == kStateMagic && in.get(nCheckpoints);
  std::vector<std::pair<int32_t, std::pair<const uint8_t *, uint64_t>>> checkpoints;
  bool ok = framed;
  for (uint32_t i = 0; ok && i < nCheckpoints; ++i) {
    int32_t n = 0;
    uint64_t size = 0;
    const uint8_t *bytes = nullptr;
    ok = in.get(n) && in.get(size) && (bytes = in.take(size)) != nullptr && n > 0 &&
         n <= static_cast<int32_t>(tokens.size()) && (checkpoints.empty() || n > checkpoints.back().first);
    if (ok) checkpoints.push_back({n, {bytes, size}});
  }
  uint64_t stateSize = 0;
  const uint8_t *state = nullptr;
  ok = ok && in.get(stateSize) && (state = in.take(stateSize)) != nullptr && stateSize > 0;
  llama_memory_t mem = llama_get_memory(ctx_);
  llama_memory_seq_rm(mem, slot, -1, -1);
  s.cache.clear();
  s.checkpoints.clear();
  if (!ok) {
    publish();
    throw Error(codes::kInvalidArgument, what + "the state is not one saveState() gave (truncated or altered?)");
  }
  takeLastLogError();
  const size_t read = llama_state_seq_set_data_ext(ctx_, state, stateSize, slot, LLAMA_STATE_SEQ_FLAGS_NONE);
  // Its positions must be exactly the tokens' (a state saved with other tokens would decode garbage after them).
  const llama_pos held = llama_memory_seq_pos_max(mem, slot) + 1;
  const size_t extra = stateSize - read + in.left();
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
  for (const auto &[n, bytes] : checkpoints) {
    Checkpoint c;
    c.nTokens = n;
    c.request = s.request;
    c.data.assign(bytes.first, bytes.first + bytes.second);
    s.checkpoints.push_back(std::move(c));
  }
  publish();
  return static_cast<int32_t>(s.cache.size());
}

void BatchDecoder::publish() {
  int64_t cells = 0;
  int64_t checkpointBytes = 0;
  std::lock_guard<std::mutex> lock(viewMutex_);
  for (const auto &sp : slots_) {
    Slot &s = *sp;
    SlotView &view = views_[static_cast<size_t>(s.id)];
    view.info.state = s.state;
    view.info.cachedTokens = static_cast<int32_t>(s.cache.size());
    view.info.pendingPrompt = static_cast<int32_t>(s.pending.size());
    view.info.generated = s.generated;
    s.cache.publishTo(view.cache);
    view.resume = resumeOf(s);
    cells += static_cast<int64_t>(s.cache.size());
    for (const Checkpoint &c : s.checkpoints) checkpointBytes += static_cast<int64_t>(c.data.size());
  }
  kvCells_.store(cells, std::memory_order_relaxed);
  checkpointBytes_.store(checkpointBytes, std::memory_order_relaxed);
}

}  // namespace core
