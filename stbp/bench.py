"""Benchmarks: a training step against the bare matrix products it contains, and the
Open Neuromorphic SNN benchmark setup.

    python -m stbp.bench                      # everything, NumPy backend
    python -m stbp.bench --onb 4096           # only n = 4096 for the second part
    python -m stbp.bench --backend cupy --out results/bench-gpu.json
    python -m stbp.bench --no-fuse            # the array code as written (no kernels)
    python -m stbp.bench --backend cupy --no-fuse   # CuPy without the fused kernels

Part 1 times a full STBP training step (encode, forward, backward with rule="exact",
Adam update) for 784-800-10, batch 100, T = 10, float32; forward plus gradients alone
(on one encoded batch); and, in the same process and interleaved with both, the matrix
products of that step alone (same shapes, same backend).  It prints the three ratios
side by side with their targets: step / products (<= 1.5), forward and gradients /
products (<= 1.2), and, from results/bench-peers.json (tools/bench_peers.py, a
side-by-side run of PyTorch and stbp), PyTorch's step / stbp's step (>= 1.5).

Part 2 runs one Linear layer plus one LIF layer, batch 16, T = 500, for n in
{4096, 8192, 16384}: forward and backward time, and peak memory (on NumPy each n runs in
a fresh process, and its peak is the resident set's high-water mark above the resident
set after imports and a small warm-up run, so Numba's and BLAS' memory count too;
tools/bench_onb.py runs the same layer in PyTorch, snnTorch and SpikingJelly).

Part 3 times the training step as T, batch and hidden width grow, one at a time.

The peak memory of the fully connected and the convolutional training steps is set
against the bytes of their traces (training_memory). Peak memory is measured with
tracemalloc on NumPy (NumPy reports its array buffers to it) and with the memory pool's
high-water mark on CuPy, except part 2's fresh processes on NumPy (resident set). This
module is hand-written glue, not exported from the book.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc

from stbp import backend, env, files


def _sync():
    if backend.name == "cupy":
        backend.xp.cuda.get_current_stream().synchronize()


class _Peak:
    """Peak bytes allocated while the block runs, above what was allocated before it."""

    def __enter__(self):
        if backend.name == "cupy":
            self.pool = backend.xp.get_default_memory_pool()
            self.pool.free_all_blocks()
            self.base = self.pool.used_bytes()
            self._high = self.base
            return self
        tracemalloc.start()
        tracemalloc.reset_peak()
        self.base = tracemalloc.get_traced_memory()[0]
        return self

    def sample(self):
        if backend.name == "cupy":
            self._high = max(self._high, self.pool.used_bytes())

    def __exit__(self, *exc):
        if backend.name == "cupy":
            self.sample()
            self.peak = max(self._high, self.pool.total_bytes()) - self.base
        else:
            self.peak = tracemalloc.get_traced_memory()[1] - self.base
            tracemalloc.stop()


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _training(sizes=(784, 800, 10), batch=100, T=10, seed=0):
    """A network, its generator, one full training step (encode, forward, backward with
    rule="exact", Adam) on a fixed random batch, and forward plus gradients alone on one
    encoded batch; step(keep=True) returns the trace."""
    from stbp.encode import bernoulli
    from stbp.network import SNN
    from stbp.optim import Adam
    from stbp.train import parameters

    xp = backend.xp
    rng = backend.default_rng(seed)
    net = SNN(list(sizes), tau=0.2, v_th=0.5, seed=seed, init="fan_in")
    opt = Adam(parameters(net), lr=1e-4)
    images = rng.random((batch, sizes[0]), dtype=xp.float32) * 0.5
    targets = xp.eye(sizes[-1], dtype=xp.float32)[rng.integers(0, sizes[-1], batch)]
    spikes = bernoulli(images, T, rng)

    def step(keep=False):
        trace = net.forward(bernoulli(images, T, rng))
        grads = net.gradients(trace, targets, rule="exact")
        opt.step([g for Wb in grads for g in Wb])
        _sync()
        return trace if keep else None      # a kept trace makes the next step page-fault

    def forward_and_gradients():
        net.gradients(net.forward(spikes), targets, rule="exact")
        _sync()

    step.forward_and_gradients = forward_and_gradients
    step.spikes = spikes
    return net, rng, step


#: the targets of the three ratios (issue 11)
TARGETS = {"ratio": 1.5, "ratio_forward_gradients": 1.2, "peers_ratio": 1.5}


def training_step(sizes=(784, 800, 10), batch=100, T=10, repeat=20, seed=0):
    """Time one training step, forward plus gradients, and their bare matrix products,
    interleaved in blocks; return a dict of results."""
    xp = backend.xp
    net, rng, step = _training(sizes, batch, T, seed)

    # the same products on arrays of the same shapes: forward X^n = O^{n-1} W^n.T for
    # every layer, backward E^{n+1} W^{n+1} for every layer but the first, and
    # dW^n = E^n.T O^{n-1} for every layer; the input's spikes are the encoded batch's
    rows = T * batch
    O = [step.spikes.reshape(rows, -1)] + [
        (rng.random((rows, s), dtype=xp.float32) < 0.1).astype(xp.float32) for s in sizes[1:]]
    E = [rng.random((rows, s), dtype=xp.float32) for s in sizes[1:]]

    def matmuls():
        for k, W in enumerate(net.W):
            O[k] @ W.T
            E[k].T @ O[k]
            if k > 0:
                E[k] @ W
        _sync()

    kernels = backend.fused

    def unfused(fn):                     # the same call with the array code as written
        def run():
            backend.fused = None
            try:
                fn()
            finally:
                backend.fused = kernels
        return run

    timed = {"step": step, "fg": step.forward_and_gradients, "mm": matmuls}
    if kernels is not None:
        timed.update(array_step=unfused(step), array_fg=unfused(step.forward_and_gradients))
    for _ in range(3):
        for fn in timed.values():
            fn()
    times = {key: [] for key in timed}
    block = 5          # alternate blocks of 5, so all see the same machine, each warm
    for _ in range(max(1, repeat // block)):
        for key, fn in timed.items():
            times[key] += [_median_time(fn, 1) for _ in range(block)]
    with _Peak() as peak:
        trace = step(keep=True)
        peak.sample()
    t_step, t_fg, t_mm = (statistics.median(times[k]) for k in ("step", "fg", "mm"))
    neurons = sum(sizes[1:])
    trace_bytes = sum(a.nbytes for a in trace.u + trace.o[1:])
    array = {}
    if kernels is not None:      # the array code, timed in the same blocks
        array = {"array_step_s": statistics.median(times["array_step"]),
                 "array_forward_gradients_s": statistics.median(times["array_fg"])}
    return {
        "sizes": list(sizes), "batch": batch, "T": T, "dtype": "float32",
        "step_s": t_step, "forward_gradients_s": t_fg, "matmul_s": t_mm,
        "ratio": t_step / t_mm, "ratio_forward_gradients": t_fg / t_mm, **array,
        "input_spike_density": float(step.spikes.mean()),
        "peak_bytes": int(peak.peak),
        "trace_bytes": int(trace_bytes),
        "bytes_per_neuron_step": trace_bytes / (T * batch * neurons),
        # what backward must keep: U (4 bytes) and a 0/1 spike (1 bit) per neuron and step
        "minimum_bytes_per_neuron_step": 4 + 1 / 8,
    }


def peers_ratio(path="results/bench-peers.json"):
    """PyTorch's step time over stbp's, both timed side by side by tools/bench_peers.py;
    None when that file does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        peers = json.load(fh)
    return peers["torch_autograd"]["step_s"] / peers["stbp"]["step_s"]


