"""Argument checks shared by the package's public entry points.

Each function returns the checked value (converted where that is safe, e.g. a NumPy integer
to ``int``) or raises a ``ValueError`` / ``TypeError`` whose message names the argument and
says what was expected.  Nothing is truncated or coerced silently: ``2.7`` is not an integer
and ``True`` is not a layer width.

This module is hand-written and sits at the bottom of the package's import graph: it imports
only the standard library and :mod:`stbp.backend`.
"""
from __future__ import annotations

import math
import numbers

from stbp import backend


class ArgumentError(ValueError, TypeError):
    """An argument of the wrong kind (2.7 or True for a count, "abc" for a seed): both a
    ValueError and a TypeError, so that either ``except`` catches it (as NumPy's AxisError
    is both a ValueError and an IndexError)."""


def _integer_kind(minimum):
    return {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}")


def integer(name, value, minimum=None):
    """``value`` as an ``int`` (Python or NumPy integers; not bool, not 2.0), >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentError(f"{name} must be {_integer_kind(minimum)}; got {name} = "
                            f"{value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {_integer_kind(minimum)}; got {name} = {value}")
    return value


def positive_int(name, value):
    """An integer >= 1 (a count: sizes, T, batch_size, epochs)."""
    return integer(name, value, 1)


def seed(value, name="seed"):
    """None (fresh entropy) or a non-negative integer."""
    if value is None:
        return None
    return integer(name, value, 0)


def real(name, value, low=None, high=None, low_open=True, high_open=False):
    """A finite real number in the interval (low, high] (open/closed ends as given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{name} must be a real number; got {name} = {value!r} "
                            f"({type(value).__name__})")
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or below or above:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}; got {name} = {value}")
    return value


def positive(name, value, what=None):
    """A finite number > 0; ``what`` describes it in the message (default: name)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{what or name} must be a positive finite number; got {name} = "
                            f"{value!r} ({type(value).__name__})")
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{what or name} must be positive and finite; got {name} = {value}")
    return value


def dtype_name(value, name="dtype"):
    """'float32' or 'float64' from a string, a NumPy type object (np.float32) or a dtype."""
    if value is None or isinstance(value, bool):
        raise ArgumentError(f"{name} must be 'float32' or 'float64'; got {name} = {value!r}")
    try:
        d = backend.xp.dtype(value)
    except TypeError:
        raise ArgumentError(f"{name} must be 'float32' or 'float64' (or np.float32, np.float64); "
                        f"got {name} = {value!r}") from None
    if d.name not in ("float32", "float64"):
        raise ValueError(f"{name} must be 'float32' or 'float64'; got {name} = {value!r}")
    return d.name


def choice(name, value, options):
    """One of ``options`` (compared with ==, so strings only match strings)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {list(options)}; got {name} = {value!r}")
    return value


def on_backend(name, a):
    """Refuse an array of another backend than the active one (e.g. NumPy weights after
    ``backend.use("cupy")``), instead of failing later in a mixed operation."""
    xp = backend.xp
    if not isinstance(a, xp.ndarray):
        raise TypeError(
            f"{name} is a {type(a).__module__}.{type(a).__name__}, but the active backend is "
            f"{backend.name!r} ({xp.__name__}.ndarray): the network was built under another "
            f"backend; build it (or load its checkpoint) after backend.use({backend.name!r})")
    return a


def fits_memory(name, value, nbytes, what):
    """Refuse the value of the argument name when what it makes (what, nbytes: a lower
    bound) cannot fit in the memory of the device that holds the arrays."""
    total = backend.memory()
    if total is not None and nbytes > total:
        raise ValueError(f"{name} = {value} cannot fit in memory: {what} over {name} steps "
                         f"needs at least {nbytes / 2**30:.3g} GiB, and this machine's "
                         f"{backend.name} arrays have {total / 2**30:.3g} GiB; choose a "
                         f"smaller {name}")
    return value


def labels(name, y, n, n_classes):
    """Integer class labels of shape (n,) with values in [0, n_classes), on the backend."""
    xp = backend.xp
    y = backend.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), one label per image; got shape "
                         f"{tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        raise ArgumentError(f"{name} must be integers (class indices); got dtype {y.dtype}")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}) (the network has {n_classes} "
                         f"outputs); found values from {int(y.min())} to {int(y.max())}")
    return y


__all__ = ["ArgumentError", "integer", "positive_int", "seed", "real", "positive", "dtype_name",
           "choice", "on_backend", "fits_memory", "labels"]
