#!/usr/bin/env bash
# One short GPU session: paper-profile step times (fp32 and bf16) of every method against the mean
# teacher, SPCL's contrastive part alone, and a short end-to-end SPCL training + evaluation on the
# phantom cache, through the real CLIs, with bf16 autocast (engine `amp: auto`).
#
#   bash benchmarks/gpu_check.sh OUT_DIR CACHE_DIR SPLIT_JSON [TRAIN_ITERS]
#
# Every step has its own time limit so that the whole script ends in about 5 minutes on an H100;
# each step's output is written to OUT_DIR, whatever happens to the next one.
set -u
OUT=${1:?OUT_DIR}; CACHE=${2:?CACHE_DIR}; SPLIT=${3:?SPLIT_JSON}; ITERS=${4:-300}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
METHODS=meanteacher,suponly,spcl,spcl_official,ugpcl,dgcl,admt,abd,bus,bass

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, segmentation_models_pytorch as smp; print('torch', torch.__version__, 'smp', smp.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

for tag in fp32 bf16; do
  timeout 120 python3 benchmarks/step_time.py --profile paper --device cuda --numerics $tag --methods $METHODS \
    --rounds 2 --warmup 5 --steps 15 2>&1 | grep -v Warning | tee "$OUT/step_paper_$tag.txt"
done

for preset in spcl spcl_official; do
  timeout 30 python3 benchmarks/spcl_contrastive.py --device cuda --preset $preset 2>&1 | tee "$OUT/contrastive_$preset.txt"
done

RUN=/tmp/gpu_spcl_run
mkdir -p "$RUN"
cat > "$RUN/run.yaml" <<EOF
extends: paper
method: spcl
seed: 0
out_dir: $RUN
data: {cache: $CACHE, split: $SPLIT, dataset: phantom, ratio: 10.0}
train: {iterations: $ITERS, checkpoint_every: $ITERS, log_every: 50}
EOF
start=$(date +%s)
timeout 120 python3 -m methods.train --config "$RUN/run.yaml" --no-progress 2>&1 | tail -5 | tee "$OUT/train_spcl.txt"
end=$(date +%s)
echo "spcl paper profile, $ITERS iterations incl. start-up: $((end - start)) s" | tee -a "$OUT/train_spcl.txt"
cp "$RUN/log.csv" "$OUT/train_spcl_log.csv" 2>/dev/null
timeout 45 python3 -m methods.evaluate --checkpoint "$RUN/final.pt" --cache "$CACHE" --split "$SPLIT" \
  --out "$OUT/eval_spcl.csv" --prediction-cases 0 2>&1 | tail -3 | tee "$OUT/eval_spcl.txt"
