// BatchDecoder::step(): one llama_decode over the slots. Built as three parts: batch assembly (assembleBatch,
// decoder_batch.cpp), decode with retry (a batch the KV has no room for shrinks its prompt share, down to the
// generating slots' tokens alone, then the caller makes room), and sampling (each batch's tokens enter their slots'
// caches; each slot with logits samples its next token, which may end it). Injected faults (faults.h) stand in for
// llama_decode's return and a sampler's failure.
#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "backend.h"
#include "batch_decoder.h"
#include "decoder_slot.h"
#include "token_probs.h"

namespace core {

StepResult BatchDecoder::step(int32_t tokenBudget, const std::vector<int32_t> &draftLimits) {
  std::lock_guard<std::mutex> lock(stepMutex_);
  StepResult r;
  try {
    r = stepLocked(tokenBudget, draftLimits);
  } catch (...) {
    publish();
    throw;
  }
  publish();
  return r;
}

StepResult BatchDecoder::stepLocked(int32_t tokenBudget, const std::vector<int32_t> &draftLimits) {
  StepResult r;
  applyCancels(r.events);

  int32_t nGen = 0;
  for (auto &sp : slots_) nGen += sp->state == SlotState::kGenerating ? 1 : 0;
  const int32_t budget = std::clamp(tokenBudget, 1, opts_.nBatch);
  int32_t nDraft = spec_ && nGen > 0 ? makeDrafts(draftLimits, r) : 0;
  int32_t lastServed = -1;
  switch (decodeWithRetry(r, nGen, nDraft, std::max(0, budget - nGen - nDraft), lastServed)) {
    case Decoded::kNothing:
    case Decoded::kFailed: return r;
    case Decoded::kNoRoom: return kvFull(r);
    case Decoded::kOk: break;
  }
  if (spec_) {
    // The n-gram types' hook; a draft model catches up only before it drafts (speculation.h).
    const auto t0 = std::chrono::steady_clock::now();
    spec_->process(batch_);
    r.draftMicros +=
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  }

  r.batchTokens = batch_.n_tokens;
  r.generatedTokens = nGen;
  if (lastServed >= 0) nextPrefill_ = (lastServed + 1) % opts_.nSlots;
  int32_t sampled = 0;
  for (auto &sp : slots_) {
    Slot &s = *sp;
    // The batch's tokens are in the KV now: the slot's cache follows (a draft's after verification).
    if (s.state == SlotState::kGenerating) s.cache.push_back(s.last);
    if (s.promptThisStep > 0) {
      s.cache.append(s.pending.begin(), s.pending.begin() + s.promptThisStep);
      s.pending.erase(s.pending.begin(), s.pending.begin() + s.promptThisStep);
      r.promptTokens += s.promptThisStep;
    }
    if (s.logitIndex >= 0) {
      sampleSlot(s, sampled, r);
    } else if (s.promptThisStep > 0) {
      SlotEvent ev;
      ev.slot = s.id;
      ev.promptProcessed = s.promptThisStep;
      r.events.push_back(std::move(ev));
    }
  }
  // Cancels that arrived during the decode end their slots now.
  applyCancels(r.events);
  return r;
}

int32_t BatchDecoder::makeDrafts(const std::vector<int32_t> &draftLimits, StepResult &r) {
  const auto t0 = std::chrono::steady_clock::now();
  int32_t room = opts_.nBatch;
  for (auto &sp : slots_) room -= sp->state == SlotState::kGenerating ? 1 : 0;
  bool asked = false;
  for (auto &sp : slots_) {
    Slot &s = *sp;
    s.draft.clear();
    if (s.state != SlotState::kGenerating) continue;
    const size_t id = static_cast<size_t>(s.id);
    int32_t limit = id < draftLimits.size() && draftLimits[id] >= 0 ? draftLimits[id] : spec_->nMax();
    // As llama-server: a draft leaves room for one more token in the slot (a context shift needs it) and never
    // reaches past the request's last token. Post-sampling probabilities are of one sampler state: no drafts.
    limit = std::min({limit, spec_->nMax(), nCtxSlot_ - static_cast<int32_t>(s.cache.size()) - 2,
                      s.maxTokens - s.generated - 1, room});
    if (limit <= 0 || (s.nProbs > 0 && s.postSampling)) continue;
    if (!spec_->catchUp(s.id, s.cache.tokens())) continue;
    spec_->request(s.id, limit, s.cache.tokens(), s.last, s.draft);
    room -= limit;
    asked = true;
  }
  if (asked) spec_->draft();
  int32_t n = 0;
  for (auto &sp : slots_) n += static_cast<int32_t>(sp->draft.size());
  r.draftMicros += std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  return n;
}

void BatchDecoder::dropDrafts() {
  for (auto &sp : slots_) {
    // The draft model holds the slot's last token and draft already: they are not coming.
    if (!sp->draft.empty()) spec_->trim(sp->id, static_cast<int32_t>(sp->cache.size()));
    sp->draft.clear();
  }
}

BatchDecoder::Decoded BatchDecoder::decodeWithRetry(StepResult &r, int32_t nGen, int32_t &nDraft, int32_t prefillBudget,
                                                    int32_t &lastServed) {
  for (;;) {
    lastServed = assembleBatch(prefillBudget);
    // Only prompt tokens were asked for and not even one fitted (r.retries > 0): the pool is full.
    if (batch_.n_tokens == 0) return r.retries > 0 ? Decoded::kNoRoom : Decoded::kNothing;
    if (r.retries == 0) ++decodingSteps_;  // once per step, however often its batch shrinks

    const auto t0 = std::chrono::steady_clock::now();
    const int32_t ret = decodeBatch();
    r.decodeMicros +=
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
    if (ret == 0) return Decoded::kOk;
    if (ret != 1) {
      failBatch(ret, r);
      return Decoded::kFailed;
    }
    // 1: no room in the KV for this batch; llama_decode left the memory unchanged. Retry with less prompt, down
    // to none, then without drafts; with only the generating slots' tokens left, no slot fails: the caller makes room.
    ++r.retries;
    if (batch_.n_tokens == nGen + nDraft) {
      if (nDraft == 0) return Decoded::kNoRoom;
      dropDrafts();
      nDraft = 0;
      continue;
    }
    prefillBudget /= 2;
  }
}

int32_t BatchDecoder::decodeBatch() {
  if (!faults_.empty()) {
    if (const auto planned = faults_.decodeReturn(decodingSteps_)) return *planned;
  }
  return llama_decode(ctx_, batch_);
}

void BatchDecoder::failBatch(int32_t ret, StepResult &r) {
  // The slots in this batch fail; others are untouched. A failed decode may leave some ubatches in
  // the KV, so the affected slots forget theirs.
  const std::string why = takeLastLogError();
  const std::string message = "llama_decode failed (" + std::to_string(ret) + ")" + (why.empty() ? "" : ": " + why);
  for (auto &sp : slots_) {
    if (sp->logitIndex < 0 && sp->promptThisStep == 0) continue;
    forgetKv(*sp);
    endSlot(*sp, EndReason::kError, r.events, message);
  }
}

StepResult &BatchDecoder::kvFull(StepResult &r) {
  // Nothing of this step stays: the slots keep their pending prompt, their sampled token and their positions,
  // and the per-step marks go. Cancels are applied (they end slots whether or not a batch fits).
  if (spec_) dropDrafts();
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

void BatchDecoder::sampleSlot(Slot &s, int32_t &sampled, StepResult &r) {
  std::vector<llama_token> ids;
  try {
    if (!faults_.empty() && faults_.samplerThrows(decodingSteps_, s.id, sampled++))
      throw std::runtime_error("injected fault (" + std::string(FaultPlan::kEnvVar) + " sampler_throw)");
    if (s.draft.empty()) ids.push_back(s.sampler.sample(ctx_, s.logitIndex));
    else ids = verifyDraft(s);
  } catch (const std::exception &e) {
    // A sampler that fails (a grammar with no valid continuation, say) ends its own slot only. Its draft leaves the KV.
    if (!s.draft.empty()) {
      llama_memory_seq_rm(llama_get_memory(ctx_), s.id, static_cast<llama_pos>(s.cache.size()), -1);
      spec_->trim(s.id, static_cast<int32_t>(s.cache.size()));
      s.draft.clear();
    }
    endSlot(s, EndReason::kError, r.events, std::string("sampling failed: ") + e.what());
    return;
  }
  if (!s.draft.empty()) {
    const int32_t accepted = static_cast<int32_t>(ids.size()) - 1;
    r.drafts.push_back({s.id, static_cast<int32_t>(s.draft.size()), accepted});
    r.generatedTokens += accepted;
    s.draftTokens += static_cast<int32_t>(s.draft.size());
    s.draftAccepted += accepted;
    s.draft.clear();
  }
  if (s.state == SlotState::kPrefill && spec_) spec_->begin(s.id, s.cache.tokens());
  s.state = SlotState::kGenerating;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!emitToken(s, ids[i], s.logitIndex + static_cast<int32_t>(i), i == 0 ? s.promptThisStep : 0, r.events)) return;
  }
}

