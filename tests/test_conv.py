"""The convolutional network of chapter 8: spec parsing, shapes, gradients, equivalences."""
import dataclasses
import shutil

import numpy as np
import pytest

import stbp
from conftest import assert_engine
from stbp import backend
from stbp.kernels.cpu import NumbaKernels
from stbp.kernels.cuda import EmulatedKernels
from stbp.backward import layer_input
from stbp.conv import Conv, Pool, col2im, im2col, pool_backward, pool_forward
from stbp.encode import bernoulli
from stbp.engine import ARRAY, Fused
from stbp.network import Dense
from stbp.spec import parse_spec
from stbp.gradcheck import check_gradients
from stbp.network import SNN
from stbp.surrogates import Rectangular, Smooth

PAPER = "28x28-15C5-P2-40C5-P2-300-10"


def small_problem(spec="6x6-2C3-P2-3", n_in=36, T=3, carry="exp"):
    net = SNN(spec, tau=0.5, v_th=0.3, surrogate=Smooth(0.5), dtype="float64", seed=2,
              carry=carry)
    rng = np.random.default_rng(1)
    x = bernoulli(rng.uniform(0, 0.8, (4, n_in)), T=T, rng=2, dtype="float64")
    return net, x, np.eye(3)[[0, 1, 2, 1]]


def test_parse_the_papers_network():
    layers = parse_spec(PAPER)
    assert [layer["kind"] for layer in layers] == ["input", "conv", "pool", "conv", "pool",
                                                    "dense", "dense"]
    assert [layer["shape"] for layer in layers] == [(28, 28, 1), (24, 24, 15), (12, 12, 15),
                                                    (8, 8, 40), (4, 4, 40), (300,), (10,)]
    assert parse_spec("34x34x2-10")[0]["shape"] == (34, 34, 2)


@pytest.mark.parametrize("spec, words", [
    ("15C5-P2-10", "first token must be the input size"),
    ("28x28-15C5-Q2-10", "unknown token 'Q2'"),
    ("28x28-15c5-10", "unknown token '15c5'"),
    ("28x28-15C29-10", "kernel of '15C29' is larger than its 28x28 input"),
    ("28x28-15C5-P5-10", "pooling 'P5' does not divide the 24x24 map"),
    ("28x28-300-15C5-10", "follows a fully connected layer"),
    ("28x28-15C5-P2", "must end with a layer of neurons"),
    ("28x28", "must end with a layer of neurons"),
    ("28x28-0C5-10", "size of 0"),
    ("28x28--10", "unknown token ''"),
    # padded convolutions, cCkpP (test_padding.py)
    ("28x28-32C3p3-10", "the padding 3 of '32C3p3' must be smaller than its kernel size 3"),
    ("28x28-32C3p-10", "unknown token '32C3p' (expected cCk or cCkpP"),
    ("28x28-32C3P1-10", "unknown token '32C3P1'"),
    ("28x28-32C3p1x-10", "unknown token '32C3p1x'"),
    ("4x4-3C7p1-2", "the 7x7 kernel of '3C7p1' is larger than its 4x4 input padded by 1"),
    ("28x28-0C3p1-10", "size of 0"),
])
def test_bad_specs_name_the_spec_and_the_problem(spec, words):
    with pytest.raises(ValueError) as info:
        parse_spec(spec)
    assert repr(spec) in str(info.value) and words in str(info.value)
    with pytest.raises(ValueError, match="spec"):
        SNN(spec, tau=0.2, v_th=0.5)


def test_spec_must_be_a_string():
    with pytest.raises(TypeError, match="spec must be a string"):
        parse_spec(28)


