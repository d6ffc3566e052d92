"""Plumbing shared by the NLG tasks: task facts, hub loading with a clear offline error, reference
grouping, and atomic, fingerprinted JSON Lines files for the embedded proxies.

Why here and not in ``base.py``: the NLG tasks were written in parallel with the GLUE ones; the lead
will fold `NLGTaskInfo` into the shared task record. Until then this module imports nothing from the
other task files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Literal

from ..atomic import atomic_write_text

Kind = Literal["gpt2", "bart"]
Profile = Literal["embedded", "paper"]

# Revision of the hub's automatic Parquet export. `datasets` >= 4 no longer runs loading scripts, and
# web_nlg, xsum and e2e_nlg are script datasets on their main branch; their Parquet export is loadable.
PARQUET_REVISION = "refs/convert/parquet"


@dataclass(frozen=True)
class NLGTaskInfo:
    """Facts about one NLG task that the runner, generation and scoring need.

    kind: which embedded/paper model family the protocol uses ("gpt2" causal LM or "bart" seq2seq).
    splits: the split names of the real dataset (and of the proxy, which copies them).
    eval_split: the split scored in the paper tables; valid_split: the one used for model selection.
    gen: beam-search settings of the reference protocol (LoRA Table 11 / AdaLoRA XSum script).
    metrics: metric names the paper tables report for this task.
    """

    name: str
    hub_id: str
    hub_config: str | None
    hub_revision: str | None
    kind: Kind
    paper_model: str
    splits: tuple[str, ...]
    train_split: str
    valid_split: str
    eval_split: str
    gen: Mapping[str, Any]
    metrics: tuple[str, ...]
    max_source_tokens: int
    max_target_tokens: int
    notes: str = ""


@dataclass
class RefGroup:
    """One evaluation input with ALL its references (E2E/WebNLG are scored multi-reference).

    source: the linearised model input (what `generate` receives).
    references: every reference text for this input, in data order.
    meta: task-specific facts (E2E: the raw MR; WebNLG: category, seen/unseen, eid; XSum: id).
    """

    source: str
    references: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


class DatasetUnavailableError(RuntimeError):
    """Raised when a real dataset cannot be loaded (typically: no network and no cached copy)."""


def _offline_flags() -> list[str]:
    return [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(v, "") not in ("", "0")]


def load_hub_dataset(
    dataset_id: str,
    config: str | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    loader: Callable[..., Any] | None = None,
) -> Any:
    """`datasets.load_dataset` with an error that says what is missing and why.

    Offline, `datasets` raises a generic connection or "couldn't find" error deep in the hub client;
    in this suite that nearly always means "this machine has no network: use the embedded profile",
    so we say exactly that and name the dataset id, config and revision.
    """
    if loader is None:
        import datasets

        loader = datasets.load_dataset
    try:
        return loader(dataset_id, config, revision=revision, cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 - re-raised with context below
        flags = _offline_flags()
        why = (
            f"offline mode is set ({', '.join(flags)}=1)"
            if flags
            else "the machine appears to be offline or the hub is unreachable"
        )
        raise DatasetUnavailableError(
            f"cannot load dataset {dataset_id!r} (config={config!r}, revision={revision!r}) from the "
            f"Hugging Face hub: {why}, and no cached copy was found. The 'paper' profile needs network "
            f"access (or a pre-populated HF cache); use the 'embedded' profile, which generates a proxy "
            f"with the same schema, on an offline machine. Underlying error: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def rename_split(dsd: Any, old: str, new: str) -> Any:
    """Rename one split of a DatasetDict if present (the Parquet export names WebNLG's "dev" split
    "validation"; we keep the script's names)."""
    if old in dsd and new not in dsd:
        dsd[new] = dsd.pop(old)
    return dsd


# ---------------------------------------------------------------------------------------------------
# Proxy files: JSON Lines, written atomically, reused only when the manifest fingerprint matches.
# ---------------------------------------------------------------------------------------------------
MANIFEST = "manifest.json"


def fingerprint(generator: str, version: int, params: Any) -> str:
    """Hash of what determines a proxy's content: generator name, its version, and its parameters."""
    if is_dataclass(params) and not isinstance(params, type):
        params = asdict(params)
    blob = json.dumps(
        {"generator": generator, "version": version, "params": params}, sort_keys=True, default=list
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def manifest_is_current(out_dir: Path, fp: str) -> bool:
    """True when the manifest exists, its fingerprint matches, and every file it lists is intact."""
    man = read_manifest(out_dir)
    if not man or man.get("fingerprint") != fp:
        return False
    for info in man.get("files", {}).values():
        p = out_dir / info["path"]
        if not p.is_file() or _sha256(p) != info["sha256"]:
            return False
    return True


def write_jsonl_splits(
    out_dir: Path,
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    generator: str,
    version: int,
    params: Any,
) -> dict[str, Path]:
    """Write one ``<split>.jsonl`` per split, then the manifest last (its presence marks completion)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    paths: dict[str, Path] = {}
    for split, rows in splits.items():
        p = out_dir / f"{split}.jsonl"
        atomic_write_text(p, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))
        files[split] = {"path": p.name, "rows": len(rows), "sha256": _sha256(p)}
        paths[split] = p
    if is_dataclass(params) and not isinstance(params, type):
        params = asdict(params)
    manifest = {
        "generator": generator,
        "version": version,
        "params": params,
        "fingerprint": fingerprint(generator, version, params),
        "files": files,
    }
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=list) + "\n")
    return paths


def ensure_jsonl_splits(
    out_dir: str | os.PathLike[str],
    *,
    generator: str,
    version: int,
    params: Any,
    build: Callable[[], Mapping[str, Sequence[Mapping[str, Any]]]],
) -> dict[str, Path]:
    """Reuse the files in `out_dir` if their manifest matches (generator, version, params); else build."""
    out = Path(out_dir)
    fp = fingerprint(generator, version, params)
    if manifest_is_current(out, fp):
        man = read_manifest(out) or {}
        return {s: out / info["path"] for s, info in man["files"].items()}
    return write_jsonl_splits(out, build(), generator=generator, version=version, params=params)


def load_jsonl_splits(paths: Mapping[str, Path], features: Any, *, cache_dir: str | None = None) -> Any:
    """Load proxy files through the same `datasets` code path as hub data, typed with the real Features."""
    import datasets

    return datasets.load_dataset(
        "json", data_files={k: str(v) for k, v in paths.items()}, features=features, cache_dir=cache_dir
    )


def default_data_root() -> Path:
    """Where NLG proxies go when the caller gives no folder: the shared data folder's ``nlg/``."""
    from .glue import default_data_dir

    return default_data_dir() / "nlg"
