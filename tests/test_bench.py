"""The benchmark command: what it measures and reports (no timing assertions)."""
import json

import numpy as np
import pytest

from stbp import backend, bench
from stbp.kernels.cpu import spike_product, spike_weight_grad


def test_training_step_report():
    r = bench.training_step(sizes=(20, 10, 5), batch=8, T=4, repeat=5)
    assert r["step_s"] > 0 and r["matmul_s"] > 0 and r["forward_gradients_s"] > 0
    assert r["ratio"] == pytest.approx(r["step_s"] / r["matmul_s"])
    assert r["ratio_forward_gradients"] == pytest.approx(r["forward_gradients_s"] / r["matmul_s"])
    assert 0 < r["input_spike_density"] < 0.5          # images are drawn in [0, 0.5)
    # with kernels, the array code is timed in the same blocks
    assert ("array_step_s" in r) == (backend.fused is not None)
    # U in float32 (4 bytes) and spikes as bool (1 byte) per neuron and step
    assert r["trace_bytes"] == 5 * 4 * 8 * (10 + 5)
    assert r["bytes_per_neuron_step"] == 5.0
    assert r["peak_bytes"] >= r["trace_bytes"]


def test_onb_layer_and_profile():
    o = bench.onb_layer(64, batch=2, T=10)
    assert o["n"] == 64 and o["forward_s"] > 0 and o["backward_s"] > 0
    assert o["peak_bytes"] > 64 * 64 * 4          # at least the weight matrix' gradient
    rows = bench.profile(steps=2)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    names = {r["function"] for r in rows}
    assert {"forward", "grads"} <= names       # the layers' methods (stbp.network.Dense)
    # the fused path's kernels, or the array code's recurrence
    assert ("_backward" in names) == (backend.fused is not None)
    assert ("layer_backward_exact" in names) == (backend.fused is None)


def test_peers_ratio(tmp_path):
    assert bench.peers_ratio(str(tmp_path / "missing.json")) is None
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"torch_autograd": {"step_s": 0.03}, "stbp": {"step_s": 0.02}}))
    assert bench.peers_ratio(str(path)) == pytest.approx(1.5)


def test_crossover_density():
    pts = [{"density": 0.1, "blas_s": 1.0, "event_s": 0.5},
           {"density": 0.2, "blas_s": 1.0, "event_s": 2.0}]
    assert bench.crossover(pts) == pytest.approx(0.15)       # log ratio -0.69 .. +0.69
    assert bench.crossover(pts[:1]) is None


def test_event_driven_products_equal_blas():
    rng = np.random.default_rng(0)
    O = rng.random((30, 17)) < 0.2
    W = rng.normal(0, 1, (9, 17)).astype(np.float32)
    E = rng.normal(0, 1, (30, 9)).astype(np.float32)
    Of = O.astype(np.float32)
    np.testing.assert_allclose(spike_product(O, W), Of @ W.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(spike_weight_grad(E, O), E.T @ Of, rtol=1e-5, atol=1e-5)
    points, _ = bench.event_driven(densities=(0.05, 0.5), rows=20, k=30, m=10, repeat=1)
    assert [p["density"] for p in points] == [0.05, 0.5]
    assert all(p["blas_s"] > 0 and p["event_s"] > 0 for p in points)


def test_main_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--onb", "--no-scaling", "--no-memory", "--no-conv", "--repeat",
                       "5", "--out", str(out), "--peers", str(tmp_path / "none.json")]) == 0
    saved = json.loads(out.read_text())
    assert set(saved) == {"machine", "commit", "tree_clean", "training_step", "onb", "profile",
                          "load_average_end"}
    assert saved["onb"] == [] and saved["machine"]["backend"] == "numpy"
    assert saved["machine"]["fused_kernels"] is (backend.fused is not None)
    assert saved["training_step"]["peers_ratio"] is None
    text = capsys.readouterr().out
    assert "step / matmuls" in text and "forward+gradients / matmuls" in text
    assert "PyTorch step / stbp step" in text


def test_trace_nbytes_is_the_bytes_of_a_real_trace():
    from stbp.network import SNN
    net = SNN([12, 7, 3], tau=0.2, v_th=0.5, seed=0)
    spikes = np.random.default_rng(0).random((5, 4, 12)) < 0.3
    trace = net.forward(spikes.astype(np.float32))
    arrays = list(trace.u) + list(trace.o)
    assert len(arrays) == 5              # U of 2 layers, O of the input and of both
    assert bench.trace_nbytes(trace) == sum(a.nbytes for a in arrays)
    # U float32, the input as given (float32 here), the layers' spikes bool
    assert bench.trace_nbytes(trace) == 5 * 4 * ((7 + 3) * 4 + 12 * 4 + (7 + 3))


def test_training_memory_against_the_trace():
    rows = bench.training_memory(sizes=(20, 10, 5), batch=4, T=3, spec="8x8-2C3-P2-5",
                                 conv_batch=2, conv_T=3)
    assert [r["network"] for r in rows] == ["20-10-5", "8x8-2C3-P2-5"]
    _, _, step = bench._training((20, 10, 5), 4, 3)
    assert rows[0]["trace_bytes"] == bench.trace_nbytes(step(keep=True))
    _, _, step = bench._conv_training("8x8-2C3-P2-5", 2, 3)
    assert rows[1]["trace_bytes"] == bench.trace_nbytes(step(keep=True))
    for r in rows:
        assert r["peak_bytes"] >= r["trace_bytes"] > 0     # the step holds its trace
        assert r["peak_over_trace"] == pytest.approx(r["peak_bytes"] / r["trace_bytes"])


def test_rss_meter():
    m = bench._rss()
    assert m["peak"] >= m["rss"] > 0
    with bench._RssPeak() as peak:
        # 300 MiB touched: above the 256 MiB that malloc may keep from freed arrays
        block = np.ones(300 << 20, dtype=np.uint8)
        del block
    assert peak.method
    if peak.method.startswith("VmHWM"):                # the high-water mark was reset
        assert peak.peak >= 290 << 20
    o = bench.onb_layer(32, batch=2, T=5, memory="rss")
    assert o["memory"] == peak.method and o["carry"] == "reset"


def test_onb_fresh_runs_in_another_process():
    o = bench.onb_fresh(48, batch=2, T=5)
    assert o["n"] == 48 and o["T"] == 5 and o["forward_s"] > 0 and o["backward_s"] > 0
    assert o["rss_before_bytes"] > 0 and o["peak_bytes"] >= 0
    assert o["memory"] in {"VmHWM after clear_refs (Linux)",
                           "ru_maxrss since the process began"}


def test_onb_peers_table():
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
    import bench_onb                       # imports no torch until a library runs
    rows = [{"library": "torch", "n": 8, "forward_s": 3.0, "backward_s": 1.0,
             "peak_bytes": 2**30},
            {"library": "stbp", "n": 8, "forward_s": 1.0, "backward_s": 1.0,
             "peak_bytes": 2**29}]
    lines = bench_onb.table(rows).splitlines()
    assert len(lines) == 3 and "library" in lines[0]
    assert lines[1].split()[:2] == ["8", "stbp"]              # stbp first
    assert lines[2].split() == ["8", "torch", "3.000", "1.000", "4.000", "1.000", "2.00"]


def test_conv_profile_parts_add_up():
    rows = bench.conv_profile("8x8-2C3-P2-4", batch=3, T=2, steps=1)
    assert abs(sum(r["share"] for r in rows) - 1) < 1e-9
    assert any(r["part"].startswith("products") for r in rows)
