"""Files: how the package writes and opens them, in one place.

**Writes are atomic** (:func:`write_atomic`): the data go to a temporary file of a unique
name, ``.tmp-<name>-<pid>-<random><suffix>``, created in the target's folder (exclusively:
a file or symlink already at that name is never opened), flushed to disk, and renamed over
the target.  A rename within one file system is atomic, so a reader sees the old file or
the new one, never a part; two writers of one target at once each rename a complete file
(the last one wins); a symlink at the target is replaced, not followed.  On an error the
temporary file is removed.  A writer killed mid-write cannot clean up, so each write also
removes temporary files of the same target whose writer (the pid in the name) is no longer
running and which are older than this module's import.  Results files, weights,
checkpoints, benchmark files and downloads are all written this way.

**Targets are checked before the work that produces them** (:func:`check_target`): a
folder that does not exist or cannot be written, a directory or another non-file
standing at the target's name are refused with a ``ValueError`` naming the path and the
fix, so that a long run does not end in an error it could have met at its start.

**Reads open regular files only** (:func:`open_regular`): a FIFO, a device or a
directory at a path is refused without opening it for reading (so nothing blocks or reads
forever), and a file that cannot be read is named with the fix.

**One run per target at a time** (:func:`exclusive`): a lock file beside the target,
held while a run writes it and removed after (``flock``, where the system has it).

This module is hand-written and imports only the standard library.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import stat
import tempfile
import time

try:
    import fcntl
except ImportError:                                   # not on Windows: no locking
    fcntl = None

#: Temporary files of a target older than this (seconds since the epoch) may be stale.
_STARTED = time.time()
#: The permissions a new file gets: those of open(), i.e. 0o666 less the process's umask.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def kind(mode):
    """What a file of this st_mode is, in words ("a FIFO (named pipe)", "a regular file")."""
    return next((name for test, name in _KINDS if test(mode)),
                "a regular file" if stat.S_ISREG(mode) else "not a regular file")


def _prefix(path):
    return f".tmp-{os.path.basename(path)}-"


def _alive(pid):
    """Whether a process with this pid runs on this machine (a pid in use counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True                                   # someone else's process
    return True


def _remove_stale(path):
    """Delete temporary files of this target left by writers that died mid-write: older
    than this module's import and of a pid no longer running (names written before the
    pid was recorded: older than the import)."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix, suffix = _prefix(path), re.escape(os.path.splitext(path)[1])
    for old in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*")):
        rest = os.path.basename(old)[len(prefix):]
        new = re.fullmatch(r"(\d+)-[a-z0-9_]{8}" + suffix, rest)
        dead = new is not None and int(new[1]) != os.getpid() and not _alive(int(new[1]))
        try:
            if (dead or re.fullmatch(r"[a-z0-9_]{8}" + suffix, rest)) and \
                    os.lstat(old).st_mtime < _STARTED:
                os.unlink(old)
        except OSError:
            pass                                      # gone already, or not ours to remove


def write_atomic(path, write, what="file"):
    """Write the file at path atomically (see the module's docstring): write(fh) fills a
    binary file object; what names the file in errors ("results file", "checkpoint")."""
    path = os.fspath(path)
    check_target(path, what, probe=False)
    _remove_stale(path)
    folder = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{_prefix(path)}{os.getpid()}-",
                               suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)                # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):                # the rename itself, on disk
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def check_target(path, what="file", probe=True):
    """Refuse, before any work, a path that cannot be written atomically: its folder
    missing or (probe=True: tried with a temporary file) not writable, or a directory or
    another non-file at its name.  A symlink at the name is fine: it is replaced."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {what} {path}: its folder {folder} does not "
                                f"exist; create it or write elsewhere")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise ValueError(f"cannot write {what} {path}: {kind(mode)} stands at its name; "
                         f"remove or rename it, or write elsewhere")
    if probe:
        try:
            with tempfile.TemporaryFile(dir=folder, prefix=_prefix(path)):
                pass
        except OSError as exc:
            raise ValueError(f"cannot write {what} {path}: its folder {folder} is not "
                             f"writable ({exc.strerror or exc}); make it writable or write "
                             f"elsewhere") from None
    return path


def open_regular(path, what="file"):
    """Open the regular file at path for reading (binary); refuse a FIFO, a device, a
    socket or a directory without blocking, and name a missing or unreadable file."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode                  # nothing is opened yet
        if not stat.S_ISREG(mode):
            raise ValueError(f"{what} {path} is {kind(mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    except PermissionError:
        raise PermissionError(f"cannot read {what} {path}: permission denied; make it "
                              f"readable (chmod u+r) or use a readable copy") from None
    mode = os.fstat(fd).st_mode                       # what was opened, if it changed
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValueError(f"{what} {path} is {kind(mode)}, not a regular file")
    return os.fdopen(fd, "rb")


@contextlib.contextmanager
def exclusive(path, what):
    """Hold the lock file at path for the duration, and remove it after (flock; nothing
    where the system has no fcntl): a second holder is refused at once with a ValueError
    naming what.  A lock file left by a killed process is simply taken over."""
    path = os.fspath(path)
    if fcntl is None:
        yield path
        return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        try:
            fd = os.open(path, flags, 0o666 & ~_UMASK)
        except OSError as exc:
            raise ValueError(f"cannot take the lock file {path} ({exc.strerror or exc}); "
                             f"remove whatever stands at that name") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"another process is writing {what} now (it holds the lock "
                             f"file {path}); wait for it to finish, or write elsewhere") from None
        try:                                          # the file may have been removed by
            same = os.path.samestat(os.fstat(fd), os.stat(path))    # its last holder
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise ValueError(f"cannot take the lock file {path}: it keeps being replaced")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)                           # while still held: see the check above
        os.close(fd)


__all__ = ["kind", "write_atomic", "check_target", "open_regular", "exclusive"]