def event_driven(densities=(0.01, 0.02, 0.05, 0.1, 0.13, 0.2, 0.3, 0.5), rows=1000, k=784,
                 m=800, repeat=7, seed=0):
    """The input layer's two products with 0/1 spikes of a given density, by BLAS and
    event-driven (stbp.kernels.cpu: summing the weight columns of active inputs, and the
    transpose for dW), interleaved; a list of dicts, and the crossover density (linear
    interpolation of the log time ratio; None if one way wins everywhere)."""
    import numpy as np

    from stbp.kernels.cpu import spike_product, spike_weight_grad

    rng = np.random.default_rng(seed)
    W = rng.normal(0, 0.05, (m, k)).astype(np.float32)
    E = rng.normal(0, 1, (rows, m)).astype(np.float32)
    out = []
    for d in densities:
        Ob = rng.random((rows, k)) < d
        Of = Ob.astype(np.float32)
        spike_product(Ob, W), spike_weight_grad(E, Ob)        # compiled before timing
        blas = lambda: (Of @ W.T, E.T @ Of)                    # noqa: E731
        events = lambda: (spike_product(Ob, W), spike_weight_grad(E, Ob))   # noqa: E731
        tb, te = [], []
        for _ in range(repeat):
            tb.append(_median_time(blas, 1))
            te.append(_median_time(events, 1))
        out.append({"density": d, "blas_s": statistics.median(tb),
                    "event_s": statistics.median(te)})
    return out, crossover(out)


def crossover(points):
    """The density at which event-driven and BLAS take equal time (log-linear)."""
    import math
    for a, b in zip(points, points[1:]):
        ra, rb = (math.log(p["event_s"] / p["blas_s"]) for p in (a, b))
        if ra <= 0 < rb:
            return a["density"] + (b["density"] - a["density"]) * (-ra) / (rb - ra)
    return None


def _compile_probe():
    """Run in a subprocess by compile_times: the first training step (which compiles the
    kernels, or loads them from Numba's cache) and the second, in seconds, as JSON."""
    backend.tune_process()
    t0 = time.perf_counter()
    _, _, step = _training((30, 20, 5), 4, 3)
    t1 = time.perf_counter()
    step()
    t2 = time.perf_counter()
    step()
    t3 = time.perf_counter()
    print(json.dumps({"setup_s": t1 - t0, "first_step_s": t2 - t1, "second_step_s": t3 - t2}))


