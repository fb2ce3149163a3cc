#pragma once
// Process-wide llama.cpp setup: backend init (once) and log routing.
#include <string>

namespace core {

enum class LogLevel { kNone = 0, kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

// Initialises the llama.cpp backends once per process; safe to call from any thread.
void ensureBackend();

// Messages at or below `level` go to stderr. Default: kWarn, or LLAMA_LOG_LEVEL (none|error|warn|info|debug).
void setLogLevel(LogLevel level);
LogLevel parseLogLevel(const std::string &name, LogLevel fallback);

// The error-level messages llama.cpp logged on the calling thread since the last call, then cleared. llama.cpp reports
// why a load or quantize failed only through its log, so callers append this to their own message.
std::string takeLastLogError();

}  // namespace core
