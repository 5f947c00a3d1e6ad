"""Bernoulli rate encoding: statistics, shapes, determinism, bad input."""
import numpy as np
import pytest

from stbp import backend
from stbp.encode import bernoulli


def test_rates_match_probabilities():
    p = np.array([0.0, 0.05, 0.3, 0.7, 1.0])
    s = bernoulli(p, T=20_000, rng=backend.default_rng(3))
    assert s.shape == (20_000, 5) and s.dtype == np.float32
    assert set(np.unique(s).tolist()) <= {0.0, 1.0}
    rates = s.mean(0)
    assert rates[0] == 0.0 and rates[-1] == 1.0
    # 5 standard errors of a Bernoulli mean
    se = np.sqrt(p * (1 - p) / 20_000)
    assert np.all(np.abs(rates - p) <= 5 * se + 1e-12)


def test_independent_across_time_and_pixels():
    s = bernoulli(np.full((2, 50), 0.5), T=4000, rng=0)
    assert s.shape == (4000, 2, 50)
    flat = s.reshape(4000, -1)
    c = np.corrcoef(flat[:-1, 0], flat[1:, 0])[0, 1]   # lag-1 in time
    c2 = np.corrcoef(flat[:, 0], flat[:, 1])[0, 1]     # two pixels
    assert abs(c) < 0.06 and abs(c2) < 0.06


def test_same_seed_same_spikes_other_seed_differs():
    x = np.linspace(0, 1, 30).reshape(3, 10)
    a = bernoulli(x, 7, rng=backend.default_rng(11))
    b = bernoulli(x, 7, rng=backend.default_rng(11))
    c = bernoulli(x, 7, rng=backend.default_rng(12))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(bernoulli(x, 7, rng=11), a)  # an int seed is the same as a generator


def test_dtype_option():
    assert bernoulli(np.full(3, 0.5), 2, rng=0, dtype="float64").dtype == np.float64


@pytest.mark.parametrize("x, msg", [
    (np.array([0.2, 1.5]), r"\[0, 1\]"),
    (np.array([-0.1]), r"\[0, 1\]"),
    (np.array([0.1, np.nan]), r"\[0, 1\]"),
    (np.array(["a"]), "real numbers"),
])
def test_bad_intensities(x, msg):
    with pytest.raises(ValueError, match=msg):
        bernoulli(x, 5, rng=0)


@pytest.mark.parametrize("T", [0, -3, 2.5])
def test_bad_T(T):
    with pytest.raises(ValueError, match="T must be a positive integer"):
        bernoulli(np.full(3, 0.5), T, rng=0)
