"""Mutation tests: do the tests catch small mistakes in the book's array code and the kernels?

Each entry of MUTATIONS is one small change (a dropped term, a flipped sign, an
off-by-one, a wrong slope) of one file, given as an exact snippet and its replacement,
with the tests that should catch it.  The tool applies ONE mutation at a time to a
temporary copy of the repository (stbp/, tests/, tools/, pyproject.toml; never the
checkout itself), runs those tests there with the copy's stbp first on the path, and
reports whether they caught it (some test failed) or not (every test passed).

How it runs:

* the tests run with ``cwd`` = the copy and ``PYTHONPATH`` = the copy (the virtual
  environment's editable install points at the checkout; PYTHONPATH wins, and a small
  pytest plugin checks in the child that ``stbp.__file__`` lies inside the copy, else the
  run is an error);
* ``NUMBA_CACHE_DIR`` is a folder of the run: a fresh one for every mutation of
  stbp/kernels/ (the kernels recompile from the mutated source), one shared folder for
  the others (the kernels' source is then the original one, restored byte for byte and
  with its time stamps, so the compiled kernels are reused); no bytecode is written;
* first a baseline: every selected test runs once on the unmutated copy.  Only the
  tests that pass there count for a mutation (a test failing already, e.g. while the
  tests are being rewritten, would "catch" everything); a mutation none of whose tests
  passes unmutated is an error;
* a mutation is caught when one of its tests fails or errors (``-x``: the first one
  stops the run), or the run times out.

A snippet that is not found exactly once in its file is an error, so a refactor cannot
silently disable a mutation (tests/test_mutate.py checks this too, without running the
mutations).

Tests are named by pytest node ids relative to the repository root; ``*`` is a
wildcard, an id without ``[`` also selects every parametrization of that test, and a
path alone every test of that file.

Usage (from the repository root, with the environment that runs the tests; the full run
takes several minutes on two cores, most of it compiling the mutated kernels)::

    .venv/bin/python tools/mutate.py             # every mutation
    .venv/bin/python tools/mutate.py --list      # name, file, tests of each
    .venv/bin/python tools/mutate.py --only backward-exact-drop-G --only cpu-exact-drop-g
    .venv/bin/python tools/mutate.py --without-teeth  # what the tests other than
                                                      # tests/test_teeth_*.py catch

Exit status: 0 every mutation caught; 1 some not caught; 2 an error (a snippet not
found or not unique, no working test for a mutation, a run that imported another stbp,
or pytest failing to run).

Hand-written tool, not exported from the book.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: what the copy holds (book/ is not needed by the tests the mutations run)
COPIED = ("stbp", "tests", "tools", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", ".pytest_cache")


class Mutation(NamedTuple):
    name: str
    file: str          # relative to the repository root
    old: str           # exact snippet, found exactly once in file
    new: str
    tests: tuple       # pytest node ids (``*`` a wildcard)


TEETH = "tests/test_teeth_"
TB = "tests/test_teeth_backward.py"
TC = "tests/test_teeth_conv.py"
TK = "tests/test_teeth_kernels.py"
FD = f"{TB}::test_array_exact_rule_matches_finite_differences"
PLAIN = f"{TB}::test_array_code_on_spikes_equals_a_plain_implementation"
NUMBA = f"{TK}::test_numba_layer_kernels_equal_the_array_code"
EMUL = f"{TK}::test_emulated_cuda_layer_kernels_equal_the_array_code"
# existing tests (they may be renamed or rewritten: the baseline says which ones run)
OLD_LAYER = "tests/test_kernels.py::test_layer_kernels_equal_the_array_code"
OLD_RECT = f"{OLD_LAYER}[numba-exp-7-float64-Rectangular(a=1)]"
OLD_POLY = f"{OLD_LAYER}[numba-exp-7-float64-Polynomial(a=1.3)]"
OLD_CONV_FD = "tests/test_conv.py::test_exact_rule_matches_finite_differences"
OLD_PAD_FD = "tests/test_padding.py::test_exact_rule_matches_finite_differences_with_padding"
OLD_CROP = "tests/test_padding.py::test_crop_after_col2im_is_the_transpose_of_im2col_after_padding"
OLD_FD = ("tests/test_backward.py::test_exact_rule_matches_finite_differences_everywhere",
          "tests/test_rules.py::test_exact_rule_matches_finite_differences_for_each_carry")

MUTATIONS = [
    # --- chapter 3's array code: stbp/backward.py --------------------------------------
    Mutation("backward-exact-drop-G", "stbp/backward.py",
             "    A = U * dF\n    A *= G\n", "    A = U * dF\n",
             (f"{FD}[exp]", f"{PLAIN}[exp-rect]", *OLD_FD)),
    Mutation("backward-exact-drop-F", "stbp/backward.py",
             "    A *= G\n    A += F\n", "    A *= G\n",
             (f"{FD}[exp]", f"{PLAIN}[exp-rect]", *OLD_FD)),
    Mutation("backward-recurrence-skips-t0", "stbp/backward.py",
             "for t in range(G.shape[0] - 2, -1, -1):",
             "for t in range(G.shape[0] - 2, 0, -1):",
             (f"{FD}[exp]", f"{PLAIN}[exp-rect]", *OLD_FD)),
    Mutation("backward-delta-exact-drops-df", "stbp/backward.py",
             "D[:-1] += E[1:] * U[:-1] * dF[:-1]", "D[:-1] += E[1:] * U[:-1]",
             (f"{TB}::test_kept_delta_is_the_error_of_the_outputs",
              "tests/test_conv.py::test_keep_returns_a_dict_per_layer_of_neurons_on_a_"
              "convolutional_network")),
    Mutation("backward-seed-drops-g-next", "stbp/backward.py",
             "return D_next * U_t * G_next * dF_t", "return D_next * U_t * dF_t",
             (f"{NUMBA}[rect-exp-seed]",
              "tests/test_backward.py::test_seed_rule_matches_plain_seed_implementation")),
    Mutation("backward-output-delta-scale", "stbp/backward.py",
             "return -(Y - rate) / (T * Y.shape[0])", "return -(Y - rate) / Y.shape[0]",
             (f"{FD}[exp]", *OLD_FD)),
    # --- chapter 1's carries: stbp/neuron.py ---------------------------------------------
    Mutation("neuron-f01-sign", "stbp/neuron.py",
             "return tau + (tau * math.exp(-1.0 / tau) - tau) * o",
             "return tau - (tau * math.exp(-1.0 / tau) - tau) * o",
             (f"{TB}::test_carries_on_spikes_are_the_carries_at_0_and_1",
              f"{PLAIN}[exp-rect]",
              "tests/test_rules.py::test_carries_agree_on_spikes_and_differ_in_slope")),
    Mutation("neuron-df01-sign", "stbp/neuron.py",
             "return -1.0 + (1.0 - math.exp(-1.0 / tau)) * o",
             "return -1.0 - (1.0 - math.exp(-1.0 / tau)) * o",
             (f"{TB}::test_carries_on_spikes_are_the_carries_at_0_and_1",
              f"{PLAIN}[exp-rect]",
              "tests/test_backward.py::test_seed_rule_matches_plain_seed_implementation",
              "tests/test_rules.py::test_rules_and_carries_give_different_gradients_on_spikes")),
    Mutation("neuron-df-sign", "stbp/neuron.py",
             "return -backend.xp.exp(-o / tau)", "return backend.xp.exp(-o / tau)",
             (f"{FD}[exp]", "tests/test_neuron.py::test_carry_factor_values")),
    # --- chapter 2's network: stbp/network.py --------------------------------------------
    Mutation("network-dense-backward-half", "stbp/network.py",
             "return (P @ self.W).reshape", "return (P @ (self.W * 0.5)).reshape",
             (f"{FD}[exp]", f"{PLAIN}[exp-rect]", *OLD_FD)),
    Mutation("network-forward-no-reset", "stbp/network.py",
             "U[t] += U[t - 1] * carry(O[t - 1], tau)", "U[t] += U[t - 1] * tau",
             (f"{PLAIN}[exp-rect]", f"{NUMBA}[rect-exp-exact]", OLD_RECT, *OLD_FD)),
    # --- chapter 8's convolution: stbp/conv.py -------------------------------------------
    Mutation("conv-im2col-off-by-one", "stbp/conv.py",
             "    Ho, Wo = H - k + 1, W - k + 1\n    sR, sH, sW, sC = A.strides",
             "    Ho, Wo = H - k, W - k\n    sR, sH, sW, sC = A.strides",
             (f"{TC}::test_im2col_is_its_definition_and_col2im_its_transpose",
              f"{TC}::test_array_conv_gradients_match_finite_differences",
              "tests/test_conv.py::test_multichannel_input_is_read_channel_first",
              OLD_CONV_FD, OLD_CROP)),
    Mutation("conv-col2im-off-by-one", "stbp/conv.py",
             "    for i in range(k):\n        for j in range(k):\n            A[:, i:i + Ho",
             "    for i in range(k - 1):\n        for j in range(k):\n            A[:, i:i + Ho",
             (f"{TC}::test_im2col_is_its_definition_and_col2im_its_transpose",
              f"{TC}::test_array_conv_gradients_match_finite_differences",
              "tests/test_conv.py::test_im2col_and_pooling_have_their_transposes")),
    Mutation("conv-pool-backward-not-transpose", "stbp/conv.py",
             "(G / (k * k))", "(G / k)",
             (f"{TC}::test_pooling_and_its_transpose",
              f"{TC}::test_array_conv_gradients_match_finite_differences",
              "tests/test_conv.py::test_im2col_and_pooling_have_their_transposes")),
    Mutation("conv-crop-off-by-one", "stbp/conv.py",
             "return A[:, p:A.shape[1] - p, p:A.shape[2] - p, :] if p else A",
             "return A[:, p:A.shape[1] - p, p - 1:A.shape[2] - p - 1, :] if p else A",
             (f"{TC}::test_padding_and_its_transpose",
              f"{TC}::test_array_conv_gradients_match_finite_differences", OLD_CROP,
              OLD_PAD_FD)),
    # --- chapter 4's surrogates: stbp/surrogates.py --------------------------------------
    Mutation("surrogate-polynomial-slope", "stbp/surrogates.py",
             "self.a / 4 * xp.abs(x)", "self.a / 2 * xp.abs(x)",
             ("tests/test_surrogates.py::test_area_symmetry_peak",
              "tests/test_surrogates.py::test_curve_formulas_at_points",
              f"{NUMBA}[poly-exp-exact]")),
    Mutation("surrogate-rectangular-height", "stbp/surrogates.py",
             "x.dtype.type(1 / self.a)", "x.dtype.type(2 / self.a)",
             ("tests/test_surrogates.py::test_area_symmetry_peak",
              "tests/test_neuron.py::test_rectangular_curve", f"{NUMBA}[rect-exp-exact]")),
    Mutation("surrogate-smooth-grad-scale", "stbp/surrogates.py",
             "return s * (1 - s) / self.a", "return s * (1 - s)",
             (f"{FD}[exp]",
              "tests/test_surrogates.py::test_smooth_grad_is_the_derivative_of_its_spike")),
    Mutation("surrogate-polynomial-kernel-form", "stbp/surrogates.py",
             'return "polynomial", self.a ** 0.5 / 2, self.a / 4',
             'return "polynomial", self.a ** 0.5 / 2, self.a / 2',
             (f"{NUMBA}[poly-exp-exact]", OLD_POLY)),
    # --- chapter 5's optimisers: stbp/optim.py -------------------------------------------
    Mutation("optim-adam-second-moment", "stbp/optim.py",
             "    tmp *= 1 - beta2\n", "",
             (f"{TK}::test_adam_is_the_papers_algorithm[array]",
              "tests/test_kernels.py::test_fused_optimisers_equal_the_array_code")),
    Mutation("optim-sgd-no-momentum", "stbp/optim.py",
             "    v *= momentum\n", "",
             (f"{TK}::test_sgd_is_momentum_sgd[array]",
              "tests/test_kernels.py::test_fused_optimisers_equal_the_array_code")),
    # --- the engine's numbers for the kernels: stbp/engine.py ----------------------------
    Mutation("engine-form-swaps-F", "stbp/engine.py",
             "F0=float(F[0]), F1=float(F[1])", "F0=float(F[1]), F1=float(F[0])",
             (f"{NUMBA}[rect-exp-exact]",
              "tests/test_kernels.py::test_neuron_form_holds_the_array_codes_carry_values",
              OLD_RECT)),
    # --- chapter 7's Numba kernels: stbp/kernels/cpu.py ----------------------------------
    Mutation("cpu-exact-drop-g", "stbp/kernels/cpu.py",
             "e = e + (u * dF * g + F) * E[t + 1, i, j]", "e = e + (u * dF + F) * E[t + 1, i, j]",
             (f"{NUMBA}[rect-exp-exact]",
              OLD_RECT)),
    Mutation("cpu-exact-drop-F", "stbp/kernels/cpu.py",
             "e = e + (u * dF * g + F) * E[t + 1, i, j]", "e = e + (u * dF * g) * E[t + 1, i, j]",
             (f"{NUMBA}[rect-exp-exact]",
              OLD_RECT)),
    Mutation("cpu-seed-drops-g-next", "stbp/kernels/cpu.py",
             "s = s + d[j] * u * g_next[j] * dF", "s = s + d[j] * u * dF",
             (f"{NUMBA}[rect-exp-seed]",
              OLD_RECT)),
    Mutation("cpu-affine-carry-sign-backward", "stbp/kernels/cpu.py",
             "F = tau + slope * Or[t, i, j]", "F = tau - slope * Or[t, i, j]",
             (f"{NUMBA}[smooth-linear-exact]",
              f"{OLD_LAYER}[numba-linear-7-float64-Smooth(a=0.6)]")),
    Mutation("cpu-affine-carry-sign-forward", "stbp/kernels/cpu.py",
             "F = tau + slope * o", "F = tau - slope * o",
             (f"{NUMBA}[smooth-linear-detached]",
              f"{OLD_LAYER}[numba-linear-7-float64-Smooth(a=0.6)]")),
    Mutation("cpu-exp-carry-slope-sign", "stbp/kernels/cpu.py",
             "dF = -ex", "dF = ex",
             (f"{NUMBA}[smooth-exp-exact]",
              f"{OLD_LAYER}[numba-exp-7-float64-Smooth(a=0.6)]")),
    Mutation("cpu-polynomial-slope", "stbp/kernels/cpu.py",
             "h = sa - sb * abs(x)", "h = sa - (sb + sb) * abs(x)",
             (f"{NUMBA}[poly-exp-exact]",
              OLD_POLY)),
    Mutation("cpu-rectangular-width", "stbp/kernels/cpu.py",
             "return sb if abs(x) < sa else zero", "return sb if abs(x) < sa + sa else zero",
             (f"{NUMBA}[rect-exp-exact]",
              OLD_RECT)),
    Mutation("cpu-im2col-off-by-one", "stbp/kernels/cpu.py",
             "for i in range(k):\n                    src = A[r, p + i]",
             "for i in range(k - 1):\n                    src = A[r, p + i]",
             (f"{TK}::test_numba_im2col_and_col2im_equal_the_array_code",
              "tests/test_kernels.py::test_fused_im2col_and_col2im_equal_the_array_code")),
    Mutation("cpu-im2col-one-channel-off-by-one", "stbp/kernels/cpu.py",
             "for j in range(k):\n                            out[r, p, q, i, j]",
             "for j in range(k - 1):\n                            out[r, p, q, i, j]",
             (f"{TK}::test_numba_im2col_and_col2im_equal_the_array_code",
              "tests/test_kernels.py::test_fused_im2col_and_col2im_equal_the_array_code")),
    Mutation("cpu-col2im-off-by-one", "stbp/kernels/cpu.py",
             "for j in range(k):\n                    for q in range(Wo):\n"
             "                        for c in range(C):\n"
             "                            A[r, p + i, q + j, c]",
             "for j in range(k - 1):\n                    for q in range(Wo):\n"
             "                        for c in range(C):\n"
             "                            A[r, p + i, q + j, c]",
             (f"{TK}::test_numba_im2col_and_col2im_equal_the_array_code",
              "tests/test_kernels.py::test_fused_im2col_and_col2im_equal_the_array_code")),
    Mutation("cpu-forward-pooled-carry-swapped", "stbp/kernels/cpu.py",
             "F = F1 if O8_prev[j] else F0", "F = F0 if O8_prev[j] else F1",
             (f"{TK}::test_numba_layer_forward_pooled_equals_the_array_code",)),
    Mutation("cpu-backward-pooled-share-doubled", "stbp/kernels/cpu.py",
             "s = row[j] if pooled else S[t, i, j]",
             "s = row[j] + row[j] if pooled else S[t, i, j]",
             (f"{TK}::test_numba_layer_backward_pooled_equals_the_array_code",)),
    Mutation("conv-backward-pooled-skips-the-spread", "stbp/conv.py",
             "return layer_backward(pool_backward(G, k).reshape(U.shape), U, O, net, rule)",
             "return layer_backward(backend.xp.repeat(G, k * k).reshape(U.shape), U, O, "
             "net, rule)",
             (f"{TK}::test_numba_layer_backward_pooled_equals_the_array_code",)),
    Mutation("cpu-block-products-reversed", "stbp/kernels/cpu.py",
             "for product in products:                 # in block order",
             "for product in list(products)[::-1]:     # in block order",
             (f"{TK}::test_numba_block_products_are_the_array_codes_sum_in_block_order",)),
    Mutation("conv-block-products-last-block-only", "stbp/conv.py",
             "total = backend.xp.zeros_like(product) if total is None else total",
             "total = backend.xp.zeros_like(product)",
             (f"{TK}::test_numba_block_products_are_the_array_codes_sum_in_block_order",
              "tests/test_conv.py::test_blocks_and_kept_rows_give_the_gradients_of_one_block")),
    Mutation("cpu-pool-forward-first-term-twice", "stbp/kernels/cpu.py",
             "if i == 0 and j == 0:", "if i == 0:",
             (f"{TK}::test_numba_pooling_and_its_transpose_equal_the_array_code",)),
    Mutation("cpu-pool-backward-share", "stbp/kernels/cpu.py",
             "d[o + c] = src[c] / kk", "d[o + c] = src[c] / k",
             (f"{TK}::test_numba_pooling_and_its_transpose_equal_the_array_code",
              f"{TK}::test_numba_layer_backward_pooled_equals_the_array_code")),
    Mutation("conv-kept-windows-unchecked", "stbp/conv.py",
             "return kept[1] if backend.xp.array_equal(kept[0], A) else None",
             "return kept[1]",
             (f"{TK}::test_conv_keeps_its_windows_only_for_equal_maps",)),
    Mutation("cpu-adam-second-moment", "stbp/kernels/cpu.py",
             "si = s[i] * b2 + gi * gi * omb2", "si = s[i] * b2 + gi * gi",
             (f"{TK}::test_adam_is_the_papers_algorithm[numba]",
              "tests/test_kernels.py::test_fused_optimisers_equal_the_array_code[Adam-float64]")),
    # --- chapter 7's CUDA source, built for the CPU by g++: stbp/kernels/cuda.py ---------
    Mutation("cuda-exact-drop-g", "stbp/kernels/cuda.py",
             "real A = u * dF * g + F;", "real A = u * dF + F;",
             (f"{EMUL}[rect-exp-exact]",
              f"{OLD_LAYER}[emulated-cuda-exp-7-float64-Rectangular(a=1)]")),
    Mutation("cuda-polynomial-slope", "stbp/kernels/cuda.py",
             "real h = sa - sb * fabs(x);", "real h = sa - (sb + sb) * fabs(x);",
             (f"{EMUL}[poly-linear-exact]",
              f"{OLD_LAYER}[emulated-cuda-linear-7-float64-Polynomial(a=1.3)]")),
    Mutation("cuda-affine-carry-sign", "stbp/kernels/cuda.py",
             "*F = tau + slope * o;", "*F = tau - slope * o;",
             (f"{EMUL}[smooth-linear-exact]",
              f"{OLD_LAYER}[emulated-cuda-linear-7-float64-Smooth(a=0.6)]")),
]

PLUGIN = r'''
"""pytest plugin of tools/mutate.py: check which stbp runs, select tests, record outcomes."""
import json
import os
import re

import pytest

_OUT = {"outcomes": {}, "collect_errors": [], "stbp": None, "numba_cache": None}


def pytest_configure(config):
    root = os.path.realpath(os.environ["STBP_MUTATE_ROOT"])
    import stbp
    import stbp.kernels.cpu as cpu
    _OUT["stbp"] = stbp.__file__
    try:
        import numba
        _OUT["numba_cache"] = numba.config.CACHE_DIR
    except ImportError:
        pass
    for mod in (stbp, cpu):
        if not os.path.realpath(mod.__file__).startswith(root + os.sep):
            _OUT["wrong_stbp"] = mod.__file__
            _write()
            pytest.exit(f"mutate: imported {mod.__file__}, not the copy's ({root})", 3)


def pytest_collection_modifyitems(session, config, items):
    patterns = [re.compile(p) for p in json.loads(os.environ["STBP_MUTATE_SELECT"])]
    keep, drop = [], []
    for item in items:
        (keep if any(p.fullmatch(item.nodeid) for p in patterns) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_collectreport(report):
    if report.failed:
        _OUT["collect_errors"].append(report.nodeid)


def pytest_runtest_logreport(report):
    seen = _OUT["outcomes"].get(report.nodeid)
    if report.failed:
        _OUT["outcomes"][report.nodeid] = "failed"
    elif report.skipped and seen != "failed":
        _OUT["outcomes"][report.nodeid] = "skipped"
    elif report.when == "call" and seen is None:
        _OUT["outcomes"][report.nodeid] = "passed"


def pytest_sessionfinish(session, exitstatus):
    _write()


def _write():
    with open(os.environ["STBP_MUTATE_OUT"], "w") as fh:
        json.dump(_OUT, fh)
'''


def pattern(test):
    """The regular expression of a node id with ``*`` wildcards (see the docstring)."""
    rx = re.escape(test).replace(r"\*", ".*")
    if "::" not in test:                         # a whole file
        return rx + r"(::.*)?"
    return rx if "[" in test else rx + r"(\[.*\])?"


def test_file(test):
    return test.split("::")[0]


def find(mutation, root=ROOT):
    """How many times the mutation's snippet occurs in its file under root (-1: no file)."""
    path = os.path.join(root, mutation.file)
    if not os.path.isfile(path):
        return -1
    with open(path, encoding="utf-8") as fh:
        return fh.read().count(mutation.old)


