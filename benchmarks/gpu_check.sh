#!/usr/bin/env bash
# The GPU checks, as one script for a lent machine with an NVIDIA GPU (BENCHMARKS.md g):
#
#   bash benchmarks/gpu_check.sh OUT
#
# 1. the tests that have a GPU case (trials on CUDA, a GPU trial restored from its checkpoint,
#    a user's function on run.device) and the training loop's tests on CUDA;
# 2. benchmarks/gpu_sweep.py: the loop's speed in float32 and bf16, the BN-CNN sweep with one
#    GPU per trial, a quarter GPU per trial, and a quarter with AMP;
# 3. the lifecycle on the GPU from the quarter-GPU run's export: retest, train, evaluate on
#    CUDA and on the CPU; the shipped CNN sweep (TPE + ASHA) and the user-function example on
#    quarter GPUs.
#
# The lent machine has PyTorch but no Ray and cannot reach PyPI: Ray's wheel (without its Java
# jars, dashboard client, RLlib, Serve and LLM parts, to fit the 64 MiB a call may carry) and
# what else the image lacks travel in .whl/ (git-ignored). Without .whl/ it uses what is installed.
set -uo pipefail
OUT=${1:?usage: gpu_check.sh OUT [PARTS, default 123]}
PARTS=${2:-123}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
fi
# tuner.models is the repository's models/ (an installed tuner maps it): here a link does it
[ -e tuner/models ] || ln -s ../models tuner/models
export PYTHONPATH=/tmp/site:$ROOT PYTHONUNBUFFERED=1 TUNER_CACHE=/tmp/tuner-cache
tuner() { python3 -m tuner "$@"; }
nvidia-smi -L
python3 -c "import torch, ray; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'ray', ray.__version__)"

if [[ $PARTS == *1* ]]; then
echo "== 1. tests with a GPU case"
python3 -c "
import torch
g = torch.Generator()
try:
    g.set_state(g.get_state().to('cuda')); print('a CPU generator took a cuda state')
except Exception as e:
    print('a CPU generator refuses a cuda state (what map_location=cuda did to a restore):', type(e).__name__, e)
"
timeout 240 python3 -m pytest -q -p no:cacheprovider -rs \
    tests/tuner/ray/test_worker.py tests/models \
    "tests/tuner/test_functions.py::test_a_killed_trial_process_continues_from_the_functions_saved_state" \
    2>&1 | tee "$OUT/tests.log" | tail -25

fi
if [[ $PARTS == *2* ]]; then
echo "== 2. GPU sweeps"
rm -rf /tmp/tuner-gpu-runs
timeout 300 python3 benchmarks/gpu_sweep.py --out "$OUT" --trials 12 2>&1 | grep -v '^    ' | tail -30

fi
if [[ $PARTS == *3* ]]; then
echo "== 3. lifecycle on the GPU"
RUN=/tmp/tuner-gpu-runs/gpu-0.25
{
    time tuner retest "$RUN/best.yaml" --seeds 2 --top-k 2
    time tuner train "$RUN/best.yaml" -o /tmp/m.pt
    tuner evaluate /tmp/m.pt
    tuner evaluate /tmp/m.pt --device cpu
    time tuner run sweeps/mnist1d_cnn.yaml --storage /tmp/tuner-gpu-runs --name cnn-shipped --set resources.gpu=0.25 \
        --quiet
    time tuner run examples/regression/sweep.yaml --storage /tmp/tuner-gpu-runs --name fn-gpu \
        --set resources.gpu=0.25 --quiet
    python3 - <<'EOF'
import collections
from tuner.results import load_run
for name in ("cnn-shipped", "fn-gpu"):
    run = load_run(f"/tmp/tuner-gpu-runs/{name}")
    devices = collections.Counter(str(h.get("device")) for t in run.trials for h in t.history)
    best = run.ranked()[0]
    print(name, "trials", len(run.trials), "epochs on", dict(devices), "best", best.params, best.history[-1])
EOF
} 2>&1 | tee "$OUT/lifecycle.log" | grep -v '^\s*$' | tail -60
fi
