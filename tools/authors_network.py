"""Run the authors' trained network through stbp and through their own model in PyTorch,
on the same input spikes, and compare the two.

The authors' repository (yjwu17/BP-for-SpikingNN) ships ``checkpoint/ckptspiking_model.t7``:
the convolutional network of their ``spiking_model.py`` after 100 epochs on MNIST, with
the test accuracy of every epoch.  The file carries no licence, so neither it nor any
conversion of its weights is committed here; this tool reads it where it is present::

    git -C AUTHORS_REPO show HEAD:checkpoint/ckptspiking_model.t7 > /tmp/authors/ckpt.t7
    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch==2.13.0 numpy numba tqdm
    STBP_DATA=... /work/peers-venv/bin/python tools/authors_network.py /tmp/authors/ckpt.t7 \\
        --repo AUTHORS_REPO

(PyTorch is never a dependency of the package: it lives in this tool's environment only.)

Their network, ``28x28-32C3p1-P2-32C3p1-P2-128-10`` in chapter 8's notation: two 3 x 3
convolutions padded by 1, each followed by 2 x 2 average pooling of the spikes, then 128
and 10 neurons; T = 20, decay 0.2, threshold 0.5 (``mem > thresh``, strict), the update
``mem = mem * decay * (1 - spike) + input`` (stbp's ``carry="reset"``), Bernoulli input
``input > rand`` on ``ToTensor()`` intensities.  The tool

* loads the checkpoint with ``torch.load(..., weights_only=True)`` (no pickle code runs);
* builds the same network in stbp (kernels to (C, k, k, C'), the first fully connected
  layer's columns from channel-first to channel-last order) and writes the same model in
  PyTorch, following their ``spiking_model.py`` (``ActFun``, ``mem_update``);
* draws the input spikes of the 10,000 test digits once, with NumPy, strictly as their
  code does (``x > u``, u uniform in [0, 1)), and feeds the same spikes to both;
* compares predictions (the first largest spike count, as ``max(1)`` in their test loop),
  output spike counts, and the spikes of every layer at every step; for each digit whose
  spikes differ anywhere, finds the first step and layer where they do and the potentials
  of the neurons that differ there, in both models, against the threshold;
* compares, on one batch, stbp's gradients (exact rule, reset carry, rectangular
  surrogate of width 1) with PyTorch's autograd through their ``ActFun``;
* writes the results, the checkpoint's own recorded accuracy and per-epoch test record,
  and the commit of the repository the file came from, to results/authors-network.json.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")                 # one thread each, set before imports

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = "28x28-32C3p1-P2-32C3p1-P2-128-10"
T, TAU, V_TH, LENS = 20, 0.2, 0.5, 0.5              # their time_window, decay, thresh, lens
CHECKPOINT_PATH = "checkpoint/ckptspiking_model.t7"   # inside their repository


def git(*args, cwd=ROOT):
    """Output of a git command, or None where it fails."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def provenance(path, repo):
    """The file's hashes and, with the authors' repository (a git directory), its commit
    and whether the file is that commit's checkpoint, byte for byte."""
    data = open(path, "rb").read()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()   # git's object id
    out = {"file": os.path.basename(path), "bytes": len(data),
           "sha256": hashlib.sha256(data).hexdigest(), "git_blob": blob,
           "repository": "yjwu17/BP-for-SpikingNN", "path": CHECKPOINT_PATH}
    if repo:
        commit = git("--git-dir", repo, "rev-parse", "HEAD")
        theirs = git("--git-dir", repo, "rev-parse", f"HEAD:{CHECKPOINT_PATH}")
        out.update(commit=commit, commit_date=git("--git-dir", repo, "log", "-1",
                                                  "--format=%cI", "HEAD"),
                   file_is_that_commits=theirs == blob)
    return out


def load_checkpoint(path):
    """The checkpoint's dict, loaded with weights_only=True: only tensors, numbers, lists
    and dicts are unpickled, no code.  Its tensors were saved on a CUDA device, so they are
    mapped to the CPU."""
    import torch
    state = torch.load(path, weights_only=True, map_location="cpu")
    how = "torch.load(path, weights_only=True, map_location='cpu')"
    return state, how


