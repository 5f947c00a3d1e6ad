"""The Open Neuromorphic benchmark's layer in stbp, PyTorch, snnTorch and SpikingJelly.

Run it with the peers' Python (PyTorch is never a dependency of the package)::

    /work/peers-venv/bin/pip install torch==2.13.0 snntorch spikingjelly numpy numba
    /work/peers-venv/bin/python tools/bench_onb.py                 # n 4096, 8192, 16384
    /work/peers-venv/bin/python tools/bench_onb.py --n 256 512 --out /tmp/onb.json

The setup is ``stbp.bench.onb_layer``'s: one Linear(n, n) layer with bias and one layer
of LIF neurons, batch 16, T = 500, float32; Bernoulli input spikes of rate 0.2, shape
(T, 16, n); decay 0.5, threshold 1 (a spike where U >= 1), the hard reset
U^t = 0.5 (1 - O^{t-1}) U^{t-1} + X^t; the loss is the output rates' squared error
against zeros, 1/(2B) sum (rate)^2; the forward pass runs all T steps and the backward
pass computes the weight's and the bias' gradients through time. The libraries:

* ``torch``: plain autograd, the LIF written out: the product of all T B rows at once,
  then per step ``mem = mem * 0.5 * (1 - spike) + X[t]`` and the spike by a custom
  Function with the rectangular surrogate (|U - 1| < 0.5, height 1), as stbp's;
* ``snntorch``: ``nn.Linear`` + ``snn.Leaky(beta=0.5, threshold=1,
  reset_mechanism="zero")``, stepped as the benchmark's own snnTorch code steps it
  (``fc(x[t])`` then the neuron, step by step), with the same rectangular Function as
  spike_grad. Its reset is detached (snnTorch's ``mem_reset``): no gradient flows
  through the reset, unlike the other three;
* ``spikingjelly``: ``layer.Linear`` + ``neuron.LIFNode(tau=2, decay_input=False,
  v_threshold=1, v_reset=0, detach_reset=False, step_mode="m")``: H = V (1 - 1/tau) + X
  is decay 0.5, and hard reset to 0. In the installed version (2.x) LIFNode has no
  ``backend`` argument: on CPU a multi-step LIFNode with a built-in surrogate runs
  SpikingJelly's registered torch operator (a torch forward, a hand-written backward
  loop), the CPU counterpart of the old ``backend="torch"``. It has no rectangular
  surrogate on that path: ``PiecewiseQuadratic(alpha=2)`` is the nearest (a triangle on
  the same |U - 1| < 0.5, area 1 like the rectangle);
* ``stbp``: ``stbp.bench.onb_probe`` (the exact rule, carry "reset", the rectangular
  surrogate, the fused kernels as the package runs by default).

Every library runs each n in a fresh process: a small untimed warm-up layer (thread
pools, Numba's kernels), then one timed forward and backward pass. Peak memory is the
same for all: the process' peak resident set (Linux's VmHWM, reset through
/proc/self/clear_refs) above its resident set before the network and the input are
built, so the weights, the input, what the backward pass keeps, the gradients and the
temporaries all count. The libraries alternate within each n, the order rotating.

``--check`` (on by default) first runs all four on one small layer with the same
weights and input, and records how far their spikes and gradients are from stbp's.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("stbp", "torch", "snntorch", "spikingjelly")
BATCH, T, DECAY, V_TH, RATE = 16, 500, 0.5, 1.0, 0.2


def _rss():
    """This process' resident set and its high-water mark, bytes (Linux /proc); the
    same reading as stbp.bench._rss, written out here so that the peers' processes
    import nothing of stbp's (stbp's own process sets malloc's reuse through
    stbp.backend.tune_process)."""
    with open("/proc/self/status") as fh:
        fields = dict(line.split(":", 1) for line in fh if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) * 1024,
            "peak": int(fields["VmHWM"].split()[0]) * 1024}


class _RssPeak:
    """Peak resident set while the block runs above the resident set when it began (as
    stbp.bench._RssPeak on Linux)."""
    method = "VmHWM after clear_refs (Linux)"

    def __enter__(self):
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        self.base = _rss()["rss"]
        return self

    def __exit__(self, *exc):
        self.peak = _rss()["peak"] - self.base


def _spike():
    """A spike where x = U - V_th >= 0; backward the rectangle |x| < 0.5 of height 1
    (stbp's Rectangular(1))."""
    import torch

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).float()

        @staticmethod
        def backward(ctx, grad):
            x, = ctx.saved_tensors
            return grad * (x.abs() < 0.5).float()

    return Spike.apply


