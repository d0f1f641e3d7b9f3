#!/usr/bin/env bash
# The fused token mixer's GPU check in one call (about 6-8 minutes on an H100/H200):
#   1. the CUDA tests of the op (fused vs reference, fwd+bwd, dtypes, layouts, odd sizes, compile)
#   2. the autotuner's choices and fused/reference/floor timings per InceptionNeXt-T stage shape
#   3. the benchmark preset (models, and the mixer micro-benchmark against its memory floor)
# Everything lands in OUT_DIR (default: $OUT, else work_dirs/gpu_check), six files: gpu_check.md (summary),
# gpu_check.log (all output), steps.jsonl, mixer_stages.json/.md, bench_gpu.json.
#
#   bash tools/gpu_check.sh [OUT_DIR]
#   GPU_CHECK_DRY_RUN=1 bash tools/gpu_check.sh /tmp/dry   # CPU: check the stack, stop before the first CUDA call
#
# OpenMMLab packages (mmengine, mmcv-lite, mmseg, mmdet) that the machine lacks may travel as wheels in .whl/ (or
# WHEELS=DIR); they are installed into /tmp/site first. BENCH_BUDGET_S caps the model benchmark (default 240 s).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${1:-${OUT:-$REPO/work_dirs/gpu_check}}"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-$REPO/.whl}"
mkdir -p "$OUT_DIR"
cd "$REPO" || exit 1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl || { echo "gpu_check: installing the wheels in $WHEELS failed" >&2; exit 1; }
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi

# the stack: versions, and a clear error for what is missing or too old
"$PY" - <<'PY' 2>&1 | tee "$OUT_DIR/gpu_check.log" || exit 1
import importlib, sys
missing = [m for m in ('torch', 'triton', 'timm', 'mmengine', 'mmcv', 'mmseg', 'pytest')
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f'gpu_check: missing {", ".join(missing)}; carry OpenMMLab packages as wheels in .whl/ (or WHEELS=DIR)')
import torch, triton
if tuple(int(p) for p in triton.__version__.split('.')[:2]) < (3, 4):
    sys.exit(f'gpu_check: triton {triton.__version__} is too old; the kernels need triton >= 3.4 (triton.knobs)')
print(f'python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}')
import mmext.ops  # noqa: F401  (imports the whole package: the OpenMMLab stack must be complete)
print('mmext imports')
PY

if [[ "${GPU_CHECK_DRY_RUN:-0}" == 1 ]]; then
  echo "gpu_check: dry run, stack ok; next would run: pytest -m gpu tests/ops, python tools/gpu_check.py," \
       "python tools/benchmark.py --preset gpu" | tee -a "$OUT_DIR/gpu_check.log"
  exit 0
fi
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: CUDA is not available")' \
  || exit 2

status=0
start=$SECONDS
step() {  # name, command...: run, log, record the exit status and seconds
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*" | tee -a "$OUT_DIR/gpu_check.log"
  "$@" 2>&1 | tee -a "$OUT_DIR/gpu_check.log"
  local rc=${PIPESTATUS[0]}
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - t0))}" >> "$OUT_DIR/steps.jsonl"
  [[ $rc == 0 ]] || status=1
}
: > "$OUT_DIR/steps.jsonl"
export MMEXT_MIXER_TUNE_CACHE="${MMEXT_MIXER_TUNE_CACHE:-/tmp/mmext_tune_cache}"
step pytest_gpu "$PY" -m pytest -q -m gpu tests/ops -p no:cacheprovider
step mixer_stages "$PY" tools/gpu_check.py --out "$OUT_DIR"
step benchmark "$PY" tools/benchmark.py --preset gpu --budget-s "${BENCH_BUDGET_S:-240}" \
  --json "$OUT_DIR/bench_gpu.json"
{
  echo "# GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - start)) s)"; echo
  head -2 "$OUT_DIR/gpu_check.log"; echo
  echo '## Steps'; echo '| step | rc | seconds |'; echo '|---|---|---|'
  sed -E 's/.*"step": "([^"]+)", "rc": ([0-9]+), "seconds": ([0-9]+).*/| \1 | \2 | \3 |/' "$OUT_DIR/steps.jsonl"
  echo; echo '## Token mixer per stage'; cat "$OUT_DIR/mixer_stages.md" 2>/dev/null; echo
  echo '## Benchmark preset'; sed -n '/^== benchmark/,$p' "$OUT_DIR/gpu_check.log" | grep '^|' 
} > "$OUT_DIR/gpu_check.md"
cat "$OUT_DIR/gpu_check.md"
exit $status
