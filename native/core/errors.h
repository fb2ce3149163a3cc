#pragma once
// Errors raised by the core. Each carries a stable code that the TypeScript layer
// (src/errors.ts) turns into a typed error class; messages are for people.
#include <stdexcept>
#include <string>
#include <utility>

namespace core {

namespace codes {
inline constexpr const char *kInvalidArgument = "INVALID_ARGUMENT";
inline constexpr const char *kModelLoadFailed = "MODEL_LOAD_FAILED";
inline constexpr const char *kLoadCancelled = "LOAD_CANCELLED";
inline constexpr const char *kDisposed = "DISPOSED";
inline constexpr const char *kBusy = "BUSY";
inline constexpr const char *kQuantizeFailed = "QUANTIZE_FAILED";
inline constexpr const char *kContextFailed = "CONTEXT_FAILED";
inline constexpr const char *kContextExceeded = "CONTEXT_EXCEEDED";
inline constexpr const char *kDecodeFailed = "DECODE_FAILED";
inline constexpr const char *kTemplateFailed = "TEMPLATE_FAILED";
inline constexpr const char *kToolChoiceUnforceable = "TOOL_CHOICE_UNFORCEABLE";
inline constexpr const char *kNativeError = "NATIVE_ERROR";
}  // namespace codes

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string &message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string &code() const noexcept { return code_; }

 private:
  std::string code_;
};

// Throws INVALID_ARGUMENT with `message` unless `ok`.
inline void require(bool ok, const std::string &message) {
  if (!ok) throw Error(codes::kInvalidArgument, message);
}

}  // namespace core
