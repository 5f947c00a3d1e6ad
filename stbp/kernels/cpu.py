"""The fused kernels for NumPy arrays, compiled by Numba (the default on the NumPy backend).

Each layer kernel loops over the batch (in parallel), the T steps and the n neurons of a
row, so the innermost loop runs over contiguous memory; u, o and E stay in registers and
the surrogate curve, the carry factors and A^t never become arrays.  Every operation is
the array code's, in the same order and the same dtype (Python floats are rounded to the
array's dtype first, as NumPy does), so the results equal the array code's bit for bit,
except where a curve needs exp or tanh: Numba calls the C library's, NumPy its own, and
they may differ in the last bit (the tests state the tolerance).

Besides the layers: the Bernoulli encoder's comparison and cast (one pass over the
random numbers NumPy drew, instead of two), the Adam and SGD updates (one pass over
each parameter instead of one per array operation), and chapter 8's im2col and col2im
(one pass each, instead of a strided copy with short contiguous runs and k*k strided
sums), and its average pooling and pooling's transpose (one pass each, instead of
k*k strided passes).

Threads: see :func:`configure_threads` (chapter 7 measures the options).

Numba caches the compiled kernels on disk (next to this file, else in the user's cache
folder or ``NUMBA_CACHE_DIR``).  Where none of these is writable (a read-only install),
the kernels are compiled in every process instead, with a warning, rather than failing
at import (``CACHE``).

Hand-written glue, not exported from the book.
"""
from __future__ import annotations

import numbers
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, prange

from stbp import env
from stbp.kernels import CARRIES, CURVES, RULES, Kernels, real_type


def _probe():
    """A function for _cache_works to cache, from this file as every kernel is."""
    return 0


def _cache_works():
    """Whether Numba finds a writable cache folder for this file's kernels; where it does
    not, it refuses cache=True at decoration, so warn and compile without the cache."""
    try:
        njit(cache=True)(_probe)
    except RuntimeError as exc:
        warnings.warn(f"the fused kernels will be compiled in every process: Numba found no "
                      f"writable cache folder ({exc}); set NUMBA_CACHE_DIR to a writable "
                      f"folder to keep them", RuntimeWarning, stacklevel=2)
        return False
    return True


#: Whether the compiled kernels are cached on disk (see the module's docstring).
CACHE = _cache_works()


@njit(cache=CACHE, inline="always")
def _grad(x, curve, sa, sb, zero, half, one):
    """g'(x) of curve 0-3 (stbp.kernels.CURVES) with its constants sa, sb."""
    if curve == 0:
        return sb if abs(x) < sa else zero
    if curve == 1:
        h = sa - sb * abs(x)
        return h if h > zero else zero
    if curve == 2:
        s = half + half * np.tanh(x / sa)
        return s * (one - s) / sb
    return np.exp(-x * x / sa) / sb


def _make_forward(binary, carry):
    """The forward kernel for one case: binary (0/1 spikes, else the smooth curve's real
    outputs) and carry (0 "exp", 1 affine: "linear" or "reset", whose slope is an argument)
    are constants of the compiled code."""

    @njit(cache=CACHE, parallel=True)
    def _forward(U, b, O, tau, F0, F1, slope, v_th, sa, half, one):
        T, B, n = U.shape
        zero = half - half
        for i in prange(B):
            for t in range(T):
                for j in range(n):
                    u = U[t, i, j] + b[j]
                    if t > 0:
                        o = O[t - 1, i, j]
                        if binary:
                            F = F1 if o != zero else F0
                        elif carry == 0:
                            F = tau * np.exp(-o / tau)
                        else:
                            F = tau + slope * o
                        u = u + U[t - 1, i, j] * F
                    U[t, i, j] = u
                    x = u - v_th
                    if binary:
                        O[t, i, j] = one if x >= zero else zero
                    else:
                        O[t, i, j] = half + half * np.tanh(x / sa)

    return _forward


