"""Why Delta-LoRA removes dropout: the cosine between dL/dW and dL/d(BA), measured during training.

Delta-LoRA (Algorithm 1) moves the frozen weight W by lam * delta(s*B A): it uses the change of the
LoRA product as a surrogate for an update of W. That is justified when dL/dW equals dL/d(BA), which
holds when the branch sees the same input as W. A PEFT LoRA layer computes

    y = base_layer(x) + s * B A drop(x)        (s = module.scaling[adapter])

so, with g = dL/dy for each token (all laid out out x in, also for GPT-2's Conv1D, whose weight is
stored in x out):

    dL/dW     = sum_tokens g x^T
    dL/d(BA)  = s * sum_tokens g drop(x)^T

Without dropout drop(x) = x and the two are parallel (cosine 1); with dropout they are not.

`GradientCosineProbe` measures the cosine between vec(dL/dW) and vec(dL/d(BA)) per adapted layer
from the training step's own forward and backward: forward hooks keep the layer input x and the
input of ``lora_A`` (drop(x), the exact mask used), a tensor hook on the layer output receives g
during backward and accumulates both outer products in float64. W never requires grad and nothing
is recomputed. Gradient accumulation is handled by summing over every backward while armed.

Memory while armed: for each adapted layer two out x in float64 accumulators, plus the layer input
x of each micro-batch kept alive until its backward (autograd does not otherwise keep x when W is
frozen). Nothing is kept once disarmed.

`GradientCosineCallback` arms the probe for chosen optimizer steps inside `transformers.Trainer`.
Step indices follow docs/design.md §1: t counts optimizer steps from 0, so t is `state.global_step` when the
step begins (the Trainer logs the same step as t+1).

Not supported: gradient checkpointing (the recomputed forward would be hooked too) and PEFT's
mixed-adapter batches (`adapter_names=`); layers whose ``lora_A`` is not a Linear (Embedding,
Conv2d LoRA, AdaLoRA) are skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

COSINE_FILE = "grad_cosine.json"


def _dropout_active(drop: nn.Module) -> bool:
    if isinstance(drop, nn.Identity) or not drop.training:
        return False
    return float(getattr(drop, "p", 1.0)) > 0.0


@dataclass(eq=False)
class _Layer:
    name: str
    module: nn.Module
    adapter: str
    grad_w: torch.Tensor | None = None  # dL/dW, out x in, float64
    grad_ba: torch.Tensor | None = None  # dL/d(BA), out x in, float64
    backwards: int = 0  # gradient contributions received (one per forward call that got a gradient)
    current: dict[str, Any] | None = None  # the forward call in progress
    handles: list = field(default_factory=list)

    def accumulate(self, g: torch.Tensor, x: torch.Tensor, d: torch.Tensor | None, scaling: float) -> None:
        g2 = g.detach().reshape(-1, g.shape[-1]).to(torch.float64)
        gw = g2.T @ x.reshape(-1, x.shape[-1]).to(torch.float64)
        gba = gw * scaling if d is None else (g2.T @ d.reshape(-1, d.shape[-1]).to(torch.float64)) * scaling
        if self.grad_w is None:
            self.grad_w, self.grad_ba = gw, gba
        else:
            self.grad_w += gw
            self.grad_ba += gba
        self.backwards += 1


class GradientCosineProbe:
    """Per-layer cosine between dL/dW and dL/d(BA), from the hooked training step itself.

    Arms on construction. Run one or more forward+backward passes (micro-batches of one optimizer
    step), then read `cosines()` (or `matrices()`) and call `disarm()`. Usable as a context manager.
    """

    def __init__(self, model: nn.Module, adapter_name: str = "default") -> None:
        from peft.tuners.lora import LoraLayer

        self.adapter_name = adapter_name
        self.layers: dict[str, _Layer] = {}
        for name, module in model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            lora_a = getattr(module, "lora_A", None)
            if not isinstance(lora_a, nn.ModuleDict) or adapter_name not in lora_a:
                continue
            if not isinstance(lora_a[adapter_name], nn.Linear):
                continue  # Embedding / Conv LoRA: not measured
            self.layers[name] = _Layer(name, module, adapter_name)
        if not self.layers:
            raise ValueError(f"no LoRA layer with a Linear lora_A for adapter {adapter_name!r} in the model")
        self.armed = False
        self._arm()

    # ------------------------------------------------------------------ hooks
    def _arm(self) -> None:
        for layer in self.layers.values():
            m = layer.module
            layer.handles = [
                m.register_forward_pre_hook(self._layer_pre_hook(layer), with_kwargs=True),
                m.lora_A[layer.adapter].register_forward_pre_hook(self._branch_pre_hook(layer)),
                m.register_forward_hook(self._layer_hook(layer)),
            ]
        self.armed = True

    @staticmethod
    def _layer_pre_hook(layer: _Layer):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            x = args[0] if args else kwargs.get("x")
            if not torch.is_grad_enabled() or not isinstance(x, torch.Tensor):
                layer.current = None
                return
            layer.current = {"x": x.detach(), "d": None}

        return hook

    @staticmethod
    def _branch_pre_hook(layer: _Layer):
        def hook(module: nn.Module, args: tuple) -> None:
            cur = layer.current
            if cur is not None and cur["d"] is None:
                cur["d"] = args[0].detach()  # drop(x): the very mask this forward used

        return hook

    @staticmethod
    def _layer_hook(layer: _Layer):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            cur, layer.current = layer.current, None
            if cur is None or not isinstance(output, torch.Tensor) or not output.requires_grad:
                return
            adapter = layer.adapter
            if (
                getattr(module, "disable_adapters", False)
                or getattr(module, "merged", False)
                or adapter not in getattr(module, "active_adapters", [adapter])
            ):
                return  # no branch in this forward: nothing to compare
            x, d = cur["x"], cur["d"]
            if d is None:
                # lora_A was not called as a module: the folded Delta-LoRA function takes A x
                # directly. That path is only taken without active dropout, where drop(x) = x.
                if _dropout_active(module.lora_dropout[adapter]):
                    raise RuntimeError(
                        f"{layer.name}: the LoRA branch input was not observed although dropout is active; "
                        "this forward path is not supported by GradientCosineProbe"
                    )
            elif d.shape != x.shape:
                raise RuntimeError(
                    f"{layer.name}: branch input {tuple(d.shape)} does not match layer input {tuple(x.shape)}"
                )
            scaling = float(module.scaling[adapter])

            def grad_hook(g: torch.Tensor) -> None:
                layer.accumulate(g, x, d, scaling)

            output.register_hook(grad_hook)

        return hook

    # ------------------------------------------------------------------ results
    def matrices(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{layer: (dL/dW, dL/d(BA))}, both out x in, float64, summed over every backward while armed."""
        return {n: (lay.grad_w, lay.grad_ba) for n, lay in self.layers.items() if lay.grad_w is not None}

    def backwards(self) -> dict[str, int]:
        """{layer: number of gradient contributions received} (micro-batches, for one call per forward)."""
        return {n: lay.backwards for n, lay in self.layers.items()}

    def cosines(self) -> dict[str, float]:
        """{layer: cos(vec dL/dW, vec dL/d(BA))}, float64; NaN where a layer got no (or a zero) gradient."""
        out = {}
        for n, lay in self.layers.items():
            if lay.grad_w is None:
                out[n] = math.nan
                continue
            denom = float(lay.grad_w.norm() * lay.grad_ba.norm())
            out[n] = float((lay.grad_w * lay.grad_ba).sum()) / denom if denom > 0 else math.nan
        return out

    def reset(self) -> None:
        """Drop the accumulated gradients (hooks stay armed)."""
        for layer in self.layers.values():
            layer.grad_w = layer.grad_ba = None
            layer.backwards = 0

    def disarm(self) -> None:
        """Remove every hook. Accumulated results stay readable until the probe is dropped."""
        for layer in self.layers.values():
            for h in layer.handles:
                h.remove()
            layer.handles = []
            layer.current = None
        self.armed = False

    def __enter__(self) -> GradientCosineProbe:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disarm()


