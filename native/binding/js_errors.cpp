#include "js_errors.h"

namespace binding {

Napi::Error makeError(Napi::Env env, const std::string &code, const std::string &message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

void PromiseWorker::Execute() {
  std::string code, message;
  if (!captureError([this]() { Run(); }, code, message)) fail(code, message);
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  std::string code, message;
  Napi::Value value;
  try {
    if (captureError([&]() { value = Result(env); }, code, message)) deferred_.Resolve(value);
    else deferred_.Reject(makeError(env, code, message).Value());
  } catch (const Napi::Error &e) {
    deferred_.Reject(e.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error &error) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  deferred_.Reject(makeError(env, code_, error.Message()).Value());
}

}  // namespace binding
