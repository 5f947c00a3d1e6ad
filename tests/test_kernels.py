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

from types import SimpleNamespace

import stbp.engine
from stbp import SNN, backend, kernels

from stbp.backward import carry_factors, gradients, layer_backward
from stbp.encode import bernoulli
from stbp.engine import ARRAY, Fused, kernel_form, neuron_form
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


@pytest.fixture(params=["numba", "emulated-cuda"])
def fused(request):
    """The engine of each build of the kernels (stbp.engine.Fused)."""
    return Fused(request.getfixturevalue("numba_kernels" if request.param == "numba"
                                         else "emulated"))


def form(surrogate=Rectangular(1.0), dtype="float64", carry="exp", tau=0.35, v_th=0.3):
    """The numbers the kernels take (stbp.kernels.Form), as the engine computes them."""
    return neuron_form(tau, v_th, surrogate, carry, np.dtype(dtype))


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
    U_ref, O_ref = layer_forward(X.copy(), b, 0.35, 0.3, surrogate, carry)   # array code
    U, O = fused.layer_forward(X.copy(), b, 0.35, 0.3, surrogate, carry)
    assert_same(U, U_ref, surrogate, dtype)
    assert_same(O, O_ref, surrogate, dtype)
    if surrogate.binary:
        assert 0.05 < float(O_ref.mean()) < 0.95        # the spikes are not all 0 or all 1
        O_ref = O_ref.astype(bool)                      # as the trace stores them
    counting = Counting(fused.kernels)
    monkeypatch.setattr(backend, "fused", Fused(counting))
    engine = backend.engine(surrogate)                  # what gradients() calls
    assert engine is backend.fused
    for rule in RULES:
        E_ref, P_ref, _ = layer_backward(S, U_ref, O_ref, net, rule)    # the array code
        E, P, D = engine.layer_backward(S, U_ref, O_ref, net, rule)
        assert D is None
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
    for b in net.b:                                                    # biases count too
        b[...] = rng.normal(0, 0.1, b.shape)
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
    assert backend.engine(surrogate) is ARRAY
    ref_trace, ref_grads = network_forward_and_gradients(surrogate, dtype, rule, T, carry)
    monkeypatch.setattr(backend, "fused", Fused(numba_kernels))
    assert backend.engine(surrogate) is backend.fused
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
    monkeypatch.setattr(backend, "fused", Fused(numba_kernels))
    assert backend.engine().spikes_below == numba_kernels.bernoulli
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
    for fused in (None, Fused(numba_kernels)):
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
    for fused in (None, Fused(numba_kernels)):
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
    monkeypatch.setattr(backend, "fused", Fused(recorder))

    class Custom(Rectangular):     # a curve the kernels do not know
        def grad(self, x):
            return 2 * Rectangular.grad(self, x)

    assert kernel_form(Custom(1.0)) is None               # kernel_form is not inherited
    assert backend.engine(Custom(1.0)) is ARRAY
    assert backend.engine(Rectangular(1.0)) is backend.fused
    assert backend.engine() is backend.fused
    # not every backend fuses these: the array code's functions stand in
    assert backend.engine().adam_update == ARRAY.adam_update
    assert backend.engine().im2col == ARRAY.im2col
    net = SNN([5, 3], tau=0.3, v_th=0.2, seed=0, surrogate=Custom(1.0))
    trace = net.forward(bernoulli(np.full((2, 5), 0.5), 4, rng=0))
    net.gradients(trace, np.eye(3)[[0, 1]])
    assert recorder.calls == []
    net = SNN([5, 3], tau=0.3, v_th=0.2, seed=0, surrogate=Rectangular(1.0))
    monkeypatch.setattr(backend, "fused", None)
    trace = net.forward(bernoulli(np.full((2, 5), 0.5), 4, rng=0))
    monkeypatch.setattr(backend, "fused", Fused(recorder))
    gradients(net, trace, np.eye(3)[[0, 1]], rule="exact", keep=True)
    assert recorder.calls == []
    for rule in RULES:
        net.gradients(trace, np.eye(3)[[0, 1]], rule=rule)
    assert recorder.calls == ["layer_backward"] * len(RULES)


