"""Fused kernels: a layer's whole membrane recurrence in one kernel launch.

Chapter 7 explains them.  The array code of chapters 2 and 3 runs one handful of
array operations per time step; on a GPU each is a kernel launch over B x n numbers.
Here one thread owns one (sample, neuron) pair and walks its T steps in registers:

* ``layer_forward``: U^t = U^{t-1} f(O^{t-1}) + X^t + b and O^t = g(U^t - v_th),
  the same arithmetic as ``stbp.network.layer_forward``;
* ``layer_backward``: the exact rule's E^t = S^t g'(U^t) + A^t E^{t+1} with
  A^t = f(O^t) + U^t f'(O^t) g'(U^t), computing g', f and f' on the fly, the same
  arithmetic as ``stbp.backward.layer_backward_exact`` plus ``carry_factors``.

The source is CUDA C++ that uses nothing CUDA-specific inside the per-thread
functions, so the tests compile the same functions for the CPU with a C++
compiler and compare them with the array code (``tests/test_kernels.py``).
:func:`build` turns the source into callables for either: ``cuda`` (CuPy's
RawModule, used by the CuPy backend) or a loop-over-threads shared library.

Hand-written glue, not exported from the book: the CUDA source has no NumPy form.
"""
from __future__ import annotations

import functools
import math

from stbp import surrogates

#: surrogate class -> the curve's number in the kernels' ``surrogate_grad``
CURVE_IDS = {surrogates.Rectangular: 0, surrogates.Polynomial: 1, surrogates.Smooth: 2,
             surrogates.Sigmoid: 2, surrogates.Gaussian: 3}

SOURCE = r"""
// real is float or double: the source is compiled once for each.
__device__ real surrogate_grad(real x, int curve, real a) {
    switch (curve) {
    case 0:                                     // rectangular: (1/a) 1[|x| < a/2]
        return fabs(x) < a / 2 ? (real)1 / a : (real)0;
    case 1: {                                   // polynomial: max(sqrt(a)/2 - a/4 |x|, 0)
        real h = sqrt(a) / 2 - a / 4 * fabs(x);
        return h > 0 ? h : (real)0;
    }
    case 2: {                                   // logistic: s (1 - s) / a, s = sigmoid(x/a)
        real s = (real)0.5 + (real)0.5 * tanh(x / (2 * a));
        return s * (1 - s) / a;
    }
    default:                                    // gaussian: exp(-x^2 / 2a) / sqrt(2 pi a)
        return exp(-x * x / (2 * a)) / sqrt(2 * (real)3.14159265358979323846 * a);
    }
}

// One (sample, neuron) pair i of a layer with BN = B * n pairs: U holds X on entry
// (T x BN, time-major) and U on exit; O receives the spikes (0/1, or the logistic).
__device__ void forward_one(long i, real* U, real* O, const real* b, int T, long BN,
                            long n, real tau, real F0, real F1, real v_th, int binary,
                            real a) {
    real u = 0, o = 0;
    for (int t = 0; t < T; ++t) {
        long k = (long)t * BN + i;
        real carry = binary ? (o != 0 ? F1 : F0) : tau * exp(-o / tau);
        u = t == 0 ? U[k] + b[i % n] : (U[k] + b[i % n]) + u * carry;
        real x = u - v_th;
        o = binary ? (x >= 0 ? (real)1 : (real)0)
                   : (real)0.5 + (real)0.5 * tanh(x / (2 * a));
        U[k] = u;
        O[k] = o;
    }
}

// E of pair i, from t = T down to 1.  S: the spatial term (T x BN); spikes come as
// bytes (binary, O8) or reals (Or); F0, F1, dF0, dF1: f and f' at o = 0 and o = 1.
__device__ void backward_one(long i, real* E, const real* S, const real* U,
                             const unsigned char* O8, const real* Or, int T, long BN,
                             real tau, real F0, real F1, real dF0, real dF1, real v_th,
                             int binary, int curve, real a) {
    real e = 0;
    for (int t = T - 1; t >= 0; --t) {
        long k = (long)t * BN + i;
        real u = U[k];
        real g = surrogate_grad(u - v_th, curve, a);
        real F, dF;
        if (binary) {
            int o = O8[k] != 0;
            F = o ? F1 : F0;
            dF = o ? dF1 : dF0;
        } else {
            dF = -exp(-Or[k] / tau);
            F = tau * (-dF);
        }
        real A = u * dF * g + F;
        e = t == T - 1 ? S[k] * g : S[k] * g + A * e;
        E[k] = e;
    }
}
"""

