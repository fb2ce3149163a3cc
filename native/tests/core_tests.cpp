// Tests of native/core on a generated model, without Node.js: decoding to the end, cancelling during a step, calls
// made while a step runs on another thread, an aborted load, start/cancel churn and injected faults (faults.h); and,
// without a model, the saved-state container (slot_state.h), the prefill's checkpoint breaks and the bounds.
// Registered with CTest (CMakeLists.txt, LLAMA_SLOTS_TESTS); test/native/core-tests.test.ts runs them plain and
// scripts/sanitize.sh under AddressSanitizer, UndefinedBehaviorSanitizer and ThreadSanitizer.
//   LLAMA_SLOTS_TEST_MODEL=tiny.gguf llama-slots-core-tests [-tc=NAME]
// The harness is the project's own (harness.h): nothing to install.

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "batch_decoder.h"
#include "checkpoints.h"
#include "errors.h"
#include "faults.h"
#include "harness.h"
#include "limits.h"
#include "model.h"
#include "reference_generate.h"
#include "slot_state.h"

namespace {

using core::BatchDecoder;
using core::EndReason;
using core::SlotState;

std::string modelPath() {
  const char *p = std::getenv("LLAMA_SLOTS_TEST_MODEL");
  if (p == nullptr || *p == '\0') {
    std::fprintf(stderr, "LLAMA_SLOTS_TEST_MODEL must name a GGUF model (the generated tiny test model)\n");
    std::exit(2);
  }
  return p;
}

std::shared_ptr<core::Model> model() {
  static const std::shared_ptr<core::Model> m =
      core::Model::load(modelPath(), core::LoadOptions{}, [](float) { return true; });
  return m;
}

// Deterministic prompts over ordinary vocabulary entries, distinct per seed.
std::vector<llama_token> prompt(int32_t n, int32_t seed) {
  std::vector<llama_token> p;
  for (int32_t i = 0; i < n; ++i) p.push_back(300 + (i * 7919 + seed * 104729) % 20000);
  return p;
}

core::StartParams params(std::vector<llama_token> tokens, int32_t maxTokens) {
  core::StartParams p;
  p.prompt = std::move(tokens);
  p.maxTokens = maxTokens;
  return p;
}

// One ggml thread by default: on a machine busier than it has cores, ggml's spinning worker threads (and
// ThreadSanitizer's cost of each of their atomics) slowed a sanitizer run of these tests past ten minutes.
int32_t threads() {
  const char *t = std::getenv("LLAMA_SLOTS_TEST_THREADS");
  return t != nullptr && std::atoi(t) > 0 ? std::atoi(t) : 1;
}

core::ReferenceOptions reference(int32_t nPredict) {
  core::ReferenceOptions ro;
  ro.nPredict = nPredict;
  ro.nThreads = threads();
  return ro;
}

core::DecoderOptions options(int32_t nSlots, int32_t nCtxPerSlot, int32_t nBatch) {
  core::DecoderOptions o;
  o.nThreads = threads();
  o.nThreadsBatch = threads();
  o.nSlots = nSlots;
  o.nCtxPerSlot = nCtxPerSlot;
  o.nBatch = nBatch;
  o.nUbatch = nBatch;
  return o;
}

struct Outcome {
  std::vector<llama_token> tokens;
  EndReason end = EndReason::kNone;
  int32_t ends = 0;  // end events seen: exactly one per request
  std::string error;
};

void record(std::map<int32_t, Outcome> &out, const core::StepResult &r) {
  for (const auto &ev : r.events) {
    Outcome &o = out[ev.slot];
    if (ev.token != LLAMA_TOKEN_NULL) {
      CHECK_MESSAGE(o.ends == 0, "slot ", ev.slot, " emitted a token after it ended");
      o.tokens.push_back(ev.token);
    }
    if (ev.end != EndReason::kNone) {
      o.end = ev.end;
      o.error = ev.error;
      ++o.ends;
    }
  }
}

std::map<int32_t, Outcome> runToEnd(BatchDecoder &d, int32_t budget) {
  std::map<int32_t, Outcome> out;
  while (d.hasWork()) record(out, d.step(budget));
  return out;
}

void requireIdle(const BatchDecoder &d) {
  for (int32_t s = 0; s < d.nSlots(); ++s) CHECK_MESSAGE(d.slotInfo(s).state == SlotState::kIdle, "slot ", s);
  CHECK_FALSE(d.hasWork());
}

std::string codeOf(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const core::Error &e) {
    return e.code();
  }
  return "";
}

