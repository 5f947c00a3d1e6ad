"""How much a single benchmark run's step-to-products ratio moves: the dense and the
convolutional training step, each measured in several fresh processes taking turns.

    python tools/ratio_spread.py --processes 5 --out results/bench-spread.json

``python -m stbp.bench`` measures each ratio once, in one process, with the step and its
products interleaved in blocks.  On a shared machine whose speed drifts over minutes,
that single number moves from run to run, and the step (kernels, BLAS and Python
threads handing work to each other on two cores) moves more than its products.  This
script runs ``stbp.bench.training_step`` (784-800-10) and
``stbp.bench.conv_training_step`` (the paper's CNN) in turn, each in a fresh process
with the training commands' settings (``stbp.backend.tune_process``), ``--processes``
times, and records every ratio with its median, its range and the load average before
and after, at the commit it ran at.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from stbp import files  # noqa: E402
from stbp.reproduce import machine, provenance  # noqa: E402

#: what each fresh process runs: the measurement, as python -m stbp.bench runs it
PROBES = {
    "dense": "bench.training_step(repeat={repeat})",
    "conv": "bench.conv_training_step(repeat={repeat})",
}


def probe(kind, repeat):
    """One measurement of `kind` (a key of PROBES) in a fresh process: its dict."""
    code = ("import json, stbp\nfrom stbp import backend, bench\n"
            "backend.tune_process()\n"
            f"r = {PROBES[kind].format(repeat=int(repeat))}\n"
            "print(json.dumps({k: v for k, v in r.items() if k in "
            "('step_s', 'matmul_s', 'ratio')}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the {kind} probe failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(processes, repeat):
    """{kind: {"runs": [...], "median", "min", "max"}} over `processes` turns."""
    runs = {kind: [] for kind in PROBES}
    for _ in range(processes):
        for kind in PROBES:
            r = probe(kind, repeat)
            r["load_average"] = list(os.getloadavg())
            runs[kind].append(r)
            print(f"{kind:5s} step {r['step_s'] * 1e3:7.1f} ms, products "
                  f"{r['matmul_s'] * 1e3:7.1f} ms, ratio {r['ratio']:.2f}", flush=True)
    out = {}
    for kind, rows in runs.items():
        ratios = [r["ratio"] for r in rows]
        out[kind] = {"runs": rows, "median": statistics.median(ratios), "min": min(ratios),
                     "max": max(ratios)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5,
                        help="fresh processes per network (default 5)")
    parser.add_argument("--repeat", type=int, default=20,
                        help="timed steps per process, as python -m stbp.bench's --repeat")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.processes < 1 or args.repeat < 1:
        parser.error("--processes and --repeat must be at least 1")
    before = list(os.getloadavg())
    results = {"setup": {"processes": args.processes, "repeat": args.repeat,
                         "dense": "784-800-10, batch 100, T = 10",
                         "conv": "28x28-15C5-P2-40C5-P2-300-10, batch 100, T = 8"},
               **provenance(), "machine": machine(), "load_average_before": before}
    results.update(spread(args.processes, args.repeat))
    results["load_average_after"] = list(os.getloadavg())
    for kind in PROBES:
        r = results[kind]
        print(f"{kind}: median ratio {r['median']:.2f}, from {r['min']:.2f} to "
              f"{r['max']:.2f}")
    if args.out:
        text = json.dumps(results, indent=1).encode()
        files.write_atomic(args.out, lambda fh: fh.write(text), "results file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
