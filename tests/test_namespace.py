"""Proof, on a machine without a GPU, that model code takes every array function from the
backend namespace (so that it runs unchanged on CuPy) and never calls NumPy directly."""
import ast
import types
from pathlib import Path

import numpy as np
import pytest

import stbp
from stbp import SNN, backend
from stbp.encode import bernoulli
from stbp.optim import SGD, Adam
from stbp.surrogates import Gaussian, Rectangular, Smooth
from stbp.train import parameters

MODEL_MODULES = ["neuron", "surrogates", "network", "encode", "init", "backward", "optim",
                 "train", "gradcheck"]


@pytest.mark.parametrize("name", MODEL_MODULES)
def test_model_modules_do_not_import_numpy(name):
    tree = ast.parse((Path(stbp.__file__).parent / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "numpy" for a in node.names), name
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] != "numpy", name


class _Inside:
    depth = 0


class Guarded(np.ndarray):
    """An array that refuses NumPy API functions unless they came through the namespace."""

    def __array_function__(self, func, types_, args, kwargs):
        if _Inside.depth == 0:
            raise AssertionError(f"numpy.{func.__name__} was called directly, not via backend.xp")
        return super().__array_function__(func, types_, args, kwargs)


class Namespace:
    """numpy seen through a recorder: functions called through it are allowed."""

    def __init__(self, module, used):
        self._module, self._used = module, used

    def __getattr__(self, name):
        obj = getattr(self._module, name)
        if isinstance(obj, types.ModuleType):
            return Namespace(obj, self._used)
        if callable(obj) and not isinstance(obj, type):
            def call(*args, **kwargs):
                self._used.add(name)
                _Inside.depth += 1
                try:
                    result = obj(*args, **kwargs)
                finally:
                    _Inside.depth -= 1
                # arrays made by the namespace (eye, zeros, broadcast_to...) are guarded too
                if type(result) is np.ndarray:
                    result = result.view(Guarded)
                return result
            return call
        return obj


def run_everything(surrogate, dtype):
    """Encode, forward, both rules (and keep=True), and an optimiser step."""
    xp = backend.xp
    net = SNN([12, 9, 4], tau=0.4, v_th=0.3, surrogate=surrogate, dtype=dtype, seed=0)
    if isinstance(xp, Namespace):
        for layer in net.layers:        # net.W and net.b list the layers' own arrays
            layer.W, layer.b = layer.W.view(Guarded), layer.b.view(Guarded)
        assert all(isinstance(p, Guarded) for p in net.parameters())
    x = backend.asarray(np.linspace(0.1, 0.9, 36).reshape(3, 12))
    if isinstance(xp, Namespace):
        x = x.view(Guarded)
    spikes = bernoulli(x, 6, rng=backend.default_rng(1), dtype=dtype)
    trace = net.forward(spikes)
    Y = xp.eye(4, dtype=dtype)[[0, 1, 2]]
    out = [net.loss(trace, Y)]
    for rule in ("exact", "seed"):
        grads, kept = stbp.backward.gradients(net, trace, Y, rule, keep=True)
        out += [g for Wb in grads for g in Wb] + [k["D"] for k in kept]
    for opt in (Adam(parameters(net)), SGD(parameters(net))):
        opt.step([g for Wb in net.gradients(trace, Y) for g in Wb])
    out += parameters(net) + trace.u + trace.o
    if isinstance(xp, Namespace):   # the guard travelled through the whole computation
        assert all(isinstance(a, Guarded) for a in out[1:]), [type(a) for a in out[1:]]
    return out


@pytest.mark.parametrize("surrogate", [Rectangular(1.0), Gaussian(0.5), Smooth(0.5)], ids=repr)
def test_model_code_runs_only_through_the_backend_namespace(monkeypatch, surrogate):
    # the array code, as on a backend without fused kernels (the Numba kernels are the
    # NumPy backend's own and take NumPy arrays; test_kernels.py checks them)
    monkeypatch.setattr(backend, "fused", None)
    reference = run_everything(surrogate, "float64")
    used = set()
    monkeypatch.setattr(backend, "xp", Namespace(np, used))
    guarded = run_everything(surrogate, "float64")
    assert len(reference) == len(guarded)
    for a, b in zip(reference, guarded):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert {"empty_like", "zeros_like", "asarray"} <= used


def test_the_guard_catches_a_direct_numpy_call():
    a = np.zeros(3).view(Guarded)
    with pytest.raises(AssertionError, match="numpy.where was called directly"):
        np.where(a > 0, a, 1.0)
