"""The first PEFT release of each tuner and LoRA option the `peft` method can ask for.

Why: the project supports PEFT from 0.16, and PEFT keeps adding tuners. A row that asks for a tuner or
an option the installed PEFT predates must be skipped with the version named, not fail deep inside
PEFT, and the workflow decides which rows to build before any job runs. So this module imports only
the standard library: Snakemake loads it by path at DAG build, without torch or PEFT.

Releases are from PEFT's git tags (checked 2026-12-06).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

#: config class name -> first PEFT release that has it
CONFIG_RELEASES: dict[str, str] = {
    "LoraConfig": "0.1",
    "LoHaConfig": "0.6",
    "LoKrConfig": "0.6",
    "VeraConfig": "0.11",
    "HRAConfig": "0.12",
    "RandLoraConfig": "0.16",
    "C3AConfig": "0.16",
    "MissConfig": "0.17",
    "ShiraConfig": "0.17",
    "GraloraConfig": "0.19",
    "HiraConfig": "0.20",
}
#: LoraConfig option (or option=value) -> first PEFT release that has it
OPTION_RELEASES: dict[str, str] = {
    "use_rslora": "0.8",
    "use_dora": "0.9",
    "init_lora_weights=pissa": "0.11",
    "init_lora_weights=olora": "0.12",
    "init_lora_weights=eva": "0.15",  # eva and corda arrived in 0.14-0.15: the later is the floor
    "init_lora_weights=corda": "0.15",
    "optimizer=loraplus": "0.13",  # peft.optimizers.create_loraplus_optimizer
}


class MethodUnavailable(ValueError):
    """The installed PEFT is older than the release a row's tuner or option needs: the row is skipped."""


def _version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a release string: "0.20" is (0, 20, 0), "0.19.1.dev0" is (0, 19, 1)."""
    parts = [int(x) for x in re.findall(r"\d+", text.split("+")[0])[:3]]
    return (*parts, *[0] * (3 - len(parts)))  # type: ignore[return-value]


def installed_peft() -> str | None:
    try:
        return metadata.version("peft")
    except metadata.PackageNotFoundError:
        return None


def needs(hp: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, first release) of everything a `peft` row's hyper-parameters ask for."""
    out = []
    config = str(hp.get("config", "LoraConfig"))
    if config in CONFIG_RELEASES:
        out.append((config, CONFIG_RELEASES[config]))
    for key, value in hp.items():
        for what in (key, f"{key}={value}" if isinstance(value, str) else None):
            if what in OPTION_RELEASES and (what != key or value not in (False, None)):
                out.append((what, OPTION_RELEASES[what]))
    return out


def skip_reason(hp: Mapping[str, Any], installed: str | None = None) -> str | None:
    """Why a `peft` row cannot run on the installed PEFT (naming the release it needs), or None."""
    installed = installed if installed is not None else installed_peft()
    if installed is None:
        return "PEFT is not installed"
    late = [(w, v) for w, v in needs(hp) if _version(installed) < _version(v)]
    if not late:
        return None
    return "; ".join(f"{w} needs peft >= {v}" for w, v in late) + f" (installed: peft {installed})"


def check_available(hp: Mapping[str, Any]) -> None:
    """Raise MethodUnavailable naming the release if the installed PEFT predates what `hp` asks for."""
    reason = skip_reason(hp)
    if reason:
        raise MethodUnavailable(f"skipped: {reason}")
