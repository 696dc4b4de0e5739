#!/usr/bin/env bash
# Runs per hour of the paper profile on one GPU with 1, 2, 4 and 8 runs sharing it (mean teacher
# and SPCL; fp32, bf16, bf16 + channels-last), and the paper plan's GPU-hours at the best setting:
# what to set `runs_per_gpu` and `gpu_mem_mb_per_run` to (README, "Several runs per GPU").
# Fits in about 7 minutes on one H100/H200 (4 concurrency levels x 6 combinations x 8 s, plus
# start-up); SECONDS_PER_CELL=4 halves the timed part. Output: stdout and $OUT/gpu_throughput.txt.
#   bash benchmarks/gpu_throughput.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-.}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu_throughput.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu_throughput.txt"
python benchmarks/gpu_throughput.py --profile paper --device cuda --concurrency 1,2,4,8 \
  --methods meanteacher,spcl --numerics fp32,bf16,bf16+channels_last \
  --seconds "${SECONDS_PER_CELL:-8}" 2>&1 | tee -a "$out/gpu_throughput.txt"