// True while a step holds the decoder: clear() on an idle slot answers BUSY then, and otherwise only drops that
// slot's (empty) KV.
bool stepRunning(BatchDecoder &d, int32_t idleSlot) {
  return codeOf([&]() { d.clear(idleSlot); }) == core::codes::kBusy;
}

// Runs steps on another thread, as the addon's step thread does, until the decoder has no work.
class Stepper {
 public:
  Stepper(BatchDecoder &d, int32_t budget)
      : thread_([this, &d, budget]() {
          while (d.hasWork()) {
            core::StepResult r = d.step(budget);
            std::lock_guard<std::mutex> lock(mutex_);
            results_.push_back(std::move(r));
          }
          done_ = true;
        }) {}
  ~Stepper() { join(); }
  bool done() const { return done_; }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  size_t stepsDone() {
    std::lock_guard<std::mutex> lock(mutex_);
    return results_.size();
  }
  std::vector<core::StepResult> results() {
    join();
    return results_;
  }

 private:
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::vector<core::StepResult> results_;
  std::thread thread_;
};

class ScopedFaults {
 public:
  explicit ScopedFaults(const char *spec) { setenv(core::FaultPlan::kEnvVar, spec, 1); }
  ~ScopedFaults() { unsetenv(core::FaultPlan::kEnvVar); }
};

}  // namespace

TEST_CASE("three slots decode to the end and match the one-sequence reference") {
  BatchDecoder d(model(), options(3, 256, 32));
  std::vector<std::vector<llama_token>> prompts;
  for (int32_t s = 0; s < 3; ++s) {
    prompts.push_back(prompt(20 + 25 * s, s));
    d.start(s, params(prompts.back(), 12));
  }
  auto out = runToEnd(d, 32);  // a 32-token budget: the longer prompts prefill over several steps
  for (int32_t s = 0; s < 3; ++s) {
    const auto expected = core::referenceGreedy(*model(), prompts[static_cast<size_t>(s)], reference(12));
    CAPTURE(s);
    CHECK(out[s].ends == 1);
    CHECK(out[s].tokens == expected);
    CHECK((out[s].end == EndReason::kLength || out[s].end == EndReason::kStop));
    CHECK(d.slotInfo(s).generated == static_cast<int32_t>(expected.size()));
  }
  requireIdle(d);
}

TEST_CASE("a cancel during a step ends the slot in that step; the other slot goes on") {
  // A long prefill keeps each step busy long enough to land a cancel inside it; tries until one did.
  BatchDecoder d(model(), options(3, 1024, 1024));
  int32_t duringStep = 0;
  for (int32_t attempt = 0; attempt < 20 && duringStep == 0; ++attempt) {
    d.start(0, params(prompt(900, attempt), 64));  // does not end before the cancel
    d.start(1, params(prompt(40, 100 + attempt), 8));
    Stepper stepper(d, 1024);
    while (!stepRunning(d, 2) && !stepper.done()) {}
    const bool freedAtOnce = d.cancel(0);
    // The step running at the cancel is this one or an earlier one: it, not a later step, must end the slot.
    const size_t runningStep = stepper.stepsDone();
    const auto results = stepper.results();
    std::map<int32_t, Outcome> out;
    size_t endedIn = results.size();
    for (size_t k = 0; k < results.size(); ++k) {
      record(out, results[k]);
      if (out[0].ends > 0 && endedIn == results.size()) endedIn = k;
    }
    if (freedAtOnce) {
      CHECK(out[0].ends == 0);  // no step saw it: nothing to report
    } else {
      ++duringStep;
      CHECK(out[0].ends == 1);
      CHECK(out[0].end == EndReason::kCancelled);
      CHECK_MESSAGE(endedIn <= runningStep, "cancelled in step ", endedIn, ", the cancel came during step ",
                    runningStep, " or before");
    }
    CHECK(out[0].tokens.size() < 64);
    CHECK(out[1].ends == 1);
    CHECK(out[1].end != EndReason::kCancelled);
    requireIdle(d);
  }
  CHECK_MESSAGE(duringStep > 0, "no cancel landed inside a step in 20 tries");
}

