"""Checkpoints: a network (and optimiser, and a JSON state) in one pickle-free ``.npz`` file.

    from stbp import checkpoint
    checkpoint.save("run.npz", net, optimizer, state={"note": "..."})
    net = checkpoint.load("run.npz")["net"]             # builds the network from the file
    checkpoint.load("run.npz", net=net, optimizer=opt)  # fills existing objects in place

The file holds every array of the network (``W0, b0, W1, ...``) and of the optimiser
(``opt.*``) under its own name, and one JSON string ``meta`` with the rest: sizes, tau,
v_th, carry, dtype, surrogate, the optimiser's class and the caller's state.  Nothing is
pickled, and loading uses ``allow_pickle=False``, so a checkpoint cannot run code.

**Writes are atomic**: the data go to a temporary file ``.tmp-<name>-*.npz`` in the target's
folder, are flushed to disk, and the file is renamed over the target; a rename within one
file system is atomic, so a crash leaves the previous checkpoint intact.  On an error the
temporary file is removed.  A process killed mid-write (SIGKILL, power cut) cannot clean up,
so each save also removes temporary files of the same target that are older than this
module's import in the current process: they belong to an earlier, dead writer.  (Two live
processes writing one checkpoint at once is a mistake this does not try to support.)

**Loads are checked**: the zip's integrity (every member's CRC), the required entries, the
meta JSON, each array's exact shape and dtype (nothing is broadcast), that every value is
finite, and, when loading into an existing network, that its sizes, tau, v_th, carry,
dtype and surrogate are the checkpoint's.  Every failure is a ``ValueError`` (or
``FileNotFoundError``) that names the file.

This module is hand-written; it imports :mod:`stbp.network` and nothing imports it back.
"""
from __future__ import annotations

import glob
import json
import math
import os
import tempfile
import time
import zipfile

import numpy

from stbp import backend, surrogates
from stbp.network import SNN

#: Temporary files of a target older than this (seconds since the epoch) are stale.
_STARTED = time.time()
_META_KEYS = ("sizes", "tau", "v_th", "dtype", "surrogate", "optimizer", "state")


def _surrogate_from(spec, path):
    name = spec.get("name") if isinstance(spec, dict) else None
    cls = getattr(surrogates, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, surrogates.Surrogate)):
        raise ValueError(f"checkpoint {path}: unknown surrogate {spec!r}")
    try:
        return cls(spec.get("a"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path}: bad surrogate {spec!r}: {exc}") from None


def hyper_parameters(net):
    """What must agree between a network and a checkpoint loaded into it."""
    return {"sizes": list(net.sizes), "tau": net.tau, "v_th": net.v_th, "carry": net.carry,
            "dtype": net.dtype.name, "spec": getattr(net, "spec", None),   # spec: chapter 8
            "surrogate": {"name": type(net.surrogate).__name__, "a": net.surrogate.a}}


def _tmp_prefix(path):
    return f".tmp-{os.path.basename(path)}-"


def _remove_stale(folder, path):
    """Delete temporary files of this target left by a writer that died mid-save."""
    for old in glob.glob(os.path.join(glob.escape(folder), glob.escape(_tmp_prefix(path)) + "*.npz")):
        try:
            if os.path.getmtime(old) < _STARTED:
                os.unlink(old)
        except OSError:
            pass                                 # gone already, or not ours to remove


def save(path, net, optimizer=None, state=None):
    """Write net (and the optimiser's arrays, and a JSON-able state dict) to path atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save checkpoint {path}: its folder {folder} does not "
                                f"exist")
    if os.path.isdir(path):
        raise ValueError(f"cannot save checkpoint {path}: it is a directory")
    arrays = {}
    for k, (W, b) in enumerate(zip(net.W, net.b)):
        arrays[f"W{k}"], arrays[f"b{k}"] = backend.to_numpy(W), backend.to_numpy(b)
    if optimizer is not None:
        for key, value in optimizer.state().items():
            arrays[f"opt.{key}"] = backend.to_numpy(value)
    meta = dict(hyper_parameters(net),
                optimizer=None if optimizer is None else type(optimizer).__name__,
                state=state or {})
    arrays["meta"] = numpy.array(json.dumps(meta))
    _remove_stale(folder, path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_tmp_prefix(path), suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            numpy.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)                  # mkstemp makes it private; a checkpoint is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path):
    """Every entry of the .npz at path, after checking that it is an intact zip archive."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"checkpoint {path} is a directory, not a .npz file")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()               # reads every member and checks its CRC
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} is not a valid .npz archive (truncated, corrupt "
                         f"or not a checkpoint): {exc}") from None
    if bad is not None:
        raise ValueError(f"checkpoint {path} is corrupt: entry {bad!r} fails its CRC check")
    try:
        with numpy.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"checkpoint {path} is not a readable stbp checkpoint (an entry is "
                         f"not a plain array: {exc})") from None


