"""The 8 GLUE tasks of the paper: their schema, metrics, and one loader for real data and proxies.

Both profiles return a ``datasets.DatasetDict`` with **the same** features, so everything downstream
(tokenization, training, metrics, collectors) has a single code path:

* ``profile="paper"``: ``datasets.load_dataset("nyu-mll/glue", task)`` from the hub. Test splits are
  dropped (their labels are -1 and are never scored).
* ``profile="default"``: the embedded proxy of :mod:`deltalora.tasks.glue_proxy`, written as JSON Lines
  under ``{data_dir}/glue/{task}/{variant}/{split}.jsonl`` and read back with
  ``datasets.load_dataset("json", ...)``, then cast to the real features.

The features below are copied from the ``dataset_info`` block of the ``nyu-mll/glue`` dataset card
(parquet version): ClassLabel names in id order, ``float32`` label for STS-B, ``int32`` ``idx``.
They cannot be downloaded here, so they are written out explicitly, and the paper path checks that the
hub still serves exactly these (a schema drift raises :class:`DataError`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from deltalora.atomic import atomic_write_bytes
from deltalora.metrics.glue import main_metric, metric_names
from deltalora.tasks import dev_split, glue_proxy
from deltalora.tasks.base import TaskSpec
from deltalora.tasks.data_checks import DataError, check_dataset_dict, check_jsonl_file

if TYPE_CHECKING:
    import datasets

HUB_ID = "nyu-mll/glue"

#: Proxy sizes for the embedded profile: ~64 optimizer steps at batch 16 over 2 epochs, and a
#: validation split large enough for a ~2-point standard error on accuracy.
DEFAULT_N_TRAIN = 512
DEFAULT_N_VAL = 384

_LABELS: dict[str, tuple[str, ...] | None] = {
    "cola": ("unacceptable", "acceptable"),
    "sst2": ("negative", "positive"),
    "mrpc": ("not_equivalent", "equivalent"),
    "qqp": ("not_duplicate", "duplicate"),
    "stsb": None,
    "mnli": ("entailment", "neutral", "contradiction"),
    "qnli": ("entailment", "not_entailment"),
    "rte": ("entailment", "not_entailment"),
}
_COLUMNS: dict[str, tuple[str, ...]] = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
}
_DESCRIPTION: dict[str, str] = {
    "cola": "grammatical acceptability (Matthews correlation)",
    "sst2": "binary sentiment of a movie-review sentence",
    "mrpc": "are two news sentences paraphrases",
    "qqp": "are two questions duplicates",
    "stsb": "graded semantic similarity 0-5 (Pearson correlation)",
    "mnli": "3-way entailment; validation_matched scored, validation_mismatched recorded",
    "qnli": "does the sentence contain the answer to the question",
    "rte": "2-way entailment",
}


def _spec(task: str) -> TaskSpec:
    cols = _COLUMNS[task]
    return TaskSpec(
        name=task,
        family="glue",
        hub_id=HUB_ID,
        hub_config=task,
        input_columns=cols,
        label_names=_LABELS[task],
        label_range=(0.0, 5.0) if task == "stsb" else None,
        metric_name=main_metric(task),
        extra_metrics=metric_names(task)[1:],
        eval_split="validation_matched" if task == "mnli" else "validation",
        extra_eval_splits=("validation_mismatched",) if task == "mnli" else (),
        max_length=32 if len(cols) == 1 else 64,
        description=_DESCRIPTION[task],
    )


#: The registry, in the column order of the paper's GLUE table.
GLUE_TASKS: dict[str, TaskSpec] = {
    t: _spec(t) for t in ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")
}


def get_glue_task(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of a GLUE task; a clear error for an unknown name."""
    try:
        return GLUE_TASKS[task.lower()]
    except KeyError:
        raise ValueError(f"unknown GLUE task {task!r}; known: {', '.join(GLUE_TASKS)}") from None


