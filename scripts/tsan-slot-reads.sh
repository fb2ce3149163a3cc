#!/usr/bin/env bash
# ThreadSanitizer over the decoder's slot reads during steps (native/cli/tsan_slot_reads.cpp): native/core built
# with -fsanitize=thread and linked against build-cmake's llama.cpp libraries (run `npm ci` first). Prints
# ThreadSanitizer's reports and exits non-zero when there is any.
#   bash scripts/tsan-slot-reads.sh [MODEL.gguf]     (default: the generated tiny test model)
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-}"
if [ -z "$model" ]; then
  model=$(npx tsx -e "import('./src/tools/model-cache.ts').then(async (m) => console.log(await m.ensureModel({ preset: 'tiny', quant: 'F16', seed: 1 })))")
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
lib=build-cmake/llama.cpp
g++ -std=c++17 -O1 -g -fsanitize=thread -Wall -Wextra -Wpedantic -Werror -Inative/core \
  -isystem vendor/llama.cpp/include -isystem vendor/llama.cpp/ggml/include -isystem vendor/llama.cpp/common \
  -isystem vendor/llama.cpp/vendor native/core/*.cpp native/cli/tsan_slot_reads.cpp \
  -Wl,--start-group "$lib"/common/libllama-common.a "$lib"/common/libllama-common-base.a \
  "$lib"/vendor/cpp-httplib/libcpp-httplib.a "$lib"/src/libllama.a "$lib"/ggml/src/libggml.a \
  "$lib"/ggml/src/libggml-cpu.a "$lib"/ggml/src/libggml-base.a -Wl,--end-group -fopenmp -lpthread \
  -o "$out/tsan-slot-reads"
# llama.cpp is not instrumented and ggml's CPU backend synchronises its threads with OpenMP, which ThreadSanitizer
# does not see: what it reports inside ggml and llama_decode is noise. Our own code is all instrumented.
printf 'race:ggml_\nrace:llama_context::decode\nrace:libgomp.so.1\n' >"$out/supp"
LLAMA_LOG_LEVEL=none TSAN_OPTIONS="halt_on_error=0 exitcode=66 suppressions=$out/supp" "$out/tsan-slot-reads" "$model"