#: the kernels CuPy launches: one thread per (sample, neuron) pair
CUDA_ENTRY = r"""
extern "C" __global__ void layer_forward(real* U, real* O, const real* b, int T, long BN,
        long n, real tau, real F0, real F1, real v_th, int binary, real a) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < BN) forward_one(i, U, O, b, T, BN, n, tau, F0, F1, v_th, binary, a);
}
extern "C" __global__ void layer_backward(real* E, const real* S, const real* U,
        const unsigned char* O8, const real* Or, int T, long BN, real tau, real F0,
        real F1, real dF0, real dF1, real v_th, int binary, int curve, real a) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < BN) backward_one(i, E, S, U, O8, Or, T, BN, tau, F0, F1, dF0, dF1, v_th,
                             binary, curve, a);
}
"""

#: the same kernels for a CPU: a loop over the threads (for the tests)
CPU_ENTRY = r"""
extern "C" void layer_forward(real* U, real* O, const real* b, int T, long BN, long n,
        real tau, real F0, real F1, real v_th, int binary, real a) {
    for (long i = 0; i < BN; ++i) forward_one(i, U, O, b, T, BN, n, tau, F0, F1, v_th, binary, a);
}
extern "C" void layer_backward(real* E, const real* S, const real* U,
        const unsigned char* O8, const real* Or, int T, long BN, real tau, real F0,
        real F1, real dF0, real dF1, real v_th, int binary, int curve, real a) {
    for (long i = 0; i < BN; ++i)
        backward_one(i, E, S, U, O8, Or, T, BN, tau, F0, F1, dF0, dF1, v_th, binary, curve, a);
}
"""

CPU_PRELUDE = "#include <cmath>\nusing std::exp; using std::fabs; using std::sqrt; using std::tanh;\n#define __device__ static inline\n"


def source(target, real):
    """The complete source for target "cuda" or "cpu" with real = "float" or "double"."""
    if target not in ("cuda", "cpu") or real not in ("float", "double"):
        raise ValueError(f"no kernel source for target={target!r}, real={real!r}")
    prelude = CPU_PRELUDE if target == "cpu" else ""
    entry = CUDA_ENTRY if target == "cuda" else CPU_ENTRY
    return f"{prelude}typedef {real} real;\n{SOURCE}\n{entry}"


def supports(surrogate):
    """Whether the kernels know this surrogate's curve (else the array code runs)."""
    return type(surrogate) in CURVE_IDS


@functools.lru_cache(maxsize=64)
def _carry_values(tau, dtype, backend_name):
    """f and f' at o = 0 and 1, as stbp.backward.carry_factors gives them to the array code
    (cached: on a GPU each reading is a copy to the host)."""
    from stbp import backend
    from stbp.backward import carry_factors
    F, dF = carry_factors(backend.xp.asarray([False, True]), tau, True, dtype)
    F, dF = backend.to_numpy(F), backend.to_numpy(dF)
    return float(F[0]), float(F[1]), float(dF[0]), float(dF[1])


