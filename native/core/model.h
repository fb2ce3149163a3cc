#pragma once
// A loaded GGUF model: metadata, tokenizer and chat template. Shared (std::shared_ptr) so that work
// running on other threads keeps it alive after its JS owner disposed it; freed exactly once.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "llama.h"

namespace core {

struct LoadOptions {
  int32_t nGpuLayers = -1;  // -1: all layers the backend can take
  bool useMmap = true;
  bool useMlock = false;
};

struct ModelInfo {
  std::string architecture;
  std::string name;
  std::string description;  // llama.cpp's one-line summary, e.g. "gemma3 1B Q4_K - Medium"
  std::string fileType;     // e.g. "Q4_K - Medium"
  uint64_t nParams = 0;
  uint64_t sizeBytes = 0;  // tensor bytes, as llama.cpp reports "size"
  int32_t nCtxTrain = 0;
  int32_t nEmbd = 0;
  int32_t nLayer = 0;
  int32_t nHead = 0;
  int32_t nHeadKv = 0;
  int32_t nSwa = 0;
  int32_t nVocab = 0;
  std::string vocabType;
  llama_token bos = LLAMA_TOKEN_NULL;
  llama_token eos = LLAMA_TOKEN_NULL;
  llama_token eot = LLAMA_TOKEN_NULL;
  std::vector<llama_token> eogTokens;
  bool addBos = false;
  bool hasChatTemplate = false;
  std::string chatTemplate;
  std::vector<std::pair<std::string, std::string>> metadata;
  // From llama.cpp's load report ("offloaded X/Y layers to GPU"); -1 when it said nothing.
  int32_t offloadedLayers = -1;
  int32_t offloadableLayers = -1;
};

struct ChatMessage {
  std::string role;
  std::string content;
};

// Return false to abort the load.
using ProgressFn = std::function<bool(float)>;

class Model {
 public:
  // Throws core::Error (MODEL_LOAD_FAILED, LOAD_CANCELLED). Slow: the addon runs it off the JS thread.
  static std::shared_ptr<Model> load(const std::string &path, const LoadOptions &opts, const ProgressFn &progress);

  ~Model();
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  llama_model *raw() const { return model_; }
  const llama_vocab *vocab() const { return vocab_; }
  const ModelInfo &info() const { return info_; }

  std::vector<llama_token> tokenize(const std::string &text, bool addSpecial, bool parseSpecial) const;
  std::string detokenize(const std::vector<llama_token> &tokens, bool removeSpecial, bool unparseSpecial) const;
  // Raw bytes of one token; may be an incomplete UTF-8 sequence.
  std::string tokenPiece(llama_token token, bool special) const;
  bool isEog(llama_token token) const { return llama_vocab_is_eog(vocab_, token); }
  void checkToken(llama_token token) const;

  // Formats messages with the model's template (or `templateOverride`), using llama.cpp's built-in
  // template detection. Throws TEMPLATE_FAILED when the template is not one llama.cpp knows.
  std::string applyChatTemplate(const std::vector<ChatMessage> &messages, bool addAssistant,
                                const std::string &templateOverride) const;

 private:
  Model(llama_model *model, const std::string &loadLog);
  llama_model *model_;
  const llama_vocab *vocab_;
  ModelInfo info_;
};

// Gives memory the allocator kept after freeing a model or a context back to the system (glibc keeps large freed
// blocks in its heap for reuse: unloading a model would otherwise leave the process as large as before).
void returnFreedMemory();

}  // namespace core
