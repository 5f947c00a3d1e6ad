"""Engines: the code that runs a layer's time loop, the window copies of a convolution,
the encoder's comparison and the optimisers' updates.

Two engines share one interface, and :func:`stbp.backend.engine` chooses between them,
in that one place:

* :data:`ARRAY`, the book's array code as written (chapters 2, 3, 5 and 8): the
  functions ``layer_forward``, ``layer_backward``, ``layer_forward_pooled``,
  ``layer_backward_pooled``, ``im2col``, ``col2im``, ``pool_forward``,
  ``pool_backward``, ``block_products``, ``spikes_below``, ``adam_update`` and
  ``sgd_update``, each marked ``@array_code``
  where the book defines it (dependencies point one way: the book's modules import this
  one, never the reverse);
* :class:`Fused`, chapter 7's kernels (Numba on NumPy, CUDA on CuPy): the same arithmetic,
  a layer's whole recurrence in one pass per direction.

The kernels take numbers, not objects: :func:`neuron_form` computes them from the
network's neuron (f and f' on 0/1 spikes and the carry's slope, by the array code's own
``carry_factors``) and its surrogate (``Surrogate.kernel_form()``: the curve's name and
constants), so no formula of the book is written a second time.  A surrogate whose own class defines no
``kernel_form`` (one a user wrote) runs through the array engine.

Methods (each engine): ``layer_forward(X, b, tau, v_th, surrogate, carry)`` -> (U, O);
``layer_backward(spatial, U, O, neuron, rule, keep=False)`` -> (E, P, D);
``layer_forward_pooled(X, b, tau, v_th, surrogate, carry, maps, k)`` -> (U, O, pooled);
``layer_backward_pooled(G, U, O, neuron, rule, k)`` -> (E, P, D); ``im2col(A, k)``;
``col2im(rows, shape, k)``; ``pool_forward(A, k)``; ``pool_backward(G, k)``;
``block_products(As, Bs)``; ``spikes_below(R, x, dtype)``;
``adam_update(p, m, s, g, lr, beta1, beta2, eps, k)``; ``sgd_update(p, v, g, lr,
momentum)``.

Hand-written glue, not exported from the book.
"""
from __future__ import annotations

import numpy

from stbp.kernels import CURVES, Form


class _Array:
    """The book's array code: the functions of the book's modules that name themselves
    with the decorator :func:`array_code` when their module is imported (``import
    stbp`` imports them all), so that this module imports none of them."""

    name = "array"
    OPS = ("layer_forward", "layer_backward", "layer_forward_pooled",
           "layer_backward_pooled", "im2col", "col2im", "pool_forward", "pool_backward",
           "block_products", "spikes_below", "adam_update", "sgd_update",
           "carry_factors")

    def __getattr__(self, op):
        if op in self.OPS:
            raise RuntimeError(f"the array code's {op} is not loaded: import stbp")
        raise AttributeError(op)

    def __repr__(self):
        return "<engine: the book's array code>"


#: The array engine: the book's code as written.
ARRAY = _Array()


