#!/usr/bin/env bash
# GPU check for an NVIDIA GPU (sized for one H200, < 5 minutes): memory and speed of full FT, LoRA
# and Delta-LoRA (inplace, folded, naive) on random-initialised RoBERTa-base and GPT-2 Medium shaped
# models (no hub), fp32 and bf16, plus the bf16 rounding loss, printed as the same table as
# results/memory_table.md, with QLoRA and Delta-LoRA folded on a 4-bit NF4 base (bitsandbytes) and their ratios
# to QLoRA (goal: folded within 1.05x). Also runs the CUDA/AMP checks of the core on the GPU.
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/gpu_check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
# 1. the core on CUDA: engines vs literal Algorithm 1, AMP grad-scaler skip, bf16 autocast
python3 -m pytest -q -p no:cacheprovider benchmarks/gpu_tests.py 2>&1 | tail -n 15
# 2. the memory/speed table on the GPU
python3 -m deltalora bench memory --device cuda --models roberta-base,gpt2-medium --dtypes fp32,bf16 \
    --rounds 2 --batch 16 --seq 128 --steps 10 --warmup 3 --bf16-model roberta-base --bf16-steps 30 \
    --qlora-models roberta-base,gpt2-medium \
    --out "$out/memory_table.csv" --plots "$out/plots"
cat "$out/memory_table.md"
