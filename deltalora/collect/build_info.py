"""The one file that says when, and from which commit, each table was built: ``build_info.json``.

Why a separate file: a wall-clock stamp inside a table would make two builds from the same run records
differ byte for byte, so the tables, their Markdown, LaTeX, HTML and plots carry none. The provenance
that does change from build to build (time, commit of the code, library versions) is kept here, one
entry per output, beside the outputs (``results/build_info.json`` for ``results/glue_table.csv``). Each
run record keeps its own provenance too (``record.json`` → ``provenance``).

Collectors of one Snakemake build run in parallel, so an entry is added under a lock on the folder
(read, update, atomic replace); a file of that name that this library did not write is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import UserError
from ..records import git_commit, versions

FILE_NAME = "build_info.json"
MARKER = "deltalora build info"  # the value of "written_by": the file is ours to update


def path_for(out: str | os.PathLike) -> Path:
    """The build-info file that records ``out``: ``build_info.json`` in the output's folder."""
    return Path(out).parent / FILE_NAME


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"written_by": MARKER, "outputs": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(
            f"{path}: not a deltalora build-info file ({e}); move it away, it is not overwritten"
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("written_by") != MARKER
        or not isinstance(data.get("outputs"), dict)
    ):
        raise UserError(
            f'{path}: not a deltalora build-info file (no "written_by": {MARKER!r}); '
            "move it away, it is not overwritten"
        )
    return data


def check(out: str | os.PathLike) -> None:
    """Refuse early (before any output is written) when ``build_info.json`` is someone else's file."""
    _read(path_for(out))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _table_versions() -> dict[str, str | None]:
    """The libraries that write tables and plots (the records list the training stack)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("matplotlib", "pandas", "scipy", "snakemake"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def note(out: str | os.PathLike, command: str) -> Path:
    """Record that ``out`` was just built by ``command`` (time, commit, versions); return the file's path."""
    path = path_for(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = git_commit()
    entry = {
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "git_commit": g["commit"],
        "git_dirty": g["dirty"],
        "versions": versions() | _table_versions(),
    }
    with _locked(path.parent):
        data = _read(path)
        data["outputs"][Path(out).name] = entry
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


__all__ = ["FILE_NAME", "check", "note", "path_for"]
