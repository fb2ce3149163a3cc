#include "faults.h"

#include <cstdlib>
#include <sstream>

#include "errors.h"

namespace core {
namespace {

[[noreturn]] void bad(const std::string &entry, const std::string &why) {
  throw Error(codes::kInvalidArgument, std::string(FaultPlan::kEnvVar) + ": '" + entry + "': " + why +
                                           " (expected decode_ret=R@step=N, sampler_throw@step=N[@slot=K] or "
                                           "alloc_fail_load, comma-separated)");
}

int64_t integer(const std::string &entry, const std::string &text, int64_t min) {
  char *end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0' || v < min) bad(entry, "'" + text + "' is not a valid number");
  return v;
}

}  // namespace

FaultPlan FaultPlan::parse(const std::string &spec) {
  FaultPlan plan;
  std::stringstream entries(spec);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    if (entry.empty()) continue;
    // name[=value] then @key=value qualifiers.
    std::vector<std::string> parts;
    std::stringstream ps(entry);
    for (std::string p; std::getline(ps, p, '@');) parts.push_back(p);
    const std::string head = parts.empty() ? std::string() : parts[0];
    const size_t eq = head.find('=');
    const std::string name = head.substr(0, eq);
    const std::string value = eq == std::string::npos ? std::string() : head.substr(eq + 1);
    int64_t step = -1;
    int64_t slot = -1;
    for (size_t i = 1; i < parts.size(); ++i) {
      const size_t e = parts[i].find('=');
      const std::string key = parts[i].substr(0, e);
      const std::string v = e == std::string::npos ? std::string() : parts[i].substr(e + 1);
      if (key == "step") step = integer(entry, v, 1);
      else if (key == "slot") slot = integer(entry, v, 0);
      else bad(entry, "unknown qualifier '" + key + "'");
    }
    if (name == "decode_ret") {
      if (step < 0) bad(entry, "needs @step=N");
      if (slot >= 0) bad(entry, "a decode covers every slot in the batch; @slot does not apply");
      const int64_t ret = integer(entry, value, INT32_MIN);
      if (ret == 0 || ret > INT32_MAX) bad(entry, "the return code must be a non-zero 32-bit integer");
      plan.decodeReturns_.push_back({step, static_cast<int32_t>(ret)});
    } else if (name == "sampler_throw") {
      if (step < 0) bad(entry, "needs @step=N");
      if (!value.empty()) bad(entry, "takes no value");
      plan.samplerThrows_.push_back({step, static_cast<int32_t>(slot)});
    } else if (name == "alloc_fail_load") {
      if (parts.size() > 1 || !value.empty()) bad(entry, "takes no value or qualifier");
      plan.allocFailLoad_ = true;
    } else {
      bad(entry, "unknown fault '" + name + "'");
    }
  }
  return plan;
}

FaultPlan FaultPlan::fromEnv() {
  const char *spec = std::getenv(kEnvVar);
  return spec == nullptr ? FaultPlan() : parse(spec);
}

std::optional<int32_t> FaultPlan::decodeReturn(int64_t step) const {
  for (const auto &f : decodeReturns_) {
    if (f.step == step) return f.ret;
  }
  return std::nullopt;
}

bool FaultPlan::samplerThrows(int64_t step, int32_t slot, int32_t nth) const {
  for (const auto &f : samplerThrows_) {
    if (f.step == step && (f.slot == slot || (f.slot < 0 && nth == 0))) return true;
  }
  return false;
}

}  // namespace core
