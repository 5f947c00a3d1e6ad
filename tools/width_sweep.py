"""A sweep of the surrogate's width a for each of the four curves, scored on validation.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python tools/width_sweep.py \
        --out results/width-sweep.json

For every curve of ``stbp.surrogates.CURVES`` and every width in ``WIDTHS`` this trains
the 784-800-10 network on a short schedule fixed before the first run (``SETTINGS``:
one epoch over the ``n_train`` digits of the training part of the held-out split, the
authors' code's neuron, T = 8, Adam 1e-3, batches of 100, random seed 0) and scores it
on the validation split that ``stbp.reproduce`` uses (``N_VAL`` digits drawn with
``VAL_SEED``).  The test set is never scored: ``datasets`` drops it before anything else
sees the data.  Chapter 4 reads the file this writes.

The width a is each curve's own parameter (``stbp.surrogates``): the rectangle's width,
the sigmoid's scale, the Gaussian's variance; the polynomial's support is 2/sqrt(a), so
that a larger a narrows it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from stbp import backend, files, surrogates  # noqa: E402
from stbp.data import VAL_SEED, load_mnist, validation_split  # noqa: E402
from stbp.reproduce import N_VAL, build, machine, provenance  # noqa: E402
from stbp.train import fit  # noqa: E402

#: The widths a swept for every curve.
WIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: The schedule and neuron of every run, fixed before the sweep: one epoch over all the
#: digits outside the validation split, so that the whole sweep (4 curves x 5 widths)
#: takes under a quarter of an hour on one core (18 to 73 s a run with the fused
#: kernels, on a two-core machine shared with other work).
SETTINGS = dict(network=[784, 800, 10], tau=0.2, v_th=0.5, T=8, T_test=8,
                init="fan_in", lr=1e-3, epochs=1, batch_size=100,
                n_train=60_000 - N_VAL, seed=0, rule="exact", carry="exp",
                protocol="validation", split={"n_val": N_VAL, "seed": VAL_SEED})
#: How the budget was chosen, written into the results.
BUDGET = ("a first start over 10,000 training digits took about 6 s a run; it was "
          "stopped after the five rectangles and restarted over all the training "
          "digits, to fill the quarter-hour budget; the settings were not changed "
          "otherwise")


def datasets(mnist, n_train=SETTINGS["n_train"]):
    """(train, val) from load_mnist's (x_train, y_train, x_test, y_test): the validation
    split of the training digits (N_VAL, VAL_SEED, as stbp.reproduce), and the first
    n_train digits of the rest for training.  The test set is dropped unread."""
    x_train, y_train = mnist[0], mnist[1]
    (x, y), val = validation_split(x_train, y_train, N_VAL, VAL_SEED)
    if not 0 < n_train <= len(x):
        raise ValueError(f"n_train must be in 1..{len(x)}; got {n_train}")
    return (x[:n_train], y[:n_train]), val


def one_run(curve, a, train, val, settings=SETTINGS):
    """Train one network with surrogate curve at width a; its record for the results."""
    cfg = dict(settings, surrogate=curve, a=a)
    net, opt = build(cfg, seed=cfg["seed"], carry=cfg["carry"])
    t0 = time.perf_counter()
    h = fit(net, opt, train, None, val=val, epochs=cfg["epochs"], T=cfg["T"],
            batch_size=cfg["batch_size"], rule=cfg["rule"], seed=cfg["seed"],
            T_test=cfg["T_test"], progress=False)
    return {"curve": curve, "a": a, "val_acc": h.val_acc[-1], "train_loss": h.loss[-1],
            "train_acc": h.train_acc[-1], "rates": h.rates[-1],
            "wall_time_s": time.perf_counter() - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "results", "width-sweep.json"))
    p.add_argument("--data", default=None, help="MNIST folder (default: STBP_DATA)")
    args = p.parse_args(argv)
    origin = provenance()                              # before any training
    backend.tune_process()
    train, val = datasets(load_mnist(args.data))
    runs, t0 = [], time.perf_counter()
    for curve in surrogates.CURVES:
        for a in WIDTHS:
            runs.append(one_run(curve, a, train, val))
            r = runs[-1]
            print(f"{curve:12s} a={a:<5g} val {r['val_acc']:.4f} loss "
                  f"{r['train_loss']:.4f} {r['wall_time_s']:.0f} s", flush=True)
    results = {"settings": SETTINGS, "widths": list(WIDTHS),
               "curves": list(surrogates.CURVES), "budget": BUDGET, **origin,
               "test_scored": False,
               "runs": runs, "wall_time_s": time.perf_counter() - t0,
               "backend": backend.name, "fused": backend.fused is not None,
               "machine": machine()}
    text = json.dumps(results, indent=1).encode()
    files.write_atomic(args.out, lambda fh: fh.write(text), "results file")


if __name__ == "__main__":
    main()
