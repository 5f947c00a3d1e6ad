"""The reproduction command: results file contents, resumption, bad configuration."""
import json

import numpy as np
import pytest

import stbp
from stbp import backend, checkpoint, reproduce


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
    assert reproduce.main(["--config", "mlp", "--epochs", "1", "--quiet", "--no-test",
                           "--out", str(tmp_path)]) == 0
    assert "test set not scored" in capsys.readouterr().out
    assert (tmp_path / "best-seed-seed2.json").exists()
    assert checkpoint.load(tmp_path / "best-seed-seed2.weights.npz")["net"].sizes == [784, 800, 10]
    with pytest.raises(ValueError, match="unknown configuration 'fast'"):
        reproduce.run("fast", out=tmp_path)


def test_paper_configs_are_the_papers_settings():
    for name in ("rectangular", "polynomial", "sigmoid", "gaussian"):
        cfg = reproduce.CONFIGS[f"paper-{name}"]
        assert (cfg["tau"], cfg["v_th"], cfg["T"], cfg["a"], cfg["init"]) == (0.1, 1.5, 30, 1.0, "paper")
        assert cfg["surrogate"] == name


def test_validation_protocol_end_to_end(tmp_path, tiny_mnist, monkeypatch):
    """mlp: trains on the training digits minus the held-out ones, scores validation every
    epoch, and the test set exactly once, after the last epoch (over T_test)."""
    from stbp import train
    x_train, y_train, x_test, y_test = tiny_mnist
    calls = []
    real = train.accuracy

    def spy(net, x, y, T, rng, batch_size=1000):    # every scoring goes through accuracy
        calls.append((len(x), T, len(x) == len(x_test)))
        return real(net, x, y, T, rng, batch_size)
    monkeypatch.setattr(train, "accuracy", spy)
    fits = []
    real_fit = reproduce.fit
    monkeypatch.setattr(reproduce, "fit", lambda *a, **k: fits.append((a, k)) or real_fit(*a, **k))
    r = reproduce.run("mlp", seed=0, out=tmp_path, epochs=2, progress=False)
    assert calls == [(50, 8, False), (50, 8, False), (100, 8, True)]
    (net, opt, train_set, test_set), kw = fits[0]
    assert test_set is None and len(train_set[0]) == 150 and len(kw["val"][0]) == 50
    saved = json.loads((tmp_path / "mlp-exact-seed0.json").read_text())
    assert saved == json.loads(json.dumps(r))
    h = saved["history"]
    assert h["epoch"] == [1, 2] and h["test_acc"] == [None, None]
    assert len(h["val_acc"]) == 2 and saved["final_val_acc"] == h["val_acc"][-1]
    assert saved["final_val_acc"] > 0.5 and saved["final_test_acc"] > 0.5
    assert saved["test_scored"] is True and saved["protocol"] == "validation"
    assert saved["split"] == {"n_val": 50, "seed": reproduce.VAL_SEED}
    assert "schedule" in saved["choices"] and "T" in saved["choices"] and "choices" not in saved["settings"]
    assert saved["backend"] == "numpy" and saved["fused"] is (backend.fused is not None)
    assert {"platform", "cpus", "numpy", "backend"} <= set(saved["machine"])


def test_selection_run_never_touches_the_test_set(tmp_path, tiny_mnist, monkeypatch):
    from stbp import train
    x_test = tiny_mnist[2]
    seen, prepared = [], []
    real, real_prepare = train.accuracy, train.prepare

    def spy(net, x, y, T, rng, batch_size=1000):    # every scoring goes through accuracy
        seen.append(len(x) == len(x_test))
        return real(net, x, y, T, rng, batch_size)

    def spy_prepare(images, labels=None):           # and every image set through prepare
        prepared.append(np.shares_memory(images, x_test))
        return real_prepare(images, labels)
    monkeypatch.setattr(train, "accuracy", spy)
    monkeypatch.setattr(train, "prepare", spy_prepare)
    r = reproduce.run("mlp", seed=1, out=tmp_path, epochs=2, progress=False, test=False)
    assert seen == [False, False]                  # validation twice, the test set never
    assert prepared == [False, False]              # training and validation images only
    assert r["test_scored"] is False and r["final_test_acc"] is None
    assert r["history"]["test_acc"] == [None, None] and len(r["history"]["val_acc"]) == 2
    # --no-test is for the validation protocol only: the legacy runs score test every epoch
    with pytest.raises(ValueError, match="no-test.*'nearest'"):
        reproduce.run("nearest", out=tmp_path, epochs=1, progress=False, test=False)