class Kernels:
    """``layer_forward`` and ``layer_backward`` on arrays of one backend.

    launch(name, real, n_threads, args): runs kernel ``name`` compiled for ``real`` over
    n_threads threads; args are arrays of the backend and Python numbers, in the order of
    the kernel's parameters.  :func:`cuda` and the tests' CPU build supply it.
    """

    def __init__(self, launch):
        self._launch = launch

    def layer_forward(self, X, b, tau, v_th, surrogate, carry="exp"):
        """Fused stbp.network.layer_forward: X (T, B, n) becomes U; returns U and O."""
        if carry != "exp" and not surrogate.binary:
            raise NotImplementedError("the CUDA kernels run the exp carry on real-valued spikes only")
        from stbp import backend
        xp = backend.xp
        U = xp.ascontiguousarray(X)               # X itself when it is contiguous already
        b = xp.ascontiguousarray(b, dtype=U.dtype)
        O = xp.empty_like(U)
        T, B, n = U.shape
        F0, F1, _, _ = _carry_values(tau, U.dtype.name, backend.name)
        real = _real(U.dtype)
        self._launch("layer_forward", real, B * n,
                     [U, O, b, ("int", T), ("long", B * n), ("long", n), (real, tau),
                      (real, F0), (real, F1), (real, v_th), ("int", int(surrogate.binary)),
                      (real, surrogate.a)])
        return U, O

    def layer_backward(self, spatial, U, O, tau, v_th, surrogate, rule="exact", carry="exp"):
        """Fused exact rule for one layer: (E, P) with P = E, from the spatial term, U and O."""
        if rule != "exact" or carry != "exp":
            raise NotImplementedError("the CUDA kernels run the exact rule with the exp carry only")
        from stbp import backend
        xp = backend.xp
        S = xp.ascontiguousarray(xp.broadcast_to(spatial, U.shape), dtype=U.dtype)
        U = xp.ascontiguousarray(U)
        binary = O.dtype == xp.bool_              # stored 0/1 spikes, else real outputs
        O8 = xp.ascontiguousarray(O).view(xp.uint8) if binary else xp.zeros(1, dtype=xp.uint8)
        Or = xp.zeros(1, dtype=U.dtype) if binary else xp.ascontiguousarray(O, dtype=U.dtype)
        E = xp.empty_like(U)
        T, B, n = U.shape
        F0, F1, dF0, dF1 = _carry_values(tau, U.dtype.name, backend.name)
        real = _real(U.dtype)
        self._launch("layer_backward", real, B * n,
                     [E, S, U, O8, Or, ("int", T), ("long", B * n), (real, tau), (real, F0),
                      (real, F1), (real, dF0), (real, dF1), (real, v_th), ("int", int(binary)),
                      ("int", CURVE_IDS[type(surrogate)]), (real, surrogate.a)])
        return E, E


def _real(dtype):
    name = getattr(dtype, "name", str(dtype))
    if name not in ("float32", "float64"):
        raise ValueError(f"the fused kernels take float32 or float64 arrays, got {name}")
    return "float" if name == "float32" else "double"


def cuda():
    """Kernels for the CuPy backend, compiled by CuPy (NVRTC) on first use."""
    import cupy
    modules = {}
    scalar = {"int": cupy.int32, "long": cupy.int64, "float": cupy.float32,
              "double": cupy.float64}

    def launch(name, real, n_threads, args):
        if real not in modules:
            modules[real] = cupy.RawModule(code=source("cuda", real))
        kernel = modules[real].get_function(name)
        values = [scalar[a[0]](a[1]) if isinstance(a, tuple) else a for a in args]
        threads = 256
        kernel((max(1, math.ceil(n_threads / threads)),), (threads,), tuple(values))

    return Kernels(launch)


def cpu(compiler="g++", folder=None):
    """The same kernels compiled for this CPU with a C++ compiler, for NumPy arrays.

    Each kernel runs its threads one after another in a loop.  The tests use this build to
    check the kernels' arithmetic against the array code on machines without a GPU.
    Raises RuntimeError naming the compiler when it is missing or fails.
    """
    import ctypes
    import os
    import shutil
    import subprocess
    import tempfile

    if shutil.which(compiler) is None:
        raise RuntimeError(f"C++ compiler {compiler!r} not found; it is needed to build "
                           "the fused kernels for the CPU")
    folder = folder or tempfile.mkdtemp(prefix="stbp-kernels-")
    libraries = {}
    scalar = {"int": ctypes.c_int, "long": ctypes.c_long, "float": ctypes.c_float,
              "double": ctypes.c_double}

    def library(real):
        if real not in libraries:
            src = os.path.join(folder, f"kernels_{real}.cpp")
            lib = os.path.join(folder, f"kernels_{real}.so")
            with open(src, "w") as fh:
                fh.write(source("cpu", real))
            done = subprocess.run([compiler, "-O2", "-ffp-contract=off", "-shared", "-fPIC",
                                   "-o", lib, src], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{compiler} could not build the kernels:\n{done.stderr}")
            libraries[real] = ctypes.CDLL(lib)
        return libraries[real]

    def launch(name, real, n_threads, args):
        values = [scalar[a[0]](a[1]) if isinstance(a, tuple) else ctypes.c_void_p(a.ctypes.data)
                  for a in args]
        getattr(library(real), name)(*values)

    return Kernels(launch)