def model(kind, n, rectangle=False, detach_reset=False):
    """(parameters [weight, bias], run): run(x) maps input spikes (T, B, n) to output
    spikes (T, B, n) in library `kind`. For --check only: rectangle, SpikingJelly with
    stbp's rectangular surrogate (a Python callable: its reference path); detach_reset,
    plain torch with snnTorch's detached reset."""
    import torch
    from torch import nn

    spike = _spike()
    if kind == "torch":
        fc = nn.Linear(n, n)

        def run(x):
            X = fc(x)                                   # all T B rows at once
            mem = torch.zeros_like(X[0])
            out = torch.zeros_like(X[0])
            spikes = []
            # unbind, not X[t]: the backward of each X[t] writes a zero gradient of
            # X's full size, T of them, which made this backward ten times SJ's
            for Xt in X.unbind(0):
                kept = 1 - (out.detach() if detach_reset else out)
                mem = mem * DECAY * kept + Xt
                out = spike(mem - V_TH)
                spikes.append(out)
            return torch.stack(spikes)
        return [fc.weight, fc.bias], run
    if kind == "snntorch":
        import snntorch as snn
        fc = nn.Linear(n, n)
        lif = snn.Leaky(beta=DECAY, threshold=V_TH, reset_mechanism="zero",
                        spike_grad=spike)

        def run(x):
            mem = lif.init_leaky()
            spikes = []
            for t in range(x.shape[0]):
                out, mem = lif(fc(x[t]), mem)
                spikes.append(out)
            return torch.stack(spikes)
        return [fc.weight, fc.bias], run
    if kind == "spikingjelly":
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
        fc = layer.Linear(n, n, step_mode="m")
        grad = spike if rectangle else surrogate.PiecewiseQuadratic(alpha=2.0)
        lif = neuron.LIFNode(tau=1 / (1 - DECAY), decay_input=False, v_threshold=V_TH,
                             v_reset=0.0, surrogate_function=grad, detach_reset=False,
                             step_mode="m")
        net = nn.Sequential(fc, lif)

        def run(x):
            functional.reset_net(net)
            return net(x)
        return [fc.weight, fc.bias], run
    raise ValueError(f"unknown library {kind!r}")


def _loss(spikes, batch):
    return (spikes.mean(0) ** 2).sum() / (2 * batch)     # targets 0


def torch_layer(kind, n, batch, T, repeat=1, seed=0):
    """Forward and backward seconds and peak RSS of the layer in a torch library."""
    import torch
    torch.manual_seed(seed)
    fwd, bwd = [], []
    with _RssPeak() as peak:
        params, run = model(kind, n)
        x = torch.empty(T, batch, n).bernoulli_(RATE)    # one buffer, no temporaries
        for _ in range(repeat):
            for p in params:
                p.grad = None
            t0 = time.perf_counter()
            loss = _loss(run(x), batch)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            del loss
    fwd.sort(), bwd.sort()
    return {"n": n, "batch": batch, "T": T, "forward_s": fwd[len(fwd) // 2],
            "backward_s": bwd[len(bwd) // 2], "peak_bytes": peak.peak,
            "memory": peak.method, "runs": repeat}


def probe(kind, n, batch, T, repeat, threads, seed=0):
    """Run in a fresh process: a small warm-up, then the layer at width n."""
    if kind == "stbp":
        sys.path.insert(0, ROOT)
        from stbp import bench
        return bench.onb_probe(n, batch, T, repeat, seed)
    import torch
    if threads:
        torch.set_num_threads(threads)
    torch_layer(kind, 64, 2, 10)                        # thread pools, first calls
    before = _rss()["rss"]
    r = torch_layer(kind, n, batch, T, repeat, seed)
    r["rss_before_bytes"] = before
    return r


def _fresh(kind, n, batch, T, repeat, threads):
    code = (f"import sys, json; sys.path.insert(0, {os.path.join(ROOT, 'tools')!r}); "
            f"import bench_onb as b; print(json.dumps(b.probe({kind!r}, {n}, {batch}, "
            f"{T}, {repeat}, {threads})))")
    env = dict(os.environ)
    if threads == 1:            # one thread for every pool: BLAS, OpenMP, Numba's too
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                   STBP_NUMBA_THREADS="1")
    load = os.getloadavg()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} n = {n} failed:\n{done.stderr}")
    return {"library": kind, **json.loads(done.stdout.strip().splitlines()[-1]),
            "load_average_before": load, "load_average_after": os.getloadavg()}


