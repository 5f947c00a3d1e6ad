"""Engines: the code that runs a layer's time loop, the window copies of a convolution,
the encoder's comparison and the optimisers' updates.

Two engines share one interface, and :func:`stbp.backend.engine` chooses between them,
in that one place:

* :data:`ARRAY`, the book's array code as written (chapters 2, 3, 5 and 8): the
  functions ``layer_forward``, ``layer_backward``, ``im2col``, ``col2im``,
  ``spikes_below``, ``adam_update`` and ``sgd_update`` of the package's modules;
* :class:`Fused`, chapter 7's kernels (Numba on NumPy, CUDA on CuPy): the same arithmetic,
  a layer's whole recurrence in one pass per direction.

The kernels take numbers, not objects: :func:`kernel_form` computes them from the
network's neuron (f and f' on 0/1 spikes by ``stbp.neuron.ON_SPIKES``, the carry's slope)
and its surrogate (``Surrogate.kernel_form()``: the curve's name and constants), so no
formula of the book is written a second time.  A surrogate whose own class defines no
``kernel_form`` (one a user wrote) runs through the array engine.

Methods (each engine): ``layer_forward(X, b, tau, v_th, surrogate, carry)`` -> (U, O);
``layer_backward(spatial, U, O, neuron, rule, keep=False)`` -> (E, P, D);
``im2col(A, k)``; ``col2im(rows, shape, k)``; ``spikes_below(R, x, dtype)``;
``adam_update(p, m, s, g, lr, beta1, beta2, eps, k)``; ``sgd_update(p, v, g, lr,
momentum)``.

Hand-written glue, not exported from the book.
"""
from __future__ import annotations

import numpy

from stbp.kernels import CURVES, Form


class _Array:
    """The book's array code, found in the modules that export it (imported at the first
    call: those modules import the backend, which imports this one)."""

    name = "array"

    def layer_forward(self, X, b, tau, v_th, surrogate, carry="exp"):
        from stbp.network import layer_forward
        return layer_forward(X, b, tau, v_th, surrogate, carry)

    def layer_backward(self, spatial, U, O, neuron, rule, keep=False):
        from stbp.backward import layer_backward
        return layer_backward(spatial, U, O, neuron, rule, keep)

    def im2col(self, A, k):
        from stbp.conv import im2col
        return im2col(A, k)

    def col2im(self, rows, shape, k):
        from stbp.conv import col2im
        return col2im(rows, shape, k)

    def spikes_below(self, R, x, dtype):
        from stbp.encode import spikes_below
        return spikes_below(R, x, dtype)

    def adam_update(self, p, m, s, g, lr, beta1, beta2, eps, k):
        from stbp.optim import adam_update
        return adam_update(p, m, s, g, lr, beta1, beta2, eps, k)

    def sgd_update(self, p, v, g, lr, momentum):
        from stbp.optim import sgd_update
        return sgd_update(p, v, g, lr, momentum)

    def __repr__(self):
        return "<engine: the book's array code>"


#: The array engine: the book's code as written.
ARRAY = _Array()


def kernel_form(surrogate):
    """(curve name, sa, sb) of a surrogate the kernels know, or None: the curve's
    constants as its own class states them (``kernel_form``), not inherited, so that a
    subclass with another ``grad`` never runs a kernel of its parent's curve."""
    own = type(surrogate).__dict__.get("kernel_form")
    if own is None:
        return None
    form = own(surrogate)
    if form is None or form[0] not in CURVES:
        return None
    return form


def neuron_form(tau, v_th, surrogate, carry, dtype, xp=numpy):
    """The numbers a kernel needs of a layer's neurons (:class:`stbp.kernels.Form`): f and
    f' at o = 0 and o = 1 from chapter 1's ON_SPIKES, evaluated on 0/1 spikes of dtype as
    the array code evaluates them, the affine carry's slope f'(0), the curve's constants."""
    from stbp.neuron import ON_SPIKES
    curve, sa, sb = kernel_form(surrogate)
    f_, df_ = ON_SPIKES[carry]
    zero_one = numpy.asarray([0, 1], dtype=dtype)
    F, dF = f_(zero_one, tau), df_(zero_one, tau)
    slope = float(df_(0.0, tau))                # the affine carries' f', for every o
    return Form(binary=bool(surrogate.binary), carry=carry, curve=curve, tau=float(tau),
                v_th=float(v_th), F0=float(F[0]), F1=float(F[1]), dF0=float(dF[0]),
                dF1=float(dF[1]), slope=slope, sa=float(sa), sb=float(sb))


class Fused:
    """Chapter 7's kernels behind the engine's interface: the layer kernels for the
    surrogates they know, the optional operations where the backend has them (else the
    array code), and ``keep=True`` (which asks for Delta) by the array code."""

    name = "fused"

    def __init__(self, kernels):
        self.kernels = kernels
        for op, kernel in (("im2col", "im2col"), ("col2im", "col2im"),
                           ("spikes_below", "bernoulli"), ("adam_update", "adam"),
                           ("sgd_update", "sgd")):
            setattr(self, op, getattr(kernels, kernel, None) or getattr(ARRAY, op))

    def supports(self, surrogate):
        """Whether the layer kernels know this surrogate's curve."""
        return kernel_form(surrogate) is not None

    def layer_forward(self, X, b, tau, v_th, surrogate, carry="exp"):
        form = neuron_form(tau, v_th, surrogate, carry, X.dtype)
        return self.kernels.layer_forward(X, b, form)

    def layer_backward(self, spatial, U, O, neuron, rule, keep=False):
        if keep:                               # Delta exists only in the array code
            return ARRAY.layer_backward(spatial, U, O, neuron, rule, keep)
        form = neuron_form(neuron.tau, neuron.v_th, neuron.surrogate, neuron.carry,
                           U.dtype)
        E, P = self.kernels.layer_backward(spatial, U, O, form, rule)
        return E, P, None

    def __repr__(self):
        return f"<engine: fused kernels, {type(self.kernels).__name__}>"


__all__ = ["ARRAY", "Fused", "kernel_form", "neuron_form"]
