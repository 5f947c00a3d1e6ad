"""Issue 12: every bad input at a public entry point is refused with a named error.

Each case asserts the exception type and that the message names the argument (or file)
and what was expected.  Grouped by entry point: SNN, forward/loss/gradients (and the
backend check of issue 13), bernoulli, checkpoint.save/load, fit/evaluate and resume,
load_mnist, the command line.
"""
import http.server
import json
import os
import threading
import time
import types
import zipfile

import numpy as np
import pytest

from stbp import SNN, backend, checkpoint, data, files, reproduce
from stbp.encode import bernoulli
from stbp.optim import SGD, Adam
from stbp.surrogates import Gaussian, Rectangular, Sigmoid, Smooth
from stbp.train import evaluate, fit, parameters


def small(**kw):
    args = dict(tau=0.3, v_th=0.5, seed=0, init="fan_in")
    args.update(kw)
    return SNN(kw.pop("sizes", [6, 5, 3]) if "sizes" in kw else [6, 5, 3],
               **{k: v for k, v in args.items() if k != "sizes"})


def spikes(T=4, B=2, n=6, seed=1):
    return bernoulli(np.full((B, n), 0.5), T, rng=seed)


def one_hot(B=2, n=3):
    return np.eye(n, dtype=np.float32)[np.arange(B) % n]


def toy(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 256, (n, 2, 3)).astype(np.uint8)     # 6 pixels, 3 classes
    return x, y


# --- SNN --------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes, exc, match", [
    ([5, 2.7, 3], TypeError, r"sizes\[1\] must be an integer >= 1; got 2.7"),
    ([5, True, 3], TypeError, r"sizes\[1\] must be an integer >= 1; got True"),
    ([5, 0, 3], ValueError, r"sizes\[1\] must be an integer >= 1; got 0"),
    ([5, "4", 3], TypeError, r"sizes\[1\]"),
    ([5], ValueError, "sizes must list at least 2 layer widths"),
    # a str is a spec (stbp.spec): "53" is an input of 53 numbers and no layer
    ("53", ValueError, r"spec .53.: must end with a layer of neurons"),
    ("x5-3", ValueError, r"spec .x5-3.: the first token must be the input size"),
    (7, ValueError, "sizes must list at least 2 layer widths"),
])
def test_sizes_must_be_integers(sizes, exc, match):
    with pytest.raises(exc, match=match):
        SNN(sizes, tau=0.5, v_th=0.5)


def test_sizes_accept_numpy_integers():
    assert SNN(np.array([5, 4, 3]), tau=0.5, v_th=0.5).sizes == [5, 4, 3]


@pytest.mark.parametrize("tau", [1.5, 0.0, -0.2, float("nan"), float("inf")])
def test_tau_must_lie_in_0_1(tau):
    with pytest.raises(ValueError, match=r"tau must be a finite number in \(0, 1\]; got tau"):
        SNN([3, 2], tau=tau, v_th=0.5)


def test_tau_1_is_allowed_and_a_string_tau_is_named():
    assert SNN([3, 2], tau=1.0, v_th=0.5).tau == 1.0
    with pytest.raises(TypeError, match="tau must be a real number; got tau = '0.5'"):
        SNN([3, 2], tau="0.5", v_th=0.5)


@pytest.mark.parametrize("v_th", [0.0, -1.0, float("nan"), float("inf")])
def test_threshold_must_be_positive_and_finite(v_th):
    with pytest.raises(ValueError, match="v_th must be positive and finite; got v_th"):
        SNN([3, 2], tau=0.5, v_th=v_th)


@pytest.mark.parametrize("cls", [Rectangular, Gaussian, Sigmoid, Smooth])
@pytest.mark.parametrize("a", [float("inf"), float("nan"), 0.0, -1.0])
def test_surrogate_width_must_be_finite_and_positive(cls, a):
    with pytest.raises(ValueError, match="surrogate width a must be positive and finite; got a"):
        cls(a)


def test_surrogate_width_of_the_wrong_type():
    with pytest.raises(TypeError, match="surrogate width a must be a positive finite number"):
        Gaussian("wide")


@pytest.mark.parametrize("surrogate, match", [
    ("gaussian", "surrogate must be a Surrogate such as Rectangular.*got 'gaussian'"),
    (Gaussian, r"surrogate must be an instance such as Gaussian\(1.0\), not the class"),
    (object(), "surrogate must be a Surrogate"),
    (np.tanh, "surrogate must be a Surrogate"),
])
def test_surrogate_must_be_an_instance(surrogate, match):
    with pytest.raises(TypeError, match=match):
        SNN([3, 2], tau=0.5, v_th=0.5, surrogate=surrogate)


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (1.5, TypeError), ("abc", TypeError),
                                       (True, TypeError)])