TEST_CASE("start, clear, slotInfo and cachedPrefix while a step runs on another thread") {
  BatchDecoder d(model(), options(3, 1024, 1024));
  int32_t busyStarts = 0;
  int32_t readsDuringStep = 0;
  for (int32_t attempt = 0; attempt < 20 && (busyStarts == 0 || readsDuringStep == 0); ++attempt) {
    const auto long_prompt = prompt(900, 200 + attempt);
    d.start(0, params(long_prompt, 2));
    Stepper stepper(d, 1024);
    while (!stepRunning(d, 2) && !stepper.done()) {}
    // Readers answer from the last snapshot and do not wait for the step.
    const core::SlotInfo info = d.slotInfo(0);
    const auto cached = d.cachedPrefix(0);
    // The probe saw a step running and the read still shows the whole prompt pending: the read was answered
    // during the prefill step (the only one: the budget covers the prompt), without waiting for it.
    if (info.state == SlotState::kPrefill && info.pendingPrompt == 900) ++readsDuringStep;
    CHECK(static_cast<size_t>(info.cachedTokens) <= cached.size());  // read in that order; the cache only grows here
    if (info.state == SlotState::kPrefill) CHECK(info.cachedTokens + info.pendingPrompt == 900);
    // Changes wait for the step to end: BUSY, never a half-changed slot.
    const std::string startCode = codeOf([&]() { d.start(1, params(prompt(10, 300 + attempt), 2)); });
    if (startCode == core::codes::kBusy) ++busyStarts;
    else CHECK(startCode == "");
    const std::string clearCode = codeOf([&]() { d.clear(2); });
    CHECK((clearCode == core::codes::kBusy || clearCode == ""));
    stepper.join();
    runToEnd(d, 1024);
    requireIdle(d);
    const auto afterward = d.cachedPrefix(0);
    REQUIRE(afterward.size() >= long_prompt.size());
    CHECK(std::equal(long_prompt.begin(), long_prompt.end(), afterward.begin()));
  }
  CHECK_MESSAGE(busyStarts > 0, "no start() landed inside a step in 20 tries");
  CHECK_MESSAGE(readsDuringStep > 0, "no read finished while its step still ran in 20 tries");
}

TEST_CASE("readers on another thread during every step of four slots see consistent snapshots") {
  // What JS does while a step runs (a /slots view, metrics, slot choice); ThreadSanitizer checks the synchronisation.
  BatchDecoder d(model(), options(4, 256, 64));
  for (int32_t s = 0; s < 4; ++s) d.start(s, params(prompt(40 + 10 * s, 400 + s), 30));
  std::atomic<bool> done{false};
  std::thread stepper([&]() {
    while (d.hasWork()) d.step(32);
    done = true;
  });
  int64_t reads = 0;
  int64_t bad = 0;  // counted, not CHECKed one by one: the loop runs millions of times
  while (!done) {
    for (int32_t s = 0; s < 4; ++s) {
      const core::SlotInfo info = d.slotInfo(s);
      const size_t cached = d.cachedPrefix(s).size();
      bad += info.cachedTokens < 0 || info.cachedTokens > 256 || info.pendingPrompt < 0 || cached > 256 ? 1 : 0;
      ++reads;
    }
    bad += d.kvCellsUsed() > 4 * 256 ? 1 : 0;
  }
  stepper.join();
  CHECK(reads > 0);
  CHECK(bad == 0);
  requireIdle(d);
}

