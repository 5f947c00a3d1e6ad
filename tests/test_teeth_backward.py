"""Teeth for the book's array code of chapters 1-3 (stbp/neuron.py, network.py,
backward.py), run directly: with the fused kernels on (the default), a test that only
runs default settings executes the kernels, not the array code, so these tests select
the array engine (``backend.fused = None``) or call the array functions themselves.

Each is checked against something written independently of it: finite differences of
the network's own loss (smooth spikes), a plain per-step implementation of the forward
pass and of the chain rule (0/1 spikes), or chapter 1's definitions.  tools/mutate.py
relies on them to catch small mutations of that code.
"""
import numpy as np
import pytest

from stbp import SNN, backend, engine
from stbp.backward import carry_factors, eps_from_delta, gradients
from stbp.encode import bernoulli
from stbp.gradcheck import check_gradients
from stbp.neuron import CARRIES, ON_SPIKES
from stbp.surrogates import Polynomial, Rectangular, Smooth


@pytest.fixture
def array_engine(monkeypatch):
    """The book's array code as written, whatever STBP_FUSE says."""
    monkeypatch.setattr(backend, "fused", None)
    assert backend.engine(Rectangular(1.0)) is engine.ARRAY
    assert backend.engine() is engine.ARRAY


def problem(surrogate, sizes=(7, 6, 5, 3), T=5, S=3, seed=0, tau=0.5, v_th=0.3, carry="exp"):
    """A float64 network strong enough that every layer spikes, its input and targets."""
    net = SNN(list(sizes), tau=tau, v_th=v_th, surrogate=surrogate, dtype="float64",
              seed=seed, init="fan_in", carry=carry)
    rng = np.random.default_rng(seed)
    for W, b in zip(net.W, net.b):               # the layers' own arrays, in place
        W *= 3
        b[...] = rng.uniform(-0.1, 0.1, b.shape)
    spikes = bernoulli(rng.uniform(0.2, 0.9, (S, sizes[0])), T, rng=seed + 1, dtype="float64")
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], S)]
    return net, spikes, Y


@pytest.mark.parametrize("carry", list(CARRIES))
def test_array_exact_rule_matches_finite_differences(array_engine, carry):
    net, spikes, Y = problem(Smooth(0.5), carry=carry)
    report = check_gradients(net, spikes, Y, rule="exact")
    assert set(report) == {f"{p}{k}" for k in range(3) for p in "Wb"}
    assert max(report.values()) <= 1e-6, report


def plain(net, spikes, Y):
    """The forward pass and the exact rule's gradients, one step and one layer at a time,
    with chapter 1's f and f' (CARRIES) on the spikes as floats: the trace (u, o) and
    [(dW, db)].  E^t = spatial^t g'(U^t) + E^{t+1} (f(O^t) + U^t f'(O^t) g'(U^t))."""
    tau, v_th, s = net.tau, net.v_th, net.surrogate
    f, df = CARRIES[net.carry]
    T, B = spikes.shape[:2]
    o, u = [np.asarray(spikes, dtype=np.float64)], []
    for W, b in zip(net.W, net.b):
        U = np.zeros((T, B, len(b)))
        O = np.zeros_like(U)
        for t in range(T):
            U[t] = o[-1][t] @ W.T + b
            if t:
                U[t] += U[t - 1] * f(O[t - 1], tau)
            O[t] = s.spike(U[t] - v_th)
        u.append(U)
        o.append(O)
    rate = o[-1].mean(axis=0)
    spatial = np.broadcast_to(-(Y - rate) / (T * B), o[-1].shape)
    grads = [None] * len(net.W)
    for n in range(len(net.W) - 1, -1, -1):
        U, O = u[n], o[n + 1]
        E = np.zeros_like(U)
        for t in range(T - 1, -1, -1):
            g = s.grad(U[t] - v_th)
            E[t] = spatial[t] * g
            if t < T - 1:
                E[t] += E[t + 1] * (f(O[t], tau) + U[t] * df(O[t], tau) * g)
        grads[n] = (sum(E[t].T @ o[n][t] for t in range(T)), E.sum(axis=(0, 1)))
        spatial = np.stack([E[t] @ net.W[n] for t in range(T)])
    return u, o, grads


@pytest.mark.parametrize("surrogate", [Rectangular(1.0), Polynomial(1.3)], ids=["rect", "poly"])
@pytest.mark.parametrize("carry", list(CARRIES))
def test_array_code_on_spikes_equals_a_plain_implementation(array_engine, surrogate, carry):
    net, spikes, Y = problem(surrogate, carry=carry, T=6)
    trace = net.forward(spikes)
    u, o, want = plain(net, spikes, Y)
    for a, b in zip(trace.u, u):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(trace.o[1:], o[1:]):
        np.testing.assert_array_equal(a.astype(np.float64), b)
    assert all(0 < float(b.mean()) < 1 for b in o[1:]), "every layer must spike, not always"
    got = gradients(net, trace, Y, rule="exact")
    for (gw, gb), (ww, wb) in zip(got, want):
        assert float(np.abs(ww).max()) > 0
        np.testing.assert_allclose(gw, ww, rtol=1e-10, atol=1e-12 * float(np.abs(ww).max()))
        np.testing.assert_allclose(gb, wb, rtol=1e-10, atol=1e-12 * float(np.abs(wb).max()))


@pytest.mark.parametrize("carry", list(CARRIES))
@pytest.mark.parametrize("tau", [0.2, 0.5, 1.0])
def test_carries_on_spikes_are_the_carries_at_0_and_1(carry, tau):
    (f, df), (f01, df01) = CARRIES[carry], ON_SPIKES[carry]
    for o in (0.0, 1.0):
        assert float(f01(o, tau)) == pytest.approx(float(f(np.float64(o), tau)), rel=1e-13)
        assert float(df01(o, tau)) == pytest.approx(float(df(np.float64(o), tau)), rel=1e-13)
    F, dF = carry_factors(np.array([False, True]), tau, True, np.dtype("float64"), carry)
    np.testing.assert_allclose(F, f(np.array([0.0, 1.0]), tau), rtol=1e-13)
    np.testing.assert_allclose(dF, df(np.array([0.0, 1.0]), tau), rtol=1e-13)


@pytest.mark.parametrize("surrogate", [Rectangular(1.0), Smooth(0.5)], ids=["rect", "smooth"])
def test_kept_delta_is_the_error_of_the_outputs(array_engine, surrogate):
    """Delta (keep=True) with the exact rule is dL/dO: E^t = Delta^t g'(U^t) + E^{t+1} f(O^t)."""
    net, spikes, Y = problem(surrogate)
    trace = net.forward(spikes)
    _, kept = gradients(net, trace, Y, rule="exact", keep=True)
    for n, layer in enumerate(kept):
        D, E, U, O = layer["D"], layer["E"], trace.u[n], trace.o[n + 1]
        G = surrogate.grad(U - net.v_th)
        F, _ = carry_factors(O, net.tau, surrogate.binary, net.dtype, net.carry)
        assert float(np.abs(D[:-1] - layer["spatial"][:-1]).max()) > 0
        for t in range(len(U)):
            want = eps_from_delta(D[t], G[t], E[t + 1] if t + 1 < len(U) else None, F[t])
            np.testing.assert_allclose(E[t], want, rtol=1e-12, atol=1e-15)
