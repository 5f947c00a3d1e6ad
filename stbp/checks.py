"""Argument checks shared by the package's public entry points.

Each function returns the checked value (converted where that is safe, e.g. a NumPy integer
to ``int``) or raises a ``ValueError`` / ``TypeError`` whose message names the argument and
says what was expected.  Nothing is truncated or coerced silently: ``2.7`` is not an integer
and ``True`` is not a layer width.

This module is hand-written and sits at the bottom of the package's import graph: it imports
only the standard library and :mod:`stbp.backend` (the network's checks take the classes
and functions they compare with as arguments).
"""
from __future__ import annotations

import math
import numbers

import numpy

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


def surrogate(s, Surrogate):
    """s, an instance of the class Surrogate (not a class, not a name); else TypeError."""
    if isinstance(s, type):
        raise TypeError(f"surrogate must be an instance such as {s.__name__}(1.0), not the "
                        f"class {s.__name__}")
    if not isinstance(s, Surrogate):
        raise TypeError(f"surrogate must be a Surrogate such as Rectangular(1.0) "
                        f"(stbp.surrogates.CURVES maps names to classes); got {s!r}")
    return s


def network_array(net, name, a, shape):
    """a as a backend array of net's dtype, or a ValueError (TypeError) naming it: real
    numbers of the given shape (None: any length); "spikes" 0 or 1 (in [0, 1] for a
    network whose outputs are real, a smooth surrogate's), anything else in [0, 1]."""
    xp = backend.xp
    try:
        a = backend.asarray(a)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{name} must be an array of real numbers; got "
                            f"{type(a).__name__} ({exc})") from None
    if a.dtype.kind not in "biuf":
        raise ArgumentError(f"{name} must be real numbers; got dtype {a.dtype}")
    if a.ndim != len(shape) or any(s is not None and s != d
                                   for s, d in zip(shape, a.shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}; got shape {tuple(a.shape)}")
    if a.dtype.kind == "b":                     # 0/1 already
        return a.astype(net.dtype)
    if name == "spikes" and net.surrogate.binary:
        if not bool(((a == 0) | (a == 1)).all()):   # one pass; refuses NaN too
            bad = a[(a != 0) & (a != 1)].ravel()[:1]
            if not bool(xp.isfinite(bad).all()):
                raise ValueError(f"{name} contains NaN or infinite values")
            raise ValueError(f"{name} must be 0 or 1 (this network's neurons spike); "
                             f"found {bad[0].item()!r} (rate-encode intensities in "
                             f"[0, 1] with stbp.encode.bernoulli; scale uint8 images by "
                             f"1/255 first)")
    elif not bool(xp.isfinite(a).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    elif a.size and not (a.min().item() >= 0 and a.max().item() <= 1):
        raise ValueError(f"{name} must lie in [0, 1]; got values from "
                         f"{a.min().item()!r} to {a.max().item()!r}")
    return a.astype(net.dtype, copy=False)


def network_parameters(net):
    """Refuse parameters of net that are not arrays of the selected backend."""
    for k, (W, b) in enumerate(zip(net.W, net.b)):
        on_backend(f"W[{k}]", W), on_backend(f"b[{k}]", b)


def trace(net, tr, kind, same_carry, finite=True):
    """Refuse a trace made by a network of another description (net.description()), or
    one whose potentials hold NaN or infinite values (checked unless finite=False). The
    carry may differ from net's where both give the same spikes ("exp" and "linear", not
    "reset"): it chooses which extension of f the backward pass differentiates, and
    chapter 3 compares the choices on one forward pass. kind: the Trace class;
    same_carry(carry): whether a trace made with that carry has net's spikes."""
    network_parameters(net)
    if not isinstance(tr, kind):
        raise TypeError(f"trace must be a Trace from SNN.forward; got {type(tr).__name__}")
    theirs = tr.made_by or {}
    differ = [f"{k} {theirs.get(k)!r} (this network: {v!r})"
              for k, v in net.description().items() if theirs.get(k) != v and not (
                  k == "carry" and same_carry(theirs.get(k)))]
    if differ:
        raise ValueError("trace was made by another network: " + "; ".join(differ))
    shapes = [(n, net.sizes[n]) for n in range(len(net.sizes))]
    if len(tr.o) != len(net.sizes) or len(tr.u) != len(net.sizes) - 1:
        raise ValueError(f"trace must hold {len(net.sizes)} spike arrays and "
                         f"{len(net.sizes) - 1} potential arrays; got {len(tr.o)} and "
                         f"{len(tr.u)}")
    T, B = tr.o[0].shape[:2]
    for n, size in shapes:
        arrays = [("o", tr.o[n])] + ([("u", tr.u[n - 1])] if n else [])
        for kind, a in arrays:
            on_backend(f"trace.{kind}[{n if kind == 'o' else n - 1}]", a)
            if tuple(a.shape) != (T, B, size):
                raise ValueError(f"trace.{kind}[{n if kind == 'o' else n - 1}] must have "
                                 f"shape {(T, B, size)}; got {tuple(a.shape)}")
    if tr.read is not None and (len(tr.read) != len(net.layers) or any(
            a is not None and len(a) != T * B for a in tr.read)):
        raise ValueError(f"trace.read must hold one entry per layer ({len(net.layers)}), "
                         f"each None or {T * B} rows")
    for n, U in enumerate(tr.u if finite else []):
        # a sum is finite when every term is (one pass, no mask); else look term by term,
        # for a finite sum that overflowed. The sums are the columns' of U's rows, as a
        # product with a row of ones: BLAS reads U on every core, NumPy's sum on one (the
        # CNN's first layer: 0.3 against 1.5 ms alone, 1.7 against 2.4 within a step)
        rows = U.reshape(-1, U.shape[-1])
        with numpy.errstate(over="ignore", invalid="ignore"):
            sums = backend.xp.ones(len(rows), dtype=U.dtype) @ rows
        if (not bool(backend.xp.isfinite(sums).all())
                and not bool(backend.xp.isfinite(U).all())):
            raise ValueError(f"trace.u[{n}] contains NaN or infinite values")


__all__ = ["ArgumentError", "integer", "positive_int", "seed", "real", "positive", "dtype_name",
           "choice", "on_backend", "fits_memory", "labels", "surrogate", "network_array",
           "network_parameters", "trace"]
