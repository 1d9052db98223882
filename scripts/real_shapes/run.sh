#!/usr/bin/env bash
# Build each shape's random-weight directory (make_model.py), then measure it (bench.ts infer,
# bench.ts train, bench.ts rl), one process at a time: these models take several GB each.
#   PYTHON=/path/to/venv/bin/python scripts/real_shapes/run.sh OUT_DIR qwen2.5-0.5b qwen3-0.6b
#   MODES="rl" scripts/real_shapes/run.sh OUT_DIR qwen2.5-0.5b      # one measurement only
# A measurement whose resident memory would leave the machine under 1 GB free is killed by the
# watchdog below (only that process), and a line says so, instead of waking the OOM killer.
set -euo pipefail
out=$1; shift
py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"

# Run bench.ts in the background; kill it when MemAvailable drops under 1 GiB. Its JSON line goes
# to results.jsonl either way.
watched() {
  local shape=$1 mode=$2 dir=$3
  nice deno run -A "$root/scripts/real_shapes/bench.ts" "$mode" "$dir" > "$out/.line" &
  local pid=$! peak=0
  while kill -0 "$pid" 2>/dev/null; do
    local rss avail
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    avail=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    if [ "$avail" -lt 1048576 ]; then
      kill -9 "$pid"
      wait "$pid" 2>/dev/null || true
      echo "{\"mode\":\"$mode\",\"shape\":\"$shape\",\"killed\":\"MemAvailable under 1 GiB at $((peak / 1024)) MB resident\"}" | tee -a "$out/results.jsonl"
      return
    fi
    sleep 0.5
  done
  wait "$pid" && tee -a "$out/results.jsonl" < "$out/.line"
}

for shape in "$@"; do
  dir="$out/$shape"
  [ -f "$dir/reference.json" ] || nice "$py" "$root/scripts/real_shapes/make_model.py" "$shape" "$dir"
  for mode in ${MODES:-infer train rl}; do
    # One SFT or rl step at batch 1 peaks at ~6.1-6.8x the float32 weights (the weights as read,
    # the trainer's weights and AdamW state, gradients; the rollout session for rl): skip it where
    # 7x would not fit.
    weights=$(stat -c %s "$dir"/model*.safetensors | awk '{s+=$1} END {print s}')
    avail=$(awk '/MemAvailable/ {print $2 * 1024}' /proc/meminfo)
    if [ "$mode" != infer ] && awk -v w="$weights" -v a="$avail" 'BEGIN {exit !(w * 7 > a)}'; then
      echo "{\"mode\":\"$mode\",\"shape\":\"$shape\",\"skipped\":\"needs ~$((weights * 7 / 1000000000)) GB, $((avail / 1000000000)) GB available\"}" | tee -a "$out/results.jsonl"
      continue
    fi
    echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); avx512f: $(grep -c -m1 avx512f /proc/cpuinfo); load $(cut -d' ' -f1-3 /proc/loadavg); free $(free -g | awk '/Mem:/{print $7}') GB" >&2
    watched "$shape" "$mode" "$dir"
  done
done