@njit(cache=CACHE)
def _spike_row(U, U_prev, O8, O8_prev, o, b, first, F0, F1, v_th, zero, one):
    """One row of the forward kernel on 0/1 spikes (t = 0 when first): U = U + b +
    U_prev F(O8_prev) in place, the spikes as 0/1 numbers in o and as bools in O8.
    Called with rows (1-d, contiguous), so that its loop compiles to vector
    instructions, as the loop of _forward over U[t, i, j] does."""
    for j in range(U.shape[0]):
        u = U[j] + b[j]
        if not first:
            F = F1 if O8_prev[j] else F0
            u = u + U_prev[j] * F
        U[j] = u
        spike = u - v_th >= zero
        o[j] = one if spike else zero
        O8[j] = spike


@njit(cache=CACHE)
def _pool_row(src, dst, k, C, W, Ho, Wo, scale):
    """k x k average pooling of one map as a row: src (H W C) -> dst (Ho Wo C), each
    window's sum in the array code's order ((0, 0) first, then i, j in turn) times scale
    = 1/k^2. Not inlined: inlined into the layer kernel, Numba compiled it to code
    twice as slow."""
    WC, WoC = W * C, Wo * C
    for p in range(Ho):
        d = dst[p * WoC:(p + 1) * WoC]
        for i in range(k):
            s0 = src[(k * p + i) * WC:(k * p + i + 1) * WC]
            for j in range(k):
                for q in range(Wo):
                    o, s = q * C, (k * q + j) * C
                    if i == 0 and j == 0:
                        for c in range(C):
                            d[o + c] = s0[s + c]
                    else:
                        for c in range(C):
                            d[o + c] += s0[s + c]
        for m in range(WoC):
            d[m] *= scale


@njit(cache=CACHE)
def _spread_row(g, dst, k, C, W, Ho, Wo, kk):
    """Pooling's transpose on one map as a row: every input of a window gets its share
    g / kk of the window's error, g (Ho Wo C) -> dst (H W C), kk = k^2."""
    WC, WoC = W * C, Wo * C
    for p in range(Ho):
        for i in range(k):
            d = dst[(k * p + i) * WC:(k * p + i + 1) * WC]
            for q in range(Wo):
                src = g[p * WoC + q * C:p * WoC + (q + 1) * C]
                for j in range(k):
                    o = (k * q + j) * C
                    for c in range(C):
                        d[o + c] = src[c] / kk


