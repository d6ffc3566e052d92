"""Run records: one JSON file per run, written atomically and last, with full provenance.

A record is the only thing collectors read. It is written by `os.replace` of a complete temporary
file after everything else of the run is done, so a crashed or killed run never leaves a file a
collector could mistake for a result. `read_record` refuses anything truncated, malformed,
incomplete or of another schema version, naming the file.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text

SCHEMA_VERSION = 1
RECORD_NAME = "record.json"

REQUIRED_KEYS = (
    "schema_version",
    "status",
    "task",
    "task_family",
    "model",
    "method",
    "seed",
    "profile",
    "config",
    "metric",
    "epochs",
    "best",
    "final",
    "params",
    "provenance",
)
REQUIRED_PROVENANCE = (
    "versions",
    "git_commit",
    "device",
    "wall_time_s",
    "peak_memory_bytes",
    "peak_memory_method",
)


# Every field a record can hold: (key, when present, meaning). docs/run_record.md's field table is generated
# from these (python -m deltalora.docs_gen) and tests/test_docs.py compares them with a real record, so the
# documentation cannot drift from what `deltalora train` writes.
RECORD_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("schema_version", "always", f"`{SCHEMA_VERSION}`"),
    ("status", "always", '`"complete"`'),
    ("task", "always", "`glue/rte` ... / `e2e`, `webnlg`, `xsum`"),
    ("task_family", "always", "`glue` or `nlg`"),
    ("model", "always", "hub id, `embedded:<name>` or a local directory, as given"),
    ("method", "always", "the registered method"),
    ("row", "always", "the table row the run belongs to (`lora_nodrop`, `delta_lora_inplace`, ...)"),
    ("seed", "always", "training seed"),
    ("profile", "always", "`default` (embedded) or `paper`"),
    (
        "smoke",
        "always",
        "true for a smoke run: `train.smoke`, or a run that loaded a stand-in of `deltalora mirror` "
        "([paper_smoke.md](paper_smoke.md)); tables and the audit never mix such records with real ones",
    ),
    (
        "stand_in",
        "always",
        "null, or what was a stand-in of `deltalora mirror`: `model` (its hub id), `data_splits`, `note`",
    ),
    (
        "precision",
        "always",
        "`requested` (`train.precision`), `used` (what ran: `fp32`, `bf16`, `fp16`), `device` (`cpu`/`cuda`)",
    ),
    (
        "config",
        "always",
        "the complete resolved configuration (profile + `--config` + `--set`): `train`, `data`, `hp` "
        "(method hyper-parameters), `generation`, `model_options`, `analysis`",
    ),
    (
        "metric",
        "always",
        "the key the tables report (`accuracy`, `matthews_correlation`, `pearson`, `bleu`, `bleu_all`, "
        "`rouge2`)",
    ),
    (
        "epochs",
        "always",
        "per-epoch evaluation: `{epoch, step, metrics, extra_splits}` (GLUE: every metric on the scored "
        "split; the dev split and MNLI's mismatched split under `extra_splits`; NLG: validation loss per "
        "epoch and the generation metrics at the final state)",
    ),
    ("best", "always", "the selected epoch (highest `metric` on the split `selected_on` names)"),
    (
        "selected_on",
        "always",
        "`dev` when the run has a dev split carved from train (docs/dev_split.md), else `validation`",
    ),
    ("final", "always", "the last epoch"),
    ("train_curve", "always", "training loss at every logging step: `{step, epoch, loss}`"),
    ("train_summary", "always", "the Trainer's `train_runtime`, `train_loss`, ..."),
    ("steps", "always", "optimizer steps taken"),
    (
        "params",
        "always",
        "`total`, `trainable`, `extra_updated` (W entries Delta-LoRA updates without gradients)",
    ),
    (
        "delta_lora",
        "always (null unless Delta-LoRA)",
        "`steps_counted`, `switched`, `engine`, `update_ratio`, `start_step`, `extra_updated_params`",
    ),
    (
        "loss",
        "always",
        "how the training loss was computed: `label_smoothing` (epsilon), `smoothing` (`in model`: a causal "
        "LM's own loss function; `trainer`: transformers' `LabelSmoother`), `label_only_logits` (the LM head "
        "ran at labelled positions only; deltalora/lm_loss.py)",
    ),
    (
        "analysis",
        "always (empty unless asked)",
        "`update_rank` (with `analysis.update_rank=true`: per adapted layer, singular values and numerical "
        "ranks of W_T - W_0 and of the layer's whole change; `two_r`; for the inplace engine "
        "`telescoping_rel_err`) and `grad_cosine` (with `analysis.grad_cosine_steps=[...]`: "
        "`{step: {layer: cos(dL/dW, dL/d(BA))}}`)",
    ),
    ("majority_baseline", "GLUE", "the validation score of always predicting the training set's majority"),
    (
        "dev_split",
        "GLUE with `data.dev_size` > 0",
        "`n` and `sha256` of the dev examples selection was made on",
    ),
    (
        "generation",
        "NLG",
        "`decoding` settings, `n_eval` scored inputs, `file` (`generations.jsonl` beside the record, every "
        "text), three `samples`",
    ),
    ("provenance", "always", "where and how the run ran: the fields below"),
)
PROVENANCE_FIELDS: tuple[tuple[str, str, str], ...] = (
    (
        "versions",
        "always",
        "python, torch, transformers, peft, datasets, accelerate, numpy, deltalora (null if not installed)",
    ),
    ("git_commit", "always", "the checkout's commit (null outside git)"),
    ("git_dirty", "always", "true if the checkout had uncommitted changes"),
    ("device", "always", "the device fields below"),
    ("command", "always", "the command line"),
    ("started_at", "always", "local start time, ISO 8601"),
    ("wall_time_s", "always", "seconds from start to record"),
    ("peak_memory_bytes", "always", "GPU: `torch.cuda.max_memory_allocated`; CPU: the process's peak RSS"),
    ("peak_memory_method", "always", "which of the two"),
    ("rss_at_start_bytes", "CPU", "resident set size when the run started"),
    (
        "process_run_index",
        "CPU",
        "0 for the first run of its process, whose peak RSS is its own; later runs share the process peak",
    ),
    (
        "resumed_from",
        "always",
        '`{"checkpoint": "trainer/checkpoint-8", "step": 8}`, or null (trained from the start)',
    ),
)
DEVICE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("platform", "always", "`platform.platform()`"),
    ("hostname", "always", "the machine's host name"),
    ("cpu_count", "always", "`os.cpu_count()`"),
    ("torch_threads", "always", "`torch.get_num_threads()`"),
    ("type", "always", "`cpu` or `cuda`"),
    ("name", "always", "the CPU model, or the GPU's name"),
    ("cuda_visible_devices", "CUDA", "`CUDA_VISIBLE_DEVICES`"),
)


def field_table() -> str:
    """docs/run_record.md's field table, from RECORD_FIELDS, PROVENANCE_FIELDS and DEVICE_FIELDS."""
    lines = ["| key | present | meaning |", "|---|---|---|"]
    for prefix, fields in (
        ("", RECORD_FIELDS),
        ("provenance.", PROVENANCE_FIELDS),
        ("provenance.device.", DEVICE_FIELDS),
    ):
        lines += [f"| `{prefix}{key}` | {when} | {meaning} |" for key, when, meaning in fields]
    return "\n".join(lines) + "\n"