TEST_CASE("a load aborted from another thread (dispose while loading) ends with LOAD_CANCELLED") {
  std::mutex m;
  std::condition_variable cv;
  bool reporting = false;
  bool disposed = false;
  std::string code;
  std::thread loader([&]() {
    code = codeOf([&]() {
      core::Model::load(modelPath(), core::LoadOptions{}, [&](float) {
        std::unique_lock<std::mutex> lock(m);
        reporting = true;
        cv.notify_all();
        cv.wait(lock, [&]() { return disposed; });
        return false;  // as the addon's progress callback once dispose() set its abort flag
      });
    });
  });
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&]() { return reporting; });
    disposed = true;
  }
  cv.notify_all();
  loader.join();
  CHECK(code == core::codes::kLoadCancelled);
}

TEST_CASE("1,000 start/cancel cycles leave the decoder idle and decoding correctly") {
  BatchDecoder d(model(), options(2, 256, 64));
  const auto shared = prompt(24, 7);
  int32_t reused = 0;
  for (int32_t i = 0; i < 1000; ++i) {
    // Slot 0 restarts one prompt with varying tails (its cached prefix is reused); slot 1 always a new one.
    const int32_t slot = i % 2;
    auto p = slot == 0 ? shared : prompt(8 + i % 37, 1000 + i);
    if (slot == 0) p.push_back(400 + i % 50);
    reused += d.start(slot, params(p, 6)).reusedTokens > 0 ? 1 : 0;
    std::map<int32_t, Outcome> out;
    if (i % 3 != 0) record(out, d.step(i % 3 == 1 ? 8 : 64));  // part of the prompt, or all of it and a token
    const bool freed = d.cancel(slot);
    REQUIRE(freed);  // no step runs: freed at once
    REQUIRE(d.slotInfo(slot).state == SlotState::kIdle);
    CHECK(out[slot].ends == 0);
  }
  CHECK(reused > 0);
  CHECK(d.kvCellsUsed() <= 2 * 256);
  const auto p = prompt(30, 99);
  d.start(0, params(p, 10));
  auto out = runToEnd(d, 64);
  CHECK(out[0].tokens == core::referenceGreedy(*model(), p, reference(10)));
  requireIdle(d);
}

TEST_CASE("a decoder destroyed with requests in flight frees everything") {
  auto d = std::make_unique<BatchDecoder>(model(), options(2, 256, 32));
  d->start(0, params(prompt(50, 1), 20));
  d->start(1, params(prompt(10, 2), 20));
  d->step(32);
  d.reset();  // AddressSanitizer's leak check covers this
}

TEST_CASE("fault plan: entries parse, bad ones are refused by name") {
  const auto plan = core::FaultPlan::parse("decode_ret=1@step=3,decode_ret=-1@step=5,sampler_throw@step=2@slot=1");
  CHECK(plan.decodeReturn(3) == 1);
  CHECK(plan.decodeReturn(5) == -1);
  CHECK_FALSE(plan.decodeReturn(4).has_value());
  CHECK(plan.samplerThrows(2, 1, 1));
  CHECK_FALSE(plan.samplerThrows(2, 0, 0));
  CHECK(core::FaultPlan::parse("sampler_throw@step=2").samplerThrows(2, 5, 0));
  CHECK(core::FaultPlan::parse("alloc_fail_load").allocFailLoad());
  CHECK(core::FaultPlan::parse("").empty());
  for (const char *bad : {"decode_ret=1", "decode_ret=0@step=1", "decode_ret=x@step=1", "sampler_throw@step=0",
                          "nap@step=1", "decode_ret=1@step=1@slot=0", "alloc_fail_load@step=1"}) {
    CAPTURE(bad);
    try {
      core::FaultPlan::parse(bad);
      FAIL("accepted");
    } catch (const core::Error &e) {
      CHECK(std::string(e.what()).find(std::string("'") + bad + "'") != std::string::npos);
    }
  }
}

