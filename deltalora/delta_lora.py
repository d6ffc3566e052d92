"""Delta-LoRA (Zi et al. 2023, Algorithm 1) on top of PEFT LoRA layers.

Algorithm 1, in PEFT's notation (branch s*B A, s = alpha/r or alpha/sqrt(r) with rsLoRA): A and B
are trained by the optimizer as in LoRA, with no dropout in the branch; t counts optimizer steps that
actually ran, from 0; after step t, if t > K:

    W <- W + lam * s * (B_{t+1} A_{t+1} - B_t A_t)

`DeltaLoRA` attaches to an optimizer through its step hooks, so any loop works unchanged (plain
PyTorch, transformers.Trainer, Lightning): a step skipped by an AMP grad scaler never calls
`optimizer.step`, and gradient-accumulation micro-batches do not either, so neither is counted.

Two engines compute the same function (see DESIGN.md section 2):

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._folded import FoldedVariant, folded_extra
from .quantized import refuse_inplace, weight_numel, weight_shape

ENGINES = ("inplace", "folded")
STATE_FILE = "deltalora_state.safetensors"

# Use PEFT's per-layer variant dispatch for the folded branch when the installed PEFT has it; the
# fallback is a forward hook with the generic (detached-factor) term. Tests flip this to cover both.
USE_PEFT_VARIANT = True


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


@dataclass(eq=False)
class _Slot:
    """One adapted layer: its factors, scale and Delta-LoRA state."""

    name: str
    layer: nn.Module
    adapter: str
    A: nn.Parameter  # (r, in)
    B: nn.Parameter  # (out, r)
    scaling: float
    fan_in_fan_out: bool
    has_dropout: bool
    lam: float
    snap_A: torch.Tensor | None = None
    snap_B: torch.Tensor | None = None
    prev_A: torch.Tensor | None = None
    prev_B: torch.Tensor | None = None
    fold_handle: Any = None

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.get_base_layer().weight

    def low_rank_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B', A') with B'A' = (1+lam) B A - lam S_B S_A: the whole change from W_0, rank <= 2r."""
        A, B = self.A.detach(), self.B.detach()
        if self.snap_A is None or self.lam == 0.0:
            return B, A
        b = torch.cat((B * (1.0 + self.lam), self.snap_B.to(B.dtype) * (-self.lam)), 1)
        a = torch.cat((A, self.snap_A.to(A.dtype)), 0)
        return b, a

    def effective_delta(self) -> torch.Tensor:
        """s*[(1+lam) B A - lam S_B S_A], laid out like W (transposed for Conv1D)."""
        dt = _compute_dtype(self.weight)
        b, a = self.low_rank_factors()
        delta = (b.to(dt) @ a.to(dt)) * self.scaling
        return delta.T if self.fan_in_fan_out else delta


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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's/Lightning's wrappers (whose .step we must hook)."""
    # accelerate's AcceleratedOptimizer subclasses Optimizer but its step() may not run the inner
    # optimizer's step (skipped AMP steps, accumulation); hooks belong on the innermost optimizer.
    for _ in range(8):
        inner = getattr(optimizer, "optimizer", None)
        if inner is None or inner is optimizer:
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer must be a torch.optim.Optimizer (or a wrapper with .optimizer); got {type(optimizer).__name__}"
        )
    return optimizer


class DeltaLoRA:
    """Delta-LoRA attached to a PEFT LoRA model and the optimizer that trains it.

    Args:
        model: a `peft.PeftModel` (or any module holding PEFT LoRA layers) with one active LoRA adapter
            on Linear or GPT-2 Conv1D targets.
        optimizer: the optimizer that updates the adapter's A and B (AdamW in the paper).
        update_ratio: lambda, the paper's update ratio (default 2).
        start_step: K; W changes after step t only when t > K (default 500).
        engine: "folded" (default; W never written) or "inplace" (Algorithm 1 literally).
        allow_dropout: accept lora_dropout > 0 and apply Algorithm 1 as written, with dropout in the
            branch. Dropout breaks dL/dW == dL/d(BA), which is why the paper removes it; the dropout
            ablation needs this switch.
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
    ) -> None:
        _check_number("update_ratio", update_ratio, integer=False)
        _check_number("start_step", start_step, integer=True)
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
        if getattr(model, "_deltalora_attached", False):
            raise ValueError("model: a DeltaLoRA is already attached to this model; call .detach() on it first")
        self.model = model
        self.optimizer = unwrap_optimizer(optimizer)
        self.update_ratio = float(update_ratio)
        self.start_step = int(start_step)
        self.engine = engine
        self.allow_dropout = bool(allow_dropout)
        self.step = 0  # optimizer steps that ran
        self.slots = self._find_slots()
        self._check_optimizer()
        if self.engine == "inplace":
            refuse_inplace(self.slots)  # a quantized W cannot hold Algorithm 1's updates (deltalora/quantized.py)
            for slot in self.slots:
                if not slot.weight.dtype.is_floating_point:
                    raise ValueError(
                        f"engine='inplace' writes W, but {slot.name} has a {slot.weight.dtype} (quantized?) "
                        "weight; use engine='folded'"
                    )
                slot.prev_A = torch.empty_like(slot.A, memory_format=torch.contiguous_format).detach()
                slot.prev_B = torch.empty_like(slot.B, memory_format=torch.contiguous_format).detach()
        self._hooks = [
            self.optimizer.register_step_pre_hook(self._pre_step),
            self.optimizer.register_step_post_hook(self._post_step),
        ]
        model._deltalora_attached = True

    # ------------------------------------------------------------------ discovery and checks
    def _find_slots(self) -> list[_Slot]:
        LoraLayer, AdaLoraLayer = _lora_layer_classes()  # noqa: N806
        slots: list[_Slot] = []
        active: set[str] = set()
        for name, module in self.model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            if AdaLoraLayer is not None and isinstance(module, AdaLoraLayer):
                raise ValueError(f"model: {name} is an AdaLoRA layer; Delta-LoRA needs plain LoRA layers")
            adapters = list(module.active_adapters)
            if len(adapters) > 1:
                raise ValueError(
                    f"model: more than one adapter is active ({adapters}) on {name}; Delta-LoRA needs exactly one"
                )
            active.update(adapters)
            if not adapters or adapters[0] not in module.lora_A:
                continue
            adapter = adapters[0]
            if getattr(module, "merged", False):
                raise ValueError(f"model: adapters are merged in {name}; call model.unmerge_adapter() first")
            if module.use_dora.get(adapter, False) or adapter in getattr(module, "lora_variant", {}):
                raise ValueError(f"model: {name} uses a LoRA variant (e.g. DoRA); Delta-LoRA needs plain LoRA")
            if module.lora_bias.get(adapter, False):
                raise ValueError(f"model: {name} has lora_bias=True; Delta-LoRA is defined for bias-free factors")
            lora_a, lora_b = module.lora_A[adapter], module.lora_B[adapter]
            if not isinstance(lora_a, nn.Linear) or not isinstance(lora_b, nn.Linear):
                raise ValueError(
                    f"model: {name} is a {type(module).__name__} LoRA layer; Delta-LoRA supports Linear and "
                    "GPT-2 Conv1D targets"
                )
            p = float(getattr(module.lora_dropout[adapter], "p", 0.0))
            if p > 0 and not self.allow_dropout:
                raise ValueError(
                    f"lora_dropout must be 0 for Delta-LoRA (found {p} on {name}): dropout breaks "
                    "dL/dW == dL/d(BA); set LoraConfig(lora_dropout=0.0), or pass allow_dropout=True to apply "
                    "Algorithm 1 with dropout anyway"
                )
            slots.append(
                _Slot(
                    name=name,
                    layer=module,
                    adapter=adapter,
                    A=lora_a.weight,
                    B=lora_b.weight,
                    scaling=float(module.scaling[adapter]),
                    fan_in_fan_out=bool(getattr(module, "fan_in_fan_out", False)),
                    has_dropout=p > 0,
                    lam=self.update_ratio,
                )
            )
        if len(active) > 1:
            raise ValueError(f"model: more than one adapter is active ({sorted(active)}); Delta-LoRA needs one")
        if not slots:
            raise ValueError(
                "model: no PEFT LoRA layers found; wrap it first with peft.get_peft_model(model, LoraConfig(...))"
            )
        return slots

    def _check_optimizer(self) -> None:
        in_opt = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        for slot in self.slots:
            if id(slot.A) not in in_opt or id(slot.B) not in in_opt:
                raise ValueError(
                    f"optimizer: it does not update lora_A/lora_B of {slot.name}; pass the optimizer that trains "
                    "the adapter"
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
        # The step about to run is t = self.step; Algorithm 1 writes W after it iff t > K.
        if self.engine == "inplace" and self.step > self.start_step and self.update_ratio != 0.0:
            with torch.no_grad():
                for slot in self.slots:
                    slot.prev_A.copy_(slot.A)
                    slot.prev_B.copy_(slot.B)

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        t = self.step
        self.step += 1
        if self.engine == "inplace" and t > self.start_step and self.update_ratio != 0.0:
            with torch.no_grad():
                for slot in self.slots:
                    self._write_w(slot)
        if self.step == self.start_step + 1:
            self._take_snapshot()

    def _write_w(self, slot: _Slot) -> None:
        """W += lam*s*(B'A' - BA), as B'(A'-A) + (B'-B)A: one rank-2r addmm, in float32 or better."""
        W = slot.weight
        dt = _compute_dtype(W)
        A1, B1 = slot.A.detach(), slot.B.detach()
        A0, B0 = slot.prev_A, slot.prev_B
        b_cat = torch.cat((B1, B1 - B0), 1).to(dt)  # (out, 2r)
        a_cat = torch.cat((A1 - A0, A0), 0).to(dt)  # (2r, in)
        m1, m2 = (a_cat.T, b_cat.T) if slot.fan_in_fan_out else (b_cat, a_cat)
        alpha = slot.lam * slot.scaling
        if W.dtype == dt:
            W.data.addmm_(m1, m2, alpha=alpha)
        else:  # low-precision W: accumulate in float32, round once
            acc = W.data.to(dt)
            acc.addmm_(m1, m2, alpha=alpha)
            W.data.copy_(acc)

    def _take_snapshot(self) -> None:
        with torch.no_grad():
            for slot in self.slots:
                slot.snap_A = slot.A.detach().clone()
                slot.snap_B = slot.B.detach().clone()
        if self.engine == "folded" and self.update_ratio != 0.0:
            for slot in self.slots:
                self._install_fold(slot)

    def _install_fold(self, slot: _Slot) -> None:
        if slot.fold_handle is not None:
            return
        layer = slot.layer
        if USE_PEFT_VARIANT and isinstance(getattr(layer, "lora_variant", None), dict):
            layer.lora_variant[slot.adapter] = FoldedVariant(slot)
            slot.fold_handle = ("variant", layer)
        else:

            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor, _slot: _Slot = slot) -> torch.Tensor:
                if module.disable_adapters or module.merged:
                    return output
                x = inputs[0]
                return output + folded_extra(x.to(_slot.A.dtype), _slot).to(output.dtype)

            slot.fold_handle = ("hook", layer.register_forward_hook(hook))

    def _remove_fold(self, slot: _Slot) -> None:
        if slot.fold_handle is None:
            return
        kind, obj = slot.fold_handle
        if kind == "variant":
            obj.lora_variant.pop(slot.adapter, None)
        else:
            obj.remove()
        slot.fold_handle = None

    # ------------------------------------------------------------------ lifecycle
    def detach(self) -> None:
        """Remove the optimizer hooks and the folded term. The model then computes plain LoRA again."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        for slot in self.slots:
            self._remove_fold(slot)
        self.model._deltalora_attached = False

    def extra_updated_params(self) -> int:
        """W entries that Algorithm 1 updates without gradients (the paper's 'extra updatable parameters')."""
        return sum(weight_numel(slot.layer) for slot in self.slots)  # unpacked: 4-bit storage holds two a byte

    def iter_weight_updates(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(layer name, W_t - W_0) for every adapted layer, computed from the telescoped form."""
        for slot in self.slots:
            if slot.snap_A is None or self.update_ratio == 0.0:
                yield slot.name, torch.zeros(weight_shape(slot.layer), dtype=_compute_dtype(slot.weight),
                                             device=slot.weight.device)
                continue
            dt = _compute_dtype(slot.weight)
            b = torch.cat((slot.B.detach(), -slot.snap_B), 1).to(dt)
            a = torch.cat((slot.A.detach(), slot.snap_A), 0).to(dt)
            d = (b @ a) * (slot.lam * slot.scaling)
            yield slot.name, (d.T if slot.fan_in_fan_out else d)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Step counter and snapshots (and, for `inplace`, the written W): enough to resume exactly."""
        tensors: dict[str, torch.Tensor] = {}
        for slot in self.slots:
            if slot.snap_A is not None:
                tensors[f"{slot.name}.snap_A"] = slot.snap_A
                tensors[f"{slot.name}.snap_B"] = slot.snap_B
            if self.engine == "inplace" and self.step > self.start_step + 1 and self.update_ratio != 0.0:
                tensors[f"{slot.name}.weight"] = slot.weight.detach()
        return {
            "step": self.step,
            "engine": self.engine,
            "update_ratio": self.update_ratio,
            "start_step": self.start_step,
            "allow_dropout": self.allow_dropout,
            "tensors": tensors,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("engine", "update_ratio", "start_step"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"{key}: the saved state has {state[key]!r} but this DeltaLoRA has {getattr(self, key)!r}"
                )
        step = state["step"]
        _check_number("step", step, integer=True)
        tensors = state.get("tensors", {})
        names = {slot.name for slot in self.slots}
        unknown = sorted({k.rsplit(".", 1)[0] for k in tensors} - names)
        if unknown:
            raise ValueError(f"state: layers {unknown[:3]} are not adapted in this model")
        for slot in self.slots:
            self._remove_fold(slot)
            slot.snap_A = slot.snap_B = None
        self.step = int(step)
        with torch.no_grad():
            for slot in self.slots:
                if f"{slot.name}.snap_A" in tensors:
                    slot.snap_A = tensors[f"{slot.name}.snap_A"].to(slot.A.device, slot.A.dtype).clone()
                    slot.snap_B = tensors[f"{slot.name}.snap_B"].to(slot.B.device, slot.B.dtype).clone()
                if f"{slot.name}.weight" in tensors:
                    slot.weight.data.copy_(tensors[f"{slot.name}.weight"])
        if self.step >= self.start_step + 1 and not self.switched:
            raise ValueError(f"state: step {self.step} is past the switch at K+1={self.start_step + 1} but holds no snapshot")
        if self.engine == "folded" and self.switched and self.update_ratio != 0.0:
            for slot in self.slots:
                self._install_fold(slot)

    def save(self, path: str | os.PathLike) -> None:
        """Write state_dict() to a safetensors file (atomically)."""
        from safetensors.torch import save_file

        state = self.state_dict()
        meta = {k: json.dumps(v) for k, v in state.items() if k != "tensors"}
        tensors = {k: v.detach().contiguous().cpu() for k, v in state["tensors"].items()}
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
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = {k: json.loads(v) for k, v in meta.items()}
        state["tensors"] = tensors
        self.load_state_dict(state)

    # ------------------------------------------------------------------ export
    def export_adapter(self, path: str | os.PathLike) -> Path:
        """Write a standard PEFT LoRA adapter that reproduces this model on the untouched base model.

        After the switch it has rank 2r: B' = [(1+lam) B | -lam S_B], A' = [A ; S_A], same scale s.
        Before the switch (or with lam = 0) it is the plain rank-r adapter. Modules trained in full
        beside the adapter (`modules_to_save`, e.g. a classification head) are included, so
        `PeftModel.from_pretrained(base, path)` gives the trained model's outputs. For the inplace
        engine the adapter is relative to the original pretrained W_0, not to the written W.
        """
        from peft import PeftModel, get_peft_model_state_dict
        from safetensors.torch import save_file

        if not isinstance(self.model, PeftModel):
            raise ValueError("model: export_adapter needs a peft.PeftModel (it reads the LoRA config)")
        adapter = self.adapter_name
        config = self.model.peft_config[adapter]
        state = get_peft_model_state_dict(self.model, adapter_name=adapter)
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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
        try:
            config.save_pretrained(str(tmp))
            save_file({k: v.detach().contiguous().cpu() for k, v in state.items()},
                      str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
            (tmp / "deltalora.json").write_text(
                json.dumps(
                    {
                        "method": "delta_lora",
                        "engine": self.engine,
                        "update_ratio": self.update_ratio,
                        "start_step": self.start_step,
                        "step": self.step,
                        "rank_2r": widen,
                        "note": "B' = [(1+lam) B_T | -lam B_{K+1}], A' = [A_T ; A_{K+1}], same scale; "
                        "load on the untouched pretrained base model",
                    },
                    indent=2,
                )
            )
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return path

    def merge_and_unload(self) -> nn.Module:
        """A plain transformers model whose weights are the effective Delta-LoRA weights."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if not hasattr(self.model, "merge_and_unload"):
            raise ValueError("model: merge_and_unload needs a peft.PeftModel")
        # Folded: the installed variant merges W_0 + s[(1+lam)BA - lam S]; inplace: W_t + s BA.
        merged = self.model.merge_and_unload()
        for slot in self.slots:
            slot.fold_handle = None
        self.model._deltalora_attached = False
        return merged


def _widen_config(config: Any) -> Any:
    """Same LoRA config at rank 2r with alpha chosen so that the scale s is unchanged."""
    import copy

    cfg = copy.deepcopy(config)

    def widen_alpha(alpha: float) -> float:
        return alpha * (math.sqrt(2.0) if cfg.use_rslora else 2.0)

    # scale = alpha/r (or alpha/sqrt(r)); for each layer, r -> 2r needs alpha -> 2 alpha (sqrt(2) alpha).
    default_alpha = cfg.lora_alpha
    alpha_pattern = dict(cfg.alpha_pattern or {})
    for key in (cfg.rank_pattern or {}):
        alpha_pattern.setdefault(key, default_alpha)
    cfg.alpha_pattern = {k: widen_alpha(v) for k, v in alpha_pattern.items()}
    cfg.rank_pattern = {k: 2 * v for k, v in (cfg.rank_pattern or {}).items()}
    cfg.r = 2 * cfg.r
    cfg.lora_alpha = widen_alpha(default_alpha)
    return cfg


def _trainer_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class DeltaLoRACallback(_trainer_callback_base()):  # type: ignore[misc]
    """Delta-LoRA for `transformers.Trainer`: attaches to the Trainer's optimizer at train begin.

    A thin shell (as PEFT's AdaMSS callback is) around `DeltaLoRA`, whose optimizer hooks do the
    work; custom loops use `DeltaLoRA` directly. The state (step, snapshots, inplace W) is saved
    beside each Trainer checkpoint as `deltalora_state.safetensors` and restored on resume.
    """

    def __init__(
        self,
        update_ratio: float = 2.0,
        start_step: int = 500,
        engine: str = "folded",
        allow_dropout: bool = False,
    ) -> None:
        _check_number("update_ratio", update_ratio, integer=False)
        _check_number("start_step", start_step, integer=True)
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
        self.kwargs = dict(update_ratio=update_ratio, start_step=start_step, engine=engine, allow_dropout=allow_dropout)
        self.delta_lora: DeltaLoRA | None = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.delta_lora is None:
            self.delta_lora = DeltaLoRA(model, optimizer, **self.kwargs)
        else:  # a second train() call: re-attach to the (possibly new) optimizer
            self.delta_lora.optimizer = unwrap_optimizer(optimizer)
            for h in self.delta_lora._hooks:
                h.remove()
            self.delta_lora._hooks = [
                self.delta_lora.optimizer.register_step_pre_hook(self.delta_lora._pre_step),
                self.delta_lora.optimizer.register_step_post_hook(self.delta_lora._post_step),
            ]
        if state.global_step > 0:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}" / STATE_FILE
            if not ckpt.is_file():
                raise RuntimeError(
                    f"resuming at step {state.global_step}, but {ckpt} is missing: the checkpoint has no Delta-LoRA "
                    "state, so the run cannot continue exactly"
                )
            self.delta_lora.load(ckpt)

    def on_save(self, args, state, control, **kwargs):
        if self.delta_lora is not None:
            self.delta_lora.save(Path(args.output_dir) / f"checkpoint-{state.global_step}" / STATE_FILE)