def test_seed_is_named(seed, exc):
    with pytest.raises(exc, match="seed must be a non-negative integer; got seed"):
        SNN([3, 2], tau=0.5, v_th=0.5, seed=seed)


def test_numpy_integer_seed_is_a_seed():
    a = SNN([3, 2], tau=0.5, v_th=0.5, seed=np.int64(3))
    b = SNN([3, 2], tau=0.5, v_th=0.5, seed=3)
    assert np.array_equal(a.W[0], b.W[0])


@pytest.mark.parametrize("dtype, name", [(np.float64, "float64"), (np.float32, "float32"),
                                         (np.dtype("float64"), "float64"), ("float32", "float32")])
def test_dtype_accepts_type_objects(dtype, name):
    net = SNN([3, 2], tau=0.5, v_th=0.5, dtype=dtype)
    assert net.dtype.name == name and net.W[0].dtype.name == name


@pytest.mark.parametrize("dtype, exc", [("float16", ValueError), (np.int32, ValueError),
                                        (None, TypeError), ("floaty", TypeError)])
def test_dtype_is_named(dtype, exc):
    with pytest.raises(exc, match="dtype must be 'float32' or 'float64'"):
        SNN([3, 2], tau=0.5, v_th=0.5, dtype=dtype)


@pytest.mark.parametrize("kw, match", [(dict(init="xavier"), "init must be one of"),
                                       (dict(carry="cubic"), "carry must be one of")])
def test_init_and_carry_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        SNN([3, 2], tau=0.5, v_th=0.5, **kw)


# --- forward, loss, gradients -----------------------------------------------------------

@pytest.mark.parametrize("shape", [(0, 2, 6), (4, 0, 6)])
def test_no_time_steps_or_empty_batch(shape):
    with pytest.raises(ValueError, match=r"spikes must hold at least 1 time step and 1 sample; "
                                         r"got shape \(T, B, n\) = " + repr(shape).replace("(", r"\(").replace(")", r"\)")):
        small().forward(np.zeros(shape, np.float32))


def test_forward_names_wrong_width_and_nan():
    with pytest.raises(ValueError, match=r"spikes must have shape \(\?, \?, 6\)"):
        small().forward(np.zeros((3, 2, 5)))
    bad = np.zeros((3, 2, 6)); bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="spikes contains NaN"):
        small().forward(bad)


def test_trace_records_its_network():
    net = small()
    trace = net.forward(spikes())
    assert trace.made_by == {"spec": "6-5-3", "sizes": [6, 5, 3], "tau": 0.3, "v_th": 0.5,
                             "surrogate": {"name": "Rectangular", "a": 1.0},
                             "carry": "exp", "dtype": "float32"}
    assert trace.made_by == net.description()


def test_gradients_refuse_a_trace_of_another_input_width():
    wide = small(sizes=[7, 5, 3])
    trace = wide.forward(spikes(n=7))
    with pytest.raises(ValueError, match=r"trace was made by another network: spec '7-5-3' "
                                         r"\(this network: '6-5-3'\); sizes \[7, 5, 3\] "
                                         r"\(this network: \[6, 5, 3\]\)"):
        small().gradients(trace, one_hot())


@pytest.mark.parametrize("kw, name", [(dict(tau=0.2), "tau"), (dict(v_th=0.4), "v_th"),
                                      (dict(surrogate=Gaussian(1.0)), "surrogate"),
                                      (dict(dtype="float64"), "dtype")])
def test_gradients_refuse_a_trace_of_a_same_sized_network_with_other_settings(kw, name):
    trace = small(**kw).forward(spikes())
    with pytest.raises(ValueError, match=f"trace was made by another network: {name} "):
        small().gradients(trace, one_hot())
    with pytest.raises(ValueError, match=f"trace was made by another network: {name} "):
        small().loss(trace, one_hot())


def test_a_trace_serves_every_carry():
    """The carry chooses which extension of f the backward pass differentiates; a trace is
    accepted by a network that differs from its maker only in the carry (chapter 3 compares
    the carries' gradients on one forward pass), and it records the carry it was made with."""
    for surrogate in (Rectangular(1.0), Smooth(0.5)):
        trace = small(surrogate=surrogate, carry="exp").forward(spikes())
        assert trace.made_by["carry"] == "exp"
        small(surrogate=surrogate, carry="linear").gradients(trace, one_hot())


def test_gradients_refuse_a_trace_with_nan_and_a_non_trace():
    net = small()
    trace = net.forward(spikes())
    trace.u[0][1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"trace.u\[0\] contains NaN or infinite values"):
        net.gradients(trace, one_hot())
    with pytest.raises(TypeError, match="trace must be a Trace from SNN.forward; got dict"):
        net.gradients({"u": [], "o": []}, one_hot())


