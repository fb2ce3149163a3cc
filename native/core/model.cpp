#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <climits>
#include <cstdio>
#include <new>
#if defined(__GLIBC__)  // known once a libc header is in
#include <malloc.h>
#endif

#include "backend.h"
#include "errors.h"
#include "faults.h"
#include "model.h"

namespace core {
namespace {

std::string metaString(const llama_model *model, const char *key) {
  char buf[512];
  const int32_t n = llama_model_meta_val_str(model, key, buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(std::min<int32_t>(n, sizeof(buf) - 1)));
}

const char *vocabTypeName(enum llama_vocab_type type) {
  switch (type) {
    case LLAMA_VOCAB_TYPE_NONE: return "none";
    case LLAMA_VOCAB_TYPE_SPM: return "spm";
    case LLAMA_VOCAB_TYPE_BPE: return "bpe";
    case LLAMA_VOCAB_TYPE_WPM: return "wpm";
    case LLAMA_VOCAB_TYPE_UGM: return "ugm";
    case LLAMA_VOCAB_TYPE_RWKV: return "rwkv";
    default: return "other";
  }
}

llama_load_mode loadMode(const LoadOptions &o) {
  if (o.useMmap && o.useMlock) return LLAMA_LOAD_MODE_MMAP_MLOCK;
  if (o.useMmap) return LLAMA_LOAD_MODE_MMAP;
  if (o.useMlock) return LLAMA_LOAD_MODE_MLOCK;
  return LLAMA_LOAD_MODE_NONE;
}

}  // namespace

std::shared_ptr<Model> Model::load(const std::string &path, const LoadOptions &opts, const ProgressFn &progress) {
  ensureBackend();
  takeLastLogError();
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = opts.nGpuLayers;
  params.load_mode = loadMode(opts);
  bool cancelled = false;
  const bool failAlloc = FaultPlan::fromEnv().allocFailLoad();
  struct Ctx {
    const ProgressFn *fn;
    bool *cancelled;
    bool failAlloc;
  } ctx{&progress, &cancelled, failAlloc};
  params.progress_callback = [](float p, void *user) -> bool {
    auto *c = static_cast<Ctx *>(user);
    // The first report comes once the buffers are allocated; llama.cpp's loader catches what is thrown here,
    // unwinds (freeing them) and returns no model, as when an allocation fails.
    if (c->failAlloc) throw std::bad_alloc();
    if (!*c->fn) return true;
    const bool go = (*c->fn)(p);
    if (!go) *c->cancelled = true;
    return go;
  };
  params.progress_callback_user_data = &ctx;

  LogCapture capture;
  llama_model *raw = llama_model_load_from_file(path.c_str(), params);
  if (raw == nullptr) {
    if (cancelled) throw Error(codes::kLoadCancelled, "model load was cancelled");
    const std::string why = takeLastLogError();
    throw Error(codes::kModelLoadFailed, "llama.cpp could not load " + path + (why.empty() ? "" : ": " + why));
  }
  return std::shared_ptr<Model>(new Model(raw, capture.text()));
}

Model::Model(llama_model *model, const std::string &loadLog) : model_(model), vocab_(llama_model_get_vocab(model)) {
  ModelInfo &i = info_;
  const size_t at = loadLog.find("offloaded ");
  if (at != std::string::npos) {
    int done = -1, all = -1;
    if (std::sscanf(loadLog.c_str() + at, "offloaded %d/%d layers", &done, &all) == 2) {
      i.offloadedLayers = done;
      i.offloadableLayers = all;
    }
  }
  i.architecture = metaString(model, "general.architecture");
  i.name = metaString(model, "general.name");
  char desc[256];
  llama_model_desc(model, desc, sizeof(desc));
  i.description = desc;
  i.fileType = llama_ftype_name(llama_model_ftype(model));
  i.nParams = llama_model_n_params(model);
  i.sizeBytes = llama_model_size(model);
  i.nCtxTrain = llama_model_n_ctx_train(model);
  i.nEmbd = llama_model_n_embd(model);
  i.nLayer = llama_model_n_layer(model);
  i.nHead = llama_model_n_head(model);
  i.nHeadKv = llama_model_n_head_kv(model);
  i.nSwa = llama_model_n_swa(model);
  i.nVocab = llama_vocab_n_tokens(vocab_);
  i.vocabType = vocabTypeName(llama_vocab_type(vocab_));
  i.bos = llama_vocab_bos(vocab_);
  i.eos = llama_vocab_eos(vocab_);
  i.eot = llama_vocab_eot(vocab_);
  i.addBos = llama_vocab_get_add_bos(vocab_);
  for (llama_token t = 0; t < i.nVocab; ++t) {
    if (llama_vocab_is_eog(vocab_, t)) i.eogTokens.push_back(t);
  }
  if (const char *tmpl = llama_model_chat_template(model, nullptr)) {
    i.hasChatTemplate = true;
    i.chatTemplate = tmpl;
  }
  const int32_t nMeta = llama_model_meta_count(model);
  for (int32_t k = 0; k < nMeta; ++k) {
    char key[256];
    if (llama_model_meta_key_by_index(model, k, key, sizeof(key)) < 0) continue;
    std::string value(1024, '\0');
    const int32_t n = llama_model_meta_val_str_by_index(model, k, value.data(), value.size());
    if (n < 0) continue;
    value.resize(std::min<size_t>(static_cast<size_t>(n), value.size() - 1));
    i.metadata.emplace_back(key, std::move(value));
  }
}

Model::~Model() {
  llama_model_free(model_);
}

void Model::checkToken(llama_token token) const {
  if (token < 0 || token >= info_.nVocab) {
    throw Error(codes::kInvalidArgument, "token " + std::to_string(token) + " is outside the vocabulary [0, " +
                                             std::to_string(info_.nVocab) + ")");
  }
}

std::vector<llama_token> Model::tokenize(const std::string &text, bool addSpecial, bool parseSpecial) const {
  if (text.size() > static_cast<size_t>(INT32_MAX / 2))
    throw Error(codes::kInvalidArgument, "text is too long to tokenize");
  const int32_t len = static_cast<int32_t>(text.size());
  std::vector<llama_token> out(static_cast<size_t>(len) + 2);
  int32_t n =
      llama_tokenize(vocab_, text.data(), len, out.data(), static_cast<int32_t>(out.size()), addSpecial, parseSpecial);
  if (n == INT32_MIN) throw Error(codes::kInvalidArgument, "text is too long to tokenize");
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab_, text.data(), len, out.data(), static_cast<int32_t>(out.size()), addSpecial,
                       parseSpecial);
    if (n < 0) throw Error(codes::kNativeError, "tokenization failed");
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Model::detokenize(const std::vector<llama_token> &tokens, bool removeSpecial, bool unparseSpecial) const {
  for (llama_token t : tokens) checkToken(t);
  std::string out(tokens.size() * 8 + 16, '\0');
  int32_t n = llama_detokenize(vocab_, tokens.data(), static_cast<int32_t>(tokens.size()), out.data(),
                               static_cast<int32_t>(out.size()), removeSpecial, unparseSpecial);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_detokenize(vocab_, tokens.data(), static_cast<int32_t>(tokens.size()), out.data(),
                         static_cast<int32_t>(out.size()), removeSpecial, unparseSpecial);
    if (n < 0) throw Error(codes::kNativeError, "detokenization failed");
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Model::tokenPiece(llama_token token, bool special) const {
  checkToken(token);
  std::string out(64, '\0');
  int32_t n = llama_token_to_piece(vocab_, token, out.data(), static_cast<int32_t>(out.size()), 0, special);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_token_to_piece(vocab_, token, out.data(), static_cast<int32_t>(out.size()), 0, special);
    if (n < 0) throw Error(codes::kNativeError, "token_to_piece failed");
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Model::applyChatTemplate(const std::vector<ChatMessage> &messages, bool addAssistant,
                                     const std::string &templateOverride) const {
  const char *tmpl = templateOverride.empty() ? (info_.hasChatTemplate ? info_.chatTemplate.c_str() : nullptr)
                                              : templateOverride.c_str();
  if (tmpl == nullptr) throw Error(codes::kTemplateFailed, "the model has no chat template; pass one explicitly");
  std::vector<llama_chat_message> chat;
  chat.reserve(messages.size());
  size_t total = 0;
  for (const auto &m : messages) {
    chat.push_back({m.role.c_str(), m.content.c_str()});
    total += m.role.size() + m.content.size();
  }
  std::string out(total * 2 + 256, '\0');
  int32_t n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), addAssistant, out.data(),
                                        static_cast<int32_t>(out.size()));
  if (n > static_cast<int32_t>(out.size())) {
    out.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), addAssistant, out.data(),
                                  static_cast<int32_t>(out.size()));
  }
  if (n < 0) throw Error(codes::kTemplateFailed, "llama.cpp does not support this chat template");
  out.resize(static_cast<size_t>(n));
  return out;
}

void returnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace core