def stbp_network(state_dict):
    """stbp's network with the checkpoint's weights (float32, NumPy)."""
    import stbp
    from stbp.surrogates import Rectangular

    w = {k: v.detach().cpu().numpy() for k, v in state_dict.items()}
    net = stbp.SNN(SPEC, tau=TAU, v_th=V_TH, surrogate=Rectangular(2 * LENS), carry="reset",
                   dtype="float32", seed=0)
    fc1 = w["fc1.weight"]                           # columns in torch's (c, h, w) order
    weights = [w["conv1.weight"].transpose(0, 2, 3, 1), w["conv2.weight"].transpose(0, 2, 3, 1),
               fc1.reshape(128, 32, 7, 7).transpose(0, 2, 3, 1).reshape(128, -1),
               w["fc2.weight"]]
    biases = [w[f"{name}.bias"] for name in ("conv1", "conv2", "fc1", "fc2")]
    for W, new in zip(net.W + net.b, weights + biases):  # the layers' own arrays, in place
        assert W.shape == new.shape and W.dtype == new.dtype == np.float32, (W.shape, new.shape)
        W[...] = new
    return net


def torch_network(state_dict, strict=True):
    """The authors' SCNN (spiking_model.py), fed given spikes instead of drawing them; with
    strict=False a control that fires at mem >= thresh, as stbp does, instead of >."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ActFun(torch.autograd.Function):          # their firing function, as written
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return (input.gt(V_TH) if strict else input.ge(V_TH)).float()

        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            temp = abs(input - V_TH) < LENS
            return grad_output.clone() * temp.float()

    def mem_update(ops, x, mem, spike):
        mem = mem * TAU * (1. - spike) + ops(x)
        return mem, ActFun.apply(mem)

    class SCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
            self.conv2 = nn.Conv2d(32, 32, kernel_size=3, stride=1, padding=1)
            self.fc1 = nn.Linear(7 * 7 * 32, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, spikes, keep=False):
            """spikes (T, B, 1, 28, 28) -> output spike counts (B, 10); with keep, also
            every layer's potentials and spikes per step, in stbp's layout."""
            B = spikes.shape[1]
            c1_mem = c1_spike = torch.zeros(B, 32, 28, 28)
            c2_mem = c2_spike = torch.zeros(B, 32, 14, 14)
            h1_mem = h1_spike = torch.zeros(B, 128)
            h2_mem = h2_spike = h2_sumspike = torch.zeros(B, 10)
            kept = []
            for step in range(spikes.shape[0]):
                x = spikes[step]
                c1_mem, c1_spike = mem_update(self.conv1, x, c1_mem, c1_spike)
                x = F.avg_pool2d(c1_spike, 2)
                c2_mem, c2_spike = mem_update(self.conv2, x, c2_mem, c2_spike)
                x = F.avg_pool2d(c2_spike, 2)
                x = x.view(B, -1)
                h1_mem, h1_spike = mem_update(self.fc1, x, h1_mem, h1_spike)
                h2_mem, h2_spike = mem_update(self.fc2, h1_spike, h2_mem, h2_spike)
                h2_sumspike = h2_sumspike + h2_spike
                if keep:
                    kept.append([(_layout(m), _layout(s)) for m, s in (
                        (c1_mem, c1_spike), (c2_mem, c2_spike), (h1_mem, h1_spike),
                        (h2_mem, h2_spike))])
            return h2_sumspike, kept

    def _layout(a):
        """(B, C, H, W) or (B, n) as stbp's (B, H W C) or (B, n), in NumPy."""
        a = a.detach()
        if a.dim() == 4:
            a = a.permute(0, 2, 3, 1)
        return a.reshape(a.shape[0], -1).numpy().copy()

    model = SCNN()
    model.load_state_dict(state_dict)
    return model


def test_set():
    """The 10,000 test digits as ToTensor() gives them (x / 255 in float32), and labels."""
    from stbp.data import load_mnist
    _, _, x_test, y_test = load_mnist()
    return x_test.astype(np.float32) / np.float32(255), y_test.astype(np.int64)


