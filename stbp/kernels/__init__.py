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
code.  The model code passes the surrogate object and the carry's name; what the kernels
need of them (the curve's number, its constants, f and f' at 0 and 1) is computed here,
with the same floating-point operations as the array code.

Hand-written glue, not exported from the book.
"""
from __future__ import annotations

import math

import numpy

#: surrogate class name (in ``stbp.surrogates``) -> the curve's number in the kernels
CURVES = {"Rectangular": 0, "Polynomial": 1, "Smooth": 2, "Sigmoid": 2, "Gaussian": 3}
#: carry name -> number: f(o) = tau e^{-o/tau} ("exp"), or an affine f(o) = tau + slope o,
#: the chord ("linear") or the authors' tau (1 - o) ("reset", slope -tau): one kernel case,
#: the slope an argument (stbp.neuron computes the reset carry as tau - tau o to match)
CARRIES = {"exp": 0, "linear": 1, "reset": 1}
#: gradient rule -> number
RULES = {"exact": 0, "seed": 1, "detached": 2}

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


def curve_id(surrogate):
    """The kernels' number for this surrogate's curve, or None when they do not know it
    (a subclass or a curve defined elsewhere runs the array code)."""
    cls = type(surrogate)
    if cls.__module__ != "stbp.surrogates":
        return None
    return CURVES.get(cls.__name__)


def supports(surrogate):
    """Whether the kernels know this surrogate's curve (else the array code runs)."""
    return curve_id(surrogate) is not None


def real_type(dtype):
    """The NumPy scalar type of a float32 or float64 dtype; ValueError for any other."""
    name = getattr(dtype, "name", str(dtype))
    if name not in ("float32", "float64"):
        raise ValueError(f"the fused kernels take float32 or float64 arrays, got {name}")
    return numpy.dtype(name).type


def surrogate_constants(surrogate, dtype):
    """(sa, sb) of the curve, rounded to dtype as NumPy rounds a Python float met by an
    array of that dtype, so that the kernels do the array code's arithmetic:

    rectangular g' = sb 1[|x| < sa] (sa = a/2, sb = 1/a); polynomial
    g' = max(sa - sb |x|, 0) (sa = sqrt(a)/2, sb = a/4); logistic s = 1/2 + tanh(x/sa)/2,
    g' = s (1 - s) / sb (sa = 2a, sb = a); gaussian g' = exp(-x x / sa) / sb
    (sa = 2a, sb = sqrt(2 pi a)).
    """
    real, a = real_type(dtype), surrogate.a
    sa, sb = {0: (a / 2, 1 / a), 1: (a ** 0.5 / 2, a / 4), 2: (2 * a, a),
              3: (2 * a, (2 * math.pi * a) ** 0.5)}[curve_id(surrogate)]
    return real(sa), real(sb)


def carry_values(tau, carry, dtype):
    """f(0), f(1), f'(0), f'(1) and the affine carry's slope, in dtype, computed with the
    same operations as ``stbp.neuron.ON_SPIKES`` applied to 0/1 spikes of that dtype: the
    chord tau + (tau e^{-1/tau} - tau) o for "exp" and "linear", tau - tau o for "reset"."""
    if carry not in CARRIES:
        raise ValueError(f"carry must be one of {tuple(CARRIES)}, got {carry!r}")
    real = real_type(dtype)
    o = numpy.asarray([0, 1], dtype=real)
    e1 = math.exp(-1.0 / tau)
    step = -tau if carry == "reset" else tau * e1 - tau     # f(1) - f(0)
    F = tau + step * o if carry != "reset" else tau - tau * o   # f on 0/1 (chapter 1)
    slope = real(step)
    dF = -1.0 + (1.0 - e1) * o if carry == "exp" else numpy.full(2, slope)
    return real(F[0]), real(F[1]), real(dF[0]), real(dF[1]), slope


class Kernels:
    """The fused operations of one backend, on arrays of its namespace ``xp``.

    ``layer_forward`` and ``layer_backward`` (the model code's contract): every backend
    with kernels has them.  ``bernoulli``, ``adam``, ``sgd``, ``im2col`` and ``col2im``
    are optional: None here means the array code runs (``stbp.backend.fused_op`` looks
    them up).
    """

    bernoulli = adam = sgd = im2col = col2im = None

    def __init__(self, xp):
        self.xp = xp

    def layer_forward(self, X, b, tau, v_th, surrogate, carry="exp"):
        """Fused ``stbp.network.layer_forward``: X (T, B, n) may become U; returns U, O."""
        raise NotImplementedError

    def layer_backward(self, spatial, U, O, tau, v_th, surrogate, rule="exact", carry="exp"):
        """E (T, B, n) of one layer and P, the term that ``P @ W`` sends one layer down."""
        raise NotImplementedError

    def _check(self, rule=None, carry="exp"):
        if rule is not None and rule not in RULES:
            raise ValueError(f"rule must be one of {tuple(RULES)}, got {rule!r}")
        if carry not in CARRIES:
            raise ValueError(f"carry must be one of {tuple(CARRIES)}, got {carry!r}")


__all__ = ["CURVES", "CARRIES", "RULES", "SIGNATURES", "curve_id", "supports", "real_type",
           "surrogate_constants", "carry_values", "Kernels"]
