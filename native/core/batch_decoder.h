#pragma once
// Slot-based batch decoder over one llama_context: n_slots sequences (seq_id = slot) share one
// llama_decode per step. Mechanism only — which request goes to which slot, and the token budget of
// each step, are the caller's policy (src/scheduler/).
//
// Threading: step() runs on a thread of the caller's (the addon's step thread). start(), clear(), copyPrefix(),
// saveState() and restoreState() change slots and must not overlap a step:
// start/clear/copyPrefix throw BUSY during one, save/restore wait for it. cancel() may be called at any time and takes
// effect before the next token is emitted. slotInfo(), cachedPrefix(), hasWork() and kvCellsUsed() may be called at any
// time, from any thread: they answer from a snapshot published at the end of every step and every call that changes a
// slot, never from a slot a step is changing. A snapshot rather than BUSY, because readers (a /slots view, metrics,
// slot choice) should not fail while a step runs, and it is cheap: publishing copies only the tokens appended since the
// last publish.
//
// The implementation is split by job, one file each (batch_decoder.cpp's opening comment lists them).
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "faults.h"
#include "llama.h"
#include "model.h"
#include "slot_sampler.h"
#include "speculation.h"

namespace core {

struct DecoderOptions {
  int32_t nSlots = 1;
  int32_t nCtxPerSlot = 4096;
  bool kvUnified = false;  // one KV buffer shared by all slots (total = nCtxPerSlot * nSlots)
  // With kvUnified: the most cells one slot may use of the shared pool (0: nCtxPerSlot). A slot may then
  // outgrow its share while others use less; the pool itself stays nCtxPerSlot * nSlots.
  int32_t nCtxSlotMax = 0;
  int32_t nBatch = 512;  // most tokens in one step
  int32_t nUbatch = 512;
  int32_t nThreads = 0;  // 0: llama.cpp's default
  int32_t nThreadsBatch = 0;
  int32_t flashAttn = -1;      // -1 auto, 0 off, 1 on
  std::string kvType = "f16";  // K and V unless given apart: f32 f16 bf16 q8_0 q4_0 q4_1 iq4_nl q5_0 q5_1
  std::string kvTypeV;         // empty: kvType
  bool offloadKv = true;       // KV cache on the GPU with the layers
  bool swaFull = false;        // full-size sliding-window cache (costs memory; enables more prefix reuse)
  // Sliding-window models keep only the last window's KV in their SWA layers, so a prompt that diverges from a
  // slot's cache before its end could not reuse any of it. As llama-server: the SWA state is saved (host memory)
  // shortly before a prompt's end, and a later prompt resumes from the newest checkpoint at or before where it
  // diverges. At most ctxCheckpoints per slot (0: none); checkpoints of earlier requests closer than
  // checkpointMinStep tokens to an older one are dropped. No effect without sliding-window layers or with swaFull.
  int32_t ctxCheckpoints = 32;
  int32_t checkpointMinStep = 8192;
  // Speculative decoding (speculation.h); off unless types are given. The draft model's context has the target's
  // layout (cells, slots, batch); step()'s draftLimits choose each step's draft lengths.
  SpeculativeOptions speculative;
};

enum class SlotState { kIdle, kPrefill, kGenerating };
enum class EndReason { kNone, kStop, kLength, kContextFull, kCancelled, kError };

const char *endReasonName(EndReason r);
const char *slotStateName(SlotState s);

struct StartParams {
  std::vector<llama_token> prompt;
  SamplingParams sampling;
  int32_t maxTokens = 256;  // generated tokens, not counting the prompt
  // Special tokens whose text the output keeps (a template's tool-call markers); others render as nothing.
  std::vector<llama_token> preservedTokens;
  // Where the prompt's user messages start (token counts, from the chat template's delimiters). With
  // sliding-window checkpoints the prefill also pauses at the last one, and at earlier ones checkpointMinStep
  // apart, as llama-server does.
  std::vector<int32_t> userStarts;
  bool renderSpecial = false;  // every special token keeps its text
  bool reusePrefix = true;     // false: the slot's cached prefix is dropped (cache_prompt: false)
  // Probabilities of each generated token and of the nProbs most likely: from the raw logits, or after the
  // sampler chain (postSampling).
  int32_t nProbs = 0;
  bool postSampling = false;
  // A full slot while generating drops the oldest half of what follows the first nKeep tokens and goes on.
  bool contextShift = false;
  int32_t nKeep = 0;  // -1: the whole prompt (without resumeTokens)
  // The last resumeTokens tokens of the prompt are this request's own output before it gave its slot up: the
  // sampler takes them in as generated (penalties, grammar), they count toward the slot's generated tokens (so
  // maxTokens is what is left to generate), and held-back bytes of an unfinished UTF-8 character carry on.
  int32_t resumeTokens = 0;
};

struct TokenProb {
  llama_token token = LLAMA_TOKEN_NULL;
  float logprob = 0.0f;  // natural log; probability when postSampling
};

struct StartResult {
  int32_t reusedTokens = 0;  // prompt tokens whose KV was kept from the slot's previous request
  int32_t promptTokens = 0;
};

struct SlotEvent {
  int32_t slot = -1;
  llama_token token = LLAMA_TOKEN_NULL;  // LLAMA_TOKEN_NULL when the event only ends the slot
  std::string text;                      // complete UTF-8 only
  EndReason end = EndReason::kNone;
  std::string error;
  int32_t promptProcessed = 0;  // prompt tokens decoded for this slot in this step
  int32_t shifted = 0;          // tokens a context shift dropped in this step
  // With nProbs: the generated token's probability, and the nProbs most likely tokens.
  bool hasProbs = false;
  TokenProb chosen;
  std::vector<TokenProb> top;
};

struct StepResult {
  std::vector<SlotEvent> events;
  int32_t batchTokens = 0;
  int32_t promptTokens = 0;
  int32_t generatedTokens = 0;
  int32_t retries = 0;  // llama_decode returned 1 and the batch was shrunk
  int64_t decodeMicros = 0;
  // Speculative decoding: one entry per slot whose draft the target verified in this step.
  struct Draft {
    int32_t slot = -1;
    int32_t drafted = 0;
    int32_t accepted = 0;
  };
  std::vector<Draft> drafts;
  int64_t draftMicros = 0;  // drafting, and the draft model mirroring the target's batch
  // The KV had no room even for the generating slots' tokens: nothing was decoded and no slot changed (events
  // hold only cancels). The caller frees cells (an idle slot's cache, a preempted request) and steps again.
  bool kvFull = false;
};

// Where a slot (or a saved state) can resume a prompt that shares `n` tokens with what it holds: at n itself when
// n >= from (the sliding window still covers it; from is 0 without sliding-window layers), else at the largest
// checkpoint <= n, else nowhere (0). The scheduler applies it (src/scheduler/decoder.ts reusablePrefix).
struct ResumePoints {
  int32_t from = 0;
  std::vector<int32_t> checkpoints;  // token counts, ascending
};

// An idle slot's KV in host memory with the tokens it holds: llama_state_seq_get_data_ext's bytes and the slot's
// sliding-window checkpoints, in one opaque buffer only restoreState() reads.
struct SavedState {
  std::vector<llama_token> tokens;
  std::vector<uint8_t> data;
  ResumePoints resume;
};

struct SlotInfo {
  SlotState state = SlotState::kIdle;
  int32_t cachedTokens = 0;   // tokens whose KV the slot holds
  int32_t pendingPrompt = 0;  // prompt tokens not yet decoded
  int32_t generated = 0;
  // This request's speculative decoding: drafted tokens the target verified, and how many of them it accepted.
  int32_t draftTokens = 0;
  int32_t draftAccepted = 0;
};

class BatchDecoder {
 public:
  BatchDecoder(std::shared_ptr<Model> model, const DecoderOptions &opts);
  ~BatchDecoder();
  BatchDecoder(const BatchDecoder &) = delete;
  BatchDecoder &operator=(const BatchDecoder &) = delete;

