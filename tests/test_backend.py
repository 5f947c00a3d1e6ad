"""The array backend switch: NumPy by default, the env var, clear CuPy errors (the tests
that need a GPU are in test_gpu.py)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from stbp import backend


def has_gpu():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_numpy_is_the_default():
    result = run_python("import stbp; print(stbp.backend.name, stbp.backend.xp.__name__)",
                        STBP_BACKEND="")
    assert result.stdout.split() == ["numpy", "numpy"], result.stderr


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(backend.BackendError, match="unknown backend 'jax'"):
        backend.use("jax")
    assert backend.name == "numpy"


def test_environment_variable_is_honoured():
    # a bad value warns at import and selects NumPy; import stbp itself never fails on it
    result = run_python("import stbp; print(stbp.backend.name)", STBP_BACKEND="torch")
    assert result.returncode == 0 and result.stdout.split() == ["numpy"], result.stderr
    assert "RuntimeWarning" in result.stderr and ("STBP_BACKEND must be one of numpy, cupy "
                                                  "(any case); got STBP_BACKEND='torch'"
                                                  ) in result.stderr
    result = run_python("import stbp", STBP_BACKEND="nonsense")
    assert result.returncode == 0 and "STBP_BACKEND" in result.stderr
    assert "NumPy backend is selected instead" in result.stderr
    # an error, where the warning is made one: the warning is a RuntimeWarning
    result = run_python("import warnings; warnings.simplefilter('error', RuntimeWarning); "
                        "import stbp", STBP_BACKEND="nonsense")
    assert result.returncode != 0 and "RuntimeWarning: STBP_BACKEND" in result.stderr
    result = run_python("import stbp; print(stbp.backend.name)", STBP_BACKEND="NumPy")
    assert result.stdout.strip() == "numpy"


@pytest.mark.skipif(has_gpu(), reason="this machine has a working CUDA device")
def test_cupy_without_gpu_says_why():
    with pytest.raises(backend.BackendError) as info:
        backend.use("cupy")
    assert ("CuPy is not installed" in str(info.value)
            or "no CUDA device works" in str(info.value))
    assert backend.name == "numpy" and backend.xp is np  # the failed switch changed nothing
    result = run_python("import stbp; print(stbp.backend.name)", STBP_BACKEND="cupy")
    assert result.returncode == 0 and result.stdout.split() == ["numpy"]
    assert ("CuPy is not installed" in result.stderr
            or "no CUDA device works" in result.stderr) and "STBP_BACKEND" in result.stderr


def test_cupy_missing_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(backend.BackendError, match="CuPy is not installed"):
        backend.use("cupy")


def test_to_numpy_and_asarray():
    a = backend.asarray([1, 2, 3], dtype="float32")
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert backend.to_numpy(a) is a
    r1 = backend.default_rng(5).random(4)
    r2 = backend.default_rng(5).random(4)
    assert np.array_equal(r1, r2)


def test_permutation_helper():
    p = backend.permutation(np.random.default_rng(3), 10)
    assert sorted(p.tolist()) == list(range(10))
    assert np.array_equal(p, np.random.default_rng(3).permutation(10))  # NumPy: its own

    class NoPermutation:                       # like CuPy's Generator
        def __init__(self):
            self.rng = np.random.default_rng(4)

        def random(self, n):
            return self.rng.random(n)
    q = backend.permutation(NoPermutation(), 10)
    assert sorted(q.tolist()) == list(range(10))


def test_rng_state_round_trip_numpy():
    rng = backend.default_rng(3)
    rng.random(5)
    state = backend.rng_state(rng)
    json.dumps(state)                                # goes into a checkpoint's JSON
    expected = rng.random(4)
    other = backend.default_rng(99)
    backend.set_rng_state(other, json.loads(json.dumps(state)))
    assert np.array_equal(other.random(4), expected)


class DeviceBits:
    """Shaped like CuPy's XORWOW: state() is a method, the states a byte array _state."""

    def __init__(self, seed, nbytes=48):
        self._state = np.random.default_rng(seed).integers(-128, 128, nbytes).astype(np.int8)

    def state(self):
        return self._state.ctypes.data