std::vector<llama_token> BatchDecoder::verifyDraft(Slot &s) {
  // The batch held the slot's last token and its draft at outputs logitIndex.. logitIndex + draft size.
  std::vector<int32_t> outputs(s.draft.size() + 1);
  for (size_t i = 0; i < outputs.size(); ++i) outputs[i] = s.logitIndex + static_cast<int32_t>(i);
  std::vector<llama_token> ids =
      spec_->synthetic()
          ? s.sampler.sampleSynthetic(ctx_, outputs, s.draft, spec_->synthProbs(), s.synthRng, model_->vocab())
          : s.sampler.sampleAndAcceptN(ctx_, outputs, s.draft);
  const int32_t accepted = static_cast<int32_t>(ids.size()) - 1;
  // The KV holds the cache, the slot's last token (already in the cache) and its draft: the accepted part stays.
  s.cache.append(s.draft.begin(), s.draft.begin() + accepted);
  llama_memory_seq_rm(llama_get_memory(ctx_), s.id, static_cast<llama_pos>(s.cache.size()), -1);
  spec_->trim(s.id, static_cast<int32_t>(s.cache.size()));
  spec_->accept(s.id, accepted);
  return ids;
}

bool BatchDecoder::emitToken(Slot &s, llama_token tok, int32_t index, int32_t promptProcessed,
                             std::vector<SlotEvent> &events) {
  SlotEvent ev;
  ev.slot = s.id;
  ev.promptProcessed = promptProcessed;
  if (s.nProbs > 0) recordProbs(ctx_, index, model_->info().nVocab, s.sampler, s.nProbs, s.postSampling, tok, ev);
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
  events.push_back(std::move(ev));
  if (end != EndReason::kNone) release(s);
  return end == EndReason::kNone;
}

}  // namespace core