def make_copy(dest):
    for name in COPIED:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, name), ignore=IGNORED)
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(dest, name))


def run_pytest(copy, work, tests, select, label, numba_cache, timeout, stop_first):
    """Run pytest in the copy on the files of tests, keeping the node ids that match the
    regular expressions select; return (status, data, seconds, output tail)."""
    files = [f for f in dict.fromkeys(test_file(t) for t in tests)     # in their order
             if os.path.isfile(os.path.join(copy, f))]
    if not files:                                # pytest would run its testpaths
        return 0, {"outcomes": {}, "collect_errors": [], "stbp": None}, 0.0, ""
    out = os.path.join(work, f"result-{label}.json")
    env = {k: v for k, v in os.environ.items()
           if k not in ("STBP_FUSE", "STBP_BACKEND", "PYTHONPATH", "NUMBA_CACHE_DIR")}
    env.update(PYTHONPATH=os.pathsep.join([copy, os.path.join(work, "plugin")]),
               NUMBA_CACHE_DIR=numba_cache, PYTHONDONTWRITEBYTECODE="1",
               STBP_MUTATE_ROOT=copy, STBP_MUTATE_OUT=out,
               STBP_MUTATE_SELECT=json.dumps(select), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-p", "_stbp_mutate_plugin", "-o", "addopts=", "--rootdir", copy,
           "--basetemp", os.path.join(work, f"pytest-{label}"),
           "--continue-on-collection-errors", "-W", "ignore::DeprecationWarning"]
    if stop_first:
        cmd.append("-x")
    start = time.monotonic()
    try:
        done = subprocess.run(cmd + files, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", None, time.monotonic() - start, ""
    seconds = time.monotonic() - start
    tail = (done.stdout + done.stderr)[-3000:]
    if not os.path.exists(out):
        return f"pytest exited {done.returncode} without a report", None, seconds, tail
    with open(out) as fh:
        data = json.load(fh)
    if "wrong_stbp" in data:
        return f"the tests imported {data['wrong_stbp']}, not the copy's stbp", None, seconds, tail
    return done.returncode, data, seconds, tail


def apply(copy, mutation):
    """Write the mutated file into the copy; return a function that restores it exactly
    (bytes and time stamps, so that Numba's cache of the original stays valid)."""
    path = os.path.join(copy, mutation.file)
    stat = os.stat(path)
    with open(path, "rb") as fh:
        original = fh.read()
    text = original.decode("utf-8")
    if text.count(mutation.old) != 1:
        raise ValueError(f"snippet found {text.count(mutation.old)} times in the copy")
    with open(path, "wb") as fh:
        fh.write(text.replace(mutation.old, mutation.new).encode("utf-8"))

    def restore():
        with open(path, "wb") as fh:
            fh.write(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    return restore


def describe(mutation):
    return f"{mutation.name}  {mutation.file}\n    " + "\n    ".join(mutation.tests)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this mutation (repeatable)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds for one pytest run (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--without-teeth", action="store_true",
                        help="leave out tests/test_teeth_*.py: what the other tests catch")
    args = parser.parse_args(argv)

    names = [m.name for m in MUTATIONS]
    if len(set(names)) != len(names):
        print("ERROR: two mutations share a name", file=sys.stderr)
        return 2
    chosen = MUTATIONS
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            print(f"ERROR: no mutation named {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        chosen = [m for m in MUTATIONS if m.name in args.only]
    if args.without_teeth:
        chosen = [m._replace(tests=tuple(t for t in m.tests if not t.startswith(TEETH)))
                  for m in chosen]
    if args.list:
        for m in chosen:
            print(describe(m))
        return 0

    width = max(len(m.name) for m in chosen)
    results, runnable = {}, []
    for m in chosen:
        count = find(m)
        if count != 1:
            why = "file not found" if count < 0 else (
                "snippet not found" if count == 0 else f"snippet found {count} times")
            results[m.name] = ("ERROR", f"{why} in {m.file}")
        else:
            runnable.append(m)

    work = tempfile.mkdtemp(prefix="stbp-mutate-")
    copy = os.path.join(work, "repo")
    os.makedirs(os.path.join(work, "plugin"))
    with open(os.path.join(work, "plugin", "_stbp_mutate_plugin.py"), "w") as fh:
        fh.write(PLUGIN)
    os.makedirs(copy)
    make_copy(copy)
    shared_cache = os.path.join(work, "numba-shared")
    print(f"copy of {ROOT} in {copy}", flush=True)
    try:
        # the baseline: every selected test on the unmutated copy
        tests = [t for m in runnable for t in m.tests]
        tests = list(dict.fromkeys(tests))
        missing = sorted({test_file(t) for t in tests
                          if not os.path.isfile(os.path.join(copy, test_file(t)))})
        for f in missing:
            print(f"warning: {f} does not exist; its tests are left out", flush=True)
        status, base, seconds, tail = run_pytest(copy, work, tests, [pattern(t) for t in tests],
                                                 "baseline", shared_cache, args.timeout, False)
        if base is None:
            print(f"ERROR: the baseline run failed: {status}\n{tail}", flush=True)
            return 2
        passing = {n for n, o in base["outcomes"].items() if o == "passed"}
        failing = sorted(n for n, o in base["outcomes"].items() if o == "failed")
        print(f"baseline: {len(passing)} tests pass, {len(failing)} fail, "
              f"{len(base['collect_errors'])} files do not collect ({seconds:.0f} s); "
              f"stbp from {base['stbp']}", flush=True)
        for n in failing:
            print(f"warning: fails unmutated, left out: {n}", flush=True)
        for n in base["collect_errors"]:
            print(f"warning: does not collect unmutated, left out: {n}", flush=True)
        for t in tests:
            rx = re.compile(pattern(t))
            if not any(rx.fullmatch(n) for n in base["outcomes"]) and test_file(t) not in missing:
                print(f"warning: selects no test: {t}", flush=True)

        for m in runnable:
            rxs = [re.compile(pattern(t)) for t in m.tests]
            mine = [n for n in base["outcomes"] if n in passing
                    and any(rx.fullmatch(n) for rx in rxs)]
            if not mine and args.without_teeth:
                results[m.name] = ("NOT CAUGHT", "no test left that passes unmutated")
                print(f"{'NOT CAUGHT':11} {m.name:{width}}  no test left that passes unmutated",
                      flush=True)
                continue
            if not mine:
                results[m.name] = ("ERROR", "none of its tests passes unmutated")
                print(f"{'ERROR':11} {m.name:{width}}  none of its tests passes unmutated",
                      flush=True)
                continue
            kernel = m.file.startswith("stbp/kernels/")
            cache = os.path.join(work, f"numba-{m.name}") if kernel else shared_cache
            try:
                restore = apply(copy, m)
            except ValueError as exc:                # the copy differs from the checkout
                results[m.name] = ("ERROR", str(exc))
                print(f"{'ERROR':11} {m.name:{width}}  {exc}", flush=True)
                continue
            try:
                status, data, seconds, tail = run_pytest(
                    copy, work, m.tests, [re.escape(n) for n in mine], m.name, cache,
                    args.timeout, True)
            finally:
                restore()
            if status == "timeout":
                results[m.name] = ("CAUGHT", f"timeout after {args.timeout:.0f} s")
            elif data is None:
                results[m.name] = ("ERROR", f"{status}")
                print(tail)
            else:
                failed = [n for n, o in data["outcomes"].items() if o == "failed"]
                if failed:
                    results[m.name] = ("CAUGHT", f"by {failed[0]}")
                elif data["collect_errors"]:
                    results[m.name] = ("CAUGHT", f"{data['collect_errors'][0]} does not collect")
                elif status != 0 and status != 5:
                    results[m.name] = ("ERROR", f"pytest exited {status}")
                    print(tail)
                else:
                    ran = sum(o == "passed" for o in data["outcomes"].values())
                    results[m.name] = ("NOT CAUGHT", f"{ran} of {len(mine)} tests pass")
            verdict, detail = results[m.name]
            print(f"{verdict:11} {m.name:{width}}  {detail} ({seconds:.0f} s)", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    for m in chosen:                                 # the errors found before any run
        verdict, detail = results[m.name]
        if m not in runnable:
            print(f"{verdict:11} {m.name:{width}}  {detail}")
    counts = {v: sum(r[0] == v for r in results.values())
              for v in ("CAUGHT", "NOT CAUGHT", "ERROR")}
    print(f"summary: {len(chosen)} mutations, {counts['CAUGHT']} caught, "
          f"{counts['NOT CAUGHT']} not caught, {counts['ERROR']} errors")
    if counts["ERROR"]:
        return 2
    return 1 if counts["NOT CAUGHT"] else 0


if __name__ == "__main__":
    sys.exit(main())
