"""Validate data before training, with messages that name the file (or split), the line and the column.

Why: a bad row otherwise surfaces deep inside Arrow's JSON reader or in the middle of a training job as
a shape or index error; a check that runs first and says "train.jsonl, line 37: column 'label' value 3
is out of range; allowed: 0=negative, 1=positive" costs milliseconds and saves a debugging session.

The checks are driven by a ``datasets.Features`` object, so the NLG tasks can use them with their own
schemas. Supported feature types: ``Value`` (string, integer, float, bool), ``ClassLabel`` and lists /
``Sequence`` / ``List`` of those; other feature types are accepted without a type check.

Every problem raises :class:`DataError`, a ``ValueError``; up to :data:`MAX_REPORTED` problems of a
file are listed in one message so a user can fix several at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

MAX_REPORTED = 5


class DataError(ValueError):
    """Data that cannot be used: unreachable, malformed, or not in the declared schema."""


def _kind(feature: Any) -> str:
    """A short name of what a feature accepts: 'string', 'int', 'float', 'bool', 'class', 'list', 'any'."""
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return "class"
    if isinstance(feature, datasets.Value):
        dtype = feature.dtype
        if dtype in ("string", "large_string"):
            return "string"
        if dtype == "bool":
            return "bool"
        if dtype.startswith(("int", "uint")):
            return "int"
        if dtype.startswith("float") or dtype == "double":
            return "float"
        return "any"
    if isinstance(feature, list) or type(feature).__name__ in ("Sequence", "List", "LargeList"):
        return "list"
    return "any"


def _inner(feature: Any) -> Any:
    if isinstance(feature, list):
        return feature[0] if feature else None
    return getattr(feature, "feature", None)


def _allowed(feature: datasets.ClassLabel) -> str:
    return ", ".join(f"{i}={name}" for i, name in enumerate(feature.names))


def _check_value(
    value: Any, feature: Any, column: str, value_range: tuple[float, float] | None
) -> str | None:
    """None if `value` fits `feature`; else the problem, phrased for the message."""
    kind = _kind(feature)
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if kind == "string":
        if not isinstance(value, str):
            return f"column '{column}' has a value of type {type(value).__name__} ({shown}), expected string"
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"column '{column}' has a value of type {type(value).__name__} ({shown}), expected bool"
    elif kind in ("int", "class"):
        if isinstance(value, bool) or not isinstance(value, int):
            expected = "int (class id)" if kind == "class" else "int"
            return (
                f"column '{column}' has a value of type {type(value).__name__} ({shown}), expected {expected}"
            )
        if kind == "class" and not 0 <= value < feature.num_classes:
            return f"column '{column}' value {value} is out of range; allowed: {_allowed(feature)}"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"column '{column}' has a value of type {type(value).__name__} ({shown}), expected float"
        if not math.isfinite(value):
            return f"column '{column}' value {value} is not finite"
    elif kind == "list":
        if not isinstance(value, list):
            return f"column '{column}' has a value of type {type(value).__name__} ({shown}), expected list"
        inner = _inner(feature)
        for item in value:
            problem = _check_value(item, inner, column, None) if inner is not None else None
            if problem:
                return problem + " (in a list)"
    if value_range is not None and kind in ("int", "float") and not value_range[0] <= value <= value_range[1]:
        return (
            f"column '{column}' value {value} is out of range; allowed: {value_range[0]} to {value_range[1]}"
        )
    return None


def check_jsonl_file(
    path: str | Path,
    features: datasets.Features,
    *,
    split: str | None = None,
    value_ranges: Mapping[str, tuple[float, float]] | None = None,
    allow_extra_columns: bool = False,
) -> int:
    """Check a JSON Lines data file against `features`; return its number of rows.

    Problems reported (each names the file, and the 1-based line, which is the row, or the column):
    unreadable file, malformed JSON, a line that is not an object, a missing or unexpected column, a
    value of the wrong type, a class id or float out of range (`value_ranges`: inclusive bounds per
    column), an empty split. Blank lines are skipped, as the JSON reader of ``datasets`` does.
    """
    path = Path(path)
    ranges = dict(value_ranges or {})
    where = f"{path}" + (f" (split '{split}')" if split else "")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{where}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    columns = list(features)
    problems: list[str] = []
    n_problems = 0
    rows = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rows += 1
        found: list[str] = []
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            found.append(f"malformed JSON ({exc.msg} at column {exc.colno})")
        else:
            if not isinstance(record, dict):
                found.append(f"expected a JSON object, got {type(record).__name__}")
            else:
                for col in columns:
                    if col not in record:
                        found.append(f"missing column '{col}' (expected columns: {', '.join(columns)})")
                    else:
                        problem = _check_value(record[col], features[col], col, ranges.get(col))
                        if problem:
                            found.append(problem)
                if not allow_extra_columns:
                    for col in record:
                        if col not in features:
                            found.append(
                                f"unexpected column '{col}' (expected columns: {', '.join(columns)})"
                            )
        n_problems += len(found)
        problems.extend(f"{where}, line {lineno}: {p}" for p in found[: MAX_REPORTED - len(problems)])
    if problems:
        more = f"\n... and {n_problems - len(problems)} more problem(s)" if n_problems > len(problems) else ""
        raise DataError("\n".join(problems) + more)
    if rows == 0:
        raise DataError(f"{where}: empty split (the file has no rows)")
    return rows


def check_dataset_dict(
    dd: datasets.DatasetDict,
    features: datasets.Features,
    *,
    value_ranges: Mapping[str, tuple[float, float]] | None = None,
    source: str = "dataset",
) -> None:
    """Check loaded splits (e.g. from the hub) against `features`, naming the split, column and row.

    Column types are compared on the schema (one check per column, not per row); class ids and float
    ranges are checked on the values, and the first offending row is named.
    """
    import numpy as np

    ranges = dict(value_ranges or {})
    for split, ds in dd.items():
        where = f"{source} split '{split}'"
        if len(ds) == 0:
            raise DataError(f"{where}: empty split (no rows)")
        for col in features:
            if col not in ds.column_names:
                raise DataError(f"{where}: missing column '{col}' (it has: {', '.join(ds.column_names)})")
            if ds.features[col] != features[col]:
                raise DataError(
                    f"{where}: column '{col}' has type {ds.features[col]}, expected {features[col]}"
                )
        extra = [c for c in ds.column_names if c not in features]
        if extra:
            raise DataError(f"{where}: unexpected column(s) {extra} (expected: {', '.join(features)})")
        for col, feature in features.items():
            kind = _kind(feature)
            if kind not in ("class", "int", "float"):
                continue
            values = np.asarray(ds.data.column(col).to_numpy(zero_copy_only=False), dtype=np.float64)
            bad = ~np.isfinite(values)
            allowed = ""
            if kind == "class":
                bad |= (values < 0) | (values >= feature.num_classes)
                allowed = _allowed(feature)
            if col in ranges:
                lo, hi = ranges[col]
                bad |= (values < lo) | (values > hi)
                allowed = f"{lo} to {hi}"
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                value = values[i]
                shown = int(value) if kind == "class" and math.isfinite(value) else value
                raise DataError(
                    f"{where}, row {i}: column '{col}' value {shown} is out of range; allowed: "
                    f"{allowed or 'finite numbers'} ({int(bad.sum())} bad row(s) in all)"
                )
