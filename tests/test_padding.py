"""Padded convolutions (chapter 8, tokens cCkpP) and the authors' carry on them: spec
parsing (its errors: test_conv.py), the forward pass against loops, the transposes,
finite differences, and the fused kernels against the array code."""
import shutil

import numpy as np
import pytest

from stbp import SNN, backend
from stbp.conv import col2im, crop_maps, im2col, pad_maps
from stbp.engine import ARRAY, Fused
from stbp.encode import bernoulli
from stbp.gradcheck import check_gradients
from stbp.kernels.cpu import NumbaKernels
from stbp.spec import parse_spec
from stbp.surrogates import Rectangular, Smooth

AUTHORS = "28x28-32C3p1-P2-32C3p1-P2-128-10"


def test_parse_the_authors_network():
    layers = parse_spec(AUTHORS)
    assert [layer["shape"] for layer in layers] == [(28, 28, 1), (28, 28, 32), (14, 14, 32),
                                                    (14, 14, 32), (7, 7, 32), (128,), (10,)]
    assert [layer["pad"] for layer in layers] == [None, 1, None, 1, None, None, None]
    net = SNN(AUTHORS, tau=0.2, v_th=0.5, seed=0, carry="reset")
    assert [W.shape for W in net.W] == [(32, 3, 3, 1), (32, 3, 3, 32), (128, 1568), (10, 128)]
    assert net.sizes == [784, 25088, 6272, 128, 10]


def test_unpadded_tokens_are_unchanged():
    assert [layer["pad"] for layer in parse_spec("28x28-15C5-P2-10")] == [None, 0, None, None]
    a = SNN("8x8-3C3-P2-4", tau=0.3, v_th=0.4, seed=1)
    b = SNN("8x8-3C3p0-P2-4", tau=0.3, v_th=0.4, seed=1)
    x = bernoulli(np.random.default_rng(0).random((3, 64)), T=4, rng=1)
    for u, v in zip(a.forward(x).u, b.forward(x).u):
        np.testing.assert_array_equal(u, v)


def test_padded_forward_equals_the_loops():
    net = SNN("5x4x2-3C3p1-2", tau=0.4, v_th=0.3, dtype="float64", seed=1)
    x = bernoulli(np.random.default_rng(2).random((2, 2, 5, 4)), T=3, rng=3,
                  dtype="float64")
    trace = net.forward(x)
    X = np.zeros((2, 5, 4, 3))                        # eq-conv on the padded maps
    for s, p, q, c in np.ndindex(*X.shape):
        X[s, p, q, c] = sum(net.W[0][c, i, j, c2] * x[0, s, c2, p + i - 1, q + j - 1]
                            for i in range(3) for j in range(3) for c2 in range(2)
                            if 0 <= p + i - 1 < 5 and 0 <= q + j - 1 < 4)
    np.testing.assert_allclose(trace.u[0][0], X.reshape(2, -1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [0, 1, 2])
def test_crop_after_col2im_is_the_transpose_of_im2col_after_padding(p):
    rng = np.random.default_rng(p)
    A = rng.standard_normal((2, 6, 5, 3))
    rows = im2col(pad_maps(A, p), 3)
    R = rng.standard_normal(rows.shape)
    back = crop_maps(col2im(R, (2, 6 + 2 * p, 5 + 2 * p, 3), 3), p)
    assert back.shape == A.shape
    assert np.isclose((rows * R).sum(), (A * back).sum(), rtol=1e-12)
    np.testing.assert_array_equal(crop_maps(pad_maps(A, p), p), A)


@pytest.mark.parametrize("spec, n_in", [("6x6-2C3p1-P2-3", 36),
                                        ("6x6x2-3C3p1-2C3p2-P2-4-3", 72)])
@pytest.mark.parametrize("carry", ["exp", "reset"])
def test_exact_rule_matches_finite_differences_with_padding(spec, n_in, carry):
    net = SNN(spec, tau=0.5, v_th=0.3, surrogate=Smooth(0.5), dtype="float64", seed=2,
              carry=carry)
    rng = np.random.default_rng(1)
    x = bernoulli(rng.uniform(0, 0.8, (4, n_in)), T=3, rng=2, dtype="float64")
    report = check_gradients(net, x, np.eye(3)[[0, 1, 2, 1]], rule="exact")
    assert set(report) == {f"{p}{k}" for k in range(len(net.W)) for p in "Wb"}
    assert max(report.values()) <= 1e-6, report


def test_fused_kernels_equal_the_array_code_on_the_authors_layers(monkeypatch):
    from stbp.kernels.cuda import EmulatedKernels
    net = SNN("12x12-4C3p1-P2-3C3p1-P2-6-5", tau=0.2, v_th=0.5, seed=0, carry="reset",
              surrogate=Rectangular(1.0))
    x = bernoulli(np.random.default_rng(0).random((3, 144)), T=6, rng=1)
    Y = np.eye(5, dtype="float32")[[0, 3, 4]]
    monkeypatch.setattr(backend, "fused", None)           # the array code as written
    assert backend.engine(net.surrogate) is ARRAY
    plain = net.forward(x)
    assert 0 < float(plain.o[-2].mean()) < 1
    g_plain = net.gradients(plain, Y)
    kernels = [NumbaKernels(np)]
    if shutil.which("g++"):
        kernels.append(EmulatedKernels(np))
    for fused_kernels in kernels:
        monkeypatch.setattr(backend, "fused", Fused(fused_kernels))
        assert backend.engine(net.surrogate).kernels is fused_kernels
        fused = net.forward(x)
        for a, b in zip(plain.o + plain.u, fused.o + fused.u):
            np.testing.assert_array_equal(a, b)
        for gp, gf in zip(g_plain, net.gradients(fused, Y)):
            for a, b in zip(gp, gf):
                np.testing.assert_array_equal(a, b)      # rectangular: bit for bit
