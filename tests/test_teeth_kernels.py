"""Teeth for chapter 7's kernels (stbp/kernels/cpu.py, and the CUDA source built for the
CPU by g++): each kernel called directly, with the numbers ``stbp.engine.neuron_form``
gives it, against the book's array function called directly (never through the
engine, so that neither side is chosen by STBP_FUSE).  One case per test, so that
tools/mutate.py can run just the cases that should catch a mutation of a kernel, and
compile few kernels to do it."""

import numpy as np
import pytest

from stbp import conv, optim
from stbp.backward import RULES, layer_backward
from stbp.engine import neuron_form
from stbp.network import layer_forward
from stbp.surrogates import Gaussian, Polynomial, Rectangular, Sigmoid, Smooth

TAU, V_TH = 0.35, 0.3
SURROGATES = {"rect": Rectangular(0.8), "poly": Polynomial(1.3), "sigmoid": Sigmoid(0.7),
              "gauss": Gaussian(0.8), "smooth": Smooth(0.6)}
#: (surrogate, carry) cases: 0/1 spikes with the exp carry (f, f' picked from two values)
#: and with the affine one; real outputs with the exp carry and with the affine ones
CASES = [("rect", "exp"), ("rect", "linear"), ("poly", "exp"), ("sigmoid", "reset"),
         ("gauss", "exp"), ("smooth", "exp"), ("smooth", "linear"), ("smooth", "reset")]


def inputs(T=6, B=4, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0.35, 0.6, (T, B, n)), rng.normal(0, 0.1, n),
            rng.normal(0, 1, (T, B, n)))


def close(got, ref, exact):
    """Bit for bit where no exp or tanh enters, else to a few units in the last place."""
    assert got.shape == ref.shape and got.dtype == ref.dtype
    if exact:
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * float(np.abs(ref).max()))


def kernel_and_array(kernels, name, carry, rule):
    surrogate = SURROGATES[name]
    X, b, S = inputs()
    exact = name in ("rect", "poly") and not (carry == "exp" and not surrogate.binary)
    U_ref, O_ref = layer_forward(X.copy(), b, TAU, V_TH, surrogate, carry)
    form = neuron_form(TAU, V_TH, surrogate, carry, X.dtype)
    U, O = kernels.layer_forward(X.copy(), b, form)
    close(U, U_ref, exact)
    close(O, O_ref, exact)
    if surrogate.binary:
        assert 0.05 < float(O_ref.mean()) < 0.95
        O_ref = O_ref.astype(bool)                       # as a trace stores spikes
    neuron = dict(tau=TAU, v_th=V_TH, surrogate=surrogate, carry=carry, dtype=X.dtype)
    E_ref, P_ref, _ = layer_backward(S, U_ref, O_ref, type("Neuron", (), neuron), rule)
    E, P = kernels.layer_backward(S, U_ref, O_ref, form, rule)
    assert float(np.abs(E_ref).max()) > 0
    close(E, E_ref, exact)
    close(P, P_ref, exact)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name, carry", CASES)
def test_numba_layer_kernels_equal_the_array_code(numba_kernels, name, carry, rule):
    kernel_and_array(numba_kernels, name, carry, rule)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name, carry", [("rect", "exp"), ("poly", "linear"),
                                         ("smooth", "linear"), ("gauss", "exp")])
def test_emulated_cuda_layer_kernels_equal_the_array_code(emulated, name, carry, rule):
    kernel_and_array(emulated, name, carry, rule)


@pytest.mark.parametrize("shape, k", [((2, 5, 6, 3), 3), ((3, 4, 4, 1), 2), ((1, 5, 5, 2), 5),
                                      ((2, 9, 6, 1), 3)])
def test_numba_im2col_and_col2im_equal_the_array_code(numba_kernels, shape, k):
    rng = np.random.default_rng(3)
    A = rng.standard_normal(shape)
    rows = conv.im2col(A, k)
    np.testing.assert_array_equal(numba_kernels.im2col(A, k), rows)
    R = rng.standard_normal(rows.shape)
    np.testing.assert_array_equal(numba_kernels.col2im(R, shape, k), conv.col2im(R, shape, k))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, k", [((2, 6, 6, 3), 2), ((3, 9, 6, 1), 3), ((1, 4, 8, 15), 2)])
def test_numba_pooling_and_its_transpose_equal_the_array_code(numba_kernels, shape, k, dtype):
    rng = np.random.default_rng(4)
    A = rng.standard_normal(shape).astype(dtype)
    out = numba_kernels.pool_forward(A, k)
    assert out.dtype == A.dtype
    np.testing.assert_array_equal(out, conv.pool_forward(A, k))
    G = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_array_equal(numba_kernels.pool_backward(G, k), conv.pool_backward(G, k))


