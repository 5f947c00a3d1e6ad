"""MNIST loader: real data (when available), synthetic IDX round trips, corrupt files,
directory resolution and the (mocked) download path."""
import gzip
import os
import pathlib

import numpy as np
import pytest

from stbp import data
from stbp.data import load_mnist, mnist_dir, read_idx

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(arr):
    arr = np.asarray(arr, np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">i4").tobytes()
    return header + arr.tobytes()


def write_idx(path, arr):
    raw = idx_bytes(arr)
    path = pathlib.Path(path)
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def synthetic(n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        NAMES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        NAMES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        NAMES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        NAMES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_set(d, arrays, gz=True):
    for name, arr in arrays.items():
        write_idx(d / (name + (".gz" if gz else "")), arr)


def load(d, **kw):
    return load_mnist(d, download=False, verify=kw.pop("verify", False), **kw)


# --- real data -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_mnist():
    env = os.environ.get("STBP_DATA")
    if not env:
        pytest.skip("STBP_DATA is not set; real MNIST test skipped")
    d = pathlib.Path(env) / "mnist"
    if not all((d / n).is_file() or (d / (n + ".gz")).is_file() for n in NAMES):
        pytest.skip(f"MNIST files not found in {d}")
    return load_mnist(download=False, verify=True)


def test_real_mnist_shapes_dtypes_and_class_counts(real_mnist):
    x_tr, y_tr, x_te, y_te = real_mnist
    assert x_tr.shape == (60000, 28, 28) and y_tr.shape == (60000,)
    assert x_te.shape == (10000, 28, 28) and y_te.shape == (10000,)
    assert x_tr.dtype == x_te.dtype == np.uint8
    assert y_tr.dtype == y_te.dtype == np.int64
    assert np.bincount(y_tr).tolist() == [5923, 6742, 5958, 6131, 5842,
                                          5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_te).tolist() == [980, 1135, 1032, 1010, 982,
                                          892, 958, 1028, 974, 1009]


# --- synthetic round trips -------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_synthetic_round_trip(tmp_path, gz):
    arrays = synthetic()
    write_set(tmp_path, arrays, gz=gz)
    x_tr, y_tr, x_te, y_te = load(tmp_path)
    np.testing.assert_array_equal(x_tr, arrays[NAMES[0]])
    np.testing.assert_array_equal(y_tr, arrays[NAMES[1]])
    np.testing.assert_array_equal(x_te, arrays[NAMES[2]])
    np.testing.assert_array_equal(y_te, arrays[NAMES[3]])
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    assert x_tr.shape == (5, 28, 28) and y_te.shape == (3,)


def test_read_idx_direct_and_gz_preferred(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a", arr)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.gz", arr)), arr)
    arrays = synthetic(seed=1)
    write_set(tmp_path, arrays, gz=True)
    write_set(tmp_path, synthetic(seed=2), gz=False)   # raw files differ: must be ignored
    np.testing.assert_array_equal(load(tmp_path)[0], arrays[NAMES[0]])


# --- corrupt files ---------------------------------------------------------------------

def test_truncated_gz(tmp_path):
    write_set(tmp_path, synthetic())
    p = tmp_path / (NAMES[3] + ".gz")
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated or corrupt") as e:
        load(tmp_path)
    assert p.name in str(e.value)
    with pytest.raises(ValueError, match=p.name):
        read_idx(p)


def test_wrong_magic(tmp_path):
    write_set(tmp_path, synthetic())
    p = tmp_path / (NAMES[0] + ".gz")
    raw = bytearray(gzip.decompress(p.read_bytes()))
    raw[0] = 0x1F
    p.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="not an IDX file") as e:
        load(tmp_path)
    assert p.name in str(e.value)


def test_payload_length_mismatch(tmp_path):
    write_set(tmp_path, synthetic(), gz=False)
    p = tmp_path / NAMES[3]
    p.write_bytes(p.read_bytes()[:-1])                     # 3 labels declared, 2 present
    with pytest.raises(ValueError) as e:
        load(tmp_path)
    msg = str(e.value)
    assert p.name in msg and "expected 3 bytes of labels" in msg and "found 2" in msg
    p.write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\x00")   # one byte too many
    with pytest.raises(ValueError, match=p.name):
        load(tmp_path)


def test_image_label_count_mismatch(tmp_path):
    arrays = synthetic()
    arrays[NAMES[1]] = arrays[NAMES[1]][:4]
    write_set(tmp_path, arrays)
    with pytest.raises(ValueError, match="5 images") as e:
        load(tmp_path)
    assert NAMES[0] in str(e.value) and NAMES[1] in str(e.value)


def test_bad_image_shape_and_label_range(tmp_path):
    arrays = synthetic()
    arrays[NAMES[2]] = np.zeros((3, 28, 27), np.uint8)
    write_set(tmp_path, arrays)
    with pytest.raises(ValueError, match=NAMES[2]):
        load(tmp_path)
    arrays = synthetic()
    arrays[NAMES[1]][0] = 10
    write_set(tmp_path, arrays)
    with pytest.raises(ValueError, match=f"{NAMES[1]}.*0..9"):
        load(tmp_path)


def test_checksum_mismatch(tmp_path):
    write_set(tmp_path, synthetic())
    with pytest.raises(ValueError, match="SHA-256") as e:
        load(tmp_path, verify=True)
    msg = str(e.value)
    assert NAMES[0] in msg and data.SHA256[NAMES[0]] in msg and "delete" in msg


