"""Start a run from another run's trained state: the LoRA protocol's "MNLI initialisation".

The LoRA protocol for RoBERTa GLUE (docs/sources.md §6.2; RoBERTa's own fine-tuning did the same) starts MRPC,
RTE and STS-B from the MNLI-trained model rather than from the pretrained one. What "the trained
model" is depends on the method, so a saved init state has two parts:

* ``base_weights.safetensors``: weights of the *base* model that training changed, under the raw
  (un-wrapped) model's parameter names. Full fine-tuning: every weight. Delta-LoRA: the W_T of each
  adapted layer (both engines; the folded engine's W_T is W_0 plus its folded update). LoRA-family
  methods: none. They are loaded into the raw model **before** the method wraps it, so the next run's
  W_0 (and its update-rank analysis) starts from them.
* ``adapter_model.safetensors``: the adapter state (every trained tensor outside the head, under the
  wrapped model's names: A, B, DoRA magnitudes, AdaLoRA's E, ...), loaded after the method wraps the
  model. Names and shapes are checked, so another rank or model is refused by name.

The task head (``classifier``/``score``) is never carried over: MNLI has 3 classes, RTE 2 and STS-B is
a regression. The saved state is the **final** one of the source run (the protocol says "best"; for
MNLI's long runs the two are close, and the source record says which epoch was best).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

BASE_FILE = "base_weights.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
META_FILE = "init_state.json"
INIT_DIR = "init_state"


def _in_head(name: str, head: tuple[str, ...]) -> bool:
    return any(part in head for part in name.split("."))


def _raw_name(peft_name: str) -> str:
    """'base_model.model.bert.x.query.base_layer.weight' -> 'bert.x.query.weight'."""
    name = peft_name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".")


def save_init_state(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    method: str,
    task: str,
    head: tuple[str, ...],
    delta_lora: Any = None,
) -> Path:
    """Write the state a later run can start from (see the module docstring); atomic (temp dir, rename)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    base: dict[str, torch.Tensor] = {}
    adapter: dict[str, torch.Tensor] = {}
    if hasattr(
        model, "peft_config"
    ):  # the adapter: every trained tensor outside the head, under PEFT's names
        adapter = {
            k: p.detach().cpu().contiguous()
            for k, p in model.named_parameters()
            if p.requires_grad and not _in_head(k, head)
        }
        if delta_lora is not None:
            for slot, (name, update) in zip(delta_lora.slots, delta_lora.iter_weight_updates(), strict=True):
                w = slot.weight.detach()
                if delta_lora.engine == "folded":  # W is never written: W_T = W_0 + the folded update
                    w = (w.to(update.dtype) + update).to(w.dtype)
                base[_raw_name(name) + ".weight"] = w.cpu().contiguous()
    else:  # full fine-tuning: the whole model is the trained state
        base = {
            k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not _in_head(k, head)
        }
    if base:
        save_file(base, str(tmp / BASE_FILE))
    if adapter:
        save_file(adapter, str(tmp / ADAPTER_FILE))
    (tmp / META_FILE).write_text(
        json.dumps(
            {"method": method, "task": task, "base_tensors": len(base), "adapter_tensors": len(adapter)},
            indent=1,
        )
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def read_meta(path: str | os.PathLike, *, method: str) -> dict[str, Any]:
    """The source run's metadata; refuses a missing state or one saved by another method."""
    path = Path(path)
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise ValueError(
            f"train.init_from: {meta_file} does not exist (the source run must set train.save_init=true "
            "and have finished)"
        )
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"train.init_from: {meta_file} is not valid JSON ({e})") from None
    if meta.get("method") != method:
        raise ValueError(
            f"train.init_from: {path} holds a {meta.get('method')!r} run's state; this run's method is "
            f"{method!r} (start a method from its own source run)"
        )
    return meta


def _load_into(model: nn.Module, tensors: dict[str, torch.Tensor], file: Path) -> None:
    own = model.state_dict()
    for key, value in tensors.items():
        if key not in own:
            raise ValueError(
                f"train.init_from: {file} has tensor {key!r}, which this model does not have "
                "(another model or target_modules?)"
            )
        if own[key].shape != value.shape:
            raise ValueError(
                f"train.init_from: {file} tensor {key!r} has shape {tuple(value.shape)}; this model's "
                f"is {tuple(own[key].shape)} (another rank or model?)"
            )
    with torch.no_grad():
        for key, value in tensors.items():
            own[key].copy_(value.to(own[key].device, own[key].dtype))


def load_base_weights(model: nn.Module, path: str | os.PathLike) -> int:
    """Before the method wraps the model: copy the source run's changed base weights in. Returns the count."""
    from safetensors.torch import load_file

    file = Path(path) / BASE_FILE
    if not file.is_file():
        return 0
    tensors = load_file(str(file))
    _load_into(model, tensors, file)
    return len(tensors)


def load_adapter_state(model: nn.Module, path: str | os.PathLike) -> int:
    """After the method wraps the model: copy the source run's adapter state in. Returns the count."""
    from safetensors.torch import load_file

    file = Path(path) / ADAPTER_FILE
    if not file.is_file():
        return 0
    if not hasattr(model, "peft_config"):
        raise ValueError(f"train.init_from: {file} holds an adapter, but this run's model has none")
    tensors = load_file(str(file))
    _load_into(model, tensors, file)
    return len(tensors)
