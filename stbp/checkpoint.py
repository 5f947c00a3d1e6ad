"""Checkpoints: a network (and optimiser, and a JSON state) in one pickle-free ``.npz`` file.

    from stbp import checkpoint
    checkpoint.save("run.npz", net, optimizer, state={"note": "..."})
    net = checkpoint.load("run.npz")["net"]             # builds the network from the file
    checkpoint.load("run.npz", net=net, optimizer=opt)  # fills existing objects in place

The file holds every array of the network (``W0, b0, W1, ...``) and of the optimiser
(``opt.*``) under its own name, and one JSON string ``meta`` with the rest: sizes, tau,
v_th, carry, dtype, surrogate, the optimiser's class and the caller's state.  Nothing is
pickled, and loading uses ``allow_pickle=False``, so a checkpoint cannot run code.

**Writes are atomic** (:func:`stbp.files.write_atomic`): the data go to a temporary file
of a unique name in the target's folder, are flushed to disk, and the file is renamed
over the target, so a crash leaves the previous checkpoint intact and two writers never
mix their files.  Temporary files of writers that died mid-write are removed.

**Loads are checked, cheaply first**, so that a hostile or broken file costs little and
changes nothing: the path must be a regular file (a FIFO, a device or a directory is
refused without blocking); every entry must be one a checkpoint holds (``meta``, ``W<k>``,
``b<k>``, ``opt.<name>``) with a plain numeric array (no Python objects); each entry's
declared size must agree with its array header and not be inflated beyond it; the shapes
the headers declare and the network sizes in ``meta`` are checked against ``MAX_NUMBERS``
and against each other before anything is allocated.  Then the meta JSON, each array's
exact shape and dtype (nothing is broadcast), that every value is finite, every entry's
CRC, the optimiser's state (its own ``check_state``: Adam's second moment cannot be
negative), and, when loading into an existing network, that its sizes, tau, v_th,
carry, dtype and surrogate are the checkpoint's (equivalent specs such as ``12x12`` and
``12x12x1`` are the same network).  Every failure is a ``ValueError`` (or
``FileNotFoundError``, ``PermissionError``) that names the file.

This module is hand-written; it imports :mod:`stbp.network` and :mod:`stbp.conv` and
nothing imports it back.
"""
from __future__ import annotations

import json
import math
import os
import re
import zipfile
from zlib import error as zlib_error

import numpy
import numpy.lib.format as npy

from stbp import backend, checks, files, surrogates
from stbp.spec import parse_spec, spec_of
from stbp.network import SNN

#: The most numbers (weights, biases and optimiser state together) a checkpoint may
#: declare, and the most neurons in one of its layers: 2^28, 1 GiB of float32.
MAX_NUMBERS = 1 << 28
#: The most bytes of a checkpoint's meta entry (its JSON text, as UTF-32).
MAX_META = 1 << 24
_META_KEYS = ("sizes", "tau", "v_th", "dtype", "surrogate", "optimizer", "state")
_ENTRY = re.compile(r"(meta|[Wb]\d+|opt\.[A-Za-z_][A-Za-z0-9_]*)\.npy")


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
    """What must agree between a network and a checkpoint loaded into it: the network's
    description (SNN.description(), which a Trace records too)."""
    return net.description()


def save(path, net, optimizer=None, state=None):
    """Write net (and the optimiser's arrays, and a JSON-able state dict) to path atomically."""
    path = files.check_target(path, "checkpoint", probe=False)
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
    files.write_atomic(path, lambda fh: numpy.savez(fh, **arrays), "checkpoint")