def test_kernels_refuse_bad_arguments(numba_kernels):
    X = np.zeros((3, 2, 4), dtype=np.float16)
    with pytest.raises(ValueError, match="float32 or float64 arrays, got float16"):
        numba_kernels.layer_forward(X, np.zeros(4, np.float16), form(dtype="float32"))
    U = np.zeros((3, 2, 4))
    with pytest.raises(ValueError, match="rule must be one of"):
        numba_kernels.layer_backward(U, U, U > 0, form(), rule="magic")
    with pytest.raises(ValueError, match="carry must be one of"):
        numba_kernels.layer_forward(U, np.zeros(4), form()._replace(carry="cubic"))
    with pytest.raises(ValueError, match="curve must be one of"):
        numba_kernels.layer_backward(U, U, U > 0, form()._replace(curve="cosine"))
    with pytest.raises(TypeError, match="form must be a stbp.kernels.Form"):
        numba_kernels.layer_forward(U, np.zeros(4), tuple(form()))
    with pytest.raises(ValueError, match="no kernel source"):
        cuda.source("opencl", "float")
    with pytest.raises(ValueError, match="C-contiguous"):
        numba_kernels.sgd(np.zeros((4, 4))[:, ::2], np.zeros((4, 2)), np.zeros((4, 2)), 0.1, 0.9)


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_fused_is_the_default_and_can_be_switched_off():
    show = ("from stbp import backend; print(type(backend.fused).__name__, "
            "type(getattr(backend.fused, 'kernels', None)).__name__)")
    assert run_python(show, STBP_FUSE="").stdout.split() == ["Fused", "NumbaKernels"]
    assert run_python(show, STBP_FUSE="0").stdout.split() == ["NoneType", "NoneType"]
    saved = backend.xp, backend.name, backend.fused
    try:
        assert backend.use("numpy", fuse=False) is np and backend.fused is None
        assert backend.engine(Rectangular(1.0)) is ARRAY and backend.engine() is ARRAY
        backend.use("numpy", fuse=True)
        assert isinstance(backend.fused, Fused)
        assert isinstance(backend.fused.kernels, NumbaKernels)
        assert backend.engine(Rectangular(1.0)) is backend.fused
    finally:
        backend.xp, backend.name, backend.fused = saved


def test_every_surrogate_curve_has_a_kernel_form():
    import stbp.surrogates as s
    classes = [c for c in vars(s).values()
               if isinstance(c, type) and issubclass(c, Surrogate) and c is not Surrogate]
    assert {c.__name__ for c in classes} == {"Rectangular", "Polynomial", "Sigmoid",
                                             "Gaussian", "Smooth"}
    forms = {c.__name__: kernel_form(c(1.0)) for c in classes}
    assert all(f is not None and len(f) == 3 for f in forms.values()), forms
    assert {f[0] for f in forms.values()} == set(kernels.CURVES)   # every curve is used
    assert forms["Sigmoid"] == forms["Smooth"]           # the same curve backward
    assert all(backend.engine(c(1.0)) is backend.fused for c in classes)
    assert kernel_form(Surrogate()) is None


