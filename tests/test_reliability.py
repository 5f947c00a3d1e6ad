"""Issue 20: hostile files, concurrent runs, records that tell the truth.

Grouped by the issue's classes: files written atomically (planted symlinks, two writers at
once, output paths checked before the first epoch, one run per set of files); records
that match what ran (resumes ahead of the request or from an edited history, repeated
flags); hostile and broken checkpoints and data files (declared sizes, inflating members,
unexpected and object entries, optimiser state, edited and equivalent specs, FIFOs,
devices and directories); every bad value named (model inputs, targets, optimiser
settings, T_test and shift, bernoulli's dtypes); environment variables; one-line command
line errors.  Each case asserts the exception (or exit status) and that the message names
the argument or file and what to do.
"""
import io
import json
import os
import pathlib
import re
import struct
import subprocess
import sys
import threading
import zipfile
import zlib

import numpy as np
import pytest

import stbp
from stbp import SNN, checkpoint, data, env, files, reproduce
from stbp.encode import bernoulli
from stbp.optim import SGD, Adam, step_decay
from stbp.surrogates import Smooth
from stbp.train import History, evaluate, fit, parameters

ROOT = pathlib.Path(__file__).resolve().parent.parent


def small(**kw):
    return SNN(kw.pop("sizes", [6, 5, 3]), tau=0.3, v_th=0.5, seed=kw.pop("seed", 0),
               init="fan_in", **kw)


def toy(n=40, seed=0, shape=(2, 3)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n,) + shape).astype(np.uint8), rng.integers(0, 3, n)


RUN = dict(T=3, batch_size=10, seed=0, progress=False)


def run_python(code, *args, **environ):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **environ})


def finishes(call):
    """call() run in a thread: (its result or exception, whether it returned at all). A
    guard against a regression that blocks (a FIFO opened for reading), not a timing."""
    out = {}

    def target():
        try:
            out["value"] = call()
        except BaseException as exc:            # noqa: BLE001 - handed to the test
            out["value"] = exc
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    return out.get("value"), not thread.is_alive()


def cli(argv, capsys):
    """Run the command line; return (exit status, stderr)."""
    with pytest.raises(SystemExit) as e:
        reproduce.main(argv)
    return e.value.code, capsys.readouterr().err


# --- files written atomically -----------------------------------------------------------

def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "best-exact-seed0.json"
    (tmp_path / "best-exact-seed0.json.tmp").symlink_to(victim)   # the name used before
    reproduce._write_json(str(path), {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and victim.read_text() == "precious"
    # a symlink at the target itself is replaced by the file, never written through
    path.unlink()
    path.symlink_to(victim)
    reproduce._write_json(str(path), {"b": 2})
    assert not path.is_symlink() and json.loads(path.read_text()) == {"b": 2}
    assert victim.read_text() == "precious"


def test_temporary_names_are_unique_and_created_exclusively(tmp_path, monkeypatch):
    """Every write goes through a fresh mkstemp name in the target's folder, so no name
    can be planted in advance; the same helper writes results, weights and checkpoints."""
    made = []
    real = files.tempfile.mkstemp
    monkeypatch.setattr(files.tempfile, "mkstemp",
                        lambda **kw: made.append(kw) or real(**kw))
    reproduce._write_json(str(tmp_path / "r.json"), {})
    checkpoint.save(tmp_path / "c.npz", small())
    assert [m["dir"] for m in made] == [str(tmp_path)] * 2
    assert made[0]["prefix"] == f".tmp-r.json-{os.getpid()}-"


WRITER = """
import json, sys
from stbp import reproduce
for i in range(150):
    reproduce._write_json(sys.argv[1], {"writer": sys.argv[2], "i": i, "pad": "x" * 50000})
"""


def test_two_processes_writing_the_same_results_file_at_once(tmp_path):
    path = tmp_path / "best-exact-seed0.json"
    env_ = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), w], env=env_,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in "ab"]
    seen = set()
    while any(p.poll() is None for p in procs):
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        record = json.loads(text)                    # never a truncated file
        assert len(record["pad"]) == 50000
        seen.add(record["writer"])
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert json.loads(path.read_text())["i"] == 149
    assert os.listdir(tmp_path) == [path.name]       # no temporary file left behind


