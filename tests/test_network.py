"""The network of chapter 2: shapes, dtypes, the time-batched pass, loss, bad input."""
import numpy as np
import pytest

from stbp import SNN, backend
from stbp.encode import bernoulli
from stbp.neuron import f
from stbp.surrogates import Rectangular


def plain_forward(net, spikes):
    """The seed's equations one neuron at a time, no vectorisation."""
    T, B, _ = spikes.shape
    o_prev = spikes.astype(np.float64)
    us, os_ = [], []
    for W, b in zip(net.W, net.b):
        W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
        m = W.shape[0]
        U = np.zeros((T, B, m)); O = np.zeros((T, B, m))
        for s in range(B):
            for i in range(m):
                u, o = 0.0, 0.0
                for t in range(T):
                    x = sum(W[i, j] * o_prev[t, s, j] for j in range(W.shape[1]))
                    u = u * net.tau * np.exp(-o / net.tau) + x + b[i]
                    o = 1.0 if u >= net.v_th else 0.0
                    U[t, s, i], O[t, s, i] = u, o
        us.append(U); os_.append(O)
        o_prev = O
    return us, os_


@pytest.fixture
def small():
    net = SNN([12, 9, 7, 4], tau=0.5, v_th=0.3, dtype="float64", seed=4)
    for b in net.b:                           # in place: net.b lists the layers' arrays
        b[...] = np.linspace(-0.1, 0.1, len(b))
    spikes = bernoulli(np.random.default_rng(0).uniform(0, 0.6, (3, 12)), 6, rng=1,
                       dtype="float64")
    return net, spikes


def test_shapes_and_dtypes():
    for dtype in ("float32", "float64"):
        net = SNN([784, 50, 10], tau=0.2, v_th=0.5, dtype=dtype, seed=0)
        assert [W.shape for W in net.W] == [(50, 784), (10, 50)]
        assert [b.shape for b in net.b] == [(50,), (10,)]
        assert all(W.dtype == dtype for W in net.W + net.b)
        tr = net.forward(np.zeros((5, 3, 784), dtype=np.uint8))
        assert [o.shape for o in tr.o] == [(5, 3, 784), (5, 3, 50), (5, 3, 10)]
        assert [u.shape for u in tr.u] == [(5, 3, 50), (5, 3, 10)]
        assert all(a.dtype == dtype for a in tr.u)
        assert tr.o[0].dtype == dtype                    # the input, in the model dtype
        assert all(a.dtype == bool for a in tr.o[1:])    # 0/1 spikes stored as bool
        assert net.predict(np.zeros((5, 3, 784))).dtype == dtype
        assert net.predict(np.zeros((5, 3, 784))).shape == (3, 10)


def test_smooth_outputs_are_stored_in_the_model_dtype():
    from stbp.surrogates import Smooth
    net = SNN([6, 4], tau=0.3, v_th=0.5, surrogate=Smooth(0.5), seed=0)
    tr = net.forward(np.full((3, 2, 6), 0.5))
    assert tr.o[1].dtype == np.float32 and 0 < float(tr.o[1].min()) < 1


