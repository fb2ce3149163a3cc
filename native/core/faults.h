#pragma once
// Injected faults for tests, from the LLAMA_SLOTS_FAULTS environment variable, read once when a decoder is created or
// a model loads (never per step). Comma-separated entries:
//   decode_ret=R@step=N     llama_decode "returns" R (1: no KV room, -1: invalid batch, ...) in the decoder's Nth
//                           decoding step (1-based), for every attempt in that step; llama_decode is not called
//   sampler_throw@step=N    the sampler throws in step N: for the slot given by @slot=K, else the first one sampled
//   alloc_fail_load         a model load fails as an allocation would: std::bad_alloc once llama.cpp has allocated
//                           the model's buffers and starts reading tensors (its own unwinding frees them)
// Empty or unset: no faults, and the decoder's hot path pays one branch on an empty plan.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace core {

class FaultPlan {
 public:
  static constexpr const char *kEnvVar = "LLAMA_SLOTS_FAULTS";
  // Throws INVALID_ARGUMENT naming the entry it does not understand.
  static FaultPlan parse(const std::string &spec);
  static FaultPlan fromEnv();

  bool empty() const { return decodeReturns_.empty() && samplerThrows_.empty() && !allocFailLoad_; }
  // The return code planned for decoding step `step`, if any.
  std::optional<int32_t> decodeReturn(int64_t step) const;
  // Whether slot `slot` (the `nth` sampled in this step, from 0) has a sampler failure planned in `step`.
  bool samplerThrows(int64_t step, int32_t slot, int32_t nth) const;
  bool allocFailLoad() const { return allocFailLoad_; }

 private:
  struct DecodeReturn {
    int64_t step;
    int32_t ret;
  };
  struct SamplerThrow {
    int64_t step;
    int32_t slot;  // -1: the first slot sampled in the step
  };
  std::vector<DecodeReturn> decodeReturns_;
  std::vector<SamplerThrow> samplerThrows_;
  bool allocFailLoad_ = false;
};

}  // namespace core