def first_divergence(theirs, ours, s):
    """For sample s: the first (step, layer) where the spikes differ, the neurons that
    differ there with both potentials; None when every spike agrees.  theirs[t][n] and
    ours[t][n] are (potentials, spikes) of layer n at step t, (B, neurons)."""
    for t in range(len(theirs)):
        for n in range(len(theirs[t])):
            (u_t, o_t), (u_s, o_s) = theirs[t][n], ours[t][n]
            differ = np.flatnonzero((o_t[s] > 0) != (o_s[s] > 0))
            if differ.size:
                return {"step": t + 1, "layer": n + 1, "neurons": [
                    {"neuron": int(j), "u_pytorch": float(u_t[s, j]),
                     "u_stbp": float(u_s[s, j]),
                     "spike_pytorch": bool(o_t[s, j] > 0), "spike_stbp": bool(o_s[s, j] > 0),
                     "u_minus_threshold": float(u_t[s, j]) - V_TH}
                    for j in differ[:8]], "neurons_differing": int(differ.size)}
    return None


def cause(div):
    """Why the first differing spike differs: an exact tie, both potentials equal to the
    threshold (stbp fires at u >= v_th, their code at u > v_th), or potentials that differ
    by rounding on either side of the threshold (float32 sums in another order), else
    unexplained."""
    worst = max(div["neurons"], key=lambda d: abs(d["u_minus_threshold"]))
    if all(d["u_pytorch"] == V_TH == d["u_stbp"] for d in div["neurons"]):
        return "tie at the threshold"
    if abs(worst["u_minus_threshold"]) <= 1e-5 and all(
            abs(d["u_pytorch"] - d["u_stbp"]) <= 1e-5 for d in div["neurons"]):
        return "rounding at the threshold"
    return "unexplained"


def compare(model, control, net, x, y, batch, seed, limit):
    """Both models on the same spikes, batch by batch; predictions, counts, every spike;
    and the control (their model firing at >=) on the same spikes, every spike."""
    import torch

    rng = np.random.default_rng(seed)
    n = min(limit, len(x))
    pred_t, pred_s, counts_diff, digits = [], [], [], []
    same_spikes, same_ge, u_agree = 0, 0, 0.0
    time_t = time_s = 0.0
    for start in range(0, n, batch):
        xb = x[start:start + batch]
        B = len(xb)
        spikes = xb[None, :, None] > rng.random((T, B, 1, 28, 28), dtype=np.float32)
        t0 = time.perf_counter()
        with torch.no_grad():
            counts_t, kept = model(torch.from_numpy(spikes.astype(np.float32)), keep=True)
        t1 = time.perf_counter()
        trace = net.forward(spikes.reshape(T, B, 784))
        t2 = time.perf_counter()
        time_t, time_s = time_t + t1 - t0, time_s + t2 - t1
        counts_t = counts_t.numpy().round().astype(np.int64)
        counts_s = trace.o[-1].sum(axis=0).astype(np.int64)
        pt, ps = counts_t.argmax(axis=1), counts_s.argmax(axis=1)    # first largest
        # torch's max(1) in their test loop: the first largest too
        assert np.array_equal(pt, torch.from_numpy(counts_t).max(1)[1].numpy())
        pred_t.append(pt)
        pred_s.append(ps)
        counts_diff.append(np.abs(counts_t - counts_s).max(axis=1))
        ours = [[(trace.u[k][t], trace.o[k + 1][t]) for k in range(4)] for t in range(T)]
        with torch.no_grad():
            _, kept_ge = control(torch.from_numpy(spikes.astype(np.float32)), keep=True)
        for s in range(B):
            ge = first_divergence(kept_ge, ours, s) is None
            same_ge += ge
            div = first_divergence(kept, ours, s)
            if div is None:
                same_spikes += 1
                u_agree = max(u_agree, max(float(np.abs(kept[t][k][0][s] - ours[t][k][0][s])
                                                 .max()) for t in range(T) for k in range(4)))
                continue
            digits.append({"digit": start + s, "label": int(y[start + s]),
                           "prediction_pytorch": int(pt[s]), "prediction_stbp": int(ps[s]),
                           "counts_pytorch": counts_t[s].tolist(),
                           "counts_stbp": counts_s[s].tolist(), "first_difference": div,
                           "cause": cause(div), "same_as_stbp_with_their_threshold_at_ge": ge})
        agree = np.mean(np.concatenate(pred_t) == np.concatenate(pred_s))
        print(f"{start + B:6d} digits: predictions agree {agree:.4%}, spikes differ in "
              f"{len(digits)}", file=sys.stderr)
    pred_t, pred_s = np.concatenate(pred_t), np.concatenate(pred_s)
    counts_diff = np.concatenate(counts_diff)
    disagree = [d for d in digits if d["prediction_pytorch"] != d["prediction_stbp"]]
    return {
        "digits": n, "batch": batch, "T": T, "spike_seed": seed,
        "accuracy_pytorch": float(np.mean(pred_t == y[:n])),
        "accuracy_stbp": float(np.mean(pred_s == y[:n])),
        "predictions_agree": float(np.mean(pred_t == pred_s)),
        "predictions_disagree_count": int(np.sum(pred_t != pred_s)),
        "max_output_count_difference": int(counts_diff.max()),
        "digits_with_any_output_count_difference": int(np.sum(counts_diff > 0)),
        "digits_with_identical_spikes_everywhere": same_spikes,
        "max_potential_difference_where_spikes_agree": u_agree,
        "causes_of_first_spike_difference": {c: sum(d["cause"] == c for d in digits)
                                             for c in sorted({d["cause"] for d in digits})},
        "layer_of_first_spike_difference": {
            str(n): sum(d["first_difference"]["layer"] == n for d in digits)
            for n in sorted({d["first_difference"]["layer"] for d in digits})},
        "digits_with_identical_spikes_everywhere_with_their_threshold_at_ge": same_ge,
        "max_distance_to_threshold_at_first_difference": max(
            [abs(nr["u_minus_threshold"]) for d in digits
             for nr in d["first_difference"]["neurons"]], default=None),
        "disagreeing_digits": disagree,
        "digits_whose_spikes_differ": [
            {k: d[k] for k in ("digit", "label", "prediction_pytorch", "prediction_stbp",
                               "cause", "same_as_stbp_with_their_threshold_at_ge")}
            | {"step": d["first_difference"]["step"],
                                            "layer": d["first_difference"]["layer"]}
            for d in digits],
        "seconds_pytorch_with_copies": time_t, "seconds_stbp": time_s,
    }


