#pragma once
// llama_model_quantize with named types ("Q4_K_M", "Q8_0", ...).
#include <string>
#include <vector>

namespace core {

// Throws INVALID_ARGUMENT for an unknown type name, QUANTIZE_FAILED when llama.cpp fails.
void quantizeModel(const std::string &input, const std::string &output, const std::string &type, int nThreads);

// The names quantizeModel accepts.
std::vector<std::string> quantTypeNames();

}  // namespace core