def _meta(arrays, path):
    if "meta" not in arrays:
        raise ValueError(f"checkpoint {path} is not an stbp checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays["meta"]))
    except (json.JSONDecodeError, UnicodeError) as exc:
        raise ValueError(f"checkpoint {path}: its 'meta' entry is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or any(k not in meta for k in _META_KEYS):
        missing = [k for k in _META_KEYS if not isinstance(meta, dict) or k not in meta]
        raise ValueError(f"checkpoint {path}: its 'meta' entry lacks {missing}")
    meta.setdefault("carry", "exp")              # written before carry= existed
    meta.setdefault("spec", None)                # written before convolutional networks
    if not isinstance(meta["state"], dict):
        raise ValueError(f"checkpoint {path}: its 'meta' state must be a dict")
    return meta


def _array(arrays, key, shape, dtype, path):
    """The entry key, checked for exact shape, dtype and finite values."""
    if key not in arrays:
        raise ValueError(f"checkpoint {path} lacks the entry {key!r}")
    a = arrays[key]
    if a.shape != tuple(shape):
        raise ValueError(f"checkpoint {path}: {key} has shape {a.shape}, expected "
                         f"{tuple(shape)}")
    if a.dtype != dtype:
        raise ValueError(f"checkpoint {path}: {key} has dtype {a.dtype}, expected {dtype}")
    if a.dtype.kind == "f" and not numpy.isfinite(a).all():
        raise ValueError(f"checkpoint {path}: {key} contains NaN or infinite values")
    return a


def _compare(meta, net, path):
    """Refuse a checkpoint whose hyper-parameters are not the network's."""
    mine = hyper_parameters(net)
    differ = [f"{k} {meta.get(k)!r} (the network: {v!r})" for k, v in mine.items()
              if not _same(meta.get(k), v)]
    if differ:
        raise ValueError(f"checkpoint {path} was saved from another network: "
                         + "; ".join(differ))


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def read_meta(path):
    """The checked meta dict of a checkpoint (sizes, tau, ..., state) without loading it
    into a network."""
    path = os.fspath(path)
    return _meta(_read(path), path)


def load(path, net=None, optimizer=None):
    """Read a checkpoint. Returns {"net", "state", "meta"}; fills the given net and optimiser
    in place (after checking that they match the file), or builds a new SNN when net is
    None. Nothing is changed unless every check passes."""
    path = os.fspath(path)
    arrays = _read(path)
    meta = _meta(arrays, path)
    if net is None:
        try:
            net = SNN(meta["spec"] or meta["sizes"], tau=meta["tau"], v_th=meta["v_th"], dtype=meta["dtype"],
                      surrogate=_surrogate_from(meta["surrogate"], path), carry=meta["carry"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint {path} holds an invalid network: {exc}") from None
    else:
        _compare(meta, net, path)
    dtype = net.dtype
    params = [_array(arrays, f"{kind}{k}", p.shape, dtype, path)
              for k, (W, b) in enumerate(zip(net.W, net.b))
              for kind, p in (("W", W), ("b", b))]
    extra = sorted(k for k in arrays if k.startswith(("W", "b")) and k[1:].isdigit()
                   and int(k[1:]) >= len(net.W))
    if extra:
        raise ValueError(f"checkpoint {path} has entries {extra} beyond the network's "
                         f"{len(net.W)} layers")
    opt_state = None
    if optimizer is not None:
        if meta["optimizer"] != type(optimizer).__name__:
            raise ValueError(f"checkpoint {path} holds {meta['optimizer']} state, "
                             f"not {type(optimizer).__name__}")
        opt_state = {key: _array(arrays, f"opt.{key}", value.shape,
                                 backend.to_numpy(value).dtype, path)
                     for key, value in optimizer.state().items()}
    for p, a in zip((p for Wb in zip(net.W, net.b) for p in Wb), params):
        p[...] = backend.asarray(a)
    if optimizer is not None:
        optimizer.load_state(opt_state)
    return {"net": net, "state": meta["state"], "meta": meta}


__all__ = ["hyper_parameters", "save", "read_meta", "load"]
