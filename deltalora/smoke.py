"""Smoke runs can never pass for paper results.

A smoke run (``train.smoke: true``; workflow/config/smoke.yaml sets it for every run) keeps the paper
profile's protocol at a toy size. Its record says so (``config.train.smoke``), and every table, plot and
the audit built from such records carries :data:`SMOKE_NOTE` in its title. Tables never mix smoke and
real records (:func:`check_records` refuses it, naming a file of each kind).

Why a process-wide flag: titles are written by many collectors and one shared plot saver; the flag is
set where records are read (``collect.tables.load_records``) or by ``bench memory --smoke``, so every
title written afterwards in that process says "smoke".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SMOKE_NOTE = "smoke run, not the paper's numbers"
_active = False


def is_smoke(record: dict[str, Any]) -> bool:
    """Whether a run record comes from a smoke run."""
    return bool(((record.get("config") or {}).get("train") or {}).get("smoke", False))


def check_records(records: Sequence[dict[str, Any]]) -> bool:
    """Refuse a mix of smoke and real records; mark this process as smoke if they are smoke records."""
    smoke = [r for r in records if is_smoke(r)]
    if smoke and len(smoke) != len(records):
        real = next(r for r in records if not is_smoke(r))
        raise _record_error(
            f"{smoke[0].get('_path', '?')} is a smoke run but {real.get('_path', '?')} is not; "
            "tables never mix smoke runs with real ones"
        )
    if smoke:
        activate()
    return bool(smoke)


def _record_error(msg: str) -> Exception:
    from deltalora.records import RecordError

    return RecordError(msg)


def activate(on: bool = True) -> None:
    global _active
    _active = on


def active() -> bool:
    return _active


def label(profile: str) -> str:
    """The profile as titles name it: ``paper profile`` or ``paper profile - smoke run, not the paper's numbers``."""
    return f"{profile} profile - {SMOKE_NOTE}" if _active else f"{profile} profile"


def mark_figure(fig: Any) -> None:
    """Put the smoke note at the head of a figure's title (called by the one plot saver)."""
    if not _active:
        return
    sup = getattr(fig, "_suptitle", None)
    text = sup.get_text() if sup is not None else ""
    if SMOKE_NOTE.upper() in text:
        return
    fig.suptitle(
        f"{SMOKE_NOTE.upper()}\n{text}" if text else SMOKE_NOTE.upper(),
        color="darkred",
        fontsize=(sup.get_fontsize() if sup is not None else 11),
    )
