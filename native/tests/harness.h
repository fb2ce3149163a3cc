// The project's own test harness for the native tests: TEST_CASE, CHECK, CHECK_FALSE, CHECK_MESSAGE, REQUIRE,
// CAPTURE and FAIL, the subset of doctest's vocabulary the tests use, in one header and one source (harness.cpp,
// which holds main). It exists so the native tests need nothing a fresh machine lacks: no framework to install.
// A failed CHECK is reported with its expression, the values on both sides of a comparison, the captured values and
// the message, and the case goes on; a failed REQUIRE (or FAIL) ends the case. Checks may run on several threads.
// The run ends with one summary line the tap file reads:
//   test cases: N | P passed | F failed | S skipped
// and exits non-zero when any case failed. `-tc=TEXT` runs only the cases whose name contains TEXT.
#pragma once

#include <cstdint>
#include <iterator>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace harness {

using CaseFn = void (*)();

struct Registrar {
  Registrar(const char *name, CaseFn fn, const char *file, int line);
};

// Thrown by REQUIRE and FAIL to end the running case; caught by the runner only.
struct CaseAborted {};

// Records one assertion's outcome; prints the failure with the captures of the calling thread.
void record(bool passed, const char *macro, const char *expr, const char *file, int line, const std::string &detail);

// Prints a note with its place.
void note(const char *file, int line, const std::string &text);

// The values of a failed comparison, then the message, on one line.
inline std::string join(const std::string &values, const std::string &message) {
  return values.empty() || message.empty() ? values + message : values + " -- " + message;
}

// CAPTURE(x): the value is printed with every failure reported on this thread while the scope lives.
class Capture {
 public:
  explicit Capture(std::string text);
  ~Capture();
  Capture(const Capture &) = delete;
  Capture &operator=(const Capture &) = delete;
};

template <typename T, typename = void>
struct Streamable : std::false_type {};
template <typename T>
struct Streamable<T, std::void_t<decltype(std::declval<std::ostream &>() << std::declval<const T &>())>>
    : std::true_type {};

template <typename T, typename = void>
struct Iterable : std::false_type {};
template <typename T>
struct Iterable<T, std::void_t<decltype(std::begin(std::declval<const T &>()))>> : std::true_type {};

template <typename T>
void write(std::ostream &out, const T &value) {
  if constexpr (std::is_same_v<T, bool>) {
    out << (value ? "true" : "false");
  } else if constexpr (std::is_enum_v<T>) {
    out << static_cast<int64_t>(value);
  } else if constexpr (Streamable<T>::value) {
    out << value;
  } else if constexpr (Iterable<T>::value) {
    out << '{';
    bool first = true;
    for (const auto &item : value) {
      out << (first ? "" : ", ");
      write(out, item);
      first = false;
    }
    out << '}';
  } else {
    out << "{?}";
  }
}

template <typename... Parts>
std::string concat(const Parts &...parts) {
  std::ostringstream out;
  (write(out, parts), ...);
  return out.str();
}

struct Result {
  bool passed;
  std::string values;  // "lhs OP rhs" with the values, for the failure report
};

// Comparisons of mixed signedness are the test's to judge, as in any test framework.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
// `Decomposer() <= a == b` binds as `(Decomposer() <= a) == b`: the left value is kept, so a failed comparison
// prints both sides. A plain expression (no comparison) is judged by its truth.
template <typename L>
struct Operand {
  const L &lhs;
#define HARNESS_COMPARE(OP)                                                \
  template <typename R>                                                    \
  Result operator OP(const R &rhs) const {                                 \
    const bool ok = static_cast<bool>(lhs OP rhs);                         \
    return Result{ok, ok ? std::string() : concat(lhs, " " #OP " ", rhs)}; \
  }
  HARNESS_COMPARE(==)
  HARNESS_COMPARE(!=)
  HARNESS_COMPARE(<)
  HARNESS_COMPARE(<=)
  HARNESS_COMPARE(>)
  HARNESS_COMPARE(>=)
#undef HARNESS_COMPARE
  operator Result() const { return Result{static_cast<bool>(lhs), std::string()}; }
};

struct Decomposer {
  template <typename L>
  Operand<L> operator<=(const L &lhs) const {
    return Operand<L>{lhs};
  }
};

#pragma GCC diagnostic pop

inline Result judge(const Result &r) {
  return r;
}
template <typename L>
Result judge(const Operand<L> &operand) {
  return operand;
}

}  // namespace harness

#define HARNESS_CAT2(a, b) a##b
#define HARNESS_CAT(a, b) HARNESS_CAT2(a, b)
#define HARNESS_CASE(fn, name)                                                                \
  static void fn();                                                                           \
  static const harness::Registrar HARNESS_CAT(fn, _registrar)(name, &fn, __FILE__, __LINE__); \
  static void fn()
#define TEST_CASE(name) HARNESS_CASE(HARNESS_CAT(harness_case_, __LINE__), name)

// -Wparentheses would flag `Decomposer() <= a == b`, the decomposition itself. The expression is the variadic tail,
// so a braced list with commas (`v == std::vector<int>{1, 2}`) needs no extra parentheses.
#define HARNESS_ASSERT(macro, expect, abort, message, ...)                                           \
  do {                                                                                               \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wparentheses\"")               \
        const harness::Result harness_result = harness::judge(harness::Decomposer() <= __VA_ARGS__); \
    _Pragma("GCC diagnostic pop") const bool harness_passed = harness_result.passed == (expect);     \
    harness::record(harness_passed, macro, #__VA_ARGS__, __FILE__, __LINE__,                         \
                    harness_passed ? std::string() : harness::join(harness_result.values, message)); \
    if (!harness_passed && (abort)) throw harness::CaseAborted{};                                    \
  } while (false)

#define CHECK(...) HARNESS_ASSERT("CHECK", true, false, std::string(), __VA_ARGS__)
#define CHECK_FALSE(...) HARNESS_ASSERT("CHECK_FALSE", false, false, std::string(), __VA_ARGS__)
#define REQUIRE(...) HARNESS_ASSERT("REQUIRE", true, true, std::string(), __VA_ARGS__)
#define CHECK_MESSAGE(expr, ...) HARNESS_ASSERT("CHECK_MESSAGE", true, false, harness::concat(__VA_ARGS__), expr)
#define FAIL(...)                                                                         \
  do {                                                                                    \
    harness::record(false, "FAIL", "", __FILE__, __LINE__, harness::concat(__VA_ARGS__)); \
    throw harness::CaseAborted{};                                                         \
  } while (false)
// A note printed as the case runs (a skipped part, say); not an assertion.
#define MESSAGE(...) harness::note(__FILE__, __LINE__, harness::concat(__VA_ARGS__))
#define CAPTURE(x) const harness::Capture HARNESS_CAT(harness_capture_, __LINE__)(harness::concat(#x " := ", x))
