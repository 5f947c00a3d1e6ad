"""Shared fixtures.  ``gpu``: CuPy with a working CUDA device.  Without one the test is
skipped, unless STBP_REQUIRE_GPU=1 (tools/gpu_check.sh sets it): then it fails, so a GPU
check on a machine whose device is missing or broken cannot pass by skipping everything."""
import os

import pytest


def gpu_problem():
    """None when CuPy sees a working device, else what is wrong (a sentence)."""
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:       # CUDARuntimeError, a missing driver library, ...
        return f"CuPy sees no working CUDA device ({exc})"
    return None if count > 0 else "the CUDA runtime reports 0 devices"


@pytest.fixture(scope="session")
def gpu():
    problem = gpu_problem()
    if problem is not None:
        if os.environ.get("STBP_REQUIRE_GPU", "").strip() == "1":
            pytest.fail(f"STBP_REQUIRE_GPU=1 but {problem}", pytrace=False)
        pytest.skip(f"no CUDA device: {problem}")
    import cupy
    return cupy