class _Archive:
    """An open checkpoint whose entries' headers have been read and checked: entries maps
    each name (W0, meta, opt.k, ...) to (ZipInfo, shape, dtype); nothing read beyond."""

    def __init__(self, path):
        self.path = path
        self.fh = files.open_regular(path, "checkpoint")
        try:
            self.zip = zipfile.ZipFile(self.fh)
            self.entries, self.unexpected = {}, []
            for info in self.zip.infolist():
                self._header(info)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
                NotImplementedError) as exc:
            self.close()
            raise ValueError(f"checkpoint {path} is not a valid .npz archive (truncated, "
                             f"corrupt or not a checkpoint): {exc}") from None
        except BaseException:
            self.close()
            raise
        declared = sum(math.prod(shape) for key, (_, shape, _) in self.entries.items()
                       if key != "meta")
        if declared > MAX_NUMBERS:
            self.close()
            raise ValueError(f"checkpoint {path} declares {declared} numbers, more than "
                             f"the {MAX_NUMBERS} a checkpoint may hold (checkpoint.MAX_NUMBERS)")

    def _header(self, info):
        """Check one member's name, sizes and array header; record (info, shape, dtype)."""
        path, name = self.path, info.filename
        m = _ENTRY.fullmatch(name)
        if m is None:
            self.unexpected.append(name)              # refused once meta is found
            return
        key = m[1]
        if key in self.entries:
            raise ValueError(f"checkpoint {path} is not an stbp checkpoint: it holds two "
                             f"entries named {name!r}")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"checkpoint {path}: entry {key!r} uses an unsupported "
                             f"compression (method {info.compress_type})")
        # deflate never needs more than about 1/1000 over the data it holds: a larger
        # member holds more than it declares (a bomb, or junk after it)
        slack = 0 if info.compress_type == zipfile.ZIP_STORED else info.file_size // 1000 + 1024
        if info.compress_size > info.file_size + slack:
            raise ValueError(f"checkpoint {path}: entry {key!r} holds {info.compress_size} "
                             f"bytes of data for {info.file_size} declared: it inflates "
                             f"beyond its declared size")
        try:
            with self.zip.open(info) as fh:
                version = npy.read_magic(fh)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"unsupported .npy format version {version}")
                shape, _, dtype = (npy.read_array_header_1_0(fh) if version == (1, 0)
                                   else npy.read_array_header_2_0(fh))
                at = fh.tell()
        except zipfile.BadZipFile as exc:
            if "CRC" not in str(exc):
                raise
            raise ValueError(f"checkpoint {path} is corrupt: entry {name!r} fails its CRC "
                             f"check") from None
        except (ValueError, TypeError, SyntaxError) as exc:
            raise ValueError(f"checkpoint {path} is not a readable stbp checkpoint: entry "
                             f"{key!r} is not a .npy array ({exc})") from None
        if dtype.hasobject or dtype.kind not in ("U" if key == "meta" else "biuf"):
            raise ValueError(f"checkpoint {path} is not a readable stbp checkpoint: entry "
                             f"{key!r} holds {dtype} values"
                             + (" (Python objects, pickled), which are never loaded"
                                if dtype.hasobject else ", not plain numbers"))
        count = math.prod(shape)
        if key != "meta" and (count > MAX_NUMBERS or len(shape) > 8):
            raise ValueError(f"checkpoint {path}: entry {key!r} declares shape {shape}, "
                             f"more than the {MAX_NUMBERS} numbers a checkpoint may hold")
        if key == "meta" and (shape != () or dtype.itemsize > MAX_META):
            raise ValueError(f"checkpoint {path}: its 'meta' entry must be one string of at "
                             f"most {MAX_META} bytes; got {dtype} of shape {shape}")
        if at + count * dtype.itemsize != info.file_size:
            raise ValueError(f"checkpoint {path}: entry {key!r} declares shape {shape} of "
                             f"{dtype} ({count * dtype.itemsize} bytes) but holds "
                             f"{info.file_size - at} bytes")
        self.entries[key] = (info, shape, dtype)

    def read(self, key):
        """The array of entry key, read in full (its CRC checked)."""
        info = self.entries[key][0]
        try:
            with self.zip.open(info) as fh:
                a = npy.read_array(fh, allow_pickle=False)
                fh.read(1)                            # at the end: the CRC is checked
        except zipfile.BadZipFile:
            raise ValueError(f"checkpoint {self.path} is corrupt: entry {info.filename!r} "
                             f"fails its CRC check") from None
        except (OSError, ValueError, EOFError, zlib_error) as exc:
            raise ValueError(f"checkpoint {self.path} is not a readable stbp checkpoint "
                             f"(entry {info.filename!r}: {exc})") from None
        return a

    def verify(self, key):
        """Read entry key through without keeping it: its CRC checked."""
        info = self.entries[key][0]
        try:
            with self.zip.open(info) as fh:
                while fh.read(1 << 20):
                    pass
        except (zipfile.BadZipFile, OSError, EOFError, zlib_error):
            raise ValueError(f"checkpoint {self.path} is corrupt: entry {info.filename!r} "
                             f"fails its CRC check") from None

    def close(self):
        if getattr(self, "zip", None) is not None:
            self.zip.close()
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _meta(archive):
    path = archive.path
    if "meta" not in archive.entries:
        raise ValueError(f"checkpoint {path} is not an stbp checkpoint (no 'meta' entry)")
    if archive.unexpected:
        raise ValueError(f"checkpoint {path} is not an stbp checkpoint: it holds the "
                         f"unexpected entries {archive.unexpected[:5]} (a checkpoint holds "
                         f"meta, W<k>, b<k> and opt.<name>)")
    try:
        meta = json.loads(str(archive.read("meta")))
    except (json.JSONDecodeError, UnicodeError, RecursionError) as exc:
        raise ValueError(f"checkpoint {path}: its 'meta' entry is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or any(k not in meta for k in _META_KEYS):
        missing = [k for k in _META_KEYS if not isinstance(meta, dict) or k not in meta]
        raise ValueError(f"checkpoint {path}: its 'meta' entry lacks {missing}")
    meta.setdefault("carry", "exp")              # written before carry= existed
    meta.setdefault("spec", None)                # written before convolutional networks
    if not isinstance(meta["state"], dict):
        raise ValueError(f"checkpoint {path}: its 'meta' state must be a dict")
    return meta


def _layers(meta, path):
    """[(W shape, b shape)] of the network meta describes, and its neurons per layer,
    checked against MAX_NUMBERS, before anything is built."""
    spec, sizes = meta["spec"], meta["sizes"]
    try:
        if spec is None:                         # written before specs: the widths
            spec = meta["spec"] = spec_of(sizes)
        layers = parse_spec(spec)
        shapes, shape = [], layers[0]["shape"]
        for layer in layers[1:]:
            if layer["kind"] == "conv":
                shapes.append(((layer["size"], layer["k"], layer["k"], shape[2]),
                               (layer["size"],)))
            elif layer["kind"] == "dense":
                shapes.append(((layer["size"], math.prod(shape)), (layer["size"],)))
            shape = layer["shape"]
        neurons = [math.prod(layers[0]["shape"])] + [
            math.prod(layer["shape"]) for layer in layers[1:] if layer["kind"] != "pool"]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} holds an invalid network: {exc}") from None
    numbers = sum(math.prod(W) + math.prod(b) for W, b in shapes)
    if max(neurons) > MAX_NUMBERS or numbers > MAX_NUMBERS:
        raise ValueError(f"checkpoint {path} declares a network of {numbers} parameters and "
                         f"up to {max(neurons)} neurons in a layer, more than the "
                         f"{MAX_NUMBERS} a checkpoint may hold (checkpoint.MAX_NUMBERS)")
    if sizes != neurons:
        raise ValueError(f"checkpoint {path}: its spec {spec!r} makes layers of {neurons} "
                         f"neurons, but its sizes say {sizes!r}; the file was edited or is "
                         f"corrupt")
    return shapes