  StartResult start(int32_t slot, const StartParams &params);
  // Returns true when the slot was freed at once (no step running), false when the running step will
  // end it and report a 'cancelled' event.
  bool cancel(int32_t slot);
  // Drops the slot's KV (it is kept by default for prefix reuse). Throws BUSY on an active slot.
  void clear(int32_t slot);
  // Gives idle slot `dst` the KV of `src`'s first `count` cached tokens (all when count < 0), so a start on dst
  // with the same prompt reuses it: n choices of one prompt prefill it once. Between steps only.
  int32_t copyPrefix(int32_t src, int32_t dst, int32_t count = -1);
  // An idle slot's KV in host memory and back (slot files are these bytes behind a header: src/engine/slot-file.ts).
  // restoreState() drops what the slot held, checks that the state is one this decoder's
  // layout can take (model, KV types, streams) and that it holds exactly `tokens`' positions, and returns their
  // count. Between steps only (they wait for one); the caller runs them off the JS thread.
  SavedState saveState(int32_t slot);
  int32_t restoreState(int32_t slot, const std::vector<llama_token> &tokens, const std::vector<uint8_t> &data);
  // Decodes one batch of at most min(tokenBudget, nBatch) tokens. Generating slots always get their
  // token; prefilling slots share what is left, in slot order starting after the last one served. With speculative
  // decoding, generating slots also draft up to draftLimits[slot] tokens (absent: the configured maximum) that the
  // same decode verifies; drafts come out of the budget before prompt tokens, and a KV with no room drops them
  // before it reports kvFull.
  StepResult step(int32_t tokenBudget, const std::vector<int32_t> &draftLimits = {});

