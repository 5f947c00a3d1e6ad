"""The short runs of tools/fingerprint.py give, bit for bit, the numbers recorded in
results/fingerprint.json at the commit before the layer redesign (its "commit"): the
mean loss and accuracy of a few batches of mlp-long and cnn, seed 0, and a SHA-256 of the
trained weights, on the array code and on the fused kernels.

The runs happen in a fresh process that imports the tool from tools/ (importlib) under
its ONE_THREAD environment: the record was made with one BLAS thread, and a product of
another thread count may sum in another order.  Needs the MNIST training set where
stbp.data looks for it (``$STBP_DATA/mnist``, else the user cache); skipped without it
(nothing is downloaded here)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stbp.data import mnist_dir

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "fingerprint.py"
RECORD = json.loads((ROOT / "results" / "fingerprint.json").read_text())
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")

#: Run in the subprocess: the tool imported by importlib, its fingerprints as JSON; a
#: nudge (one weight of the built network moved by 2^-20 of itself) when asked.
PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("fingerprint_tool", sys.argv[1])
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
if sys.argv[3] == "nudge":
    from stbp import reproduce
    build = reproduce.build
    def nudged(cfg, seed=0, carry="exp"):
        net, opt = build(cfg, seed, carry)
        W = net.W[-1]
        W[0, 0] = W[0, 0] * (1 + 2 ** -20)
        return net, opt
    reproduce.build = nudged
cases = json.loads(sys.argv[2])
print(json.dumps({c: tool.fingerprint(c.split()[0], c.split()[1] == "fused", data=sys.argv[4])
                  for c in cases}))
"""


def load_tool():
    spec = importlib.util.spec_from_file_location("fingerprint_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(cases, data, nudge=False):
    tool = load_tool()
    env = {**os.environ, **tool.ONE_THREAD, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, str(TOOL), json.dumps(cases),
                           "nudge" if nudge else "plain", str(data)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mnist():
    d = mnist_dir()
    if not all((d / n).is_file() or (d / (n + ".gz")).is_file() for n in NAMES):
        pytest.skip(f"MNIST training files not found in {d} (set STBP_DATA)")
    return d


@pytest.fixture(scope="module")
def found(mnist):
    return run_tool(sorted(RECORD["fingerprints"]), mnist)


def test_the_record_covers_every_case_of_the_tool():
    tool = load_tool()
    assert RECORD["tree_clean"] is True and len(RECORD["commit"]) == 40
    assert RECORD["cases"] == tool.CASES
    assert set(RECORD["fingerprints"]) == {f"{config} {engine}" for config in tool.CASES
                                           for engine in ("array", "fused")}
    for fp in RECORD["fingerprints"].values():
        assert set(fp) == {"loss", "acc", "weights_sha256"}
        float.fromhex(fp["loss"]), float.fromhex(fp["acc"])      # exact hexadecimal floats
    assert set(tool.ONE_THREAD.values()) == {"1"}


@pytest.mark.parametrize("case", sorted(RECORD["fingerprints"]))
def test_a_short_run_has_the_recorded_fingerprint(found, case):
    assert found[case] == RECORD["fingerprints"][case]


def test_a_changed_weight_changes_the_fingerprint(mnist):
    """The comparison can fail: one weight nudged after building gives another digest."""
    nudged = run_tool(["mlp-long fused"], mnist, nudge=True)["mlp-long fused"]
    assert nudged["weights_sha256"] != RECORD["fingerprints"]["mlp-long fused"][
        "weights_sha256"]
