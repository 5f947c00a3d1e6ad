"""The fused kernels in CUDA C++, for CuPy arrays, and their CPU emulation for the tests.

One GPU thread owns one (sample, neuron) pair ``i`` and walks its T steps.  The
per-thread functions use nothing specific to CUDA, so :func:`source` also builds a CPU
version: each entry becomes a loop over simulated ``blockIdx.x`` and ``threadIdx.x``
around the very same entry body, so the grid indexing is exercised too.  The tests
compile it with g++ (``-ffp-contract=off``); CuPy compiles the CUDA version with
``--fmad=false``, so neither contracts ``a * b + c`` into a fused multiply-add and both
do the array code's roundings.

Hand-written glue, not exported from the book: the CUDA source has no NumPy form.
"""
from __future__ import annotations

import math

import numpy

from stbp.kernels import CARRIES, CURVES, RULES, SIGNATURES, Kernels, real_type

#: threads per block of every launch
THREADS = 256

SOURCE = r"""
// real is float or double: the source is compiled once for each.
// sa, sb: the curve's constants, rounded to real (stbp.kernels.Form, from Surrogate.kernel_form).
__device__ real surrogate_grad(real x, int curve, real sa, real sb) {
    switch (curve) {
    case 0:                                     // rectangular: sb 1[|x| < sa]
        return fabs(x) < sa ? sb : (real)0;
    case 1: {                                   // polynomial: max(sa - sb |x|, 0)
        real h = sa - sb * fabs(x);
        return h > 0 ? h : (real)0;
    }
    case 2: {                                   // logistic: s (1 - s) / sb
        real s = (real)0.5 + (real)0.5 * tanh(x / sa);
        return s * ((real)1 - s) / sb;
    }
    default:                                    // gaussian: exp(-x x / sa) / sb
        return exp(-x * x / sa) / sb;
    }
}

// f(o) and f'(o): 0/1 spikes pick F0/F1 (dF0/dF1); real outputs compute them.
__device__ void carry_of(real o, int binary, int carry, real tau, real F0, real F1,
                         real dF0, real dF1, real slope, real* F, real* dF) {
    if (binary) {
        *F = o != 0 ? F1 : F0;
        *dF = o != 0 ? dF1 : dF0;
    } else if (carry == 0) {                    // exp: f = tau e^{-o/tau}, f' = -e^{-o/tau}
        real x = exp(-o / tau);
        *dF = -x;
        *F = tau * x;
    } else {                                    // linear: f = tau + slope o, f' = slope
        *F = tau + slope * o;
        *dF = slope;
    }
}

// Pair i of a layer with BN = B * n pairs: U holds X on entry (T x BN, time-major) and
// U on exit; O receives the spikes (0/1, or the logistic).
__device__ void layer_forward_one(long long i, real* U, real* O, const real* b,
        long long T, long long BN, long long n, real tau, real F0, real F1, real slope,
        real v_th, int binary, int carry, real sa) {
    real u = 0, o = 0, F, dF;
    for (long long t = 0; t < T; ++t) {
        long long k = t * BN + i;
        carry_of(o, binary, carry, tau, F0, F1, F0, F1, slope, &F, &dF);
        u = t == 0 ? U[k] + b[i % n] : (U[k] + b[i % n]) + u * F;
        real x = u - v_th;
        o = binary ? (x >= 0 ? (real)1 : (real)0) : (real)0.5 + (real)0.5 * tanh(x / sa);
        U[k] = u;
        O[k] = o;
    }
}

// E of pair i from t = T down to 1 for rule 0 (exact), 1 (seed) or 2 (detached).
// S: the spatial term (T x BN); spikes come as bytes (binary, O8) or reals (Or).
// P receives Delta g'(U) for the sheet's rule (else the caller uses E).
__device__ void layer_backward_one(long long i, real* E, real* P, const real* S,
        const real* U, const unsigned char* O8, const real* Or, long long T, long long BN,
        real tau, real F0, real F1, real dF0, real dF1, real slope, real v_th, int binary,
        int carry, int rule, int curve, real sa, real sb) {
    real e = 0, d = 0, g_next = 0, F, dF;
    for (long long t = T - 1; t >= 0; --t) {
        long long k = t * BN + i;
        real u = U[k];
        real g = surrogate_grad(u - v_th, curve, sa, sb);
        carry_of(binary ? (real)(O8[k] != 0) : Or[k], binary, carry, tau, F0, F1, dF0,
                 dF1, slope, &F, &dF);
        real s = S[k];
        if (rule == 1) {
            d = t == T - 1 ? s : s + d * u * g_next * dF;
            real p = d * g;
            e = t == T - 1 ? p : p + e * F;
            P[k] = p;
            g_next = g;
        } else if (rule == 0) {
            real A = u * dF * g + F;
            e = t == T - 1 ? s * g : s * g + A * e;
        } else {
            e = t == T - 1 ? s * g : s * g + e * F;
        }
        E[k] = e;
    }
}
"""