def test_stale_temporaries_of_dead_writers_go_and_live_ones_stay(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".tmp-r.json-{dead}-abcd1234.json"
    live = tmp_path / f".tmp-r.json-{os.getppid()}-abcd1234.json"   # a running process
    for f in (stale, live):
        f.write_text("{")
        os.utime(f, (files._STARTED - 3600,) * 2)
    reproduce._write_json(str(tmp_path / "r.json"), {})
    assert sorted(os.listdir(tmp_path)) == sorted(["r.json", live.name])


@pytest.mark.parametrize("suffix, what", [(".json", "results file"),
                                          (".weights.npz", "weights"),
                                          (".ckpt.npz", "checkpoint")])
def test_output_paths_are_checked_before_the_data_and_the_first_epoch(tmp_path, no_training,
                                                                      capsys, suffix, what):
    (tmp_path / f"nearest-exact-seed0{suffix}").mkdir()
    with pytest.raises(ValueError, match=rf"cannot write {what} .*nearest-exact-seed0"
                                         rf"{re.escape(suffix)}: a directory stands at its "
                                         rf"name; remove or rename it"):
        reproduce.run("nearest", out=tmp_path, progress=False)
    code, err = cli(["--config", "nearest", "--out", str(tmp_path), "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"nearest-exact-seed0{suffix}" in err
    assert no_training == []


def test_a_fifo_at_an_output_path_is_refused_without_blocking(tmp_path, no_training):
    os.mkfifo(tmp_path / "nearest-exact-seed0.ckpt.npz")
    result, returned = finishes(lambda: reproduce.run("nearest", out=tmp_path, progress=False))
    assert returned and isinstance(result, ValueError)
    assert re.search(r"cannot write checkpoint .*seed0.ckpt.npz: a FIFO \(named pipe\) stands "
                     r"at its name", str(result))
    x, y = toy()
    result, returned = finishes(lambda: fit(small(), Adam(parameters(small())), (x, y),
                                            epochs=1, checkpoint=tmp_path / "nearest-exact-seed0.ckpt.npz",
                                            resume=True, **RUN))
    assert returned and isinstance(result, ValueError) and "FIFO" in str(result)


def test_a_second_run_of_the_same_files_is_refused_while_the_first_writes_them(tmp_path,
                                                                                tiny_mnist):
    lock = tmp_path / ".best-exact-seed0.lock"
    with files.exclusive(lock, "the other run"):
        with pytest.raises(ValueError, match=r"another process is writing .*best-exact-seed0"
                                             r"\.\* now \(it holds the lock file .*\.best-exact-"
                                             r"seed0\.lock\); wait for it to finish"):
            reproduce.run("best", seed=0, out=tmp_path, epochs=1, progress=False)
    reproduce.run("best", seed=0, out=tmp_path, epochs=1, progress=False)   # free again
    assert not lock.exists()                       # removed after the run
    assert sorted(os.listdir(tmp_path)) == ["best-exact-seed0.ckpt.npz", "best-exact-seed0.json",
                                            "best-exact-seed0.weights.npz"]


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    lock = tmp_path / ".x.lock"
    lock.write_text("")                              # nobody holds it
    with files.exclusive(lock, "x"):
        assert lock.exists()
    assert not lock.exists()


# --- records that match what ran -------------------------------------------------------

def test_a_checkpoint_ahead_of_the_request_is_refused(tmp_path, tiny_mnist, capsys):
    reproduce.run("best", seed=1, out=tmp_path, epochs=2, progress=False)
    before = (tmp_path / "best-exact-seed1.json").read_bytes()
    with pytest.raises(ValueError, match=r"checkpoint .*best-exact-seed1.ckpt.npz holds 2 "
                                         r"epochs, more than --epochs 1 asks for; pass --epochs "
                                         r"2 or more to use it, or move it away"):
        reproduce.run("best", seed=1, out=tmp_path, epochs=1, progress=False)
    code, err = cli(["--config", "best", "--seed", "1", "--epochs", "1", "--quiet", "--out",
                     str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "holds 2 epochs" in err
    saved = json.loads((tmp_path / "best-exact-seed1.json").read_bytes())
    assert (tmp_path / "best-exact-seed1.json").read_bytes() == before   # untouched
    assert saved["settings"]["epochs"] == len(saved["history"]["epoch"]) == 2


def test_a_hand_edited_checkpoint_is_one_line_naming_it_and_the_fix(tmp_path, tiny_mnist,
                                                                    capsys):
    reproduce.run("best", seed=0, out=tmp_path, epochs=1, progress=False)
    ck = tmp_path / "best-exact-seed0.ckpt.npz"
    edit_state(ck, ck, lambda s: s["history"]["loss"].__setitem__(0, -1.0))
    code, err = cli(["--config", "best", "--epochs", "2", "--quiet", "--out", str(tmp_path)],
                    capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(r"error: checkpoint .*best-exact-seed0.ckpt.npz: its history is not one "
                     r"that fit writes \(loss\[0\] must be .*\); it was edited or is damaged: "
                     r"move it away \(or delete it\) to start afresh", err)
    (tmp_path / "best-exact-seed0.ckpt.npz").write_bytes(b"PK\x03\x04 cut short")
    code, err = cli(["--config", "best", "--quiet", "--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not a valid .npz archive" in err
    assert "move it away" in err


def test_fit_refuses_a_checkpoint_ahead_of_epochs(tmp_path):
    x, y = toy()
    ck = tmp_path / "run.npz"
    fit(small(), Adam(parameters(small())), (x, y), epochs=2, checkpoint=ck, **RUN)
    net = small(seed=4)
    before = net.W[0].copy()
    with pytest.raises(ValueError, match=r"checkpoint .*run.npz holds 2 epochs, more than "
                                         r"epochs=1 asks for; pass epochs=2 or more"):
        fit(net, Adam(parameters(net)), (x, y), epochs=1, checkpoint=ck, resume=True, **RUN)
    assert np.array_equal(net.W[0], before)


def edit_state(path, out, edit):
    """Copy the checkpoint at path to out with its meta state changed by edit(state)."""
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    meta = json.loads(str(arrays["meta"]))
    edit(meta["state"])
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(out, **arrays)
    return out


def drop_last_epoch(state):
    state["history"] = {k: v[:-1] for k, v in state["history"].items()}


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.pop("history"), "holds no training state"),
    (lambda s: s.update(history={}), "its history is not one that fit writes"),
    (lambda s: s["history"].update(epoch=[]), "lists have different lengths"),
    (lambda s: s["history"]["loss"].__setitem__(0, -1.0), r"loss\[0\] must be a finite number"),
    (lambda s: s["history"]["train_acc"].__setitem__(1, 1.5), r"train_acc\[1\]"),
    (lambda s: s["history"].update(surprise=[1, 2]), "its history is not one that fit writes"),
    (lambda s: s["history"]["test_acc"].__setitem__(0, None), "test_acc does not match"),
    (lambda s: s["history"]["rates"].__setitem__(0, [0.1]), "rates are not one per layer"),
    (lambda s: s["history"].update(epoch=[1, 3]), "epochs must be numbered 1, 2"),
    (drop_last_epoch, r"optimiser took 8 steps, but 1 epochs of 4 batches take 4"),
])
def test_a_missing_or_edited_history_is_refused(tmp_path, edit, match):
    x, y = toy()
    ck = tmp_path / "run.npz"
    fit(small(), Adam(parameters(small())), (x, y), (x, y), epochs=2, checkpoint=ck, **RUN)
    edit_state(ck, ck, edit)
    net = small(seed=4)
    before = net.W[0].copy()
    with pytest.raises(ValueError, match=rf"checkpoint .*run.npz.*{match}.*(move it away|"
                                         rf"it was not written by fit)") as e:
        fit(net, Adam(parameters(net)), (x, y), (x, y), epochs=3, checkpoint=ck, resume=True,
            **RUN)
    assert "move it away" in str(e.value) and np.array_equal(net.W[0], before)


def test_history_from_dict_refuses_what_no_run_wrote():
    good = dict(epoch=[1], loss=[0.5], train_acc=[0.8], test_acc=[None], rates=[[0.1]],
                lr=[1e-3], time=[1.0], val_acc=[None])
    assert History.from_dict(good).epoch == [1]
    for bad, match in [(dict(good, loss=[0.5, 0.4]), "different lengths"),
                       (dict(good, extra=[1]), "a history holds the lists"),
                       ({k: v for k, v in good.items() if k != "lr"}, "a history holds"),
                       (dict(good, epoch=[2]), "numbered 1, 2"),
                       (dict(good, loss=0.5), "is a list"), ([], "a history holds")]:
        with pytest.raises(ValueError, match=match):
            History.from_dict(bad)


def test_repeated_seeds_accumulate_and_other_repeated_flags_are_refused(tmp_path, capsys,
                                                                       monkeypatch):
    runs = []
    monkeypatch.setattr(reproduce, "run", lambda config, seed, *a, **k: runs.append(seed) or {
        "rule": "exact", "final_test_acc": 0.5, "history": {"epoch": [1]}, "wall_time_s": 1.0})
    assert reproduce.main(["--seed", "0", "--seed", "1", "2", "--quiet"]) == 0
    assert runs == [0, 1, 2]
    runs.clear()
    assert reproduce.main(["--quiet"]) == 0 and runs == [0]      # the default seed
    for argv, match in [(["--epochs", "2", "--epochs", "1"], "argument --epochs: given twice"),
                        (["--config", "mlp", "--config", "best"], "argument --config: given twice"),
                        (["--out", "a", "--out", "b"], "argument --out: given twice"),
                        (["--rule", "seed", "--rule", "exact"], "argument --rule: given twice"),
                        (["--seed", "0", "--seed", "0"], "argument --seed: 0 given twice")]:
        runs.clear()
        code, err = cli(argv + ["--quiet"], capsys)
        assert code == 2 and match in err and runs == []


# --- hostile and broken checkpoints ----------------------------------------------------

def npy_bytes(array=None, header=None):
    """A .npy file: of array, or an array header alone (a dict's repr) with no data."""
    if header is None:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, array, allow_pickle=False)
        return buf.getvalue()
    text = (repr(header) + " " * 200)[:118] + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def write_zip(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


def members_of(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


@pytest.fixture
def saved(tmp_path):
    net = small()
    opt = Adam(parameters(net), lr=1e-3)
    for _ in range(2):
        opt.step([np.ones_like(p) for p in parameters(net)])
    path = tmp_path / "net.npz"
    checkpoint.save(path, net, opt, state={"note": 1})
    return path, net, opt


def with_meta(path, out, **change):
    members = members_of(path)
    meta = json.loads(str(np.load(io.BytesIO(members["meta.npy"]))))
    meta.update(change)
    members["meta.npy"] = npy_bytes(np.array(json.dumps(meta)))
    return write_zip(out, members)


def test_a_small_file_declaring_a_huge_layer_is_refused_before_anything_is_built(
        saved, tmp_path, monkeypatch):
    """The issue's case: a file of a few KB declaring a layer of 2^24 neurons behind 784
    inputs (13 G weights) is refused by the limit; one within the limit but whose arrays
    do not have the declared shapes is refused by comparing the two; nothing is built."""
    out = with_meta(saved[0], tmp_path / "huge.npz", sizes=[784, 2 ** 24, 10],
                    spec=f"784-{2 ** 24}-10")
    assert out.stat().st_size < 20_000
    monkeypatch.setattr(checkpoint, "SNN", lambda *a, **k: pytest.fail("a network was built"))
    with pytest.raises(ValueError, match=r"checkpoint .*huge.npz declares a network of "
                                         r"\d+ parameters .* more than the 268435456 a "
                                         r"checkpoint may hold"):
        checkpoint.load(out)
    sizes_only = with_meta(saved[0], tmp_path / "sizes.npz", sizes=[784, 2 ** 24, 10])
    with pytest.raises(ValueError, match=r"sizes.npz: its spec '6-5-3' makes layers of "
                                         r"\[6, 5, 3\] neurons, but its sizes say "
                                         r"\[784, 16777216, 10\]"):
        checkpoint.load(sizes_only)
    wide = with_meta(saved[0], tmp_path / "wide.npz", sizes=[6, 2 ** 24, 3],
                     spec=f"6-{2 ** 24}-3")
    with pytest.raises(ValueError, match=r"wide.npz: W0 has shape \(5, 6\), expected "
                                         r"\(16777216, 6\)"):
        checkpoint.load(wide)
    layers = with_meta(saved[0], tmp_path / "layers.npz", sizes=[6, 5, 3, 3], spec="6-5-3-3")
    with pytest.raises(ValueError, match=r"layers.npz lacks the entry 'W2'"):
        checkpoint.load(layers)


def test_a_declared_array_shape_beyond_the_limit_or_its_bytes_is_refused(saved, tmp_path):
    members = members_of(saved[0])
    members["W0.npy"] = npy_bytes(header={"descr": "<f4", "fortran_order": False,
                                          "shape": (2 ** 20, 2 ** 20)})
    with pytest.raises(ValueError, match=r"big.npz: entry 'W0' declares shape \(1048576, "
                                         r"1048576\), more than the 268435456 numbers"):
        checkpoint.load(write_zip(tmp_path / "big.npz", members))
    members["W0.npy"] = npy_bytes(header={"descr": "<f4", "fortran_order": False,
                                          "shape": (5, 6)})              # no data at all
    with pytest.raises(ValueError, match=r"short.npz: entry 'W0' declares shape \(5, 6\) of "
                                         r"float32 \(120 bytes\) but holds 0 bytes"):
        checkpoint.load(write_zip(tmp_path / "short.npz", members))


def test_a_member_that_inflates_beyond_its_declared_size_is_refused(saved, tmp_path):
    """A deflated W0 whose stream holds a megabyte more than the entry declares: the zip
    directory says 248 bytes (a valid array), the data would inflate far beyond."""
    members = members_of(saved[0])
    w0 = members["W0.npy"]
    members["W0.npy"] = w0 + os.urandom(1 << 20)
    bomb = write_zip(tmp_path / "bomb.npz", members, zipfile.ZIP_DEFLATED)
    raw = bytearray(bomb.read_bytes())
    with zipfile.ZipFile(bomb) as zf:
        info = zf.getinfo("W0.npy")
    crc = zlib.crc32(w0)
    struct.pack_into("<L", raw, info.header_offset + 14, crc)            # local header
    struct.pack_into("<L", raw, info.header_offset + 22, len(w0))
    central = raw.index(b"PK\x01\x02", info.header_offset + 30 + info.compress_size)
    while raw[central + 46:central + 46 + 6] != b"W0.npy":
        central = raw.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<L", raw, central + 16, crc)                       # central directory
    struct.pack_into("<L", raw, central + 24, len(w0))
    bomb.write_bytes(bytes(raw))
    with zipfile.ZipFile(bomb) as zf:
        assert zf.getinfo("W0.npy").file_size == len(w0)
    with pytest.raises(ValueError, match=r"bomb.npz: entry 'W0' holds \d+ bytes of data for "
                                         r"248 declared: it inflates beyond its declared size"):
        checkpoint.load(bomb)


def test_unexpected_and_object_entries_are_refused(saved, tmp_path):
    members = members_of(saved[0])
    with pytest.raises(ValueError, match=r"extra.npz is not an stbp checkpoint: it holds the "
                                         r"unexpected entries \['notes.txt'\]"):
        checkpoint.load(write_zip(tmp_path / "extra.npz", dict(members, **{"notes.txt": b"hi"})))
    with pytest.raises(ValueError, match=r"obj.npz is not a readable stbp checkpoint: entry "
                                         r"'b0' holds object values \(Python objects"):
        checkpoint.load(write_zip(tmp_path / "obj.npz", dict(
            members, **{"b0.npy": npy_bytes(header={"descr": "|O", "fortran_order": False,
                                                    "shape": (5,)}) + b"x" * 40})))
    opt = dict(members, **{"opt.zz.npy": npy_bytes(np.zeros(2))})
    with pytest.raises(ValueError, match=r"optimiser entries \['opt.zz'\] that Adam does not hold"):
        checkpoint.load(write_zip(tmp_path / "opt.npz", opt), net=small(),
                        optimizer=Adam(parameters(small())))


@pytest.mark.parametrize("key, value, match", [
    ("opt.s0", -np.ones((5, 6), np.float32), "s0, a second moment, holds negative values"),
    ("opt.k", np.array(-1), "k, the step count, must be an integer >= 0"),
    ("opt.m1", np.full(5, np.nan, np.float32), "m1 contains NaN"),
])
def test_optimiser_state_is_validated_before_anything_changes(saved, tmp_path, key, value, match):
    members = members_of(saved[0])
    members[key + ".npy"] = npy_bytes(value)
    out = write_zip(tmp_path / "opt.npz", members)
    net = small(seed=3)
    opt = Adam(parameters(net))
    before = net.W[0].copy()
    with pytest.raises(ValueError, match=rf"checkpoint .*opt.npz.*{match}"):
        checkpoint.load(out, net=net, optimizer=opt)
    assert np.array_equal(net.W[0], before) and opt.k == 0
    with pytest.raises(ValueError, match=match):                  # load_state checks it too
        Adam(parameters(small())).load_state(
            {k: (value if "opt." + k == key else v) for k, v in saved[2].state().items()})


def test_an_edited_spec_is_refused_and_equivalent_specs_are_accepted(tmp_path):
    net = SNN("12x12-4C3", tau=0.3, v_th=0.5, seed=0)
    path = tmp_path / "conv.npz"
    checkpoint.save(path, net)
    edited = with_meta(path, tmp_path / "edited.npz", spec="20x20-4C3")   # same weight shapes
    with pytest.raises(ValueError, match=r"edited.npz: its spec '20x20-4C3' makes layers of "
                                         r"\[400, 1296\] neurons, but its sizes say \[144, 400\]"):
        checkpoint.load(edited)
    with pytest.raises(ValueError, match=r"its spec '20x20-4C3' makes layers of"):
        checkpoint.load(edited, net=SNN("20x20-4C3", tau=0.3, v_th=0.5))
    same = SNN("12x12x1-4C3", tau=0.3, v_th=0.5, seed=5)
    checkpoint.load(path, net=same)
    assert np.array_equal(same.W[0], net.W[0])
    path1 = tmp_path / "conv1.npz"
    checkpoint.save(path1, same)
    assert checkpoint.load(path1, net=SNN("12x12-4C3", tau=0.3, v_th=0.5))["net"].spec == "12x12-4C3"


@pytest.mark.parametrize("make, kind", [
    (lambda p: os.mkfifo(p), r"a FIFO \(named pipe\)"),
    (lambda p: p.mkdir(), "a directory"),
    (lambda p: p.symlink_to("/dev/zero"), "a character device"),
])
def test_fifos_devices_and_directories_are_refused_without_blocking(tmp_path, make, kind):
    path = tmp_path / "odd.npz"
    make(path)
    for call in (checkpoint.load, checkpoint.read_meta):
        result, returned = finishes(lambda: call(path))
        assert returned and isinstance(result, ValueError)
        assert re.search(rf"checkpoint .*odd.npz is {kind}, not a regular file", str(result))


def test_data_files_that_are_fifos_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "train-images-idx3-ubyte.gz")
    result, returned = finishes(lambda: data.load_mnist(tmp_path, download=True))
    assert returned and isinstance(result, ValueError)
    assert "train-images-idx3-ubyte.gz is a FIFO (named pipe), where the MNIST file" in str(result)
    result, returned = finishes(lambda: data.read_idx(tmp_path / "train-images-idx3-ubyte.gz"))
    assert returned and "is a FIFO (named pipe), not a regular file" in str(result)


# --- broken data files -------------------------------------------------------------------

def idx_header(dims):
    return bytes([0, 0, 8, len(dims)]) + np.asarray(dims, ">i4").tobytes()


def test_a_data_file_declaring_more_than_its_bytes_is_refused_before_allocation(tmp_path,
                                                                                monkeypatch):
    real = bytearray

    def guarded(n=0, *a):                      # no buffer of the declared size is made
        assert not isinstance(n, int) or n < 1 << 30, "allocated the declared size"
        return real(n, *a)
    monkeypatch.setattr(data, "bytearray", guarded, raising=False)
    raw = tmp_path / "raw-idx3-ubyte"
    raw.write_bytes(idx_header((2 ** 31 - 1, 2 ** 31 - 1, 255)) + b"\x00" * 10)
    with pytest.raises(ValueError, match=r"raw-idx3-ubyte is truncated or corrupt: expected "
                                         r"\d+ bytes of images .* found 10"):
        data.read_idx(raw)
    gz = tmp_path / "small-idx3-ubyte.gz"
    import gzip
    gz.write_bytes(gzip.compress(idx_header((2 ** 30, 28, 28))))
    with pytest.raises(ValueError, match=r"small-idx3-ubyte.gz is corrupt: its IDX header "
                                         r"declares \d+ bytes, more than its \d+ compressed "
                                         r"bytes can hold"):
        data.read_idx(gz)


def test_a_gzip_member_inflating_past_the_header_is_refused(tmp_path):
    import gzip
    gz = tmp_path / "labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(idx_header((3,)) + bytes([1, 2, 3]) + bytes(1 << 20)))
    with pytest.raises(ValueError, match=r"labels-idx1-ubyte.gz is corrupt: its gzip data "
                                         r"inflates past the 3 bytes its IDX header declares"):
        data.read_idx(gz)
    gz.write_bytes(gzip.compress(idx_header((3,)) + bytes([1, 2, 3])))
    assert data.read_idx(gz).tolist() == [1, 2, 3]


def test_an_unreadable_data_file_is_one_line_naming_it_and_the_fix(tmp_path, monkeypatch,
                                                                    capsys):
    for name in data.SHA256:
        (tmp_path / (name + ".gz")).write_bytes(b"")
    real_open = os.open

    def denied(path, *a, **k):                    # root reads anything: deny it here
        if str(path).endswith("train-images-idx3-ubyte.gz"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)
    monkeypatch.setattr(files.os, "open", denied)
    monkeypatch.setattr(reproduce, "load_mnist", lambda root=None: data.load_mnist(tmp_path))
    code, err = cli(["--config", "nearest", "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(r"error: cannot read MNIST file .*train-images-idx3-ubyte.gz: permission "
                     r"denied; make it readable", err)


# --- every bad value named ---------------------------------------------------------------

@pytest.mark.parametrize("spikes, exc, match", [
    (np.full((3, 2, 6), 0.5), ValueError, r"spikes must be 0 or 1 .*found 0.5"),
    (np.full((3, 2, 6), 255, np.uint8), ValueError, r"spikes must be 0 or 1 .*found 255.*1/255"),
    (np.full((3, 2, 6), 1e30), ValueError, r"spikes must be 0 or 1 .*found 1e\+30"),
    (-np.ones((3, 2, 6)), ValueError, r"spikes must be 0 or 1 .*found -1.0"),
    (np.ones((3, 2, 6), complex), TypeError, "spikes must be real numbers; got dtype complex128"),
    (np.ones((3, 2, 6), object), TypeError, "spikes must be real numbers; got dtype object"),
    ([[[0, 1]], [[0]]], TypeError, "spikes must be an array of real numbers; got list"),
    ("spikes", TypeError, "spikes must be real numbers; got dtype <U6"),
])
def test_model_inputs_that_spikes_cannot_be_are_named(spikes, exc, match):
    with pytest.raises(exc, match=match):
        small().forward(spikes)
    if isinstance(spikes, np.ndarray):          # a map input is read as an array first
        with pytest.raises(exc, match=match):
            SNN("2x3-2C2-3", tau=0.3, v_th=0.5).forward(spikes)


def test_spikes_that_are_spikes_pass_and_a_smooth_network_takes_rates():
    net = small()
    for ok in (np.ones((3, 2, 6), bool), np.zeros((3, 2, 6), np.uint8), np.ones((3, 2, 6))):
        assert net.forward(ok).o[0].dtype == np.float32
    smooth = small(surrogate=Smooth(0.5))
    assert smooth.forward(np.full((3, 2, 6), 0.5)).o[0].max() == 0.5
    with pytest.raises(ValueError, match=r"spikes must lie in \[0, 1\]; got values from 0 to 2"):
        smooth.forward(np.arange(36).reshape(3, 2, 6) % 3)


@pytest.mark.parametrize("targets, match", [
    (np.full((2, 3), 2.0), r"targets must lie in \[0, 1\]; got values from 2.0 to 2.0"),
    (-np.eye(3)[:2], r"targets must lie in \[0, 1\]; got values from -1.0"),
    (np.full((2, 3), np.nan), "targets contains NaN or infinite values"),
])
def test_targets_outside_0_1_are_named(targets, match):
    net = small()
    trace = net.forward(bernoulli(np.full((2, 6), 0.5), 3, rng=0))
    for call in (net.loss, net.gradients):
        with pytest.raises(ValueError, match=match):
            call(trace, targets)


@pytest.mark.parametrize("make, exc, match", [
    (lambda p: Adam(p, lr=-1e-3), ValueError, r"lr must be a finite number in \[0, inf\); got lr = -0.001"),
    (lambda p: Adam(p, lr=float("nan")), ValueError, "lr must be a finite number"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be a finite number in \[0, 1\)"),
    (lambda p: Adam(p, betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be a finite number in \[0, 1\)"),
    (lambda p: Adam(p, betas=0.9), TypeError, r"betas must be a pair \(beta1, beta2\)"),
    (lambda p: Adam(p, eps=-1.0), ValueError, "eps must be a finite number"),
    (lambda p: SGD(p, lr="fast"), TypeError, "lr must be a real number"),
    (lambda p: SGD(p, momentum=1.0), ValueError, r"momentum must be a finite number in \[0, 1\)"),
    (lambda p: step_decay(1e-3, 5, every=0), ValueError, "every must be a positive integer; got every = 0"),
    (lambda p: step_decay(float("nan"), 5), ValueError, "lr0 must be a finite number"),
    (lambda p: step_decay(1e-3, -1), ValueError, "epoch must be a non-negative integer"),
])
def test_optimiser_settings_are_named(make, exc, match):
    with pytest.raises(exc, match=match):
        make([np.zeros(3)])


def test_a_learning_rate_set_later_is_checked_too():
    opt = Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="lr must be a finite number"):
        opt.lr = float("inf")
    assert opt.lr == 1e-3


@pytest.mark.parametrize("kw, match", [
    (dict(T_test=10 ** 12), r"T_test = 1000000000000 cannot fit in memory: .*choose a smaller T_test"),
    (dict(T=10 ** 12), r"T = 1000000000000 cannot fit in memory"),
    (dict(lr_schedule=lambda e: 1e-3 if e == 0 else float("nan")),
     r"lr_schedule\(1\) must be a finite number in \[0, inf\); got lr_schedule\(1\) = nan"),
    (dict(lr_schedule=lambda e: step_decay(1e-3, e, every=0)), "every must be a positive integer"),
    (dict(shift=1), r"shift > 0 translates square images of shape \(N, side, side\); got images "
                    r"of shape \(40, 2, 3\)"),
])
def test_settings_that_would_fail_later_are_refused_before_the_first_epoch(tmp_path, kw, match):
    x, y = toy()
    net = small()
    before = net.W[0].copy()
    ck = tmp_path / "run.npz"
    with pytest.raises(ValueError, match=match):
        fit(net, Adam(parameters(net)), (x, y), (x, y), epochs=2, checkpoint=ck,
            **dict(RUN, **kw))
    assert np.array_equal(net.W[0], before) and not ck.exists()   # no epoch was lost


def test_a_shift_that_does_not_fit_the_image_is_named():
    x, y = toy(shape=(3, 3))
    net = small(sizes=[9, 5, 3])
    with pytest.raises(ValueError, match=r"shift must be less than the images' side of 3 pixels"):
        fit(net, Adam(parameters(net)), (x, y), epochs=1, shift=3, **RUN)
    fit(net, Adam(parameters(net)), (x, y), epochs=1, shift=2, **RUN)      # fits: trains


def test_evaluate_names_a_T_that_cannot_fit():
    x, y = toy()
    with pytest.raises(ValueError, match=r"T = 1000000000000 cannot fit in memory"):
        evaluate(small(), x, y, 10 ** 12, np.random.default_rng(0))


@pytest.mark.parametrize("kw, exc, match", [
    (dict(x=np.full(3, 0.5, np.longdouble)), TypeError,
     r"x must be real numbers in \[0, 1\] \(integers or float16, float32, float64\), got dtype float128"),
    (dict(x=np.full(3, 0.5, complex)), TypeError, "x must be real numbers .*complex128"),
    (dict(x=np.full(3, 0.5, object)), TypeError, "x must be real numbers .*object"),
    (dict(x=[[0.5], [0.5, 0.1]]), TypeError, "x must be an array of intensities"),
    (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'; got dtype = 'float16'"),
    (dict(dtype="bogus"), TypeError, "dtype must be 'float32' or 'float64'"),
    (dict(dtype=object), ValueError, "dtype must be 'float32' or 'float64'"),
    (dict(T=10 ** 13), ValueError, "T = 10000000000000 cannot fit in memory"),
])
def test_bernoulli_names_unusable_dtypes_and_sizes(kw, exc, match):
    args = dict(x=np.full(3, 0.5), T=2, rng=0)
    args.update(kw)
    with pytest.raises(exc, match=match):
        bernoulli(**args)


def test_bernoulli_takes_float16_as_its_float32_value():
    x = np.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_array_equal(bernoulli(x.astype(np.float16), 50, rng=3),
                                  bernoulli(x.astype(np.float32), 50, rng=3))


# --- environment variables --------------------------------------------------------------

@pytest.mark.parametrize("text, value", [("1", True), ("TRUE", True), ("yes", True),
                                         ("On", True), ("0", False), ("OFF", False),
                                         ("no", False), ("False", False), ("", "unset"),
                                         ("  ", "unset")])
def test_booleans_accept_the_usual_spellings(monkeypatch, text, value):
    monkeypatch.setenv("STBP_X", text)
    assert env.flag("STBP_X", "unset") == value


@pytest.mark.parametrize("text", ["2", "maybe", "enabled", "-1"])
def test_other_booleans_are_named(monkeypatch, text):
    monkeypatch.setenv("STBP_X", text)
    with pytest.raises(ValueError, match=rf"STBP_X must be one of 1/0, true/false, yes/no, "
                                         rf"on/off \(any case\); got STBP_X='{text}'"):
        env.flag("STBP_X", False)


def test_numbers_and_choices_are_parsed_with_named_errors(monkeypatch):
    for text, match in [("two", r"STBP_NUMBA_THREADS must be an integer from 1 to \d+; got "
                                r"STBP_NUMBA_THREADS='two'"),
                        ("0", "STBP_NUMBA_THREADS must be an integer from 1"),
                        ("99999", "STBP_NUMBA_THREADS must be an integer from 1")]:
        monkeypatch.setenv("STBP_NUMBA_THREADS", text)
        from stbp.kernels.cpu import configure_threads
        with pytest.raises(ValueError, match=match):
            configure_threads()
    for text in ("-5", str(2 ** 31)):               # mallopt takes a C int: no ctypes error
        monkeypatch.setenv("STBP_KEEP_FREED", text)
        with pytest.raises(ValueError, match=rf"STBP_KEEP_FREED must be a number of bytes "
                                             rf"\(0: off\), an integer from 0 to 1073741823; "
                                             rf"got STBP_KEEP_FREED='{text}'"):
            stbp.backend.keep_freed_memory()
    with pytest.raises(ValueError, match="limit must be at most 1073741823 bytes"):
        stbp.backend.keep_freed_memory(2 ** 31)
    monkeypatch.setenv("STBP_DOWNLOAD_TIMEOUT", "nan")
    with pytest.raises(ValueError, match="STBP_DOWNLOAD_TIMEOUT must be a positive number of seconds"):
        data.download_timeout()
    monkeypatch.setenv("STBP_X", "jax")
    with pytest.raises(ValueError, match=r"STBP_X must be one of numpy, cupy \(any case\); got "
                                         r"STBP_X='jax'"):
        env.choice("STBP_X", ("numpy", "cupy"), "numpy")


def test_stbp_fuse_off_in_any_spelling_turns_the_kernels_off_and_a_bad_value_is_named():
    show = "from stbp import backend; print(type(backend.fused).__name__)"
    assert run_python(show, STBP_FUSE="OFF").stdout.split() == ["NoneType"]
    # at import a bad value is a warning that names it (import stbp never fails on the
    # environment), and the default, the kernels, is kept
    bad = run_python(show, STBP_FUSE="of")
    assert bad.returncode == 0 and bad.stdout.split() == ["Fused"], bad.stderr
    assert "RuntimeWarning" in bad.stderr
    assert "STBP_FUSE must be one of 1/0, true/false" in bad.stderr
    # where it is read afterwards, by backend.use, it is an error
    bad = run_python("from stbp import backend; backend.use('numpy')", STBP_FUSE="of")
    assert bad.returncode != 0 and "STBP_FUSE must be one of 1/0, true/false" in bad.stderr


def test_stbp_require_gpu_true_fails_the_gpu_tests_and_a_bad_value_stops_the_run():
    from conftest import gpu_problem
    if gpu_problem() is None:
        pytest.skip("this machine has a working CUDA device")
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           str(ROOT / "tests" / "test_gpu.py"), "-k", "snn_built"]
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    failed = subprocess.run(run, capture_output=True, text=True,
                            env={**environ, "STBP_REQUIRE_GPU": "true"})
    assert failed.returncode != 0 and "STBP_REQUIRE_GPU=true but" in failed.stdout, failed.stdout
    bad = subprocess.run(run, capture_output=True, text=True,
                         env={**environ, "STBP_REQUIRE_GPU": "sometimes"})
    assert bad.returncode != 0 and "STBP_REQUIRE_GPU must be one of" in bad.stdout + bad.stderr


def test_a_read_only_install_falls_back_to_uncached_kernels_with_a_warning():
    """No writable cache folder anywhere (no Numba locator finds one): import works, the
    kernels compile in the process, and a warning says so."""
    code = ("import numpy as np; from stbp.kernels import cpu; from stbp.encode import bernoulli;"
            "print(cpu.CACHE, bernoulli(np.full(4, 0.5), 3, rng=0).shape)")
    result = run_python(code, NUMBA_CACHE_LOCATOR_CLASSES="IPythonCacheLocator")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "(3,", "4)"]
    assert "the fused kernels will be compiled in every process" in result.stderr


def variables_read():
    """Every environment variable named where the package, the tests or the tools read one."""
    pattern = re.compile(r"""(?:environ(?:\.get)?[\[(]|getenv\(|env\.(?:flag|integer|number|"""
                         r"""choice|text)\()\s*["']([A-Z_][A-Z0-9_]*)["']""")
    found = set()
    for folder in ("stbp", "tests", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(pattern.findall(path.read_text()))
    shell = (ROOT / "tools" / "gpu_check.sh").read_text()
    found |= set(re.findall(r"export (STBP_[A-Z_]+)=", shell))
    return found - {"STBP_X"}                         # this file's own examples


def test_the_readme_lists_every_environment_variable():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Environment variables"):]
    table = table[:table.index("\n## ", 4)]
    listed = set(re.findall(r"^\| `([A-Z_][A-Z0-9_]*)` \|", table, re.M))
    assert listed == set(env.VARIABLES)
    assert variables_read() <= listed, variables_read() - listed