@pytest.mark.parametrize("threads", [None, 1, 2, 3])
def test_numba_block_products_are_the_array_codes_sum_in_block_order(numba_kernels,
                                                                     threads):
    rng = np.random.default_rng(7)
    As = [(rng.standard_normal((50, 3)) * 10.0 ** rng.integers(-3, 4)).astype("float32")
          for _ in range(9)]
    Bs = [rng.standard_normal((50, 4)).astype("float32") for _ in range(9)]
    want = conv.block_products(As, Bs)
    assert want.dtype == np.float32 and want.shape == (3, 4)
    np.testing.assert_array_equal(numba_kernels.block_products(As, Bs, threads), want)
    assert not np.array_equal(conv.block_products(As[::-1], Bs[::-1]), want)  # order shows
    with pytest.raises(ValueError, match="as many blocks of rows as of errors"):
        numba_kernels.block_products(As, Bs[:-1], threads)


def test_numba_block_products_use_threads_only_for_thin_products(numba_kernels,
                                                                 monkeypatch):
    from stbp.kernels import cpu
    pools = []
    monkeypatch.setattr(cpu, "_pool", lambda n: pools.append(n) or cpu.ThreadPoolExecutor(n))
    rng = np.random.default_rng(8)
    thin = [rng.random((6, 3), dtype="float32") for _ in range(3)]
    wide = [rng.random((6, 40), dtype="float32") for _ in range(3)]
    numba_kernels.block_products(thin, thin, threads=2)             # 3 x 3 entries
    assert pools == [2]
    np.testing.assert_array_equal(numba_kernels.block_products(wide, wide, threads=2),
                                  conv.block_products(wide, wide))  # 40 x 40: serial
    assert pools == [2] and 40 * 40 > numba_kernels.POOL_MAX_ENTRIES


def test_fused_engine_sends_only_listed_blocks_to_the_kernels(
        numba_kernels, monkeypatch):
    from stbp.engine import Fused
    calls = []
    monkeypatch.setattr(numba_kernels, "block_products",
                        lambda As, Bs: calls.append(len(Bs)) or conv.block_products(As, Bs))
    engine = Fused(numba_kernels)
    As = [np.ones((4, 2), "float32")] * 3
    Bs = [np.ones((4, 5), "float32")] * 3
    listed = engine.block_products(As, Bs)
    iterated = engine.block_products(As, iter(Bs))
    assert calls == [3]                                # only the list went to the kernels
    np.testing.assert_array_equal(listed, iterated)
    np.testing.assert_array_equal(listed, np.full((2, 5), 12.0, "float32"))


def test_conv_keeps_its_windows_only_for_equal_maps():
    from stbp.network import SNN
    net = SNN("6x6-2C3-P2-3", tau=0.5, v_th=0.5, seed=0, dtype="float64")
    layer = net.layers[0]
    A = np.random.default_rng(5).random((4, 6, 6, 1))
    layer.forward(A)
    kept = layer.kept[1]
    assert layer.kept_windows(A.copy()) is kept        # equal maps: the kept rows
    assert layer.kept is None                           # handed out once
    layer.forward(A)
    B = A.copy()
    B[0, 0, 0, 0] += 1.0
    assert layer.kept_windows(B) is None                # other maps: recomputed
    layer.KEEP_BYTES = 0
    layer.forward(A)
    assert layer.kept is None                           # over the budget: nothing kept


def adam_by_the_book(p, g_steps, lr, beta1, beta2, eps):
    """Kingma and Ba's Algorithm 1, written out."""
    p, m, s = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for k, g in enumerate(g_steps, start=1):
        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * g * g
        p = p - lr * (m / (1 - beta1 ** k)) / (np.sqrt(s / (1 - beta2 ** k)) + eps)
    return p


@pytest.mark.parametrize("which", ["array", "numba"])
def test_adam_is_the_papers_algorithm(numba_kernels, which):
    rng = np.random.default_rng(4)
    p0 = rng.normal(0, 1, (5, 3))
    g_steps = [rng.normal(0, 1, p0.shape) for _ in range(4)]
    lr, beta1, beta2, eps = 3e-3, 0.8, 0.9, 1e-3
    update = optim.adam_update if which == "array" else numba_kernels.adam
    p, m, s = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for k, g in enumerate(g_steps, start=1):
        update(p, m, s, g, lr, beta1, beta2, eps, k)
    np.testing.assert_allclose(p, adam_by_the_book(p0, g_steps, lr, beta1, beta2, eps),
                               rtol=1e-12, atol=1e-15)
    assert float(np.abs(p - p0).max()) > 1e-3


