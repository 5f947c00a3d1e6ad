"""The carry functions of chapter 1 and the detached rule of chapter 3.

Each rule is checked against finite differences of its own smooth forward graph: the
exact rule with either carry against the network itself (logistic spikes), and the
detached rule against a forward pass whose carry factors f(O) are frozen at the values
of the unperturbed run.
"""
import numpy as np
import pytest

from stbp import SNN
from stbp.backward import RULES
from stbp.encode import bernoulli
from stbp.gradcheck import check_gradients
from stbp.neuron import CARRIES, df, df_linear, f, f01
from stbp.surrogates import Gaussian, Rectangular, Smooth

from test_backward import problem


def test_carries_agree_on_spikes_and_differ_in_slope():
    tau = 0.2
    for carry in ("exp", "linear"):
        fc, dfc = CARRIES[carry]
        assert float(fc(0.0, tau)) == pytest.approx(tau, rel=1e-15)
        assert float(fc(1.0, tau)) == pytest.approx(tau * np.exp(-1 / tau), rel=1e-12)
    assert float(df(0.0, tau)) == -1.0
    assert float(df(1.0, tau)) == pytest.approx(-np.exp(-1 / tau))
    slope = tau * np.exp(-1 / tau) - tau
    o = np.linspace(0, 1, 5)
    np.testing.assert_allclose(df_linear(o, tau), np.full(5, slope))
    np.testing.assert_allclose(f01(o, tau), tau + slope * o)
    assert np.all(f(o[1:-1], tau) < f01(o[1:-1], tau))   # exp is convex: below its chord


@pytest.mark.parametrize("surrogate", [Rectangular(1.0), Gaussian(0.5)], ids=repr)
def test_carries_give_identical_forward_passes_on_spikes(surrogate):
    runs = []
    for carry in ("exp", "linear"):
        net, spikes, Y = problem(surrogate)
        net.carry = carry
        runs.append(net.forward(spikes))
    for a, b in zip(runs[0].u + runs[0].o, runs[1].u + runs[1].o):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("carry", list(CARRIES))
def test_exact_rule_matches_finite_differences_for_each_carry(carry):
    net, spikes, Y = problem(Smooth(0.4), sizes=(6, 5, 4, 3), T=5)
    net.carry = carry
    report = check_gradients(net, spikes, Y, rule="exact")
    assert max(report.values()) < 1e-6, report


def forward_frozen(net, spikes, frozen):
    """net's forward pass with the carry factor of layer n at step t fixed to frozen[n][t]."""
    o, T = spikes, spikes.shape[0]
    for W, b, F in zip(net.W, net.b, frozen):
        X = np.einsum("tbi,ji->tbj", o, W) + b
        U, O = np.empty_like(X), np.empty_like(X)
        for t in range(T):
            U[t] = X[t] + (U[t - 1] * F[t - 1] if t else 0)
            O[t] = net.surrogate.spike(U[t] - net.v_th)
        o = O
    return o


@pytest.mark.parametrize("carry", list(CARRIES))
def test_detached_rule_is_the_gradient_of_the_frozen_carry_graph(carry):
    net, spikes, Y = problem(Smooth(0.4), sizes=(6, 5, 4, 3), T=5)
    net.carry = carry
    trace = net.forward(spikes)
    fc = CARRIES[carry][0]
    frozen = [fc(O, net.tau) for O in trace.o[1:]]

    def loss():
        rate = forward_frozen(net, spikes, frozen).mean(axis=0)
        return float(((Y - rate) ** 2).sum() / (2 * Y.shape[0]))

    assert loss() == pytest.approx(net.loss(trace, Y), rel=1e-12)   # same forward values
    grads = net.gradients(trace, Y, rule="detached")
    h = 1e-5
    worst = 0.0
    for k, (dW, db) in enumerate(grads):
        for arr, grad in ((net.W[k], dW), (net.b[k], db)):
            flat, gflat = arr.reshape(-1), grad.reshape(-1)
            for i in range(flat.size):
                keep = flat[i]
                flat[i] = keep + h
                up = loss()
                flat[i] = keep - h
                down = loss()
                flat[i] = keep
                num = (up - down) / (2 * h)
                worst = max(worst, abs(num - gflat[i]) / max(abs(num), abs(gflat[i]), 1e-8))
    assert worst < 1e-6
    # ... and it is not the exact gradient of the network itself
    exact = net.gradients(trace, Y, rule="exact")
    assert not np.allclose(exact[0][0], grads[0][0], rtol=1e-3)


@pytest.mark.parametrize("surrogate", [Rectangular(1.0), Gaussian(0.5)], ids=repr)
def test_rules_and_carries_give_different_gradients_on_spikes(surrogate):
    net, spikes, Y = problem(surrogate)
    trace = net.forward(spikes)
    results = {}
    for carry in ("exp", "linear"):              # the carries that share this forward pass
        net.carry = carry
        for rule in RULES:
            results[rule, carry] = net.gradients(trace, Y, rule=rule)[0][0]
    # detached does not use f': the carry does not matter for it
    np.testing.assert_array_equal(results["detached", "exp"], results["detached", "linear"])
    for a, b in [(("exact", "exp"), ("exact", "linear")), (("exact", "exp"), ("detached", "exp")),
                 (("seed", "exp"), ("exact", "exp"))]:
        assert not np.allclose(results[a], results[b], rtol=1e-3), (a, b)


def test_unknown_carry_and_rule_are_named():
    with pytest.raises(ValueError, match="carry"):
        SNN([3, 2], tau=0.5, v_th=0.5, carry="cubic")
    net = SNN([3, 2], tau=0.5, v_th=0.5, seed=0)
    trace = net.forward(bernoulli(np.full((2, 3), 0.5), 3, rng=0))
    with pytest.raises(ValueError, match="rule"):
        net.gradients(trace, np.eye(2), rule="bptt")
