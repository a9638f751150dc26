"""Writing files so that nobody ever sees half of one, all with the same permissions.

Every file Meridian writes (reports, pages, run and sweep records, modules, exports, backups)
goes through :func:`write_atomic`: a temporary file in the same folder, then a rename. A reader
(a browser, another process, ``runs rebuild`` after a crash) sees the old file or the new one,
never a torn one. Temporary files start with a dot and end in ``.tmp``; :func:`remove_stale_temps`
clears those a killed writer left behind. Files get the usual ``0666 & ~umask`` (0644 under the
common umask), the mode ``open()`` would give, not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from meridian.exceptions import DataError

try:  # POSIX: serialize concurrent writers of the same file
    import fcntl
except ImportError:  # pragma: no cover - Windows: atomic replace alone
    fcntl = None


MAX_UNPACKED = 1 << 30
"""Bytes a compressed input (a .gz price file, a COT zip) may unpack to: ~15 million bars of
CSV, far beyond any real file, so a decompression bomb is refused before memory fills."""


def check_unpacked(size: int, label: str) -> None:
    """One line when ``size`` (bytes unpacked so far, or declared) passes :data:`MAX_UNPACKED`."""
    if size > MAX_UNPACKED:
        raise DataError(f"{label}: unpacks to more than {MAX_UNPACKED >> 20:,} MiB; refusing it "
                        "(a decompression bomb?); unpack it yourself if it is real")


def file_mode() -> int:
    """``0o666`` minus the process umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(temporary, file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(folder: Path, older_than: float = 3600.0) -> int:
    """Delete ``.*.tmp`` files in ``folder`` older than ``older_than`` seconds (left by a
    writer killed mid-write; a live writer renames its file within seconds)."""
    removed = 0
    cutoff = time.time() - older_than
    for temporary in Path(folder).glob(".*.tmp"):
        try:
            if temporary.stat().st_mtime < cutoff:
                temporary.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The file's SHA-256: which bytes a run saw (data, notebook, module); runs record it and
    ``meridian rerun`` compares it."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the block (a no-op where ``fcntl`` is missing).

    Used so that what several processes change at once is changed one after the other: pages
    rebuilt (the last writer reads the newest registry), a run's tags and note, a notebook
    saved from two tabs.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