def compile_times():
    """First-use cost of the Numba kernels: a fresh process with an empty cache folder
    (compiles every kernel), then another fresh process with that cache (loads them)."""
    import subprocess
    import tempfile
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for key in ("cold", "cached"):
            done = subprocess.run([sys.executable, "-c",
                                   "from stbp import bench; bench._compile_probe()"],
                                  capture_output=True, text=True,
                                  env={**os.environ, "NUMBA_CACHE_DIR": cache, "STBP_FUSE": "1"})
            if done.returncode != 0:
                raise RuntimeError(f"compile probe failed:\n{done.stderr}")
            out[key] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


#: thread and memory set-ups compared by thread_options: name -> environment
THREAD_OPTIONS = {
    "kernels 2 threads, sleeping when idle, BLAS 2 sleeping too (chosen)": {
        "STBP_NUMBA_THREADS": "2"},
    "kernels 2, BLAS 2 yielding 2^28 cycles when idle (OpenBLAS's default)": {
        "STBP_NUMBA_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": "28"},
    "kernels 1 thread, BLAS 2": {"STBP_NUMBA_THREADS": "1"},
    "kernels 2 threads spinning when idle, BLAS 2": {"STBP_NUMBA_THREADS": "2",
                                                     "OMP_WAIT_POLICY": "ACTIVE"},
    "kernels 2, workqueue layer, BLAS 2": {"STBP_NUMBA_THREADS": "2",
                                           "NUMBA_THREADING_LAYER": "workqueue"},
    "kernels 2, BLAS 1": {"STBP_NUMBA_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"},
    "kernels 1, BLAS 1": {"STBP_NUMBA_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "kernels 2, BLAS 2 limited to 1 during kernels (threadpoolctl)": {
        "STBP_NUMBA_THREADS": "2", "STBP_BENCH_THREADPOOLCTL": "1"},
    "kernels 2, BLAS 2, freed memory returned (STBP_KEEP_FREED=0)": {
        "STBP_NUMBA_THREADS": "2", "STBP_KEEP_FREED": "0"},
    "kernels 1, BLAS 1, freed memory returned (STBP_KEEP_FREED=0)": {
        "STBP_NUMBA_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "STBP_KEEP_FREED": "0"},
}


def _thread_probe():
    """Run in a subprocess by thread_options: print one training step's times as JSON."""
    backend.tune_process()        # STBP_NUMBA_THREADS and STBP_KEEP_FREED of the option
    if env.flag("STBP_BENCH_THREADPOOLCTL", False):
        from threadpoolctl import ThreadpoolController
        limit = ThreadpoolController().select(user_api="blas")
        engine = backend.fused              # stbp.engine.Fused: the kernels' engine
        for name in ("layer_forward", "layer_backward", "spikes_below", "adam_update"):
            def limited(*a, _f=getattr(engine, name), **kw):
                with limit.limit(limits=1):
                    return _f(*a, **kw)
            setattr(engine, name, limited)
    r = training_step(repeat=10)
    out = {k: r[k] for k in ("step_s", "forward_gradients_s", "matmul_s")}
    if env.flag("STBP_BENCH_CONV", False):
        c = conv_training_step(repeat=10)
        out.update(conv_step_s=c["step_s"], conv_matmul_s=c["matmul_s"])
    print(json.dumps(out))


def thread_options(rounds=2, conv=True):
    """Step time under each of THREAD_OPTIONS, each in a fresh process (the thread pools
    are set up at start), options alternated over `rounds`; the best round of each (by
    the fully connected step). conv: also time the convolutional step and its products
    (conv_training_step) in the same process."""
    import subprocess
    results = {}
    for _ in range(rounds):
        for name, env in THREAD_OPTIONS.items():
            if "STBP_BENCH_THREADPOOLCTL" in env:
                try:
                    import threadpoolctl  # noqa: F401
                except ImportError:
                    continue
            done = subprocess.run([sys.executable, "-c",
                                   "from stbp import bench; bench._thread_probe()"],
                                  capture_output=True, text=True,
                                  env={**os.environ, **env, "STBP_FUSE": "1",
                                       "STBP_BENCH_CONV": "1" if conv else "0"})
            if done.returncode != 0:
                raise RuntimeError(f"thread probe {name!r} failed:\n{done.stderr}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            if name not in results or r["step_s"] < results[name]["step_s"]:
                results[name] = r
    return [{"option": k, "env": THREAD_OPTIONS[k], **v} for k, v in results.items()]


class _RssPeak:
    """Peak resident set size (RSS) of this process while the block runs, above its RSS
    when the block began: everything the process touches (NumPy's buffers, Numba's and
    BLAS' own, freed memory that malloc keeps), not only what is still allocated. Linux:
    writing 5 to /proc/self/clear_refs resets the high-water mark VmHWM. Elsewhere, or
    where that file cannot be written, ru_maxrss (the peak since the process began) less
    the RSS at the start; meaningful in a fresh process. `method` says which."""

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.method = "VmHWM after clear_refs (Linux)"
        except OSError:
            self.method = "ru_maxrss since the process began"
        self.base = _rss()["rss"]
        return self

    def sample(self):
        pass

    def __exit__(self, *exc):
        self.high = _rss()["peak"]
        self.peak = self.high - self.base


def _rss():
    """{"rss", "peak"}: this process' resident set size and its high-water mark in
    bytes."""
    try:
        with open("/proc/self/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        return {"rss": int(fields["VmRSS"].split()[0]) * 1024,
                "peak": int(fields["VmHWM"].split()[0]) * 1024}
    except OSError:                                  # not Linux: ru_maxrss only
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak *= 1 if sys.platform == "darwin" else 1024
        return {"rss": peak, "peak": peak}


#: how onb_layer measures peak memory: name -> (meter, what it counts)
MEMORY_METHODS = {
    "tracemalloc": (_Peak, "tracemalloc's peak of NumPy's array buffers (CuPy: the "
                           "memory pool's high-water mark), above those allocated "
                           "before"),
    "rss": (_RssPeak, "the process' peak resident set above its resident set before"),
}


def onb_layer(n, batch=16, T=500, repeat=1, seed=0, memory="tracemalloc",
              carry="reset"):
    """Open Neuromorphic setup: Linear(n, n) + LIF, forward and backward; seconds and bytes.

    The neuron: decay 0.5, threshold 1, the rectangular surrogate (a = 1), the exact
    rule and the hard reset (carry "reset": U^t = 0.5 (1 - O^{t-1}) U^{t-1} + X^t + b),
    the neuron that tools/bench_onb.py writes in PyTorch, snnTorch and SpikingJelly.
    Input: Bernoulli spikes of rate 0.2, (T, batch, n); the loss is the rates' squared
    error against zeros. Timed ``repeat`` times (median); the large sizes take about a
    minute each on two CPU cores, so one run is the default.

    Peak memory (``memory``, see MEMORY_METHODS) covers building the network and the
    input as well as the forward and backward passes: the weights, the input, the trace,
    the gradients and the temporaries. "rss" is meant for a fresh process (onb_fresh).
    """
    from stbp.encode import bernoulli
    from stbp.network import SNN

    xp = backend.xp
    fwd, bwd = [], []
    meter, method = MEMORY_METHODS[memory]
    with meter() as peak:
        rng = backend.default_rng(seed)
        net = SNN([n, n], tau=0.5, v_th=1.0, seed=seed, init="fan_in", carry=carry)
        spikes = bernoulli(xp.full((batch, n), 0.2, dtype=xp.float32), T, rng)
        targets = xp.zeros((batch, n), dtype=xp.float32)
        for _ in range(repeat):
            _sync()
            t0 = time.perf_counter()
            trace = net.forward(spikes)
            _sync()
            t1 = time.perf_counter()
            peak.sample()
            net.gradients(trace, targets)
            _sync()
            t2 = time.perf_counter()
            peak.sample()
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            del trace
    return {"n": n, "batch": batch, "T": T, "carry": carry,
            "forward_s": statistics.median(fwd), "backward_s": statistics.median(bwd),
            "peak_bytes": int(peak.peak), "memory": getattr(peak, "method", method),
            "runs": repeat}


def onb_probe(n, batch=16, T=500, repeat=1, seed=0):
    """Run by onb_fresh in a fresh process: compile the kernels (or load them) on a
    small layer, then onb_layer(n) with the peak RSS; also the RSS before the run."""
    backend.tune_process()        # malloc's reuse and Numba's threads, as training does
    onb_layer(64, batch=2, T=10, memory="tracemalloc")
    before = _rss()["rss"]
    r = onb_layer(n, batch, T, repeat, seed, memory="rss")
    r["rss_before_bytes"] = before
    return r


def onb_fresh(n, batch=16, T=500, repeat=1, seed=0):
    """onb_probe(n) in a fresh process of this Python (so that no earlier array, pool or
    freed memory kept by malloc shows in its resident set); its dict."""
    import subprocess
    code = (f"import json; from stbp import bench; print(json.dumps(bench.onb_probe("
            f"{n}, {batch}, {T}, {repeat}, {seed})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"onb probe n = {n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def trace_nbytes(trace):
    """Bytes of every array in a Trace: U and O of every layer of neurons and the
    input's spikes O^0 (the first layer's weight gradient needs them); the least that
    the backward pass through time reads, kept as the package keeps it (U float, O
    bool)."""
    return int(sum(a.nbytes for a in list(trace.u) + list(trace.o)))


def step_memory(step, warmup=2):
    """Peak memory of one training step made by _training or _conv_training
    (step(keep=True) returns the trace), after `warmup` steps (Adam's moments exist, the
    kernels are compiled): tracemalloc's peak of NumPy's buffers (CuPy: the pool's)
    above what was allocated before the step, against trace_nbytes of the step's own
    trace."""
    for _ in range(warmup):
        step()
    with _Peak() as peak:
        trace = step(keep=True)
        peak.sample()
    need = trace_nbytes(trace)
    del trace
    return {"peak_bytes": int(peak.peak), "trace_bytes": need,
            "peak_over_trace": peak.peak / need}


def training_memory(sizes=(784, 800, 10), batch=100, T=10,
                    spec="28x28-15C5-P2-40C5-P2-300-10", conv_batch=100, conv_T=8,
                    seed=0):
    """Peak memory of the fully connected and the convolutional training steps (those of
    training_step and conv_training_step) against the bytes of their traces; a list of
    two dicts."""
    _, _, dense = _training(sizes, batch, T, seed)
    _, _, conv = _conv_training(spec, conv_batch, conv_T, seed)
    return [{"network": "-".join(map(str, sizes)), "batch": batch, "T": T,
             **step_memory(dense)},
            {"network": spec, "batch": conv_batch, "T": conv_T, **step_memory(conv)}]


def _own_times(step, steps):
    """cProfile's statistics of `steps` calls of step() after one untimed call: pstats'
    dict (filename, line, function) -> (calls, primitive calls, own time, total time,
    callers), summed over the steps."""
    import cProfile
    import pstats

    step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    return pstats.Stats(prof).stats


def profile(steps=30, seed=0):
    """Where a training step's time goes: cProfile's own time of each stbp function (a
    function's own time includes the matrix products written inline in it), per step."""
    _, _, step = _training(seed=seed)
    stats = _own_times(step, steps)
    total = sum(v[2] for v in stats.values())
    rows = {}
    for (filename, _, func), (_, _, tottime, _, _) in stats.items():
        where = func if "stbp" in filename else "other (NumPy internals, Python)"
        rows[where] = rows.get(where, 0.0) + tottime
    out = [{"function": k, "s_per_step": v / steps, "share": v / total}
           for k, v in sorted(rows.items(), key=lambda kv: -kv[1])]
    return out


def scaling(repeat=5, seed=0):
    """Training-step time as T, batch and hidden width grow (one at a time, from
    T = 10, batch 100, 784-800-10); a list of {"vary", "value", "step_s"}."""
    out = []
    grid = {"T": [5, 10, 20, 40, 80], "batch": [25, 50, 100, 200, 400],
            "width": [100, 200, 400, 800, 1600]}
    for vary, values in grid.items():
        for value in values:
            T = value if vary == "T" else 10
            batch = value if vary == "batch" else 100
            width = value if vary == "width" else 800
            _, _, step = _training((784, width, 10), batch, T, seed)
            step()
            out.append({"vary": vary, "value": value, "step_s": _median_time(step, repeat)})
    return out


def machine():
    info = {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "backend": backend.name,
            "fused_kernels": backend.fused is not None,
            # other processes share the cores: the load while the benchmark starts
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "numpy": __import__("numpy").__version__}
    if backend.name == "cupy":
        props = backend.xp.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        info["cupy"] = backend.xp.__version__
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stbp.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, choices=backend.NAMES)
    parser.add_argument("--onb", type=int, nargs="*", default=[4096, 8192, 16384],
                        help="widths n for the Open Neuromorphic setup (none: skip it)")
    parser.add_argument("--repeat", type=int, default=20, help="timed training steps")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling sweep")
    parser.add_argument("--no-conv", action="store_true",
                        help="skip the convolutional step (chapter 8's network) and its profile")
    parser.add_argument("--no-fuse", action="store_true",
                        help="run the array code instead of the fused kernels")
    parser.add_argument("--threads", action="store_true",
                        help="also compare thread set-ups (each in a fresh process)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the kernels' first use, cold and from the cache")
    parser.add_argument("--events", action="store_true",
                        help="also time event-driven products against BLAS over densities")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the training steps' peak memory against their "
                        "traces")
    parser.add_argument("--peers", default="results/bench-peers.json",
                        help="PyTorch/stbp times from tools/bench_peers.py")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.out:
        files.check_target(args.out, "benchmark file")     # before minutes of timing
    if args.backend or args.no_fuse:
        backend.use(args.backend or backend.name, fuse=not args.no_fuse)
    backend.tune_process()        # malloc's reuse and Numba's threads, as training sets them
    from stbp.reproduce import provenance
    results = {"machine": machine(), **provenance()}       # the commit it measured
    r = training_step(repeat=args.repeat)
    r["peers_ratio"] = peers_ratio(args.peers)
    results["training_step"] = r
    print(f"training step 784-800-10, batch 100, T = 10, float32, exact rule, Adam, backend "
          f"{backend.name}" + (" (fused kernels)" if backend.fused is not None else "") + ":")
    print(f"  full step            {r['step_s'] * 1e3:8.2f} ms")
    print(f"  forward + gradients  {r['forward_gradients_s'] * 1e3:8.2f} ms")
    print(f"  matmuls alone        {r['matmul_s'] * 1e3:8.2f} ms")
    if "array_step_s" in r:
        print(f"  the array code (no kernels), same blocks: step {r['array_step_s'] * 1e3:.2f} ms, "
              f"forward + gradients {r['array_forward_gradients_s'] * 1e3:.2f} ms")
    print(f"  step / matmuls                  {r['ratio']:6.2f}  (target <= {TARGETS['ratio']})")
    print(f"  forward+gradients / matmuls     {r['ratio_forward_gradients']:6.2f}  "
          f"(target <= {TARGETS['ratio_forward_gradients']})")
    if r["peers_ratio"] is None:
        print(f"  PyTorch step / stbp step        n/a  ({args.peers} not found; run "
              "tools/bench_peers.py)")
    else:
        print(f"  PyTorch step / stbp step        {r['peers_ratio']:6.2f}  (target >= "
              f"{TARGETS['peers_ratio']}; side by side in {args.peers})")
    print(f"  peak memory    {r['peak_bytes'] / 2**20:8.1f} MiB; trace "
          f"{r['bytes_per_neuron_step']:.2f} bytes per neuron-step "
          f"(minimum {r['minimum_bytes_per_neuron_step']:.3f})")
    if not args.no_conv:
        results["conv"] = c = conv_training_step(repeat=args.repeat)
        results["conv_profile"] = conv_profile()
        print(f"training step {c['spec']}, batch {c['batch']}, T = {c['T']}: "
              f"{c['step_s'] * 1e3:.1f} ms, its products {c['matmul_s'] * 1e3:.1f} ms, "
              f"ratio {c['ratio']:.2f} (target <= {TARGETS['ratio']}); the same products "
              f"in the convolutions' blocks {c['matmul_blocked_s'] * 1e3:.1f} ms, ratio "
              f"{c['ratio_blocked']:.2f}")
        for row in results["conv_profile"]:
            print(f"  {row['part']:45s} {row['s_per_step'] * 1e3:7.2f} ms  {row['share']:6.1%}")
        results["conv_blocks"] = conv_block_options()
        print("the convolutions' window rows: blocks and keeping (paired steps):")
        for row in results["conv_blocks"]:
            print(f"  {row['option']:48s} {row['step_s'] * 1e3:7.1f} ms  "
                  f"{row['over_chosen']:5.3f} x chosen")
        results["conv_pooling"] = conv_pool_options()
        if results["conv_pooling"] is not None:
            print("pooling in the layers' kernels or apart (paired steps):")
            for row in results["conv_pooling"]:
                print(f"  {row['option']:62s} {row['step_s'] * 1e3:7.1f} ms  "
                      f"{row['over_chosen']:5.3f} x chosen")
    if args.compile:
        results["compile"] = c = compile_times()
        print(f"first step in a fresh process: {c['cold']['first_step_s']:.1f} s compiling the "
              f"kernels, {c['cached']['first_step_s']:.2f} s with Numba's cache")
    if args.threads:
        results["threads"] = thread_options()
        print("thread set-ups (full step, best of 2 fresh processes):")
        for t in results["threads"]:
            print(f"  {t['option']:58s} {t['step_s'] * 1e3:7.2f} ms")
    if args.events:
        points, cross = event_driven()
        results["event_driven"] = {"points": points, "crossover_density": cross}
        print("input layer's products, BLAS against event-driven (both products):")
        for p in points:
            print(f"  density {p['density']:5.2f}: BLAS {p['blas_s'] * 1e3:6.2f} ms, "
                  f"events {p['event_s'] * 1e3:6.2f} ms")
        print(f"  crossover density: {cross if cross is None else round(cross, 3)}")
    if not args.no_memory:
        results["training_memory"] = training_memory()
        print("peak memory of a training step against its trace (tracemalloc, NumPy's "
              "buffers):")
        for m in results["training_memory"]:
            print(f"  {m['network']:30s} B {m['batch']}, T {m['T']:2d}: peak "
                  f"{m['peak_bytes'] / 2**20:7.1f} MiB, trace "
                  f"{m['trace_bytes'] / 2**20:6.1f} MiB, ratio "
                  f"{m['peak_over_trace']:.2f}")
    results["onb"] = []
    for n in args.onb:          # NumPy: each n in a fresh process, its peak RSS
        o = onb_fresh(n) if backend.name == "numpy" else onb_layer(n)
        results["onb"].append(o)
        print(f"Linear+LIF n = {n:5d}, batch 16, T = 500: forward {o['forward_s']:.3f} s, "
              f"backward {o['backward_s']:.3f} s, peak "
              f"{o['peak_bytes'] / 2**30:.2f} GiB "
              f"({o['memory']})")
    results["profile"] = profile()
    print("where the step's time goes (cProfile, own time per function):")
    for row in results["profile"][:8]:
        print(f"  {row['function']:32s} {row['s_per_step'] * 1e3:7.2f} ms  {row['share']:6.1%}")
    if not args.no_scaling:
        results["scaling"] = scaling()
        for vary in ("T", "batch", "width"):
            points = [p for p in results["scaling"] if p["vary"] == vary]
            print(f"step time as {vary} grows: " + ", ".join(
                f"{p['value']}: {p['step_s'] * 1e3:.1f} ms" for p in points))
    results["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    if args.out:
        text = json.dumps(results, indent=1).encode()
        files.write_atomic(args.out, lambda fh: fh.write(text), "benchmark file")
    return 0




# --- the convolutional network of chapter 8 --------------------------------------------

def _conv_training(spec="28x28-15C5-P2-40C5-P2-300-10", batch=100, T=8, seed=0):
    """A convolutional network (tau 0.2, V_th 0.5, the paper's init), its generator and
    one full training step (encode, forward, backward with rule="exact", Adam with lr
    1e-3) on a fixed random batch; step(keep=True) returns the trace. The setup of
    conv_training_step, which tools/bench_peers.py --cnn times beside PyTorch."""
    from stbp.encode import bernoulli
    from stbp.network import SNN
    from stbp.optim import Adam
    from stbp.train import parameters

    xp = backend.xp
    rng = backend.default_rng(seed)
    net = SNN(spec, tau=0.2, v_th=0.5, seed=seed)
    opt = Adam(parameters(net), lr=1e-3)
    images = rng.random((batch, net.sizes[0]), dtype=xp.float32) * 0.5
    labels = rng.integers(0, net.sizes[-1], batch)
    targets = xp.eye(net.sizes[-1], dtype=xp.float32)[labels]

    def step(keep=False):
        trace = net.forward(bernoulli(images, T, rng))
        opt.step([g for Wb in net.gradients(trace, targets) for g in Wb])
        _sync()
        return trace if keep else None

    return net, rng, step


def conv_training_step(spec="28x28-15C5-P2-40C5-P2-300-10", batch=100, T=8, repeat=10,
                       seed=0, epoch_samples=60000):
    """Time one training step of a convolutional network (encode, forward, backward with
    rule="exact", Adam) against its bare matrix products: per layer of neurons the
    forward product X = rows W^T, dW = E^T rows and, above the first, E W (for a
    convolution on im2col window rows of the same shapes), on the same backend,
    interleaved in blocks. The products are timed twice: on the whole batch's rows at
    once ("matmul_s", the bound of earlier records) and cut into the blocks of maps a
    convolution multiplies (Conv.blocks, "matmul_blocked_s"), which is what the step
    runs. Returns the times, both ratios and the estimated time of one epoch of
    epoch_samples."""
    import math

    xp = backend.xp
    net, rng, step = _conv_training(spec, batch, T, seed)
    shapes, cuts = [], []           # (rows, fan_in, fan_out); row slices of each block
    for layer in (layer for layer in net.layers if layer.neurons):
        W = layer.W         # a convolution's products run once per output position
        positions = math.prod(layer.out_shape[:-1]) if len(layer.out_shape) == 3 else 1
        shapes.append((T * batch * positions, W[0].size, W.shape[0]))
        maps = layer.blocks(T * batch) if hasattr(layer, "blocks") else [
            slice(0, T * batch)]
        cuts.append([slice(m.start * positions, m.stop * positions) for m in maps])
    A = [(rng.random((r, i), dtype=xp.float32) < 0.2).astype(xp.float32) for r, i, _ in shapes]
    E = [rng.random((r, o), dtype=xp.float32) for r, _, o in shapes]
    Wm = [W.reshape(W.shape[0], -1) for W in net.W]

    def matmuls():
        for k in range(len(shapes)):
            A[k] @ Wm[k].T
            E[k].T @ A[k]
            if k > 0:
                E[k] @ Wm[k]
        _sync()

    def blocked():
        for k in range(len(shapes)):
            for s in cuts[k]:
                A[k][s] @ Wm[k].T
                E[k][s].T @ A[k][s]
                if k > 0:
                    E[k][s] @ Wm[k]
        _sync()

    for _ in range(2):
        step(), matmuls(), blocked()
    step_times, mm_times, blocked_times = [], [], []
    block = 5
    for _ in range(max(1, repeat // block)):
        step_times += [_median_time(step, 1) for _ in range(block)]
        mm_times += [_median_time(matmuls, 1) for _ in range(block)]
        blocked_times += [_median_time(blocked, 1) for _ in range(block)]
    t_step, t_mm = statistics.median(step_times), statistics.median(mm_times)
    t_blocked = statistics.median(blocked_times)
    return {"spec": spec, "batch": batch, "T": T, "dtype": "float32", "step_s": t_step,
            "matmul_s": t_mm, "ratio": t_step / t_mm, "matmul_blocked_s": t_blocked,
            "ratio_blocked": t_step / t_blocked,
            "epoch_s": t_step * epoch_samples / batch, "epoch_samples": epoch_samples}


#: a convolution's (BLOCK_BYTES, KEEP_BYTES) compared by conv_block_options; None: the
#: class's own value, ALL: no limit (the whole batch in one block, or every row kept)
ALL = 2**62
BLOCK_OPTIONS = {
    "whole batch at once, rows kept (before blocks)": (ALL, ALL),
    "blocks, rows kept up to KEEP_BYTES (chosen)": (None, None),
    "blocks, rows always kept": (None, ALL),
    "blocks, rows always rebuilt": (None, 0),
}


def _paired_steps(step, options, chosen, rounds):
    """Time step() under each option of `options` (name -> a function that puts it in
    force): the options alternate step by step in one process, in an order that rotates
    every round, each timed step after an untimed one of the same option. Returns per
    option its median step and the median over rounds of its step over the step of the
    option `chosen` in the same round."""
    names = list(options)
    times = {name: [] for name in names}
    for name in names:
        options[name]()
        step(), step()
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            options[name]()
            step()
            times[name].append(_median_time(step, 1))
    return [{"option": name, "step_s": statistics.median(times[name]),
             "over_chosen": statistics.median(
                 a / b for a, b in zip(times[name], times[chosen]))} for name in names]


def conv_block_options(spec="28x28-15C5-P2-40C5-P2-300-10", batch=100, T=8, rounds=30,
                       seed=0):
    """Time the convolutional training step (conv_training_step's) with its
    convolutions' BLOCK_BYTES and KEEP_BYTES set as each of BLOCK_OPTIONS says, paired
    (_paired_steps), against the class's own values ("chosen")."""
    from stbp.conv import Conv

    net, _, step = _conv_training(spec, batch, T, seed)
    convs = [layer for layer in net.layers if isinstance(layer, Conv)]
    names = list(BLOCK_OPTIONS)
    budgets = {name: tuple(own if value is None else value for value, own in zip(
        BLOCK_OPTIONS[name], (Conv.BLOCK_BYTES, Conv.KEEP_BYTES))) for name in names}

    def use(name):
        def put():
            for layer in convs:
                layer.BLOCK_BYTES, layer.KEEP_BYTES = budgets[name]
                layer.kept = None
        return put

    try:
        options = {name: use(name) for name in names}
        rows = _paired_steps(step, options, names[1], rounds)
    finally:
        for layer in convs:                 # back to the class's values
            for attr in ("BLOCK_BYTES", "KEEP_BYTES"):
                layer.__dict__.pop(attr, None)
    for row in rows:
        row["block_bytes"], row["keep_bytes"] = budgets[row["option"]]
    return rows


#: conv_pool_options' two set-ups: the kernels' own pooled layer kernels, or none (the
#: engine then runs each layer's kernel and the pooling kernel one after the other)
POOL_OPTIONS = ("layer and pooling in one kernel (chosen)",
                "layer kernel, then pooling (and cast) in passes of their own")


def conv_pool_options(spec="28x28-15C5-P2-40C5-P2-300-10", batch=100, T=8, rounds=30,
                      seed=0):
    """Time the convolutional training step with the pooling fused into the kernels of
    the layers below it (layer_forward_pooled, layer_backward_pooled) and without,
    paired (_paired_steps). Only where the engine is the fused kernels and they have the
    pooled kernels; else None."""
    fused = backend.fused
    kernels = getattr(fused, "kernels", None)
    if kernels is None or getattr(kernels, "layer_forward_pooled", None) is None:
        return None
    _, _, step = _conv_training(spec, batch, T, seed)
    names = ("layer_forward_pooled", "layer_backward_pooled")

    def own():
        for name in names:
            kernels.__dict__.pop(name, None)

    def apart():
        for name in names:                  # the engine falls back to the two steps
            setattr(kernels, name, None)

    try:
        options = dict(zip(POOL_OPTIONS, (own, apart)))
        return _paired_steps(step, options, POOL_OPTIONS[0], rounds)
    finally:
        own()


#: the Numba kernels' functions -> their part of the step in conv_profile
_KERNEL_PARTS = {"_forward": "layer recurrence, forward",
                 "_backward": "layer recurrence, backward", "_im2col": "im2col",
                 "_forward_pooled": "layer recurrence, forward",
                 "_im2col_one": "im2col",
                 "_col2im": "col2im", "_pool_forward": "pool_forward",
                 "_pool_backward": "pool_backward", "_adam": "Adam",
                 "_bernoulli": "encoder"}


#: cProfile's name for waiting on a lock: in a training step, the main thread waiting
#: for the block products the CPU kernels run on Python threads (block_products)
_LOCK_WAIT = "<method 'acquire' of '_thread.lock' objects>"


def conv_profile(spec="28x28-15C5-P2-40C5-P2-300-10", batch=100, T=8, steps=10, seed=0):
    """Where the convolutional step's time goes: cProfile's own time per function over
    `steps` training steps (as conv_training_step's), per step, grouped as "products"
    (the layers' forward, backward and grads methods, whose own time is their matrix
    products, block_products and the wait for its threads), the kernels by name, and
    "other"; a list of {"part", "s_per_step",
    "share"}, largest first."""
    _, _, step = _conv_training(spec, batch, T, seed)
    parts = {}
    layer_files = ("network.py", "conv.py")
    for (filename, _, func), (_, _, own, _, _) in _own_times(step, steps).items():
        if (func in ("forward", "backward", "grads", "block_products")
                and filename.endswith(layer_files + ("cpu.py",))) or func == _LOCK_WAIT:
            part = "products (layers' forward, backward, grads)"
        elif "kernels" in filename and func in _KERNEL_PARTS:
            part = _KERNEL_PARTS[func]
        elif func == "<method 'astype' of 'numpy.ndarray' objects>":
            part = "casts (astype)"
        elif func == "<method 'reduce' of 'numpy.ufunc' objects>":
            part = "reductions (sums, checks)"
        else:
            part = "other"
        parts[part] = parts.get(part, 0.0) + own
    total = sum(parts.values())
    return [{"part": k, "s_per_step": v / steps, "share": v / total}
            for k, v in sorted(parts.items(), key=lambda kv: -kv[1])]


__all__ = ["TARGETS", "training_step", "peers_ratio", "event_driven", "crossover",
           "compile_times", "THREAD_OPTIONS", "thread_options", "MEMORY_METHODS",
           "onb_layer", "onb_probe", "onb_fresh", "trace_nbytes", "step_memory",
           "training_memory", "profile", "scaling", "machine", "main",
           "conv_training_step", "conv_profile", "BLOCK_OPTIONS", "conv_block_options",
           "POOL_OPTIONS", "conv_pool_options"]


if __name__ == "__main__":
    sys.exit(main())
