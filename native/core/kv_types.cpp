#include "kv_types.h"

#include <utility>

#include "errors.h"

namespace core {

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

bool quantizedKv(ggml_type t) {
  return t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16;
}

}  // namespace core
