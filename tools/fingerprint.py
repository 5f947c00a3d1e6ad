"""A short training run's fingerprint: the numbers that must not change when the code is
reorganised.

    python tools/fingerprint.py --out results/fingerprint.json     # record (at a commit)
    python tools/fingerprint.py --check results/fingerprint.json   # compare, exit 1 if not

For each case (the configurations ``mlp-long`` and ``cnn`` of ``stbp.reproduce``, seed 0,
the array code and the fused kernels), it builds the configuration's network and Adam,
trains on the first digits of the MNIST training set for a few batches through
``stbp.train.train_epoch`` and records the mean loss and the accuracy as exact
hexadecimal floats, with a SHA-256 of the trained weights.  Run at one commit and checked
at another, equal fingerprints mean the same arithmetic, bit for bit
(``tests/test_fingerprint.py`` checks the committed file).  Uses only functions that
existed before the layer redesign, so that the file could be recorded before it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The thread counts the fingerprints are recorded and checked under (the Makefile's
#: ONE_THREAD): a BLAS product of another thread count may sum in another order, and
#: the weights after a few Adam steps then differ in their last bits.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}
if "numpy" not in sys.modules:          # read by BLAS when NumPy is first imported
    os.environ.update(ONE_THREAD)

CASES = {"mlp-long": {"digits": 500, "batch": 100}, "cnn": {"digits": 200, "batch": 100}}


def fingerprint(config, fuse, data=None):
    """{"loss", "acc", "weights_sha256"} of one short run (in a process whose BLAS runs
    one thread: ONE_THREAD in the environment before NumPy is imported)."""
    import numpy as np

    from stbp import backend, reproduce, train
    from stbp.data import load_mnist
    saved = backend.name
    backend.use("numpy", fuse=fuse)
    try:
        cfg = reproduce.settings(config)
        x, y, _, _ = load_mnist(data)
        case = CASES[config]
        x, y = train.prepare(x[:case["digits"]], y[:case["digits"]])
        net, opt = reproduce.build(cfg, seed=0)
        rng = backend.default_rng(0)
        loss, acc, _ = train.train_epoch(net, opt, x, y, cfg["T"], rng, case["batch"],
                                         rule="exact", progress=False)
        digest = hashlib.sha256()
        for W, b in zip(net.W, net.b):
            digest.update(np.ascontiguousarray(backend.to_numpy(W)).tobytes())
            digest.update(np.ascontiguousarray(backend.to_numpy(b)).tobytes())
        return {"loss": float(loss).hex(), "acc": float(acc).hex(),
                "weights_sha256": digest.hexdigest()}
    finally:
        backend.use(saved)


def all_fingerprints(data=None):
    return {f"{config} {'fused' if fuse else 'array'}": fingerprint(config, fuse, data)
            for config in CASES for fuse in (False, True)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", help="write the fingerprints (and the commit) here")
    group.add_argument("--check", help="compare with the fingerprints in this file")
    args = parser.parse_args(argv)
    found = all_fingerprints()
    if args.out:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True,  # noqa
                                        text=True).stdout.strip()
        record = {"commit": git("rev-parse", "HEAD"), "tree_clean": git("status",
                  "--porcelain", "--untracked-files=no") == "", "cases": CASES,
                  "fingerprints": found}
        with open(args.out, "w") as fh:
            json.dump(record, fh, indent=1)
            fh.write("\n")
        print(json.dumps(found, indent=1))
        return 0
    with open(args.check) as fh:
        want = json.load(fh)["fingerprints"]
    bad = [k for k in want if want[k] != found.get(k)]
    for k in want:
        print(f"{k:16s} {'same' if k not in bad else 'DIFFERENT'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