def check(n=64, batch=4, steps=40, scale=4.0, seed=0):
    """All four on one small layer with stbp's weights (times `scale`, for spikes) and
    the same input: per library the fraction of output spikes that differ from stbp's
    and the largest gradient difference relative to the largest of stbp's gradient."""
    import numpy as np
    import torch
    sys.path.insert(0, ROOT)
    from stbp.network import SNN

    net = SNN([n, n], tau=DECAY, v_th=V_TH, seed=seed, init="fan_in", carry="reset")
    net.W[0] *= scale
    net.b[0][:] = 0.1
    x = (np.random.default_rng(seed).random((steps, batch, n)) < RATE)
    x = x.astype(np.float32)
    trace = net.forward(x.copy())
    (dW, db), = net.gradients(trace, np.zeros((batch, n), np.float32))
    ref = np.asarray(trace.o[-1], dtype=np.float32)
    out = {"n": n, "batch": batch, "T": steps, "weight_scale": scale,
           "stbp_spike_rate": float(ref.mean())}
    grads = {}
    cases = [("torch", "", {}), ("snntorch", "", {}),
             ("torch", " (reset detached, as snnTorch's)", {"detach_reset": True}),
             ("spikingjelly", " (rectangle, reference path)", {"rectangle": True}),
             ("spikingjelly", "", {})]
    for kind, what, options in cases:
        params, run = model(kind, n, **options)
        with torch.no_grad():
            params[0].copy_(torch.from_numpy(np.array(net.W[0])))
            params[1].copy_(torch.from_numpy(np.array(net.b[0])))
        spikes = run(torch.from_numpy(x))
        _loss(spikes, batch).backward()
        grads[kind + what] = [p.grad.numpy() for p in params]
        out[kind + what] = {
            "spikes_differing": float((spikes.detach().numpy() != ref).mean()),
            "dW_max_rel_diff": float(np.abs(grads[kind + what][0] - dW).max()
                                     / np.abs(dW).max()),
            "db_max_rel_diff": float(np.abs(grads[kind + what][1] - db).max()
                                     / np.abs(db).max())}
    snn, detached = grads["snntorch"], grads["torch (reset detached, as snnTorch's)"]
    out["snntorch_dW_max_rel_diff_from_torch_reset_detached"] = float(
        np.abs(snn[0] - detached[0]).max() / np.abs(detached[0]).max())
    return out


def _versions():
    import numba
    import numpy
    import snntorch
    import spikingjelly
    import torch
    from importlib.metadata import version
    return {"torch": torch.__version__, "snntorch": snntorch.__version__,
            "spikingjelly": getattr(spikingjelly, "__version__", None)
            or version("spikingjelly"),
            "numpy": numpy.__version__, "numba": numba.__version__}


def _commit():
    sys.path.insert(0, ROOT)
    from stbp.reproduce import provenance
    return provenance()


