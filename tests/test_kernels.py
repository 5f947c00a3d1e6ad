"""The fused kernels (chapter 7) against the array code of chapters 2, 3 and 5.

Two builds run here without a GPU: the Numba kernels (the NumPy backend's default) and
the CUDA source compiled for the CPU with g++, whose entries loop over simulated blocks
and threads (the same source CuPy compiles).  Both must equal the array code bit for bit
wherever the arithmetic has no exp or tanh; where it has (the Sigmoid, Gaussian and
Smooth curves, the exp carry on real outputs), NumPy's own exp/tanh and the C library's
may differ in the last bit, and the tests allow a few units in the last place (TOL).
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from stbp import SNN, backend, kernels
from types import SimpleNamespace

from stbp.backward import carry_factors, gradients, layer_backward
from stbp.encode import bernoulli
from stbp.kernels import cuda
from stbp.kernels.cpu import NumbaKernels
from stbp.network import layer_forward
from stbp.optim import SGD, Adam
from stbp.surrogates import Gaussian, Polynomial, Rectangular, Sigmoid, Smooth, Surrogate
from stbp.train import fit, parameters

SURROGATES = [Rectangular(1.0), Rectangular(0.4), Polynomial(1.3), Sigmoid(0.7),
              Gaussian(0.8), Smooth(0.6)]
RULES = ["exact", "seed", "detached"]
CARRIES = ["exp", "linear", "reset"]
#: relative tolerance (times the largest magnitude) where exp or tanh enter
TOL = {"float32": 3e-6, "float64": 1e-14}


def bitwise(surrogate):
    """Whether the whole computation avoids exp and tanh (then results are bit-equal)."""
    return type(surrogate) in (Rectangular, Polynomial)


def assert_same(got, ref, surrogate, dtype):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    if bitwise(surrogate):
        np.testing.assert_array_equal(got, ref)
    else:
        scale = max(float(np.abs(ref.astype(float)).max()), 1e-30)
        np.testing.assert_allclose(got.astype(float), ref.astype(float), rtol=0,
                                   atol=TOL[dtype] * scale)


@pytest.fixture(scope="module")
def numba_kernels():
    return NumbaKernels(np)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot build the CUDA source for the CPU")
    return cuda.EmulatedKernels(np, folder=str(tmp_path_factory.mktemp("kernels")))


@pytest.fixture(params=["numba", "emulated-cuda"])
def fused(request):
    return request.getfixturevalue("numba_kernels" if request.param == "numba" else "emulated")


def layer_inputs(dtype, T, B=6, n=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.35, 0.6, (T, B, n)).astype(dtype)
    b = rng.normal(0, 0.1, n).astype(dtype)
    S = rng.normal(0, 1, (T, B, n)).astype(dtype)
    return X, b, S


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("T", [1, 7])
@pytest.mark.parametrize("carry", CARRIES)
def test_layer_kernels_equal_the_array_code(monkeypatch, fused, surrogate, dtype, T, carry):
    X, b, S = layer_inputs(dtype, T)
    net = SimpleNamespace(surrogate=surrogate, tau=0.35, v_th=0.3, dtype=np.dtype(dtype),
                          carry=carry)
    monkeypatch.setattr(backend, "fused", None)
    U_ref, O_ref = layer_forward(X.copy(), b, 0.35, 0.3, surrogate, carry)
    U, O = fused.layer_forward(X.copy(), b, 0.35, 0.3, surrogate, carry)
    assert_same(U, U_ref, surrogate, dtype)
    assert_same(O, O_ref, surrogate, dtype)
    if surrogate.binary:
        assert 0.05 < float(O_ref.mean()) < 0.95        # the spikes are not all 0 or all 1
        O_ref = O_ref.astype(bool)                      # as the trace stores them
    counting = Counting(fused)
    for rule in RULES:
        monkeypatch.setattr(backend, "fused", None)
        E_ref, P_ref, _ = layer_backward(S, U_ref, O_ref, net, rule)
        monkeypatch.setattr(backend, "fused", counting)  # what gradients() calls
        E, P, _ = layer_backward(S, U_ref, O_ref, net, rule)
        assert_same(E, E_ref, surrogate, dtype)
        assert_same(P, P_ref, surrogate, dtype)
        assert float(np.abs(E_ref).max()) > 0
    assert counting.calls == len(RULES)                 # the kernels ran, once per rule


class Counting:
    """Kernels that count their layer_backward calls."""

    def __init__(self, kernels):
        self.kernels, self.calls = kernels, 0

    def layer_backward(self, *args, **kw):
        self.calls += 1
        return self.kernels.layer_backward(*args, **kw)


def network_forward_and_gradients(surrogate, dtype, rule, T, carry="exp"):
    net = SNN([15, 11, 9, 4], tau=0.35, v_th=0.3, surrogate=surrogate, dtype=dtype, seed=2,
              init="fan_in", carry=carry)
    rng = np.random.default_rng(5)
    net.b = [rng.normal(0, 0.1, b.shape).astype(dtype) for b in net.b]   # biases count too
    trace = net.forward(bernoulli(rng.random((6, 15)), T, rng=3, dtype=dtype))
    targets = np.eye(4)[[0, 1, 2, 3, 1, 2]]
    return trace, net.gradients(trace, targets, rule=rule)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("T", [1, 7])
@pytest.mark.parametrize("carry", CARRIES)
def test_network_with_fused_kernels_equals_the_array_code(monkeypatch, numba_kernels,
                                                          surrogate, dtype, rule, T, carry):
    monkeypatch.setattr(backend, "fused", None)
    ref_trace, ref_grads = network_forward_and_gradients(surrogate, dtype, rule, T, carry)
    monkeypatch.setattr(backend, "fused", numba_kernels)
    trace, grads = network_forward_and_gradients(surrogate, dtype, rule, T, carry)
    for a, b in zip(ref_trace.u + ref_trace.o, trace.u + trace.o):
        assert_same(b, a, surrogate, dtype)
    for (dW, db), (rW, rb) in zip(grads, ref_grads):
        assert_same(dW, rW, surrogate, dtype)
        assert_same(db, rb, surrogate, dtype)
    assert any(float(np.abs(dW).max()) > 0 for dW, _ in grads)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_dtype", ["float32", "float64", "uint8"])
def test_fused_bernoulli_draws_the_same_spikes(monkeypatch, numba_kernels, dtype, x_dtype):
    x = np.random.default_rng(1).random((7, 5, 3))
    x = (x > 0.5).astype(x_dtype) if x_dtype == "uint8" else x.astype(x_dtype)
    monkeypatch.setattr(backend, "fused", None)
    ref = bernoulli(x, 4, rng=11, dtype=dtype)
    monkeypatch.setattr(backend, "fused", numba_kernels)
    got = bernoulli(x, 4, rng=11, dtype=dtype)
    assert got.dtype == ref.dtype == np.dtype(dtype) and got.shape == (4, 7, 5, 3)
    np.testing.assert_array_equal(got, ref)
    assert 0 < float(ref.mean()) < 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [lambda p: Adam(p, lr=3e-3), lambda p: SGD(p, lr=0.05)],
                         ids=["Adam", "SGD"])
def test_fused_optimisers_equal_the_array_code(monkeypatch, numba_kernels, dtype, make):
    rng = np.random.default_rng(2)
    start = [rng.normal(0, 1, (13, 7)).astype(dtype), rng.normal(0, 1, 13).astype(dtype)]
    grads = [[rng.normal(0, 1, p.shape).astype(dtype) for p in start] for _ in range(5)]
    results = []
    for fused in (None, numba_kernels):
        monkeypatch.setattr(backend, "fused", fused)
        params = [p.copy() for p in start]
        opt = make(params)
        for g in grads:
            opt.step(g)
        results.append(params)
    for a, b in zip(*results):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(b, a)
        assert not np.array_equal(a, start[0] if a.ndim == 2 else start[1])


def test_a_training_run_with_fused_kernels_is_identical(monkeypatch, numba_kernels):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = (rng.random((90, 4, 4)) * 80).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, c, :] = 230
    runs = []
    for fused in (None, numba_kernels):
        monkeypatch.setattr(backend, "fused", fused)
        net = SNN([16, 12, 3], tau=0.3, v_th=0.5, surrogate=Rectangular(1.0), seed=1,
                  dtype="float32", init="fan_in")
        h = fit(net, Adam(parameters(net), lr=5e-3), (x, y), (x, y), epochs=2, T=5,
                batch_size=30, seed=4, progress=False)
        runs.append((h, parameters(net)))
    (h0, p0), (h1, p1) = runs
    assert h1.test_acc == h0.test_acc and h1.loss == h0.loss
    for a, b in zip(p0, p1):
        np.testing.assert_array_equal(b, a)


class Recording(kernels.Kernels):
    def __init__(self):
        super().__init__(np)
        self.calls = []

    def layer_backward(self, *args, **kw):
        self.calls.append("layer_backward")
        return NumbaKernels.layer_backward(self, *args, **kw)


def test_unknown_surrogates_and_keep_use_the_array_code(monkeypatch):
    recorder = Recording()
    monkeypatch.setattr(backend, "fused", recorder)

    class Custom(Rectangular):     # a curve the kernels do not know
        pass

    assert backend.fused_for(Custom(1.0)) is None
    assert backend.fused_for(Rectangular(1.0)) is recorder
    assert backend.fused_op("adam") is None               # not every backend fuses these
    net = SNN([5, 3], tau=0.3, v_th=0.2, seed=0, surrogate=Custom(1.0))
    trace = net.forward(bernoulli(np.full((2, 5), 0.5), 4, rng=0))
    net.gradients(trace, np.eye(3)[[0, 1]])
    assert recorder.calls == []
    net = SNN([5, 3], tau=0.3, v_th=0.2, seed=0, surrogate=Rectangular(1.0))
    monkeypatch.setattr(backend, "fused", None)
    trace = net.forward(bernoulli(np.full((2, 5), 0.5), 4, rng=0))
    monkeypatch.setattr(backend, "fused", recorder)
    gradients(net, trace, np.eye(3)[[0, 1]], rule="exact", keep=True)
    assert recorder.calls == []
    for rule in RULES:
        net.gradients(trace, np.eye(3)[[0, 1]], rule=rule)
    assert recorder.calls == ["layer_backward"] * len(RULES)


def test_kernels_refuse_bad_arguments(numba_kernels):
    X = np.zeros((3, 2, 4), dtype=np.float16)
    with pytest.raises(ValueError, match="float32 or float64 arrays, got float16"):
        numba_kernels.layer_forward(X, np.zeros(4, np.float16), 0.3, 0.5, Rectangular(1.0))
    U = np.zeros((3, 2, 4))
    with pytest.raises(ValueError, match="rule must be one of"):
        numba_kernels.layer_backward(U, U, U > 0, 0.3, 0.5, Rectangular(1.0), rule="magic")
    with pytest.raises(ValueError, match="carry must be one of"):
        numba_kernels.layer_forward(U, np.zeros(4), 0.3, 0.5, Rectangular(1.0), carry="cubic")
    with pytest.raises(ValueError, match="no kernel source"):
        cuda.source("opencl", "float")
    with pytest.raises(ValueError, match="C-contiguous"):
        numba_kernels.sgd(np.zeros((4, 4))[:, ::2], np.zeros((4, 2)), np.zeros((4, 2)), 0.1, 0.9)


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_fused_is_the_default_and_can_be_switched_off():
    show = "from stbp import backend; print(type(backend.fused).__name__)"
    assert run_python(show, STBP_FUSE="").stdout.split() == ["NumbaKernels"]
    assert run_python(show, STBP_FUSE="0").stdout.split() == ["NoneType"]
    try:
        assert backend.use("numpy", fuse=False) is np and backend.fused is None
        assert backend.fused_for(Rectangular(1.0)) is None
        backend.use("numpy", fuse=True)
        assert isinstance(backend.fused, NumbaKernels)
    finally:
        backend.use("numpy")                           # as the environment says


def test_every_surrogate_curve_has_a_kernel_id():
    import stbp.surrogates as s
    known = {c.__name__ for c in vars(s).values()
             if isinstance(c, type) and issubclass(c, Surrogate) and c is not Surrogate}
    assert known == set(kernels.CURVES)
    assert all(kernels.supports(c(1.0)) for c in (Rectangular, Polynomial, Sigmoid,
                                                  Gaussian, Smooth))


@pytest.mark.parametrize("carry", CARRIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_carry_values_are_those_of_the_array_code(carry, dtype):
    F, dF = carry_factors(np.array([False, True]), 0.35, True, np.dtype(dtype), carry)
    F0, F1, dF0, dF1, slope = kernels.carry_values(0.35, carry, dtype)
    assert [F0, F1, dF0, dF1] == [F[0], F[1], dF[0], dF[1]]
    assert type(F0) is type(slope) is np.dtype(dtype).type
    affine = "linear" if carry == "exp" else carry      # the slope of the affine case
    _, dF_real = carry_factors(np.array([0.3], dtype), 0.35, False, np.dtype(dtype), affine)
    assert slope == dF_real[0]


# --- the CUDA source: signatures, grid indexing, contraction ------------------------------

def test_every_kernel_integer_is_64_bit():
    for name, params in kernels.SIGNATURES.items():
        sizes = [arg for ctype, arg in params if "long" in ctype or arg in ("T", "BN", "n")]
        assert sizes and all(dict((a, c) for c, a in params)[a] == "long long" for a in sizes)
        src = cuda.source("cuda", "float")
        assert f"void {name}(" in src and " long " not in src.replace("long long", "")
    assert "ctypes.c_longlong" in open(cuda.__file__).read()
    assert "cupy.int64" in open(cuda.__file__).read()


def test_cuda_build_does_not_contract_multiply_adds():
    assert "--fmad=false" in cuda.CudaKernels.OPTIONS


@pytest.mark.parametrize("B, n, T", [(37, 71, 1), (37, 71, 5), (3, 300, 2)])
def test_grid_indexing_at_many_blocks(emulated, numba_kernels, B, n, T):
    """B n is far above 256 threads and not a multiple of it: many blocks, the last one
    partly idle.  The emulated entries must match the Numba kernels for every pair."""
    assert B * n > 256 and B * n % 256
    X, b, S = layer_inputs("float64", T, B, n, seed=3)
    s = Polynomial(1.3)
    U, O = emulated.layer_forward(X.copy(), b, 0.35, 0.3, s)
    U_ref, O_ref = numba_kernels.layer_forward(X.copy(), b, 0.35, 0.3, s)
    np.testing.assert_array_equal(U, U_ref)
    np.testing.assert_array_equal(O, O_ref)
    for rule in RULES:
        E, P = emulated.layer_backward(S, U_ref, O_ref.astype(bool), 0.35, 0.3, s, rule=rule)
        E_ref, P_ref = numba_kernels.layer_backward(S, U_ref, O_ref.astype(bool), 0.35, 0.3, s,
                                                    rule=rule)
        np.testing.assert_array_equal(E, E_ref)
        np.testing.assert_array_equal(P, P_ref)


def test_a_wrong_thread_index_is_caught(monkeypatch, tmp_path, numba_kernels):
    """The check above can fail: an entry indexed by threadIdx.x alone is wrong."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    monkeypatch.setattr(cuda, "ENTRY_BODY", cuda.ENTRY_BODY.replace(
        "(long long)blockIdx.x * blockDim.x + threadIdx.x", "threadIdx.x"))
    broken = cuda.EmulatedKernels(np, folder=str(tmp_path))
    X, b, _ = layer_inputs("float64", 3, 11, 50)
    U, _ = broken.layer_forward(X.copy(), b, 0.35, 0.3, Rectangular(1.0))
    U_ref, _ = numba_kernels.layer_forward(X.copy(), b, 0.35, 0.3, Rectangular(1.0))
    assert not np.array_equal(U, U_ref)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found")