def _trainer_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class GradientCosineCallback(_trainer_callback_base()):  # type: ignore[misc]
    """Measure the dL/dW vs dL/d(BA) cosine at chosen optimizer steps of a `transformers.Trainer` run.

    steps: optimizer step indices t (from 0: t = `state.global_step` when the step begins). At
    `on_step_begin` of such a step the probe is armed, so it sees every micro-batch of the step; at
    `on_pre_optimizer_step` (all gradients accumulated, before the optimizer and Delta-LoRA's W
    update) the cosines are stored in `self.results[t] = {layer: cosine}` and the probe disarmed.
    `self.backwards[t]` holds the number of gradient contributions per layer (the micro-batches).
    The results are saved beside each checkpoint and restored on resume.
    """

    def __init__(self, steps: Iterable[int], adapter_name: str = "default") -> None:
        steps = list(steps)
        for s in steps:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ValueError(f"steps must be non-negative integers (optimizer steps from 0); got {s!r}")
        self.steps = sorted(set(steps))
        self.adapter_name = adapter_name
        self.results: dict[int, dict[str, float]] = {}
        self.backwards: dict[int, dict[str, int]] = {}
        self._probe: GradientCosineProbe | None = None
        self._step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step > 0:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}" / COSINE_FILE
            if path.is_file():
                saved = json.loads(path.read_text())
                self.results.update(
                    {
                        int(k): {n: (math.nan if c is None else float(c)) for n, c in v.items()}
                        for k, v in saved.get("results", {}).items()
                    }
                )
                self.backwards.update({int(k): v for k, v in saved.get("backwards", {}).items()})

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._finish()  # a probe left armed (a step that never reached the optimizer) is dropped
        if state.global_step in self.steps and state.global_step not in self.results:
            if model is None:
                raise RuntimeError("GradientCosineCallback needs the model in the callback arguments")
            self._probe = GradientCosineProbe(model, self.adapter_name)
            self._step = state.global_step

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self._probe is not None:
            self.results[self._step] = self._probe.cosines()
            self.backwards[self._step] = self._probe.backwards()
        self._finish()

    def on_train_end(self, args, state, control, **kwargs):
        self._finish()

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            from .records import atomic_write_json

            atomic_write_json(ckpt / COSINE_FILE, {"results": self.to_record(), "backwards": self.backwards})

    def _finish(self) -> None:
        if self._probe is not None:
            self._probe.disarm()
        self._probe, self._step = None, None

    def to_record(self) -> dict[str, Any]:
        """JSON form for a run record's `analysis.grad_cosine` ({step: {layer: cosine}}, NaN as None)."""
        return {
            str(t): {n: (None if math.isnan(c) else c) for n, c in layers.items()}
            for t, layers in sorted(self.results.items())
        }


__all__ = ["COSINE_FILE", "GradientCosineCallback", "GradientCosineProbe"]