#: the body of every entry: the thread's pair from the grid, then the per-thread function
ENTRY_BODY = ("long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
              "    if (i < BN) {name}_one(i, {args});")

CPU_PRELUDE = r"""#include <cmath>
using std::exp; using std::fabs; using std::tanh;
#define __device__ static inline
struct dim3_ { long long x; };
"""


def _params(name):
    return ", ".join(f"{ctype} {arg}" for ctype, arg in SIGNATURES[name])


def _body(name):
    return ENTRY_BODY.format(name=name, args=", ".join(arg for _, arg in SIGNATURES[name]))


def cuda_entry(name):
    """The ``extern "C" __global__`` entry of kernel ``name``."""
    return f'extern "C" __global__ void {name}({_params(name)}) {{\n    {_body(name)}\n}}\n'


def cpu_entry(name):
    """The CPU emulation of entry ``name``: two leading parameters, the grid and block
    sizes, then a loop over every (blockIdx.x, threadIdx.x) around the CUDA entry's body."""
    return (f'extern "C" void {name}(long long grid_, long long block_, {_params(name)}) {{\n'
            "    dim3_ blockIdx, threadIdx, blockDim = {block_};\n"
            "    for (blockIdx.x = 0; blockIdx.x < grid_; ++blockIdx.x)\n"
            "    for (threadIdx.x = 0; threadIdx.x < block_; ++threadIdx.x) {\n"
            f"    {_body(name)}\n    }}\n}}\n")


def source(target, real):
    """The complete source for target "cuda" or "cpu" with real = "float" or "double"."""
    if target not in ("cuda", "cpu") or real not in ("float", "double"):
        raise ValueError(f"no kernel source for target={target!r}, real={real!r}")
    entry = cuda_entry if target == "cuda" else cpu_entry
    prelude = CPU_PRELUDE if target == "cpu" else ""
    return f"{prelude}typedef {real} real;\n{SOURCE}\n" + "".join(map(entry, SIGNATURES))


def grid(n_threads, threads=THREADS):
    """Blocks of ``threads`` threads that cover n_threads (at least one)."""
    return max(1, math.ceil(n_threads / threads))


class LaunchKernels(Kernels):
    """``layer_forward`` and ``layer_backward`` by launching the CUDA source's entries.

    Subclasses supply ``launch(name, real, n_threads, values)``, values being the
    arguments in the order of ``SIGNATURES[name]`` (arrays, Python or NumPy numbers).
    """

    def _call(self, name, dtype, n_threads, **args):
        values = [args[arg] for _, arg in SIGNATURES[name]]
        real = "float" if real_type(dtype) is numpy.float32 else "double"
        self.launch(name, real, n_threads, values)

    def layer_forward(self, X, b, form):
        self._check(form)
        xp = self.xp
        real = real_type(X.dtype)
        U = xp.ascontiguousarray(X)               # X itself when it is contiguous already
        b = xp.ascontiguousarray(b, dtype=U.dtype)
        O = xp.empty_like(U)
        T, B, n = U.shape
        self._call("layer_forward", U.dtype, B * n, U=U, O=O, b=b, T=T, BN=B * n, n=n,
                   tau=real(form.tau), F0=real(form.F0), F1=real(form.F1),
                   slope=real(form.slope), v_th=real(form.v_th), binary=int(form.binary),
                   carry=CARRIES[form.carry], sa=real(form.sa))
        return U, O

    def layer_backward(self, spatial, U, O, form, rule="exact"):
        self._check(form, rule)
        xp = self.xp
        real = real_type(U.dtype)
        S = xp.ascontiguousarray(xp.broadcast_to(spatial, U.shape), dtype=U.dtype)
        U = xp.ascontiguousarray(U)
        binary = O.dtype == xp.bool_              # stored 0/1 spikes, else real outputs
        O8 = xp.ascontiguousarray(O).view(xp.uint8) if binary else xp.zeros(1, dtype=xp.uint8)
        Or = xp.zeros(1, dtype=U.dtype) if binary else xp.ascontiguousarray(O, dtype=U.dtype)
        E = xp.empty_like(U)
        P = xp.empty_like(U) if rule == "seed" else xp.zeros(1, dtype=U.dtype)
        T, B, n = U.shape
        self._call("layer_backward", U.dtype, B * n, E=E, P=P, S=S, U=U, O8=O8, Or=Or, T=T,
                   BN=B * n, tau=real(form.tau), F0=real(form.F0), F1=real(form.F1),
                   dF0=real(form.dF0), dF1=real(form.dF1), slope=real(form.slope),
                   v_th=real(form.v_th), binary=int(binary), carry=CARRIES[form.carry],
                   rule=RULES[rule], curve=CURVES[form.curve], sa=real(form.sa),
                   sb=real(form.sb))
        return E, (P if rule == "seed" else E)