def test_snn_with_a_spec_builds_the_convolutional_network():
    net = stbp.SNN(PAPER, tau=0.2, v_th=0.5, seed=0)
    assert type(net) is SNN and net.spec == PAPER and net.input_shape == (28, 28, 1)
    assert [type(layer) for layer in net.layers] == [Conv, Pool, Conv, Pool, Dense, Dense]
    assert [layer.out_shape for layer in net.layers] == [
        (24, 24, 15), (12, 12, 15), (8, 8, 40), (4, 4, 40), (300,), (10,)]
    assert [layer.neurons for layer in net.layers] == [True, False, True, False, True, True]
    assert [W.shape for W in net.W] == [(15, 5, 5, 1), (40, 5, 5, 15), (300, 640), (10, 300)]
    assert [b.shape for b in net.b] == [(15,), (40,), (300,), (10,)]
    assert net.sizes == [784, 8640, 2560, 300, 10]
    assert all(W.dtype == np.float32 for W in net.W)
    # the paper's initialisation: every map's kernels (and every row) have norm 1
    for W in net.W:
        np.testing.assert_allclose(np.linalg.norm(W.reshape(W.shape[0], -1), axis=1), 1, rtol=1e-5)
    assert type(SNN([784, 10], tau=0.2, v_th=0.5)) is SNN


def test_shapes_and_input_layouts_agree():
    net = SNN(PAPER, tau=0.2, v_th=0.5, seed=0)
    x = np.random.default_rng(0).random((3, 784)) * 0.6
    spikes = bernoulli(x, T=4, rng=1)                                   # (T, B, 784)
    flat = net.forward(spikes)
    maps = net.forward(spikes.reshape(4, 3, 1, 28, 28))
    assert [o.shape for o in flat.o] == [(4, 3, n) for n in net.sizes]
    assert [u.shape for u in flat.u] == [(4, 3, n) for n in net.sizes[1:]]
    assert all(o.dtype == bool for o in flat.o[1:])
    for a, b in zip(flat.o + flat.u, maps.o + maps.u):
        np.testing.assert_array_equal(a, b)
    assert net.predict(spikes).shape == (3, 10)
    with pytest.raises(ValueError, match=r"spikes must have shape \(\?, \?, 784\); got "
                                         r"shape \(4, 3, 28, 28\)"):
        net.forward(spikes.reshape(4, 3, 28, 28))
    with pytest.raises(ValueError, match="spikes must have shape"):
        net.forward(spikes.reshape(4, 3, 1, 784, 1))


def test_multichannel_input_is_read_channel_first():
    net = SNN("4x4x2-3C3-2", tau=0.4, v_th=0.3, dtype="float64", seed=1)
    x = bernoulli(np.random.default_rng(2).random((2, 2, 4, 4)), T=3, rng=3, dtype="float64")
    a = net.forward(x)                                # (T, B, C, H, W)
    b = net.forward(x.reshape(3, 2, 32))              # flat, channel first
    np.testing.assert_array_equal(a.u[0], b.u[0])
    # layer 1's input at t = 1 from the definition (eq-conv), channel-last kernels
    X = np.zeros((2, 2, 2, 3))
    for s, p, q, c in np.ndindex(*X.shape):
        X[s, p, q, c] = sum(net.W[0][c, i, j, c2] * x[0, s, c2, p + i, q + j]
                            for i in range(3) for j in range(3) for c2 in range(2))
    np.testing.assert_allclose(a.u[0][0], X.reshape(2, -1), rtol=1e-12, atol=1e-12)


def test_determinism_by_seed():
    a, b, c = (SNN(PAPER, tau=0.2, v_th=0.5, seed=s, init="fan_in") for s in (3, 3, 4))
    for Wa, Wb in zip(a.W, b.W):
        np.testing.assert_array_equal(Wa, Wb)
    assert not np.array_equal(a.W[0], c.W[0])


def test_im2col_and_pooling_have_their_transposes():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 6, 5, 2))
    R = rng.standard_normal((3 * 4 * 3, 3 * 3 * 2))
    assert np.isclose((im2col(A, 3) * R).sum(), (A * col2im(R, A.shape, 3)).sum(), rtol=1e-12)
    G = rng.standard_normal((3, 3, 2, 2))
    P = rng.standard_normal((3, 6, 4, 2))
    assert np.isclose((pool_forward(P, 2) * G).sum(), (P * pool_backward(G, 2)).sum(), rtol=1e-12)
    np.testing.assert_allclose(pool_forward(P, 2)[0, 0, 0], P[0, :2, :2].mean(axis=(0, 1)))


@pytest.mark.parametrize("spec, n_in", [("6x6-2C3-P2-3", 36), ("8x8x2-3C3-2C3-P2-4-3", 128),
                                        ("8x8-P2-2C3-3", 64)])
