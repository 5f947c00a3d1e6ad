"""The array backend: NumPy by default, CuPy on a GPU, switched in this one place.

Model code never imports NumPy for its array math.  It asks this module for the
namespace at call time::

    from stbp import backend
    xp = backend.xp          # numpy or cupy, whichever is selected
    u = xp.zeros((T, B, n))

Select the backend with ``backend.use("cupy")`` in code, or with the environment
variable ``STBP_BACKEND=cupy`` before ``import stbp``; ``STBP_FUSE=0`` (or ``off``,
``false``, ``no``; or ``use(..., fuse=False)``) turns the fused kernels off, and a value
it cannot read is an error (:mod:`stbp.env`).  Asking for CuPy where it is not
installed, or where no CUDA device works, raises :class:`BackendError` saying which of
the two is the problem; at ``import stbp`` a bad ``STBP_BACKEND`` is a warning instead,
and the NumPy backend is selected (``import stbp`` itself never fails on it).

**The engine is chosen here**, by :func:`engine`: the book's array code
(``stbp.engine.ARRAY``) or the fused kernels (``stbp.engine.Fused``), which compute the
same numbers.

Importing the package changes nothing in the process: neither malloc's settings nor
Numba's thread count.  :func:`tune_process` does both, for the training and benchmark
commands (``python -m stbp.reproduce``, ``python -m stbp.bench``), or for a user who
asks (chapter 7 measures what they gain).

This module is hand-written glue, not exported from the book.
"""
from __future__ import annotations

import base64
import os

import numpy

from stbp import env
from stbp.engine import ARRAY, Fused

NAMES = ("numpy", "cupy")

#: The array namespace of the selected backend (``numpy`` or ``cupy``).
xp = numpy
#: The name of the selected backend.
name = "numpy"
#: The fused engine of the selected backend (:class:`stbp.engine.Fused`, its kernels in
#: ``fused.kernels``), or None when the book's array code runs as written; their
#: arithmetic is the array code's (chapter 7).
fused = None
#: The limit in bytes under which freed blocks stay in the process (keep_freed_memory),
#: or None where malloc was left as it is.
kept_freed = None
#: the exponent tune_process gave OpenBLAS's thread timeout (quiet_blas_threads), or None
blas_timeout = None


class BackendError(RuntimeError):
    """The requested array backend cannot be used on this machine."""


