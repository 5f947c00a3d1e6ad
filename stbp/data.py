"""MNIST loading: a small, strict reader for the four standard IDX files.

``load_mnist()`` returns ``(x_train, y_train, x_test, y_test)``: images as ``uint8``
arrays of shape ``(N, 28, 28)`` and labels as ``int64`` arrays of shape ``(N,)``.

Where the files are looked for (``mnist_dir``): ``root`` if given (the directory that
holds the files); else ``$STBP_DATA/mnist`` if ``STBP_DATA`` is set; else the user cache,
``$XDG_CACHE_HOME/stbp/mnist`` or ``~/.cache/stbp/mnist``.  Each file may be gzipped
(``NAME.gz``, preferred) or raw (``NAME``).  A missing file is downloaded (``download=True``)
from public mirrors and written atomically; if that is impossible a ``FileNotFoundError``
says which file is missing, where it was looked for and how to supply it.  Each download
has an overall deadline (``timeout`` seconds per file and mirror; default
``$STBP_DOWNLOAD_TIMEOUT`` or 120 s), so a mirror that trickles bytes cannot hold it
forever.  A directory standing where a data file should be is an error, not a reason to
download.

With ``verify=True`` the SHA-256 of each decompressed file is compared with the known
value.  ``read_idx`` checks the IDX header and that the payload has exactly the declared
size, before it allocates anything: a file whose header declares more than its bytes can
hold (a raw file shorter than declared, a gzip member that would have to inflate more
than deflate can), or a gzip member that inflates past the declared size, is refused
without being read to the end.  A FIFO, a device or a directory where a file should be is
refused without blocking, and a file that cannot be read is named with the fix.  Every
problem with the data (truncated gzip, wrong magic, wrong length, bad checksum,
inconsistent splits) raises a ``ValueError`` that names the file.  No pickle.

``validation_split(x, y)`` holds out a fixed 10,000 of the training digits as a validation
set (drawn with the module constant ``VAL_SEED``, not with any run's seed, so every run holds
out the same digits): configuration choices are made on it, and the test set is scored once,
at the end of a final run.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import pathlib
import time
import urllib.request
import zlib

import numpy as np

from stbp import checks, env, files

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: SHA-256 of the decompressed IDX files.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Seed of the validation split: fixed, and independent of any training run's seed.
VAL_SEED = 20180910
#: Default overall deadline of one file's download from one mirror, in seconds.
DOWNLOAD_TIMEOUT = 120.0
_ADVICE = "delete it and call load_mnist() again to re-download it, or replace it with a good copy"


def mnist_dir(root=None) -> pathlib.Path:
    """Directory that holds (or will hold) the MNIST files."""
    if root is not None:
        return pathlib.Path(root).expanduser()
    if env.text("STBP_DATA"):
        return pathlib.Path(env.text("STBP_DATA")).expanduser() / "mnist"
    cache = env.text("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache).expanduser() / "stbp" / "mnist"


def download_timeout(timeout=None) -> float:
    """The download deadline in seconds: ``timeout`` if given, else ``$STBP_DOWNLOAD_TIMEOUT``,
    else ``DOWNLOAD_TIMEOUT``; a positive finite number."""
    if timeout is None:
        return env.number("STBP_DOWNLOAD_TIMEOUT", DOWNLOAD_TIMEOUT,
                          what="a positive number of seconds")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    return float(timeout)


def _fetch(url: str, timeout: float) -> bytes:
    """The only network access in this module (replaced in tests): the whole body of url,
    or TimeoutError once ``timeout`` seconds have passed in all."""
    deadline = time.monotonic() + timeout
    chunks = []
    with urllib.request.urlopen(url, timeout=min(30.0, timeout)) as response:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"download of {url} took longer than {timeout:g} s "
                                   f"(set STBP_DOWNLOAD_TIMEOUT or timeout= to allow more)")
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _download(name: str, d: pathlib.Path, timeout: float) -> list:
    """Fetch ``name.gz`` into ``d`` atomically; return the list of errors (empty on success)."""
    errors = []
    for mirror in MIRRORS:
        try:
            payload = _fetch(mirror + name + ".gz", timeout)
            d.mkdir(parents=True, exist_ok=True)
            files.write_atomic(d / (name + ".gz"), lambda fh: fh.write(payload), "MNIST file")
            return []
        except Exception as e:  # network or file-system failure: try the next mirror
            errors.append(f"{mirror}: {type(e).__name__}: {e}")
    return errors


def _locate(name: str, d: pathlib.Path, download: bool, timeout: float) -> pathlib.Path:
    for candidate in (d / (name + ".gz"), d / name):
        if candidate.is_file():
            return candidate
        if candidate.is_dir():
            raise ValueError(f"{candidate} is a directory, where the MNIST file {candidate.name} "
                             f"should be; remove or rename it (nothing was downloaded)")
        if os.path.lexists(candidate) and candidate.exists():
            raise ValueError(f"{candidate} is {files.kind(candidate.stat().st_mode)}, where "
                             f"the MNIST file {candidate.name} should be; remove or rename it "
                             f"(nothing was read or downloaded)")
    why = "download=False"
    if download:
        errors = _download(name, d, timeout)
        if not errors:
            return d / (name + ".gz")
        why = "download failed: " + "; ".join(errors)
    raise FileNotFoundError(
        f"MNIST file {name} (or {name}.gz) not found in {d} ({why}). To supply it: set "
        f"STBP_DATA to a directory containing mnist/ with the four files, pass "
        f"root=<directory holding the files>, or place {', '.join(SHA256)} "
        f"(gzipped or raw) in {d}.")


#: The most a deflate stream can inflate: about 1032 bytes out per byte in.
_DEFLATE_RATIO = 1100


def _read_exact(stream, n, buf=None):
    """n bytes of stream (fewer only at its end), into buf if given."""
    out = buf if buf is not None else bytearray(n)
    view, got = memoryview(out), 0
    while got < n:
        k = stream.readinto(view[got:n])
        if not k:
            break
        got += k
    return out if buf is not None else bytes(out[:got]), got


def _read_bytes(path: pathlib.Path) -> bytes:
    """The (decompressed) bytes of the IDX file at path: the header first, then exactly the
    payload it declares; refused, before the payload is allocated, when the header declares
    more than the file can hold, and refused when a gzip member inflates past it."""
    gz = path.name.endswith(".gz")
    with files.open_regular(path, "MNIST file") as raw:
        size = os.fstat(raw.fileno()).st_size
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            head, got = _read_exact(stream, 4)
            if got == 4 and head[:2] == b"\0\0":
                more, _ = _read_exact(stream, 4 * head[3])
                head += more
            declared = _declared(head)
            if declared is None:                      # a bad header: _parse_idx names it
                return head + stream.read(1 << 16)
            total = len(head) + declared
            if gz and total > _DEFLATE_RATIO * size + (1 << 16):
                raise ValueError(f"{path.name} is corrupt: its IDX header declares {declared} "
                                 f"bytes, more than its {size} compressed bytes can hold; "
                                 f"{_ADVICE}")
            if not gz and total != size:
                raise ValueError(_length_error(path.name, head, declared, size - len(head)))
            buf = bytearray(total)
            buf[:len(head)] = head
            _, got = _read_exact(stream, declared, memoryview(buf)[len(head):])
            if got < declared:
                return bytes(buf[:len(head) + got])   # _parse_idx names the shortfall
            if gz and stream.read(1):
                raise ValueError(f"{path.name} is corrupt: its gzip data inflates past the "
                                 f"{declared} bytes its IDX header declares; {_ADVICE}")
        except (EOFError, OSError, zlib.error) as e:  # BadGzipFile is an OSError
            raise ValueError(f"{path.name} is truncated or corrupt: not a valid gzip "
                             f"stream ({type(e).__name__}: {e}); {_ADVICE}") from e
    return buf


def _declared(head: bytes):
    """The payload size an IDX header declares, or None when it is not a valid header."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or head[3] == 0 \
            or len(head) < 4 + 4 * head[3]:
        return None
    dims = [int(v) for v in np.frombuffer(head, ">i4", count=head[3], offset=4)]
    return None if min(dims) < 0 else math.prod(dims)