def array_code(function):
    """Decorator: file function as the array engine's operation of its name (one of
    ``ARRAY.OPS``), and return it unchanged."""
    if function.__name__ not in _Array.OPS:
        raise ValueError(f"{function.__name__} is not an engine operation; expected one of "
                         f"{_Array.OPS}")
    setattr(ARRAY, function.__name__, function)
    return function


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
    f' at o = 0 and o = 1 and the affine carry's slope, by the array code's own
    ``carry_factors`` (chapter 3) on 0/1 spikes and on a real 0 of dtype, and the
    curve's constants from the surrogate. xp: the arrays' namespace."""
    curve, sa, sb = kernel_form(surrogate)
    F, dF = ARRAY.carry_factors(xp.asarray([False, True]), tau, True, dtype, carry)
    _, slope = ARRAY.carry_factors(xp.zeros(1, dtype=dtype), tau, False, dtype, carry)
    return Form(binary=bool(surrogate.binary), carry=carry, curve=curve, tau=float(tau),
                v_th=float(v_th), F0=float(F[0]), F1=float(F[1]), dF0=float(dF[0]),
                dF1=float(dF[1]), slope=float(slope[0]), sa=float(sa), sb=float(sb))


class Fused:
    """Chapter 7's kernels behind the engine's interface: the layer kernels for the
    surrogates they know, the optional operations where the backend has them (else the
    array code), and ``keep=True`` (which asks for Delta) by the array code."""

    name = "fused"

    #: engine operation -> the kernels' method, where a backend's kernels have it
    OPTIONAL = {"im2col": "im2col", "col2im": "col2im", "pool_forward": "pool_forward",
                "pool_backward": "pool_backward", "spikes_below": "bernoulli",
                "adam_update": "adam", "sgd_update": "sgd"}

    def __init__(self, kernels):
        self.kernels = kernels

    def __getattr__(self, op):
        """An optional operation: the kernels' where they have it, else the array code."""
        if op not in self.OPTIONAL:
            raise AttributeError(op)
        return getattr(self.kernels, self.OPTIONAL[op], None) or getattr(ARRAY, op)

    def block_products(self, As, Bs):
        """Window rows kept in a list go to the kernels' threads where the kernels have
        them; rows built block by block (an iterator) run through the array code, which
        builds and multiplies one block at a time."""
        fused = getattr(self.kernels, "block_products", None)
        if fused is None or not isinstance(Bs, (list, tuple)):
            return ARRAY.block_products(As, Bs)
        return fused(As, Bs)

    @property
    def _xp(self):
        """The namespace of the kernels' arrays (NumPy where they do not say)."""
        return getattr(self.kernels, "xp", numpy)

    def supports(self, surrogate):
        """Whether the layer kernels know this surrogate's curve."""
        return kernel_form(surrogate) is not None

    def layer_forward(self, X, b, tau, v_th, surrogate, carry="exp"):
        form = neuron_form(tau, v_th, surrogate, carry, X.dtype, self._xp)
        return self.kernels.layer_forward(X, b, form)

    def layer_forward_pooled(self, X, b, tau, v_th, surrogate, carry, maps, k):
        """The layer and the k x k pooling above it in one kernel where the kernels have
        one and the spikes are 0/1 (O then comes back as bools, as the trace stores
        them); else the layer's kernel, then pooling."""
        form = neuron_form(tau, v_th, surrogate, carry, X.dtype, self._xp)
        fused = getattr(self.kernels, "layer_forward_pooled", None)
        if fused is not None and form.binary:
            return fused(X, b, form, maps, k)
        U, O = self.kernels.layer_forward(X, b, form)
        return U, O, self.pool_forward(O.reshape((-1,) + tuple(maps)), k)

    def layer_backward_pooled(self, G, U, O, neuron, rule, k):
        """The layer's backward kernel with pooling's transpose inside it where the
        kernels have one; else pooling's transpose, then the layer's kernel."""
        fused = getattr(self.kernels, "layer_backward_pooled", None)
        if fused is None:
            S = self.pool_backward(G, k).reshape(U.shape)
            return self.layer_backward(S, U, O, neuron, rule)
        form = neuron_form(neuron.tau, neuron.v_th, neuron.surrogate, neuron.carry,
                           U.dtype, self._xp)
        E, P = fused(G, U, O, form, rule, k)
        return E, P, None

    def layer_backward(self, spatial, U, O, neuron, rule, keep=False):
        if keep:                               # Delta exists only in the array code
            return ARRAY.layer_backward(spatial, U, O, neuron, rule, keep)
        form = neuron_form(neuron.tau, neuron.v_th, neuron.surrogate, neuron.carry,
                           U.dtype, self._xp)
        E, P = self.kernels.layer_backward(spatial, U, O, form, rule)
        return E, P, None

    def __repr__(self):
        return f"<engine: fused kernels, {type(self.kernels).__name__}>"


__all__ = ["ARRAY", "array_code", "Fused", "kernel_form", "neuron_form"]
