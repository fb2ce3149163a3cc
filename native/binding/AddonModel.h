#pragma once
// JS class Model: load (async, progress, cancellable), dispose, metadata, tokenizer, chat template,
// and the reference greedy loop. Holds a shared_ptr so in-flight work keeps the model alive.
#include <napi.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "addon_data.h"
#include "js_errors.h"
#include "model.h"

namespace binding {

class AddonModel : public GuardedWrap<AddonModel> {
 public:
  static Napi::Function Init(Napi::Env env);
  // The AddonModel behind a JS value, or nullptr when it is not one of ours (checked with instanceof,
  // since unwrapping a foreign object would reinterpret its pointer).
  static AddonModel *from(Napi::Env env, Napi::Value value);
  // The loaded model behind an argument: INVALID_ARGUMENT when it is not a Model, DISPOSED / BUSY as model().
  static std::shared_ptr<core::Model> modelArg(const Napi::CallbackInfo &info, size_t index);
  explicit AddonModel(const Napi::CallbackInfo &info);
  ~AddonModel() override;

  // Used by workers and other wrapped classes; throws DISPOSED / BUSY as JS errors.
  std::shared_ptr<core::Model> model(Napi::Env env);
  void dispose();

 private:
  Napi::Value Load(const Napi::CallbackInfo &info);
  Napi::Value AbortLoad(const Napi::CallbackInfo &info);
  Napi::Value Dispose(const Napi::CallbackInfo &info);
  Napi::Value Release(const Napi::CallbackInfo &info);
  Napi::Value GetDisposed(const Napi::CallbackInfo &info);
  Napi::Value GetLoaded(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Tokenize(const Napi::CallbackInfo &info);
  Napi::Value Detokenize(const Napi::CallbackInfo &info);
  Napi::Value TokenToPiece(const Napi::CallbackInfo &info);
  Napi::Value ApplyChatTemplate(const Napi::CallbackInfo &info);
  Napi::Value ReferenceGreedy(const Napi::CallbackInfo &info);

  std::shared_ptr<LiveModels> live_;  // this environment's, for its cleanup hook
  std::mutex mutex_;                  // model_ is swapped out under it and freed outside it
  std::shared_ptr<core::Model> model_;
  std::shared_ptr<std::atomic<bool>> abortLoad_ = std::make_shared<std::atomic<bool>>(false);
  bool loading_ = false;
  bool disposed_ = false;
};

}  // namespace binding