def _length_error(name, head, expected, found):
    dims = tuple(int(v) for v in np.frombuffer(head, ">i4", count=head[3], offset=4))
    kind = {1: "labels", 3: "images"}.get(head[3], "data")
    return (f"{name} is truncated or corrupt: expected {expected} bytes of {kind} for shape "
            f"{dims}, found {found}; {_ADVICE}")


def _parse_idx(buf: bytes, name: str) -> np.ndarray:
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise ValueError(f"{name} is not an IDX file: magic bytes {buf[:4].hex()!r} "
                         f"do not start with 0000; {_ADVICE}")
    if buf[2] != 0x08:
        raise ValueError(f"{name}: unsupported IDX data type 0x{buf[2]:02x} "
                         f"(only 0x08, unsigned byte, is supported)")
    ndim, header = buf[3], 4 + 4 * buf[3]
    if ndim == 0 or len(buf) < header:
        raise ValueError(f"{name} is truncated or corrupt: IDX header for {ndim} "
                         f"dimensions needs {header} bytes, found {len(buf)}; {_ADVICE}")
    dims = tuple(int(v) for v in np.frombuffer(buf, ">i4", count=ndim, offset=4))
    if min(dims) < 0:
        raise ValueError(f"{name} is corrupt: negative dimension in {dims}; {_ADVICE}")
    expected, found = math.prod(dims), len(buf) - header
    if found != expected:
        raise ValueError(_length_error(name, buf[:header], expected, found))
    return np.frombuffer(buf, np.uint8, offset=header).reshape(dims).copy()


