// llama-slots-bench: runs N parallel sequences through core::BatchDecoder and prints prefill and
// decode throughput, the way llama-batched-bench measures llama.cpp itself (PP: all prompts, TG: all
// sequences generating). Plain C++, no Node.js: this is what runs on GPU machines.
//
//   llama-slots-bench -m model.gguf -np 1,2,4,8 -npp 128 -ntg 128 [-t 2] [-b 512] [-ub 512] [-ngl 99] [--json]
//                     [--grammar-slots N --grammar free|strict]
// --grammar-slots: the first N slots sample under a grammar. 'free' admits almost every token (the cost of checking
// the sampled token only); 'strict' admits only [a-z ] (most sampled tokens are rejected, so the grammar is applied
// to the whole vocabulary and the token resampled: the worst case, a model far off its format).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "batch_decoder.h"
#include "errors.h"
#include "limits.h"
#include "model.h"

namespace {

struct Args {
  std::string model;
  std::vector<int> slots{1};
  int promptTokens = 128;
  int genTokens = 128;
  int threads = 0;
  int batch = 512;
  int ubatch = 512;
  int gpuLayers = -1;
  int flashAttn = -1;
  std::string kvType = "f16";
  bool json = false;
  int grammarSlots = 0;
  std::string grammar = "free";
};

[[noreturn]] void usage(const std::string &problem) {
  std::fprintf(stderr,
               "error: %s\n"
               "usage: llama-slots-bench -m FILE [-np 1,2,4,8] [-npp 128] [-ntg 128] [-t THREADS] [-b 512] [-ub 512]\n"
               "                         [-ngl N] [-fa auto|on|off] [-ctk f16|q8_0] [--json]\n"
               "                         [--grammar-slots N] [--grammar free|strict]\n",
               problem.c_str());
  std::exit(2);
}

int toInt(const std::string &flag, const char *v, int min) {
  char *end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || n < min || n > core::limits::kMaxCount)
    usage(flag + " needs an integer >= " + std::to_string(min) + ", got '" + v + "'");
  return static_cast<int>(n);
}

Args parse(int argc, char **argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto next = [&]() -> const char * {
      if (i + 1 >= argc) usage(f + " needs a value");
      return argv[++i];
    };
    if (f == "-m" || f == "--model") a.model = next();
    else if (f == "-np" || f == "--slots") {
      a.slots.clear();
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) a.slots.push_back(toInt(f, item.c_str(), 1));
    } else if (f == "-npp") a.promptTokens = toInt(f, next(), 1);
    else if (f == "-ntg") a.genTokens = toInt(f, next(), 1);
    else if (f == "-t" || f == "--threads") a.threads = toInt(f, next(), 0);
    else if (f == "-b") a.batch = toInt(f, next(), 1);
    else if (f == "-ub") a.ubatch = toInt(f, next(), 1);
    else if (f == "-ngl") a.gpuLayers = toInt(f, next(), -1);
    else if (f == "-fa") {
      const std::string v = next();
      a.flashAttn = v == "on" ? 1 : v == "off" ? 0 : v == "auto" ? -1 : (usage("-fa takes auto|on|off"), 0);
    } else if (f == "-ctk") a.kvType = next();
    else if (f == "--json") a.json = true;
    else if (f == "--grammar-slots") a.grammarSlots = toInt(f, next(), 0);
    else if (f == "--grammar") {
      a.grammar = next();
      if (a.grammar != "free" && a.grammar != "strict") usage("--grammar takes free|strict");
    } else usage("unknown flag " + f);
  }
  if (a.model.empty()) usage("-m FILE is required");
  return a;
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char **argv) {
  const Args args = parse(argc, argv);
  try {
    core::LoadOptions lo;
    lo.nGpuLayers = args.gpuLayers;
    auto model = core::Model::load(args.model, lo, nullptr);
    const auto &info = model->info();
    if (!args.json) {
      std::printf("model: %s | %.2f MiB | %.2f M params\n", info.description.c_str(), info.sizeBytes / 1024.0 / 1024.0,
                  info.nParams / 1e6);
      std::printf(
          "|   slots |  PP |  TG | prefill t/s | decode t/s |\n|---------|-----|-----|-------------|------------|\n");
    }
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> pick(100, info.nVocab - 1);
    // Generation must run the full length: ban end-of-generation tokens.
    std::vector<llama_logit_bias> noEog;
    for (llama_token t : info.eogTokens) noEog.push_back({t, -INFINITY});
    if (args.json) std::printf("[");
    bool first = true;
    for (int nSlots : args.slots) {
      core::DecoderOptions o;
      o.nSlots = nSlots;
      o.nCtxPerSlot = args.promptTokens + args.genTokens + 16;
      o.nBatch = std::max(args.batch, nSlots);
      o.nUbatch = std::min(args.ubatch, o.nBatch);
      o.nThreads = args.threads;
      o.flashAttn = args.flashAttn;
      o.kvType = args.kvType;
      core::BatchDecoder dec(model, o);
      for (int s = 0; s < nSlots; ++s) {
        core::StartParams p;
        for (int k = 0; k < args.promptTokens; ++k) p.prompt.push_back(pick(rng));
        p.maxTokens = args.genTokens;
        p.sampling.logitBias = noEog;
        if (s < args.grammarSlots) {
          p.sampling.grammar.text = args.grammar == "free" ? "root ::= [^\\x00]*" : "root ::= [a-z ]*";
        }
        dec.start(s, p);
      }
      // Prefill: every prompt, in steps of n_batch tokens; the step that finishes them samples the
      // first token of each sequence (as batched-bench's PP includes one output per sequence).
      auto t0 = std::chrono::steady_clock::now();
      int prefilled = 0;
      while (prefilled < nSlots * args.promptTokens) {
        auto r = dec.step(o.nBatch);
        prefilled += r.promptTokens;
        if (r.batchTokens == 0) throw core::Error("BENCH", "prefill made no progress");
      }
      const double tPrefill = secondsSince(t0);
      t0 = std::chrono::steady_clock::now();
      int generated = 0;
      while (dec.hasWork()) {
        auto r = dec.step(o.nBatch);
        generated += r.generatedTokens;
        for (const auto &e : r.events) {
          if (e.end == core::EndReason::kError) throw core::Error("BENCH", e.error);
        }
      }
      const double tDecode = secondsSince(t0);
      const double pp = nSlots * args.promptTokens / tPrefill;
      const double tg = generated / tDecode;
      if (args.json) {
        std::printf(
            "%s{\"slots\":%d,\"promptTokens\":%d,\"genTokens\":%d,\"prefillSeconds\":%.6f,\"prefillTokensPerSecond\":%."
            "3f,"
            "\"decodeSeconds\":%.6f,\"decodedTokens\":%d,\"decodeTokensPerSecond\":%.3f}",
            first ? "" : ",", nSlots, args.promptTokens, args.genTokens, tPrefill, pp, tDecode, generated, tg);
      } else {
        std::printf("| %7d | %3d | %3d | %11.2f | %10.2f |\n", nSlots, args.promptTokens, args.genTokens, pp, tg);
      }
      first = false;
      std::fflush(stdout);
    }
    if (args.json) std::printf("]\n");
  } catch (const core::Error &e) {
    std::fprintf(stderr, "error: %s: %s\n", e.code().c_str(), e.what());
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
