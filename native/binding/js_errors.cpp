#include "js_errors.h"

namespace binding {

Napi::Error makeError(Napi::Env env, const std::string &code, const std::string &message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

void PromiseWorker::Execute() {
  try {
    Run();
  } catch (const core::Error &e) {
    fail(e.code(), e.what());
  } catch (const std::exception &e) {
    fail(core::codes::kNativeError, e.what());
  } catch (...) {
    fail(core::codes::kNativeError, "unknown native error");
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  try {
    deferred_.Resolve(Result(env));
  } catch (const Napi::Error &e) {
    deferred_.Reject(e.Value());
  } catch (const core::Error &e) {
    deferred_.Reject(makeError(env, e.code(), e.what()).Value());
  } catch (const std::exception &e) {
    deferred_.Reject(makeError(env, core::codes::kNativeError, e.what()).Value());
  }
}

void PromiseWorker::OnError(const Napi::Error &error) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  deferred_.Reject(makeError(env, code_, error.Message()).Value());
}

}  // namespace binding