def test_mlp_configs_are_the_requested_settings():
    mlp, long = reproduce.CONFIGS["mlp"], reproduce.CONFIGS["mlp-long"]
    assert mlp["protocol"] == long["protocol"] == "validation"
    expect = dict(tau=0.2, v_th=0.5, T=8, T_test=8, surrogate="rectangular", a=1.0,
                  init="fan_in", lr=1e-3, batch_size=100, shift=0)
    assert {k: mlp[k] for k in expect} == expect == {k: long[k] for k in expect}
    assert (mlp["epochs"], mlp["decay_every"]) == (30, 10)
    assert (long["epochs"], long["decay_every"]) == (50, 20)
    assert all("protocol" not in reproduce.CONFIGS[c] for c in ("nearest", "best", "paper-sigmoid"))


def test_cnn_config_trains_the_papers_network(tmp_path, tiny_mnist, monkeypatch):
    """cnn: the paper's convolutional network under the held-out protocol; its checkpoint
    resumes as a convolutional network, and its settings were fixed, not chosen."""
    from stbp.conv import Conv, Pool
    cfg = reproduce.settings("cnn")
    assert cfg["network"] == reproduce.CNN_SPEC == "28x28-15C5-P2-40C5-P2-300-10"
    assert (cfg["tau"], cfg["v_th"], cfg["surrogate"], cfg["a"], cfg["init"], cfg["lr"]) == (
        0.2, 0.5, "rectangular", 1.0, "paper", 1e-3)
    assert cfg["protocol"] == "validation" and cfg["T"] == cfg["T_test"] == 8
    choices = reproduce.CONFIGS["cnn"]["choices"]
    assert choices["schedule"].startswith("fixed")
    assert "the paper's init" in choices["tau, v_th, init"]      # not mlp's fan-in init
    # a smaller convolutional network keeps the test fast; the code path is the same
    monkeypatch.setitem(reproduce.CONFIGS, "cnn", dict(reproduce.CONFIGS["cnn"],
                                                       network="28x28-2C5-P4-10", T=3, T_test=3))
    r = reproduce.run("cnn", seed=0, out=tmp_path, epochs=1, progress=False)
    assert r["test_scored"] and r["final_test_acc"] is not None
    assert r["settings"]["network"] == "28x28-2C5-P4-10"
    net = checkpoint.load(tmp_path / "cnn-exact-seed0.weights.npz")["net"]
    assert type(net) is stbp.SNN and net.spec == "28x28-2C5-P4-10"
    assert [type(layer) for layer in net.layers][:2] == [Conv, Pool]
    # resumed with one more epoch: the first epoch is not trained again
    more = reproduce.run("cnn", seed=0, out=tmp_path, epochs=2, progress=False)
    assert more["history"]["loss"][:1] == r["history"]["loss"]
    # the fully connected configurations still build 784-800-10
    assert "network" not in reproduce.settings("mlp")


def test_full_protocol_scores_the_test_set_once_and_records_its_commit(tmp_path, tiny_mnist,
                                                                        monkeypatch):
    monkeypatch.setitem(reproduce.CONFIGS, "tiny-full", dict(
        reproduce.NEAREST, protocol="full", epochs=2, rule="detached", carry="linear",
        choices={"why": "a test"}))
    r = reproduce.run("tiny-full", seed=0, out=tmp_path, progress=False)
    # the configuration's rule and carry are the defaults, and the file is named by them
    assert r["rule"] == "detached" and r["settings"]["carry"] == "linear"
    assert (tmp_path / "tiny-full-detached-linear-seed0.json").exists()
    assert "rule" not in r["settings"]
    # all 200 training digits, no validation set, the test set scored once at the end
    assert r["protocol"] == "full" and r["test_scored"] is True
    assert r["history"]["val_acc"] == [None, None] and r["history"]["test_acc"] == [None, None]
    x_train, y_train, x_test, y_test = tiny_mnist
    net = reproduce.checkpoint.load(tmp_path / "tiny-full-detached-linear-seed0.weights.npz")["net"]
    assert r["final_test_acc"] == reproduce.evaluate(net, x_test, y_test, 8,
                                                     reproduce.eval_rng(0))
    assert r["choices"] == {"why": "a test"}
    # the commit of this checkout, and whether its tracked files were unmodified
    origin = reproduce.provenance()
    assert r["commit"] == origin["commit"] and r["tree_clean"] == origin["tree_clean"]
    if origin["commit"] is not None:
        assert len(origin["commit"]) == 40 and isinstance(origin["tree_clean"], bool)
    # an explicit rule overrides the configuration's
    other = reproduce.run("tiny-full", seed=0, out=tmp_path, rule="exact", carry="exp",
                          epochs=1, progress=False)
    assert other["rule"] == "exact" and "carry" not in other["settings"]
    with pytest.raises(ValueError, match="has no validation set"):
        reproduce.run("tiny-full", seed=0, out=tmp_path, test=False, progress=False)


def test_provenance_outside_a_checkout(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")
    monkeypatch.setattr(reproduce.subprocess, "run", no_git)
    assert reproduce.provenance() == {"commit": None, "tree_clean": None}