class DeviceGenerator:
    def __init__(self, seed, nbytes=48):
        self.bit_generator = DeviceBits(seed, nbytes)


def test_rng_state_round_trip_device_generator():
    a, b = DeviceGenerator(1), DeviceGenerator(2)
    state = json.loads(json.dumps(backend.rng_state(a)))
    assert state["bit_generator"] == "DeviceBits"
    backend.set_rng_state(b, state)
    assert np.array_equal(a.bit_generator._state, b.bit_generator._state)
    with pytest.raises(backend.BackendError, match="48 bytes, this generator 64"):
        backend.set_rng_state(DeviceGenerator(3, nbytes=64), state)
    with pytest.raises(backend.BackendError, match="state of a DeviceBits generator on a GPU"):
        backend.set_rng_state(backend.default_rng(0), state)


def test_engine_is_chosen_by_the_backend_alone():
    """backend.engine: the fused engine while kernels are on (for a curve they know),
    else the book's array code; use(fuse=False) turns them off."""
    import stbp.engine
    from stbp.surrogates import Rectangular
    saved = backend.xp, backend.name, backend.fused
    try:
        backend.use("numpy", fuse=False)
        assert backend.fused is None and backend.engine() is stbp.engine.ARRAY
        assert backend.engine(Rectangular(1.0)) is stbp.engine.ARRAY
        backend.use("numpy", fuse=True)
        assert isinstance(backend.fused, stbp.engine.Fused)
        assert backend.engine(Rectangular(1.0)) is backend.fused is backend.engine()
    finally:
        backend.xp, backend.name, backend.fused = saved
    assert not hasattr(backend, "fused_for") and not hasattr(backend, "fused_op")


def test_tune_process_sets_what_import_leaves():
    result = run_python("import numba; from stbp import backend; before = backend.kept_freed; "
                        "r = backend.tune_process(); "
                        "print(before, r['kept_freed'], backend.kept_freed, r['numba_threads'])",
                        STBP_KEEP_FREED="", STBP_NUMBA_THREADS="", NUMBA_NUM_THREADS="1")
    assert result.stdout.split() == ["None", str(256 << 20), str(256 << 20), "1"], \
        result.stderr
    result = run_python("from stbp import backend; print(backend.tune_process())",
                        STBP_KEEP_FREED="0", STBP_FUSE="0")
    assert result.stdout.strip() == ("{'kept_freed': None, 'numba_threads': None, "
                                     "'blas_timeout': None}"), result.stderr


BLAS_TIMEOUT = ("import ctypes, os; from stbp import backend; import numpy; "
                "numpy.ones((64, 64)) @ numpy.ones((64, 64)); "
                "r = backend.tune_process(); numpy.ones((64, 64)) @ numpy.ones((64, 64)); "
                "libs = [l.split()[-1] for l in open('/proc/self/maps') if 'openblas' in l]; "
                "lib = ctypes.CDLL(sorted(libs)[0]); "
                "print(r['blas_timeout'], lib.openblas_thread_timeout(), "
                "os.environ['OPENBLAS_THREAD_TIMEOUT'])")


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/self/maps")
def test_tune_process_quiets_openblas_threads_unless_told_otherwise():
    # unset: OpenBLAS is told to sleep its idle threads after 2^4 cycles, and has re-read it
    result = run_python(BLAS_TIMEOUT, OPENBLAS_THREAD_TIMEOUT="")
    assert result.stdout.split() == ["4", "4", "4"], result.stderr
    # the user's setting stands (OpenBLAS read it when it started)
    result = run_python(BLAS_TIMEOUT, OPENBLAS_THREAD_TIMEOUT="12")
    assert result.stdout.split() == ["12", "12", "12"], result.stderr
    result = run_python("from stbp import backend; backend.quiet_blas_threads(3)",
                        OPENBLAS_THREAD_TIMEOUT="")
    assert "exponent must lie in [4, 30] (OpenBLAS's range); got 3" in result.stderr