@pytest.mark.parametrize("where, values", [((0, 0, 0), [np.nan]), ((-1, -1, -1), [np.nan]),
                                           ((1, 1, 1), [np.inf]),
                                           ((0, 1, 2), [np.inf, -np.inf])])
def test_the_finiteness_check_finds_every_bad_potential(where, values):
    # the check sums the columns of U's rows first: one NaN or infinity anywhere, or
    # two infinities of opposite sign in one column, must still be found
    net = small()
    trace = net.forward(spikes())
    U = trace.u[0]
    U[where] = values[0]
    if len(values) > 1:                        # the same neuron, another row
        U[(where[0] + 1,) + where[1:]] = values[1]
    with pytest.raises(ValueError, match=r"trace.u\[0\] contains NaN or infinite values"):
        net.check_trace(trace)


def test_gradients_name_targets_and_rule():
    net = small()
    trace = net.forward(spikes())
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 3\)"):
        net.gradients(trace, np.eye(3))
    with pytest.raises(ValueError, match="rule must be one of"):
        net.gradients(trace, one_hot(), rule="bptt")


class _OtherArray:
    """Stands for an array type of another backend (a CuPy array, say)."""


def test_arrays_of_another_backend_are_named(monkeypatch):
    """Issue 13: a network built under NumPy, used after backend.use("cupy"), gets a clear
    error naming the array and both backends, not a TypeError deep inside a product."""
    net = small()
    trace = net.forward(spikes())
    fake = types.SimpleNamespace(ndarray=_OtherArray, __name__="cupy")
    monkeypatch.setattr(backend, "xp", fake)
    monkeypatch.setattr(backend, "name", "cupy")
    with pytest.raises(TypeError, match=r"W\[0\] is a numpy.ndarray, but the active backend is "
                                        r"'cupy' \(cupy.ndarray\).*backend.use\('cupy'\)"):
        net.forward(np.zeros((2, 1, 6)))
    with pytest.raises(TypeError, match=r"W\[0\] is a numpy.ndarray, but the active backend"):
        net.gradients(trace, one_hot())


# --- bernoulli --------------------------------------------------------------------------

def test_bernoulli_names_nan():
    with pytest.raises(ValueError, match=r"x contains NaN; expected intensities in \[0, 1\]"):
        bernoulli(np.array([0.5, np.nan]), 3, rng=0)


def test_bernoulli_accepts_a_numpy_integer_seed():
    assert np.array_equal(bernoulli(np.full(5, 0.5), 4, rng=np.int64(3)),
                          bernoulli(np.full(5, 0.5), 4, rng=3))


@pytest.mark.parametrize("rng, exc, match", [
    (-1, ValueError, "rng must be a non-negative integer; got rng = -1"),
    ("abc", TypeError, "rng must be a generator"),
    (1.5, TypeError, "rng must be a generator")])
def test_bernoulli_names_a_bad_rng(rng, exc, match):
    with pytest.raises(exc, match=match):
        bernoulli(np.full(3, 0.5), 2, rng=rng)


@pytest.mark.parametrize("T, exc", [(0, ValueError), (2.5, TypeError), (True, TypeError),
                                    ("3", TypeError)])
def test_bernoulli_names_a_bad_T(T, exc):
    with pytest.raises(exc, match="T must be a positive integer; got T"):
        bernoulli(np.full(3, 0.5), T, rng=0)


# --- optimisers -------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda p: Adam(p, lr=1e-2), lambda p: SGD(p, lr=0.1)],
                         ids=["Adam", "SGD"])