def time_models(model, net, x, batch, seed, batches=5):
    """Seconds per batch of each model's forward pass alone (median of `batches`
    alternating runs, after one of each to warm up), on spikes drawn as in compare."""
    import torch

    rng = np.random.default_rng(seed)
    times = {"pytorch": [], "stbp": []}
    for k in range(batches + 1):
        spikes = x[k * batch:(k + 1) * batch][None, :, None] > rng.random(
            (T, batch, 1, 28, 28), dtype=np.float32)
        t0 = time.perf_counter()
        with torch.no_grad():
            model(torch.from_numpy(spikes.astype(np.float32)))
        t1 = time.perf_counter()
        net.forward(spikes.reshape(T, batch, 784))
        t2 = time.perf_counter()
        if k:
            times["pytorch"].append(t1 - t0)
            times["stbp"].append(t2 - t1)
    return {"batch": batch, "T": T, "batches": batches,
            "seconds_per_batch": {k: float(np.median(v)) for k, v in times.items()}}


def compare_gradients(model, net, x, y, batch, seed):
    """stbp's exact gradients against PyTorch's autograd of their code, on one batch of
    the same spikes, with their loss MSELoss(rates, one-hot) = (2 / 10) stbp's loss."""
    import torch

    rng = np.random.default_rng(seed)
    spikes = x[:batch, None][None] > rng.random((T, batch, 1, 28, 28), dtype=np.float32)
    onehot = np.eye(10, dtype=np.float32)[y[:batch]]
    counts, _ = model(torch.from_numpy(spikes.astype(np.float32)))
    loss = torch.nn.MSELoss()(counts / T, torch.from_numpy(onehot))
    model.zero_grad()
    loss.backward()
    trace = net.forward(spikes.reshape(T, batch, 784))
    grads = net.gradients(trace, onehot, rule="exact")
    names = ["conv1", "conv2", "fc1", "fc2"]
    theirs = [(getattr(model, m).weight.grad.numpy(), getattr(model, m).bias.grad.numpy())
              for m in names]
    scale = 2 / 10                     # d(MSELoss)/d(stbp loss): (1/(10 B)) / (1/(2 B))
    out = {"digits": batch, "loss_pytorch": float(loss.detach()), "loss_stbp_times_0.2":
           scale * net.loss(trace, onehot), "parameters": {}}
    for name, (dW_t, db_t), (dW_s, db_s) in zip(names, theirs, grads):
        if dW_t.ndim == 4:
            dW_t = dW_t.transpose(0, 2, 3, 1)
        elif name == "fc1":
            dW_t = dW_t.reshape(128, 32, 7, 7).transpose(0, 2, 3, 1).reshape(128, -1)
        for part, a, b in (("weight", dW_t, scale * dW_s), ("bias", db_t, scale * db_s)):
            out["parameters"][f"{name}.{part}"] = {
                "max_abs_pytorch": float(np.abs(a).max()),
                "max_abs_difference_relative": float(np.abs(a - b.reshape(a.shape)).max()
                                                     / max(np.abs(a).max(), 1e-30))}
    return out


