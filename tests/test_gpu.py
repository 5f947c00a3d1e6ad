"""Tests that need a CUDA device: the CuPy backend, with the fused CUDA kernels and
without, against the NumPy array code.

Without a device they skip, unless STBP_REQUIRE_GPU=1 (``tools/gpu_check.sh`` sets it):
then they fail.  The shapes need many thread blocks: B n is far above the 256 threads of
a block and not a multiple of it, so a wrong grid or thread index shows.  The CUDA build
does not contract multiply-adds (``--fmad=false``), so where no exp or tanh enters, the
fused kernels equal NumPy bit for bit; elsewhere CUDA's exp/tanh may differ from NumPy's
in the last bits (TOL, as in test_kernels.py).
"""
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import stbp.engine
from stbp import SNN, backend, checkpoint
from stbp.backward import layer_backward
from stbp.encode import bernoulli
from stbp.network import layer_forward
from stbp.optim import Adam
from stbp.surrogates import Gaussian, Polynomial, Rectangular, Sigmoid, Smooth
from stbp.train import fit, parameters

from conftest import gpu_problem

SURROGATES = [Rectangular(1.0), Polynomial(1.3), Sigmoid(0.7), Gaussian(0.8), Smooth(0.6)]
RULES = ["exact", "seed", "detached"]
TOL = {"float32": 1e-5, "float64": 1e-12}
B, N = 37, 71                          # B N = 2627 threads: 11 blocks, the last partly idle


@pytest.fixture(params=[True, False], ids=["fused", "unfused"])
def cupy_backend(request, gpu):
    saved = backend.xp, backend.name, backend.fused
    xp = backend.use("cupy", fuse=request.param)
    assert (backend.fused is not None) == request.param
    if request.param:
        assert isinstance(backend.fused, stbp.engine.Fused)
        assert type(backend.fused.kernels).__name__ == "CudaKernels"
    try:
        yield xp
    finally:
        backend.xp, backend.name, backend.fused = saved


def to_device(net, xp):
    """Move a network built under NumPy to the GPU: each layer of neurons' arrays."""
    for layer in net.layers:
        if layer.neurons:
            layer.W, layer.b = xp.asarray(layer.W), xp.asarray(layer.b)
    assert all(isinstance(p, xp.ndarray) for p in net.parameters())


def close(got, ref, dtype, exact_bits):
    got = backend.to_numpy(got)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    if exact_bits:
        np.testing.assert_array_equal(got, ref)
    else:
        scale = max(float(np.abs(ref.astype(float)).max()), 1e-30)
        np.testing.assert_allclose(got.astype(float), ref.astype(float), rtol=0,
                                   atol=TOL[dtype] * scale)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("T", [1, 6])
@pytest.mark.parametrize("carry", ["exp", "linear"])
def test_layers_on_gpu_match_numpy(cupy_backend, surrogate, dtype, T, carry):
    assert B * N > 256 and B * N % 256
    xp = cupy_backend
    rng = np.random.default_rng(0)
    X = rng.normal(0.35, 0.6, (T, B, N)).astype(dtype)
    b = rng.normal(0, 0.1, N).astype(dtype)
    S = rng.normal(0, 1, (T, B, N)).astype(dtype)
    net = SimpleNamespace(surrogate=surrogate, tau=0.35, v_th=0.3, dtype=np.dtype(dtype),
                          carry=carry)
    fused = backend.fused
    # the fused kernels with --fmad=false do NumPy's roundings; the array code on CuPy
    # (CuPy's own elementwise kernels) is only checked to float rounding
    exact_bits = fused is not None and type(surrogate) in (Rectangular, Polynomial)
    backend.use("numpy", fuse=False)
    U_ref, O_ref = layer_forward(X.copy(), b, 0.35, 0.3, surrogate, carry)
    O_ref = O_ref.astype(bool) if surrogate.binary else O_ref
    refs = {rule: layer_backward(S, U_ref, O_ref, net, rule)[:2] for rule in RULES}
    backend.use("cupy", fuse=fused is not None)
    engine = backend.engine(surrogate)      # what the network runs: CUDA kernels or CuPy
    assert (engine is stbp.engine.ARRAY) == (fused is None)
    U, O = engine.layer_forward(xp.asarray(X), xp.asarray(b), 0.35, 0.3, surrogate, carry)
    close(U, U_ref, dtype, exact_bits)
    close(O.astype(bool) if surrogate.binary else O, O_ref, dtype, exact_bits)
    for rule in RULES:
        E, P, _ = engine.layer_backward(xp.asarray(S), xp.asarray(U_ref), xp.asarray(O_ref),
                                        net, rule)
        close(E, refs[rule][0], dtype, exact_bits)
        close(P, refs[rule][1], dtype, exact_bits)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@pytest.mark.parametrize("T", [1, 6])