@pytest.mark.parametrize("fuse", [False, True])
def test_optimisers_refuse_wrong_gradients_before_any_update(monkeypatch, make, fuse):
    from stbp.engine import Fused
    from stbp.kernels.cpu import NumbaKernels
    monkeypatch.setattr(backend, "fused", Fused(NumbaKernels(np)) if fuse else None)
    params = [np.ones((3, 8), np.float32), np.ones(3, np.float32),
              np.ones((2, 3), np.float32), np.ones(2, np.float32)]
    start = [p.copy() for p in params]
    opt = make(params)
    good = [np.full(p.shape, 0.5, np.float32) for p in params]
    bad_cases = [
        ([np.ones(8, np.float32)] + good[1:], ValueError,
         r"grads\[0\] must have shape \(3, 8\) and dtype float32 \(parameter 0\); got "
         r"\(8,\) float32"),
        (good[:3], ValueError, "grads must hold 4 arrays, one per parameter; got 3"),
        (good + good[:1], ValueError, "grads must hold 4 arrays, one per parameter; got 5"),
        (good[:3] + [good[3].astype(np.float64)], ValueError,
         r"grads\[3\] must have shape \(2,\) and dtype float32 \(parameter 3\); got "
         r"\(2,\) float64"),
        ([(good[0], good[1]), (good[2], np.ones(3, np.float32))], ValueError,
         r"grads\[3\] must have shape \(2,\)"),                  # pairs, flattened
        (good[:2] + [good[2].tolist(), good[3]], TypeError, r"grads\[2\] is a builtins.list"),
        (7, TypeError, "grads must be a list of arrays or of \\(dW, db\\) pairs"),
    ]
    state = {k: v.copy() for k, v in opt.state().items()}
    for grads, exc, match in bad_cases:
        with pytest.raises(exc, match=match):
            opt.step(grads)
        for p, q in zip(params, start):              # nothing was updated
            np.testing.assert_array_equal(p, q)
        for k, v in opt.state().items():
            np.testing.assert_array_equal(v, state[k])
    # the same gradients, flat or in pairs, are taken, and update every parameter
    opt.step([(good[0], good[1]), (good[2], good[3])])
    assert all(not np.array_equal(p, q) for p, q in zip(params, start))
    flat = [p.copy() for p in params]
    twin = make([q.copy() for q in start])
    twin.step(good)
    for p, q in zip(flat, twin.params):
        np.testing.assert_array_equal(p, q)


def test_optimisers_take_snn_gradients_as_they_come():
    net = small()
    trace = net.forward(spikes())
    for opt in (Adam(net.parameters(), lr=1e-2), SGD(net.parameters(), lr=0.1)):
        before = [p.copy() for p in net.parameters()]
        opt.step(net.gradients(trace, one_hot()))      # the list of (dW, db) pairs
        assert any(not np.array_equal(p, q) for p, q in zip(net.parameters(), before))


# --- checkpoint.save and load -----------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    net = small()
    opt = Adam(parameters(net), lr=1e-3)
    path = tmp_path / "net.npz"
    checkpoint.save(path, net, opt, state={"note": 1})
    return path, net, opt


def rewrite(path, out, change=None, drop=(), meta=None):
    """Copy the checkpoint at path to out, changing some entries."""
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    for k in drop:
        del arrays[k]
    arrays.update(change or {})
    if meta is not None:
        arrays["meta"] = np.array(meta)
    np.savez(out, **arrays)
    return out


def test_truncated_checkpoint_names_the_file(saved, tmp_path):
    path = saved[0]
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"checkpoint .*cut.npz is not a valid .npz archive"):
        checkpoint.load(cut)


def test_bit_flipped_checkpoint_names_the_file(saved, tmp_path):
    raw = bytearray(saved[0].read_bytes())
    with zipfile.ZipFile(saved[0]) as zf:             # flip one bit inside W0's data
        info = zf.getinfo("W0.npy")
    raw[info.header_offset + 30 + len(info.filename) + 200] ^= 0x10
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"checkpoint .*flipped.npz is corrupt: entry 'W0.npy' "
                                         r"fails its CRC check"):
        checkpoint.load(flipped)


def test_garbage_file_is_not_called_pickled_data(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(ValueError, match=r"checkpoint .*junk.npz is not a valid .npz archive") as e:
        checkpoint.load(junk)
    assert "pickle" not in str(e.value)


def test_missing_file_and_directory_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nothing.npz does not exist"):
        checkpoint.load(tmp_path / "nothing.npz")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match=r"checkpoint .*dir.npz is a directory"):
        checkpoint.load(tmp_path / "dir.npz")


def test_missing_entry_is_named(saved, tmp_path):
    out = rewrite(saved[0], tmp_path / "less.npz", drop=["W1"])
    with pytest.raises(ValueError, match=r"checkpoint .*less.npz lacks the entry 'W1'"):
        checkpoint.load(out)


@pytest.mark.parametrize("meta, match", [("{not json", "its 'meta' entry is not valid JSON"),
                                         ("[1, 2]", "its 'meta' entry lacks"),
                                         ('{"sizes": [6, 5, 3]}', r"its 'meta' entry lacks \['tau'")])
def test_bad_meta_is_named(saved, tmp_path, meta, match):
    out = rewrite(saved[0], tmp_path / "meta.npz", meta=meta)
    with pytest.raises(ValueError, match=r"checkpoint .*meta.npz: " + match):
        checkpoint.load(out)