def glue_features(task: str) -> datasets.Features:
    """The ``datasets.Features`` of the real ``nyu-mll/glue`` config `task` (dataset card, parquet)."""
    import datasets

    spec = get_glue_task(task)
    feats: dict[str, datasets.Value | datasets.ClassLabel] = {
        c: datasets.Value("string") for c in spec.input_columns
    }
    if spec.label_names is None:
        feats["label"] = datasets.Value("float32")
    else:
        feats["label"] = datasets.ClassLabel(names=list(spec.label_names))
    feats["idx"] = datasets.Value("int32")
    return datasets.Features(feats)


# ---------------------------------------------------------------------------------------------------
# Embedded proxies on disk
# ---------------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """``$DELTALORA_DATA_DIR``, else ``$XDG_CACHE_HOME/deltalora/data`` (``~/.cache/...``)."""
    env = os.environ.get("DELTALORA_DATA_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "deltalora" / "data"


def proxy_dir(
    task: str,
    data_dir: str | Path,
    *,
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    seed: int = 0,
) -> Path:
    """Folder of one proxy variant: ``{data_dir}/glue/{task}/seed{seed}-train{n_train}-val{n_val}``.

    The parameters are part of the path so that two jobs asking for different sizes can never
    overwrite each other's files.
    """
    get_glue_task(task)
    return Path(data_dir) / "glue" / task / f"seed{seed}-train{n_train}-val{n_val}"


def _serialize(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in rows).encode("utf-8")


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def write_glue_proxy(
    task: str,
    data_dir: str | Path,
    *,
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    seed: int = 0,
) -> dict[str, Path]:
    """Generate a proxy and make sure its files are on disk; return ``{split: path}``.

    Idempotent and safe when several processes do it at once: the rows are generated in memory (a few
    milliseconds), and a file is rewritten only when its sha256 differs from that of the fresh content,
    through a temp file and ``os.replace``, so a reader sees either the old complete file or the new
    one. Because the fingerprint is taken from freshly generated content, a generator change without a
    version bump can never leave stale files in use. ``manifest.json`` records generator version,
    parameters and per-file sha256 for provenance.
    """
    get_glue_task(task)
    if n_train < 1 or n_val < 1:
        raise ValueError(f"{task}: n_train and n_val must be >= 1 (got {n_train}, {n_val})")
    folder = proxy_dir(task, data_dir, n_train=n_train, n_val=n_val, seed=seed)
    paths: dict[str, Path] = {}
    digests: dict[str, str] = {}
    for split, rows in glue_proxy.generate_task(task, n_train, n_val, seed).items():
        data = _serialize(rows)
        digest = hashlib.sha256(data).hexdigest()
        path = folder / f"{split}.jsonl"
        if _sha256_file(path) != digest:
            atomic_write_bytes(path, data)
        paths[split] = path
        digests[split] = digest
    manifest = {
        "generator": "deltalora.tasks.glue_proxy",
        "generator_version": glue_proxy.GENERATOR_VERSION,
        "task": task,
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "files": {s: {"path": p.name, "sha256": digests[s]} for s, p in paths.items()},
    }
    mdata = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    mpath = folder / "manifest.json"
    if _sha256_file(mpath) != hashlib.sha256(mdata).hexdigest():
        atomic_write_bytes(mpath, mdata)
    return paths


def load_glue_files(task: str, files: dict[str, str | Path]) -> datasets.DatasetDict:
    """Validate JSON Lines files of one GLUE task and load them with the real GLUE features.

    Also the entry point for user-supplied data in GLUE format: every file is checked first
    (:func:`deltalora.tasks.data_checks.check_jsonl_file`), so a bad row fails with the file and line
    instead of an Arrow traceback.
    """
    import datasets

    spec = get_glue_task(task)
    features = glue_features(task)
    for split, path in files.items():
        check_jsonl_file(path, features, split=split, value_ranges=_value_ranges(spec))
    dd = datasets.load_dataset("json", data_files={s: str(p) for s, p in files.items()}, features=features)
    return dd


def _value_ranges(spec: TaskSpec) -> dict[str, tuple[float, float]]:
    return {spec.label_column: spec.label_range} if spec.label_range else {}


# ---------------------------------------------------------------------------------------------------
# The loader
# ---------------------------------------------------------------------------------------------------


def _subsample(
    dd: datasets.DatasetDict, spec: TaskSpec, n_train: int | None, n_val: int | None, seed: int
) -> datasets.DatasetDict:
    import datasets

    out = {}
    for split, ds in dd.items():
        n = n_train if split == spec.train_split else n_val
        if n is not None and n < len(ds):
            ds = ds.shuffle(seed=seed).select(range(n))
        out[split] = ds
    return datasets.DatasetDict(out)


def _load_hub(spec: TaskSpec) -> datasets.DatasetDict:
    import datasets

    try:
        dd = datasets.load_dataset(HUB_ID, spec.hub_config)
    except Exception as exc:  # network, auth, missing cache: all mean "cannot get the real data here"
        raise DataError(
            f"could not load GLUE task {spec.name!r} from the hub ({HUB_ID}, config {spec.hub_config!r}): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "The 'paper' profile needs network access to the Hugging Face hub or a pre-filled HF_HOME cache; "
            "this machine may be offline. Use profile 'default' for the embedded proxies."
        ) from None
    missing = [s for s in spec.splits if s not in dd]
    if missing:
        raise DataError(f"{HUB_ID}/{spec.name}: the hub dataset has no split(s) {missing}; it has {list(dd)}")
    return datasets.DatasetDict({s: dd[s] for s in spec.splits})


def load_glue(
    task: str,
    *,
    profile: str,
    data_dir: str | Path | None = None,
    n_train: int | None = None,
    n_val: int | None = None,
    seed: int = 0,
    dev_size: float = 0,
    dev_max: int = 0,
) -> datasets.DatasetDict:
    """Train and validation splits of a GLUE task, with the real GLUE features, validated.

    task: one of ``cola sst2 mrpc qqp stsb mnli qnli rte``.
    profile: ``"paper"`` (hub, ``nyu-mll/glue``) or ``"default"`` (embedded proxy).
    data_dir: where proxies are written (default :func:`default_data_dir`); unused for ``paper``.
    n_train / n_val: sizes. For proxies, the generated sizes (default 512 / 384 per validation split).
        For real data, an optional seeded subsample (``None`` keeps the full split).
    seed: the *data* seed: generator seed for proxies, subsample seed for real data. Keep it fixed
        across training seeds, as the paper trains every seed on the same data.

    dev_size / dev_max: the ``dev`` split carved from train for selection (count if >= 1, fraction if
        < 1, 0: none; capped by dev_max): see :mod:`deltalora.tasks.dev_split`.

    Returns splits ``train`` and ``validation`` (MNLI: ``validation_matched`` and
    ``validation_mismatched``), plus ``dev`` when asked; see :attr:`TaskSpec.eval_split`.
    Raises :class:`DataError` (a ``ValueError``) for unreachable or malformed data.
    """
    spec = get_glue_task(task)
    if profile == "paper":
        dd = _load_hub(spec)
        n_dev = dev_split.dev_count(len(dd[spec.train_split]), dev_size, dev_max)
        if n_dev:  # before the subsample, so that no n_train ever reaches into dev
            dd = dev_split.carve_random(dd, n_dev, seed, train_split=spec.train_split)
        dd = _subsample(dd, spec, n_train, n_val, seed)
        check_dataset_dict(
            dd, glue_features(spec.name), value_ranges=_value_ranges(spec), source=f"{HUB_ID}/{spec.name}"
        )
        return dd
    if profile == "default":
        n_train = n_train if n_train is not None else DEFAULT_N_TRAIN
        n_dev = (
            dev_split.dev_count(n_train, dev_size, dev_max)
            if dev_size >= 1
            else dev_split.dev_count(round(n_train / (1 - dev_size)), dev_size, dev_max)
        )
        files = write_glue_proxy(
            spec.name,
            data_dir if data_dir is not None else default_data_dir(),
            n_train=n_train + n_dev,  # the generator is prefix-stable: the first n_train rows are unchanged
            n_val=n_val if n_val is not None else DEFAULT_N_VAL,
            seed=seed,
        )
        dd = load_glue_files(spec.name, files)
        return dev_split.carve_tail(dd, n_dev, train_split=spec.train_split) if n_dev else dd
    raise ValueError(f"unknown profile {profile!r}: use 'default' (embedded proxies) or 'paper' (hub data)")