def test_batched_forward_equals_plain_loop(small):
    net, spikes = small
    tr = net.forward(spikes)
    us, os_ = plain_forward(net, spikes)
    for n in range(3):
        np.testing.assert_allclose(tr.u[n], us[n], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(tr.o[n + 1], os_[n])
    assert tr.o[1].sum() > 0 and tr.o[3].sum() > 0, "the test network must spike"


def test_paper_init_rows_have_unit_norm_and_seed_is_deterministic():
    a = SNN([30, 20, 5], tau=0.1, v_th=1.5, seed=7, dtype="float64")
    b = SNN([30, 20, 5], tau=0.1, v_th=1.5, seed=7, dtype="float64")
    c = SNN([30, 20, 5], tau=0.1, v_th=1.5, seed=8, dtype="float64")
    for W in a.W:
        np.testing.assert_allclose(np.linalg.norm(W, axis=1), 1.0, rtol=1e-12)
    assert all(np.array_equal(x, y) for x, y in zip(a.W, b.W))
    assert not np.array_equal(a.W[0], c.W[0])
    d = SNN([400, 5], tau=0.1, v_th=1.5, seed=7, init="fan_in")
    assert np.abs(d.W[0]).max() <= 1 / 20 and np.abs(d.W[0]).max() > 0.9 / 20


def test_loss_matches_formula(small):
    net, spikes = small
    tr = net.forward(spikes)
    Y = np.eye(4)[[0, 2, 3]]
    rate = tr.o[-1].mean(0)
    assert net.loss(tr, Y) == pytest.approx(((Y - rate) ** 2).sum() / 6, rel=1e-12)
    silent = SNN([12, 4], tau=0.5, v_th=100.0, seed=0)
    assert silent.loss(silent.forward(spikes), Y) == pytest.approx(0.5)
    np.testing.assert_array_equal(net.predict(spikes), rate)


def test_single_neuron_by_hand():
    net = SNN([1, 1], tau=0.5, v_th=1.0, dtype="float64")
    net.W[0][:] = 0.6
    tr = net.forward(np.ones((3, 1, 1)))
    u = tr.u[0][:, 0, 0]
    np.testing.assert_allclose(u, [0.6, 0.9, 1.05], atol=1e-12)
    assert tr.o[1][:, 0, 0].tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("kwargs, msg", [
    (dict(sizes=[10]), "sizes"),
    (dict(sizes=[10, 0]), "sizes"),
    (dict(tau=0.0), "tau"),
    (dict(tau=-1), "tau"),
    (dict(v_th=0), "v_th"),
    (dict(v_th=float("nan")), "v_th"),
    (dict(dtype="int32"), "dtype"),
    (dict(init="zeros"), "init"),
])
def test_bad_constructor_arguments(kwargs, msg):
    args = dict(sizes=[10, 5], tau=0.2, v_th=0.5) | kwargs
    sizes = args.pop("sizes")
    with pytest.raises(ValueError, match=msg):
        SNN(sizes, **args)


@pytest.mark.parametrize("spikes, msg", [
    (np.zeros((4, 10)), r"spikes must have shape \(\?, \?, 10\); got shape \(4, 10\)"),
    (np.zeros((4, 2, 9)), r"spikes must have shape \(\?, \?, 10\); got shape \(4, 2, 9\)"),
    (np.full((4, 2, 10), np.nan), "spikes contains NaN"),
    (np.full((4, 2, 10), np.inf), "spikes contains NaN or infinite"),
    (np.zeros((4, 2, 10), dtype=complex), "real numbers"),
])
def test_bad_forward_input(spikes, msg):
    net = SNN([10, 5], tau=0.2, v_th=0.5, seed=0)
    with pytest.raises(ValueError, match=msg):
        net.forward(spikes)


def test_bad_targets():
    net = SNN([10, 5], tau=0.2, v_th=0.5, seed=0)
    tr = net.forward(np.zeros((4, 2, 10)))
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 5\); got shape \(3, 5\)"):
        net.loss(tr, np.zeros((3, 5)))


def test_a_spec_string_and_a_list_of_widths_are_the_same_network():
    import inspect

    from stbp.network import Dense
    a = SNN("784-800-10", tau=0.3, v_th=0.5, seed=4)
    b = SNN([784, 800, 10], tau=0.3, v_th=0.5, seed=4)
    c = SNN(np.array([784, 800, 10]), tau=0.3, v_th=0.5, seed=4)
    assert type(a) is type(b) is type(c) is SNN
    assert a.spec == b.spec == c.spec == "784-800-10"         # always a string
    assert a.sizes == b.sizes == [784, 800, 10] and a.input_shape == b.input_shape == (784,)
    assert [type(layer) for layer in b.layers] == [Dense, Dense]
    assert a.description() == b.description() == c.description()
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a.W[0], SNN([784, 800, 10], tau=0.3, v_th=0.5, seed=5).W[0])
    x = bernoulli(np.random.default_rng(0).uniform(0, 0.6, (3, 784)), 5, rng=1)
    ta, tb = a.forward(x), b.forward(x)
    assert sum(int(o.sum()) for o in ta.o[1:]) > 0          # the comparison is not of zeros
    for p, q in zip(ta.o + ta.u, tb.o + tb.u):
        np.testing.assert_array_equal(p, q)
    sig = inspect.signature(SNN)
    assert list(sig.parameters)[0] == "spec"
    assert sig.parameters["spec"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    for name in ("tau", "v_th"):
        assert sig.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert sig.parameters[name].default is inspect.Parameter.empty
    with pytest.raises(TypeError):
        SNN([4, 3], 0.3, 0.5)                                 # tau and v_th by name only


def test_parameters_follow_the_order_of_the_gradients():
    for spec in ("12-9-7-4", "6x6-2C3-P2-5-3"):
        net = SNN(spec, tau=0.5, v_th=0.3, dtype="float64", seed=4)
        params = net.parameters()
        assert len(params) == 2 * len(net.W)
        assert all(p is q for p, q in zip(params, [a for Wb in zip(net.W, net.b) for a in Wb]))
        x = bernoulli(np.random.default_rng(0).uniform(0, 0.6, (3, net.sizes[0])), 4, rng=1,
                      dtype="float64")
        Y = np.eye(net.sizes[-1])[[0, 1, 2]]
        flat = [g for Wb in net.gradients(net.forward(x), Y) for g in Wb]
        assert [g.shape for g in flat] == [p.shape for p in params]
        assert [g.dtype for g in flat] == [p.dtype for p in params]
        # net.W lists the layers' own arrays: an edit in place is the network's
        net.W[0][...] = 0
        assert not net.layers[0].W.any() and not net.parameters()[0].any()
