#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, install CuPy, run the tests that need a
# GPU (CuPy forward and gradients against NumPy, with the fused kernels and without),
# the kernel tests, then the benchmark on CuPy with and without the fused kernels.
#   bash tools/gpu_check.sh [OUTDIR]   (writes OUTDIR/bench-gpu.json and
#                                       OUTDIR/bench-gpu-unfused.json, default results/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results}"
python3 -m pip install --quiet -e ".[cupy]" pytest
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -m pytest -q -rs tests/test_backend.py tests/test_kernels.py
python3 -m stbp.bench --backend cupy --out "$out/bench-gpu.json"
python3 -m stbp.bench --backend cupy --no-fuse --no-scaling --onb 4096 \
    --out "$out/bench-gpu-unfused.json"