@pytest.mark.parametrize("carry", ["exp", "linear"])
def test_exact_rule_matches_finite_differences(engine, spec, n_in, carry):
    net, x, Y = small_problem(spec, n_in, carry=carry)
    assert_engine(engine, net.surrogate)
    report = check_gradients(net, x, Y, rule="exact")
    assert set(report) == {f"{p}{k}" for k in range(len(net.W)) for p in "Wb"}
    assert max(report.values()) <= 1e-6, report


def test_seed_rule_differs_from_the_gradient(engine):
    net, x, Y = small_problem()
    assert_engine(engine, net.surrogate)
    report = check_gradients(net, x, Y, rule="seed")
    assert max(report.values()) > 1e-2


@pytest.mark.parametrize("rule", ["exact", "seed", "detached"])
def test_a_spec_without_convolutions_is_the_fully_connected_network(rule):
    x = bernoulli(np.random.default_rng(3).uniform(0, 0.8, (5, 16)), T=6, rng=4)
    Y = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1]]
    conv = SNN("4x4-5-3", tau=0.3, v_th=0.4, seed=7)
    dense = SNN([16, 5, 3], tau=0.3, v_th=0.4, seed=7)
    tc, td = conv.forward(x), dense.forward(x)
    for a, b in zip(tc.o + tc.u, td.o + td.u):
        np.testing.assert_array_equal(a, b)
    for gc, gd in zip(conv.gradients(tc, Y, rule=rule), dense.gradients(td, Y, rule=rule)):
        for a, b in zip(gc, gd):
            np.testing.assert_array_equal(a, b)


def test_bad_rule_and_targets():
    net, x, Y = small_problem()
    trace = net.forward(x)
    with pytest.raises(ValueError, match="rule must be one of"):
        net.gradients(trace, Y, rule="bptt")
    with pytest.raises(ValueError, match="targets must have shape"):
        net.gradients(trace, Y[:, :2])


@pytest.mark.parametrize("block_bytes", [None, 1])   # default blocks, or one map each
def test_fused_kernels_run_on_feature_maps(monkeypatch, block_bytes):
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot build the kernels for the CPU")
    if block_bytes is not None:
        from stbp.conv import Conv
        monkeypatch.setattr(Conv, "BLOCK_BYTES", block_bytes)
    net = SNN("12x12-4C3-P2-3C3-5", tau=0.3, v_th=0.4, seed=0)
    x = bernoulli(np.random.default_rng(0).random((3, 144)), T=5, rng=1)
    Y = np.eye(5, dtype="float32")[[0, 3, 4]]
    monkeypatch.setattr(backend, "fused", None)          # the array code as written
    assert backend.engine(net.surrogate) is ARRAY
    plain = net.forward(x)
    g_plain = net.gradients(plain, Y)
    for fused_kernels in (NumbaKernels(np), EmulatedKernels(np)):
        monkeypatch.setattr(backend, "fused", Fused(fused_kernels))
        assert backend.engine(net.surrogate).kernels is fused_kernels
        fused = net.forward(x)
        for a, b in zip(plain.o, fused.o):
            np.testing.assert_array_equal(a, b)
        for gp, gf in zip(g_plain, net.gradients(fused, Y)):
            for a, b in zip(gp, gf):
                np.testing.assert_array_equal(a, b)     # rectangular: bit for bit


def test_block_options_time_each_option_against_the_chosen_one():
    from stbp import bench
    rows = bench.conv_block_options("8x8-2C3-P2-5", batch=4, T=3, rounds=3)
    assert [r["option"] for r in rows] == list(bench.BLOCK_OPTIONS)
    chosen = rows[1]
    assert "chosen" in chosen["option"] and chosen["over_chosen"] == 1.0
    assert all(r["step_s"] > 0 and r["over_chosen"] > 0 for r in rows)
    assert (chosen["block_bytes"], chosen["keep_bytes"]) == (Conv.BLOCK_BYTES,
                                                             Conv.KEEP_BYTES)
    assert rows[3]["keep_bytes"] == 0 and rows[0]["block_bytes"] == bench.ALL