def test_missing_file_without_download(tmp_path):
    arrays = synthetic()
    del arrays[NAMES[2]]
    write_set(tmp_path, arrays)
    with pytest.raises(FileNotFoundError) as e:
        load(tmp_path)
    msg = str(e.value)
    assert NAMES[2] in msg and "STBP_DATA" in msg and str(tmp_path) in msg


# --- directory resolution ----------------------------------------------------------------

def test_mnist_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("STBP_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist_dir() == tmp_path / "home" / ".cache" / "stbp" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_dir() == tmp_path / "xdg" / "stbp" / "mnist"
    monkeypatch.setenv("STBP_DATA", str(tmp_path / "data"))
    assert mnist_dir() == tmp_path / "data" / "mnist"
    assert mnist_dir(tmp_path / "mine") == tmp_path / "mine"
    assert mnist_dir(str(tmp_path)) == tmp_path


def test_load_uses_stbp_data(tmp_path, monkeypatch):
    arrays = synthetic()
    (tmp_path / "mnist").mkdir()
    write_set(tmp_path / "mnist", arrays)
    monkeypatch.setenv("STBP_DATA", str(tmp_path))
    y_te = load_mnist(download=False, verify=False)[3]
    np.testing.assert_array_equal(y_te, arrays[NAMES[3]])


# --- download (mocked; no network) ------------------------------------------------------

def test_download_writes_files_and_loads(tmp_path, monkeypatch):
    arrays = synthetic()
    served = {name + ".gz": gzip.compress(idx_bytes(a)) for name, a in arrays.items()}
    urls = []

    def fake_fetch(url, timeout):
        urls.append(url)
        if url.startswith(data.MIRRORS[0]) and "labels" in url:
            raise OSError("mirror down")                    # falls back to mirror 2
        return served[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    d = tmp_path / "new" / "mnist"
    out = load_mnist(d, download=True, verify=False)
    for got, name in zip(out, NAMES):
        np.testing.assert_array_equal(got, arrays[name])
    assert sorted(p.name for p in d.iterdir()) == sorted(served)   # no temp files left
    assert data.MIRRORS[1] + NAMES[1] + ".gz" in urls
    assert len(urls) == 6
    urls.clear()
    load_mnist(d, download=True, verify=False)                     # cached: no fetch
    assert urls == []


def test_download_failure_is_clear(tmp_path, monkeypatch):
    def failing_fetch(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(data, "_fetch", failing_fetch)
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(tmp_path, download=True, verify=False)
    msg = str(e.value)
    assert NAMES[0] in msg and "STBP_DATA" in msg and "network unreachable" in msg
    assert list(tmp_path.iterdir()) == []


# --- the validation split ---------------------------------------------------------------

def test_validation_split_is_fixed_disjoint_and_complete():
    from stbp.data import VAL_SEED, validation_split
    x = np.arange(1000).reshape(1000, 1) * np.ones((1, 3), dtype=np.int64)
    y = np.arange(1000) % 10
    (xt, yt), (xv, yv) = validation_split(x, y, n_val=100)
    assert len(xv) == len(yv) == 100 and len(xt) == len(yt) == 900
    ids_t, ids_v = xt[:, 0], xv[:, 0]
    assert not set(ids_t) & set(ids_v)                       # disjoint
    assert sorted(set(ids_t) | set(ids_v)) == list(range(1000))  # together the whole set
    assert (np.diff(ids_t) > 0).all() and (np.diff(ids_v) > 0).all()   # original order
    assert np.array_equal(yv, ids_v % 10)                    # labels travel with images
    # fixed: the default seed is a constant, and repeated calls hold out the same samples
    (_, _), (xv2, _) = validation_split(x, y, n_val=100, seed=VAL_SEED)
    assert np.array_equal(xv, xv2)
    (_, _), (xv3, _) = validation_split(x, y, n_val=100, seed=VAL_SEED + 1)
    assert not np.array_equal(xv, xv3)
    assert isinstance(VAL_SEED, int) and VAL_SEED >= 0


def test_validation_split_on_mnist_sized_data_holds_out_10000():
    from stbp.data import validation_split
    y = np.arange(60_000) % 10
    (xt, yt), (xv, yv) = validation_split(np.arange(60_000), y)
    assert len(xv) == 10_000 and len(xt) == 50_000
    # every class is represented about in proportion (a uniform draw, not a slice)
    assert np.bincount(yv, minlength=10).min() > 900


@pytest.mark.parametrize("kw, match", [
    (dict(n_val=0), "n_val"), (dict(n_val=10), "n_val"), (dict(n_val=2.5), "n_val"),
    (dict(n_val=True), "n_val"), (dict(n_val=2, seed=-1), "seed"),
    (dict(n_val=2, seed="a"), "seed")])
def test_validation_split_rejects_bad_arguments(kw, match):
    from stbp.data import validation_split
    with pytest.raises(ValueError, match=match):
        validation_split(np.zeros((10, 2)), np.zeros(10), **kw)


def test_validation_split_rejects_length_mismatch():
    from stbp.data import validation_split
    with pytest.raises(ValueError, match="same length.*10 images and 9 labels"):
        validation_split(np.zeros((10, 2)), np.zeros(9), n_val=2)
