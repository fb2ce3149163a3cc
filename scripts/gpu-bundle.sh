#!/usr/bin/env bash
# Prepares gpu-bundle/ (git-ignored): what scripts/gpu-check.sh needs on a GPU machine that has nvcc and
# CMake but no network and no Node.js. Run it here after `npm ci`; carry gpu-bundle/ with the work tree.
#   node.xz            this machine's node binary, xz-compressed (~24 MB)
#   dist/*.js          our TypeScript bundled with esbuild: no node_modules needed there
#   llama.cpp.tar.xz   the vendored llama.cpp sources the build needs (no git, no other backends)
#   napi/              Node-API and node-addon-api headers for the addon build
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-bundle}"
llama="${LLAMA_CPP_DIR:-vendor/llama.cpp}"
[ -f "$llama/include/llama.h" ] || { echo "gpu-bundle: $llama has no llama.h: run npm ci first" >&2; exit 1; }
[ -x node_modules/.bin/esbuild ] || { echo "gpu-bundle: node_modules/.bin/esbuild is missing: run npm ci first" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/dist" "$out/napi"
xz -T0 -6 -c "$(command -v node)" > "$out/node.xz"

# ESM bundles still meet CommonJS modules that call require(): give them one.
node_modules/.bin/esbuild src/entry/main.ts src/bench/loadgen/rank-main.ts --bundle --platform=node --format=esm \
  --target=node20 --entry-names='[name]' --outdir="$out/dist" --log-level=warning \
  --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"

cp -r node_modules/node-api-headers/include "$out/napi/node-api"
cp -r "$(node -p "require('node-addon-api').include_dir")" "$out/napi/node-addon-api"

# Only what our CMakeLists.txt and llama-batched-bench need, and the two vocabularies the generator uses.
tar -C "$llama" -cJf "$out/llama.cpp.tar.xz" \
  --exclude='ggml/src/ggml-vulkan' --exclude='ggml/src/ggml-sycl' --exclude='ggml/src/ggml-metal' \
  --exclude='ggml/src/ggml-opencl' --exclude='ggml/src/ggml-cann' --exclude='ggml/src/ggml-musa' \
  --exclude='ggml/src/ggml-webgpu' --exclude='ggml/src/ggml-zdnn' --exclude='ggml/src/ggml-hexagon' \
  --exclude='ggml/src/ggml-openvino' --exclude='ggml/src/ggml-virtgpu' \
  CMakeLists.txt cmake ggml src include common vendor licenses LICENSE tools/batched-bench \
  models/ggml-vocab-llama-spm.gguf models/ggml-vocab-gemma-4.gguf

# The bundle must fit the device tool's carry limit (64 MiB with everything else).
size=$(du -sm "$out" | cut -f1)
echo "gpu-bundle: $out is ${size} MiB"
if [ "$size" -gt 60 ]; then
  echo "gpu-bundle: too large to carry (over 60 MiB)" >&2
  exit 1
fi
