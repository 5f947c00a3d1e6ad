"""tools/ratio_spread.py: its probe runs a measurement in a fresh process and its summary
states the runs' median and range."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load():
    spec = importlib.util.spec_from_file_location(
        "ratio_spread", os.path.join(ROOT, "tools", "ratio_spread.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spread_summarises_every_run(monkeypatch):
    tool = load()
    ratios = iter([1.2, 1.5, 1.4, 1.9, 1.3, 1.6])
    monkeypatch.setattr(tool, "probe", lambda kind, repeat: {
        "step_s": 0.02, "matmul_s": 0.01, "ratio": next(ratios)})
    out = tool.spread(3, 5)
    assert [r["ratio"] for r in out["dense"]["runs"]] == [1.2, 1.4, 1.3]  # turns alternate
    assert (out["dense"]["median"], out["dense"]["min"], out["dense"]["max"]) == (1.3, 1.2,
                                                                                  1.4)
    assert (out["conv"]["median"], out["conv"]["min"], out["conv"]["max"]) == (1.6, 1.5, 1.9)


def test_probe_measures_in_a_fresh_process(monkeypatch):
    tool = load()
    monkeypatch.setitem(tool.PROBES, "tiny", "bench.conv_training_step("
                        "'8x8-2C3-P2-5', batch=4, T=3, repeat={repeat})")
    r = tool.probe("tiny", 5)
    assert set(r) == {"step_s", "matmul_s", "ratio"}
    assert r["ratio"] == pytest.approx(r["step_s"] / r["matmul_s"])


def test_main_refuses_a_count_below_one():
    with pytest.raises(SystemExit):
        load().main(["--processes", "0"])