def test_a_pickled_entry_is_refused_with_the_path(saved, tmp_path):
    out = tmp_path / "obj.npz"
    with np.load(saved[0], allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["W0"] = np.array([{"evil": 1}], dtype=object)
    np.savez(out, **arrays)
    with pytest.raises(ValueError, match=r"checkpoint .*obj.npz is not a readable stbp checkpoint"):
        checkpoint.load(out)


def test_no_broadcasting_of_a_wrong_shape(saved, tmp_path):
    out = rewrite(saved[0], tmp_path / "row.npz", change={"W0": np.ones((1, 6), np.float32)})
    net = small(seed=5)
    before = net.W[0].copy()
    with pytest.raises(ValueError, match=r"row.npz: W0 has shape \(1, 6\), expected \(5, 6\)"):
        checkpoint.load(out, net=net)
    assert np.array_equal(net.W[0], before)               # nothing was changed
    with pytest.raises(ValueError, match=r"W0 has shape \(1, 6\), expected \(5, 6\)"):
        checkpoint.load(out)


def test_wrong_dtype_is_named(saved, tmp_path):
    out = rewrite(saved[0], tmp_path / "f64.npz", change={"b1": np.zeros(3, np.float64)})
    with pytest.raises(ValueError, match="f64.npz: b1 has dtype float64, expected float32"):
        checkpoint.load(out)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_are_refused(saved, tmp_path, value):
    W = np.zeros((5, 6), np.float32); W[2, 3] = value
    out = rewrite(saved[0], tmp_path / "nan.npz", change={"W0": W})
    with pytest.raises(ValueError, match="nan.npz: W0 contains NaN or infinite values"):
        checkpoint.load(out)


def test_extra_layers_are_refused(saved, tmp_path):
    out = rewrite(saved[0], tmp_path / "extra.npz", change={"W2": np.zeros((2, 3), np.float32)})
    with pytest.raises(ValueError, match=r"extra.npz has entries \['W2'\] beyond"):
        checkpoint.load(out)


@pytest.mark.parametrize("kw, name", [
    (dict(tau=0.2), "tau"), (dict(v_th=0.6), "v_th"), (dict(surrogate=Gaussian(1.0)), "surrogate"),
    (dict(surrogate=Rectangular(0.5)), "surrogate"), (dict(dtype="float64"), "dtype"),
    (dict(carry="linear"), "carry"), (dict(sizes=[6, 4, 3]), "sizes")])
def test_hyper_parameters_must_match_the_network(saved, kw, name):
    net = small(**kw)
    before = [p.copy() for p in parameters(net)]
    with pytest.raises(ValueError, match=rf"checkpoint .*net.npz was saved from another network: "
                                         rf"(.*; )?{name} "):
        checkpoint.load(saved[0], net=net)
    assert all(np.array_equal(a, b) for a, b in zip(before, parameters(net)))


def test_optimizer_state_is_checked(saved, tmp_path):
    path, net, _ = saved
    out = rewrite(path, tmp_path / "opt.npz", change={"opt.m0": np.zeros((5, 7), np.float32)})
    with pytest.raises(ValueError, match=r"opt.npz: opt.m0 has shape \(5, 7\), expected \(5, 6\)"):
        checkpoint.load(out, net=small(), optimizer=Adam(parameters(small())))
    with pytest.raises(ValueError, match="holds Adam state, not SGD"):
        checkpoint.load(path, net=small(), optimizer=SGD(parameters(small())))


def test_the_file_can_build_the_network_it_holds(saved):
    path, net, _ = saved
    back = checkpoint.load(path)["net"]
    assert back.description() == net.description()
    assert checkpoint.hyper_parameters(back) == net.description()
    assert all(np.array_equal(a, b) for a, b in zip(parameters(back), parameters(net)))


def test_save_into_a_missing_folder_names_the_target(tmp_path):
    target = tmp_path / "no" / "such" / "net.npz"
    with pytest.raises(FileNotFoundError, match=r"cannot write checkpoint .*no/such/net.npz: "
                                                r"its folder .*no/such does not exist") as e:
        checkpoint.save(target, small())
    assert ".tmp" not in str(e.value)


def test_a_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    def disk_full(fh, **arrays):
        fh.write(b"PK partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint.numpy, "savez", disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(tmp_path / "net.npz", small())
    assert os.listdir(tmp_path) == []


def test_save_removes_stale_temporaries_of_its_target(tmp_path):
    """A writer killed mid-save leaves .tmp-<name>-*.npz; the next save of that target
    removes those older than this process, and leaves everything else alone."""
    stale = tmp_path / ".tmp-net.npz-dead1234.npz"
    other = tmp_path / ".tmp-other.npz-dead5678.npz"
    live = tmp_path / ".tmp-net.npz-live9999.npz"
    for f in (stale, other, live):
        f.write_bytes(b"x" * 100)
    old = files._STARTED - 3600
    os.utime(stale, (old, old)); os.utime(other, (old, old))
    checkpoint.save(tmp_path / "net.npz", small())
    assert sorted(os.listdir(tmp_path)) == sorted(["net.npz", other.name, live.name])


# --- fit, evaluate and resume -----------------------------------------------------------

@pytest.mark.parametrize("labels, exc, match", [
    (lambda y: np.where(np.arange(len(y)) == 3, -1, y), ValueError,
     r"train labels must lie in \[0, 3\) \(the network has 3 outputs\); found values from -1"),
    (lambda y: np.where(np.arange(len(y)) == 3, 3, y), ValueError,
     r"train labels must lie in \[0, 3\).*to 3"),
    (lambda y: y.astype(float), TypeError, "train labels must be integers"),
    (lambda y: np.concatenate([y, y[:5]]), ValueError,
     r"train labels must have shape \(40,\), one label per image; got shape \(45,\)"),
    (lambda y: y[:, None], ValueError, r"train labels must have shape \(40,\)"),
])
def test_fit_names_bad_labels(labels, exc, match):
    x, y = toy()
    net = small()
    before = net.W[0].copy()
    with pytest.raises(exc, match=match):
        fit(net, Adam(parameters(net)), (x, labels(y)), epochs=1, T=3, progress=False)
    assert np.array_equal(net.W[0], before)                # refused before training


def test_fit_names_bad_validation_and_test_labels():
    x, y = toy()
    net = small()
    with pytest.raises(ValueError, match=r"val labels must lie in \[0, 3\)"):
        fit(net, Adam(parameters(net)), (x, y), val=(x, y + 5), epochs=1, T=3, progress=False)
    with pytest.raises(ValueError, match=r"test labels must have shape \(40,\)"):
        fit(net, Adam(parameters(net)), (x, y), (x, y[:30]), epochs=1, T=3, progress=False)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer; got batch_size = 0"),
    (dict(batch_size=-5), ValueError, "batch_size must be a positive integer"),
    (dict(batch_size=2.5), TypeError, "batch_size must be a positive integer"),
    (dict(epochs=0), ValueError, "epochs must be a positive integer"),
    (dict(T=0), ValueError, "T must be a positive integer"),
    (dict(T_test=0), ValueError, "T_test must be a positive integer"),
    (dict(seed=-1), ValueError, "seed must be a non-negative integer"),
    (dict(seed=None), TypeError, "seed must be a non-negative integer"),
    (dict(shift=-1), ValueError, "shift must be a non-negative integer"),
    (dict(rule="bptt"), ValueError, "rule must be one of"),
    (dict(lr_schedule=0.1), TypeError, "lr_schedule must be a function"),
])
def test_fit_names_bad_settings(kw, exc, match):
    x, y = toy()
    net = small()
    args = dict(epochs=1, T=3, progress=False)
    args.update(kw)
    with pytest.raises(exc, match=match):
        fit(net, Adam(parameters(net)), (x, y), **args)


