"""Time one training step of stbp beside PyTorch autograd and snnTorch, side by side.

Run it with a Python that has torch and snntorch installed, in a virtual environment of
its own (PyTorch is never a dependency of the package), for example::

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch==2.13.0 snntorch numpy numba tqdm
    /work/peers-venv/bin/python tools/bench_peers.py --threads 1   # one thread each
    /work/peers-venv/bin/python tools/bench_peers.py --out results/bench-peers-default-threads.json
    /work/peers-venv/bin/python tools/bench_peers.py --cnn --threads 1   # the CNN

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

``--cnn`` times the paper's convolutional network instead, 28x28-15C5-P2-40C5-P2-300-10
(B = 100, T = 8, float32, exact rule, Adam with lr 1e-3), in two libraries:

* ``torch_autograd``: the authors' CNN as they wrote it (Wu et al.'s published code):
  per step a fresh Bernoulli draw of the input, then for each layer
  ``mem = mem * decay * (1 - spike) + op(x)`` and the spike by the same custom Function
  (rectangular surrogate), ``op`` a convolution (no padding, stride 1) or a linear
  layer, the spikes of each convolution averaged over 2 x 2 by ``F.avg_pool2d``; decay
  0.2, threshold 0.5;
* ``stbp``: ``stbp.bench._conv_training``, the step that ``conv_training_step`` times
  (tau 0.2, V_th 0.5, the exact rule with the package's default carry "exp", whose
  factor after a spike is 0.2 exp(-5) instead of the authors' 0: the same work).

Its results go into the JSON file named by ``--out`` under the key "cnn", beside the
dense step's results already there (those are kept), with their own load averages,
versions, thread counts and the git commit they were measured at.
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
#: the CNN's step: the paper's network, as stbp.bench.conv_training_step sets it up
CNN_SPEC, CNN_BATCH, CNN_T, CNN_LR = "28x28-15C5-P2-40C5-P2-300-10", 100, 8, 1e-3


def _spike_function():
    """The authors' ActFun: a spike where u > V_TH, the rectangular surrogate
    |u - V_TH| < 0.5 (height 1) backward."""
    import torch

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return u.gt(V_TH).float()

        @staticmethod
        def backward(ctx, grad):
            u, = ctx.saved_tensors
            return grad * ((u - V_TH).abs() < 0.5).float()

    return Spike


def torch_steps(kind, steps, warmup, threads):
    """Seconds per step of `steps` timed training steps (after `warmup`) in PyTorch."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    images = torch.rand(BATCH, SIZES[0]) * 0.5
    labels = torch.randint(0, SIZES[-1], (BATCH,))
    targets = nn.functional.one_hot(labels, SIZES[-1]).float()

    Spike = _spike_function()                       # the authors' ActFun
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


