"""The fused kernels (chapter 7) against the array code of chapters 2 and 3.

CI has no GPU, so the kernels' per-thread functions are compiled for the CPU with g++
(the same source CuPy compiles with NVRTC) and plugged into the NumPy backend; every
forward pass and exact gradient must then match the array code.  Where nvcc exists, the
CUDA source is also compiled to PTX, which needs no GPU.
"""
import shutil
import subprocess

import numpy as np
import pytest

from stbp import SNN, backend, kernels
from stbp.backward import gradients
from stbp.encode import bernoulli
from stbp.optim import Adam
from stbp.surrogates import Gaussian, Polynomial, Rectangular, Sigmoid, Smooth, Surrogate
from stbp.train import fit, parameters

SURROGATES = [Rectangular(1.0), Rectangular(0.4), Polynomial(1.3), Sigmoid(0.7),
              Gaussian(0.8), Smooth(0.6)]


@pytest.fixture(scope="module")
def cpu_kernels(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot build the kernels for the CPU")
    return kernels.cpu(folder=str(tmp_path_factory.mktemp("kernels")))


def forward_and_gradients(surrogate, dtype, T=7):
    net = SNN([15, 11, 9, 4], tau=0.35, v_th=0.3, surrogate=surrogate, dtype=dtype, seed=2,
              init="fan_in")
    rng = np.random.default_rng(5)
    net.b = [rng.normal(0, 0.1, b.shape).astype(dtype) for b in net.b]   # biases count too
    trace = net.forward(bernoulli(rng.random((6, 15)), T, rng=3, dtype=dtype))
    targets = np.eye(4)[[0, 1, 2, 3, 1, 2]]
    return trace, net.gradients(trace, targets)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_fused_kernels_match_the_array_code(cpu_kernels, monkeypatch, surrogate, dtype, tol):
    ref_trace, ref_grads = forward_and_gradients(surrogate, dtype)
    monkeypatch.setattr(backend, "fused", cpu_kernels)
    trace, grads = forward_and_gradients(surrogate, dtype)
    for a, b in zip(ref_trace.u + ref_trace.o, trace.u + trace.o):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(b.astype(float), a.astype(float), rtol=tol, atol=tol)
    # the spikes are not all silent or all firing: the comparison means something
    rate = float(ref_trace.o[1].mean())
    assert 0.05 < rate < 0.95
    for (dW, db), (rW, rb) in zip(grads, ref_grads):
        scale = max(float(np.abs(rW).max()), 1e-30)
        np.testing.assert_allclose(dW, rW, rtol=0, atol=tol * scale)
        np.testing.assert_allclose(db, rb, rtol=0, atol=tol * max(float(np.abs(rb).max()), 1e-30))
    assert any(float(np.abs(dW).max()) > 0 for dW, _ in grads)


def test_a_training_run_with_fused_kernels_matches(cpu_kernels, monkeypatch):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = (rng.random((90, 4, 4)) * 80).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, c, :] = 230
    runs = []
    for fused in (None, cpu_kernels):
        monkeypatch.setattr(backend, "fused", fused)
        net = SNN([16, 12, 3], tau=0.3, v_th=0.5, surrogate=Rectangular(1.0), seed=1,
                  dtype="float64", init="fan_in")
        h = fit(net, Adam(parameters(net), lr=5e-3), (x, y), (x, y), epochs=2, T=5,
                batch_size=30, seed=4, progress=False)
        runs.append((h, parameters(net)))
    (h0, p0), (h1, p1) = runs
    assert h1.test_acc == h0.test_acc and h1.loss == pytest.approx(h0.loss, rel=1e-10)
    for a, b in zip(p0, p1):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


class Recording(kernels.Kernels):
    def __init__(self):
        self.calls = []
        super().__init__(lambda name, *args: self.calls.append(name))


def test_seed_rule_keep_and_unknown_surrogates_use_the_array_code(monkeypatch):
    recorder = Recording()
    monkeypatch.setattr(backend, "fused", recorder)

    class Custom(Rectangular):     # a curve the kernels do not know
        pass

    assert backend.fused_for(Custom(1.0)) is None
    assert backend.fused_for(Rectangular(1.0)) is recorder
    monkeypatch.setattr(backend, "fused", None)
    ref = forward_and_gradients(Custom(1.0), "float64")
    monkeypatch.setattr(backend, "fused", recorder)
    got = forward_and_gradients(Custom(1.0), "float64")
    assert recorder.calls == []
    for (a, _), (b, _) in zip(ref[1], got[1]):
        np.testing.assert_array_equal(a, b)
    net = SNN([5, 3], tau=0.3, v_th=0.2, seed=0)
    monkeypatch.setattr(backend, "fused", None)
    trace = net.forward(bernoulli(np.full((2, 5), 0.5), 4, rng=0))
    monkeypatch.setattr(backend, "fused", recorder)
    net.gradients(trace, np.eye(3)[[0, 1]], rule="seed")
    gradients(net, trace, np.eye(3)[[0, 1]], rule="exact", keep=True)
    assert recorder.calls == []
    net.gradients(trace, np.eye(3)[[0, 1]], rule="exact")
    assert recorder.calls == ["layer_backward"]


def test_kernels_refuse_other_dtypes(cpu_kernels):
    X = np.zeros((3, 2, 4), dtype=np.float16)
    with pytest.raises(ValueError, match="float32 or float64 arrays, got float16"):
        cpu_kernels.layer_forward(X, np.zeros(4, np.float16), 0.3, 0.5, Rectangular(1.0))
    with pytest.raises(ValueError, match="no kernel source"):
        kernels.source("opencl", "float")


def test_numpy_backend_has_no_fused_kernels():
    assert backend.use("numpy") is np and backend.fused is None
    assert backend.fused_for(Rectangular(1.0)) is None


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found")
@pytest.mark.parametrize("real", ["float", "double"])
def test_cuda_source_compiles(tmp_path, real):
    src = tmp_path / f"k_{real}.cu"
    src.write_text(kernels.source("cuda", real))
    done = subprocess.run(["nvcc", "--ptx", "-o", str(tmp_path / "k.ptx"), str(src)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ptx = (tmp_path / "k.ptx").read_text()
    assert ".entry layer_forward" in ptx and ".entry layer_backward" in ptx


def test_every_surrogate_curve_has_a_kernel_id():
    import stbp.surrogates as s
    known = {c for c in vars(s).values()
             if isinstance(c, type) and issubclass(c, Surrogate) and c is not Surrogate}
    assert known == set(kernels.CURVE_IDS)
