#include "memory_probe.h"

#include "backend.h"

namespace core {

std::string probeMemoryLog(const std::string &path, const LoadOptions &load, const DecoderOptions &decoder) {
  ensureBackend();
  LogCapture capture;
  {
    auto model = Model::load(path, load, nullptr);
    BatchDecoder probe(model, decoder);
  }
  return capture.text();
}

}  // namespace core