def record_of(state):
    """The checkpoint's recorded accuracy and its per-epoch test record."""
    acc = [float(a) for a in state["acc_record"]]
    best = int(np.argmax(acc))
    return {"recorded_accuracy_percent": float(state["acc"]),
            "recorded_epoch": int(state["epoch"]), "epochs_recorded": len(acc),
            "test_accuracy_per_epoch_percent": acc,
            "best_epoch": best, "best_accuracy_percent": acc[best],
            "last_epoch": len(acc) - 1, "last_accuracy_percent": acc[-1],
            "epochs_at_best": [i for i, a in enumerate(acc) if a == acc[best]],
            "epoch_numbering": "0-based, as their main.py counts (epoch in range(100))"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="the authors' ckptspiking_model.t7")
    parser.add_argument("--repo", help="their repository (a git directory), to record "
                                       "its commit and check that the file is its checkpoint")
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "authors-network.json"))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seed of the input spikes")
    parser.add_argument("--limit", type=int, default=10_000, help="test digits to run")
    args = parser.parse_args(argv)

    import torch
    sys.path.insert(0, ROOT)
    import numba
    import stbp
    stbp.backend.tune_process()        # one Numba thread and malloc's reuse, as training has
    torch.set_num_threads(1)
    start = time.perf_counter()
    commit = git("rev-parse", "HEAD")                  # the code that runs, read first
    clean = git("status", "--porcelain", "--untracked-files=no") == ""
    state, how = load_checkpoint(args.checkpoint)
    model, net = torch_network(state["net"]), stbp_network(state["net"])
    control = torch_network(state["net"], strict=False)
    x, y = test_set()
    result = {
        "what": "the authors' trained network (yjwu17/BP-for-SpikingNN) run by stbp and by "
                "their model in PyTorch on the same input spikes (tools/authors_network.py)",
        "checkpoint": provenance(args.checkpoint, args.repo) | {"loaded_with": how},
        "network": {"spec": SPEC, "T": T, "tau": TAU, "v_th": V_TH,
                    "carry": "reset", "surrogate": "Rectangular(1.0)",
                    "threshold_rule": "stbp fires at u >= v_th, their code at u > v_th",
                    "input": "x / 255 > u, u uniform in [0, 1) drawn once with NumPy "
                             "(float32), the same spikes for both"},
        "record": record_of(state),
        "comparison": compare(model, control, net, x, y, args.batch, args.seed, args.limit),
        "gradients": compare_gradients(model, net, x, y, 20, args.seed + 1),
        "timing": time_models(model, net, x, args.batch, args.seed + 2),
        "stbp_fused_kernels": type(getattr(stbp.backend.fused, "kernels", None)).__name__,
        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                     "numba": numba.__version__, "python": platform.python_version(),
                     "stbp_from": os.path.dirname(stbp.__file__)},
        "stbp_commit": commit, "stbp_tree_clean_at_start": clean,
        "threads": {"torch": torch.get_num_threads(), "numba": numba.get_num_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "machine": platform.machine(), "seconds_total": None,
    }
    result["seconds_total"] = time.perf_counter() - start
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
        fh.write("\n")
    c = result["comparison"]
    print(f"pytorch {c['accuracy_pytorch']:.4f}, stbp {c['accuracy_stbp']:.4f}, agree "
          f"{c['predictions_agree']:.4%}; wrote {args.out}")


if __name__ == "__main__":
    main()
