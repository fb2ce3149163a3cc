// BatchDecoder (batch_decoder.h): construction over one llama_context, the slots' lifecycle (start, cancel, clear,
// ending a slot), the text a slot gives out, and the snapshot readers see. The rest of the decoder has its own files:
//   decoder_batch.cpp  batch assembly: which tokens a step decodes
//   decoder_step.cpp   the step: decode with retry, then sampling
//   token_probs.cpp    logprobs of a sampled token
//   checkpoints.cpp    sliding-window checkpoints and where a slot can resume a prompt
//   slot_kv.cpp        a slot's KV changed outside a decode: dropped, copied into another slot, context shift
//   slot_state.cpp     saveState/restoreState and their binary container
// decoder_slot.h holds the Slot they share, token_cache.h its tokens.
#include "batch_decoder.h"

#include <algorithm>
#include <random>
#include <string>
#include <utility>

#include "backend.h"
#include "checkpoints.h"
#include "decoder_slot.h"
#include "errors.h"
#include "kv_types.h"
#include "limits.h"
#include "utf8.h"

namespace core {

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
  require(!((quantizedKv(kvType) || quantizedKv(kvTypeV)) && opts.flashAttn == 0),
          "a quantized KV cache needs flash attention (flashAttn auto or on)");
  const int64_t nCtxTotal = static_cast<int64_t>(opts.nCtxPerSlot) * opts.nSlots;
  require(nCtxTotal <= limits::kMaxCount, "nCtxPerSlot * nSlots is too large");

  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(nCtxTotal);
  cp.n_batch = static_cast<uint32_t>(opts.nBatch);
  cp.n_ubatch = static_cast<uint32_t>(std::min(opts.nUbatch, opts.nBatch));
  cp.n_seq_max = static_cast<uint32_t>(opts.nSlots);
  // One logits row per slot per step at most, or one per drafted token too: on a 262k-token vocabulary each row is
  // 1 MiB. The speculative maximum is known once the drafter exists, so the configured one bounds it here.
  const int32_t nDraftMax = Speculation::configuredMax(opts.speculative);
  cp.n_outputs_max = static_cast<uint32_t>(
      std::min<int64_t>(opts.nBatch, static_cast<int64_t>(opts.nSlots) * (1 + std::max(0, nDraftMax))));
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
  if (opts.speculative.enabled()) {
    DraftContextParams dp;
    dp.nCtx = cp.n_ctx;
    dp.nBatch = cp.n_batch;
    dp.nUbatch = cp.n_ubatch;
    dp.nSeq = cp.n_seq_max;
    dp.kvUnified = cp.kv_unified;
    dp.swaFull = cp.swa_full;
    dp.flashAttn = opts.flashAttn;
    dp.nThreads = opts.nThreads;
    dp.nThreadsBatch = opts.nThreadsBatch;
    dp.offloadKv = opts.offloadKv;
    try {
      spec_ = std::make_unique<Speculation>(opts.speculative, ctx_, dp);
    } catch (...) {
      llama_free(ctx_);
      throw;
    }
  }
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
  spec_.reset();  // before the target context it drafts for
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
  limits::requireIn(params.maxTokens, limits::kMaxTokens, "maxTokens");
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
  if (spec_) spec_->trim(slot, static_cast<int32_t>(keep));
  // Checkpoints past the kept prefix describe tokens this prompt replaces.
  while (!s.checkpoints.empty() && s.checkpoints.back().nTokens > static_cast<int32_t>(keep)) s.checkpoints.pop_back();
  ++s.request;
  // Where this prompt's prefill pauses to save the sliding-window state (checkpoints.h).
  s.breaks.clear();
  if (checkpointing()) {
    s.breaks =
        prefillBreaks(static_cast<int32_t>(prompt.size()), static_cast<int32_t>(common), static_cast<int32_t>(keep),
                      params.userStarts, s.checkpoints.empty() ? -1 : s.checkpoints.back().nTokens, opts_.nBatch,
                      opts_.nUbatch, opts_.checkpointMinStep);
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
  s.draftTokens = 0;
  s.draftAccepted = 0;
  // As llama-server: the request's seed makes its synthetic acceptances repeatable; without one they are random.
  if (spec_ && spec_->synthetic()) {
    const uint32_t seed = params.sampling.seed;
    s.synthRng.seed(seed == LLAMA_DEFAULT_SEED ? std::random_device{}() : seed);
  }
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
  release(s);
}

void BatchDecoder::release(Slot &s) {
  s.state = SlotState::kIdle;
  s.pending.clear();
  s.sampler = SlotSampler();
  s.last = LLAMA_TOKEN_NULL;
  s.draft.clear();
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

BatchDecoder::Slot &BatchDecoder::idleSlot(int32_t slot, const char *what) {
  checkSlot(slot);
  Slot &s = *slots_[static_cast<size_t>(slot)];
  if (s.state != SlotState::kIdle)
    throw Error(codes::kBusy, "slot " + std::to_string(slot) + " is busy; " + what + " idle slots only");
  return s;
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
    view.info.draftTokens = s.draftTokens;
    view.info.draftAccepted = s.draftAccepted;
    s.cache.publishTo(view.cache);
    view.resume = resumeOf(s);
    cells += static_cast<int64_t>(s.cache.size());
    for (const Checkpoint &c : s.checkpoints) checkpointBytes += static_cast<int64_t>(c.data.size());
  }
  kvCells_.store(cells, std::memory_order_relaxed);
  checkpointBytes_.store(checkpointBytes, std::memory_order_relaxed);
}

}  // namespace core
