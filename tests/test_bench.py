"""The benchmark command: what it measures and reports (no timing assertions)."""
import json

import pytest

from stbp import bench


def test_training_step_report():
    r = bench.training_step(sizes=(20, 10, 5), batch=8, T=4, repeat=5)
    assert r["step_s"] > 0 and r["matmul_s"] > 0
    assert r["ratio"] == pytest.approx(r["step_s"] / r["matmul_s"])
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
    assert {"forward", "weight_grads", "layer_backward_exact"} <= {r["function"] for r in rows}


def test_main_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--onb", "--no-scaling", "--repeat", "5", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert set(saved) == {"machine", "training_step", "onb", "profile"}
    assert saved["onb"] == [] and saved["machine"]["backend"] == "numpy"
    assert saved["machine"]["fused_kernels"] is False
    assert "ratio" in capsys.readouterr().out
