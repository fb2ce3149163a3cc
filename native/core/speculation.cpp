// Speculation (speculation.h): llama.cpp's common_speculative over the decoder's slots, and the draft model's context
// kept in step with the target's KV.
#include "speculation.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "backend.h"
#include "common.h"
#include "errors.h"
#include "kv_types.h"
#include "speculative.h"  // llama.cpp common/speculative.h

namespace core {
namespace {

// Types that need heads this server does not load (an EAGLE3 or DFlash sidecar, a target's MTP layers).
bool needsHeads(common_speculative_type t) {
  return t == COMMON_SPECULATIVE_TYPE_DRAFT_EAGLE3 || t == COMMON_SPECULATIVE_TYPE_DRAFT_MTP ||
         t == COMMON_SPECULATIVE_TYPE_DRAFT_DFLASH || t == COMMON_SPECULATIVE_TYPE_DRAFT_DSPARK;
}

common_params_speculative_ngram_map ngramMap(const NgramOptions &o) {
  common_params_speculative_ngram_map m;
  m.size_n = static_cast<uint16_t>(o.sizeN);
  m.size_m = static_cast<uint16_t>(o.sizeM);
  m.min_hits = static_cast<uint16_t>(o.minHits);
  return m;
}

// llama.cpp aborts the process on a lookup cache it cannot read (common_ngram_cache_load asserts): the file is checked
// first, record by record (an n-gram of 4 tokens, a count n > 0, then n token/count pairs with counts > 0).
void checkLookupCache(const std::string &path, const char *flag) {
  if (path.empty()) return;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(codes::kInvalidArgument, std::string(flag) + ": cannot open the lookup cache '" + path + "'");
  auto bad = [&]() {
    return Error(codes::kInvalidArgument, std::string(flag) + ": '" + path + "' is not an n-gram lookup cache");
  };
  constexpr size_t kNgramBytes = 4 * sizeof(llama_token);
  char ngram[kNgramBytes];
  while (in.read(ngram, kNgramBytes)) {
    int32_t n = 0;
    if (!in.read(reinterpret_cast<char *>(&n), sizeof n) || n <= 0) throw bad();
    for (int32_t i = 0; i < n; ++i) {
      int32_t pair[2];
      if (!in.read(reinterpret_cast<char *>(pair), sizeof pair) || pair[1] <= 0) throw bad();
    }
  }
  if (in.gcount() != 0) throw bad();
}

std::vector<common_speculative_type> typesOf(const SpeculativeOptions &o) {
  std::vector<common_speculative_type> types;
  for (const std::string &name : o.types) {
    if (name == "none") continue;
    const common_speculative_type t = common_speculative_type_from_name(name);
    if (t == COMMON_SPECULATIVE_TYPE_NONE || t == COMMON_SPECULATIVE_TYPE_COUNT) {
      throw Error(codes::kInvalidArgument, "unknown speculative type '" + name + "' (one of " +
                                               std::string(common_speculative_all_types_str()) + ")");
    }
    if (needsHeads(t)) {
      throw Error(codes::kInvalidArgument,
                  "speculative type '" + name +
                      "' needs draft heads (EAGLE3/DFlash sidecars or a model's MTP layers) that this server does not "
                      "load; use draft-simple with a draft model (-md) or an n-gram type");
    }
    types.push_back(t);
  }
  const bool simple = std::find(types.begin(), types.end(), COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE) != types.end();
  if (simple && !o.draftModel) {
    throw Error(codes::kInvalidArgument, "speculative type 'draft-simple' needs a draft model (-md)");
  }
  if (!simple && o.draftModel) {
    throw Error(codes::kInvalidArgument, "a draft model (-md) is used by speculative type 'draft-simple' only");
  }
  if (std::find(types.begin(), types.end(), COMMON_SPECULATIVE_TYPE_NGRAM_CACHE) != types.end()) {
    // Its drafts must be confirmed by the static cache: without one it never drafts.
    if (o.lookupCacheStatic.empty()) {
      throw Error(
          codes::kInvalidArgument,
          "speculative type 'ngram-cache' needs a static lookup cache (-lcs FILE); without one it never drafts");
    }
    checkLookupCache(o.lookupCacheStatic, "-lcs");
    checkLookupCache(o.lookupCacheDynamic, "-lcd");
  } else if (!o.lookupCacheStatic.empty() || !o.lookupCacheDynamic.empty()) {
    throw Error(codes::kInvalidArgument, "lookup caches (-lcs, -lcd) are used by speculative type 'ngram-cache' only");
  }
  return types;
}

common_params_speculative toCommon(const SpeculativeOptions &o, const std::vector<common_speculative_type> &types) {
  common_params_speculative p;
  p.types = types;
  p.draft.n_max = o.nMax;
  p.draft.n_min = o.nMin;
  p.draft.p_min = o.pMin;
  p.draft.p_split = o.pSplit;
  p.ngram_simple = ngramMap(o.ngramSimple);
  p.ngram_map_k = ngramMap(o.ngramMapK);
  p.ngram_map_k4v = ngramMap(o.ngramMapK4v);
  p.ngram_mod.n_match = o.ngramModMatch;
  p.ngram_mod.n_min = o.ngramModMin;
  p.ngram_mod.n_max = o.ngramModMax;
  p.ngram_cache.lookup_cache_static = o.lookupCacheStatic;
  p.ngram_cache.lookup_cache_dynamic = o.lookupCacheDynamic;
  p.synth_len = o.synthLen;
  p.synth_rates = o.synthRates;
  return p;
}

llama_context *draftContext(const Model &draft, const DraftContextParams &p, const SpeculativeOptions &o) {
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = p.nCtx;
  cp.n_batch = p.nBatch;
  cp.n_ubatch = p.nUbatch;
  cp.n_seq_max = p.nSeq;
  // One output per drafting slot per draft step; a mirrored target batch needs none.
  cp.n_outputs_max = p.nSeq;
  cp.kv_unified = p.kvUnified;
  cp.swa_full = p.swaFull;
  cp.flash_attn_type = static_cast<llama_flash_attn_type>(p.flashAttn);
  cp.type_k = kvTypeOf(o.draftKvType);
  cp.type_v = kvTypeOf(o.draftKvTypeV.empty() ? o.draftKvType : o.draftKvTypeV);
  cp.offload_kqv = p.offloadKv;
  cp.no_perf = true;
  if (p.nThreads > 0) cp.n_threads = p.nThreads;
  cp.n_threads_batch = p.nThreadsBatch > 0 ? p.nThreadsBatch : cp.n_threads;
  takeLastLogError();
  llama_context *ctx = llama_init_from_model(draft.raw(), cp);
  if (ctx == nullptr) {
    const std::string why = takeLastLogError();
    throw Error(codes::kContextFailed, "could not create the draft model's context" + (why.empty() ? "" : ": " + why));
  }
  return ctx;
}

}  // namespace

int32_t Speculation::configuredMax(const SpeculativeOptions &o) {
  if (!o.enabled()) return 0;
  const common_params_speculative p = toCommon(o, typesOf(o));
  return common_speculative_n_max(&p);
}

Speculation::Speculation(const SpeculativeOptions &o, llama_context *target, const DraftContextParams &dp)
    : types_(o.types), synced_(dp.nSeq, 0), nBatch_(dp.nBatch) {
  const std::vector<common_speculative_type> types = typesOf(o);
  require(o.nMax >= 0 && o.nMin >= 0, "spec-draft-n-max and spec-draft-n-min must be >= 0");
  // Drafts need a memory that can drop a sequence's tail. llama-server probes the target context for it
  // (common_context_can_seq_rm: a decode and a clear), which leaves every later decode of that context much slower here
  // (measured 50 -> 80 ms per token on the gemma3-1b preset); the model's kind says the same without touching it.
  const std::initializer_list<const llama_model *> models = {llama_get_model(target),
                                                             o.draftModel ? o.draftModel->raw() : nullptr};
  for (const llama_model *m : models) {
    if (m != nullptr && (llama_model_is_recurrent(m) || llama_model_is_hybrid(m))) {
      throw Error(
          codes::kInvalidArgument,
          std::string("speculative decoding needs models whose KV cache can drop a sequence's last tokens; the ") +
              (m == llama_get_model(target) ? "target" : "draft") + " model's memory (recurrent or hybrid) cannot");
    }
  }
  common_params_speculative p = toCommon(o, types);
  try {
    if (o.draftModel) ctxDft_ = draftContext(*o.draftModel, dp, o);
    p.draft.ctx_tgt = target;
    p.draft.ctx_dft = ctxDft_;
    spec_ = common_speculative_init(p, dp.nSeq);
    if (spec_ == nullptr) throw Error(codes::kInvalidArgument, "no speculative implementation could be created");
    nMax_ = common_speculative_n_max(spec_);
    synthProbs_ = common_speculative_get_synth_probs(spec_);
  } catch (const Error &) {
    release();
    throw;
  } catch (const std::exception &e) {
    release();
    throw Error(codes::kInvalidArgument, std::string("speculative decoding: ") + e.what());
  }
  batch_ = llama_batch_init(static_cast<int32_t>(nBatch_), 0, 1);
}

Speculation::~Speculation() {
  release();
}

void Speculation::release() {
  common_speculative_free(spec_);
  spec_ = nullptr;
  if (batch_.token != nullptr) llama_batch_free(batch_);
  batch_ = {};
  if (ctxDft_ != nullptr) llama_free(ctxDft_);
  ctxDft_ = nullptr;
}

std::string Speculation::typeNames() const {
  std::string out;
  for (const auto &t : types_) out += (out.empty() ? "" : ",") + t;
  return out;
}

void Speculation::begin(int32_t slot, const std::vector<llama_token> &tokens) {
  common_speculative_begin(spec_, slot, tokens);
}

void Speculation::trim(int32_t slot, int32_t n) {
  if (ctxDft_ == nullptr) return;
  int32_t &synced = synced_[static_cast<size_t>(slot)];
  if (synced <= n) return;
  llama_memory_t mem = llama_get_memory(ctxDft_);
  if (n > 0 && llama_memory_seq_rm(mem, slot, n, -1)) {
    synced = n;
  } else {
    llama_memory_seq_rm(mem, slot, -1, -1);
    synced = 0;
  }
}

void Speculation::shift(int32_t slot, int32_t keep, int32_t discard, int32_t n) {
  if (ctxDft_ == nullptr) return;
  int32_t &synced = synced_[static_cast<size_t>(slot)];
  llama_memory_t mem = llama_get_memory(ctxDft_);
  // The same shift as the target's, so the draft model's context keeps what the target's attention sees.
  if (synced == n && llama_memory_can_shift(mem) && llama_memory_seq_rm(mem, slot, keep, keep + discard)) {
    llama_memory_seq_add(mem, slot, keep + discard, n, -discard);
    synced = n - discard;
  } else {
    trim(slot, keep);
  }
}

void Speculation::copy(int32_t src, int32_t dst, int32_t n, bool unified) {
  trim(dst, 0);
  if (ctxDft_ == nullptr || !unified || n <= 0 || synced_[static_cast<size_t>(src)] < n) return;
  llama_memory_seq_cp(llama_get_memory(ctxDft_), src, dst, 0, n);
  synced_[static_cast<size_t>(dst)] = n;
}

bool Speculation::catchUp(int32_t slot, const std::vector<llama_token> &tokens) {
  if (ctxDft_ == nullptr) return true;
  const int32_t n = static_cast<int32_t>(tokens.size());
  trim(slot, n);
  int32_t &synced = synced_[static_cast<size_t>(slot)];
  while (synced < n) {
    const int32_t take = std::min<int32_t>(n - synced, static_cast<int32_t>(nBatch_));
    batch_.n_tokens = 0;
    for (int32_t j = 0; j < take; ++j) {
      const int32_t i = batch_.n_tokens++;
      batch_.token[i] = tokens[static_cast<size_t>(synced + j)];
      batch_.pos[i] = synced + j;
      batch_.n_seq_id[i] = 1;
      batch_.seq_id[i][0] = slot;
      batch_.logits[i] = j == take - 1;
    }
    if (llama_decode(ctxDft_, batch_) != 0) {
      takeLastLogError();
      llama_memory_seq_rm(llama_get_memory(ctxDft_), slot, synced, -1);
      return false;
    }
    synced += take;
  }
  return true;
}

void Speculation::request(int32_t slot, int32_t nMax, const std::vector<llama_token> &tokens, llama_token last,
                          std::vector<llama_token> &result) {
  result.clear();
  common_speculative_draft_params &dp = common_speculative_get_draft_params(spec_, slot);
  dp.drafting = true;
  dp.n_max = nMax;
  dp.n_past = static_cast<llama_pos>(tokens.size());
  dp.id_last = last;
  dp.prompt = &tokens;
  dp.result = &result;
  pending_.push_back(slot);
}

void Speculation::draft() {
  if (pending_.empty()) return;
  common_speculative_draft(spec_);
  if (ctxDft_ != nullptr) {
    // The draft model decoded each slot's last token and its draft but the last: the same tokens at the same
    // positions as the target's batch, so they stay (llama-server re-decodes them, TAG_SPEC_AVOID_DRAFT_REEVAL); what
    // the target rejects is trimmed after verification.
    llama_memory_t mem = llama_get_memory(ctxDft_);
    for (int32_t slot : pending_) {
      int32_t &synced = synced_[static_cast<size_t>(slot)];
      synced = std::max(synced, static_cast<int32_t>(llama_memory_seq_pos_max(mem, slot) + 1));
    }
  }
  for (int32_t slot : pending_) common_speculative_get_draft_params(spec_, slot).drafting = false;
  pending_.clear();
  takeLastLogError();  // a draft that failed to decode only drafts less
}

void Speculation::process(const llama_batch &batch) {
  // The n-gram types learn nothing here (their process() is empty). A draft model's context is not made to mirror
  // every batch, as llama-server's is: a slot the scheduler lets draft catches up first (catchUp), in one decode of
  // all it missed, so steps where drafting does not pay cost the draft model nothing.
  if (ctxDft_ == nullptr) common_speculative_process(spec_, batch);
}

void Speculation::accept(int32_t slot, int32_t nAccepted) {
  common_speculative_accept(spec_, slot, static_cast<uint16_t>(std::max(0, nAccepted)));
}

}  // namespace core
