"""The backward pass of chapter 3: the exact rule is the gradient, the seed rule is the seed."""
import numpy as np
import pytest

import stbp.backward
from conftest import assert_engine
from stbp import SNN
from stbp.encode import bernoulli
from stbp.gradcheck import check_gradients, numerical_gradients
from stbp.surrogates import Gaussian, Rectangular, Smooth


def problem(surrogate, sizes=(9, 7, 6, 4), T=6, S=3, seed=0, tau=0.5, v_th=0.3):
    net = SNN(list(sizes), tau=tau, v_th=v_th, surrogate=surrogate, dtype="float64",
              seed=seed, init="fan_in")
    rng = np.random.default_rng(seed)
    for W in net.W:                 # in place (net.W lists the layers' arrays)
        W *= 3                      # strong enough that every layer spikes
    for b in net.b:
        b[...] = rng.uniform(-0.1, 0.1, b.shape)
    spikes = bernoulli(rng.uniform(0.2, 0.9, (S, sizes[0])), T, rng=seed + 1, dtype="float64")
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], S)]
    return net, spikes, Y


def seed_gradients_plain(net, trace, Y):
    """The seed's five cases, one time step and one case at a time, written out plainly."""
    T, S = trace.o[0].shape[:2]
    N = len(net.W)
    tau, v_th = net.tau, net.v_th
    g1 = lambda u: net.surrogate.grad(u - v_th)       # dg/du
    fo = lambda o: tau * np.exp(-o / tau)             # f(o)
    dfo = lambda o: -np.exp(-o / tau)                 # df/do
    u = [None] + trace.u                              # u[n][t], n = 1..N
    o = [a.astype(np.float64) for a in trace.o]       # o[n][t], n = 0..N (spikes may be bool)
    delta = [[None] * T for _ in range(N + 1)]
    eps = [[None] * T for _ in range(N + 1)]
    rate = o[N].mean(axis=0)
    for t in range(T - 1, -1, -1):
        for n in range(N, 0, -1):
            if t == T - 1 and n == N:                                      # case 1
                d = -(Y - rate) / (T * S)
                e = d * g1(u[n][t])
            elif t == T - 1:                                               # case 2
                d = (delta[n + 1][t] * g1(u[n + 1][t])) @ net.W[n]
                e = d * g1(u[n][t])
            elif n == N:                                                   # case 3
                d = delta[N][T - 1] + delta[N][t + 1] * u[N][t] * g1(u[N][t + 1]) * dfo(o[N][t])
                e = d * g1(u[N][t]) + eps[N][t + 1] * fo(o[N][t])
            else:                                                          # case 4
                d = ((delta[n + 1][t] * g1(u[n + 1][t])) @ net.W[n]
                     + delta[n][t + 1] * u[n][t] * g1(u[n][t + 1]) * dfo(o[n][t]))
                e = d * g1(u[n][t]) + eps[n][t + 1] * fo(o[n][t])
            delta[n][t], eps[n][t] = d, e
    grads = []
    for n in range(1, N + 1):                                              # case 5
        dW = sum(eps[n][t].T @ o[n - 1][t] for t in range(T))
        db = sum(eps[n][t].sum(axis=0) for t in range(T))
        grads.append((dW, db))
    return grads


@pytest.mark.parametrize("sizes, T, seed", [((9, 7, 6, 4), 6, 0), ((8, 6, 5, 5, 3), 7, 1)])
def test_exact_rule_matches_finite_differences_everywhere(engine, sizes, T, seed):
    net, spikes, Y = problem(Smooth(0.5), sizes=sizes, T=T, seed=seed)
    assert_engine(engine, net.surrogate)
    report = check_gradients(net, spikes, Y, rule="exact")
    assert set(report) == {f"{p}{k}" for k in range(len(sizes) - 1) for p in "Wb"}
    assert max(report.values()) <= 1e-6, report


def test_dropping_a_term_of_the_exact_rule_is_caught(engine, monkeypatch):
    """The check above can fail: the exact rule without its reset term U f'(O) g'(U)
    (the detached rule's carry) is refused, on the array engine, where the array code
    runs, and not on the fused one, whose kernels do not call it."""
    net, spikes, Y = problem(Smooth(0.5))
    assert_engine(engine, net.surrogate)
    calls = []

    def without_reset_term(spatial, U, G, F, dF):
        calls.append(1)
        return stbp.backward.carry_recurrence(spatial, G, F.copy())

    monkeypatch.setattr(stbp.backward, "layer_backward_exact", without_reset_term)
    report = check_gradients(net, spikes, Y, rule="exact", params=["W0", "b2"])
    if engine == "array":
        assert calls and report["W0"] > 1e-3, report
    else:
        assert not calls and max(report.values()) <= 1e-6, report


