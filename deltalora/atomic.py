"""Atomic file writes: a reader sees the old complete file or the new complete file, never a part.

Why one helper: run records, proxy data, tables, plots and the schema are all read by other processes
(Snakemake jobs, collectors) while the pipeline may be writing or be killed. Each write goes to a
unique temporary file in the target's folder, is flushed to disk, given the permissions a normal file
would get (``mkstemp`` creates 0600; results are meant to be shared), and moved over the target with
``os.replace`` (atomic on POSIX and Windows). A failed write leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _shared_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; write it inside the block, and it replaces `path` on exit.

    `suffix` lets writers that choose a format by extension (matplotlib's ``savefig``) see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _shared_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]
