#!/usr/bin/env bash
# Build each shape's random-weight directory (make_model.py), then measure it (bench.ts infer,
# bench.ts train), one process at a time: these models take several GB each.
#   PYTHON=/path/to/venv/bin/python scripts/real_shapes/run.sh OUT_DIR qwen2.5-0.5b qwen3-0.6b
set -euo pipefail
out=$1; shift
py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
for shape in "$@"; do
  dir="$out/$shape"
  [ -f "$dir/reference.json" ] || nice "$py" "$root/scripts/real_shapes/make_model.py" "$shape" "$dir"
  for mode in infer train; do
    # One SFT step at batch 1 peaked at ~9.7x the float32 weights on Qwen2.5-0.5B (weights, AdamW
    # state, gradients, ONNX Runtime's copies): skip it where that would not fit.
    weights=$(stat -c %s "$dir"/model*.safetensors | awk '{s+=$1} END {print s}')
    avail=$(awk '/MemAvailable/ {print $2 * 1024}' /proc/meminfo)
    if [ "$mode" = train ] && [ "$(echo "$weights * 10 > $avail" | bc)" = 1 ]; then
      echo "{\"mode\":\"train\",\"shape\":\"$shape\",\"skipped\":\"needs ~$((weights * 10 / 1000000000)) GB, $((avail / 1000000000)) GB available\"}" | tee -a "$out/results.jsonl"
      continue
    fi
    echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg); free $(free -g | awk '/Mem:/{print $7}') GB" >&2
    nice deno run -A "$root/scripts/real_shapes/bench.ts" "$mode" "$dir" | tee -a "$out/results.jsonl"
  done
done