def test_pool_options_time_the_fused_and_the_separate_pooling(monkeypatch):
    from stbp import bench
    from stbp.engine import Fused
    from stbp.kernels.cpu import NumbaKernels
    kernels = NumbaKernels(np)
    monkeypatch.setattr(backend, "fused", Fused(kernels))
    calls = []
    own = NumbaKernels.layer_forward_pooled
    monkeypatch.setattr(NumbaKernels, "layer_forward_pooled",
                        lambda self, *a: calls.append(1) or own(self, *a))
    rows = bench.conv_pool_options("8x8-2C3-P2-5", batch=4, T=3, rounds=2)
    assert [r["option"] for r in rows] == list(bench.POOL_OPTIONS)
    assert rows[0]["over_chosen"] == 1.0 and all(r["step_s"] > 0 for r in rows)
    # the fused option ran the pooled kernel: 2 untimed + 2 per round (untimed, timed)
    assert len(calls) == 2 + 2 * 2
    assert "layer_forward_pooled" not in vars(kernels)         # the kernels' own again
    monkeypatch.setattr(backend, "fused", None)                 # no kernels: no option
    assert bench.conv_pool_options("8x8-2C3-P2-5", batch=4, T=3, rounds=1) is None


def test_repr_names_the_spec():
    net = SNN("6x6-2C3-P2-3", tau=0.5, v_th=0.3, surrogate=Rectangular(1.0))
    assert repr(net).startswith("SNN('6x6-2C3-P2-3', tau=0.5, v_th=0.3")


def test_conv_benchmark_reports_the_step_and_its_products():
    from stbp import bench
    r = bench.conv_training_step("8x8-2C3-P2-5", batch=4, T=3, repeat=5, epoch_samples=400)
    assert r["step_s"] > 0 and r["matmul_s"] > 0
    assert r["ratio"] == pytest.approx(r["step_s"] / r["matmul_s"])
    assert r["matmul_blocked_s"] > 0
    assert r["ratio_blocked"] == pytest.approx(r["step_s"] / r["matmul_blocked_s"])
    assert r["epoch_s"] == pytest.approx(r["step_s"] * 100)
    assert (r["spec"], r["batch"], r["T"]) == ("8x8-2C3-P2-5", 4, 3)


def test_checkpoint_saves_and_restores_a_convolutional_network(tmp_path):
    from stbp.checkpoint import load, save
    from stbp.optim import Adam
    from stbp.train import parameters

    net = SNN("8x8-2C3-P2-4", tau=0.3, v_th=0.4, seed=5, carry="linear")
    opt = Adam(parameters(net), lr=1e-3)
    x = bernoulli(np.random.default_rng(0).random((4, 64)), T=4, rng=1)
    Y = np.eye(4, dtype="float32")[[0, 1, 2, 3]]
    opt.step([g for Wb in net.gradients(net.forward(x), Y) for g in Wb])
    save(tmp_path / "conv.npz", net, opt, {"epoch": 1})
    back = load(tmp_path / "conv.npz")["net"]
    assert type(back) is SNN and back.spec == net.spec and back.carry == "linear"
    assert back.description() == net.description()
    for a, b in zip(net.W + net.b, back.W + back.b):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    # resuming into a fresh network and optimiser restores both
    fresh = SNN("8x8-2C3-P2-4", tau=0.3, v_th=0.4, seed=9, carry="linear")
    fresh_opt = Adam(parameters(fresh), lr=1e-3)
    state = load(tmp_path / "conv.npz", net=fresh, optimizer=fresh_opt)["state"]
    assert state == {"epoch": 1}
    for a, b in zip(opt.state().values(), fresh_opt.state().values()):
        np.testing.assert_array_equal(a, b)
    # a network of other layers, or a fully connected one of the same widths, is refused
    with pytest.raises(ValueError, match="spec"):
        load(tmp_path / "conv.npz", net=SNN("8x8-2C3-P2-3-4", tau=0.3, v_th=0.4))
    with pytest.raises(ValueError, match="spec"):
        load(tmp_path / "conv.npz", net=SNN([64, 72, 4], tau=0.3, v_th=0.4))


