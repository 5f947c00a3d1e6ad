"""Environment variables: every one the package, its tests and its tools read, and one
parser per kind of value.

``VARIABLES`` lists them (the README's table is checked against it by a test).  Each
value is read through one of the parsers below, which treat an unset or blank variable
as its default and refuse anything they cannot read with a ``ValueError`` that names the
variable, says what it accepts and shows what it got:

- :func:`flag`: a boolean, ``1/0``, ``true/false``, ``yes/no`` or ``on/off`` in any case;
- :func:`integer`: a whole number (``256``, ``0``) at least some minimum;
- :func:`number`: a positive finite number (``7.5``);
- :func:`choice`: one of a few words, in any case;
- :func:`text`: any text, such as a path.

This module is hand-written and imports only the standard library, so that every other
module, the kernels included, can read its variables through it.
"""
from __future__ import annotations

import math
import os

#: Every environment variable read by the package, the tests and the tools:
#: name -> (who reads it, the values it accepts and what they do).
VARIABLES = {
    "STBP_BACKEND": ("package (stbp.backend)",
                     "`numpy` (default) or `cupy`, any case: the array backend chosen at "
                     "import"),
    "STBP_FUSE": ("package (stbp.backend)",
                  "boolean, default on: off runs the book's array code instead of the "
                  "fused kernels"),
    "STBP_KEEP_FREED": ("package (stbp.backend)",
                        "integer from 0 to 1073741823, bytes, default 268435456 (256 MiB): "
                        "freed blocks up to this size stay in the process (NumPy backend); "
                        "0 turns it off"),
    "STBP_NUMBA_THREADS": ("package (stbp.kernels.cpu)",
                           "integer from 1 to `NUMBA_NUM_THREADS`, default "
                           "`NUMBA_NUM_THREADS` (every core): the fused CPU kernels' "
                           "threads"),
    "STBP_DATA": ("package (stbp.data), tests",
                  "a folder holding `mnist/` with the four MNIST files; default: the "
                  "user cache below; the tests on real MNIST are skipped without it"),
    "XDG_CACHE_HOME": ("package (stbp.data)",
                       "a folder; MNIST is downloaded into `$XDG_CACHE_HOME/stbp/mnist` "
                       "when `STBP_DATA` is not set (default `~/.cache`)"),
    "STBP_DOWNLOAD_TIMEOUT": ("package (stbp.data)",
                              "positive number of seconds, default 120: the deadline of "
                              "each MNIST file's download from each mirror"),
    "STBP_BENCH_THREADPOOLCTL": ("package (stbp.bench, set by it for its probes)",
                                 "boolean, default off: limit BLAS to one thread inside "
                                 "the fused kernels while probing thread set-ups"),
    "STBP_BENCH_CONV": ("package (stbp.bench, set by it for its probes)",
                        "boolean, default off: the thread probes also time the "
                        "convolutional step"),
    "STBP_REQUIRE_GPU": ("tests (tests/conftest.py), set by tools/gpu_check.sh",
                         "boolean, default off: on, a GPU test fails instead of being "
                         "skipped where CuPy sees no working device"),
    "STBP_MUTATE_ROOT": ("tools/mutate.py (set by it for its test runs)",
                         "the temporary copy of the repository that a mutation runs in"),
    "STBP_MUTATE_SELECT": ("tools/mutate.py (set by it for its test runs)",
                           "the tests a mutation runs, as a JSON list of patterns"),
    "STBP_MUTATE_OUT": ("tools/mutate.py (set by it for its test runs)",
                        "the file where a mutation's test run writes its outcome"),
    "STBP_MATHJAX": ("tools/screenshot.py",
                     "a folder for the local MathJax copy, default "
                     "`~/.cache/stbp-tools/mathjax`"),
    "OMP_NUM_THREADS": ("recorded in results files (stbp.reproduce), set by the Makefile; "
                        "read by the math libraries", "positive integer"),
    "OPENBLAS_NUM_THREADS": ("recorded in results files (stbp.reproduce) and by "
                             "tools/bench_peers.py, set by the Makefile; read by OpenBLAS",
                             "positive integer"),
    "MKL_NUM_THREADS": ("recorded in results files (stbp.reproduce), set by the Makefile; "
                        "read by MKL", "positive integer"),
    "NUMBA_NUM_THREADS": ("set by the Makefile; read by Numba",
                          "positive integer: the most threads the kernels may use"),
    "OMP_WAIT_POLICY": ("read by the OpenMP runtime of Numba's kernels; "
                        "`stbp.backend.tune_process` sets `PASSIVE` where it is unset",
                        "`ACTIVE` or `PASSIVE`: whether idle kernel threads spin or "
                        "sleep"),
    "OPENBLAS_THREAD_TIMEOUT": ("read by OpenBLAS; `stbp.backend.tune_process` sets `4` "
                                "where it is unset and has the running OpenBLAS read it "
                                "again (`stbp.backend.quiet_blas_threads`)",
                                "integer from 4 to 30: idle OpenBLAS threads wait 2^value "
                                "cycles before they sleep (OpenBLAS's own default, 2^28 clock "
                                "ticks, is at least 50 ms below 5 GHz)"),
    "NUMBA_CACHE_DIR": ("set by stbp.bench for its compile-time probe; read by Numba",
                        "a folder for the compiled kernels; without a writable cache "
                        "folder the kernels are compiled in every process, with a "
                        "warning"),
    "PYTHON": ("the Makefile (a make variable, also read from the environment)",
               "the Python that creates `.venv`, default `python3`"),
    "VENV": ("the Makefile (a make variable, also read from the environment)",
             "the virtual environment's folder, default `.venv`"),
}

#: The spellings a boolean variable accepts (compared in lower case).
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _raw(name):
    """The variable's value without surrounding blanks, or None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def flag(name, default):
    """The boolean variable name: True for 1/true/yes/on, False for 0/false/no/off (any
    case), default when unset or blank."""
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ValueError(f"{name} must be one of 1/0, true/false, yes/no, on/off (any case); "
                     f"got {name}={value!r}")


def integer(name, default, minimum=None, maximum=None, what=None):
    """The whole-number variable name, in [minimum, maximum] where given; default when
    unset or blank. what: the value's meaning, for the message ("a number of bytes")."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number_ = int(value)
    except ValueError:
        number_ = None
    low = minimum is not None and number_ is not None and number_ < minimum
    high = maximum is not None and number_ is not None and number_ > maximum
    if number_ is None or low or high:
        bounds = ("" if minimum is None and maximum is None else
                  f" >= {minimum}" if maximum is None else f" from {minimum} to {maximum}")
        kind = "an integer" if what is None else f"{what}, an integer"
        raise ValueError(f"{name} must be {kind}{bounds}; got {name}={value!r}")
    return number_


def number(name, default, what="a positive number"):
    """The positive finite number name (seconds, say); default when unset or blank."""
    value = _raw(name)
    if value is None:
        return default
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not (x > 0 and math.isfinite(x)):
        raise ValueError(f"{name} must be {what}; got {name}={value!r}")
    return x


def choice(name, options, default):
    """One of options (lower-case words), read in any case; default when unset or blank."""
    value = _raw(name)
    if value is None:
        return default
    if value.lower() not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)} (any case); "
                         f"got {name}={value!r}")
    return value.lower()


def text(name, default=None):
    """The variable's text (a path, say) without surrounding blanks; default when unset
    or blank."""
    value = _raw(name)
    return default if value is None else value


__all__ = ["VARIABLES", "TRUE", "FALSE", "flag", "integer", "number", "choice", "text"]
