#include "quantize.h"

#include <utility>

#include "backend.h"
#include "errors.h"
#include "llama.h"

namespace core {
namespace {

const std::vector<std::pair<std::string, llama_ftype>> &quantTypes() {
  static const std::vector<std::pair<std::string, llama_ftype>> types = {
      {"F32", LLAMA_FTYPE_ALL_F32},          {"F16", LLAMA_FTYPE_MOSTLY_F16},   {"BF16", LLAMA_FTYPE_MOSTLY_BF16},
      {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},     {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K}, {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0}, {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M},
      {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0}, {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},
      {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},
  };
  return types;
}

}  // namespace

std::vector<std::string> quantTypeNames() {
  std::vector<std::string> names;
  for (const auto &t : quantTypes()) names.push_back(t.first);
  return names;
}

void quantizeModel(const std::string &input, const std::string &output, const std::string &type, int nThreads) {
  ensureBackend();
  const llama_ftype *ftype = nullptr;
  for (const auto &t : quantTypes()) {
    if (t.first == type) ftype = &t.second;
  }
  if (ftype == nullptr) {
    std::string known;
    for (const auto &n : quantTypeNames()) known += (known.empty() ? "" : ", ") + n;
    throw Error(codes::kInvalidArgument, "unknown quantization type '" + type + "' (known: " + known + ")");
  }
  takeLastLogError();
  llama_model_quantize_params params = llama_model_quantize_default_params();
  params.ftype = *ftype;
  params.nthread = nThreads;
  if (llama_model_quantize(input.c_str(), output.c_str(), &params) != 0) {
    const std::string why = takeLastLogError();
    throw Error(codes::kQuantizeFailed,
                "quantizing " + input + " to " + type + " failed" + (why.empty() ? "" : ": " + why));
  }
}

}  // namespace core