def test_the_convolutional_path_refuses_a_trace_of_another_network_or_holding_nan():
    net, x, Y = small_problem()
    trace = net.forward(x)
    net.gradients(trace, Y)                                  # its own trace: fine
    other = SNN("6x6-3C3-P2-3", tau=0.5, v_th=0.3, surrogate=Smooth(0.5), dtype="float64")
    with pytest.raises(ValueError, match="trace was made by another network: spec"):
        other.gradients(trace, Y)
    dense = SNN([36, 32, 3], tau=0.5, v_th=0.3, surrogate=Smooth(0.5), dtype="float64")
    assert dense.sizes == net.sizes                     # the same widths, other layers
    with pytest.raises(ValueError, match="trace was made by another network: spec"):
        dense.gradients(trace, Y)
    with pytest.raises(ValueError, match="trace was made by another network: spec"):
        net.gradients(dense.forward(x), Y)
    other_tau = SNN("6x6-2C3-P2-3", tau=0.4, v_th=0.3, surrogate=Smooth(0.5),
                    dtype="float64")
    with pytest.raises(ValueError, match="tau 0.5 .this network: 0.4."):
        other_tau.gradients(trace, Y)
    trace.u[1][1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"trace.u\[1\] contains NaN"):
        net.gradients(trace, Y)
    trace = net.forward(x)
    trace.u[0] = trace.u[0][:, :, :-1]                      # a potential array cut short
    with pytest.raises(ValueError, match=r"trace.u\[0\] must have shape"):
        net.gradients(trace, Y)
    trace = net.forward(x)
    del trace.o[1]
    with pytest.raises(ValueError, match="trace must hold 3 spike arrays"):
        net.gradients(trace, Y)


@pytest.mark.parametrize("rule", ["exact", "seed", "detached"])
def test_keep_returns_a_dict_per_layer_of_neurons_on_a_convolutional_network(engine, rule):
    net, x, Y = small_problem("8x8x2-3C3-2C3-P2-4-3", 128)
    trace = net.forward(x)
    grads, kept = net.gradients(trace, Y, rule=rule, keep=True)
    assert len(kept) == len(grads) == len(net.W) == 4       # 3C3, 2C3, 4 and 3
    for k, grad in zip(kept, net.gradients(trace, Y, rule=rule)):
        assert set(k) == {"D", "E", "spatial"}
    T, B = x.shape[:2]
    for n, k in enumerate(kept):
        assert k["E"].shape == k["D"].shape == k["spatial"].shape == (T, B, net.sizes[n + 1])
    # keep changes nothing in the gradients (the fused engine's keep runs the array code)
    for (a, b), (c, d) in zip(grads, net.gradients(trace, Y, rule=rule)):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(b, d, rtol=1e-12, atol=1e-15)
    # what was kept makes the gradients: dL/db^n sums E^n over steps, samples and positions
    for n, k in enumerate(kept):
        out = net.W[n].shape[0]
        np.testing.assert_allclose(grads[n][1], k["E"].reshape(-1, out).sum(axis=0),
                                   rtol=1e-12, atol=1e-15)
    # the output layer's spatial term is case 1's Delta
    rate = trace.o[-1].mean(axis=0)
    np.testing.assert_allclose(kept[-1]["spatial"][0], -(Y - rate) / (T * B), rtol=1e-12)


def test_layer_input_is_what_each_layer_read():
    net, x, _ = small_problem("8x8-P2-2C3-3", 64)          # pooling on the input itself
    trace = net.forward(x)
    T, B = x.shape[:2]
    A0 = layer_input(net, trace, 1)                         # the conv reads the pooled input
    np.testing.assert_array_equal(A0, pool_forward(x.reshape(T * B, 8, 8, 1), 2))
    A1 = layer_input(net, trace, 2)                         # the dense layer: conv spikes
    np.testing.assert_array_equal(A1, trace.o[1].reshape(T * B, 2, 2, 2))


