"""Waiting on events in tests, not on the clock.

A test that polls with a tight wall-clock deadline fails on a loaded machine though nothing is wrong.
`wait_for` returns as soon as the event happens and fails at once, with the process's exit code, if
the process it waits on ends first; the guard timeout only stops a hung test and is deliberately
generous (it is never what a passing test depends on).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

GUARD_S = 3600.0


def wait_for(
    event: Callable[[], bool],
    *,
    proc: subprocess.Popen | None = None,
    what: str,
    guard_s: float = GUARD_S,
    poll_s: float = 0.01,
) -> None:
    """Return when `event()` is true; fail if `proc` ends first or the (generous) guard runs out."""
    start = time.monotonic()
    while not event():
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(
                f"the process ended (exit code {proc.returncode}) before {what}\n{out[-3000:]}"
            )
        if time.monotonic() - start > guard_s:
            raise AssertionError(
                f"guard timeout: still waiting for {what} after {guard_s:.0f} s (a hung test)"
            )
        time.sleep(poll_s)


def snapshot(root: Path, *, exclude: tuple[str, ...] = (".snakemake/log",)) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under root, except the excluded subtrees."""
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(rel == e or rel.startswith(e + "/") for e in exclude):
            st = p.stat()
            out[rel] = (st.st_size, st.st_mtime_ns)
    return out
