"""tools/width_sweep.py: its data never include the test set, its validation set is the
one stbp.reproduce holds out, and its settings name the validation protocol."""
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import width_sweep  # noqa: E402
from stbp import reproduce, surrogates  # noqa: E402
from stbp.data import VAL_SEED, validation_split  # noqa: E402


class Untouchable:
    """Stands for the test set: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the sweep read the test set ({name})")

    def __len__(self):
        raise AssertionError("the sweep read the test set (len)")

    def __getitem__(self, key):
        raise AssertionError("the sweep read the test set ([])")


def fake_training(n=60_000):
    x = np.arange(n, dtype=np.int64)[:, None, None] * np.ones((1, 2, 2), np.int64)
    return x, np.arange(n) % 10


def test_datasets_never_touch_the_test_set():
    x, y = fake_training()
    train, val = width_sweep.datasets((x, y, Untouchable(), Untouchable()), n_train=100)
    assert len(train[0]) == 100 and len(val[0]) == reproduce.N_VAL


def test_validation_is_reproduce_split_and_disjoint_from_training():
    x, y = fake_training()
    train, val = width_sweep.datasets((x, y, None, None))
    (_, _), (xv, yv) = validation_split(x, y, reproduce.N_VAL, VAL_SEED)
    assert np.array_equal(val[0], xv) and np.array_equal(val[1], yv)
    assert not set(train[0][:, 0, 0]) & set(val[0][:, 0, 0])
    assert len(train[0]) == width_sweep.SETTINGS["n_train"] == 60_000 - reproduce.N_VAL


def test_settings_name_the_validation_protocol_and_every_curve():
    s = width_sweep.SETTINGS
    assert s["protocol"] == "validation"
    assert s["split"] == {"n_val": reproduce.N_VAL, "seed": VAL_SEED}
    assert set(width_sweep.WIDTHS) >= {1.0} and all(a > 0 for a in width_sweep.WIDTHS)
    assert list(surrogates.CURVES) == ["rectangular", "polynomial", "sigmoid", "gaussian"]


def test_datasets_refuses_more_training_digits_than_there_are():
    x, y = fake_training()
    with pytest.raises(ValueError, match="n_train"):
        width_sweep.datasets((x, y, None, None), n_train=60_000)
