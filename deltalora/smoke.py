"""Smoke runs can never pass for paper results.

A smoke run (``train.smoke: true``; workflow/config/smoke.yaml sets it for every run) keeps the paper
profile's protocol at a toy size. Its record says so (``config.train.smoke``), and every table, plot and
the audit built from such records carries :data:`SMOKE_NOTE` in its title. Tables never mix smoke and
real records (:func:`check_records` refuses it, naming a file of each kind).

A run that trains on a stand-in is a smoke run too, whatever its configuration says: ``deltalora
mirror`` marks every model it writes (``config.json`` carries :data:`STAND_IN_KEY`) and every dataset
(its ``dataset_info.json`` description is :data:`MIRROR_NOTE`), :func:`stand_ins` finds those marks on
what a run loaded, and the run's record says ``"smoke": true`` with ``"stand_in"`` naming what was a
stand-in. So a paper-profile run on a mirrored cache without ``smoke.yaml`` can never pass for a real
result either.

Why a process-wide flag: titles are written by many collectors and one shared plot saver; the flag is
set where records are read (``collect.tables.load_records``) or by ``bench memory --smoke``, so every
title written afterwards in that process says "smoke".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SMOKE_NOTE = "smoke run, not the paper's numbers"
#: What `deltalora mirror` writes into every stand-in: a model's README and config, a dataset's description.
MIRROR_NOTE = "deltalora mirror: tiny random stand-in, not the real model or data"
#: The key of a mirrored model's ``config.json`` (kept by ``from_pretrained`` on ``model.config``).
STAND_IN_KEY = "deltalora_stand_in"
#: The file at the root of a mirrored ``HF_HOME``: what the mirror wrote there (and nothing else is its own).
MIRROR_MARKER = "deltalora-mirror.json"
_active = False
_stand_in = False


def is_smoke(record: dict[str, Any]) -> bool:
    """Whether a run record comes from a smoke run (``train.smoke``, or a run on a stand-in)."""
    return bool(
        record.get("smoke")
        or record.get("stand_in")
        or ((record.get("config") or {}).get("train") or {}).get("smoke", False)
    )


def is_stand_in(record: dict[str, Any]) -> bool:
    """Whether a run record trained on a stand-in of `deltalora mirror` (model or data)."""
    return bool(record.get("stand_in"))


def check_records(records: Sequence[dict[str, Any]]) -> bool:
    """Refuse a mix of smoke and real records; mark this process as smoke if they are smoke records."""
    smoke = [r for r in records if is_smoke(r)]
    if smoke and len(smoke) != len(records):
        real = next(r for r in records if not is_smoke(r))
        what = "a run on a stand-in of `deltalora mirror`" if is_stand_in(smoke[0]) else "a smoke run"
        raise _record_error(
            f"{smoke[0].get('_path', '?')} is {what} but {real.get('_path', '?')} is a real run; "
            "tables never mix smoke runs with real ones"
        )
    activate(bool(smoke), stand_in=any(is_stand_in(r) for r in smoke))
    return bool(smoke)


def stand_ins(model: Any = None, data: Any = None) -> dict[str, Any] | None:
    """What of a run's model and data is a stand-in of `deltalora mirror`; None when nothing is.

    Why from the loaded objects: the marks travel with what was actually loaded (a hub id, a local
    copy, any ``model_options``, any subsample or dev split of the data), so no configuration can hide them.
    """
    out: dict[str, Any] = {}
    config = getattr(getattr(model, "get_base_model", lambda: model)(), "config", None)
    if config is not None and getattr(config, STAND_IN_KEY, None):
        out["model"] = str(getattr(config, "_name_or_path", "") or "?")
    splits = sorted(
        name
        for name, ds in (data.items() if hasattr(data, "items") else ())
        if MIRROR_NOTE in str(getattr(getattr(ds, "info", None), "description", None) or "")
    )
    if splits:
        out["data_splits"] = splits
    if out:
        out["note"] = MIRROR_NOTE
    return out or None


def cache_is_mirror() -> bool:
    """Whether the Hugging Face cache this process would read is a `deltalora mirror`.

    Why: the memory and run-time tables read no record to carry the mark; a paper-profile build on a
    mirrored cache labels them from the cache itself.
    """
    import os
    from pathlib import Path

    from huggingface_hub import constants

    roots = {Path(constants.HF_HOME), Path(constants.HF_HUB_CACHE).parent}
    if os.environ.get("HF_DATASETS_CACHE"):
        roots.add(Path(os.environ["HF_DATASETS_CACHE"]).parent)
    return any((r / MIRROR_MARKER).is_file() for r in roots)


def _record_error(msg: str) -> Exception:
    from deltalora.records import RecordError

    return RecordError(msg)


def activate(on: bool = True, *, stand_in: bool = False) -> None:
    """Mark this process's outputs as smoke (and as built on stand-ins of `deltalora mirror`)."""
    global _active, _stand_in
    _active = on
    _stand_in = bool(on and stand_in)


def active() -> bool:
    return _active


def stand_in_active() -> bool:
    return _stand_in


def profile_note(profile: str, note: str) -> str:
    """A table's one-line source of its numbers: `note`, unless this is a smoke build.

    Why: the paper profile's note says "from the Hugging Face hub", which a run on the smoke mirror is not.
    """
    if _stand_in:
        return (
            f"{profile} profile on the smoke mirror: tiny random stand-ins of its models and datasets "
            f"written by `deltalora mirror`, not the hub's; {SMOKE_NOTE}"
        )
    if _active:
        return f"{note} At smoke size: {SMOKE_NOTE}." if note else SMOKE_NOTE
    return note


def label(profile: str) -> str:
    """The profile as titles name it: ``paper profile``, or ``paper profile - <SMOKE_NOTE>`` if smoke."""
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