def test_fit_names_images_that_do_not_fit_the_network():
    x, y = toy()
    net = small()
    with pytest.raises(ValueError, match=r"train images must be at least one image of 6 pixels"):
        fit(net, Adam(parameters(net)), (np.zeros((40, 3, 3), np.uint8), y), epochs=1, T=3,
            progress=False)
    with pytest.raises(ValueError, match=r"train images must be at least one image"):
        fit(net, Adam(parameters(net)), (x[:0], y[:0]), epochs=1, T=3, progress=False)
    with pytest.raises(TypeError, match=r"train must be a pair \(images, labels\)"):
        fit(net, Adam(parameters(net)), x, epochs=1, T=3, progress=False)


def test_fit_checks_the_checkpoint_folder_before_training(tmp_path):
    x, y = toy()
    net = small()
    before = net.W[0].copy()
    with pytest.raises(FileNotFoundError, match=r"cannot write checkpoint .*missing/run.npz: its "
                                                r"folder .*missing does not exist"):
        fit(net, Adam(parameters(net)), (x, y), epochs=1, T=3, progress=False,
            checkpoint=tmp_path / "missing" / "run.npz")
    assert np.array_equal(net.W[0], before)


@pytest.mark.parametrize("labels, exc, match", [
    (lambda y: y - 1, ValueError, r"evaluate labels must lie in \[0, 3\)"),
    (lambda y: y + 1, ValueError, r"evaluate labels must lie in \[0, 3\)"),
    (lambda y: y[:10], ValueError, r"evaluate labels must have shape \(40,\)"),
])
def test_evaluate_names_bad_labels(labels, exc, match):
    x, y = toy()
    with pytest.raises(exc, match=match):
        evaluate(small(), x, labels(y), T=3, rng=0)


@pytest.mark.parametrize("kw, match", [(dict(T=0), "T must be a positive integer"),
                                       (dict(batch_size=0), "batch_size must be a positive integer")])
def test_evaluate_names_bad_settings(kw, match):
    x, y = toy()
    args = dict(T=3, rng=0)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        evaluate(small(), x, y, **args)


RUN = dict(epochs=1, T=3, batch_size=10, rule="exact", seed=0, shift=0, progress=False)