@pytest.mark.parametrize("which", ["array", "numba"])
def test_sgd_is_momentum_sgd(numba_kernels, which):
    rng = np.random.default_rng(5)
    p0 = rng.normal(0, 1, 7)
    g_steps = [rng.normal(0, 1, p0.shape) for _ in range(3)]
    update = optim.sgd_update if which == "array" else numba_kernels.sgd
    p, v = p0.copy(), np.zeros_like(p0)
    want, w = p0.copy(), np.zeros_like(p0)
    for g in g_steps:
        update(p, v, g, 0.05, 0.9)
        w = 0.9 * w + g
        want = want - 0.05 * w
    np.testing.assert_allclose(p, want, rtol=1e-13)


def pooled_inputs(maps, k, T=3, B=4, seed=5, dtype="float64"):
    """X, b for a layer of maps (H, W, C) and G, the errors of the k x k pooling above."""
    rng = np.random.default_rng(seed)
    H, W, C = maps
    n = H * W * C
    G = rng.normal(0, 1, (T * B, H // k, W // k, C)) * 10.0 ** rng.integers(-3, 4, C)
    return (rng.normal(0.35, 0.6, (T, B, n)).astype(dtype),
            rng.normal(0, 0.1, n).astype(dtype), G.astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("maps, k", [((4, 6, 3), 2), ((6, 6, 1), 3), ((2, 4, 5), 2)])
def test_numba_layer_forward_pooled_equals_the_array_code(numba_kernels, maps, k, dtype):
    X, b, _ = pooled_inputs(maps, k, dtype=dtype)
    surrogate = SURROGATES["rect"]
    U_ref, O_ref, A_ref = conv.layer_forward_pooled(X.copy(), b, TAU, V_TH, surrogate,
                                                    "exp", maps, k)
    assert 0.05 < float(O_ref.mean()) < 0.95
    form = neuron_form(TAU, V_TH, surrogate, "exp", X.dtype)
    U, O, A = numba_kernels.layer_forward_pooled(X.copy(), b, form, maps, k)
    np.testing.assert_array_equal(U, U_ref)
    assert O.dtype == np.bool_                        # as the trace stores spikes
    np.testing.assert_array_equal(O, O_ref.astype(bool))
    assert A.dtype == A_ref.dtype and A.shape == A_ref.shape
    np.testing.assert_array_equal(A, A_ref)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name, carry", [("rect", "exp"), ("rect", "linear"),
                                         ("smooth", "exp"), ("poly", "reset")])
def test_numba_layer_backward_pooled_equals_the_array_code(numba_kernels, name, carry,
                                                           rule):
    maps, k = (4, 6, 3), 2
    X, b, G = pooled_inputs(maps, k)
    surrogate = SURROGATES[name]
    U, O = layer_forward(X.copy(), b, TAU, V_TH, surrogate, carry)
    O = O.astype(bool) if surrogate.binary else O
    neuron = type("Neuron", (), dict(tau=TAU, v_th=V_TH, surrogate=surrogate, carry=carry,
                                     dtype=X.dtype))
    E_ref, P_ref, _ = conv.layer_backward_pooled(G, U, O, neuron, rule, k)
    form = neuron_form(TAU, V_TH, surrogate, carry, X.dtype)
    E, P = numba_kernels.layer_backward_pooled(G, U, O, form, rule, k)
    assert float(np.abs(E_ref).max()) > 0
    exact = name in ("rect", "poly") and not (carry == "exp" and not surrogate.binary)
    close(E, E_ref, exact)
    close(P, P_ref, exact)


def test_numba_pooled_kernels_refuse_what_they_cannot_run(numba_kernels):
    X, b, G = pooled_inputs((4, 6, 3), 2)
    rect = neuron_form(TAU, V_TH, SURROGATES["rect"], "exp", X.dtype)
    smooth = neuron_form(TAU, V_TH, SURROGATES["smooth"], "exp", X.dtype)
    with pytest.raises(ValueError, match="0/1 spikes"):
        numba_kernels.layer_forward_pooled(X, b, smooth, (4, 6, 3), 2)
    with pytest.raises(ValueError, match=r"maps \(4, 5, 3\)"):
        numba_kernels.layer_forward_pooled(X, b, rect, (4, 5, 3), 2)
    with pytest.raises(ValueError, match=r"maps \(4, 6, 3\) .* k = 4"):
        numba_kernels.layer_forward_pooled(X, b, rect, (4, 6, 3), 4)
    U, O = layer_forward(X.copy(), b, TAU, V_TH, SURROGATES["rect"], "exp")
    with pytest.raises(ValueError, match="G must hold"):
        numba_kernels.layer_backward_pooled(G[:-1], U, O.astype(bool), rect, "exact", 2)
    with pytest.raises(ValueError, match="G must hold"):
        numba_kernels.layer_backward_pooled(G, U, O.astype(bool), rect, "exact", 3)
