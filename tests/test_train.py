"""Chapter 5: optimisers, checkpoints (atomic, pickle-free), exact resumption, the loop."""
import json
import os

import numpy as np
import pytest

from stbp import SNN, checkpoint
from stbp.optim import SGD, Adam, step_decay
from stbp.surrogates import Gaussian, Rectangular
from stbp.train import History, evaluate, fit, parameters, prepare, eval_rng


def toy_data(n=120, seed=0):
    """Four classes of 6x6 uint8 'images', each a bright quadrant plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 60, (n, 6, 6))
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 3 * r:3 * r + 3, 3 * q:3 * q + 3] += 180
    return x.astype(np.uint8), y


def make(seed=0, surrogate=None):
    net = SNN([36, 20, 4], tau=0.3, v_th=0.5, surrogate=surrogate or Rectangular(1.0),
              seed=seed, init="fan_in")
    return net, Adam(parameters(net), lr=5e-3)


def test_sgd_momentum_by_hand():
    p = [np.array([1.0, 2.0])]
    opt = SGD(p, lr=0.1, momentum=0.5)
    opt.step([np.array([1.0, -1.0])])       # v = g
    np.testing.assert_allclose(p[0], [0.9, 2.1])
    opt.step([np.array([1.0, -1.0])])       # v = 0.5 g + g
    np.testing.assert_allclose(p[0], [0.75, 2.25])


def test_adam_by_hand():
    p = [np.array([0.0])]
    opt = Adam(p, lr=0.1, betas=(0.9, 0.99), eps=0.0)
    opt.step([np.array([2.0])])             # bias-corrected m = 2, s = 4: step = lr
    np.testing.assert_allclose(p[0], [-0.1])
    opt.step([np.array([-1.0])])
    m = (0.9 * 0.2 + 0.1 * -1.0) / (1 - 0.81)
    s = (0.99 * 0.04 + 0.01 * 1.0) / (1 - 0.99 ** 2)
    np.testing.assert_allclose(p[0], [-0.1 - 0.1 * m / np.sqrt(s)])


def test_step_decay():
    assert [step_decay(1e-3, e, every=40) for e in (0, 39, 40, 80)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-5])


def test_training_learns_the_toy_task():
    x, y = toy_data()
    net, opt = make()
    h = fit(net, opt, (x, y), (x, y), epochs=4, T=6, batch_size=20, seed=1, progress=False)
    assert h.epoch == [1, 2, 3, 4]
    assert h.loss[-1] < h.loss[0]
    assert h.test_acc[-1] >= 0.9
    assert len(h.rates[0]) == 2 and all(0 <= r <= 1 for r in h.rates[-1])


def test_same_seed_same_run_other_seed_differs():
    x, y = toy_data()
    runs = []
    for seed in (3, 3, 4):
        net, opt = make()
        fit(net, opt, (x, y), epochs=2, T=5, batch_size=30, seed=seed, progress=False)
        runs.append(net.W[0].copy())
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("rule", ["exact", "seed"])
def test_resume_continues_exactly(tmp_path, rule):
    x, y = toy_data()
    ref, ref_opt = make()
    h_ref = fit(ref, ref_opt, (x, y), (x[:40], y[:40]), epochs=3, T=5, batch_size=25,
                seed=7, rule=rule, progress=False)
    ck = tmp_path / "run.ckpt.npz"
    net, opt = make()
    fit(net, opt, (x, y), (x[:40], y[:40]), epochs=2, T=5, batch_size=25, seed=7, rule=rule,
        checkpoint=ck, progress=False)
    # a new process would start from fresh objects: different init, fresh optimiser
    net2, opt2 = make(seed=99)
    h = fit(net2, opt2, (x, y), (x[:40], y[:40]), epochs=3, T=5, batch_size=25, seed=7,
            rule=rule, checkpoint=ck, resume=True, progress=False)
    for a, b in zip(parameters(ref), parameters(net2)):
        assert np.array_equal(a, b)
    assert h.loss == h_ref.loss and h.test_acc == h_ref.test_acc and h.epoch == [1, 2, 3]
    assert opt2.k == ref_opt.k


def test_evaluation_does_not_change_training():
    """The test set has its own generator: scoring it at another T (or not at all) leaves the
    trained weights and losses unchanged, and T_test is what the recorded accuracy uses."""
    x, y = toy_data()
    runs = {}
    for T_test in (None, 2, 12):
        net, opt = make()
        test = None if T_test is None else (x[:60], y[:60])
        h = fit(net, opt, (x, y), test, epochs=2, T=5, batch_size=30, seed=2, progress=False,
                T_test=T_test)
        runs[T_test] = (net, h)
    for T_test in (2, 12):
        assert runs[T_test][1].loss == runs[None][1].loss
        assert all(np.array_equal(a, b) for a, b in
                   zip(parameters(runs[T_test][0]), parameters(runs[None][0])))
    net, h = runs[12]
    assert h.test_acc[-1] == evaluate(net, x[:60], y[:60], 12, eval_rng(2))
    assert runs[2][1].test_acc != h.test_acc       # 2 steps score worse than 12 here


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    x, y = toy_data()
    ck = tmp_path / "run.ckpt.npz"
    net, opt = make()
    fit(net, opt, (x, y), epochs=1, T=5, batch_size=30, checkpoint=ck, progress=False, tag="a")
    other, other_opt = make(seed=5)
    before = [p.copy() for p in parameters(other)]
    with pytest.raises(ValueError, match="saved by another run .'a', not 'b'"):
        fit(other, other_opt, (x, y), epochs=2, T=5, batch_size=30, checkpoint=ck,
            resume=True, progress=False, tag="b")
    assert all(np.array_equal(a, b) for a, b in zip(before, parameters(other)))


def test_checkpoint_round_trip_without_pickle(tmp_path):
    net, opt = make(surrogate=Gaussian(0.7))
    path = tmp_path / "net.npz"
    checkpoint.save(path, net, opt, state={"note": "hi"})
    with np.load(path, allow_pickle=False) as data:   # would raise if anything were pickled
        assert "meta" in data.files and "opt.m0" in data.files
    back = checkpoint.load(path)["net"]
    assert back.sizes == net.sizes and back.tau == net.tau and back.v_th == net.v_th
    assert type(back.surrogate) is Gaussian and back.surrogate.a == 0.7
    assert all(np.array_equal(a, b) for a, b in zip(parameters(back), parameters(net)))
    other = Adam(parameters(back))
    info = checkpoint.load(path, net=back, optimizer=other)
    assert info["state"] == {"note": "hi"}
    assert all(np.array_equal(a, b) for a, b in zip(other.m, opt.m))


def test_crash_mid_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    net, opt = make()
    path = tmp_path / "net.npz"
    checkpoint.save(path, net)
    before = path.read_bytes()

    def crash(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("power cut")
    monkeypatch.setattr(checkpoint.numpy, "savez", crash)
    net.W[0] += 1.0
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, net)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.npz"]        # no temporary file left behind
    monkeypatch.undo()
    assert not np.array_equal(checkpoint.load(path)["net"].W[0], net.W[0])


def test_bad_checkpoints(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz is not a valid .npz archive"):
        checkpoint.load(bad)["net"]
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="no 'meta' entry"):
        checkpoint.load(tmp_path / "plain.npz")["net"]
    net, opt = make()
    checkpoint.save(tmp_path / "ok.npz", net, opt)
    with pytest.raises(ValueError, match="sizes"):
        checkpoint.load(tmp_path / "ok.npz", net=SNN([36, 5, 4], tau=0.3, v_th=0.5))
    with pytest.raises(ValueError, match="holds Adam state, not SGD"):
        checkpoint.load(tmp_path / "ok.npz", net=net, optimizer=SGD(parameters(net)))


def test_prepare_and_evaluate():
    x, y = toy_data(10)
    xs = prepare(x)
    assert xs.shape == (10, 36) and xs.dtype == np.float32 and float(xs.max()) <= 1.0
    with pytest.raises(ValueError, match="uint8"):
        prepare(x.astype(np.float32))
    net, _ = make()
    acc = evaluate(net, x, y, T=4, rng=np.random.default_rng(0))
    assert 0.0 <= acc <= 1.0


def test_history_round_trip():
    h = History(epoch=[1], loss=[0.5], train_acc=[0.8], test_acc=[0.7], rates=[[0.1, 0.2]],
                lr=[1e-3], time=[1.0], val_acc=[0.75])
    assert History.from_dict(json.loads(json.dumps(h.to_dict()))) == h


def test_history_from_results_saved_before_validation():
    old = dict(epoch=[1, 2], loss=[0.5, 0.4], train_acc=[0.8, 0.9], test_acc=[0.7, 0.8],
               rates=[[0.1, 0.2]] * 2, lr=[1e-3] * 2, time=[1.0, 1.0])
    h = History.from_dict(old)
    assert h.val_acc == [None, None] and h.test_acc == [0.7, 0.8]


def test_validation_set_is_scored_every_epoch_on_its_own_generator():
    """val= is scored after each epoch over T_test steps with a fresh eval_rng(seed); it does
    not change training, and a run without test= records None for the test set."""
    x, y = toy_data()
    net0, opt0 = make()
    h0 = fit(net0, opt0, (x[:80], y[:80]), epochs=2, T=5, batch_size=20, seed=4, progress=False)
    net, opt = make()
    h = fit(net, opt, (x[:80], y[:80]), val=(x[80:], y[80:]), epochs=2, T=5, batch_size=20,
            seed=4, progress=False, T_test=7)
    assert h.loss == h0.loss                            # scoring leaves training alone
    assert h.test_acc == [None, None] and h0.val_acc == [None, None]
    assert len(h.val_acc) == 2 and all(0 <= a <= 1 for a in h.val_acc)
    assert h.val_acc[-1] == evaluate(net, x[80:], y[80:], 7, eval_rng(4))
    assert h.val_acc[-1] >= 0.75                        # the toy task is learnt


def test_random_shift_moves_each_image_within_bounds():
    from stbp.train import random_shift
    x = np.zeros((50, 784), dtype=np.float32)
    x[:, 14 * 28 + 14] = 1.0                          # one lit pixel in the middle
    out = random_shift(x, 2, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out.sum(axis=1) == 1).all()               # nothing lost, nothing added
    rows, cols = np.divmod(out.argmax(axis=1), 28)
    assert set(rows.tolist()) <= set(range(12, 17)) and set(cols.tolist()) <= set(range(12, 17))
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10    # offsets differ per image
    again = random_shift(x, 2, np.random.default_rng(0))
    assert np.array_equal(out, again)