def test_seed_rule_is_not_the_gradient(engine):
    net, spikes, Y = problem(Smooth(0.5))
    assert_engine(engine, net.surrogate)
    report = check_gradients(net, spikes, Y, rule="seed")
    assert report["W0"] > 1e-2 and report["W1"] > 1e-2


@pytest.mark.parametrize("surrogate", [Rectangular(1.0), Gaussian(0.5), Smooth(0.5)], ids=repr)
def test_seed_rule_matches_plain_seed_implementation(engine, surrogate):
    net, spikes, Y = problem(surrogate)
    assert_engine(engine, net.surrogate)
    trace = net.forward(spikes)
    assert all(o.sum() > 0 for o in trace.o[1:]), "every layer must spike"
    got = net.gradients(trace, Y, rule="seed")
    want = seed_gradients_plain(net, trace, Y)
    for (gw, gb), (ww, wb) in zip(got, want):
        scale = max(np.abs(ww).max(), 1e-300)
        assert np.abs(gw - ww).max() <= 1e-12 * scale
        assert np.abs(gb - wb).max() <= 1e-12 * max(np.abs(wb).max(), 1e-300)
    assert np.abs(want[0][0]).max() > 0, "the check must not compare zeros"


def test_rules_agree_on_one_step_and_differ_on_many():
    net, spikes, Y = problem(Smooth(0.5), T=1)
    a = net.gradients(net.forward(spikes), Y, rule="exact")
    b = net.gradients(net.forward(spikes), Y, rule="seed")
    for (wa, ba), (wb, bb) in zip(a, b):
        np.testing.assert_allclose(wa, wb, rtol=1e-13, atol=1e-16)
    net, spikes, Y = problem(Smooth(0.5), T=6)
    a = net.gradients(net.forward(spikes), Y, rule="exact")
    b = net.gradients(net.forward(spikes), Y, rule="seed")
    assert np.linalg.norm(a[0][0] - b[0][0]) > 1e-3 * np.linalg.norm(a[0][0])


def test_gradient_shapes_dtypes_and_default_rule():
    net = SNN([20, 10, 5], tau=0.2, v_th=0.5, seed=0)
    spikes = bernoulli(np.full((4, 20), 0.5), 5, rng=0)
    trace = net.forward(spikes)
    Y = np.eye(5)[[0, 1, 2, 3]]
    grads = net.gradients(trace, Y)
    assert [(dW.shape, db.shape) for dW, db in grads] == [((10, 20), (10,)), ((5, 10), (5,))]
    assert all(dW.dtype == np.float32 and db.dtype == np.float32 for dW, db in grads)
    exact = net.gradients(trace, Y, rule="exact")
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(grads, exact))


def test_unknown_rule_and_bad_targets():
    net = SNN([4, 3], tau=0.2, v_th=0.5, seed=0)
    trace = net.forward(np.zeros((3, 2, 4)))
    with pytest.raises(ValueError, match="rule must be one of"):
        net.gradients(trace, np.zeros((2, 3)), rule="autograd")
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 3\)"):
        net.gradients(trace, np.zeros((2, 4)))


def test_checker_needs_float64_and_can_select_parameters():
    net = SNN([4, 3], tau=0.2, v_th=0.5, seed=0)
    with pytest.raises(ValueError, match="float64"):
        check_gradients(net, np.zeros((3, 2, 4)), np.zeros((2, 3)))
    net, spikes, Y = problem(Smooth(0.5))
    num = numerical_gradients(net, spikes, Y, params=["b2"])
    assert list(num) == ["b2"] and num["b2"].shape == (4,)
    exact = net.gradients(net.forward(spikes), Y)[2][1]
    np.testing.assert_allclose(num["b2"], exact, rtol=1e-6)


def test_checker_detects_a_wrong_gradient(monkeypatch):
    net, spikes, Y = problem(Smooth(0.5))
    original = net.gradients
    def off_by_a_bit(trace, targets, rule="exact", keep=False):
        grads = original(trace, targets, rule, keep)
        grads[1] = (grads[1][0] * 1.001, grads[1][1])
        return grads
    monkeypatch.setattr(net, "gradients", off_by_a_bit)
    report = check_gradients(net, spikes, Y)
    assert report["W1"] > 5e-4 and report["W0"] < 1e-6