def read_idx(path) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzipped if its name ends in ``.gz``)."""
    path = pathlib.Path(path)
    return _parse_idx(_read_bytes(path), path.name)


def load_mnist(root=None, *, download=True, verify=True, timeout=None):
    """Return ``(x_train, y_train, x_test, y_test)``; see the module docstring.
    timeout: overall deadline of each download in seconds (see ``download_timeout``)."""
    d = mnist_dir(root)
    if d.exists() and not d.is_dir():
        raise ValueError(f"the MNIST folder {d} is a file, not a directory")
    timeout = download_timeout(timeout)
    paths = {name: _locate(name, d, download, timeout) for name in SHA256}
    arrays = {}
    for name, path in paths.items():
        buf = _read_bytes(path)
        if verify:
            actual = hashlib.sha256(buf).hexdigest()
            if actual != SHA256[name]:
                raise ValueError(f"{path.name} in {d} has the wrong SHA-256 checksum "
                                 f"(expected {SHA256[name]}, got {actual}); {_ADVICE}")
        arrays[name] = _parse_idx(buf, path.name)
    out = []
    for split in ("train", "t10k"):
        xi, yi = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        x, y = arrays[xi], arrays[yi]
        xn, yn = paths[xi].name, paths[yi].name
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"{xn}: expected images of shape (N, 28, 28), got {x.shape}")
        if y.ndim != 1:
            raise ValueError(f"{yn}: expected labels of shape (N,), got {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"{xn} has {len(x)} images but {yn} has {len(y)} labels")
        if y.size and y.max() > 9:
            raise ValueError(f"{yn}: labels must be in 0..9, found {int(y.max())}")
        out += [x, y.astype(np.int64)]
    return tuple(out)


def validation_split(x, y, n_val=10_000, seed=VAL_SEED):
    """Split (x, y) into ``(x_train, y_train), (x_val, y_val)``: ``n_val`` samples drawn
    without replacement by a generator seeded with ``seed`` (default ``VAL_SEED``, the same
    for every run) form the validation set, the rest the training set; both keep the
    original order.  The two parts are disjoint and together are the whole of (x, y)."""
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must have the same length; got {n} images and {len(y)} labels")
    n_val, seed = checks.positive_int("n_val", n_val), checks.integer("seed", seed, 0)
    if n_val > n - 1:
        raise ValueError(f"n_val must leave at least one training sample: at most {n - 1} "
                         f"(len(x) - 1); got n_val = {n_val}")
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return (x[~held], y[~held]), (x[held], y[held])


__all__ = ["MIRRORS", "SHA256", "VAL_SEED", "DOWNLOAD_TIMEOUT", "mnist_dir", "download_timeout",
           "read_idx", "load_mnist", "validation_split"]
