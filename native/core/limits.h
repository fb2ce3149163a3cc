#pragma once
// The bounds of the numbers a caller hands the core, each stated once. The binding's converters
// (native/binding/convert.cpp) refuse a value outside them naming its JS field; the core checks the same ranges
// (slot_sampler.cpp, batch_decoder.cpp) for callers without the binding (llama-slots-bench, the native tests). Both
// are backstops: the HTTP layer validates requests first (src/server/schemas.ts), within these bounds.
// Where the binding and the core once disagreed, the range here is what both together let through (their
// intersection), so which values get past the binding and the core together is unchanged.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "errors.h"

namespace core::limits {

// [min, max] over integers.
struct IntRange {
  int32_t min;
  int32_t max;
  bool contains(int64_t v) const { return v >= min && v <= max; }
};

// [min, max] over finite numbers, or (min, max] when minExcluded (top_p, typical_p and repeat_penalty must stay
// above 0).
struct FloatRange {
  double min;
  double max;
  bool minExcluded = false;
  bool contains(double v) const { return std::isfinite(v) && (minExcluded ? v > min : v >= min) && v <= max; }
};

// "[1, 16777216]", "(0, 1]": for messages.
inline std::string describe(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}
inline std::string describe(const IntRange &r) {
  return "[" + std::to_string(r.min) + ", " + std::to_string(r.max) + "]";
}
inline std::string describe(const FloatRange &r) {
  return (r.minExcluded ? "(" : "[") + describe(r.min) + ", " + describe(r.max) + "]";
}

// Throws INVALID_ARGUMENT ("<name> must be in [min, max]") unless v is in `range`; the message is built only then.
template <typename T, typename Range>
void requireIn(T v, const Range &range, const char *name) {
  if (!range.contains(v)) throw Error(codes::kInvalidArgument, std::string(name) + " must be in " + describe(range));
}

// Token counts: context sizes, max_tokens, n_keep, penalty windows, a prompt's resumed output.
inline constexpr int32_t kMaxCount = 1 << 24;
inline constexpr int32_t kMaxBatch = 1 << 20;  // tokens in one llama_decode
inline constexpr int32_t kMaxThreads = 1024;
inline constexpr int32_t kMaxSeqs = 4096;            // slots of a decoder, sequences of an embedder
inline constexpr int32_t kMaxCheckpoints = 1 << 20;  // sliding-window checkpoints per slot
// The largest magnitude of an unbounded sampling parameter (a float32 there).
inline constexpr double kBig = 1e6;
inline constexpr int32_t kMaxK = 1 << 30;  // top_k, min_keep

// StartParams.
inline constexpr IntRange kMaxTokens{1, kMaxCount};
inline constexpr IntRange kNKeep{-1, kMaxCount};  // -1: the whole prompt
inline constexpr IntRange kResumeTokens{0, kMaxCount};
inline constexpr IntRange kNProbs{0, 1024};

// SamplingParams.
inline constexpr FloatRange kTemperature{0.0, kBig};
inline constexpr FloatRange kDynatempRange{0.0, kBig};
inline constexpr FloatRange kDynatempExponent{0.0, kBig};
inline constexpr IntRange kTopK{0, kMaxK};
inline constexpr FloatRange kTopP{0.0, 1.0, true};
inline constexpr FloatRange kMinP{0.0, 1.0};
inline constexpr FloatRange kTypicalP{0.0, 1.0, true};
inline constexpr FloatRange kTopNSigma{-kBig, kBig};
inline constexpr FloatRange kXtcProbability{0.0, 1.0};
inline constexpr FloatRange kXtcThreshold{0.0, 1.0};
inline constexpr IntRange kMinKeep{0, kMaxK};
inline constexpr FloatRange kRepeatPenalty{0.0, 100.0, true};
inline constexpr FloatRange kPresencePenalty{-100.0, 100.0};
inline constexpr FloatRange kFrequencyPenalty{-100.0, 100.0};
inline constexpr IntRange kPenaltyLastN{-1, kMaxCount};  // -1: the whole context
inline constexpr FloatRange kDryMultiplier{0.0, kBig};
inline constexpr FloatRange kDryBase{1.0, kBig};
inline constexpr IntRange kDryAllowedLength{0, kMaxCount};
inline constexpr IntRange kDryPenaltyLastN{-1, kMaxCount};  // -1: the whole context
inline constexpr IntRange kMirostat{0, 2};
inline constexpr FloatRange kMirostatTau{0.0, kBig};
inline constexpr FloatRange kMirostatEta{0.0, kBig};
inline constexpr IntRange kReasoningBudget{-1, INT32_MAX};  // -1: no limit

}  // namespace core::limits