def table(results):
    """The printed table: per n and library, seconds, GiB and stbp's lead."""
    lines = [f"{'n':>6} {'library':13} {'forward s':>10} {'backward s':>11} "
             f"{'total s':>8} {'peak GiB':>9} {'/ stbp':>7}"]
    for n in sorted({r["n"] for r in results}):
        rows = [r for r in results if r["n"] == n]
        stbp = [r["forward_s"] + r["backward_s"] for r in rows
                if r["library"] == "stbp"]
        for r in sorted(rows, key=lambda r: KINDS.index(r["library"])):
            total = r["forward_s"] + r["backward_s"]
            lead = f"{total / min(stbp):7.2f}" if stbp else "      -"
            lines.append(f"{n:6d} {r['library']:13} {r['forward_s']:10.3f} "
                         f"{r['backward_s']:11.3f} {total:8.3f} "
                         f"{r['peak_bytes'] / 2**30:9.3f} {lead}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--T", type=int, default=T)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per process")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every library (default: each one's own)")
    parser.add_argument("--libraries", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--no-check", action="store_true")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the JSON's notes (why this run, the machine)")
    parser.add_argument("--out",
                        default=os.path.join(ROOT, "results", "bench-onb.json"))
    args = parser.parse_args(argv)
    before = os.getloadavg()
    result = {"setup": {"layer": "Linear(n, n) with bias + LIF", "batch": args.batch,
                        "T": args.T, "dtype": "float32", "input": f"Bernoulli({RATE})",
                        "decay": DECAY, "v_th": V_TH, "reset": "hard, to 0",
                        "loss": "1/(2B) sum rate^2 (targets 0)",
                        "backward": "dL/dW and dL/db through all T steps",
                        "rounds": args.rounds, "runs_per_process": args.repeat},
              "provenance": _commit(), "versions": _versions(),
              "threads": args.threads or "each library's default (torch: "
                         f"{os.cpu_count()}; stbp: BLAS default, kernels every core "
                         "(stbp.backend.tune_process))",
              "memory": "peak resident set (VmHWM after clear_refs) above the resident "
                        "set before the network and the input are built, in a fresh "
                        "process per library and n after a small warm-up layer",
              "notes": [
                  "Same shapes, steps, neuron and loss in all four; input spikes are "
                  "float32 (T, B, n) in the torch libraries and in stbp.",
                  "torch and SpikingJelly apply the Linear to all T B rows at once, as "
                  "stbp does; snnTorch steps fc(x[t]) as the benchmark's own snnTorch "
                  "code does (500 products of 16 rows).",
                  "snnTorch detaches its reset (no gradient through it); torch, "
                  "SpikingJelly and stbp's exact rule differentiate through it.",
                  "SpikingJelly's timed runs use PiecewiseQuadratic(alpha=2) (no "
                  "rectangle on its fast path); the check runs it also with the "
                  "rectangle through its reference path.",
                  "stbp keeps its spikes as bool in the trace and U as float32.",
                  *args.note]}
    if not args.no_check:
        result["check"] = check()
        print("check (differences from stbp on one small layer):")
        for k, v in result["check"].items():
            if isinstance(v, dict):
                print(f"  {k:42s} spikes {v['spikes_differing']:.4f}, dW "
                      f"{v['dW_max_rel_diff']:.2e}, db {v['db_max_rel_diff']:.2e}")
    results = []
    kinds = list(args.libraries)
    turn = 0
    for _ in range(args.rounds):
        for n in args.n:
            order = kinds[turn % len(kinds):] + kinds[:turn % len(kinds)]
            turn += 1
            for kind in order:
                r = _fresh(kind, n, args.batch, args.T, args.repeat, args.threads)
                results.append(r)
                print(f"  {kind:13s} n = {n:5d}: forward {r['forward_s']:.3f} s, "
                      f"backward {r['backward_s']:.3f} s, peak "
                      f"{r['peak_bytes'] / 2**30:.3f} GiB", flush=True)
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "python": platform.python_version(),
                         "load_average_before": before,
                         "load_average_after": os.getloadavg()}
    result["results"] = results
    print(table(results))
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
