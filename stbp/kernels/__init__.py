"""Fused kernels: a layer's whole membrane recurrence in one pass per direction.

Chapter 7 explains them.  The array code of chapters 2 and 3 runs a handful of array
operations per time step, each one pass over B x n numbers.  A fused kernel instead
gives each (sample, neuron) pair one walk over its T steps with u, o (forward) or E
(backward) held in registers:

* ``layer_forward``: U^t = U^{t-1} f(O^{t-1}) + X^t + b and O^t = g(U^t - v_th);
* ``layer_backward``: E^t = S^t g'(U^t) + A^t E^{t+1} with, per rule,
  A^t = f(O^t) + U^t f'(O^t) g'(U^t) ("exact"), A^t = f(O^t) ("detached"), or the
  equations sheet's Delta^t = S^t + Delta^{t+1} U^t g'(U^{t+1}) f'(O^t) and E^t = Delta^t g'(U^t)
  + E^{t+1} f(O^t) ("seed"); it also returns P, the term whose product with W sends the
  error one layer down (P = E, or Delta g'(U) for the sheet's rule).

Two implementations sit behind one interface, :class:`Kernels`:

* :mod:`stbp.kernels.cpu`: Numba, for NumPy arrays (the default on the NumPy backend);
  it also fuses the Bernoulli encoder's comparison and the optimisers' updates;
* :mod:`stbp.kernels.cuda`: CUDA C++ compiled by CuPy, one GPU thread per pair; the same
  source compiles for the CPU with g++ (a loop over blocks and threads) for the tests.

Dependencies point one way: this package imports neither the backend nor the model
code.  The kernels take numbers, a :class:`Form`: ``stbp.engine.neuron_form`` computes
them from the network's neuron and surrogate with the book's own functions, so the
kernels restate no formula of the book's; what they compute with those numbers (the
curve g' of each ``CURVES`` entry, the carry f for real outputs) is written out in
:mod:`stbp.kernels.cpu` and :mod:`stbp.kernels.cuda` and tested against the array code.

Hand-written glue, not exported from the book.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy

#: curve name (``Surrogate.kernel_form()``) -> the curve's number in the kernels, with its
#: constants: rectangular g' = sb 1[|x| < sa]; polynomial g' = max(sa - sb |x|, 0);
#: logistic s = 1/2 + tanh(x / sa) / 2, g' = s (1 - s) / sb; gaussian exp(-x x / sa) / sb
CURVES = {"rectangular": 0, "polynomial": 1, "logistic": 2, "gaussian": 3}
#: carry name -> number: f(o) = tau e^{-o/tau} ("exp"), or an affine f(o) = tau + slope o,
#: the chord ("linear") or the authors' tau (1 - o) ("reset", slope -tau): one kernel case
CARRIES = {"exp": 0, "linear": 1, "reset": 1}
#: gradient rule -> number
RULES = {"exact": 0, "seed": 1, "detached": 2}


class Form(NamedTuple):
    """What a kernel needs of a layer's neurons, as Python numbers (the kernels round them
    to the arrays' dtype, as NumPy rounds a Python float met by an array): 0/1 spikes or
    real outputs; the carry's name; the curve's name and constants sa, sb; tau and v_th;
    f and f' at o = 0 and o = 1; the affine carry's slope."""
    binary: bool
    carry: str
    curve: str
    tau: float
    v_th: float
    F0: float
    F1: float
    dF0: float
    dF1: float
    slope: float
    sa: float
    sb: float


#: The kernel signatures, written once.  Each CUDA entry, its CPU emulation and the
#: argument conversions (ctypes, CuPy scalars) are generated from these lists of
#: (C type, name); "real" is float or double, integers are 64-bit ``long long``.
SIGNATURES = {
    "layer_forward": [
        ("real*", "U"), ("real*", "O"), ("const real*", "b"), ("long long", "T"),
        ("long long", "BN"), ("long long", "n"), ("real", "tau"), ("real", "F0"),
        ("real", "F1"), ("real", "slope"), ("real", "v_th"), ("int", "binary"),
        ("int", "carry"), ("real", "sa")],
    "layer_backward": [
        ("real*", "E"), ("real*", "P"), ("const real*", "S"), ("const real*", "U"),
        ("const unsigned char*", "O8"), ("const real*", "Or"), ("long long", "T"),
        ("long long", "BN"), ("real", "tau"), ("real", "F0"), ("real", "F1"),
        ("real", "dF0"), ("real", "dF1"), ("real", "slope"), ("real", "v_th"),
        ("int", "binary"), ("int", "carry"), ("int", "rule"), ("int", "curve"),
        ("real", "sa"), ("real", "sb")],
}


def real_type(dtype):
    """The NumPy scalar type of a float32 or float64 dtype; ValueError for any other."""
    name = getattr(dtype, "name", str(dtype))
    if name not in ("float32", "float64"):
        raise ValueError(f"the fused kernels take float32 or float64 arrays, got {name}")
    return numpy.dtype(name).type


class Kernels:
    """The fused operations of one backend, on arrays of its namespace ``xp``.

    ``layer_forward`` and ``layer_backward`` (the model code's contract): every backend
    with kernels has them.  ``bernoulli``, ``adam``, ``sgd``, ``im2col``, ``col2im``,
    ``pool_forward``, ``pool_backward``, ``block_products``, ``layer_forward_pooled``
    and ``layer_backward_pooled`` are optional: None here means the array code runs, or
    for the last two the layer's kernel and pooling one after the other
    (``stbp.engine.Fused`` looks them up).
    """

    bernoulli = adam = sgd = im2col = col2im = pool_forward = pool_backward = None
    block_products = layer_forward_pooled = layer_backward_pooled = None

    def __init__(self, xp):
        self.xp = xp

    def layer_forward(self, X, b, form):
        """Fused ``stbp.network.layer_forward``: X (T, B, n) may become U; returns U, O."""
        raise NotImplementedError

    def layer_backward(self, spatial, U, O, form, rule="exact"):
        """E (T, B, n) of one layer and P, the term that the layer's transposed product
        sends one layer down."""
        raise NotImplementedError

    def _check(self, form, rule=None):
        if not isinstance(form, Form):
            raise TypeError(f"form must be a stbp.kernels.Form; got {type(form).__name__}")
        if rule is not None and rule not in RULES:
            raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")
        if form.carry not in CARRIES:
            raise ValueError(f"carry must be one of {tuple(CARRIES)}, got {form.carry!r}")
        if form.curve not in CURVES:
            raise ValueError(f"curve must be one of {tuple(CURVES)}, got {form.curve!r}")


__all__ = ["CURVES", "CARRIES", "RULES", "Form", "SIGNATURES", "real_type", "Kernels"]
