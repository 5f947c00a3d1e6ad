"""Time one training step of stbp beside PyTorch autograd and snnTorch, side by side.

Run it with a Python that has torch and snntorch installed, in a virtual environment of
its own (PyTorch is never a dependency of the package), for example::

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch==2.13.0 snntorch numpy numba tqdm
    /work/peers-venv/bin/python tools/bench_peers.py --threads 1   # one thread each
    /work/peers-venv/bin/python tools/bench_peers.py --out results/bench-peers-default-threads.json

The step is the benchmark's (``stbp.bench``): 784-800-10, batch 100, T = 10, float32,
Bernoulli-encoded inputs, mean-squared error of the output rates, gradients through
time, Adam.  The three libraries:

* ``torch_autograd``: the authors' style (Wu et al.'s published code): per step
  ``mem = mem * decay * (1 - spike) + W x``, the spike by a custom autograd Function
  whose backward is the rectangular surrogate;
* ``snntorch``: ``nn.Linear`` + ``snn.Leaky`` (reset to zero, the same decay and
  threshold, the fast-sigmoid surrogate);
* ``stbp``: imported from this worktree, the fused path as the package runs by default.

Each library runs its blocks of steps in a fresh process (so no library's thread pool
spins while another one runs), and the blocks alternate between the three libraries
over several rounds; the result is the median step time of each.  Writes the times,
versions, machine and thread counts as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES, BATCH, T, TAU, V_TH, LR = (784, 800, 10), 100, 10, 0.2, 0.5, 1e-4


def torch_steps(kind, steps, warmup, threads):
    """Seconds per step of `steps` timed training steps (after `warmup`) in PyTorch."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    images = torch.rand(BATCH, SIZES[0]) * 0.5
    targets = nn.functional.one_hot(torch.randint(0, SIZES[-1], (BATCH,)), SIZES[-1]).float()

    class Spike(torch.autograd.Function):          # the authors' ActFun
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return u.gt(V_TH).float()

        @staticmethod
        def backward(ctx, grad):
            u, = ctx.saved_tensors
            return grad * ((u - V_TH).abs() < 0.5).float()

    layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(SIZES, SIZES[1:])])
    if kind == "snntorch":
        import snntorch as snn
        from snntorch import surrogate
        neurons = [snn.Leaky(beta=TAU, threshold=V_TH, reset_mechanism="zero",
                             spike_grad=surrogate.fast_sigmoid()) for _ in layers]
    opt = torch.optim.Adam(layers.parameters(), lr=LR)

    def step():
        x = (torch.rand(T, BATCH, SIZES[0]) < images).float()
        if kind == "snntorch":
            mems = [n.init_leaky() for n in neurons]
        else:
            mems = [torch.zeros(BATCH, n) for n in SIZES[1:]]
            spikes = [torch.zeros(BATCH, n) for n in SIZES[1:]]
        total = 0
        for t in range(T):
            below = x[t]
            for k, layer in enumerate(layers):
                if kind == "snntorch":
                    below, mems[k] = neurons[k](layer(below), mems[k])
                else:
                    mems[k] = mems[k] * TAU * (1 - spikes[k]) + layer(below)
                    spikes[k] = below = Spike.apply(mems[k])
            total = total + below
        loss = ((total / T - targets) ** 2).sum() / (2 * BATCH)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _timed(step, steps, warmup)


def stbp_steps(steps, warmup):
    sys.path.insert(0, ROOT)
    from stbp import bench
    _, _, step = bench._training(SIZES, BATCH, T)
    return _timed(step, steps, warmup)


def _timed(step, steps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def _block(kind, steps, warmup, threads):
    """Run one block in a fresh process; its step times."""
    code = (f"import sys; sys.path.insert(0, {os.path.join(ROOT, 'tools')!r}); import json, "
            f"bench_peers as b; print(json.dumps(b._run({kind!r}, {steps}, {warmup}, "
            f"{threads})))")
    env = dict(os.environ)
    if threads == 1:            # one thread for every pool: BLAS and OpenMP as well as torch's
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} block failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run(kind, steps, warmup, threads):
    if kind == "stbp":
        return stbp_steps(steps, warmup)
    return torch_steps(kind, steps, warmup, threads)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "bench-peers.json"))
    args = parser.parse_args(argv)
    import numpy
    import snntorch
    import torch
    kinds = ("torch_autograd", "snntorch", "stbp")
    load = os.getloadavg()
    times = {k: [] for k in kinds}
    for r in range(args.rounds):
        for kind in kinds[r % 3:] + kinds[:r % 3]:          # rotate who goes first
            times[kind] += _block(kind, args.steps, args.warmup, args.threads)
    result = {
        "setup": {"sizes": list(SIZES), "batch": BATCH, "T": T, "dtype": "float32",
                  "optimizer": "Adam", "rounds": args.rounds, "steps_per_block": args.steps,
                  "warmup": args.warmup},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "load_average_before": load,
                    "load_average_after": os.getloadavg()},
        "versions": {"torch": torch.__version__, "snntorch": snntorch.__version__,
                     "numpy": numpy.__version__},
        "threads": {"torch": args.threads,
                    "blas": os.environ.get("OPENBLAS_NUM_THREADS", "default")
                    if args.threads != 1 else "1",
                    "stbp_kernels": "1 (the package's setting)"},
        **{k: {"step_s": statistics.median(v), "times_s": v} for k, v in times.items()},
    }
    result["torch_over_stbp"] = result["torch_autograd"]["step_s"] / result["stbp"]["step_s"]
    result["snntorch_over_stbp"] = result["snntorch"]["step_s"] / result["stbp"]["step_s"]
    for k in kinds:
        print(f"{k:16s} {result[k]['step_s'] * 1e3:7.2f} ms per step")
    print(f"PyTorch / stbp {result['torch_over_stbp']:.2f}, snnTorch / stbp "
          f"{result['snntorch_over_stbp']:.2f}")
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
