#pragma once
// JS class Embedder: embed(inputs) as a Promise on the embedder's own thread, info(), dispose().
#include <napi.h>

#include <memory>

#include "embedder.h"
#include "js_errors.h"
#include "serial_executor.h"

namespace binding {

class AddonEmbedder : public GuardedWrap<AddonEmbedder> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit AddonEmbedder(const Napi::CallbackInfo &info);

 private:
  std::shared_ptr<core::Embedder> embedder(Napi::Env env) const;
  Napi::Value Embed(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Dispose(const Napi::CallbackInfo &info);
  Napi::Value GetDisposed(const Napi::CallbackInfo &info);

  // Shared with queued calls, so dispose() during one frees the context after it ends.
  std::shared_ptr<core::Embedder> embedder_;
  // One thread, as the decoder's step thread: llama.cpp's CPU backend keeps a thread team per calling thread.
  std::unique_ptr<core::SerialExecutor> thread_;
};

}  // namespace binding
