"""Where training really runs: wrapped models and optimizers, several processes, AMP grad scalers.

Delta-LoRA's state is a step counter and a few factor copies per layer. It stays exact only if
(1) it sees the PEFT model inside whatever wraps it (DDP, torch.compile, accelerate), so that layer
names and the exported adapter do not depend on the wrapper; (2) each process holds whole W, A and B
(data parallelism, not sharding); (3) it counts the optimizer steps that really ran, including when a
fused optimizer skips a step inside its kernel for an AMP grad scaler; and (4) one process writes files.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Wrappers that hold the real model in `.module` and change nothing about its parameters.
_DATA_PARALLEL_WRAPPERS = ("DistributedDataParallel", "DataParallel", "DeepSpeedEngine")
_SHARDING_WRAPPERS = ("FullyShardedDataParallel",)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DDP / DataParallel / accelerate / torch.compile (`_orig_mod`) wrappers.

    accelerate's `prepare` returns either the model itself (its forward wrapped for mixed
    precision), a DDP wrapper, or a compiled module, so these cases cover it without importing it.
    """
    for _ in range(16):
        name = type(model).__name__
        if name in _SHARDING_WRAPPERS or any(c.__name__ == "FSDPModule" for c in type(model).__mro__):
            raise ValueError(
                f"model: it is wrapped by FSDP ({name}), which shards the weights; Delta-LoRA needs every process "
                "to hold whole W, A and B. Use DistributedDataParallel (or DeepSpeed ZeRO-1/2) instead"
            )
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
        inner = getattr(optimizer, "optimizer", None)
        if inner is None or inner is optimizer:
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer must be a torch.optim.Optimizer (or a wrapper with .optimizer); got {type(optimizer).__name__}"
        )
    return optimizer


def sharding_of(t: torch.Tensor) -> str | None:
    """Why this parameter is a shard rather than a whole tensor (FSDP, ZeRO-3), or None."""
    if any(c.__name__ == "DTensor" for c in type(t).__mro__):
        return "a DTensor (FSDP2 / tensor parallel)"
    if hasattr(t, "ds_id") or hasattr(t, "ds_status"):
        return "partitioned by DeepSpeed ZeRO-3"
    if getattr(t, "_is_flat_param", False):
        return "an FSDP flat parameter"
    if t.numel() == 0:
        return "empty on this process (a sharded parameter's local shard)"
    return None


def check_not_sharded(name: str, tensors: dict[str, torch.Tensor]) -> None:
    for what, t in tensors.items():
        why = sharding_of(t)
        if why is not None:
            raise ValueError(
                f"model: {what} of {name} is {why}. FSDP and DeepSpeed ZeRO-3 shard the weights and are not "
                "supported: Delta-LoRA needs every process to hold whole W, A and B. Use DistributedDataParallel "
                "(or ZeRO-1/2)"
            )


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
