"""Replay the first epochs of a committed run and compare them with its results file.

    python tools/replay.py results/mlp-long-exact-seed0.json --epochs 1 [--no-fuse]

Trains the run's configuration, rule and seed again for the given number of epochs (into
a temporary folder) and compares each epoch's loss, training accuracy and validation (or
test) accuracy with the committed file's, exactly.  Prints one line per number and exits
1 on any difference.  The training digits, their order, the spikes and every update come
from the seed, so the same code computes the same numbers; a difference means the
arithmetic changed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KEYS = ("loss", "train_acc", "val_acc", "test_acc")


def replay(path, epochs=1, fuse=True):
    from stbp import backend, reproduce
    with open(path) as fh:
        committed = json.load(fh)
    backend.use("numpy", fuse=fuse)
    carry = committed["settings"].get("carry")
    with tempfile.TemporaryDirectory() as out:
        again = reproduce.run(committed["config"], seed=committed["seed"],
                              rule=committed["rule"], out=out, epochs=epochs,
                              progress=False, test=False if committed.get(
                                  "protocol") == "validation" else True, carry=carry)
    rows = []
    for key in KEYS:
        for e in range(epochs):
            want = committed["history"][key][e]
            got = again["history"][key][e]
            rows.append((f"{key}[{e + 1}]", want, got, want == got))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--no-fuse", action="store_true", help="the array code")
    args = parser.parse_args(argv)
    rows = replay(args.results, args.epochs, not args.no_fuse)
    engine = "array code" if args.no_fuse else "fused kernels"
    for name, want, got, same in rows:
        print(f"{args.results} ({engine}) {name}: committed {want!r}, replayed {got!r}: "
              f"{'same' if same else 'DIFFERENT'}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