TEST_CASE("injected decode_ret=-1 fails the slots of that step; the decoder serves the next requests") {
  std::unique_ptr<BatchDecoder> d;
  {
    ScopedFaults faults("decode_ret=-1@step=2");
    d = std::make_unique<BatchDecoder>(model(), options(2, 256, 32));
  }
  d->start(0, params(prompt(20, 1), 8));
  d->start(1, params(prompt(12, 2), 8));
  auto out = runToEnd(*d, 32);
  for (int32_t s = 0; s < 2; ++s) {
    CAPTURE(s);
    CHECK(out[s].ends == 1);
    CHECK(out[s].end == EndReason::kError);
    CHECK(out[s].error.find("llama_decode failed (-1)") != std::string::npos);
    CHECK(out[s].tokens.size() == 1);  // step 1 sampled the first token; step 2 failed
  }
  requireIdle(*d);
  const auto p = prompt(20, 1);
  d->start(0, params(p, 8));
  out = runToEnd(*d, 32);
  CHECK(out[0].tokens == core::referenceGreedy(*model(), p, reference(8)));
}

TEST_CASE("injected decode_ret=1 (no KV room) ends every request; none is left running") {
  std::unique_ptr<BatchDecoder> d;
  {
    ScopedFaults faults("decode_ret=1@step=2");
    d = std::make_unique<BatchDecoder>(model(), options(2, 256, 32));
  }
  d->start(0, params(prompt(20, 3), 8));
  d->start(1, params(prompt(80, 4), 8));  // still prefilling in step 2
  auto out = runToEnd(*d, 32);
  for (int32_t s = 0; s < 2; ++s) CHECK_MESSAGE(out[s].ends == 1, "slot ", s);
  requireIdle(*d);
}

TEST_CASE("injected sampler failure ends that slot with an error; the other slot finishes") {
  std::unique_ptr<BatchDecoder> d;
  {
    ScopedFaults faults("sampler_throw@step=3@slot=1");
    d = std::make_unique<BatchDecoder>(model(), options(2, 256, 64));
  }
  const auto p0 = prompt(20, 5);
  d->start(0, params(p0, 8));
  d->start(1, params(prompt(20, 6), 8));
  auto out = runToEnd(*d, 64);
  CHECK(out[1].ends == 1);
  CHECK(out[1].end == EndReason::kError);
  CHECK(out[1].error.find("sampling failed: injected fault") != std::string::npos);
  CHECK(out[1].tokens.size() == 2);
  CHECK(out[0].ends == 1);
  CHECK(out[0].tokens == core::referenceGreedy(*model(), p0, reference(8)));
  requireIdle(*d);
}

TEST_CASE("injected allocation failure at load: MODEL_LOAD_FAILED naming it, and the next load works") {
  std::string message;
  {
    ScopedFaults faults("alloc_fail_load");
    try {
      core::Model::load(modelPath(), core::LoadOptions{}, [](float) { return true; });
      FAIL("the load succeeded");
    } catch (const core::Error &e) {
      CHECK(e.code() == core::codes::kModelLoadFailed);
      message = e.what();
    }
  }
  CHECK(message.find("bad_alloc") != std::string::npos);
  auto m = core::Model::load(modelPath(), core::LoadOptions{}, [](float) { return true; });
  CHECK(m->info().nVocab > 0);
}

