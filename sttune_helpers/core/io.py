"""Low-level file I/O that every layer uses: atomic writes (a killed process never leaves a
half-written file that a later stage trusts), CSV that a spreadsheet will not run as formulas, JSON
reading and file hashing. Imports nothing above it."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _write_error(path: Path, exc: OSError) -> OSError:
    """The same OSError (errno kept), saying which file could not be written."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; nothing was replaced")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def give_ordinary_mode(path: Path, directory: bool = False) -> None:
    """mkstemp/mkdtemp make private files; give them the mode a plain open() or mkdir() would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        give_ordinary_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise


# A cell that starts with one of these is run as a formula by a spreadsheet (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: Any) -> Any:
    """A copy of a DataFrame whose text cells that start like a formula (``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return) get the usual ``'`` prefix, so that a spreadsheet shows them as
    text instead of running them. Only text (object or string) columns: a negative number in a
    numeric column stays a number."""
    safe = frame.copy()
    for column in safe.select_dtypes(include=["object", "string"]).columns:
        safe[column] = safe[column].map(
            lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
    return safe


def atomic_write_csv(path: Path, frame: Any) -> None:
    """Write a DataFrame that may hold user text as CSV, atomically and :func:`spreadsheet_safe`."""
    atomic_write_text(path, spreadsheet_safe(frame).to_csv(index=False))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    give_ordinary_mode(tmp, directory=True)
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise _write_error(path, exc) from exc
        raise
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
