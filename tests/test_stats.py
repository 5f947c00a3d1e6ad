"""stbp.stats: the 95 % intervals and differences that chapter 5 sets beside the
paper."""
import math

import pytest

from stbp import stats


def test_interval_adds_binomial_error_and_seed_spread():
    mean, half = stats.interval([0.9847, 0.9842, 0.9852], 10_000)
    assert mean == pytest.approx(0.9847)
    s2 = ((0.0) ** 2 + 0.0005 ** 2 + 0.0005 ** 2) / 2
    assert half == pytest.approx(1.959964 * math.sqrt(0.9847 * 0.0153 / 1e4 + s2 / 3))
    # one run: the binomial error alone
    binomial = 1.959964 * math.sqrt(0.99 * 0.01 / 1e4)
    assert stats.interval([0.99], 10_000)[1] == pytest.approx(binomial)
    # more digits, a narrower interval; more spread, a wider one
    assert stats.interval([0.99], 40_000)[1] == pytest.approx(binomial / 2)
    spread = stats.interval([0.98, 0.99], 10_000)[1]
    assert spread > stats.interval([0.985, 0.985], 10_000)[1]


def test_against_follows_the_interval():
    assert stats.against([0.9847, 0.9842, 0.9852], 10_000, 0.9889) == "below"
    assert stats.against([0.9933, 0.9936, 0.9936], 10_000, 0.9942) == "consistent with"
    assert stats.against([0.995], 10_000, 0.9889) == "above"


def test_difference_and_its_standard_error():
    change, se = stats.difference([0.98], [0.97], 10_000, seed_sd=0.001)
    assert change == pytest.approx(0.01)
    assert se == pytest.approx(math.sqrt(0.98 * 0.02 / 1e4 + 0.97 * 0.03 / 1e4 + 2e-6))
    assert stats.difference([0.98, 0.99], [0.97], 10_000)[0] == pytest.approx(0.015)


@pytest.mark.parametrize("accs, match", [([], "at least one"), ([1.2], r"\[0, 1\]"),
                                         ([float("nan")], "finite"), ("ab", "sequence"),
                                         (0.98, "sequence")])
def test_bad_accuracies_are_named(accs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        stats.interval(accs, 10_000)


def test_bad_counts_and_references_are_named():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        stats.interval([0.9], 0)
    with pytest.raises(ValueError, match="reference"):
        stats.against([0.9], 100, 98.89)          # a percentage, not a fraction
    with pytest.raises(ValueError, match="seed_sd"):
        stats.difference([0.9], [0.8], 100, seed_sd=-1)
