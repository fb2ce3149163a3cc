// The runner of harness.h: registered cases in file order, each caught whole (a failed REQUIRE, an exception), a
// report per failed assertion and the summary line. See harness.h for the vocabulary.
#include "harness.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>

namespace harness {
namespace {

struct Case {
  const char *name;
  CaseFn fn;
  const char *file;
  int line;
};

std::vector<Case> &cases() {
  static std::vector<Case> all;
  return all;
}

std::mutex reportMutex;
std::atomic<int64_t> assertionsPassed{0};
std::atomic<int64_t> assertionsFailed{0};
std::atomic<int64_t> caseFailures{0};  // failed assertions in the running case
thread_local std::vector<std::string> captures;

void report(const std::string &text) {
  std::lock_guard<std::mutex> lock(reportMutex);
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace

Registrar::Registrar(const char *name, CaseFn fn, const char *file, int line) {
  cases().push_back(Case{name, fn, file, line});
}

Capture::Capture(std::string text) {
  captures.push_back(std::move(text));
}
Capture::~Capture() {
  captures.pop_back();
}

void record(bool passed, const char *macro, const char *expr, const char *file, int line, const std::string &detail) {
  if (passed) {
    ++assertionsPassed;
    return;
  }
  ++assertionsFailed;
  ++caseFailures;
  std::string text = std::string(file) + ":" + std::to_string(line) + ": " + macro + "(" + expr + ") failed";
  if (!detail.empty()) text += "\n    " + detail;
  for (const auto &c : captures) text += "\n    with " + c;
  report(text + "\n");
}

void note(const char *file, int line, const std::string &text) {
  report(std::string(file) + ":" + std::to_string(line) + ": note: " + text + "\n");
}

}  // namespace harness

int main(int argc, char **argv) {
  using harness::cases;
  std::string filter;
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    if (std::strncmp(arg, "-tc=", 4) == 0) {
      filter = arg + 4;
    } else if (std::strcmp(arg, "--list") == 0) {
      for (const auto &c : cases()) std::printf("%s\n", c.name);
      return 0;
    } else {
      std::fprintf(stderr, "unknown option %s (known: -tc=TEXT runs the cases whose name contains TEXT, --list)\n",
                   arg);
      return 2;
    }
  }
  int64_t passed = 0;
  int64_t failed = 0;
  int64_t skipped = 0;
  for (const auto &c : cases()) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) {
      ++skipped;
      continue;
    }
    harness::caseFailures = 0;
    std::string error;
    const auto start = std::chrono::steady_clock::now();
    try {
      c.fn();
    } catch (const harness::CaseAborted &) {
      // reported where it was thrown
    } catch (const std::exception &e) {
      error = std::string("uncaught exception: ") + e.what();
    } catch (...) {
      error = "uncaught exception of unknown type";
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!error.empty()) {
      ++harness::assertionsFailed;
      ++harness::caseFailures;
      harness::report(std::string(c.file) + ":" + std::to_string(c.line) + ": " + error + "\n");
    }
    const bool ok = harness::caseFailures == 0;
    (ok ? passed : failed) += 1;
    harness::report(std::string(ok ? "ok      " : "FAILED  ") + c.name + " (" + std::to_string(seconds).substr(0, 5) +
                    " s)\n");
  }
  std::printf("test cases: %lld | %lld passed | %lld failed | %lld skipped\n", static_cast<long long>(cases().size()),
              static_cast<long long>(passed), static_cast<long long>(failed), static_cast<long long>(skipped));
  std::printf("assertions: %lld | %lld passed | %lld failed\n",
              static_cast<long long>(harness::assertionsPassed + harness::assertionsFailed),
              static_cast<long long>(harness::assertionsPassed.load()),
              static_cast<long long>(harness::assertionsFailed.load()));
  return failed == 0 && passed > 0 ? 0 : 1;
}
