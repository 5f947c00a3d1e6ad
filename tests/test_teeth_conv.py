"""Teeth for chapter 8's array code (stbp/conv.py), run directly: im2col against its
definition written as a loop, col2im and pool_backward as the transposes of im2col and
pool_forward, and a convolutional network's gradients against finite differences with
the array engine selected (``backend.fused = None``; with the kernels on, the Numba
im2col and col2im would run instead).  tools/mutate.py relies on them."""
import numpy as np
import pytest

from stbp import SNN, backend, engine
from stbp.conv import col2im, crop_maps, im2col, pad_maps, pool_backward, pool_forward
from stbp.encode import bernoulli
from stbp.gradcheck import check_gradients
from stbp.surrogates import Smooth

SHAPES = [((2, 5, 6, 3), 3), ((3, 4, 4, 1), 2), ((1, 5, 5, 2), 5), ((2, 3, 4, 2), 1)]


def im2col_loop(A, k):
    """Row (r, p, q) holds A[r, p + i, q + j, c] in the order (i, j, c)."""
    R, H, W, C = A.shape
    Ho, Wo = H - k + 1, W - k + 1
    out = np.zeros((R, Ho, Wo, k, k, C), dtype=A.dtype)
    for r, p, q, i, j in np.ndindex(R, Ho, Wo, k, k):
        out[r, p, q, i, j] = A[r, p + i, q + j]
    return out.reshape(R * Ho * Wo, k * k * C)


@pytest.mark.parametrize("shape, k", SHAPES)
def test_im2col_is_its_definition_and_col2im_its_transpose(shape, k):
    rng = np.random.default_rng(0)
    A = rng.standard_normal(shape)
    want = im2col_loop(A, k)
    got = im2col(A, k)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    rows = rng.standard_normal(want.shape)
    back = col2im(rows, shape, k)
    assert back.shape == shape
    # <im2col(A), rows> = <A, col2im(rows)> for every A: col2im is the transpose
    basis = np.zeros(shape)
    for idx in np.ndindex(*shape):
        basis[idx] = 1.0
        assert (im2col_loop(basis, k) * rows).sum() == pytest.approx(back[idx], abs=1e-12)
        basis[idx] = 0.0


@pytest.mark.parametrize("shape, k", [((2, 4, 6, 3), 2), ((1, 6, 3, 2), 3), ((1, 2, 2, 1), 1)])
def test_pooling_and_its_transpose(shape, k):
    rng = np.random.default_rng(1)
    A = rng.standard_normal(shape)
    R, H, W, C = shape
    out = pool_forward(A, k)
    want = A.reshape(R, H // k, k, W // k, k, C).mean(axis=(2, 4))
    np.testing.assert_allclose(out, want, rtol=1e-13)
    G = rng.standard_normal(out.shape)
    back = pool_backward(G, k)
    assert back.shape == shape
    assert (out * G).sum() == pytest.approx((A * back).sum(), rel=1e-12)
    np.testing.assert_allclose(back[:, :k, :k].sum(axis=(1, 2)), G[:, 0, 0], rtol=1e-13)


def test_padding_and_its_transpose():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((2, 3, 4, 2))
    P = pad_maps(A, 2)
    assert P.shape == (2, 7, 8, 2) and P.sum() == pytest.approx(A.sum())
    np.testing.assert_array_equal(crop_maps(P, 2), A)
    G = rng.standard_normal(P.shape)
    assert (P * G).sum() == pytest.approx((A * crop_maps(G, 2)).sum(), rel=1e-12)


@pytest.mark.parametrize("spec, n_in", [("6x6-2C3-2C3-P2-3", 36), ("5x5x2-2C3p1-P1-2C3-3", 50)])
def test_array_conv_gradients_match_finite_differences(monkeypatch, spec, n_in):
    monkeypatch.setattr(backend, "fused", None)          # the array code's im2col, col2im
    assert backend.engine() is engine.ARRAY
    net = SNN(spec, tau=0.5, v_th=0.3, surrogate=Smooth(0.5), dtype="float64", seed=2)
    rng = np.random.default_rng(1)
    for b in net.b:
        b[...] = rng.uniform(-0.1, 0.1, b.shape)
    x = bernoulli(rng.uniform(0, 0.8, (3, n_in)), T=3, rng=2, dtype="float64")
    Y = np.eye(3)[[0, 1, 2]]
    report = check_gradients(net, x, Y, rule="exact")
    assert set(report) == {f"{p}{k}" for k in range(len(net.W)) for p in "Wb"}
    assert max(report.values()) <= 1e-6, report