@pytest.mark.parametrize("rule", RULES)
def test_network_on_gpu_matches_numpy(cupy_backend, surrogate, T, rule):
    """A whole network in float64 (cuBLAS and OpenBLAS sum in different orders)."""
    xp, fused = cupy_backend, backend.fused is not None
    backend.use("numpy", fuse=False)
    spikes = bernoulli(np.full((B, 40), 0.3), T, rng=0, dtype="float64")
    Y = np.eye(5)[np.arange(B) % 5]
    net = SNN([40, N, 5], tau=0.3, v_th=0.4, seed=0, dtype="float64", surrogate=surrogate)
    ref_trace = net.forward(spikes)
    ref = net.gradients(ref_trace, Y, rule=rule)
    backend.use("cupy", fuse=fused)
    to_device(net, xp)
    trace = net.forward(xp.asarray(spikes))
    for a, b in zip(ref_trace.u + ref_trace.o, trace.u + trace.o):
        close(b, a, "float64", False)
    for (rw, rb), (ow, ob) in zip(ref, net.gradients(trace, xp.asarray(Y), rule=rule)):
        close(ow, rw, "float64", False)
        close(ob, rb, "float64", False)


def test_snn_built_trained_and_checkpointed_under_cupy(cupy_backend, tmp_path):
    xp = cupy_backend
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = (rng.random((90, 4, 4)) * 80).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, c, :] = 230
    net = SNN([16, 300, 3], tau=0.3, v_th=0.5, seed=1, init="fan_in")
    assert all(isinstance(W, xp.ndarray) for W in net.W)
    opt = Adam(parameters(net), lr=5e-3)
    h = fit(net, opt, (x, y), (x, y), epochs=3, T=5, batch_size=30, seed=4, progress=False)
    assert len(h.loss) == 3 and h.loss[-1] < h.loss[0]
    assert h.test_acc[-1] > 0.5
    path = tmp_path / "net.npz"
    checkpoint.save(path, net, opt)
    loaded = checkpoint.load(path)["net"]
    assert loaded.description() == net.description()
    assert all(isinstance(W, xp.ndarray) for W in loaded.W)
    for a, b in zip(parameters(net), parameters(loaded)):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    spikes = bernoulli(x[:10].reshape(10, -1) / 255, 5, rng=1)
    np.testing.assert_array_equal(backend.to_numpy(net.predict(spikes)),
                                  backend.to_numpy(loaded.predict(spikes)))


@pytest.mark.parametrize("rule", RULES)
def test_convolutional_network_on_gpu_matches_numpy(cupy_backend, rule):
    """Chapter 8's layers (padding, pooling, im2col/col2im) on the GPU, in float64."""
    xp, fused = cupy_backend, backend.fused is not None
    backend.use("numpy", fuse=False)
    spikes = bernoulli(np.random.default_rng(0).random((B, 144)), 4, rng=1, dtype="float64")
    Y = np.eye(5)[np.arange(B) % 5]
    net = SNN("12x12-4C3p1-P2-3C3-5", tau=0.3, v_th=0.4, seed=0, dtype="float64")
    ref_trace = net.forward(spikes)
    assert 0 < float(ref_trace.o[1].mean()) < 1
    ref = net.gradients(ref_trace, Y, rule=rule)
    backend.use("cupy", fuse=fused)
    to_device(net, xp)
    trace = net.forward(xp.asarray(spikes))
    for a, b in zip(ref_trace.u + ref_trace.o, trace.u + trace.o):
        close(b, a, "float64", False)
    for (rw, rb), (ow, ob) in zip(ref, net.gradients(trace, xp.asarray(Y), rule=rule)):
        close(ow, rw, "float64", False)
        close(ob, rb, "float64", False)


@pytest.mark.skipif(gpu_problem() is None, reason="this machine has a working CUDA device")
def test_required_gpu_turns_a_missing_device_into_a_failure():
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
           "-k", "snn_built"]
    skipped = subprocess.run(run, capture_output=True, text=True,
                             env={**os.environ, "STBP_REQUIRE_GPU": ""})
    assert skipped.returncode == 0 and "skipped" in skipped.stdout, skipped.stdout
    failed = subprocess.run(run, capture_output=True, text=True,
                            env={**os.environ, "STBP_REQUIRE_GPU": "1"})
    assert failed.returncode != 0 and "STBP_REQUIRE_GPU=1 but" in failed.stdout, failed.stdout