def _check_entry(archive, key, shape, dtype=None):
    """The header of entry key, checked for exact shape and (unless None) dtype; nothing
    is read."""
    path = archive.path
    if key not in archive.entries:
        raise ValueError(f"checkpoint {path} lacks the entry {key!r}")
    _, have, kind = archive.entries[key]
    if have != tuple(shape):
        raise ValueError(f"checkpoint {path}: {key} has shape {have}, expected "
                         f"{tuple(shape)}")
    if dtype is not None and kind != dtype:
        raise ValueError(f"checkpoint {path}: {key} has dtype {kind}, expected {dtype}")


def _array(archive, key):
    """The array of entry key (its header checked already), refused if not finite."""
    a = archive.read(key)
    if a.dtype.kind == "f" and not numpy.isfinite(a).all():
        raise ValueError(f"checkpoint {archive.path}: {key} contains NaN or infinite values")
    return a


def _compare(meta, net, path):
    """Refuse a checkpoint whose hyper-parameters are not the network's."""
    mine = hyper_parameters(net)
    differ = [f"{k} {meta.get(k)!r} (the network: {v!r})" for k, v in mine.items()
              if not (_same_spec(meta.get(k), v) if k == "spec" else _same(meta.get(k), v))]
    if differ:
        raise ValueError(f"checkpoint {path} was saved from another network: "
                         + "; ".join(differ))


