#!/usr/bin/env bash
# Scaling on one host (docs/SCALING.md): the same load against one server, one replica behind HAProxy and
# two replicas behind HAProxy, ROUNDS times interleaved (so a busy neighbour hurts each alike), then the
# median of each figure. Settings through the environment:
#   ROUNDS=5 SERVER="-t 1 -np 4 -c 8192" BENCH="--ranks 8 --requests 64 --max-tokens 128 --prompt-tokens 128"
# Without -m in SERVER, every server uses the generated demo model (tiny, Q4_K_M).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
SERVER=${SERVER:--t 1 -np 4 -c 8192}
BENCH=${BENCH:---ranks 8 --requests 64 --max-tokens 128 --prompt-tokens 128}
DIRECT_PORT=${DIRECT_PORT:-18100}
FRONT_PORT=${FRONT_PORT:-18090}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

wait_for() { # URL: until /health answers 200
  for _ in $(seq 1 600); do curl -sf "$1/health" >/dev/null && return 0; sleep 0.2; done
  echo "no answer from $1" >&2
  return 1
}

run_config() { # NAME ROUND
  local name=$1 round=$2 pid url
  case $name in
    direct)
      # shellcheck disable=SC2086
      node --import tsx src/entry/main.ts serve $SERVER --port "$DIRECT_PORT" --log-level warn >"$out/$name.log" 2>&1 &
      pid=$!
      url=http://127.0.0.1:$DIRECT_PORT
      ;;
    haproxy-1 | haproxy-2)
      # shellcheck disable=SC2086
      node --import tsx src/entry/main.ts replicas --replicas "${name#haproxy-}" --port "$FRONT_PORT" $SERVER --log-level warn \
        >"$out/$name.log" 2>&1 &
      pid=$!
      url=http://127.0.0.1:$FRONT_PORT
      ;;
  esac
  wait_for "$url"
  # shellcheck disable=SC2086
  npm run -s bench -- --url "$url" $BENCH --json "$out/$name-$round.json" >/dev/null 2>&1
  kill -TERM "$pid"
  wait "$pid" || true
  echo "round $round $name done; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

for round in $(seq 1 "$ROUNDS"); do
  for name in direct haproxy-1 haproxy-2; do run_config "$name" "$round"; done
done

node --input-type=module - "$out" "$ROUNDS" <<'EOF'
import { readFileSync } from 'node:fs';
const [dir, rounds] = process.argv.slice(2);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const rows = ['direct', 'haproxy-1', 'haproxy-2'].map((name) => {
  const runs = Array.from({ length: Number(rounds) }, (_, k) =>
    JSON.parse(readFileSync(`${dir}/${name}-${k + 1}.json`, 'utf8')).report,
  );
  const tps = runs.map((r) => r.outputTokensPerSecond);
  return {
    name,
    tps: median(tps),
    min: Math.min(...tps),
    max: Math.max(...tps),
    ttft: median(runs.map((r) => r.ttftMs.p50)),
    e2e: median(runs.map((r) => r.e2eMs.p50)),
    tpot: median(runs.map((r) => r.tpotMs.p50)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
  };
});
const base = rows[0].tps;
console.log('| setup | output tokens/s (median, min-max) | vs one server | TTFT p50 ms | TPOT p50 ms | E2E p50 ms | errors |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows)
  console.log(
    `| ${r.name} | ${r.tps.toFixed(0)} (${r.min.toFixed(0)}-${r.max.toFixed(0)}) | ${(r.tps / base).toFixed(2)} | ${r.ttft.toFixed(0)} | ${r.tpot.toFixed(2)} | ${r.e2e.toFixed(0)} | ${r.errors} |`,
  );
EOF
