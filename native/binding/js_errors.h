#pragma once
// Turning C++ failures into JS errors with a `code` property. No C++ exception crosses into JS: classes register
// their methods through GuardedWrap, free functions through guarded<>, constructors run their body in guard(), and
// work off the JS thread goes through queueOnPool/queueOnThread (promise_job.h). All of them use captureFailure.
#include <napi.h>

#include <optional>
#include <string>
#include <type_traits>

#include "errors.h"

namespace binding {

struct Failure {
  std::string code;
  std::string message;
};

Napi::Error makeError(Napi::Env env, const std::string &code, const std::string &message);
inline Napi::Error makeError(Napi::Env env, const Failure &failure) {
  return makeError(env, failure.code, failure.message);
}

// The one catch ladder: runs fn on any thread and says why it failed, or nothing when it returned. A Napi::Error
// (thrown on the JS thread only) passes through: it is a JS error already.
template <typename Fn>
std::optional<Failure> captureFailure(Fn &&fn) {
  try {
    fn();
    return std::nullopt;
  } catch (const Napi::Error &) {
    throw;  // a std::exception too, so it must come first
  } catch (const core::Error &e) {
    return Failure{e.code(), e.what()};
  } catch (const std::exception &e) {
    return Failure{core::codes::kNativeError, e.what()};
  } catch (...) {
    return Failure{core::codes::kNativeError, "unknown native error"};
  }
}

// Runs fn on the JS thread; whatever it throws becomes a thrown JS error carrying its code.
template <typename Fn>
auto guard(Napi::Env env, Fn &&fn) -> decltype(fn()) {
  using R = decltype(fn());
  std::optional<Failure> failure;
  if constexpr (std::is_void_v<R>) {
    failure = captureFailure(fn);
    if (!failure) return;
  } else {
    R out{};
    failure = captureFailure([&]() { out = fn(); });
    if (!failure) return out;
  }
  throw makeError(env, *failure);
}

// A free function exported to JS, through guard().
template <Napi::Value (*Fn)(const Napi::CallbackInfo &)>
Napi::Value guarded(const Napi::CallbackInfo &info) {
  return guard(info.Env(), [&]() { return Fn(info); });
}

// An ObjectWrap whose methods and accessors can only be registered through guard(): their bodies throw core::Error
// (or anything else) freely.
template <typename T>
class GuardedWrap : public Napi::ObjectWrap<T> {
 public:
  using Napi::ObjectWrap<T>::ObjectWrap;

 protected:
  using Method = Napi::Value (T::*)(const Napi::CallbackInfo &);

  template <Method M>
  static Napi::ClassPropertyDescriptor<T> method(const char *name) {
    return Napi::ObjectWrap<T>::InstanceMethod(name, static_cast<Method>(&GuardedWrap::call<M>));
  }
  template <Method M>
  static Napi::ClassPropertyDescriptor<T> getter(const char *name) {
    return Napi::ObjectWrap<T>::InstanceAccessor(name, static_cast<Method>(&GuardedWrap::call<M>), nullptr);
  }

 private:
  template <Method M>
  Napi::Value call(const Napi::CallbackInfo &info) {
    return guard(info.Env(), [&]() { return (static_cast<T *>(this)->*M)(info); });
  }
};

}  // namespace binding