  // From the last published snapshot (see Threading above): a copy, safe at any time.
  SlotInfo slotInfo(int32_t slot) const;
  std::vector<llama_token> cachedPrefix(int32_t slot) const;  // the tokens the slot's KV holds
  ResumePoints resumePoints(int32_t slot) const;              // where it can resume a prompt sharing a prefix
  int32_t nSlots() const { return opts_.nSlots; }
  int32_t nCtxPerSlot() const { return nCtxSlot_; }
  int32_t nBatch() const { return opts_.nBatch; }
  const DecoderOptions &options() const { return opts_; }
  bool hasWork() const;
  // Speculative decoding: the most tokens a slot drafts per step (0: off), and its types ("draft-simple", ...).
  int32_t draftMax() const { return spec_ ? spec_->nMax() : 0; }
  std::string speculativeTypes() const { return spec_ ? spec_->typeNames() : ""; }
  // KV cells in use, summed over slots (for metrics); safe at any time.
  int64_t kvCellsUsed() const { return kvCells_.load(std::memory_order_relaxed); }
  // Host memory the slots' sliding-window checkpoints hold (bounded by ctxCheckpoints per slot); safe at any time.
  int64_t checkpointBytes() const { return checkpointBytes_.load(std::memory_order_relaxed); }

 private:
  // One slot's state (decoder_slot.h). The members below are defined in the files that own their job:
  // batch_decoder.cpp unless noted.
  struct Slot;
  // What readers see of one slot; guarded by viewMutex_.
  struct SlotView {
    SlotInfo info;
    std::vector<llama_token> cache;
    ResumePoints resume;
  };
  // How a step's decode went (decodeWithRetry).
  enum class Decoded { kOk, kNothing, kNoRoom, kFailed };

  // The step (decoder_step.cpp; batch assembly in decoder_batch.cpp).
  StepResult stepLocked(int32_t tokenBudget, const std::vector<int32_t> &draftLimits);
  // Asks the drafter for each generating slot's draft within its limit and the batch's room; returns the drafted
  // tokens in all (speculation.h).
  int32_t makeDrafts(const std::vector<int32_t> &draftLimits, StepResult &r);
  void dropDrafts();
  // A slot's drafted tokens the target accepted join its cache; the rest leave the KV. Returns what the slot emits.
  std::vector<llama_token> verifyDraft(Slot &s);
  // Fills batch_: the generating slots' tokens, then prompt tokens up to prefillBudget; returns the last prefilling
  // slot served (-1: none).
  int32_t assembleBatch(int32_t prefillBudget);
  // Assembles and decodes, halving the prompt share while the KV has no room; kNothing: nothing to decode, kNoRoom:
  // not even the generating slots' tokens fit, kFailed: the batch's slots ended with an error.
  Decoded decodeWithRetry(StepResult &r, int32_t nGen, int32_t &nDraft, int32_t prefillBudget, int32_t &lastServed);
  // llama_decode on batch_, or the return code an injected fault plans for this step (faults.h).
  int32_t decodeBatch();
  void failBatch(int32_t ret, StepResult &r);
  StepResult &kvFull(StepResult &r);
  // Samples a slot with logits in the decoded batch; its event, or its end, goes to `events`.
  void sampleSlot(Slot &s, int32_t &sampled, StepResult &r);
  // Gives out one generated token (output `index` of the batch); false when it ended the slot.
  bool emitToken(Slot &s, llama_token tok, int32_t index, int32_t promptProcessed, std::vector<SlotEvent> &events);

  // Sliding-window checkpoints (checkpoints.cpp).
  bool checkpointing() const;
  void checkpoint(Slot &s);
  int32_t resumeFrom(const Slot &s) const;
  ResumePoints resumeOf(const Slot &s) const;
  // The largest prefix <= keep the slot can resume at, restoring a checkpoint when its window has moved on.
  size_t resumeAt(Slot &s, size_t keep);

  // A slot's KV outside a decode (slot_kv.cpp; copyPrefix too).
  void forgetKv(Slot &s);
  bool shiftContext(Slot &s);

  // Slots and their snapshot.
  // Brings views_ and kvCells_ up to date; called with stepMutex_ held, after every change to a slot.
  void publish();
  void checkSlot(int32_t slot) const;
  Slot &idleSlot(int32_t slot, const char *what);
  std::string heldBack(const std::vector<llama_token> &output, bool renderSpecial,
                       const std::vector<llama_token> &preserved) const;
  void applyCancels(std::vector<SlotEvent> &events);
  void endSlot(Slot &s, EndReason reason, std::vector<SlotEvent> &events, const std::string &error = "");
  // Idle again, nothing pending; its KV stays for prefix reuse.
  void release(Slot &s);
  std::string takeText(Slot &s, bool flush);

  std::shared_ptr<Model> model_;
  DecoderOptions opts_;
  llama_context *ctx_ = nullptr;
  llama_batch batch_{};
  int32_t nCtxSlot_ = 0;
  int32_t nSwa_ = 0;
  int32_t nextPrefill_ = 0;    // round-robin start among prefilling slots
  FaultPlan faults_;           // from LLAMA_SLOTS_FAULTS at creation; empty in production
  int64_t decodingSteps_ = 0;  // steps that reached llama_decode, for the fault plan
  std::atomic<int64_t> kvCells_{0};
  std::atomic<int64_t> checkpointBytes_{0};
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<Speculation> spec_;  // null without speculative decoding
  mutable std::mutex stepMutex_;       // held by a step and by every call that changes a slot
  std::vector<SlotView> views_;
  mutable std::mutex viewMutex_;  // taken after stepMutex_, never before
};

}  // namespace core