def torch_cnn_steps(steps, warmup, threads):
    """Seconds per training step of the paper's CNN in PyTorch, the authors' style."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    B = CNN_BATCH
    images = torch.rand(B, 1, 28, 28) * 0.5
    targets = F.one_hot(torch.randint(0, 10, (B,)), 10).float()
    Spike = _spike_function()
    conv1, conv2 = nn.Conv2d(1, 15, 5), nn.Conv2d(15, 40, 5)   # 24x24x15, then 8x8x40
    fc1, fc2 = nn.Linear(4 * 4 * 40, 300), nn.Linear(300, 10)
    model = nn.ModuleList([conv1, conv2, fc1, fc2])
    opt = torch.optim.Adam(model.parameters(), lr=CNN_LR)

    def mem_update(op, x, mem, spike):             # the authors' mem_update
        mem = mem * TAU * (1 - spike) + op(x)
        return mem, Spike.apply(mem)

    def step():
        c1_mem = c1_spike = torch.zeros(B, 15, 24, 24)
        c2_mem = c2_spike = torch.zeros(B, 40, 8, 8)
        h1_mem = h1_spike = torch.zeros(B, 300)
        h2_mem = h2_spike = h2_sum = torch.zeros(B, 10)
        for _ in range(CNN_T):
            x = (images > torch.rand(images.size())).float()
            c1_mem, c1_spike = mem_update(conv1, x, c1_mem, c1_spike)
            x = F.avg_pool2d(c1_spike, 2)
            c2_mem, c2_spike = mem_update(conv2, x, c2_mem, c2_spike)
            x = F.avg_pool2d(c2_spike, 2).view(B, -1)
            h1_mem, h1_spike = mem_update(fc1, x, h1_mem, h1_spike)
            h2_mem, h2_spike = mem_update(fc2, h1_spike, h2_mem, h2_spike)
            h2_sum = h2_sum + h2_spike
        loss = ((h2_sum / CNN_T - targets) ** 2).sum() / (2 * B)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _timed(step, steps, warmup)


def stbp_steps(steps, warmup, cnn=False):
    sys.path.insert(0, ROOT)
    from stbp import backend, bench
    backend.tune_process()        # malloc's reuse and Numba's threads, as training does
    if cnn:
        _, _, step = bench._conv_training(CNN_SPEC, CNN_BATCH, CNN_T)
    else:
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


def kernel_threads(threads):
    """How many threads stbp's kernels ran with, for the record: Numba reads neither
    OMP_NUM_THREADS nor torch's setting, so _block sets NUMBA_NUM_THREADS for one thread
    (before 2026-12-01 it did not, and the "one thread" runs gave stbp's kernels both
    cores)."""
    return "1" if threads == 1 else "every core (stbp.backend.tune_process)"


def _block(kind, steps, warmup, threads, cnn=False):
    """Run one block in a fresh process; its step times."""
    code = (f"import sys; sys.path.insert(0, {os.path.join(ROOT, 'tools')!r}); import json, "
            f"bench_peers as b; print(json.dumps(b._run({kind!r}, {steps}, {warmup}, "
            f"{threads}, {cnn!r})))")
    env = dict(os.environ)
    if threads == 1:            # one thread for every pool: BLAS, OpenMP, torch's, Numba's
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
                   STBP_NUMBA_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} block failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run(kind, steps, warmup, threads, cnn=False):
    if kind == "stbp":
        return stbp_steps(steps, warmup, cnn)
    if cnn:
        return torch_cnn_steps(steps, warmup, threads)
    return torch_steps(kind, steps, warmup, threads)


def provenance():
    """{"commit", "tree_clean"} of this checkout (stbp.reproduce.provenance)."""
    sys.path.insert(0, ROOT)
    from stbp.reproduce import provenance
    return provenance()


def cnn(args):
    """The CNN's step, PyTorch in the authors' style beside stbp: the "cnn" key."""
    import numpy
    import torch
    kinds = ("torch_autograd", "stbp")
    before = os.getloadavg()
    times = {k: [] for k in kinds}
    for r in range(args.rounds):
        for kind in kinds[r % 2:] + kinds[:r % 2]:          # alternate who goes first
            times[kind] += _block(kind, args.steps, args.warmup, args.threads, cnn=True)
    result = {
        "setup": {"spec": CNN_SPEC, "batch": CNN_BATCH, "T": CNN_T, "dtype": "float32",
                  "rule": "exact", "optimizer": "Adam", "lr": CNN_LR, "tau": TAU,
                  "v_th": V_TH, "rounds": args.rounds, "steps_per_block": args.steps,
                  "warmup": args.warmup},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "load_average_before": before,
                    "load_average_after": os.getloadavg()},
        "versions": {"torch": torch.__version__, "numpy": numpy.__version__},
        "threads": {"torch": args.threads,
                    "blas": "1" if args.threads == 1 else
                    os.environ.get("OPENBLAS_NUM_THREADS", "default"),
                    "stbp_kernels": kernel_threads(args.threads)},
        "provenance": provenance(),
        "notes": "torch_autograd is the authors' CNN (hard reset: factor 0 after a "
                 "spike); stbp runs its exact rule with the default carry 'exp' "
                 "(factor 0.2 exp(-5) after a spike): the same products and passes. "
                 "Each block of steps runs in a fresh process; the blocks alternate.",
        **{k: {"step_s": statistics.median(v), "times_s": v} for k, v in times.items()},
    }
    result["torch_over_stbp"] = (result["torch_autograd"]["step_s"]
                                 / result["stbp"]["step_s"])
    for k in kinds:
        print(f"CNN {k:16s} {result[k]['step_s'] * 1e3:7.2f} ms per step")
    after = result["machine"]["load_average_after"]
    print(f"PyTorch / stbp {result['torch_over_stbp']:.2f} ({args.threads} threads; "
          f"load {before[0]:.2f} before, {after[0]:.2f} after)")
    saved = {}
    if os.path.exists(args.out):                # keep the dense step's results
        with open(args.out) as fh:
            saved = json.load(fh)
    saved["cnn"] = result
    with open(args.out, "w") as fh:
        json.dump(saved, fh, indent=1)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "bench-peers.json"))
    parser.add_argument("--cnn", action="store_true",
                        help="time the paper's CNN instead (the file's 'cnn' key)")
    args = parser.parse_args(argv)
    if args.cnn:
        return cnn(args)
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
                    "stbp_kernels": kernel_threads(args.threads)},
        "provenance": provenance(),
        **{k: {"step_s": statistics.median(v), "times_s": v} for k, v in times.items()},
    }
    result["torch_over_stbp"] = result["torch_autograd"]["step_s"] / result["stbp"]["step_s"]
    result["snntorch_over_stbp"] = result["snntorch"]["step_s"] / result["stbp"]["step_s"]
    for k in kinds:
        print(f"{k:16s} {result[k]['step_s'] * 1e3:7.2f} ms per step")
    print(f"PyTorch / stbp {result['torch_over_stbp']:.2f}, snnTorch / stbp "
          f"{result['snntorch_over_stbp']:.2f}")
    if os.path.exists(args.out):                # keep the CNN's results
        with open(args.out) as fh:
            saved = json.load(fh)
        if "cnn" in saved:
            result["cnn"] = saved["cnn"]
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
