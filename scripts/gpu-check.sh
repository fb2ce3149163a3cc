#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU, nvcc and CMake, and no network or Node.js
# (see docs/gpu.md). It needs gpu-bundle/ from scripts/gpu-bundle.sh beside the work tree. Steps:
#   1. builds the CUDA addon, llama-slots-bench and llama-batched-bench for the GPU's architecture (one tree)
#   2. generates the gemma3-1b Q4_K_M model (random weights, Gemma-3-1B's shapes)
#   3. decoder benchmark at 1/2/4/8 slots beside llama-batched-bench
#   4. the server with --vram-budget 1GiB under the 2-rank load generator, peak VRAM from nvidia-smi
#   5. writes results.json and results.md into $OUT/gpu-check (or results/gpu-check-<date>)
# Without nvcc or a GPU it rehearses every step on the CPU (GPU figures are then absent), which is how
# it is tested where no GPU is available.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bundle="${GPU_BUNDLE:-$root/gpu-bundle}"
out="${OUT:+$OUT/gpu-check}"
out="${out:-$root/results/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"
work="${GPU_CHECK_WORK:-$root/.gpu-check}"
jobs="${JOBS:-$(nproc)}"
mkdir -p "$out" "$work"
log="$out/gpu-check.log"
exec > >(tee -a "$log") 2>&1
t0=$(date +%s)
step() { echo "=== [$(( $(date +%s) - t0 ))s] $*"; }
fail() { echo "gpu-check: FAILED: $*"; echo "{\"ok\": false, \"error\": \"$*\"}" > "$out/results.json"; exit 1; }

[ -f "$bundle/node.xz" ] || fail "no $bundle/node.xz: run scripts/gpu-bundle.sh on a machine with Node.js and carry gpu-bundle/"
step "unpacking the bundle into $work"
if [ ! -x "$work/node" ]; then xz -dc "$bundle/node.xz" > "$work/node" && chmod +x "$work/node" || fail "cannot unpack node"; fi
if [ ! -f "$work/llama.cpp/include/llama.h" ]; then
  mkdir -p "$work/llama.cpp" && tar -C "$work/llama.cpp" -xJf "$bundle/llama.cpp.tar.xz" || fail "cannot unpack llama.cpp"
fi
node="$work/node"
export LLAMA_CPP_DIR="$work/llama.cpp" LLAMA_SERVER_CACHE_DIR="$work/cache"
"$node" --version || fail "the node binary does not run here"

# 1. Build
gpu=0
arch=""
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && command -v "${CUDACXX:-nvcc}" >/dev/null; then
  gpu=1
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')
  arch="${LLAMA_CUDA_ARCH:-$cc}"
  nvidia-smi --query-gpu=name,compute_cap,memory.total,memory.used,driver_version --format=csv > "$out/nvidia-smi.csv"
  cat "$out/nvidia-smi.csv"
else
  echo "gpu-check: no usable GPU or nvcc here: CPU rehearsal (every step, no GPU figures)"
