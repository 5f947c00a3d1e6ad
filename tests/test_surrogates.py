"""The paper's four surrogate curves (chapter 4) and the smooth spike (chapter 3)."""
import numpy as np
import pytest

from stbp.surrogates import CURVES, Gaussian, Polynomial, Rectangular, Sigmoid, Smooth

DX = 2.0 ** -14                                   # exact in binary: the grid is symmetric
X = np.arange(-60 * 2 ** 14, 60 * 2 ** 14 + 1) * DX
PEAKS = {Rectangular: lambda a: 1 / a, Polynomial: lambda a: np.sqrt(a) / 2,
         Sigmoid: lambda a: 1 / (4 * a), Gaussian: lambda a: 1 / np.sqrt(2 * np.pi * a)}


@pytest.mark.parametrize("cls", list(CURVES.values()), ids=list(CURVES))
@pytest.mark.parametrize("a", [0.3, 1.0, 2.5])
def test_area_symmetry_peak(cls, a):
    h = cls(a).grad(X)
    assert h.sum() * DX == pytest.approx(1.0, abs=2e-4)
    np.testing.assert_allclose(h, h[::-1], rtol=0, atol=1e-12)
    assert h[len(X) // 2] == pytest.approx(PEAKS[cls](a), rel=1e-9)
    assert h.max() == pytest.approx(PEAKS[cls](a), rel=1e-9)
    assert (h >= 0).all()


def test_curve_formulas_at_points():
    x = np.array([0.3, 1.9, 2.1])
    np.testing.assert_allclose(Polynomial(1.0).grad(x), [0.5 - 0.075, 0.5 - 0.475, 0.0])
    np.testing.assert_allclose(Sigmoid(2.0).grad(x), np.exp(-x / 2) / 2 / (1 + np.exp(-x / 2)) ** 2)
    np.testing.assert_allclose(Gaussian(0.5).grad(x), np.exp(-x ** 2) / np.sqrt(np.pi))
    np.testing.assert_allclose(Rectangular(4.0).grad(x), [0.25, 0.25, 0.0])


@pytest.mark.parametrize("cls", list(CURVES.values()) + [Smooth])
def test_forward_is_the_step_and_keeps_dtype(cls):
    x = np.array([-0.5, 0.0, 0.5], dtype=np.float32)
    if cls is Smooth:
        np.testing.assert_allclose(cls(0.1).spike(x), 1 / (1 + np.exp(-x / 0.1)), rtol=1e-6)
    else:
        assert cls(1.0).spike(x).tolist() == [0.0, 1.0, 1.0]
    assert cls(1.0).grad(x).dtype == np.float32


@pytest.mark.parametrize("cls", list(CURVES.values()) + [Smooth])
@pytest.mark.parametrize("a", [0, -0.5, float("nan"), float("-inf")])
def test_non_positive_width_is_an_error(cls, a):
    with pytest.raises(ValueError, match="a must be positive"):
        cls(a)


def test_smooth_grad_is_the_derivative_of_its_spike():
    s, h = Smooth(0.3), 1e-6
    x = np.linspace(-2, 2, 41)
    np.testing.assert_allclose(s.grad(x), (s.spike(x + h) - s.spike(x - h)) / (2 * h), rtol=1e-7)
    np.testing.assert_allclose(s.grad(x), Sigmoid(0.3).grad(x), rtol=1e-12)
