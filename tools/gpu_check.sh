#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, run every test that needs a GPU (CuPy
# against NumPy, fused kernels and array code) with a missing device counted as a failure
# (STBP_REQUIRE_GPU=1), once with the fused kernels as the default and once without
# (STBP_FUSE=0), then the benchmark on CuPy with and without the fused kernels.
#   bash tools/gpu_check.sh [OUTDIR]   (writes OUTDIR/bench-gpu.json and
#                                       OUTDIR/bench-gpu-unfused.json, default results/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results}"
python3 -c "import cupy" 2>/dev/null || python3 -m pip install --quiet -e ".[cupy]" pytest
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
export STBP_REQUIRE_GPU=1
for fuse in 1 0; do
    STBP_FUSE=$fuse python3 -m pytest -q -rs tests/test_gpu.py tests/test_backend.py \
        tests/test_kernels.py
done
python3 -m stbp.bench --backend cupy --out "$out/bench-gpu.json"
python3 -m stbp.bench --backend cupy --no-fuse --no-scaling --onb 4096 \
    --out "$out/bench-gpu-unfused.json"