fi
defs=$("$node" --input-type=module -e "
  const m = await import('$root/scripts/build-addon.mjs');
  const env = { ...process.env, ...($gpu ? { LLAMA_CUDA: '1', LLAMA_CUDA_ARCH: '$arch' } : {}) };
  console.log(Object.entries(m.buildDefines(env)).map(([k, v]) => '-D' + k + '=' + v).join(' '));
") || fail "cannot compute the build options"
gen=""; command -v ninja >/dev/null && gen="-G Ninja"
build="$work/build"
step "configuring ($([ $gpu = 1 ] && echo "CUDA, sm_$arch" || echo CPU)): $defs"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" $gen $defs -DLLAMA_SLOTS_TOOLS=ON -DCMAKE_JS_INC="$bundle/napi/node-api" \
  -DNODE_ADDON_API_DIR="$bundle/napi/node-addon-api" > "$out/cmake-configure.log" 2>&1 || { tail -30 "$out/cmake-configure.log"; fail "cmake configure"; }
step "building with $jobs jobs"
cmake --build "$build" -j "$jobs" --target llama_addon llama-slots-bench llama-batched-bench > "$out/cmake-build.log" 2>&1 \
  || { tail -40 "$out/cmake-build.log"; fail "build"; }
addon=$(find "$build" -name llama_addon.node | head -n1)
[ -n "$addon" ] || fail "the build produced no llama_addon.node"
batched=$(find "$build" -name llama-batched-bench -type f | head -n1)
[ -n "$batched" ] || fail "the build produced no llama-batched-bench"
export LLAMA_ADDON_PATH="$addon" LLAMA_TOOLS_BIN_DIR="$(dirname "$batched")"
cli="$bundle/dist/main.js"

# 2. Model
model="$work/gemma3-1b-q4km.gguf"
step "generating the gemma3-1b Q4_K_M model"
[ -f "$model" ] || "$node" "$cli" make-model --preset gemma3-1b --quant Q4_K_M --seed 1 --out "$model" || fail "make-model"

# 3. Decoder benchmark beside llama-batched-bench
step "decoder benchmark, slots ${SLOTS:-1,2,4,8}"
"$node" "$cli" bench-decoder --model "$model" --slots "${SLOTS:-1,2,4,8}" --prompt-tokens 128 --gen-tokens 64 --json \
  > "$out/bench-decoder.json" 2> "$out/bench-decoder.log" || { tail -20 "$out/bench-decoder.log"; fail "bench-decoder"; }
"$build/llama-slots-bench" -m "$model" -np "${SLOTS:-1,2,4,8}" -npp 128 -ntg 64 > "$out/llama-slots-bench.txt" 2>&1 || true

# 4. Server within a 1 GiB budget under the 2-rank load generator, with peak VRAM
step "server with --vram-budget 1GiB under the 2-rank load generator"
port=18090
"$node" "$cli" serve -m "$model" --port $port --vram-budget 1GiB --metrics --log-level warn > "$out/server.log" 2>&1 &
server=$!
peak=0
if [ $gpu = 1 ]; then
  ( while kill -0 $server 2>/dev/null; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n1; sleep 0.2; done ) > "$out/vram-samples.txt" &
fi
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { tail -20 "$out/server.log"; fail "the server exited"; }
  sleep 0.2
done
"$node" "$cli" bench --url "http://127.0.0.1:$port" --ranks 2 --requests 10 --max-tokens 64 --json "$out/loadgen.json" \
  > "$out/loadgen.txt" 2> "$out/loadgen.log" || { tail -20 "$out/loadgen.log"; kill $server; fail "load generator"; }
cat "$out/loadgen.txt"
curl -s "http://127.0.0.1:$port/metrics" > "$out/metrics.txt" || true
kill -TERM $server; wait $server
[ -f "$out/vram-samples.txt" ] && peak=$(sort -n "$out/vram-samples.txt" | tail -n1)

# 5. Results
step "writing results"
"$node" --input-type=module -e "
  import { readFileSync, writeFileSync } from 'node:fs';
  const read = (f) => { try { return readFileSync(f, 'utf8'); } catch { return ''; } };
  const decoder = JSON.parse(read('$out/bench-decoder.json') || '{}');
  const load = JSON.parse(read('$out/loadgen.json') || '{}');
  const smi = read('$out/nvidia-smi.csv').trim().split('\n')[1] ?? '';
  const results = {
    ok: true, date: new Date().toISOString(), gpu: $gpu === 1 ? smi : null, cudaArch: '$arch' || null,
    seconds: $(( $(date +%s) - t0 )), peakVramMiB: $gpu === 1 ? Number('$peak') : null,
    decoder: decoder.rows ?? null, loadgen: load.report ?? null,
    serverStartup: read('$out/server.log').split('\n').find((l) => l.includes('model loaded')) ?? null,
  };
  writeFileSync('$out/results.json', JSON.stringify(results, null, 2) + '\n');
  const f = (n, d = 1) => (typeof n === 'number' ? n.toFixed(d) : '-');
  const rows = (results.decoder ?? []).map((r) => '| ' + [r.slots, f(r.ours.prefillTokensPerSecond), f(r.llama?.prefillTokensPerSecond), f(r.prefillRatio, 3), f(r.ours.decodeTokensPerSecond), f(r.llama?.decodeTokensPerSecond), f(r.decodeRatio, 3)].join(' | ') + ' |');
  const l = results.loadgen;
  writeFileSync('$out/results.md', [
    '# GPU check ' + results.date, '', 'GPU: ' + (results.gpu ?? 'none (CPU rehearsal)') + (results.cudaArch ? ', built for sm_' + results.cudaArch : ''), '',
    '| slots | prefill t/s ours | prefill t/s llama | ratio | decode t/s ours | decode t/s llama | ratio |', '|---|---|---|---|---|---|---|', ...rows, '',
    'Server, --vram-budget 1GiB, 2 ranks x 10 requests, 64 tokens: ' + (l ? 'tokens/s ' + f(l.outputTokensPerSecond, 2) + ', E2E mean ' + f(l.e2eMs?.mean) + ' ms, TTFT mean ' + f(l.ttftMs?.mean) + ' ms, ok ' + l.ok + ', errors ' + l.errors : 'no result'),
    'Peak VRAM: ' + (results.peakVramMiB === null ? 'n/a (no GPU)' : results.peakVramMiB + ' MiB'),
    'Total time: ' + results.seconds + ' s', '',
  ].join('\n'));
" || fail "writing results"
cat "$out/results.md"
step "done: $out"