@pytest.mark.parametrize("change, name", [
    (dict(T=4), "T"), (dict(batch_size=20), "batch_size"), (dict(rule="seed"), "rule"),
    (dict(seed=1), "seed"), (dict(shift=1), "shift"), (dict(T_test=5), "T_test")])
def test_resume_refuses_a_run_with_other_settings_whatever_the_tag(tmp_path, change, name):
    x, y = toy()
    if "shift" in change:                       # shift translates square images only
        x = np.zeros((40, 3, 3), np.uint8)
        x[:, :2, :] = toy()[0]
        small = lambda **kw: SNN([9, 5, 3], tau=0.3, v_th=0.5, init="fan_in", **kw)  # noqa: E731
    else:
        small = globals()["small"]
    ck = tmp_path / "run.npz"
    net = small(seed=0)
    fit(net, Adam(parameters(net)), (x, y), checkpoint=ck, **RUN)
    again = small(seed=3)
    before = again.W[0].copy()
    args = dict(RUN, epochs=2)
    args.update(change)
    with pytest.raises(ValueError, match=rf"checkpoint .*run.npz was saved by a run with other "
                                         rf"settings: (.*; )?{name} "):
        fit(again, Adam(parameters(again)), (x, y), checkpoint=ck, resume=True, **args)
    assert np.array_equal(again.W[0], before)


def test_resume_refuses_a_network_with_another_tau_and_other_data(tmp_path):
    x, y = toy()
    ck = tmp_path / "run.npz"
    net = small()
    fit(net, Adam(parameters(net)), (x, y), checkpoint=ck, **RUN)
    other = small(tau=0.4)
    with pytest.raises(ValueError, match=r"saved by a run with other settings: tau 0.3 "
                                         r"\(this run: 0.4\)"):
        fit(other, Adam(parameters(other)), (x, y), checkpoint=ck, resume=True, **RUN)
    with pytest.raises(ValueError, match=r"n_train 40 \(this run: 30\)"):
        fit(small(), Adam(parameters(small())), (x[:30], y[:30]), checkpoint=ck, resume=True,
            **RUN)


def test_resume_still_continues_the_same_run(tmp_path):
    x, y = toy()
    ck = tmp_path / "run.npz"
    ref = small()
    h_ref = fit(ref, Adam(parameters(ref)), (x, y), **dict(RUN, epochs=2))
    net = small()
    fit(net, Adam(parameters(net)), (x, y), checkpoint=ck, **RUN)
    again = small(seed=9)
    h = fit(again, Adam(parameters(again)), (x, y), checkpoint=ck, resume=True,
            **dict(RUN, epochs=2))
    assert h.loss == h_ref.loss
    assert all(np.array_equal(a, b) for a, b in zip(parameters(ref), parameters(again)))


def test_resume_from_a_corrupt_checkpoint_names_it(tmp_path):
    x, y = toy()
    ck = tmp_path / "run.npz"
    ck.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"checkpoint .*run.npz is not a valid .npz archive"):
        fit(small(), Adam(parameters(small())), (x, y), checkpoint=ck, resume=True, **RUN)


def test_resume_refuses_a_checkpoint_that_fit_did_not_write(tmp_path):
    x, y = toy()
    ck = tmp_path / "run.npz"
    checkpoint.save(ck, small())
    with pytest.raises(ValueError, match=r"run.npz holds no training state"):
        fit(small(), Adam(parameters(small())), (x, y), checkpoint=ck, resume=True, **RUN)


# --- load_mnist -------------------------------------------------------------------------

def test_a_directory_where_a_data_file_should_be(tmp_path, monkeypatch):
    fetched = []
    monkeypatch.setattr(data, "_fetch", lambda url, timeout: fetched.append(url))
    (tmp_path / "train-images-idx3-ubyte.gz").mkdir()
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz is a directory, where the "
                                         r"MNIST file .* should be"):
        data.load_mnist(tmp_path, download=True)
    assert fetched == []                                   # no download started


def test_the_data_folder_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"the MNIST folder .*file is a file, not a directory"):
        data.load_mnist(tmp_path / "file", download=False)


@pytest.mark.parametrize("env, timeout, match", [
    ("soon", None, "STBP_DOWNLOAD_TIMEOUT must be a positive number of seconds; got "
                   "STBP_DOWNLOAD_TIMEOUT='soon'"),
    ("-3", None, "STBP_DOWNLOAD_TIMEOUT must be a positive number of seconds"),
    (None, 0, "timeout must be a positive number of seconds; got 0"),
    (None, float("inf"), "timeout must be a positive number of seconds")])