// A sliding-window model (the generated tiny Gemma 3): a prompt diverging behind the window resumes at a checkpoint,
// the checkpoints survive saveState/restoreState, and restoreState refuses every cut or altered buffer cleanly
// (the parsing of saveState's container is what the sanitizers should see).
TEST_CASE("sliding-window checkpoints: resume, save/restore round trip, damaged states refused") {
  const char *path = std::getenv("LLAMA_SLOTS_TEST_SWA_MODEL");
  if (path == nullptr || *path == '\0') {
    MESSAGE("LLAMA_SLOTS_TEST_SWA_MODEL not set: no sliding-window model to test with");
    return;
  }
  const auto swa = core::Model::load(path, core::LoadOptions{}, [](float) { return true; });
  const int32_t window = llama_model_n_swa(swa->raw());
  REQUIRE(window > 0);
  core::DecoderOptions o = options(2, 1024, 64);
  o.nUbatch = 32;
  BatchDecoder d(swa, o);
  const std::vector<llama_token> first = prompt(window * 3, 5);
  d.start(0, params(first, window * 6));
  const std::vector<llama_token> reply = runToEnd(d, 64)[0].tokens;
  REQUIRE(reply.size() == static_cast<size_t>(window * 6));
  const int32_t n = static_cast<int32_t>(first.size());
  CHECK(d.resumePoints(0).checkpoints == std::vector<int32_t>{n - 4 - 32, n - 4});

  std::vector<llama_token> next = first;
  next.insert(next.end(), reply.begin(), reply.begin() + 5);
  const std::vector<llama_token> tail = prompt(20, 6);
  next.insert(next.end(), tail.begin(), tail.end());

  const core::SavedState saved = d.saveState(0);
  CHECK(saved.resume.checkpoints == d.resumePoints(0).checkpoints);
  d.clear(0);
  CHECK(d.restoreState(1, saved.tokens, saved.data) == static_cast<int32_t>(saved.tokens.size()));
  CHECK(d.start(1, params(next, 8)).reusedTokens == n - 4);
  const std::vector<llama_token> warm = runToEnd(d, 64)[1].tokens;
  d.clear(1);
  CHECK(d.start(1, params(next, 8)).reusedTokens == 0);
  CHECK(runToEnd(d, 64)[1].tokens == warm);

  // Every truncation of the first bytes (magic, counts, the first checkpoint's header) and a flipped byte in each
  // header field: refused, the slot left empty.
  for (size_t len = 0; len < 64; ++len) {
    const std::vector<uint8_t> cut(saved.data.begin(), saved.data.begin() + static_cast<std::ptrdiff_t>(len));
    CHECK(codeOf([&]() { d.restoreState(0, saved.tokens, cut); }) == core::codes::kInvalidArgument);
    CHECK(d.slotInfo(0).cachedTokens == 0);
  }
  for (size_t at : {size_t{0}, size_t{4}, size_t{8}, size_t{12}, size_t{19}, saved.data.size() / 2}) {
    std::vector<uint8_t> altered = saved.data;
    altered[at] ^= 0xff;
    const std::string code = codeOf([&]() { d.restoreState(0, saved.tokens, altered); });
    // A flip inside the KV bytes themselves may still restore (they are data); anything else is refused.
    CHECK((code == core::codes::kInvalidArgument || code.empty()));
  }
  CHECK(d.restoreState(0, saved.tokens, saved.data) == static_cast<int32_t>(saved.tokens.size()));
  requireIdle(d);
}

