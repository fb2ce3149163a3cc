#!/usr/bin/env bash
# The seed's two-rank run: 2 client ranks, 10 streaming chat completions in total, max_tokens 64, against
# the default server. Extra arguments go to the load generator and win over these (see npm run bench -- --help):
#   scripts/run_2ranks.sh --url http://gpu-box:8090 --prompt-tokens 512 --json run.json --html run.html
set -euo pipefail
cd "$(dirname "$0")/.."

url="http://127.0.0.1:8090"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --url) url="${args[i + 1]:-$url}" ;;
    --url=*) url="${args[i]#--url=}" ;;
  esac
done

# Any HTTP answer means a server is there; the load generator says more if the API is wrong.
if ! node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then(() => process.exit(0), () => process.exit(1))' "$url"; then
  echo "run_2ranks: no server is answering at $url." >&2
  echo "Start it first, in another terminal: npm start (npm start -- -m MODEL.gguf to choose the model), or pass --url URL." >&2
  exit 1
fi

exec npm run --silent bench -- --url "$url" --ranks 2 --requests 10 --max-tokens 64 "$@"
