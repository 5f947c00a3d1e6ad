"""The reproduction command: results file contents, resumption, bad configuration."""
import json

import numpy as np
import pytest

from stbp import SNN, reproduce


@pytest.fixture
def tiny_mnist(monkeypatch):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 300)
    x = rng.integers(0, 40, (300, 28, 28)).astype(np.uint8)
    for i, c in enumerate(y):                       # class c lights up row block c
        x[i, 2 * c:2 * c + 3, :] = 250
    data = (x[:200], y[:200], x[200:], y[200:])
    monkeypatch.setattr(reproduce, "load_mnist", lambda root=None: data)


def test_run_writes_results_and_resumes(tmp_path, tiny_mnist):
    r = reproduce.run("best", seed=1, out=tmp_path, epochs=2, progress=False)
    path = tmp_path / "best-exact-seed1.json"
    saved = json.loads(path.read_text())
    assert saved == json.loads(json.dumps(r))
    assert saved["settings"]["epochs"] == 2 and saved["settings"]["T"] == 8
    assert saved["settings"]["shift"] == 2
    assert saved["history"]["epoch"] == [1, 2]
    assert saved["final_test_acc"] == saved["history"]["test_acc"][-1]
    assert saved["final_test_acc"] > 0.5
    # the final network is scored over the training window and over the test window
    assert saved["settings"]["T_test"] == 30 and set(saved["final_test_acc_by_T"]) == {"8", "30"}
    assert saved["final_test_acc_by_T"]["30"] == saved["final_test_acc"]
    assert {"platform", "cpus", "numpy", "backend"} <= set(saved["machine"])
    assert saved["stbp_version"] and saved["wall_time_s"] > 0
    # running again resumes from the checkpoint: nothing left to train, same history
    again = reproduce.run("best", seed=1, out=tmp_path, epochs=2, progress=False)
    assert again["history"] == saved["history"]
    # asking for more epochs trains only the missing one
    more = reproduce.run("best", seed=1, out=tmp_path, epochs=3, progress=False)
    assert more["history"]["loss"][:2] == saved["history"]["loss"]
    assert len(more["history"]["epoch"]) == 3
    # the checkpoint of this configuration is not resumed under another rule's settings
    (tmp_path / "best-exact-seed1.ckpt.npz").replace(tmp_path / "nearest-exact-seed1.ckpt.npz")
    with pytest.raises(ValueError, match="saved by another run"):
        reproduce.run("nearest", seed=1, out=tmp_path, epochs=3, progress=False)


def test_cli_and_unknown_config(tmp_path, tiny_mnist, capsys):
    assert reproduce.main(["--config", "best", "--seed", "2", "--epochs", "1", "--quiet",
                           "--out", str(tmp_path), "--rule", "seed"]) == 0
    assert "best rule=seed seed=2: test accuracy" in capsys.readouterr().out
    assert (tmp_path / "best-seed-seed2.json").exists()
    assert SNN.load(tmp_path / "best-seed-seed2.weights.npz").sizes == [784, 800, 10]
    with pytest.raises(ValueError, match="unknown configuration 'fast'"):
        reproduce.run("fast", out=tmp_path)


def test_paper_configs_are_the_papers_settings():
    for name in ("rectangular", "polynomial", "sigmoid", "gaussian"):
        cfg = reproduce.CONFIGS[f"paper-{name}"]
        assert (cfg["tau"], cfg["v_th"], cfg["T"], cfg["a"], cfg["init"]) == (0.1, 1.5, 30, 1.0, "paper")
        assert cfg["surrogate"] == name
