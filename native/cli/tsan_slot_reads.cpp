// Steps a 4-slot decoder on one thread while another reads slotInfo() and cachedPrefix() as fast as it can, as JS
// does while a step runs. Built with -fsanitize=thread by scripts/tsan-slot-reads.sh: ThreadSanitizer then reports
// any read of slot state that a step writes without synchronisation.
//   tsan-slot-reads MODEL.gguf
#include <atomic>
#include <cstdio>
#include <thread>

#include "batch_decoder.h"
#include "model.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: tsan-slot-reads MODEL.gguf\n");
    return 2;
  }
  auto model = core::Model::load(argv[1], core::LoadOptions{}, [](float) { return true; });
  core::DecoderOptions opts;
  opts.nSlots = 4;
  opts.nCtxPerSlot = 256;
  opts.nBatch = 64;
  core::BatchDecoder decoder(model, opts);
  for (int32_t slot = 0; slot < opts.nSlots; ++slot) {
    core::StartParams p;
    for (int32_t i = 0; i < 40 + 10 * slot; ++i) p.prompt.push_back(300 + (i * 7919 + slot) % 20000);
    p.maxTokens = 30;
    decoder.start(slot, p);
  }
  std::atomic<bool> done{false};
  std::thread stepper([&]() {
    while (decoder.hasWork()) decoder.step(32);  // chunked prefill, then generation, until every slot ends
    done = true;
  });
  long reads = 0;
  long cached = 0;
  while (!done) {
    for (int32_t slot = 0; slot < opts.nSlots; ++slot) {
      cached += decoder.slotInfo(slot).cachedTokens + static_cast<long>(decoder.cachedPrefix(slot).size());
      ++reads;
    }
  }
  stepper.join();
  std::printf("%ld reads during steps (%ld cached tokens seen)\n", reads, cached);
  return 0;
}
