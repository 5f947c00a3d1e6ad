"""The authors' carry f(o) = tau (1 - o) (carry="reset", chapter 1): its values, the
forward pass it gives (their update mem * decay * (1 - spike) + input), and the traces
a network with it accepts.  Its finite-difference checks run with every carry in
test_rules.py and, on convolutions, in test_padding.py; its kernels in
test_kernels.py."""
import numpy as np
import pytest

from stbp import SNN, backend
from stbp.encode import bernoulli
from stbp.neuron import CARRIES, ON_SPIKES, df_reset, f_reset, same_on_spikes
from stbp.surrogates import Rectangular


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reset_carry_values(dtype):
    tau = 0.2
    o = np.array([0, 1], dtype=dtype)
    # the leak without a spike, exactly 0 after one
    assert f_reset(o, tau).tolist() == [np.dtype(dtype).type(tau), 0.0]
    assert f_reset(o, tau).dtype == df_reset(o, tau).dtype == np.dtype(dtype)
    assert np.all(df_reset(np.linspace(0, 1, 5), tau) == -tau)
    assert CARRIES["reset"] == ON_SPIKES["reset"] == (f_reset, df_reset)
    # tau - tau o is tau (1 - o): equal in exact arithmetic, within a rounding in floats
    r = np.random.default_rng(0).random(1000)
    np.testing.assert_allclose(f_reset(r, tau), tau * (1 - r), rtol=0, atol=1e-16)


def test_which_carries_share_the_spikes():
    assert same_on_spikes("exp", "linear", 0.2) and same_on_spikes("linear", "exp", 0.7)
    assert not same_on_spikes("exp", "reset", 0.2)
    assert not same_on_spikes("reset", "linear", 0.2)


def authors_forward(spikes, W, b, tau, v_th):
    """Their mem_update, layer by layer: mem = mem * decay * (1 - spike) + W x + b."""
    below = spikes
    for W_n, b_n in zip(W, b):
        mem = np.zeros((below.shape[1], W_n.shape[0]), W_n.dtype)
        spike = np.zeros_like(mem)
        out = []
        for t in range(below.shape[0]):
            mem = mem * tau * (1 - spike) + (below[t] @ W_n.T + b_n)
            spike = (mem >= v_th).astype(mem.dtype)
            out.append(spike)
        below = np.stack(out)
    return below


@pytest.mark.parametrize("fuse", [False, True])
def test_reset_carry_is_the_authors_update(monkeypatch, fuse):
    if not fuse:
        monkeypatch.setattr(backend, "fused", None)       # the array code as written
    net = SNN([30, 20, 10], tau=0.2, v_th=0.5, dtype="float64", seed=3, carry="reset")
    for b in net.b:                               # in place: the layers' own arrays
        b[...] = 0.1
    x = bernoulli(np.random.default_rng(1).random((8, 30)), T=12, rng=2,
                  dtype="float64")
    trace = net.forward(x)
    theirs = authors_forward(x, net.W, net.b, 0.2, 0.5)
    np.testing.assert_array_equal(trace.o[-1], theirs)
    # ... which the exp carry's soft reset does not give
    soft = SNN([30, 20, 10], tau=0.2, v_th=0.5, dtype="float64", seed=3)
    for mine, theirs_b in zip(soft.b, net.b):
        mine[...] = theirs_b
    assert any(not np.array_equal(a, b) for a, b in zip(soft.forward(x).u, trace.u))


def test_a_trace_of_other_spikes_is_refused():
    x = bernoulli(np.full((2, 6), 0.6), T=4, rng=0)
    Y = np.eye(3)[[0, 1]]

    def net(carry):
        return SNN([6, 3], tau=0.3, v_th=0.4, seed=0, carry=carry,
                   surrogate=Rectangular(1.0))

    def conv(carry):
        return SNN("3x2-2C2-3", tau=0.3, v_th=0.4, seed=0, carry=carry)

    for make in (net, conv):
        make("linear").gradients(make("exp").forward(x), Y)  # the same spikes: accepted
        for made, used in (("exp", "reset"), ("reset", "linear")):
            words = f"carry {made!r} \\(this network: {used!r}\\)"
            with pytest.raises(ValueError, match=words):
                make(used).gradients(make(made).forward(x), Y)