def _same_spec(a, b):
    """Whether two specs (or None) describe the same network: "12x12" is "12x12x1"."""
    if a == b or a is None or b is None:
        return a == b
    try:
        la, lb = parse_spec(a), parse_spec(b)
    except (TypeError, ValueError):
        return False
    drop = lambda layers: [(x["kind"], x["size"], x["k"], x["shape"]) for x in layers]  # noqa: E731
    return drop(la) == drop(lb)


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
    path = _path(path)
    with _Archive(path) as archive:
        return _meta(archive)


def _path(path):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a file path (str or os.PathLike); got path = "
                        f"{path!r}") from None


def load(path, net=None, optimizer=None, check=None):
    """Read a checkpoint. Returns {"net", "state", "meta"}; fills the given net and optimiser
    in place (after checking that they match the file), or builds a new SNN when net is
    None. check(meta, optimiser state): the caller's last check, which raises a ValueError
    to refuse the file. Nothing is changed unless every check passes."""
    path = _path(path)
    with _Archive(path) as archive:
        meta = _meta(archive)
        shapes = _layers(meta, path)                  # sizes checked: nothing built yet
        extra = sorted(k for k in archive.entries if k[0] in "Wb" and int(k[1:]) >= len(shapes))
        if extra:
            raise ValueError(f"checkpoint {path} has entries {extra} beyond the network's "
                             f"{len(shapes)} layers")
        for k, (W, b) in enumerate(shapes):
            _check_entry(archive, f"W{k}", W)
            _check_entry(archive, f"b{k}", b)
        if net is None:
            try:
                net = SNN(meta["spec"], tau=meta["tau"], v_th=meta["v_th"],
                          dtype=meta["dtype"], surrogate=_surrogate_from(meta["surrogate"], path),
                          carry=meta["carry"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"checkpoint {path} holds an invalid network: {exc}") from None
        _compare(meta, net, path)
        for k, (W, b) in enumerate(zip(net.W, net.b)):
            _check_entry(archive, f"W{k}", W.shape, net.dtype)
            _check_entry(archive, f"b{k}", b.shape, net.dtype)
        mine = {}
        if optimizer is not None:
            if meta["optimizer"] != type(optimizer).__name__:
                raise ValueError(f"checkpoint {path} holds {meta['optimizer']} state, "
                                 f"not {type(optimizer).__name__}")
            mine = optimizer.state()
            for key, value in mine.items():
                _check_entry(archive, f"opt.{key}", value.shape, backend.to_numpy(value).dtype)
            unknown = sorted(k for k in archive.entries
                             if k.startswith("opt.") and k[4:] not in mine)
            if unknown:
                raise ValueError(f"checkpoint {path} has optimiser entries {unknown} that "
                                 f"{type(optimizer).__name__} does not hold")
        params = [_array(archive, f"{kind}{k}") for k in range(len(net.W)) for kind in "Wb"]
        opt_state = {key: _array(archive, f"opt.{key}") for key in mine}
        for key in archive.entries:                   # the rest: every CRC, as before
            if key != "meta" and key[0] not in "Wb" and key[4:] not in opt_state:
                archive.verify(key)
    if optimizer is not None and hasattr(optimizer, "check_state"):
        try:
            opt_state = optimizer.check_state(opt_state)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint {path}: its optimiser state is invalid: {exc}") from None
    if check is not None:
        try:
            check(meta, opt_state)
        except ValueError as exc:
            raise ValueError(f"checkpoint {path}: {exc}") from None
    for p, a in zip(net.parameters(), params):
        p[...] = backend.asarray(a)
    if optimizer is not None:
        optimizer.load_state(opt_state)
    return {"net": net, "state": meta["state"], "meta": meta}


__all__ = ["MAX_NUMBERS", "MAX_META", "hyper_parameters", "save", "read_meta", "load"]
