#pragma once
// What llama.cpp itself allocates for a model and a decoder configuration: loads the model and creates
// the context exactly as BatchDecoder does, capturing llama.cpp's log, which is where it reports its
// buffer sizes (model weights per buffer, KV cache, output and compute buffers). The VRAM planner
// (src/fit/) is checked against these figures.
#include <string>

#include "batch_decoder.h"
#include "model.h"

namespace core {

// Returns llama.cpp's log text of the load and of the context creation.
std::string probeMemoryLog(const std::string &path, const LoadOptions &load, const DecoderOptions &decoder);

}  // namespace core
