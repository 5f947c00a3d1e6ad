"""Re-time the reproduction configurations with the fused kernels and with the array code.

    OPENBLAS_NUM_THREADS=1 python tools/retime.py --configs mlp-long best cnn --out results/retime.json

For each configuration this builds the network and optimiser exactly as
``stbp.reproduce.run`` does, then, alternating the fused path and the book's array code
(``backend.use("numpy", fuse=...)``) in one process, times ``--batches`` training steps
on the configuration's real training digits (``train_epoch``) and one pass over the set
the configuration scores after every epoch (the validation set, or the test set under the
legacy protocol) at its T_test. The estimate of one epoch is the step time times the
number of batches in an epoch plus that pass.  It also reports the epoch times recorded
in the committed results files (``results/<config>-exact-seed0.json``), which say which
path and machine produced them.  Run it on an otherwise idle machine; the runs of the
README used one BLAS thread each, so set ``OPENBLAS_NUM_THREADS=1`` to compare with them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from stbp import backend, files  # noqa: E402
from stbp.data import VAL_SEED, load_mnist, validation_split  # noqa: E402
from stbp.reproduce import N_VAL, build, machine, settings  # noqa: E402
from stbp.train import accuracy, dataset, eval_rng, train_epoch  # noqa: E402


def time_config(config, data, batches, rounds):
    cfg = settings(config)
    x_train, y_train, x_test, y_test = data
    if cfg.get("protocol") == "validation":
        train, scored = validation_split(x_train, y_train, N_VAL, VAL_SEED)
    else:
        train, scored = (x_train, y_train), (x_test, y_test)
    n_train = train[0].shape[0]
    part = (train[0][:batches * cfg["batch_size"]], train[1][:batches * cfg["batch_size"]])
    out = {}
    for _ in range(rounds):
        for fuse in (True, False):
            backend.use("numpy", fuse=fuse)
            net, opt = build(cfg)
            x, y = dataset("train", part, net)
            xs, ys = dataset("scored", scored, net)
            rng = backend.default_rng(0)
            train_epoch(net, opt, x[:cfg["batch_size"]], y[:cfg["batch_size"]], cfg["T"], rng,
                        cfg["batch_size"], progress=False, shift=cfg["shift"])   # warm-up
            t0 = time.perf_counter()
            train_epoch(net, opt, x, y, cfg["T"], rng, cfg["batch_size"], progress=False,
                        shift=cfg["shift"])
            step_s = (time.perf_counter() - t0) / batches
            t0 = time.perf_counter()
            accuracy(net, xs, ys, cfg["T_test"], eval_rng(0))
            eval_s = time.perf_counter() - t0
            key = "fused" if fuse else "array"
            best = out.get(key)
            if best is None or step_s < best["step_s"]:
                out[key] = {"step_s": step_s, "scored_pass_s": eval_s,
                            "epoch_s": step_s * -(-n_train // cfg["batch_size"]) + eval_s}
    backend.use("numpy")
    recorded = None
    path = os.path.join(ROOT, "results", f"{config}-exact-seed0.json")
    if os.path.exists(path):
        with open(path) as fh:
            r = json.load(fh)
        recorded = {"file": os.path.relpath(path, ROOT), "fused": r.get("fused"),
                    "median_epoch_s": statistics.median(r["history"]["time"]),
                    "min_epoch_s": min(r["history"]["time"]),
                    "threads": r.get("machine", {}).get("threads")}
    return {"config": config, "network": cfg.get("network", "784-800-10"), "T": cfg["T"],
            "T_test": cfg["T_test"], "batch_size": cfg["batch_size"], "n_train": n_train,
            "n_scored": int(scored[0].shape[0]), "batches_timed": batches, **out,
            "speedup": out["array"]["epoch_s"] / out["fused"]["epoch_s"], "recorded": recorded}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["mlp-long", "best", "cnn"])
    parser.add_argument("--batches", type=int, default=100, help="training steps timed")
    parser.add_argument("--rounds", type=int, default=2, help="alternations; the best is kept")
    parser.add_argument("--data", default=None, help="folder of the MNIST files")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.rounds < 1:
        parser.error("--batches and --rounds must be at least 1")
    if args.out:
        files.check_target(args.out, "re-timing file")      # before the timing, not after
    backend.tune_process()              # malloc's reuse and Numba's threads, as training has
    load = list(os.getloadavg())            # before this run adds its own
    data = load_mnist(args.data)
    rows = []
    for config in args.configs:
        r = time_config(config, data, args.batches, args.rounds)
        rows.append(r)
        rec = r["recorded"]
        print(f"{config:10s} step {r['fused']['step_s'] * 1e3:7.1f} ms fused, "
              f"{r['array']['step_s'] * 1e3:7.1f} ms array code; epoch about "
              f"{r['fused']['epoch_s']:6.1f} s against {r['array']['epoch_s']:6.1f} s "
              f"(x{r['speedup']:.2f})" + ("" if rec is None else
                                          f"; recorded median {rec['median_epoch_s']:.1f} s"))
    results = {"machine": {**machine(), "load_average_before": load}, "runs": rows}
    if args.out:
        text = json.dumps(results, indent=1).encode()
        files.write_atomic(args.out, lambda fh: fh.write(text), "re-timing file")
    return results


if __name__ == "__main__":
    main()