def _load_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(
            "the CuPy backend was requested but CuPy is not installed "
            f"({exc}); install it with `pip install 'stbp[cupy]'` on a machine "
            "with an NVIDIA GPU and a CUDA 12 driver, or use the NumPy backend"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, missing driver library, ...
        raise BackendError(
            f"CuPy is installed but no CUDA device works: {exc}; "
            "use the NumPy backend on this machine"
        ) from None
    if count < 1:
        raise BackendError("CuPy is installed but no CUDA device works: "
                           "the CUDA runtime reports 0 devices")
    return cupy


#: The largest limit keep_freed_memory takes: twice it must fit in a C int.
KEEP_FREED_MAX = (2**31 - 1) // 2


def keep_freed_memory(limit=None):
    """Ask the C library's malloc to keep freed blocks of up to limit bytes for reuse
    instead of handing them back to the system (glibc's mallopt; elsewhere nothing
    changes and None is returned).

    A training step allocates and frees tens of megabytes of arrays (T B n numbers each).
    By default glibc maps every block over 128 KiB afresh and unmaps it when freed, so
    each page faults again on the next step (chapter 7 measures what that costs).  Kept,
    the process's resident memory stays at its peak.  limit: bytes, default the
    environment variable STBP_KEEP_FREED, else 256 MiB; 0 leaves malloc as it is; at most
    KEEP_FREED_MAX (mallopt takes a C int, and the trim threshold is twice the limit).
    Returns the limit in force, or None.
    """
    import ctypes
    if limit is None:
        limit = env.integer("STBP_KEEP_FREED", 256 << 20, minimum=0, maximum=KEEP_FREED_MAX,
                            what="a number of bytes (0: off)")
    limit = int(limit)
    if limit > KEEP_FREED_MAX:
        raise ValueError(f"limit must be at most {KEEP_FREED_MAX} bytes (malloc's C int "
                         f"holds twice it); got limit = {limit}")
    if limit <= 0:
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return None
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    if not (mallopt(M_MMAP_THRESHOLD, limit) and mallopt(M_TRIM_THRESHOLD, 2 * limit)):
        return None
    return limit


#: OpenBLAS's idle threads wait 2^this many cycles before they sleep (its own default is
#: 2^28 clock ticks, at least 50 ms below 5 GHz, of yielding after every product:
#: time the kernels' threads need; THREAD_TIMEOUT in its driver/others/blas_server.c)
BLAS_THREAD_TIMEOUT = 4


def quiet_blas_threads(exponent=None):
    """Make the OpenBLAS that NumPy loaded put its idle threads to sleep after 2^exponent
    cycles instead of 2^28 (``OPENBLAS_THREAD_TIMEOUT``, which OpenBLAS reads when it
    starts its threads), so that they stop competing with the kernels' threads for the
    cores between products; chapter 7 measures the difference.

    exponent: 4-30, default the environment's OPENBLAS_THREAD_TIMEOUT, else
    BLAS_THREAD_TIMEOUT.  When the variable was already set, OpenBLAS read it at start
    and nothing is changed.  Otherwise the variable is set, and OpenBLAS (found among the
    process's loaded libraries, Linux only) re-reads its environment and stops its
    threads, which it starts again, with the new timeout, at the next product.  Returns
    the exponent in force, or None where no OpenBLAS could be told (another BLAS, or
    another system).
    """
    import ctypes
    if os.environ.get("OPENBLAS_THREAD_TIMEOUT"):
        return env.integer("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT, minimum=4,
                           maximum=30)
    exponent = BLAS_THREAD_TIMEOUT if exponent is None else int(exponent)
    if not 4 <= exponent <= 30:
        raise ValueError(f"exponent must lie in [4, 30] (OpenBLAS's range); got {exponent}")
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(p for p in paths if ".so" in os.path.basename(p)):
        try:
            lib = ctypes.CDLL(path)
            read_env, shutdown = lib.openblas_read_env, lib.blas_thread_shutdown_
        except (OSError, AttributeError):
            continue
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(exponent)
        read_env()
        shutdown()
        return exponent
    return None


def use(backend: str, fuse=None):
    """Select the array backend by name, ``"numpy"`` or ``"cupy"``; return its namespace.

    Both run fused kernels by default (Numba on NumPy, CUDA on CuPy; chapter 7).
    ``fuse=False``, or the environment variable ``STBP_FUSE=0`` when fuse is not given,
    runs the array code of chapters 2, 3 and 5 as written instead.
    """
    global xp, name, fused
    if backend not in NAMES:
        raise BackendError(f"unknown backend {backend!r}; choose one of {NAMES}")
    if fuse is None:
        fuse = env.flag("STBP_FUSE", True)
    new_xp = numpy if backend == "numpy" else _load_cupy()
    new_fused = None
    if fuse and backend == "numpy":
        from stbp.kernels.cpu import NumbaKernels
        new_fused = Fused(NumbaKernels(numpy))
    elif fuse:
        from stbp.kernels.cuda import CudaKernels
        new_fused = Fused(CudaKernels(new_xp))
    xp, name, fused = new_xp, backend, new_fused
    return xp


def engine(surrogate=None):
    """The engine that runs the model's loops, chosen here and nowhere else: the fused
    kernels when they are on (and, for a layer's recurrence, know the surrogate's curve),
    else the book's array code, ``stbp.engine.ARRAY``."""
    if fused is None or (surrogate is not None and not fused.supports(surrogate)):
        return ARRAY
    return fused


def tune_process(threads=None):
    """Set what the training commands set and ``import stbp`` leaves alone: malloc keeps
    freed blocks for reuse (:func:`keep_freed_memory`, ``STBP_KEEP_FREED``) and Numba runs
    ``threads`` kernel threads (else ``STBP_NUMBA_THREADS``, else every core), which sleep
    between kernels (``stbp.kernels.cpu.configure_threads``; chapter 7), as OpenBLAS's
    threads then do too (:func:`quiet_blas_threads`).  Returns {"kept_freed": bytes or
    None, "numba_threads": count or None, "blas_timeout": exponent or None}."""
    global kept_freed, blas_timeout
    if name == "numpy" and kept_freed is None:
        kept_freed = keep_freed_memory()
    count = None
    if fused is not None and name == "numpy":
        from stbp.kernels.cpu import configure_threads
        count = configure_threads(threads)
        if blas_timeout is None:
            blas_timeout = quiet_blas_threads()
    return {"kept_freed": kept_freed, "numba_threads": count, "blas_timeout": blas_timeout}


def memory():
    """The bytes of memory of the device that holds the arrays: the machine's physical
    memory on NumPy, the GPU's on CuPy; None where it cannot be read."""
    try:
        if name == "cupy":
            return int(xp.cuda.runtime.memGetInfo()[1])
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except Exception:              # no sysconf (Windows), a CUDA error: unknown
        return None


def to_numpy(a):
    """Return ``a`` as a NumPy array on the host (a no-op for NumPy arrays)."""
    if isinstance(a, numpy.ndarray):
        return a
    get = getattr(a, "get", None)  # cupy.ndarray -> numpy.ndarray
    return get() if callable(get) else numpy.asarray(a)


def asarray(a, dtype=None):
    """Return ``a`` as an array of the selected backend (copied to the GPU if needed)."""
    return xp.asarray(a, dtype=dtype)


def default_rng(seed=None):
    """A random generator of the selected backend; the same seed gives the same draws."""
    return xp.random.default_rng(seed)


def rng_state(rng):
    """A JSON-able snapshot of a generator's state, for checkpoints.

    NumPy's generators expose it as a dict.  CuPy's keep their cuRAND states in device
    memory (``bit_generator._state``, a byte array), saved here as base64 text.
    """
    bits = rng.bit_generator
    state = getattr(bits, "state", None)
    if isinstance(state, dict):
        return state
    raw = getattr(bits, "_state", None)
    if raw is None:
        raise BackendError(f"cannot save the state of a {type(bits).__name__} generator")
    return {"bit_generator": type(bits).__name__,
            "device_state": base64.b64encode(to_numpy(raw).tobytes()).decode("ascii")}


def set_rng_state(rng, state):
    """Restore a generator to a snapshot taken by :func:`rng_state`."""
    bits = rng.bit_generator
    if "device_state" not in state:
        bits.state = state
        return
    raw = getattr(bits, "_state", None)
    if raw is None or state.get("bit_generator") != type(bits).__name__:
        raise BackendError(f"the checkpoint holds the state of a {state.get('bit_generator')} "
                           f"generator on a GPU; this one is a {type(bits).__name__}")
    data = numpy.frombuffer(base64.b64decode(state["device_state"]), dtype=numpy.int8)
    if data.size != raw.nbytes:
        raise BackendError(f"the checkpoint's generator state has {data.size} bytes, this "
                           f"generator {raw.nbytes} (saved on a different GPU model?)")
    raw[...] = asarray(data.view(raw.dtype).reshape(raw.shape))


def permutation(rng, n):
    """A random permutation of range(n) drawn from rng (CuPy's Generator has no permutation)."""
    if hasattr(rng, "permutation"):
        return rng.permutation(n)
    return xp.argsort(rng.random(n))


def _use_at_import():
    """Select STBP_BACKEND's backend (NumPy if unset); where it cannot be used, warn and
    select NumPy, so that ``import stbp`` works and says why."""
    try:
        use(env.choice("STBP_BACKEND", NAMES, "numpy"))
    except (BackendError, ValueError) as exc:
        import warnings
        said = str(exc) if "STBP_" in str(exc) else f"STBP_BACKEND: {exc}"
        warnings.warn(f"{said}; the NumPy backend is selected instead",
                      RuntimeWarning, stacklevel=3)
        try:
            use("numpy")
        except ValueError:                       # STBP_FUSE unreadable: the default
            use("numpy", fuse=True)


_use_at_import()


__all__ = ["NAMES", "xp", "name", "fused", "kept_freed", "blas_timeout", "BLAS_THREAD_TIMEOUT",
           "quiet_blas_threads", "BackendError", "KEEP_FREED_MAX",
           "keep_freed_memory",
           "use", "engine", "tune_process", "memory",
           "to_numpy", "asarray", "default_rng", "rng_state", "set_rng_state",
           "permutation"]