// saveState's container without a model: what packState writes unpackState reads back as views into the same bytes;
// every cut is refused, as are checkpoints out of order or past the tokens; bytes after the end are counted.
TEST_CASE("slot state container: round trip, cuts and bad checkpoints refused, trailing bytes counted") {
  std::vector<core::Checkpoint> checkpoints(2);
  checkpoints[0].nTokens = 10;
  checkpoints[0].data = {1, 2, 3};
  checkpoints[1].nTokens = 20;
  checkpoints[1].data = {4, 5};
  const std::vector<uint8_t> seq = {9, 8, 7, 6, 5};
  std::vector<uint8_t> packed;
  REQUIRE(core::packState(packed, checkpoints, [&](std::vector<uint8_t> &out) {
    out.insert(out.end(), seq.begin(), seq.end());
    return static_cast<uint64_t>(seq.size());
  }));

  core::StateView view;
  REQUIRE(core::unpackState(packed, 20, view));
  REQUIRE(view.checkpoints.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(view.checkpoints[i].first == checkpoints[i].nTokens);
    const auto &part = view.checkpoints[i].second;
    CHECK(std::vector<uint8_t>(part.data, part.data + part.size) == checkpoints[i].data);
  }
  CHECK(std::vector<uint8_t>(view.seq.data, view.seq.data + view.seq.size) == seq);
  CHECK(view.trailing == 0);

  for (size_t len = 0; len < packed.size(); ++len) {
    const std::vector<uint8_t> cut(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(len));
    CHECK_MESSAGE(!core::unpackState(cut, 20, view), "cut at ", len);
  }
  CHECK_FALSE(core::unpackState(packed, 19, view));  // a checkpoint past the tokens
  std::vector<core::Checkpoint> unordered = {checkpoints[1], checkpoints[0]};
  std::vector<uint8_t> bad;
  REQUIRE(core::packState(bad, unordered, [&](std::vector<uint8_t> &out) {
    out.push_back(1);
    return uint64_t{1};
  }));
  CHECK_FALSE(core::unpackState(bad, 20, view));
  std::vector<uint8_t> empty;
  CHECK_FALSE(core::packState(empty, {}, [](std::vector<uint8_t> &) { return uint64_t{0}; }));

  std::vector<uint8_t> padded = packed;
  padded.insert(padded.end(), 3, 0);
  REQUIRE(core::unpackState(padded, 20, view));
  CHECK(view.trailing == 3);
}

TEST_CASE("prefill breaks: before the end, at the shared prefix and at user messages minStep apart") {
  // 100 tokens, nothing kept: 100 - min(64, 4 + 32) and 100 - 4; `common` 40 too.
  CHECK(core::prefillBreaks(100, 40, 0, {}, -1, 64, 32, 8192) == std::vector<int32_t>{40, 64, 96});
  // Nothing at or before what is kept, nothing at the end.
  CHECK(core::prefillBreaks(100, 0, 70, {}, -1, 64, 32, 8192) == std::vector<int32_t>{96});
  // User messages: the last always; earlier ones only more than minStep past the previous break or checkpoint.
  CHECK(core::prefillBreaks(100, 0, 0, {50, 10, 30}, -1, 200, 200, 15) == std::vector<int32_t>{10, 30, 50, 96});
  CHECK(core::prefillBreaks(100, 0, 0, {50, 10, 30}, 5, 200, 200, 15) == std::vector<int32_t>{30, 50, 96});
  CHECK(core::prefillBreaks(100, 0, 0, {10, 20, 50}, -1, 200, 200, 15) == std::vector<int32_t>{10, 50, 96});
}

TEST_CASE("bounds: ranges hold their ends, open ends and non-finite values are refused, messages name them") {
  CHECK(core::limits::kMaxTokens.contains(1));
  CHECK(core::limits::kMaxTokens.contains(core::limits::kMaxCount));
  CHECK_FALSE(core::limits::kMaxTokens.contains(0));
  CHECK_FALSE(core::limits::kMaxTokens.contains(int64_t{core::limits::kMaxCount} + 1));
  CHECK_FALSE(core::limits::kTopP.contains(0.0));
  CHECK(core::limits::kTopP.contains(1.0));
  CHECK(core::limits::kDryBase.contains(1.0));
  CHECK_FALSE(core::limits::kDryBase.contains(0.5));
  CHECK_FALSE(core::limits::kTemperature.contains(std::nan("")));
  CHECK(core::limits::describe(core::limits::kTopP) == "(0, 1]");
  CHECK(core::limits::describe(core::limits::kMaxTokens) == "[1, 16777216]");
  CHECK(core::limits::describe(core::limits::kDryBase) == "[1, 1000000]");
  std::string message;
  try {
    core::limits::requireIn(0.5f, core::limits::kDryBase, "dry_base");
  } catch (const core::Error &e) {
    message = e.what();
  }
  CHECK(message == "dry_base must be in [1, 1000000]");
}