@njit(cache=CACHE, parallel=True)
def _forward_pooled(U, b, O8, A, F0, F1, v_th, half, one, k, C, W, scale):
    """The forward kernel on 0/1 spikes with a k x k pooling above the layer: per row,
    U and the spikes (as bools, O8, as the trace stores them), then the row's spikes
    pooled into A (T, B, Ho Wo C) from a row of 0/1 numbers that stays in cache, so the
    layer's spikes never become an array of numbers."""
    T, B, n = U.shape
    zero = half - half
    Ho, Wo = (n // (W * C)) // k, W // k
    for i in prange(B):
        o = np.empty(n, U.dtype)
        for t in range(T):
            prev = t - 1 if t > 0 else 0
            _spike_row(U[t, i], U[prev, i], O8[t, i], O8[prev, i], o, b, t == 0, F0, F1,
                       v_th, zero, one)
            _pool_row(o, A[t, i], k, C, W, Ho, Wo, scale)


def _make_backward(binary, carry, rule, curve, pooled=False):
    """The backward kernel for one case: binary, carry (0 "exp", 1 affine), rule (0 exact,
    1 seed, 2 detached) and curve (0-3, see _grad) are constants of the compiled code, so
    the loop over neurons holds no branch on them and compiles to vector instructions
    (a curve read at run time keeps it scalar). pooled: S holds the errors of a k x k
    pooling above the layer (T, B, Ho Wo C), and each row's spatial term is spread from
    them (pooling's transpose, _spread_row) into a row that stays in cache, instead of
    being read from an array of the layer's size; the geometry (maps of width W and C
    channels, kk = k^2) is ignored otherwise."""

    @njit(cache=CACHE, parallel=True)
    def _backward(S, U, O8, Or, E, P, tau, F0, F1, dF0, dF1, slope, v_th, sa, sb, half,
                  one, k, C, W, kk):
        T, B, n = U.shape
        zero = half - half
        Ho, Wo = (n // (W * C)) // k, W // k
        for i in prange(B):
            d = np.zeros(n, U.dtype)             # the sheet's Delta^{t+1} and g'(U^{t+1})
            g_next = np.zeros(n, U.dtype)
            row = np.empty(n if pooled else 1, U.dtype)   # a row's spread spatial term
            for t in range(T - 1, -1, -1):
                if pooled:
                    _spread_row(S[t, i], row, k, C, W, Ho, Wo, kk)
                for j in range(n):
                    u = U[t, i, j]
                    g = _grad(u - v_th, curve, sa, sb, zero, half, one)
                    if binary:
                        spike = O8[t, i, j]
                        F = F1 if spike else F0
                        dF = dF1 if spike else dF0
                    elif carry == 0:
                        ex = np.exp(-Or[t, i, j] / tau)
                        dF = -ex
                        F = tau * ex
                    else:
                        F = tau + slope * Or[t, i, j]
                        dF = slope
                    s = row[j] if pooled else S[t, i, j]
                    if rule == 1:                    # the sheet's cases 1-4 (rule="seed")
                        if t < T - 1:
                            s = s + d[j] * u * g_next[j] * dF
                        d[j] = s
                        g_next[j] = g
                        p = s * g
                        P[t, i, j] = p
                        e = p if t == T - 1 else p + E[t + 1, i, j] * F
                    elif rule == 0:                  # exact
                        e = s * g
                        if t < T - 1:
                            e = e + (u * dF * g + F) * E[t + 1, i, j]
                    else:                            # detached
                        e = s * g
                        if t < T - 1:
                            e = e + E[t + 1, i, j] * F
                    E[t, i, j] = e

    return _backward


_COMPILED = {}


def _kernel(make, *case):
    """The kernel make(*case), built once per process (and compiled once per machine:
    Numba's cache keys each case by the constants it closes over)."""
    key = (make, case)
    if key not in _COMPILED:
        _COMPILED[key] = make(*case)
    return _COMPILED[key]


@njit(cache=CACHE, parallel=True)
def _bernoulli(R, x, out):
    T, M = R.shape
    for t in prange(T):
        for j in range(M):
            out[t, j] = 1 if R[t, j] < x[j] else 0


@njit(cache=CACHE, parallel=True)
def _adam(p, m, s, g, b1, omb1, b2, omb2, rc2, eps, lrc1):
    for i in prange(p.size):
        gi = g[i]
        mi = m[i] * b1 + gi * omb1
        si = s[i] * b2 + gi * gi * omb2
        m[i] = mi
        s[i] = si
        p[i] = p[i] - mi / (np.sqrt(si) * rc2 + eps) * lrc1


@njit(cache=CACHE, parallel=True)
def _sgd(p, v, g, mu, lr):
    for i in prange(p.size):
        vi = v[i] * mu + g[i]
        v[i] = vi
        p[i] = p[i] - lr * vi


@njit(cache=CACHE, parallel=True)
def _im2col(A, k, out):
    """out[r, p, q, i, :] = A[r, p + i, q C : (q + k) C]: the windows of maps A (R, H, W C),
    each window row one contiguous run of k C numbers; out is (R, Ho, Wo, k, k C)."""
    R, Ho, Wo, _, kC = out.shape
    C = kC // k
    for r in prange(R):
        for p in range(Ho):
            for q in range(Wo):
                for i in range(k):
                    src = A[r, p + i]
                    out[r, p, q, i, :] = src[q * C:q * C + kC]


def _make_im2col_one(k):
    """_im2col for maps of one channel (C = 1), with k a constant of the compiled code:
    each window row is k runs of only k numbers, which a loop of known length copies
    without the overhead of a slice per run (the first convolution's rows, k = 5:
    built in less than half the time; with more channels the runs are long enough for
    the slices of _im2col, which are then the faster)."""

    @njit(cache=CACHE, parallel=True)
    def _im2col_one(A, out):
        R, Ho, Wo = out.shape[:3]
        for r in prange(R):
            for p in range(Ho):
                for q in range(Wo):
                    for i in range(k):
                        for j in range(k):
                            out[r, p, q, i, j] = A[r, p + i, q + j]

    return _im2col_one


@njit(cache=CACHE, parallel=True)
def _col2im(win, k, A):
    """A[r, p + i, q + j, c] += win[r, p, q, i, j, c], each map's window rows p from the
    last down and, within one, the offsets (i, j) in order, so that every position adds
    its terms in the order of the array code's offsets (i, j) ascending and every sum is
    the same, bit for bit. The loop over i sits inside the one over p, so that the k
    rows of A that a window row p writes stay in cache; the loop over q sits inside the
    one over j, so that consecutive additions go to different positions (i inside q was
    four times slower, j outside q a quarter faster than inside); each thread writes its
    own maps."""
    R, Ho, Wo = win.shape[:3]
    C = A.shape[3]
    for r in prange(R):
        for p in range(Ho - 1, -1, -1):
            for i in range(k):
                for j in range(k):
                    for q in range(Wo):
                        for c in range(C):
                            A[r, p + i, q + j, c] += win[r, p, q, i, j, c]


@njit(cache=CACHE, parallel=True)
def _pool_forward(A, k, C, W, scale, out):
    """out[r, p, q, c] = (the sum of A[r, k p + i, k q + j, c] over the window, in the array
    code's order: (0, 0) first, then i, j in turn) times scale = 1/k^2; maps of width W
    and C channels as rows, A (R, H W C) and out (R, Ho Wo C), one map at a time."""
    R, HWC = A.shape
    Ho, Wo = HWC // (W * C) // k, W // k
    for r in prange(R):
        _pool_row(A[r], out[r], k, C, W, Ho, Wo, scale)


@njit(cache=CACHE, parallel=True)
def _pool_backward(G, k, C, W, kk, out):
    """out[r, k p + i, k q + j, c] = G[r, p, q, c] / kk, kk = k^2: every input of a window
    gets its share of the window's error; maps of width W and C channels as rows,
    G (R, Ho Wo C) and out (R, H W C), one map at a time."""
    R, HWC = out.shape
    Ho, Wo = HWC // (W * C) // k, W // k
    for r in prange(R):
        _spread_row(G[r], out[r], k, C, W, Ho, Wo, kk)


_POOLS = {}


def _pool(threads):
    """A pool of `threads` Python threads, made once per count."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(max_workers=threads,
                                             thread_name_prefix="stbp-blocks")
    return _POOLS[threads]


def _flat(a, name):
    """a as a 1-d view (parameters and optimiser state are updated in place)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous array to be updated in place")
    return a.reshape(-1)


def configure_threads(n=None):
    """Set Numba's thread count: n, else STBP_NUMBA_THREADS, else every core Numba may use
    (NUMBA_NUM_THREADS).  Unless OMP_WAIT_POLICY is set, it is set to PASSIVE first, so
    that the kernels' OpenMP threads sleep between kernels instead of spinning against
    the BLAS pool's threads (chapter 7 measures both; the setting counts only where the
    OpenMP runtime starts after it, as it does when the commands call this first).
    Returns the count in force."""
    most = numba.config.NUMBA_NUM_THREADS
    if n is None:
        n = env.integer("STBP_NUMBA_THREADS", most, minimum=1, maximum=most)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"Numba threads must be an integer in [1, {most}], got {n!r}")
    n = int(n)
    if not 1 <= n <= most:
        raise ValueError(f"Numba threads must lie in [1, {numba.config.NUMBA_NUM_THREADS}], "
                         f"got {n}")
    if not os.environ.get("OMP_WAIT_POLICY"):           # unset or empty: not the user's
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    numba.set_num_threads(n)
    return n


def _layer_backward(S, U, O, form, rule, pool):
    """The backward kernel on S, the spatial term (T, B, n), or with pool = (k, C, W)
    the errors of a pooling above (T, B, Ho Wo C); returns E and P."""
    real = real_type(U.dtype)
    binary = O.dtype == np.bool_             # stored 0/1 spikes, else real outputs
    O8 = np.ascontiguousarray(O) if binary else np.zeros((1, 1, 1), np.bool_)
    Or = np.zeros((1, 1, 1), U.dtype) if binary else np.ascontiguousarray(O, U.dtype)
    E = np.empty_like(U)
    P = np.empty_like(U) if rule == "seed" else np.zeros((1, 1, 1), U.dtype)
    backward = _kernel(_make_backward, bool(binary), CARRIES[form.carry], RULES[rule],
                       CURVES[form.curve], pool is not None)
    k, C, W = pool or (1, 1, 1)
    backward(S, U, O8, Or, E, P, real(form.tau), real(form.F0), real(form.F1),
             real(form.dF0), real(form.dF1), real(form.slope), real(form.v_th),
             real(form.sa), real(form.sb), real(0.5), real(1), k, C, W, real(k * k))
    return E, (P if rule == "seed" else E)


class NumbaKernels(Kernels):
    """The fused operations on NumPy arrays (see the module's docstring)."""

    def __init__(self, xp, threads=None):
        """threads: None leaves Numba's thread count as it is (stbp.backend.tune_process
        sets it for the training commands); an integer sets it."""
        super().__init__(xp)
        if threads is not None:
            configure_threads(threads)

    def layer_forward(self, X, b, form):
        self._check(form)
        real = real_type(X.dtype)
        U = np.ascontiguousarray(X)              # X itself when it is contiguous already
        b = np.ascontiguousarray(b, dtype=U.dtype)
        O = np.empty_like(U)
        forward = _kernel(_make_forward, form.binary, CARRIES[form.carry])
        forward(U, b, O, real(form.tau), real(form.F0), real(form.F1), real(form.slope),
                real(form.v_th), real(form.sa), real(0.5), real(1))
        return U, O

    def layer_forward_pooled(self, X, b, form, maps, k):
        """stbp.conv.layer_forward_pooled in one pass, for 0/1 spikes: U, the spikes as
        bools (as the trace stores them) and their k x k average pooling as maps
        (T B, H/k, W/k, C); maps: the layer's (H, W, C). X (T, B, H W C) may become U."""
        self._check(form)
        if not form.binary:
            raise ValueError("layer_forward_pooled takes 0/1 spikes (a binary surrogate); "
                             "run layer_forward and pool_forward for real outputs")
        H, W, C = maps
        T, B, n = X.shape
        if n != H * W * C or H % k or W % k:
            raise ValueError(f"maps {tuple(maps)} must hold the layer's {n} neurons and "
                             f"divide by the pooling's k = {k}")
        real = real_type(X.dtype)
        U = np.ascontiguousarray(X)
        b = np.ascontiguousarray(b, dtype=U.dtype)
        O8 = np.empty(U.shape, np.bool_)
        A = np.empty((T * B, H // k, W // k, C), dtype=U.dtype)
        _forward_pooled(U, b, O8, A.reshape(T, B, -1), real(form.F0), real(form.F1),
                        real(form.v_th), real(0.5), real(1), int(k), int(C), int(W),
                        real(1.0 / (k * k)))
        return U, O8, A

    def layer_backward(self, spatial, U, O, form, rule="exact"):
        U = np.ascontiguousarray(U)
        S = np.ascontiguousarray(np.broadcast_to(spatial, U.shape), dtype=U.dtype)
        self._check(form, rule)
        return _layer_backward(S, U, O, form, rule, None)

    def layer_backward_pooled(self, G, U, O, form, rule, k):
        """stbp.conv.layer_backward_pooled in one pass: the spatial term spread from the
        errors G (T B, Ho, Wo, C) of a k x k pooling above the layer inside the kernel,
        row by row, instead of as an array of the layer's size."""
        U = np.ascontiguousarray(U)
        T, B, n = U.shape
        _, Ho, Wo, C = G.shape
        if G.shape[0] != T * B or n != (k * Ho) * (k * Wo) * C:
            raise ValueError(f"G must hold the pooled errors of the layer's {T * B} rows of "
                             f"{n} neurons, (T B, Ho, Wo, C) with k Ho k Wo C = {n}; got "
                             f"shape {tuple(G.shape)} for k = {k}")
        G = np.ascontiguousarray(G, dtype=U.dtype).reshape(T, B, -1)
        self._check(form, rule)
        return _layer_backward(G, U, O, form, rule, (int(k), int(C), int(k * Wo)))

    def bernoulli(self, R, x, dtype):
        """(R < x).astype(dtype) in one pass: spikes from uniform draws R (T, *x.shape)."""
        out = np.empty(R.shape, dtype=dtype)
        T = R.shape[0]
        _bernoulli(np.ascontiguousarray(R).reshape(T, -1),
                   np.ascontiguousarray(x).reshape(-1), out.reshape(T, -1))
        return out

    def adam(self, p, m, s, g, lr, beta1, beta2, eps, k):
        """One Adam update of p in place (the arithmetic of stbp.optim.Adam.step)."""
        real = real_type(p.dtype)
        c1, c2 = 1 - beta1 ** k, 1 - beta2 ** k
        _adam(_flat(p, "p"), _flat(m, "m"), _flat(s, "s"),
              np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), real(beta1),
              real(1 - beta1), real(beta2), real(1 - beta2), real(1 / c2 ** 0.5), real(eps),
              real(lr / c1))

    #: block_products multiplies blocks on Python threads only when a product has at
    #: most this many entries: BLAS leaves such thin products on one thread (the first
    #: convolution's 15 x 25: 12 blocks in 14.0 ms, 9.9 on two threads), while it splits
    #: larger ones between its own threads, and threads on top of those only wait (the
    #: second convolution's 40 x 375, its rows kept: the CNN step 1.2 times as long)
    POOL_MAX_ENTRIES = 1024

    def block_products(self, As, Bs, threads=None):
        """stbp.conv.block_products on lists of blocks, the blocks' products on `threads`
        Python threads (None: as many as Numba has): the sum over blocks b of
        As[b]^T Bs[b], added in block order. NumPy's ``dot`` lets go of the interpreter
        lock around every BLAS call (``numpy/_core/src/common/cblasfuncs.c``), so the
        threads multiply blocks at once (``@`` keeps the lock when the product has at
        most 500 entries, as the first convolution's 15 x 25 gradient has:
        ``NPY_BEGIN_THREADS_THRESHOLDED`` in ``numpy/_core/src/umath/ufunc_object.c``);
        the products are added afterwards, in order, so the sum is the array code's,
        bit for bit. Only thin products go to the threads (POOL_MAX_ENTRIES)."""
        As, Bs = list(As), list(Bs)
        if len(As) != len(Bs) or not As:
            raise ValueError(f"block_products needs as many blocks of rows as of errors, "
                             f"at least one; got {len(Bs)} and {len(As)}")
        multiply = lambda ab: np.dot(ab[0].T, ab[1].astype(ab[0].dtype, copy=False))  # noqa
        threads = numba.get_num_threads() if threads is None else threads
        thin = As[0].shape[1] * Bs[0].shape[1] <= self.POOL_MAX_ENTRIES
        pairs = zip(As, Bs)
        products = (_pool(threads).map(multiply, pairs) if threads > 1 and thin
                    else map(multiply, pairs))
        total = None
        for product in products:                 # in block order
            total = np.zeros_like(product) if total is None else total
            total += product
        return total

    def im2col(self, A, k):
        """stbp.conv.im2col in one pass: the k x k windows of A (R, H, W, C) as rows."""
        R, H, W, C = A.shape
        out = np.empty((R, H - k + 1, W - k + 1, k, k * C), dtype=A.dtype)
        A = np.ascontiguousarray(A).reshape(R, H, W * C)
        if C == 1:                                   # runs of k numbers: see the kernel
            _kernel(_make_im2col_one, int(k))(A, out)
        else:
            _im2col(A, int(k), out)
        return out.reshape(-1, k * k * C)

    def col2im(self, rows, shape, k):
        """stbp.conv.col2im in one pass: rows (R Ho Wo, k k C) added back onto maps."""
        R, H, W, C = shape
        A = np.zeros(shape, dtype=rows.dtype)
        _col2im(np.ascontiguousarray(rows).reshape(R, H - k + 1, W - k + 1, k, k, C),
                int(k), A)
        return A

    def pool_forward(self, A, k):
        """stbp.conv.pool_forward in one pass: k x k averages of maps A (R, H, W, C)."""
        R, H, W, C = A.shape
        real = real_type(A.dtype)
        out = np.empty((R, H // k, W // k, C), dtype=A.dtype)
        _pool_forward(np.ascontiguousarray(A).reshape(R, -1), int(k), int(C), int(W),
                      real(1.0 / (k * k)), out.reshape(R, -1))
        return out

    def pool_backward(self, G, k):
        """stbp.conv.pool_backward in one pass: each input of a window gets 1/k^2 of the
        window's error G (R, Ho, Wo, C); returns (R, k Ho, k Wo, C)."""
        R, Ho, Wo, C = G.shape
        real = real_type(G.dtype)
        out = np.empty((R, k * Ho, k * Wo, C), dtype=G.dtype)
        _pool_backward(np.ascontiguousarray(G).reshape(R, -1), int(k), int(C), int(k * Wo),
                       real(k * k), out.reshape(R, -1))
        return out

    def sgd(self, p, v, g, lr, momentum):
        """One SGD-with-momentum update of p in place (stbp.optim.SGD.step)."""
        real = real_type(p.dtype)
        _sgd(_flat(p, "p"), _flat(v, "v"), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1),
             real(momentum), real(lr))


@njit(cache=CACHE)
def _spike_sum(O, A, out, forward):
    """For every active input (r, j) of O: out[r] += A[j] (forward), else out[j] += A[r]."""
    R, K = O.shape
    M = A.shape[1]
    for r in range(R):
        for j in range(K):
            if O[r, j] != 0:
                dst, src = (r, j) if forward else (j, r)
                for m in range(M):
                    out[dst, m] += A[src, m]


def spike_product(O, W):
    """Event-driven O @ W.T for 0/1 spikes O (R, K): each row sums the columns of W
    (rows of W.T) of its active inputs; W (M, K).  Measured against BLAS in chapter 7."""
    out = np.zeros((O.shape[0], W.shape[0]), dtype=W.dtype)
    _spike_sum(O, np.ascontiguousarray(W.T), out, True)
    return out


def spike_weight_grad(E, O):
    """Event-driven E.T @ O for 0/1 spikes O (R, K) and errors E (R, M): each active
    input j of row r adds E[r] to column j of the result (M, K)."""
    dWt = np.zeros((O.shape[1], E.shape[1]), dtype=E.dtype)
    _spike_sum(O, E, dWt, False)
    return dWt.T


__all__ = ["configure_threads", "NumbaKernels", "spike_product", "spike_weight_grad"]
