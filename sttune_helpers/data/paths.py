"""What a data path is, checked with ``os.stat`` before anything opens it: a regular file, a
directory, or something that cannot be data (a named pipe, a device, a socket, a symbolic link loop,
a broken symbolic link), said in words with the path and what was expected. A named pipe is never
opened: reading one would block until something writes to it."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .problems import DataError, Problem

REGULAR_FILE = "a regular file"
DIRECTORY = "a directory"
MISSING = "missing"

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, DIRECTORY), (stat.S_ISREG, REGULAR_FILE))


def describe_path(path: str | Path) -> str:
    """What is at ``path``, following symbolic links: ``REGULAR_FILE``, ``DIRECTORY``, ``MISSING``,
    or words for anything else ("a named pipe (FIFO)", "a symbolic link loop",
    "a broken symbolic link to X", ...)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENOENT:
            if os.path.islink(path):
                return f"a broken symbolic link to {os.readlink(path)}"
            return MISSING
        if exc.errno == errno.ENOTDIR:
            return MISSING  # a part of the path is a file
        return f"not accessible ({exc.strerror})"
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def require_regular_file(path: str | Path, expected: str = "a data file") -> None:
    """Raise a :class:`DataError` naming ``path`` and what it is, unless it is a regular file (or a
    symbolic link to one)."""
    kind = describe_path(path)
    if kind == REGULAR_FILE:
        return
    if kind == MISSING:
        raise DataError([Problem(str(path), None, None, f"file does not exist; expected {expected}")])
    if kind == DIRECTORY:
        raise DataError([Problem(str(path), None, None, f"is a directory; expected {expected}")])
    raise DataError([Problem(str(path), None, None, f"not a regular file: {kind}; expected {expected}")])