class RecordError(ValueError):
    """A run record is missing, truncated, malformed or incomplete."""


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically (:mod:`deltalora.atomic`)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def git_commit() -> dict[str, Any]:
    """The commit of the deltalora source tree in use (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "deltalora"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "datasets", "accelerate", "numpy", "deltalora"):
        try:
            from importlib.metadata import version

            out[name] = version(name)
        except Exception:  # noqa: BLE001 - a missing package is recorded as None
            out[name] = None
    return out


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["type"] = "cuda"
        info["name"] = torch.cuda.get_device_name(0)
        info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    else:
        info["type"] = "cpu"
        info["name"] = _cpu_name()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class PeakMemory:
    """Peak memory of a run.

    GPU: `torch.cuda.max_memory_allocated` after a reset at the start of the run (tensors only).
    CPU: the process's peak resident set size (`getrusage(RUSAGE_SELF).ru_maxrss`), which includes
    the Python interpreter and libraries, and is a high-water mark over the process lifetime: when
    several runs share a process (seeds grouped into one job), a later run reports the max so far.
    The baseline RSS at the start of the run is recorded beside it.
    """

    _runs_in_process = 0  # runs measured before this one in this process (0: a fresh-process peak)

    def __init__(self) -> None:
        import torch

        self.run_index = PeakMemory._runs_in_process
        PeakMemory._runs_in_process += 1
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self.baseline = _current_rss()

    def result(self) -> dict[str, Any]:
        import torch

        if self.cuda:
            return {
                "peak_memory_bytes": int(torch.cuda.max_memory_allocated()),
                "peak_memory_method": "torch.cuda.max_memory_allocated",
            }
        return {
            "peak_memory_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
            "peak_memory_method": "ru_maxrss (process peak RSS, CPU)",
            "rss_at_start_bytes": self.baseline,
            "process_run_index": self.run_index,  # 0: the first run of its process, its own peak
        }


def _current_rss() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def provenance(started: float, peak: PeakMemory) -> dict[str, Any]:
    g = git_commit()
    return {
        "versions": versions(),
        "git_commit": g["commit"],
        "git_dirty": g["dirty"],
        "device": device_info(),
        "command": " ".join(sys.argv),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_time_s": round(time.time() - started, 3),
        **peak.result(),
    }


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check one record; RecordError names the file and what is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise RecordError(f"{path}: cannot read run record ({e.strerror})") from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(
            f"{path}: not a complete JSON run record (truncated or corrupt: {e.msg} at line {e.lineno})"
        ) from None
    if not isinstance(rec, Mapping):
        raise RecordError(f"{path}: a run record must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    if missing:
        raise RecordError(f"{path}: incomplete run record, missing {missing}")
    if rec["schema_version"] != SCHEMA_VERSION:
        raise RecordError(f"{path}: record schema version {rec['schema_version']} is not {SCHEMA_VERSION}")
    if rec["status"] != "complete":
        raise RecordError(f"{path}: run status is {rec['status']!r}, not 'complete'")
    prov = rec["provenance"]
    if not isinstance(prov, Mapping):
        raise RecordError(f"{path}: field 'provenance' is {type(prov).__name__}; expected an object")
    missing = [k for k in REQUIRED_PROVENANCE if k not in prov]
    if missing:
        raise RecordError(f"{path}: provenance lacks {missing}")
    for key, types, allowed in _FIELD_TYPES:
        value = prov[key[len("provenance.") :]] if key.startswith("provenance.") else rec[key]
        if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
            raise RecordError(
                f"{path}: field {key!r} is {type(value).__name__} {value!r:.60}; expected {allowed}"
            )
    for key in ("best", "final"):
        if not isinstance(rec[key], Mapping) or not isinstance(rec[key].get("metrics"), Mapping):
            raise RecordError(f"{path}: record has no {key}-epoch metrics (field {key!r}.metrics)")
        bad = {
            m: v
            for m, v in rec[key]["metrics"].items()
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))
        }
        if bad:
            raise RecordError(
                f"{path}: field {key!r}.metrics has non-numeric values {bad}; expected numbers or null"
            )
    return dict(rec)


# What the collectors and the audit read, with the types they rely on (a hand-edited or foreign record
# is refused here by field name instead of failing deep inside a table).
_FIELD_TYPES: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("task", (str,), "a string"),
    ("task_family", (str,), "a string"),
    ("method", (str,), "a string"),
    ("seed", (int,), "an integer"),
    ("profile", (str,), "a string"),
    ("metric", (str,), "a string"),
    ("config", (Mapping,), "an object"),
    ("epochs", (list,), "a list"),
    ("params", (Mapping,), "an object"),
    ("provenance.wall_time_s", (int, float), "a number"),
    ("provenance.peak_memory_bytes", (int, type(None)), "an integer or null"),
)