class CudaKernels(LaunchKernels):
    """The kernels compiled by CuPy (NVRTC, ``--fmad=false``) for CuPy arrays."""

    OPTIONS = ("--fmad=false",)

    def __init__(self, xp):
        super().__init__(xp)
        self._modules = {}

    def launch(self, name, real, n_threads, values):
        cupy = self.xp
        if real not in self._modules:
            self._modules[real] = cupy.RawModule(code=source("cuda", real),
                                                 options=self.OPTIONS)
        scalar = {"long long": cupy.int64, "int": cupy.int32,
                  "real": cupy.float32 if real == "float" else cupy.float64}
        args = [scalar[ctype](v) if ctype in scalar else v
                for (ctype, _), v in zip(SIGNATURES[name], values)]
        kernel = self._modules[real].get_function(name)
        kernel((grid(n_threads),), (THREADS,), tuple(args))


class EmulatedKernels(LaunchKernels):
    """The CUDA source compiled for this CPU with a C++ compiler, for NumPy arrays.

    Each entry loops over the blocks and threads of the launch that CuPy would make
    (``threads`` per block).  The tests use this build to check the kernels' arithmetic and
    their grid indexing on machines without a GPU.  Raises RuntimeError naming the
    compiler when it is missing or fails.
    """

    def __init__(self, xp, compiler="g++", folder=None, threads=THREADS):
        import shutil
        import tempfile

        super().__init__(xp)
        if shutil.which(compiler) is None:
            raise RuntimeError(f"C++ compiler {compiler!r} not found; it is needed to build "
                               "the fused kernels for the CPU")
        self.compiler, self.threads = compiler, threads
        self.folder = folder or tempfile.mkdtemp(prefix="stbp-kernels-")
        self._libraries = {}

    def library(self, real):
        import ctypes
        import os
        import subprocess

        if real not in self._libraries:
            src = os.path.join(self.folder, f"kernels_{real}.cpp")
            lib = os.path.join(self.folder, f"kernels_{real}.so")
            with open(src, "w") as fh:
                fh.write(source("cpu", real))
            done = subprocess.run([self.compiler, "-O2", "-ffp-contract=off", "-shared",
                                   "-fPIC", "-o", lib, src], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{self.compiler} could not build the kernels:\n{done.stderr}")
            self._libraries[real] = ctypes.CDLL(lib)
        return self._libraries[real]

    def launch(self, name, real, n_threads, values):
        import ctypes

        scalar = {"long long": ctypes.c_longlong, "int": ctypes.c_int,
                  "real": ctypes.c_float if real == "float" else ctypes.c_double}
        args = [scalar[ctype](v) if ctype in scalar else ctypes.c_void_p(v.ctypes.data)
                for (ctype, _), v in zip(SIGNATURES[name], values)]
        entry = getattr(self.library(real), name)
        entry(ctypes.c_longlong(grid(n_threads, self.threads)),
              ctypes.c_longlong(self.threads), *args)


__all__ = ["THREADS", "SOURCE", "ENTRY_BODY", "CPU_PRELUDE", "cuda_entry", "cpu_entry", "source",
           "grid", "LaunchKernels", "CudaKernels", "EmulatedKernels"]
