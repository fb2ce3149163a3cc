#include "backend.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "llama.h"

namespace core {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kWarn)};
thread_local std::string t_lastError;
thread_local std::string t_partial;  // llama.cpp may log one line in several calls
thread_local std::string *t_capture = nullptr;

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
  if (t_capture != nullptr) *t_capture += text;
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

LogCapture::LogCapture() { t_capture = &text_; }

LogCapture::~LogCapture() { t_capture = nullptr; }

void setLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

std::string takeLastLogError() {
  std::string out;
  out.swap(t_lastError);
  t_partial.clear();
  return out;
}

void ensureBackend() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char *env = std::getenv("LLAMA_LOG_LEVEL")) setLogLevel(parseLogLevel(env, LogLevel::kWarn));
    llama_log_set(onLog, nullptr);
    llama_backend_init();
  });
}

}  // namespace core