def test_the_pooled_inputs_the_forward_pass_kept_are_what_pooling_the_spikes_gives():
    # trace.read holds what a pooling handed a layer of neurons; the weight gradient
    # reads it instead of pooling the spikes again, and must get the same numbers
    net, x, Y = small_problem("10x10-2C3-P2-3", 100)
    trace = net.forward(x)
    assert [a is None for a in trace.read] == [True, True, False]
    T, B = x.shape[:2]
    pooled = pool_forward(trace.o[1].astype(net.dtype).reshape(T * B, 8, 8, 2), 2)
    np.testing.assert_array_equal(trace.read[2], pooled)
    kept = net.gradients(trace, Y)
    again = net.gradients(dataclasses.replace(trace, read=None), Y)     # pooled anew
    for (dW, db), (dW2, db2) in zip(kept, again):
        np.testing.assert_array_equal(dW, dW2)
        np.testing.assert_array_equal(db, db2)
    with pytest.raises(ValueError, match=r"trace.read must hold one entry per layer \(3\)"):
        net.gradients(dataclasses.replace(trace, read=trace.read[:2]), Y)
    with pytest.raises(ValueError, match="each None or 12 rows"):
        net.gradients(dataclasses.replace(trace, read=[None, None, pooled[:5]]), Y)


def test_a_finite_trace_whose_sum_overflows_is_accepted():
    # the NaN check sums first; a sum of large finite potentials that overflows must
    # not be taken for a NaN
    net, x, Y = small_problem("10x10-2C3-P2-3", 100)
    trace = net.forward(x)
    trace.u[1][...] = np.finfo(trace.u[1].dtype).max / 2
    net.check_trace(trace)
    trace.u[1][0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"trace.u\[1\] contains NaN or infinite values"):
        net.check_trace(trace)


def blocked_net(block_bytes, keep_bytes):
    net = SNN("10x10-3C3-P2-4C2-5", tau=0.3, v_th=0.4, seed=2, dtype="float64")
    for layer in net.layers:
        if hasattr(layer, "BLOCK_BYTES"):
            layer.BLOCK_BYTES, layer.KEEP_BYTES = block_bytes, keep_bytes
    return net


def test_conv_blocks_cut_the_batch_by_the_bytes_of_their_window_rows():
    layer = blocked_net(0, 0).layers[0]
    per_map = 8 * 8 * (3 * 3 * 1) * 8                  # Ho Wo rows of k k C float64
    layer.BLOCK_BYTES = 2 * per_map + per_map // 2
    assert [(s.start, s.stop) for s in layer.blocks(5)] == [(0, 2), (2, 4), (4, 5)]
    layer.BLOCK_BYTES = 1                              # below one map: one map a block
    assert [(s.start, s.stop) for s in layer.blocks(3)] == [(0, 1), (1, 2), (2, 3)]
    layer.BLOCK_BYTES = 10**9
    assert [(s.start, s.stop) for s in layer.blocks(4)] == [(0, 4)]


@pytest.mark.parametrize("keep_bytes", [0, 10**9])
def test_blocks_and_kept_rows_give_the_gradients_of_one_block(engine, keep_bytes):
    x = bernoulli(np.random.default_rng(3).random((3, 100)), T=4, rng=4)
    Y = np.eye(5)[[1, 0, 4]]
    whole = blocked_net(10**9, 0)
    trace = whole.forward(x)
    expected = whole.gradients(trace, Y)
    for block_bytes in (1, 2000):                      # one map, or a few, per block
        net = blocked_net(block_bytes, keep_bytes)
        assert len(net.layers[0].blocks(12)) > 1
        blocked = net.forward(x)
        for a, b in zip(trace.u, blocked.u):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        for a, b in zip(trace.o, blocked.o):
            np.testing.assert_array_equal(a, b)
        kept = net.layers[0].kept
        assert (kept is not None) == (keep_bytes > 0)
        if kept is not None:                           # one array of rows per block
            assert len(kept[1]) == len(net.layers[0].blocks(len(kept[0])))
        for (dW, db), (eW, eb) in zip(net.gradients(blocked, Y), expected):
            np.testing.assert_allclose(dW, eW, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(db, eb, rtol=1e-10, atol=1e-12)


def test_kept_rows_and_rebuilt_rows_give_the_same_bits():
    x = bernoulli(np.random.default_rng(5).random((2, 100)), T=3, rng=6)
    Y = np.eye(5)[[2, 3]]
    grads = []
    for keep_bytes in (0, 10**9):
        net = blocked_net(2000, keep_bytes)
        grads.append(net.gradients(net.forward(x), Y))
    for (a, b), (c, d) in zip(*grads):
        np.testing.assert_array_equal(a, c)            # the same block products
        np.testing.assert_array_equal(b, d)