@pytest.mark.parametrize("carry", CARRIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_neuron_form_holds_the_array_codes_carry_values(carry, dtype):
    F, dF = carry_factors(np.array([False, True]), 0.35, True, np.dtype(dtype), carry)
    f = form(Rectangular(1.0), dtype, carry, tau=0.35)
    assert [f.F0, f.F1, f.dF0, f.dF1] == [F[0], F[1], dF[0], dF[1]]
    assert all(type(v) is float for v in (f.F0, f.F1, f.dF0, f.dF1, f.slope, f.tau))
    assert (f.binary, f.carry, f.curve, f.tau, f.v_th) == (True, carry, "rectangular",
                                                           0.35, 0.3)
    assert (f.sa, f.sb) == (0.5, 1.0)                    # Rectangular(1)'s a/2 and 1/a
    if carry != "exp":             # an affine carry's slope f', the same for every o
        _, dF_real = carry_factors(np.array([0.3], dtype), 0.35, False, np.dtype(dtype),
                                   carry)
        assert np.dtype(dtype).type(f.slope) == dF_real[0]
    assert not form(Smooth(0.6), dtype, carry).binary


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
    f = form(Polynomial(1.3))
    U, O = emulated.layer_forward(X.copy(), b, f)
    U_ref, O_ref = numba_kernels.layer_forward(X.copy(), b, f)
    np.testing.assert_array_equal(U, U_ref)
    np.testing.assert_array_equal(O, O_ref)
    for rule in RULES:
        E, P = emulated.layer_backward(S, U_ref, O_ref.astype(bool), f, rule=rule)
        E_ref, P_ref = numba_kernels.layer_backward(S, U_ref, O_ref.astype(bool), f,
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
    U, _ = broken.layer_forward(X.copy(), b, form())
    U_ref, _ = numba_kernels.layer_forward(X.copy(), b, form())
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


def test_import_leaves_numba_threads_and_malloc_alone():
    """import stbp changes nothing in the process: Numba's thread count is what a process
    that imports only numba has, and malloc's settings are left (kept_freed is None)."""
    bare = run_python("import numba; print(numba.get_num_threads())")
    shown = run_python("import numba; before = numba.get_num_threads(); import stbp; "
                       "from stbp import backend; "
                       "print(before, numba.get_num_threads(), backend.kept_freed)")
    assert bare.returncode == 0 and shown.returncode == 0, shown.stderr
    before, after, kept = shown.stdout.split()
    assert before == after == bare.stdout.strip() and kept == "None"
    if int(before) > 1:            # the check can fail: the old import set 1 thread
        assert after != "1"
    # nor does building the kernels, or one forward pass through them
    shown = run_python("import numba; before = numba.get_num_threads(); "
                       "import numpy as np, stbp; from stbp import backend; "
                       "from stbp.kernels.cpu import NumbaKernels; NumbaKernels(np); "
                       "stbp.SNN([4, 3], tau=0.3, v_th=0.5).forward(np.ones((2, 1, 4))); "
                       "print(before == numba.get_num_threads(), backend.kept_freed)")
    assert shown.stdout.split() == ["True", "None"], shown.stderr


def test_kernel_threads_are_every_core_and_passive_when_the_process_is_tuned():
    import numba

    from stbp.kernels.cpu import configure_threads
    tuned = run_python("import os, numba; from stbp import backend; "
                       "print(backend.tune_process()['numba_threads'], numba.get_num_threads(), "
                       "numba.config.NUMBA_NUM_THREADS, os.environ['OMP_WAIT_POLICY'])",
                       STBP_NUMBA_THREADS="", NUMBA_NUM_THREADS="2", OMP_WAIT_POLICY="")
    assert tuned.stdout.split() == ["2", "2", "2", "PASSIVE"], tuned.stderr
    mine = run_python("import os; from stbp import backend; backend.tune_process(); "
                      "print(os.environ['OMP_WAIT_POLICY'])", OMP_WAIT_POLICY="ACTIVE")
    assert mine.stdout.split() == ["ACTIVE"], mine.stderr       # the user's setting stays
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one CPU: Numba has a single thread to give")
    before = numba.get_num_threads()
    try:
        assert configure_threads(2) == 2 and numba.get_num_threads() == 2
        NumbaKernels(np, threads=1)                     # threads= sets it
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)
    with pytest.raises(ValueError, match="Numba threads must lie in"):
        configure_threads(0)
    shown = run_python("import numba; from stbp import backend; backend.tune_process(); "
                       "print(numba.get_num_threads())", STBP_NUMBA_THREADS="2")
    assert shown.stdout.split() == ["2"], shown.stderr
    shown = run_python("import numba; from stbp import backend; "
                       "backend.tune_process(threads=2); print(numba.get_num_threads())")
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
    for key, engine in (("array", ARRAY), ("fused", Fused(numba_kernels))):
        rows = engine.im2col(A, k)
        out[key] = rows, engine.col2im(rows * 1.7 + 0.3, A.shape, k)
    np.testing.assert_array_equal(out["array"][0], im2col(A, k))   # the book's own
    assert Fused(numba_kernels).col2im == numba_kernels.col2im
    for got, ref in zip(out["fused"], out["array"]):
        assert got.dtype == ref.dtype == np.dtype(dtype) and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
    R, H, W, C = A.shape
    assert out["fused"][0].shape == (R * (H - k + 1) * (W - k + 1), k * k * C)


def test_freed_memory_is_kept_unless_switched_off():
    assert run_python("from stbp import backend; print(backend.kept_freed)",
                      STBP_KEEP_FREED="").stdout.split() == ["None"]   # import: untouched
    show = "from stbp import backend; backend.tune_process(); print(backend.kept_freed)"
    assert run_python(show, STBP_KEEP_FREED="").stdout.split() == [str(256 << 20)]
    assert run_python(show, STBP_KEEP_FREED="0").stdout.split() == ["None"]
    assert run_python(show, STBP_KEEP_FREED=str(64 << 20)).stdout.split() == [str(64 << 20)]
    # the array code as written gets it too: it is the backend's, not the kernels'
    assert run_python(show, STBP_FUSE="0").stdout.split() == [str(256 << 20)]
    bad = run_python(show, STBP_KEEP_FREED="lots")
    assert bad.returncode != 0 and "STBP_KEEP_FREED must be a number of bytes" in bad.stderr
