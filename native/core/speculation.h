#pragma once
// Speculative decoding for the batch decoder, through llama.cpp's common library (common/speculative.h) as
// llama-server uses it: one common_speculative with a sequence per slot drafts for every drafting slot at once, and
// the target verifies each slot's draft in the step's one llama_decode. Mechanism only: how many tokens a slot may
// draft in a step is the caller's choice (the scheduler's draft policy, src/scheduler/draft-policy.ts).
//
// A draft model's context holds, per slot, the first `synced` tokens of what the target's KV holds (or will hold once
// the step's decode is in). It is brought up to date lazily: a slot about to draft first decodes what it missed
// (catchUp), so slots that do not draft cost the draft model nothing; the tokens draft() decoded stay. Anything that
// changes a slot's target KV outside a decode (a new prompt keeping a prefix, a restored state, a copied prefix, a
// context shift, rejected or dropped drafts) calls trim().
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama.h"
#include "model.h"

struct common_speculative;

namespace core {

struct NgramOptions {
  int32_t sizeN = 12;  // n-gram (key) length
  int32_t sizeM = 48;  // m-gram (drafted value) length
  int32_t minHits = 1;
};

// llama-server's speculative flags (common/arg.cpp), by the same names and defaults.
struct SpeculativeOptions {
  std::vector<std::string> types;     // --spec-type names; empty: no speculation
  std::shared_ptr<Model> draftModel;  // draft-simple
  std::string draftKvType = "f16";    // -ctkd / -ctvd
  std::string draftKvTypeV;           // empty: draftKvType
  int32_t nMax = 3;                   // --spec-draft-n-max
  int32_t nMin = 0;                   // --spec-draft-n-min
  float pMin = 0.0f;                  // --spec-draft-p-min
  float pSplit = 0.1f;                // --spec-draft-p-split
  NgramOptions ngramSimple;
  NgramOptions ngramMapK;
  NgramOptions ngramMapK4v;
  int32_t ngramModMatch = 24;
  int32_t ngramModMin = 48;
  int32_t ngramModMax = 64;
  std::string lookupCacheStatic;   // -lcs
  std::string lookupCacheDynamic;  // -lcd
  // Benchmarking only (--spec-synth-len / --spec-synth-rates): drafted tokens are accepted at random with these
  // rates instead of by match, so random-weight models show real costs. synthLen -1: off.
  double synthLen = -1.0;
  std::vector<double> synthRates;

  bool enabled() const {
    for (const auto &t : types) {
      if (t != "none") return true;
    }
    return false;
  }
};

struct DraftContextParams {
  uint32_t nCtx = 0;
  uint32_t nBatch = 0;
  uint32_t nUbatch = 0;
  uint32_t nSeq = 0;
  bool kvUnified = false;
  bool swaFull = false;
  int32_t flashAttn = -1;
  int32_t nThreads = 0;
  int32_t nThreadsBatch = 0;
  bool offloadKv = true;
};

class Speculation {
 public:
  // Throws INVALID_ARGUMENT for a type the library cannot run here, a draft model whose vocabulary differs from the
  // target's, or synthetic rates it refuses.
  Speculation(const SpeculativeOptions &opts, llama_context *target, const DraftContextParams &draftParams);
  ~Speculation();
  Speculation(const Speculation &) = delete;
  Speculation &operator=(const Speculation &) = delete;

  // The most tokens the options can draft per slot and step (before the implementations' own limits).
  static int32_t configuredMax(const SpeculativeOptions &opts);
  int32_t nMax() const { return nMax_; }
  bool synthetic() const { return !synthProbs_.empty(); }
  const std::vector<double> &synthProbs() const { return synthProbs_; }
  bool hasDraftModel() const { return ctxDft_ != nullptr; }
  std::string typeNames() const;

  // A slot's prompt is in and it generates from now (n-gram types index the prompt).
  void begin(int32_t slot, const std::vector<llama_token> &tokens);
  // The slot's target KV now holds only its first n tokens.
  void trim(int32_t slot, int32_t n);
  // The target's context shift: tokens [keep, keep + discard) of n dropped, the rest moved back.
  void shift(int32_t slot, int32_t keep, int32_t discard, int32_t n);
  // Slot dst's target KV is now src's first n tokens (n choices of one prompt). With one KV stream the draft context
  // shares src's cells too; else dst catches up before it drafts.
  void copy(int32_t src, int32_t dst, int32_t n, bool unified);
  // Whether the draft context holds the slot's `tokens` (its target KV); if not, decodes the missing ones on the draft
  // model. False when it cannot (the slot then does not draft this step).
  bool catchUp(int32_t slot, const std::vector<llama_token> &tokens);
  // Asks for a draft of at most nMax tokens continuing tokens + last (tokens: what the slot's target KV holds).
  void request(int32_t slot, int32_t nMax, const std::vector<llama_token> &tokens, llama_token last,
               std::vector<llama_token> &result);
  // Drafts for every slot asked since the last call, all together.
  void draft();
  // The target decoded `batch` (the n-gram types' hook; a draft model catches up lazily instead).
  void process(const llama_batch &batch);
  // n of the slot's last draft were accepted.
  void accept(int32_t slot, int32_t nAccepted);

 private:
  void release();  // frees what the constructor made, once

  common_speculative *spec_ = nullptr;
  llama_context *ctxDft_ = nullptr;
  std::vector<std::string> types_;
  int32_t nMax_ = 0;
  std::vector<double> synthProbs_;
  std::vector<int32_t> synced_;   // per slot: tokens of the target's KV the draft context mirrors
  std::vector<int32_t> pending_;  // slots asked for a draft since the last draft()
  llama_batch batch_{};           // catch-up batches
  uint32_t nBatch_ = 0;
};

}  // namespace core
