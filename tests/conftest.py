"""Shared fixtures.  ``tiny_mnist``: the reproduction command on 300 synthetic digits;
``no_training``: records whether the command got as far as loading data or training.
``gpu``: CuPy with a working CUDA device.  Without one the test is
skipped, unless STBP_REQUIRE_GPU is on (1, true, yes, on; tools/gpu_check.sh sets it):
then it fails, so a GPU check on a machine whose device is missing or broken cannot pass
by skipping everything.  A value of STBP_REQUIRE_GPU that is neither on nor off stops the
test run at once (stbp.env.flag names it).  ``numba_kernels`` and ``emulated``: the
kernels' two CPU builds, Numba's and the CUDA source compiled with g++ (skipped without
g++), one per test module."""
import shutil

import numpy as np
import pytest

from stbp import env, reproduce

#: Read once, when pytest starts: a bad value is a usage error, not a skipped test.
REQUIRE_GPU = env.flag("STBP_REQUIRE_GPU", False)


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
        if REQUIRE_GPU:
            pytest.fail(f"STBP_REQUIRE_GPU={env.text('STBP_REQUIRE_GPU')} but {problem}",
                        pytrace=False)
        pytest.skip(f"no CUDA device: {problem}")
    import cupy
    return cupy


@pytest.fixture
def tiny_mnist(monkeypatch):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 300)
    x = rng.integers(0, 40, (300, 28, 28)).astype(np.uint8)
    for i, c in enumerate(y):                       # class c lights up row block c
        x[i, 2 * c:2 * c + 3, :] = 250
    data = (x[:200], y[:200], x[200:], y[200:])
    monkeypatch.setattr(reproduce, "load_mnist", lambda root=None: data)
    monkeypatch.setattr(reproduce, "N_VAL", 50)     # of 200 training digits
    return data


@pytest.fixture
def no_training(monkeypatch):
    """Record whether the CLI got as far as loading data or training."""
    calls = []
    monkeypatch.setattr(reproduce, "load_mnist", lambda root=None: calls.append("data") or
                        (_ for _ in ()).throw(AssertionError("data loaded")))
    monkeypatch.setattr(reproduce, "fit", lambda *a, **k: calls.append("fit"))
    return calls


@pytest.fixture(params=["array", "fused"])
def engine(request):
    """Each engine in turn on the NumPy backend: "array", the book's array code as written
    (backend.use("numpy", fuse=False)), and "fused", chapter 7's Numba kernels; the
    backend in force before the test is restored after it."""
    from stbp import backend
    saved = backend.xp, backend.name, backend.fused
    backend.use("numpy", fuse=request.param == "fused")
    try:
        yield request.param
    finally:
        backend.xp, backend.name, backend.fused = saved


def assert_engine(name, surrogate=None):
    """The engine that backend.engine chooses for surrogate is the one named: the array
    case must run the array code (a fused kernel would hide an error in it)."""
    import stbp.engine
    from stbp import backend
    chosen = backend.engine(surrogate)
    if name == "array":
        assert chosen is stbp.engine.ARRAY, chosen
    else:
        assert isinstance(chosen, stbp.engine.Fused), chosen


@pytest.fixture(scope="module")
def numba_kernels():
    from stbp.kernels.cpu import NumbaKernels
    return NumbaKernels(np)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot build the CUDA source for the CPU")
    from stbp.kernels.cuda import EmulatedKernels
    return EmulatedKernels(np, folder=str(tmp_path_factory.mktemp("kernels")))