def test_download_timeout_is_checked(tmp_path, monkeypatch, env, timeout, match):
    if env is None:
        monkeypatch.delenv("STBP_DOWNLOAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("STBP_DOWNLOAD_TIMEOUT", env)
    with pytest.raises(ValueError, match=match):
        data.load_mnist(tmp_path, download=True, timeout=timeout)


def test_download_timeout_default_and_environment(monkeypatch):
    monkeypatch.delenv("STBP_DOWNLOAD_TIMEOUT", raising=False)
    assert data.download_timeout() == data.DOWNLOAD_TIMEOUT == 120.0
    monkeypatch.setenv("STBP_DOWNLOAD_TIMEOUT", "7.5")
    assert data.download_timeout() == 7.5 and data.download_timeout(2) == 2.0


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Announces 10,000 bytes and sends one every 50 ms: at most 40 of them (2 s), then stops."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "10000")
        self.end_headers()
        try:
            for _ in range(40):
                self.wfile.write(b"\x1f")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass                                           # the client gave up: good

    def log_message(self, *args):
        pass


def test_a_trickling_mirror_hits_the_overall_deadline(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(data, "MIRRORS", (f"http://127.0.0.1:{server.server_port}/",))
        t0 = time.monotonic()
        with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte .*download failed: "
                                                     r".*took longer than 0.4 s") as e:
            data.load_mnist(tmp_path, download=True, timeout=0.4)
        took = time.monotonic() - t0
    finally:
        server.shutdown()
        server.server_close()
    assert took < 1.5                                      # the deadline, not the trickle
    assert "STBP_DOWNLOAD_TIMEOUT" in str(e.value)
    assert list(tmp_path.iterdir()) == []                  # nothing half-written


# --- the command line -------------------------------------------------------------------

@pytest.mark.parametrize("argv, match", [
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
    (["--epochs", "two"], "argument --epochs: expected an integer, got 'two'"),
    (["--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    (["--seed", "1.5"], "argument --seed: expected an integer, got '1.5'"),
    (["--rule", "bptt"], "argument --rule: invalid choice"),
])
def test_cli_rejects_bad_arguments(tmp_path, capsys, no_training, argv, match):
    with pytest.raises(SystemExit) as e:
        reproduce.main(argv + ["--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2
    assert match in capsys.readouterr().err
    assert no_training == [] and list(tmp_path.iterdir()) == []


def test_cli_checks_the_output_folder_before_loading_or_training(tmp_path, capsys, no_training):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as e:
        reproduce.main(["--config", "nearest", "--out", str(blocker / "sub"), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "out: cannot write results into the folder" in err and "a-file/sub" in err
    assert no_training == []


def test_cli_loads_the_data_before_the_first_epoch(tmp_path, capsys, monkeypatch):
    trained = []

    def missing(root=None):
        raise FileNotFoundError("MNIST file train-images-idx3-ubyte not found in /nowhere")
    monkeypatch.setattr(reproduce, "load_mnist", missing)
    monkeypatch.setattr(reproduce, "fit", lambda *a, **k: trained.append(1))
    with pytest.raises(SystemExit) as e:
        reproduce.main(["--config", "nearest", "--out", str(tmp_path), "--quiet"])
    assert e.value.code == 2
    assert "train-images-idx3-ubyte not found" in capsys.readouterr().err
    assert trained == [] and list(tmp_path.iterdir()) == []


def test_cli_names_a_corrupt_checkpoint(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (30, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 30)
    monkeypatch.setattr(reproduce, "load_mnist", lambda root=None: (x, y, x, y))
    (tmp_path / "nearest-exact-seed0.ckpt.npz").write_bytes(b"garbage, not a zip")
    with pytest.raises(SystemExit) as e:
        reproduce.main(["--config", "nearest", "--out", str(tmp_path), "--quiet", "--epochs", "1"])
    assert e.value.code == 2
    assert "nearest-exact-seed0.ckpt.npz is not a valid .npz archive" in capsys.readouterr().err


def test_cli_help_describes_every_configuration_and_resuming(capsys):
    with pytest.raises(SystemExit):
        reproduce.main(["--help"])
    out = capsys.readouterr().out
    for name in reproduce.CONFIGS:
        assert f"  {name} " in out and reproduce.ABOUT[name][:30] in " ".join(out.split())
    assert "rerunning the same command resumes" in " ".join(out.split())


@pytest.mark.parametrize("kw, match", [(dict(seed=-1), "seed must be a non-negative integer"),
                                       (dict(epochs=0), "epochs must be a positive integer"),
                                       (dict(rule="x"), "rule must be one of"),
                                       (dict(config="fast"), "unknown configuration 'fast'")])
def test_run_names_bad_arguments(tmp_path, no_training, kw, match):
    args = dict(config="nearest", out=tmp_path, progress=False)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        reproduce.run(**args)
    assert no_training == []
