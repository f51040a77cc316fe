#!/usr/bin/env bash
# GPU benchmark of extraction and similarity (benchmarks/gpu/bench_gpu.py explains what and how);
# sized to finish within 8 minutes on one H200. Writes benchmarks/results/gpu_<device>.json
# (or $OUT/gpu_<device>.json when the device runner gives an $OUT folder).
#
#   bash benchmarks/gpu/run.sh                   # on a GPU node, from the repository root
#   DEVICE=cpu SMALL=1 bash benchmarks/gpu/run.sh   # smoke test on CPU: 2-layer model, 6 x 40 FLORES
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-true}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DEST=${OUT:-benchmarks/results}
ARGS=(--device "${DEVICE:-cuda}" --out "$DEST" "$@")
[ -n "${SMALL:-}" ] && ARGS+=(--small)
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || true
timeout "${LIMIT:-470}" "$PY" benchmarks/gpu/bench_gpu.py "${ARGS[@]}"