@pytest.mark.parametrize("real", ["float", "double"])
def test_cuda_source_compiles(tmp_path, real):
    src = tmp_path / f"k_{real}.cu"
    src.write_text(cuda.source("cuda", real))
    done = subprocess.run(["nvcc", "--fmad=false", "--ptx", "-o", str(tmp_path / "k.ptx"),
                           str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ptx = (tmp_path / "k.ptx").read_text()
    assert ".entry layer_forward" in ptx and ".entry layer_backward" in ptx


def test_kernel_threads_are_one_unless_asked():
    import numba

    from stbp.kernels.cpu import configure_threads
    assert numba.get_num_threads() == 1 == NumbaKernels(np).threads
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one CPU: Numba has a single thread to give")
    try:
        assert configure_threads(2) == 2 and numba.get_num_threads() == 2
    finally:
        configure_threads(1)
    with pytest.raises(ValueError, match="Numba threads must lie in"):
        configure_threads(0)
    shown = run_python("import numba, stbp; print(numba.get_num_threads())",
                       STBP_NUMBA_THREADS="2")
    assert shown.stdout.split() == ["2"], shown.stderr


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, k, channel_first", [((6, 12, 12, 15), 5, False),
                                                     ((4, 28, 28, 1), 5, True),
                                                     ((3, 7, 9, 2), 3, False),
                                                     ((2, 5, 5, 3), 5, False)])
