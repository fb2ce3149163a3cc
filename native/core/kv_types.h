#pragma once
// The KV cache types llama-server's -ctk/-ctv (and -ctkd/-ctvd for a draft model) take, by name.
#include <string>

#include "ggml.h"

namespace core {

// Throws INVALID_ARGUMENT naming the accepted types.
ggml_type kvTypeOf(const std::string &name);
bool quantizedKv(ggml_type t);

}  // namespace core
