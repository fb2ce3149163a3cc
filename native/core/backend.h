#pragma once
// Process-wide llama.cpp setup: backend init (once) and log routing.
#include <cstddef>
#include <string>
#include <vector>

namespace core {

enum class LogLevel { kNone = 0, kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

// Initialises the llama.cpp backends once per process; safe to call from any thread.
void ensureBackend();

// llama.cpp's log of the backend initialisation (the CUDA backend lists each device there with its
// compute capability, which the generic device API does not report).
const std::string &backendInitLog();

struct DeviceInfo {
  std::string name;
  std::string description;
  std::string type;  // cpu | gpu | igpu | accel
  size_t memoryFree = 0;
  size_t memoryTotal = 0;
};
std::vector<DeviceInfo> listDevices();

// Messages at or below `level` go to stderr. Default: kWarn, or LLAMA_LOG_LEVEL (none|error|warn|info|debug).
void setLogLevel(LogLevel level);
LogLevel parseLogLevel(const std::string &name, LogLevel fallback);

// The error-level messages llama.cpp logged on the calling thread since the last call, then cleared. llama.cpp reports
// why a load or quantize failed only through its log, so callers append this to their own message.
std::string takeLastLogError();

// While alive, every llama.cpp log message of the calling thread (any level, printed or not) is also
// appended to text(). llama.cpp reports its buffer sizes only in its log; the memory probe reads them.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture &) = delete;
  LogCapture &operator=(const LogCapture &) = delete;
  const std::string &text() const { return text_; }
  // Appends to this capture and to the ones it is nested in.
  void append(const char *text);

 private:
  std::string text_;
  LogCapture *outer_;
};

}  // namespace core
