"""Delta-LoRA (Zi et al. 2023, Algorithm 1) on top of PEFT LoRA layers.

Algorithm 1, in PEFT's notation (branch s*B A, s = alpha/r or alpha/sqrt(r) with rsLoRA): A and B
are trained by the optimizer as in LoRA, with no dropout in the branch; t counts optimizer steps that
actually ran, from 0; after step t, if t > K:

    W <- W + lam * s * (B_{t+1} A_{t+1} - B_t A_t)

`DeltaLoRA` attaches to an optimizer through its step hooks, so any loop works unchanged (plain
PyTorch, transformers.Trainer, Lightning). Gradient-accumulation micro-batches never call
`optimizer.step`; a step an AMP grad scaler skips either never calls it (plain, foreach) or is
recognised by the scaler's `found_inf` (fused optimizers skip inside the kernel); neither is counted.

Two engines compute the same function (see docs/design.md §3-§4):

* ``inplace``: Algorithm 1 literally. Before a counted step it copies A and B (r x (in+out) numbers);
  after it, it adds lam*s*(B'A' - BA) to W as one rank-2r product, B'(A'-A) + (B'-B)A, accumulated
  into W by ``addmm_`` (float32 or better; never an out x in temporary when W is float32/64).
* ``folded``: W is never written. Summing the updates telescopes to
  W_t = W_0 + lam*s*(B_t A_t - B_{K+1} A_{K+1}), so one snapshot of the factors at the switch and a
  frozen low-rank term in the forward give the same outputs and the same gradients for every
  parameter (the term passes gradient to the layer input, not to A and B). Works when W is frozen,
  shared, low-precision or quantized, and the trained model exports as a standard rank-2r adapter.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import _sharding
from ._folded import FoldedVariant, folded_extra
from ._runtime import is_main_process, step_was_skipped, unwrap_model, unwrap_optimizer
from ._sharding import refuse_deepspeed
from ._slot import Slot, compute_dtype
from .quantized import refuse_inplace, weight_numel, weight_shape
from .telescoping import stacked_factors

ENGINES = ("inplace", "folded")
STATE_FILE = "deltalora_state.safetensors"
# Key of Delta-LoRA's state inside the optimizer's per-parameter state (of the first adapted lora_A), so
# that a checkpoint of the optimizer carries it: a Trainer resumes from any checkpoint path.
OPTIMIZER_STATE_KEY = "deltalora"
_FULL_PRECISION = (torch.float32, torch.float64)
_STEP_TENSOR = "__step__"

__all__ = [
    "ENGINES",
    "OPTIMIZER_STATE_KEY",
    "STATE_FILE",
    "SUPPORTED_LAYERS",
    "DeltaLoRA",
    "check_export_dir",
    "unwrap_model",
    "unwrap_optimizer",
]


def _lora_layer_classes() -> tuple[type, type | None]:
    from peft.tuners.lora import LoraLayer

    try:
        from peft.tuners.adalora.layer import AdaLoraLayer
    except ImportError:  # pragma: no cover
        AdaLoraLayer = None  # noqa: N806
    return LoraLayer, AdaLoraLayer


def _check_number(name: str, value: Any, *, integer: bool) -> None:
    if integer:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer (optimizer steps); got {value!r}")
    else:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")


class DeltaLoRA:
    """Delta-LoRA attached to a PEFT LoRA model and the optimizer that trains it.

    Args:
        model: a `peft.PeftModel` (or any module holding PEFT LoRA layers) with one active LoRA adapter
            on Linear, GPT-2 Conv1D or bitsandbytes 8-/4-bit targets (other layer kinds are refused by
            class name: docs/compatibility.md), as the user holds it: bare, or wrapped by
            DistributedDataParallel, accelerate or `torch.compile`. Wrappers are looked through, so
            state keys and the exported adapter are the same either way. FSDP2 (`fully_shard`) shards
            are supported (docs/sharding.md); FSDP1 and DeepSpeed (any ZeRO stage) are refused. Every
            check runs before anything is installed.
        optimizer: the optimizer that updates the adapter's A and B (AdamW in the paper; plain,
            foreach or fused, with or without an AMP grad scaler).
        update_ratio: lambda, the paper's update ratio (default 2).
        start_step: K; W changes after step t only when t > K (default 500).
        engine: "folded" (default; W never written) or "inplace" (Algorithm 1 literally; W must be
            float32 or float64).
        allow_dropout: accept lora_dropout > 0 and apply Algorithm 1 as written, with dropout in the
            branch. Dropout breaks dL/dW == dL/d(BA), which is why the paper removes it; the dropout
            ablation needs this switch.
        allow_low_precision: let `engine="inplace"` write a bf16/fp16 W. Each update is accumulated
            in float32 and rounded once into W, but most of a small update is below W's rounding step
            and is lost; `engine="folded"` keeps it exactly. For measuring that loss.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Any,
        *,
        update_ratio: float = 2.0,
        start_step: int = 500,
        engine: str = "folded",
        allow_dropout: bool = False,
        allow_low_precision: bool = False,
    ) -> None:
        _check_number("update_ratio", update_ratio, integer=False)
        _check_number("start_step", start_step, integer=True)
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
        refuse_deepspeed(model, optimizer)
        model = unwrap_model(model)
        if getattr(model, "_deltalora_attached", False):
            raise ValueError(
                "model: a DeltaLoRA is already attached to this model; call .detach() on it first"
            )
        if getattr(model, "_deltalora_detached_term", False):
            raise ValueError(
                "model: it still carries the frozen term of a detached DeltaLoRA (detach() after the "
                "switch keeps "
                "the trained function); call model.merge_and_unload() and wrap the merged model again"
            )
        self.model = model
        self.update_ratio = float(update_ratio)
        self.start_step = int(start_step)
        self.engine = engine
        self.allow_dropout = bool(allow_dropout)
        self.allow_low_precision = bool(allow_low_precision)
        self.step = 0  # optimizer steps that ran
        self.restores = 0  # how many Delta-LoRA states were loaded (the callback checks a resume against it)
        # Every check comes before anything is installed: a refused construction leaves the model as it was.
        self.slots = self._find_slots()
        if self.engine == "inplace":
            refuse_inplace(
                self.slots
            )  # a quantized W cannot hold Algorithm 1's updates (deltalora/core/quantized.py)
            for slot in self.slots:
                self._check_inplace_weight(slot)
        inner = unwrap_optimizer(optimizer)
        self._check_optimizer(inner)
        self.optimizer: torch.optim.Optimizer | None = None
        self._hooks: list[Any] = []
        self._layer_hooks: list[Any] = []
        self._orig_load: Any = None
        self.restored_from_optimizer = False
        if self.engine == "folded" and self.update_ratio != 0.0:
            for slot in self.slots:
                self._install_fold(slot)
        if self.engine == "inplace" and self.update_ratio != 0.0:
            for slot in self.slots:  # disable_adapter() means W_0 for both engines (docs/core.md)
                self._layer_hooks.append(slot.layer.register_forward_hook(_disabled_inplace_hook(slot)))
        self.attach(inner)
        model._deltalora_attached = True

    def attach(self, optimizer: Any) -> None:
        """Hook onto `optimizer` (e.g. a new one after a second `Trainer.train()`), leaving the old one.

        The step counter and snapshots are kept. If the optimizer's state holds a Delta-LoRA state
        (it was loaded from a checkpoint written while a DeltaLoRA was attached), it is restored.
        """
        refuse_deepspeed(None, optimizer)
        optimizer = unwrap_optimizer(optimizer)
        self._check_optimizer(optimizer)
        self._remove_optimizer_hooks()
        self.optimizer = optimizer
        self._hooks = [
            optimizer.register_step_pre_hook(self._pre_step),
            optimizer.register_step_post_hook(self._post_step),
            optimizer.register_state_dict_post_hook(self._optimizer_state_dict_hook),
            optimizer.register_load_state_dict_post_hook(self._optimizer_load_hook),
        ]
        if type(optimizer).load_state_dict is not torch.optim.Optimizer.load_state_dict:
            self._wrap_load_state_dict(optimizer)
        self.restored_from_optimizer = False
        self._optimizer_load_hook(optimizer)

    def _wrap_load_state_dict(self, optimizer: torch.optim.Optimizer) -> None:
        """An optimizer class with its own load_state_dict may skip torch's load hooks (bitsandbytes' do):
        restore the carried state right after it, before the next forward uses the snapshot."""
        original = type(optimizer).load_state_dict

        def load_state_dict(state_dict: dict, *args: Any, **kwargs: Any) -> Any:
            out = original(optimizer, state_dict, *args, **kwargs)
            if optimizer is self.optimizer:
                self.restore_pending()
            return out

        optimizer.load_state_dict = load_state_dict  # an instance attribute: removed again with the hooks
        self._orig_load = optimizer

    def restore_pending(self) -> None:
        """Restore a Delta-LoRA state that the optimizer's load_state_dict left in its state.

        An optimizer whose load_state_dict runs no load hooks (bitsandbytes' 8-bit and paged ones) keeps the
        carried state there; it is restored right after that load (see `_wrap_load_state_dict`), and
        otherwise before the next step and when the callback begins training.
        """
        if self.optimizer is None:
            return
        per_param = self.optimizer.state.get(self.slots[0].A)
        if per_param and OPTIMIZER_STATE_KEY in per_param:
            self._optimizer_load_hook(self.optimizer)

    def _remove_optimizer_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._orig_load is not None:
            self._orig_load.__dict__.pop("load_state_dict", None)
            self._orig_load = None

    # ------------------------------------------------------------------ discovery and checks
    def _find_slots(self) -> list[Slot]:
        LoraLayer, AdaLoraLayer = _lora_layer_classes()  # noqa: N806
        slots: list[Slot] = []
        active: set[str] = set()
        for name, module in self.model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            if AdaLoraLayer is not None and isinstance(module, AdaLoraLayer):
                raise ValueError(f"model: {name} is an AdaLoRA layer; Delta-LoRA needs plain LoRA layers")
            adapters = list(module.active_adapters)
            if len(adapters) > 1:
                raise ValueError(
                    f"model: more than one adapter is active ({adapters}) on {name}; Delta-LoRA needs "
                    "exactly one"
                )
            active.update(adapters)
            if not adapters or adapters[0] not in getattr(module, "r", {}):
                continue
            adapter = adapters[0]
            _check_layer_kind(name, module)
            if getattr(module, "merged", False):
                raise ValueError(f"model: adapters are merged in {name}; call model.unmerge_adapter() first")
            if module.use_dora.get(adapter, False) or adapter in getattr(module, "lora_variant", {}):
                raise ValueError(
                    f"model: {name} uses a LoRA variant (e.g. DoRA); Delta-LoRA needs plain LoRA"
                )
            if module.lora_bias.get(adapter, False):
                raise ValueError(
                    f"model: {name} has lora_bias=True; Delta-LoRA is defined for bias-free factors"
                )
            lora_a, lora_b = module.lora_A[adapter], module.lora_B[adapter]
            _sharding.check_shardable(
                name,
                {
                    "W": module.get_base_layer().weight,
                    "lora_A": getattr(lora_a, "weight", None),
                    "lora_B": getattr(lora_b, "weight", None),
                },
            )
            if not isinstance(getattr(module, "lora_variant", None), dict):
                raise ValueError(
                    f"model: {name} has no `lora_variant` table; the folded engine needs peft>=0.16 "
                    "(installed: "
                    f"{_peft_version()})"
                )
            if not isinstance(lora_a, nn.Linear) or not isinstance(lora_b, nn.Linear):
                raise ValueError(
                    f"model: {name} is a {type(module).__name__} LoRA layer; Delta-LoRA supports Linear and "
                    "GPT-2 Conv1D targets"
                )
            p = float(getattr(module.lora_dropout[adapter], "p", 0.0))
            if p > 0 and not self.allow_dropout:
                raise ValueError(
                    f"lora_dropout must be 0 for Delta-LoRA (found {p} on {name}): dropout breaks "
                    "dL/dW == dL/d(BA); set LoraConfig(lora_dropout=0.0), or pass allow_dropout=True to "
                    "apply "
                    "Algorithm 1 with dropout anyway"
                )
            slots.append(
                Slot(
                    name=name,
                    layer=module,
                    adapter=adapter,
                    scaling=float(module.scaling[adapter]),
                    fan_in_fan_out=bool(getattr(module, "fan_in_fan_out", False)),
                    has_dropout=p > 0,
                    lam=self.update_ratio,
                )
            )
        if len(active) > 1:
            raise ValueError(
                f"model: more than one adapter is active ({sorted(active)}); Delta-LoRA needs one"
            )
        if not slots:
            raise ValueError(
                "model: no PEFT LoRA layers found; wrap it first with peft.get_peft_model(model, "
                "LoraConfig(...))"
            )
        return slots

    def _check_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:  # defaults of foreach/fused are None (torch decides): fine
            if group.get("differentiable", False):
                raise ValueError(
                    "optimizer: differentiable=True keeps a graph through the step; Delta-LoRA's step hooks "
                    "read and write the factors outside it. Use differentiable=False"
                )
        in_opt = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for slot in self.slots:
            if id(slot.A) not in in_opt or id(slot.B) not in in_opt:
                raise ValueError(
                    f"optimizer: it does not update lora_A/lora_B of {slot.name}; pass the optimizer that "
                    "trains "
                    "the adapter"
                )

    def _check_inplace_weight(self, slot: Slot) -> None:
        dtype = slot.weight.dtype
        if dtype in _FULL_PRECISION:
            return
        if not dtype.is_floating_point:
            raise ValueError(
                f"engine='inplace' writes W, but {slot.name} has a {dtype} (quantized?) weight that cannot "
                "hold "
                "the updates; use engine='folded', which never writes W"
            )
        if not self.allow_low_precision:
            raise ValueError(
                f"engine='inplace' writes W, but {slot.name} has a {dtype} weight: most of each update "
                f"lam*s*(B'A' - BA) is below {dtype}'s rounding step and is lost. Use engine='folded' (W "
                "is never "
                "written; the update is carried exactly by the factors), or pass allow_low_precision=True to "
                "accept the loss (the update is accumulated in float32 and rounded once per step)"
            )

    @property
    def adapter_name(self) -> str:
        return self.slots[0].adapter

    @property
    def switched(self) -> bool:
        """True once the snapshot at the switch (after K+1 steps) exists."""
        return self.slots[0].snap_A is not None

    # ------------------------------------------------------------------ the algorithm
    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.restore_pending()
        writes = self.engine == "inplace" and self.update_ratio != 0.0
        for slot in self.slots:
            # the model may have moved (.to(), .cuda(), accelerate.prepare) since the last step
            slot.follow(prev=writes and self.step > self.start_step)
        # The step about to run is t = self.step; Algorithm 1 writes W after it iff t > K.
        if self.engine == "inplace" and self.step > self.start_step and self.update_ratio != 0.0:
            with torch.no_grad():
                for slot in self.slots:
                    slot.prev_A.copy_(slot.A)
                    slot.prev_B.copy_(slot.B)

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if step_was_skipped(optimizer, kwargs):  # a fused optimizer ran but skipped for the grad scaler
            return
        t = self.step
        self.step += 1
        if self.engine == "inplace" and t > self.start_step and self.update_ratio != 0.0:
            _sharding.to_sharded(
                self.model
            )  # FSDP2: write W's shard, not a whole copy left by an eval forward
            with torch.no_grad():
                for slot in self.slots:
                    self._write_w(slot)
        if self.step == self.start_step + 1:
            self._take_snapshot()

    def _write_w(self, slot: Slot) -> None:
        """W += lam*s*(B'A' - BA), as B'(A'-A) + (B'-B)A: one rank-2r addmm, in float32 or better."""
        W = slot.weight
        dt = compute_dtype(W)
        # FSDP2: this rank's block of W, the matching rows of B and columns of A (whole W: unchanged)
        target, A1, B1, A0, B0 = _sharding.block_factors(
            W, slot.fan_in_fan_out, slot.A.detach(), slot.B.detach(), slot.prev_A, slot.prev_B
        )
        b_cat = torch.cat((B1, B1 - B0), 1).to(dt)  # (out, 2r)
        a_cat = torch.cat((A1 - A0, A0), 0).to(dt)  # (2r, in)
        m1, m2 = (a_cat.T, b_cat.T) if slot.fan_in_fan_out else (b_cat, a_cat)
        alpha = slot.lam * slot.scaling
        if W.dtype == dt:
            target.addmm_(m1, m2, alpha=alpha)
        else:  # low-precision W: accumulate in float32, round once
            acc = target.to(dt)
            acc.addmm_(m1, m2, alpha=alpha)
            target.copy_(acc)

    def _take_snapshot(self) -> None:
        with torch.no_grad():
            for slot in self.slots:
                slot.snap_A = _sharding.whole(slot.A.detach()).clone()  # FSDP2: gathered, kept whole
                slot.snap_B = _sharding.whole(slot.B.detach()).clone()

    def _install_fold(self, slot: Slot) -> None:
        """Register the folded branch in PEFT's per-layer variant table (one code path: forward and merge).

        Installed at attach time, not at the switch: until the snapshot exists the variant computes
        PEFT's plain LoRA branch (bitwise), and the table never changes during training, so a
        torch.compile'd model needs no guard on it (torch 2.4's dynamo kept a stale graph when it did).
        """
        if slot.fold_handle is not None:
            return
        slot.layer.lora_variant[slot.adapter] = FoldedVariant(slot)
        slot.fold_handle = slot.layer

    def _remove_fold(self, slot: Slot) -> None:
        if slot.fold_handle is None:
            return
        slot.fold_handle.lora_variant.pop(slot.adapter, None)
        slot.fold_handle = None

    # ------------------------------------------------------------------ lifecycle
    def detach(self) -> None:
        """Stop Delta-LoRA: remove the optimizer hooks. The model keeps the function it was trained to.

        Before the switch nothing of Delta-LoRA is left (the model is plain LoRA, W untouched). After it,
        both engines keep W_0 + lam*s*(B_T A_T - S_B S_A) + s*B A with (B_T, A_T) the factors at detach:
        the inplace engine has that in W, the folded engine keeps it as a frozen term. Further plain
        LoRA training, merge_adapter/unmerge_adapter, merge_and_unload and disable_adapter (W_0) then
        give the same function under both engines. Refused while adapters are merged: unmerge first.
        """
        merged = [s.name for s in self.slots if getattr(s.layer, "merged", False)]
        if merged:
            raise ValueError(
                f"model: adapters are merged in {merged[0]}; call model.unmerge_adapter() before detach(), "
                "so "
                "that the merge is undone with the term it was made with"
            )
        self._remove_optimizer_hooks()
        keep = self.switched and self.update_ratio != 0.0
        for slot in self.slots:
            if keep:
                slot.frozen = (slot.B.detach().clone(), slot.A.detach().clone())
            else:
                self._remove_fold(slot)
        if not keep:
            for h in self._layer_hooks:
                h.remove()
            self._layer_hooks = []
        self.model._deltalora_attached = False
        self.model._deltalora_detached_term = keep

    def extra_updated_params(self) -> int:
        """W entries that Algorithm 1 updates without gradients (the paper's 'extra updatable parameters')."""
        return sum(
            weight_numel(slot.layer) for slot in self.slots
        )  # unpacked: 4-bit storage holds two a byte

    def iter_weight_updates(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(layer name, W_t - W_0) for every adapted layer, computed from the telescoped form."""
        for slot in self.slots:
            if slot.snap_A is None or self.update_ratio == 0.0:
                yield (
                    slot.name,
                    torch.zeros(
                        weight_shape(slot.layer), dtype=compute_dtype(slot.weight), device=slot.weight.device
                    ),
                )
                continue
            dt = compute_dtype(slot.weight)
            B, A = (_sharding.whole(t.detach()) for t in (slot.B, slot.A))  # noqa: N806
            b, a = stacked_factors(B, A, slot.snap_B, slot.snap_A, 1.0, -1.0)
            d = (b.to(dt) @ a.to(dt)) * (slot.lam * slot.scaling)
            yield slot.name, (d.T if slot.fan_in_fan_out else d)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Step counter and snapshots (and, for `inplace`, the written W): enough to resume exactly."""
        tensors: dict[str, torch.Tensor] = {}
        _sharding.to_sharded(self.model)  # FSDP2: the written W as this rank's shard
        for slot in self.slots:
            if slot.snap_A is not None:
                tensors[f"{slot.name}.snap_A"] = slot.snap_A
                tensors[f"{slot.name}.snap_B"] = slot.snap_B
            if self.engine == "inplace":
                # always, even before any write: a resume into a model whose W was written since (the same
                # process, a later step) must get this step's W back, not keep the later one
                tensors[f"{slot.name}.weight"] = slot.weight.detach()
        return {
            "step": self.step,
            "engine": self.engine,
            "update_ratio": self.update_ratio,
            "start_step": self.start_step,
            "allow_dropout": self.allow_dropout,
            # a dict, not a list: Optimizer.load_state_dict rebuilds iterables (strings too) element-wise
            "layers": {slot.name: i for i, slot in enumerate(self.slots)},
            "tensors": tensors,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict(); every field is checked before anything changes."""
        self._validate_state(state)
        tensors = state.get("tensors", {})
        self.step = int(state["step"])
        with torch.no_grad():
            for slot in self.slots:
                slot.snap_A = slot.snap_B = None
                if f"{slot.name}.snap_A" in tensors:
                    slot.snap_A = tensors[f"{slot.name}.snap_A"].to(slot.A.device, slot.A.dtype).clone()
                    slot.snap_B = tensors[f"{slot.name}.snap_B"].to(slot.B.device, slot.B.dtype).clone()
                if f"{slot.name}.weight" in tensors:
                    _sharding.copy_weight(slot.weight, tensors[f"{slot.name}.weight"])
        self.restores += 1

    def _validate_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError("state: not a DeltaLoRA state_dict (no 'step')")
        for key in ("engine", "update_ratio", "start_step"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"{key}: the saved state has {state[key]!r} but this DeltaLoRA has {getattr(self, key)!r}"
                )
        step = state["step"]
        _check_number("step", step, integer=True)
        tensors = state.get("tensors", {})
        names = [slot.name for slot in self.slots]
        if "layers" in state and sorted(state["layers"]) != sorted(names):
            saved = sorted(state["layers"])
            raise ValueError(
                f"state: its adapted layers differ from this model's (saved {len(saved)}, e.g. "
                f"{sorted(set(saved) - set(names))[:3]} not here; here {len(names)}, e.g. "
                f"{sorted(set(names) - set(saved))[:3]} not saved)"
            )
        allowed = {"snap_A", "snap_B"} | ({"weight"} if self.engine == "inplace" else set())
        bad = sorted(
            k for k in tensors if k.rsplit(".", 1)[0] not in names or k.rsplit(".", 1)[-1] not in allowed
        )
        if bad:
            raise ValueError(
                f"state: tensors {bad[:3]} do not belong to this model's adapted layers ({self.engine})"
            )
        switched = step >= self.start_step + 1
        for slot in self.slots:
            want = {"snap_A": slot.A.shape, "snap_B": slot.B.shape} if switched else {}
            if self.engine == "inplace":
                want["weight"] = slot.weight.shape
            for what, shape in want.items():
                t = tensors.get(f"{slot.name}.{what}")
                if t is None:
                    raise ValueError(
                        f"state: step {step} needs {what} of {slot.name} (switch at "
                        f"K+1={self.start_step + 1}, engine={self.engine}), but the state has none"
                    )
                if tuple(t.shape) != tuple(shape):
                    raise ValueError(
                        f"state: {what} of {slot.name} has shape {tuple(t.shape)}, the model's is "
                        f"{tuple(shape)}"
                    )
            if not switched and f"{slot.name}.snap_A" in tensors:
                raise ValueError(
                    f"state: step {step} is before the switch but holds a snapshot of {slot.name}"
                )

    def _optimizer_state_index(self, optimizer: torch.optim.Optimizer) -> int | None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        anchor = self.slots[0].A
        return next((i for i, p in enumerate(params) if p is anchor), None)

    def _optimizer_state_dict_hook(self, optimizer: torch.optim.Optimizer, state_dict: dict) -> dict:
        """Carry this state in the optimizer's checkpoint, under the first lora_A's per-parameter state.

        Always, even for an optimizer that keeps no per-parameter state (SGD without momentum): the
        load hook (or, for optimizers whose load_state_dict runs no hooks, the next step) pops it again,
        so the optimizer never sees it.
        """
        idx = self._optimizer_state_index(optimizer)
        if idx is not None:  # also when the optimizer keeps no state of its own (plain SGD)
            entry = dict(state_dict["state"].get(idx, {}))
            st = self.state_dict()
            # no strings: Optimizer.load_state_dict rebuilds iterables element by element
            st["engine"] = ENGINES.index(st["engine"])
            entry[OPTIMIZER_STATE_KEY] = st
            state_dict["state"] = {**state_dict["state"], idx: entry}
        return state_dict

    def _optimizer_load_hook(self, optimizer: torch.optim.Optimizer) -> None:
        """Restore a Delta-LoRA state that the optimizer's loaded state dict carried (and drop it there)."""
        per_param = optimizer.state.get(self.slots[0].A)
        if not per_param or OPTIMIZER_STATE_KEY not in per_param:
            return
        st = dict(per_param.pop(OPTIMIZER_STATE_KEY))
        st["engine"] = ENGINES[int(st["engine"])]
        self.load_state_dict(st)
        self.restored_from_optimizer = True

    def save(self, path: str | os.PathLike, *, main_process_only: bool = True) -> None:
        """Write state_dict() to a safetensors file, atomically; under torch.distributed, on rank 0 only.

        Every rank holds the same state (data parallelism), so one copy is written. Pass
        main_process_only=False when the caller already chose the writing process (the callback
        follows the Trainer's `should_save`, which also covers `save_on_each_node`).
        """
        from safetensors.torch import save_file

        _sharding.refuse_sharded_save(self.engine, self.slots)
        if main_process_only and not is_main_process():
            return
        state = self.state_dict()
        meta = {k: json.dumps(v) for k, v in state.items() if k != "tensors"}
        tensors = {k: v.detach().contiguous().cpu() for k, v in state["tensors"].items()}
        # never an empty file: safetensors < 0.4.4 cannot read one back (folded: no tensors before the switch)
        tensors[_STEP_TENSOR] = torch.tensor([state["step"]], dtype=torch.int64)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load(self, path: str | os.PathLike) -> None:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys() if k != _STEP_TENSOR}
        state = {k: json.loads(v) for k, v in meta.items()}
        state["tensors"] = tensors
        self.load_state_dict(state)

    # ------------------------------------------------------------------ export
    def export_adapter(self, path: str | os.PathLike, *, main_process_only: bool = True) -> Path:
        """Write a standard PEFT LoRA adapter that reproduces this model on the untouched base model.

        After the switch it has rank 2r: B' = [(1+lam) B | -lam S_B], A' = [A ; S_A], same scale s.
        Before the switch (or with lam = 0) it is the plain rank-r adapter. Modules trained in full
        beside the adapter (`modules_to_save`, e.g. a classification head) are included, so
        `PeftModel.from_pretrained(base, path)` gives the trained model's outputs. For the inplace
        engine the adapter is relative to the original pretrained W_0, not to the written W.
        Under torch.distributed only rank 0 writes (every rank holds the same adapter); all ranks
        get the path back after a barrier, so any rank may read it at once.

        User files are never destroyed: `path` must be absent, an empty directory, or an earlier export
        of this library (its `deltalora.json` marker and nothing else than what an export writes), which
        is replaced. Anything else is refused, naming the path, before anything is written. The adapter
        is written into a temporary folder beside `path` and renamed into place.
        """
        from peft import PeftModel, get_peft_model_state_dict

        if not isinstance(self.model, PeftModel):
            raise ValueError("model: export_adapter needs a peft.PeftModel (it reads the LoRA config)")
        check_export_dir(Path(path), "path")  # before anything is computed or written
        adapter = self.adapter_name
        config = self.model.peft_config[adapter]
        # FSDP2: gathered on every rank (a collective) before only rank 0 writes
        state = _sharding.whole_state(get_peft_model_state_dict(self.model, adapter_name=adapter))
        widen = self.switched and self.update_ratio != 0.0
        if widen:
            for slot in self.slots:
                b, a = slot.low_rank_factors()
                key_a, key_b = f"{slot.name}.lora_A.weight", f"{slot.name}.lora_B.weight"
                if key_a not in state or key_b not in state:
                    raise RuntimeError(f"PEFT state dict has no {key_a}; cannot export")  # pragma: no cover
                state[key_a] = a.contiguous().clone()
                state[key_b] = b.contiguous().clone()
            config = _widen_config(config)
        path = Path(path)
        check_export_dir(
            path, "path"
        )  # every rank: a refusal is the same everywhere, and comes before writing
        if not main_process_only or is_main_process():
            _write_export(path, config, state, self._export_marker(widen))
        if main_process_only:
            _barrier()  # the other ranks get the path back only once rank 0 has written it
        return path

    def _export_marker(self, widen: bool) -> dict[str, Any]:
        return {
            "method": "delta_lora",
            "engine": self.engine,
            "update_ratio": self.update_ratio,
            "start_step": self.start_step,
            "step": self.step,
            "rank_2r": widen,
            "note": "B' = [(1+lam) B_T | -lam B_{K+1}], A' = [A_T ; A_{K+1}], same scale; "
            "load on the untouched pretrained base model",
        }

    def merge_and_unload(self) -> nn.Module:
        """A plain transformers model whose weights are the effective Delta-LoRA weights."""
        if not hasattr(self.model, "merge_and_unload"):
            raise ValueError("model: merge_and_unload needs a peft.PeftModel")
        _sharding.refuse_sharded_merge(self.slots)
        self._remove_optimizer_hooks()
        # Folded: the installed variant merges W_0 + s[(1+lam)BA - lam S]; inplace: W_t + s BA.
        merged = self.model.merge_and_unload()
        for slot in self.slots:
            slot.fold_handle = None
        self._layer_hooks = []  # they lived on the LoRA layers, which merge_and_unload replaced
        self.model._deltalora_attached = False
        return merged


# ---------------------------------------------------------------------------- layer kinds
# PEFT LoRA layer classes Delta-LoRA handles exactly (the folded branch is PEFT's variant dispatch of these
# classes; the export is their standard lora_A/lora_B). Matched by module and name, so a subclass (torchao's
# TorchaoLoraLinear subclasses lora.Linear) is not taken for its parent.
SUPPORTED_LAYERS = {
    ("peft.tuners.lora.layer", "Linear"): "nn.Linear and GPT-2 Conv1D",
    ("peft.tuners.lora.bnb", "Linear8bitLt"): "bitsandbytes 8-bit",
    ("peft.tuners.lora.bnb", "Linear4bit"): "bitsandbytes 4-bit",
}
# Why the others are refused (by class name; a class not listed gets the generic reason).
REFUSED_LAYERS = {
    "Embedding": "its factors are lookup tables (lora_embedding_A/B), which the folded branch and the "
    "rank-2r "
    "export do not handle",
    "Conv1d": "a convolution LoRA (lora_A/lora_B are Conv layers)",
    "Conv2d": "a convolution LoRA (lora_A/lora_B are Conv layers)",
    "Conv3d": "a convolution LoRA (lora_A/lora_B are Conv layers)",
    "MultiheadAttention": "PEFT merges its factors into the attention weights at every forward, outside the "
    "LoRA branch the folded engine extends",
    "ParamWrapper": "a target_parameters LoRA: PEFT adds B A to the parameter itself, outside the LoRA "
    "branch "
    "the folded engine extends (the folded term would be dropped while the export carries it)",
    "TorchaoLoraLinear": "a torchao-quantized base; untested here (torchao is not a dependency)",
    "HqqLoraLinear": "an HQQ-quantized base; untested here (hqq is not a dependency)",
}


def _check_layer_kind(name: str, module: nn.Module) -> None:
    cls = type(module)
    if (cls.__module__, cls.__name__) in SUPPORTED_LAYERS:
        return
    why = REFUSED_LAYERS.get(
        cls.__name__, f"a LoRA layer class ({cls.__module__}) that is not tested with Delta-LoRA"
    )
    raise ValueError(
        f"model: {name} is a PEFT {cls.__name__} LoRA layer, {why}. Delta-LoRA supports "
        + ", ".join(SUPPORTED_LAYERS.values())
        + " targets; leave this layer out of target_modules / target_parameters (see docs/compatibility.md)"
    )


def _disabled_inplace_hook(slot: Slot) -> Any:
    """Forward hook of an inplace-engine layer: under disable_adapter() the output is W_0 x, as with folded.

    The inplace engine's W is W_0 + lam*s*(B A - S_B S_A); with the adapter disabled PEFT computes W x alone,
    so the hook takes that term off again (with the layer's own factors: a DataParallel replica's device).
    """

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if not getattr(module, "disable_adapters", False) or slot.snap_A is None or not args:
            return output
        x = args[0]
        if slot.frozen is not None:
            B, A = slot.frozen
        else:
            B, A = module.lora_B[slot.adapter].weight, module.lora_A[slot.adapter].weight
        with torch.no_grad():
            extra = folded_extra(x, A.detach(), B.detach(), slot)
        return output - extra.to(output.dtype)

    return hook


# ---------------------------------------------------------------------------- export files
EXPORT_MARKER = "deltalora.json"
EXPORT_FILES = frozenset({"adapter_config.json", "adapter_model.safetensors", EXPORT_MARKER, "README.md"})


def check_export_dir(path: Path, field: str) -> None:
    """Refuse an export location that holds anything but an earlier export of this library: an export
    replaces only its own files, never a user's."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise ValueError(f"{field}: {path} exists and is not a directory; exports never replace files")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    ours = False
    marker = path / EXPORT_MARKER
    if marker.is_file():
        try:
            ours = json.loads(marker.read_text()).get("method") == "delta_lora"
        except (ValueError, OSError, AttributeError):
            ours = False
    foreign = [e for e in entries if e not in EXPORT_FILES]
    if not ours or foreign:
        what = f"holds {foreign[:3] or entries[:3]}" + (
            "" if ours else f" and no {EXPORT_MARKER} marker of ours"
        )
        raise ValueError(
            f"{field}: {path} is a non-empty directory that is not an earlier Delta-LoRA export ({what}); "
            "Delta-LoRA only replaces its own exports. Choose a new or empty directory"
        )


def _write_export(path: Path, config: Any, state: dict[str, torch.Tensor], marker: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
    old = None
    try:
        config.save_pretrained(str(tmp))
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in state.items()},
            str(tmp / "adapter_model.safetensors"),
            metadata={"format": "pt"},
        )
        (tmp / EXPORT_MARKER).write_text(json.dumps(marker, indent=2))
        check_export_dir(path, "path")  # again, just before the rename: nothing appeared meanwhile
        if path.exists() and any(path.iterdir()):  # an earlier export of ours: move it aside, then swap
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".old-{path.name}-"))
            os.replace(path, old / "export")
        os.replace(tmp, path)  # atomic; onto an empty directory too
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old is not None and old.exists():
            shutil.rmtree(old)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _widen_config(config: Any) -> Any:
    """Same LoRA config at rank 2r with alpha chosen so that the scale s is unchanged."""
    import copy

    cfg = copy.deepcopy(config)

    def widen_alpha(alpha: float) -> float:
        return alpha * (math.sqrt(2.0) if cfg.use_rslora else 2.0)

    # scale = alpha/r (or alpha/sqrt(r)); for each layer, r -> 2r needs alpha -> 2 alpha (sqrt(2) alpha).
    default_alpha = cfg.lora_alpha
    alpha_pattern = dict(cfg.alpha_pattern or {})
    for key in cfg.rank_pattern or {}:
        alpha_pattern.setdefault(key, default_alpha)
    cfg.alpha_pattern = {k: widen_alpha(v) for k, v in alpha_pattern.items()}
    cfg.rank_pattern = {k: 2 * v for k, v in (cfg.rank_pattern or {}).items()}
    cfg.r = 2 * cfg.r
    cfg.lora_alpha = widen_alpha(default_alpha)
    return cfg


def _peft_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("peft")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
