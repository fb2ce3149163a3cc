#!/usr/bin/env bash
# The native tests (native/tests/core_tests.cpp, through ctest) under a sanitizer: llama.cpp, ggml and native/core
# are all built with the same -fsanitize flags in build-sanitize/<name>/, one build directory per sanitizer, so
# builds stay incremental. Exits non-zero when the sanitizer reports anything or a test fails.
#   bash scripts/sanitize.sh asan|ubsan|tsan [MODEL.gguf]    (default: the generated tiny test model)
# Environment: JOBS (parallel compile jobs, default 2), LLAMA_CPP_DIR (llama.cpp source tree).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-}"
case "$kind" in
  asan) flag=address ;;
  ubsan) flag=undefined ;;
  tsan) flag=thread ;;
  *)
    echo "usage: bash scripts/sanitize.sh asan|ubsan|tsan [MODEL.gguf]" >&2
    exit 2
    ;;
esac
model="${2:-}"
if [ -z "$model" ]; then
  model=$(npx tsx -e "import('./src/tools/model-cache.ts').then(async (m) => console.log(await m.ensureModel({ preset: 'tiny', quant: 'F16', seed: 1 })))")
fi
[ -f "$model" ] || { echo "sanitize: no model file at $model" >&2; exit 2; }
# The sliding-window case (checkpoints) needs a model with SWA layers: the generated tiny Gemma 3.
swa_model="${LLAMA_SLOTS_TEST_SWA_MODEL:-$(npx tsx -e "import('./src/tools/model-cache.ts').then(async (m) => console.log(await m.ensureModel({ preset: 'tiny-gemma3', quant: 'F16', seed: 1 })))")}"

dir="build-sanitize/$kind"
mkdir -p build-sanitize
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
start=$(date +%s)
# GGML_OPENMP=OFF: ggml's own thread pool synchronises with atomics every sanitizer sees; OpenMP's runtime is not
# instrumented, so ThreadSanitizer would report its barriers as races.
cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLAMA_SLOTS_SANITIZE="$flag" \
  -DLLAMA_SLOTS_TESTS=ON -DGGML_OPENMP=OFF -DGGML_NATIVE=ON -DGGML_CUDA=OFF ${LLAMA_CPP_DIR:+-DLLAMA_CPP_DIR="$LLAMA_CPP_DIR"} \
  >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" --target llama-slots-core-tests -j "${JOBS:-2}"
built=$(date +%s)
echo "[sanitize] $kind: build took $((built - start))s"

log="$dir.test.log"
# Each sanitizer stops at its first report with a non-zero exit; LeakSanitizer (part of asan) checks at exit.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1"
export LLAMA_SLOTS_TEST_MODEL="$model"
export LLAMA_SLOTS_TEST_SWA_MODEL="$swa_model"
set +e
ctest --test-dir "$dir" -V >"$log" 2>&1
status=$?
set -e
cat "$log"
# Belt and braces: a report that did not change the exit status (a recovered UBSan check, say) still fails.
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer' "$log"; then
  echo "[sanitize] $kind: the sanitizer reported a problem (see above)" >&2
  status=1
fi
echo "[sanitize] $kind: tests took $(($(date +%s) - built))s, exit status $status"
exit "$status"
