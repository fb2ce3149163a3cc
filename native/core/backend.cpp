#include "backend.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "ggml-backend.h"
#include "llama.h"
#include "log.h"  // llama.cpp common: the chat layer logs through it

namespace core {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kWarn)};
thread_local std::string t_lastError;
thread_local std::string t_partial;  // llama.cpp may log one line in several calls
thread_local LogCapture *t_capture = nullptr;

LogLevel levelOf(ggml_log_level level) {
  switch (level) {
    case GGML_LOG_LEVEL_ERROR: return LogLevel::kError;
    case GGML_LOG_LEVEL_WARN: return LogLevel::kWarn;
    case GGML_LOG_LEVEL_DEBUG: return LogLevel::kDebug;
    default: return LogLevel::kInfo;
  }
}

void onLog(ggml_log_level level, const char *text, void * /*user*/) {
  if (text == nullptr) return;
  static thread_local LogLevel lastLevel = LogLevel::kInfo;
  // GGML_LOG_LEVEL_CONT continues the previous message at its level.
  const LogLevel lvl = level == GGML_LOG_LEVEL_CONT ? lastLevel : levelOf(level);
  lastLevel = lvl;
  if (t_capture != nullptr) t_capture->append(text);
  if (lvl == LogLevel::kError) {
    t_partial += text;
    if (!t_partial.empty() && t_partial.back() == '\n') {
      t_partial.pop_back();
      // Keep the last few lines: llama.cpp logs the cause first, then "failed to load model".
      if (t_lastError.size() > 2048) t_lastError.clear();
      t_lastError += (t_lastError.empty() ? "" : "; ") + t_partial;
      t_partial.clear();
    }
  }
  if (static_cast<int>(lvl) <= g_level.load(std::memory_order_relaxed)) {
    std::fputs(text, stderr);
  }
}

}  // namespace

LogLevel parseLogLevel(const std::string &name, LogLevel fallback) {
  if (name == "none" || name == "silent") return LogLevel::kNone;
  if (name == "error") return LogLevel::kError;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "info") return LogLevel::kInfo;
  if (name == "debug") return LogLevel::kDebug;
  return fallback;
}

LogCapture::LogCapture() : outer_(t_capture) {
  t_capture = this;
}

LogCapture::~LogCapture() {
  t_capture = outer_;
}

void LogCapture::append(const char *text) {
  for (LogCapture *c = this; c != nullptr; c = c->outer_) c->text_ += text;
}

void setLogLevel(LogLevel level) {
  g_level.store(static_cast<int>(level));
  // llama.cpp's common library has a log of its own, with numbered verbosities.
  static constexpr int kCommonVerbosity[] = {-1, LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG};
  common_log_set_verbosity_thold(kCommonVerbosity[static_cast<int>(level)]);
}

std::string takeLastLogError() {
  std::string out;
  out.swap(t_lastError);
  t_partial.clear();
  return out;
}

namespace {
std::string g_initLog;
}

void ensureBackend() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char *env = std::getenv("LLAMA_LOG_LEVEL");
    setLogLevel(env != nullptr ? parseLogLevel(env, LogLevel::kWarn) : LogLevel::kWarn);
    llama_log_set(onLog, nullptr);
    LogCapture capture;
    llama_backend_init();
    ggml_backend_dev_count();  // registers the backends now, so their device lists land in the capture
    g_initLog = capture.text();
  });
}

const std::string &backendInitLog() {
  ensureBackend();
  return g_initLog;
}

std::vector<DeviceInfo> listDevices() {
  ensureBackend();
  std::vector<DeviceInfo> out;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    DeviceInfo d;
    d.name = ggml_backend_dev_name(dev);
    d.description = ggml_backend_dev_description(dev);
    switch (ggml_backend_dev_type(dev)) {
      case GGML_BACKEND_DEVICE_TYPE_CPU: d.type = "cpu"; break;
      case GGML_BACKEND_DEVICE_TYPE_GPU: d.type = "gpu"; break;
      case GGML_BACKEND_DEVICE_TYPE_IGPU: d.type = "igpu"; break;
      default: d.type = "accel"; break;
    }
    ggml_backend_dev_memory(dev, &d.memoryFree, &d.memoryTotal);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace core
