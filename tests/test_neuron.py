"""The neuron of chapter 1: a trace computed by hand, and the carry factor f."""
import numpy as np
import pytest

from stbp.neuron import df, f, neuron_step
from stbp.surrogates import Rectangular, Surrogate


def test_carry_factor_values():
    assert f(0.0, 0.1) == pytest.approx(0.1)
    assert f(1.0, 0.1) == pytest.approx(0.1 * np.exp(-10))
    assert df(0.5, 0.2) == pytest.approx(-np.exp(-2.5))
    # f' is the derivative of f
    h = 1e-6
    assert (f(0.3 + h, 0.4) - f(0.3 - h, 0.4)) / (2 * h) == pytest.approx(df(0.3, 0.4), rel=1e-8)


def test_constant_input_trace_by_hand():
    # x = 0.6, tau = 0.5, v_th = 1, b = 0.1: by hand,
    # u1 = 0.7; u2 = 0.7*0.5 + 0.7 = 1.05 -> spike at t = 2;
    # u3 = 1.05 * 0.5*exp(-2) + 0.7; u4 = u3 * 0.5 + 0.7 ...
    tau, v_th, x, b = 0.5, 1.0, 0.6, 0.1
    u3 = 1.05 * 0.5 * np.exp(-2.0) + 0.7
    u4 = u3 * 0.5 + 0.7
    expected_u = [0.7, 1.05, u3, u4]
    expected_o = [0, 1, 0, float(u4 >= 1.0)]
    U, O = np.zeros(1), np.zeros(1)
    for t in range(4):
        U, O = neuron_step(U, O, np.array([x]), b, tau, v_th, Rectangular())
        assert U[0] == pytest.approx(expected_u[t], abs=1e-12)
        assert O[0] == expected_o[t]
    assert u3 == pytest.approx(0.771051, abs=1e-6)
    assert expected_o[3] == 1.0  # u4 = 1.0855 crosses again


def test_spike_at_threshold_and_dtype():
    s = Rectangular()
    x = np.array([-1e-7, 0.0, 2.0], dtype=np.float32)
    out = s.spike(x)
    assert out.dtype == np.float32
    assert out.tolist() == [0.0, 1.0, 1.0]


def test_rectangular_curve():
    s = Rectangular(0.5)
    x = np.array([-0.3, -0.2, 0.0, 0.24, 0.26])
    assert s.grad(x).tolist() == [0.0, 2.0, 2.0, 2.0, 0.0]


@pytest.mark.parametrize("a", [0.0, -1.0, float("nan")])
def test_surrogate_width_must_be_positive(a):
    with pytest.raises(ValueError, match="a must be positive"):
        Rectangular(a)


def test_base_surrogate_has_no_curve():
    with pytest.raises(NotImplementedError):
        Surrogate().grad(np.zeros(2))