def test_fused_im2col_and_col2im_equal_the_array_code(monkeypatch, numba_kernels, dtype, shape,
                                                      k, channel_first):
    from stbp.conv import col2im, im2col
    rng = np.random.default_rng(3)
    A = rng.normal(0, 1, shape).astype(dtype)
    if channel_first:           # the input layer's maps arrive as a transposed view
        R, H, W, C = shape
        A = rng.normal(0, 1, (R, C, H, W)).astype(dtype).transpose(0, 2, 3, 1)
    out = {}
    for key, fused in (("array", None), ("fused", numba_kernels)):
        monkeypatch.setattr(backend, "fused", fused)
        rows = im2col(A, k)
        out[key] = rows, col2im(rows * 1.7 + 0.3, A.shape, k)
    for got, ref in zip(out["fused"], out["array"]):
        assert got.dtype == ref.dtype == np.dtype(dtype) and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
    R, H, W, C = A.shape
    assert out["fused"][0].shape == (R * (H - k + 1) * (W - k + 1), k * k * C)


def test_freed_memory_is_kept_unless_switched_off():
    show = "from stbp import backend; print(backend.kept_freed)"
    assert run_python(show, STBP_KEEP_FREED="").stdout.split() == [str(256 << 20)]
    assert run_python(show, STBP_KEEP_FREED="0").stdout.split() == ["None"]
    assert run_python(show, STBP_KEEP_FREED=str(64 << 20)).stdout.split() == [str(64 << 20)]
    # the array code as written gets it too: it is the backend's, not the kernels'
    assert run_python(show, STBP_FUSE="0").stdout.split() == [str(256 << 20)]
    bad = run_python(show, STBP_KEEP_FREED="lots")
    assert bad.returncode != 0 and "STBP_KEEP_FREED must be a number of bytes" in bad.stderr
