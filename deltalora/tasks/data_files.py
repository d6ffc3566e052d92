"""The proxies' word lists and templates: JSON files in ``deltalora/tasks/data/``, read as tuples.

Why tuples: the generators were written for immutable pools (they hash, and no caller can change a
shared pool by accident). One reader serves the GLUE and the text-generation proxies alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).with_name("data")


def _tuples(obj: Any) -> Any:
    """Lists -> tuples, recursively."""
    if isinstance(obj, list):
        return tuple(_tuples(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _tuples(v) for k, v in obj.items()}
    return obj


def load_data(name: str) -> dict[str, Any]:
    """``deltalora/tasks/data/<name>``, JSON lists read back as tuples."""
    return _tuples(json.loads((DATA_DIR / name).read_text(encoding="utf-8")))


__all__ = ["DATA_DIR", "load_data"]
