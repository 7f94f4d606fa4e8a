#!/usr/bin/env bash
# The paper scale's first GPU run, sized to finish within LIMIT seconds (default 540, under the
# device tool's 10-minute command limit): the MLP claims on MNIST complete (Git Re-Basin's and Ito
# et al.'s recipes), then ResNet20 x1 (BatchNorm, Ito et al.'s recipe with crop and flip) on its first samples.
# It needs the MNIST and CIFAR-10 files in DATA_ROOT (default ./datasets; `lmc-claims datasets`).
# It writes the timings, the report and the device's name to benchmarks/paper_gpu/ (beside
# RESULTS.md), whatever happens; a command that runs out of time is stopped and says so.
#
#   bash benchmarks/paper_gpu.sh                 # on a GPU machine, from the repository root
#   bash benchmarks/paper_gpu.sh --dry           # on a CPU: the same steps on the paper-dry scale
#                                                #   and synthetic data (what the test suite checks)
set -uo pipefail
cd "$(dirname "$0")/.."
LIMIT=${LIMIT:-540}
OUT=${OUT:-benchmarks/paper_gpu}
PY=${PY:-python}
SCALE=paper
DATA_ROOT=${DATA_ROOT:-datasets}
if [ "${1:-}" = "--dry" ]; then
    SCALE=paper-dry
    DATA_ROOT="$OUT/synthetic-data"
    $PY -c "from pathlib import Path; from lmc_claims.testing.data_files import write_synthetic_root as w; w(Path('$DATA_ROOT'))"
fi
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $(( LIMIT - ($(date +%s) - START) )); }

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "scale: $SCALE"
    $PY -c "import torch; print('device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu (no CUDA device)')"
    echo "host_speed: $($PY ../shared/tools/host_speed.py 2>/dev/null | tail -1 || echo 'not measured (../shared/tools missing)')"
} > "$OUT/device.txt"
cat "$OUT/device.txt"

run() {  # name, then the pytest selection; each step gets what is left of the limit
    local name=$1; shift
    local budget; budget=$(left)
    if [ "$budget" -le 10 ]; then echo "$name: skipped, the time limit ($LIMIT s) is used up" | tee -a "$OUT/timings.txt"; return; fi
    local t0; t0=$(date +%s)
    timeout "$budget" $PY -m pytest -m claims --claims-scale="$SCALE" --claims-data-root="$DATA_ROOT" \
        --claims-cache-dir="$OUT/cache" --claims-report-dir="$OUT/report-$name" -p no:cacheprovider -q "$@" \
        > "$OUT/$name.log" 2>&1
    local rc=$?
    local state="exit $rc"; [ $rc -eq 124 ] && state="stopped at the time limit"
    echo "$name: $(( $(date +%s) - t0 )) s, $state" | tee -a "$OUT/timings.txt"
}

: > "$OUT/timings.txt"
$PY -m lmc_claims.cli plan --claims-scale="$SCALE" > "$OUT/plan.txt" 2>&1
run mlp-claims -k "mlp@gr-mnist or mlp@ito-mnist" claims/
run resnet20 --claims-id=ito2024-singular-values,ito2024-l2-distance -k "resnet20@ito-cifar10-w1" claims/
echo "total: $(( $(date +%s) - START )) s of $LIMIT" | tee -a "$OUT/timings.txt"
