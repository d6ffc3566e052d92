"""Where training really runs: wrapped models and optimizers, several processes, AMP grad scalers.

Delta-LoRA's state is a step counter and a few factor copies per layer. It stays exact only if
(1) it sees the PEFT model inside whatever wraps it (DDP, torch.compile, accelerate), so that layer
names and the exported adapter do not depend on the wrapper; (2) each process holds whole W, A and B
(data parallelism), or FSDP2 shards of them (`_sharding.py`: the one sharding it supports); (3) it
counts the optimizer steps that really ran, including when a fused optimizer skips a step inside its
kernel for an AMP grad scaler; and (4) one process writes files.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._sharding import is_fsdp2, refuse_fsdp1, refuse_zero_optimizer, to_sharded

# Wrappers that hold the real model in `.module` and change nothing about its parameters.
_DATA_PARALLEL_WRAPPERS = ("DistributedDataParallel", "DataParallel", "DeepSpeedEngine")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DDP / DataParallel / accelerate / torch.compile (`_orig_mod`) wrappers.

    accelerate's `prepare` returns either the model itself (its forward wrapped for mixed
    precision), a DDP wrapper, or a compiled module, so these cases cover it without importing it.
    FSDP2's `fully_shard` wraps nothing (it changes the model's class), so an FSDP2 model is returned
    as it is; FSDP1 is refused.
    """
    for _ in range(16):
        name = type(model).__name__
        refuse_fsdp1(model)
        if is_fsdp2(model):  # its own class; slots must hold the shards that the optimizer steps
            to_sharded(model)
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if isinstance(inner, nn.Module):
            model = inner
            continue
        inner = getattr(model, "module", None)
        if name in _DATA_PARALLEL_WRAPPERS and isinstance(inner, nn.Module):
            model = inner
            continue
        return model
    raise ValueError("model: more than 16 nested wrappers; pass the PEFT model itself")  # pragma: no cover


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's/Lightning's wrappers (whose .step we must hook)."""
    # accelerate's AcceleratedOptimizer subclasses Optimizer but its step() may not run the inner
    # optimizer's step (skipped AMP steps, accumulation); hooks belong on the innermost optimizer.
    for _ in range(8):
        refuse_zero_optimizer(optimizer)
        inner = getattr(optimizer, "optimizer", None)
        if inner is None or inner is optimizer:
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            "optimizer must be a torch.optim.Optimizer (or a wrapper with .optimizer); "
            f"got {type(optimizer).__name__}"
        )
    return optimizer


def is_main_process() -> bool:
    """Rank 0 of the default process group, or the only process."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def step_was_skipped(optimizer: torch.optim.Optimizer, kwargs: dict[str, Any] | None) -> bool:
    """True when the optimizer.step that just ran skipped its update for an AMP grad scaler.

    A plain optimizer's skipped step never calls `optimizer.step`. An optimizer that handles the
    scaler itself (`_step_supports_amp_scaling`: fused Adam/AdamW/SGD) is called every time:
    `GradScaler.step` sets `optimizer.found_inf` (or passes `grad_scaler=`) and the kernel skips
    internally. Reading `found_inf` costs one host sync per step, as the non-fused path already does.
    """
    found_inf = getattr(optimizer, "found_inf", None)
    if isinstance(found_inf, torch.Tensor):
        return bool(found_inf.item())
    scaler = (kwargs or {}).get("grad_scaler")
    if scaler is not None and hasattr(scaler, "_found_inf_per_device"):
        try:
            found = scaler._found_inf_per_device(optimizer)
        except (KeyError, AttributeError):  # pragma: no cover - the optimizer never unscaled
            return False
        return bool(sum(float(v.item()) for v in found.values()))
    return False
