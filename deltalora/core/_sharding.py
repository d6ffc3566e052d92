"""Delta-LoRA on sharded models: FSDP2 (`torch.distributed.fsdp.fully_shard`) runs; the rest is refused.

Under FSDP2 every parameter is a DTensor whose local tensor is this rank's block (`Shard(0)`: a slice
of rows). During the forward the layers hold ordinary, whole parameters; between steps only shards.
Both engines stay exact without ever holding a whole W:

* ``folded`` never writes W. The snapshot (S_A, S_B) at the switch is gathered once (r x (in+out)
  numbers, like A and B) and kept whole, so the forward adds the folded term to the whole A and B that
  FSDP2 gathered anyway; there is no collective in the forward.
* ``inplace`` adds lam*s*(B'A' - BA) to this rank's block of W only: rows o0:o1 and columns i0:i1 of
  W need rows o0:o1 of B and columns i0:i1 of A. Under FSDP2's Shard(0), B and W split their common
  `out` rows alike, so a Linear's B (and its pre-step copy) is used as this rank holds it, and only A
  and its pre-step copy are gathered, stacked into one collective per layer per step. GPT-2's Conv1D
  (W stored in x out) needs A's columns and all of B: two collectives. The update block is as large
  as the local shard.

Gathering (`DTensor.full_tensor`) is a collective: it is done only where every rank runs the same code
(optimizer-step hooks, `export_adapter`, state), never under "rank 0 only".

Refused, with the reason: FSDP1 (`FullyShardedDataParallel`, flat parameters; it keeps no per-layer
parameter Delta-LoRA could hook), DeepSpeed ZeRO (its optimizer steps flat fp32 copies and writes them
back after the inner optimizer's step, so step hooks would see stale factors), DTensors with
placements other than `Shard`/`Replicate` (tensor parallel's `Partial`, FSDP2+TP's strided shards),
and plain tensors that are empty on this process (a partitioned parameter of another framework).
"""

from __future__ import annotations

from typing import Any

import torch

_FSDP1_HINT = (
    "Delta-LoRA supports FSDP2: shard the PEFT model with torch.distributed.fsdp.fully_shard (torch>=2.6; "
    "accelerate: fsdp_version=2) instead, or use DistributedDataParallel"
)
_ZERO_OPTIMIZERS = (
    "DeepSpeedZeroOptimizer",
    "DeepSpeedZeroOptimizer_Stage3",
    "BF16_Optimizer",
    "FP16_Optimizer",
    "FP16_UnfusedOptimizer",
)


def is_dtensor(t: Any) -> bool:
    return any(c.__name__ == "DTensor" for c in type(t).__mro__)


def is_fsdp2(model: Any) -> bool:
    """True for a module that `fully_shard` wrapped (its class gains FSDPModule)."""
    return any(c.__name__ == "FSDPModule" for c in type(model).__mro__)


def to_sharded(model: Any) -> None:
    """Register the sharded parameters again wherever FSDP2 left whole ones (not a collective).

    After a forward that no backward follows (evaluation), FSDP2's root module keeps its all-gathered
    parameters registered; W read then would be a temporary copy, and a write into it would be lost.
    """
    for m in model.modules():
        if is_fsdp2(m):
            m.reshard()


def is_sharded(slots: list[Any]) -> bool:
    """True when any adapted layer holds FSDP2 shards (then export and state gather: every rank calls)."""
    return any(is_dtensor(t) for s in slots for t in (s.weight, s.A, s.B))


def whole(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind a DTensor (a collective: every rank must call it), else `t` itself."""
    return t.full_tensor() if is_dtensor(t) else t


def whole_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with every DTensor gathered (a collective, in key order on every rank)."""
    return {k: whole(v) for k, v in state.items()}


def sharding_refusal(t: torch.Tensor | None) -> str | None:
    """Why this parameter cannot be used by Delta-LoRA as it is sharded, or None (whole or FSDP2 shard)."""
    if t is None:
        return None
    if is_dtensor(t):
        bad = [p for p in t.placements if type(p).__name__ not in ("Shard", "Replicate")]
        if bad:
            return (
                f"a DTensor with placement {type(bad[0]).__name__} ({bad[0]}; tensor parallel?), not "
                "supported: Delta-LoRA supports FSDP2's Shard/Replicate placements"
            )
        return None
    if hasattr(t, "ds_id") or hasattr(t, "ds_status"):
        return (
            "partitioned by DeepSpeed ZeRO-3, which is not supported (its optimizer steps flat fp32 "
            f"partitions outside the model's parameters). {_FSDP1_HINT}"
        )
    if getattr(t, "_is_flat_param", False):
        return f"an FSDP1 flat parameter, which is not supported. {_FSDP1_HINT}"
    if t.numel() == 0:
        return (
            "empty on this process (a parameter partitioned by a framework other than FSDP2), which is not "
            f"supported. {_FSDP1_HINT}"
        )
    return None


def check_shardable(name: str, tensors: dict[str, torch.Tensor | None]) -> None:
    for what, t in tensors.items():
        why = sharding_refusal(t)
        if why is not None:
            raise ValueError(f"model: {what} of {name} is {why}")


def refuse_fsdp1(model: Any) -> None:
    name = type(model).__name__
    if name == "FullyShardedDataParallel":
        raise ValueError(
            f"model: it is wrapped by FSDP1 ({name}, flat parameters), which is not supported. {_FSDP1_HINT}"
        )


DEEPSPEED_CLASSES = ("DeepSpeedEngine", *_ZERO_OPTIMIZERS)


def refuse_deepspeed(model: Any, optimizer: Any) -> None:
    """Refuse DeepSpeed (any ZeRO stage) with the real reason, before the generic optimizer check would.

    ZeRO-1/2 hand the torch optimizer flat fp32 partitions, not lora_A/lora_B, and copy the updated values
    back into the model's A and B only after that optimizer's step returns: hooks on it would read stale
    factors. ZeRO-3 also shards W. So no stage gives Algorithm 1.
    """
    seen: list[tuple[str, str]] = []
    for obj, what in ((model, "model"), (optimizer, "optimizer")):
        for _ in range(8):
            if obj is None:
                break
            cls = type(obj)
            if cls.__module__.startswith("deepspeed") or cls.__name__ in DEEPSPEED_CLASSES:
                seen.append((what, cls.__name__))
                break
            obj = getattr(obj, "module" if what == "model" else "optimizer", None)
    if seen:
        field, name = seen[0]
        raise ValueError(
            f"{field}: it is DeepSpeed's {name}. DeepSpeed is not supported at any ZeRO stage: ZeRO-1/2 give "
            "the optimizer flat fp32 partitions and copy the new values into lora_A/lora_B only after its "
            "step, so Delta-LoRA's step hooks would read stale factors; ZeRO-3 also shards W. Use "
            "DistributedDataParallel (torchrun, or accelerate launch without a DeepSpeed config), or FSDP2 "
            "(torch.distributed.fsdp.fully_shard) to shard the model (docs/sharding.md)"
        )


def refuse_zero_optimizer(optimizer: Any) -> None:
    """The DeepSpeed refusal for an optimizer reached on its own (unwrap_optimizer)."""
    refuse_deepspeed(None, optimizer)


def local_block(w: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """(this rank's block of W, the (rows, cols) of W it covers)."""
    if not is_dtensor(w):
        return w.data, (slice(None), slice(None))
    try:
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
    except ImportError:  # pragma: no cover - torch < 2.5
        from torch.distributed._tensor._utils import compute_local_shape_and_global_offset
    local = w.to_local()
    shape, offset = compute_local_shape_and_global_offset(w.shape, w.device_mesh, w.placements)
    if tuple(shape) != tuple(local.shape):  # pragma: no cover - a placement torch itself lays out otherwise
        raise RuntimeError(f"local shard of shape {tuple(local.shape)}, expected {tuple(shape)}")
    return local, tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))


def whole_pair(x1: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(whole x1, whole x0), with one collective for both when they are DTensors of one layout.

    The two local shards are stacked on a new leading dimension and gathered as one DTensor whose shard
    dimensions move up by one; `shape` is given, so uneven and empty shards gather as FSDP2 laid them out.
    Any other layout gathers each (two collectives). Every rank decides alike: only global metadata
    (placements, shapes, mesh) is read.
    """
    if not (is_dtensor(x1) and is_dtensor(x0)):
        return whole(x1), whole(x0)
    from torch.distributed.tensor import DTensor, Replicate, Shard

    same = x1.placements == x0.placements and x1.shape == x0.shape and x1.device_mesh == x0.device_mesh
    if not same or any(type(p) not in (Shard, Replicate) for p in x1.placements):
        return whole(x1), whole(x0)
    placements = [Shard(p.dim + 1) if isinstance(p, Shard) else p for p in x1.placements]
    shape = torch.Size((2, *x1.shape))
    stride = torch.empty(shape, device="meta").stride()  # contiguous, as torch.stack makes it
    local = torch.stack((x1.to_local(), x0.to_local()))
    both = DTensor.from_local(local, x1.device_mesh, placements, shape=shape, stride=stride).full_tensor()
    return both[0], both[1]


def _rows_shared(w: torch.Tensor, b: torch.Tensor) -> bool:
    """True when this rank holds the same rows of `b` as of `w` (both split on dim 0 alike): no gather.

    Decided from global metadata only, so that every rank takes the same branch of a collective.
    """
    if (
        not (is_dtensor(w) and is_dtensor(b))
        or w.device_mesh != b.device_mesh
        or w.placements != b.placements
    ):
        return False
    # only row splits: under shard_placement_fn's Shard(1), B's shard would hold some of its r columns
    rows_only = all(
        type(p).__name__ == "Replicate" or (type(p).__name__ == "Shard" and p.dim in (0, -w.ndim))
        for p in w.placements
    )
    return rows_only and b.shape[0] == w.shape[0]


def block_factors(
    w: torch.Tensor,
    fan_in_fan_out: bool,
    A1: torch.Tensor,  # noqa: N803 (math names)
    B1: torch.Tensor,  # noqa: N803
    A0: torch.Tensor,  # noqa: N803
    B0: torch.Tensor,  # noqa: N803
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(target, A1, B1, A0, B0): this rank's block of W and the rows of B / columns of A it needs.

    Called from the inplace engine's post-step hook on every rank (gathers are collectives). Unsharded
    W: the inputs unchanged. Sharded Linear: B's own shard holds W's rows, so only A is gathered (one
    collective for A and its pre-step copy); Conv1D: A and B are gathered (two).
    """
    target, (rows, cols) = local_block(w)
    out_idx, in_idx = (cols, rows) if fan_in_fan_out else (rows, cols)  # Conv1D stores W as (in, out)
    A1, A0 = whole_pair(A1, A0)  # noqa: N806
    if not fan_in_fan_out and _rows_shared(w, B1) and _rows_shared(w, B0):
        B1, B0 = B1.to_local(), B0.to_local()  # noqa: N806 - split exactly as W's rows (_rows_shared)
    else:
        B1, B0 = whole_pair(B1, B0)  # noqa: N806
        B1, B0 = B1[out_idx], B0[out_idx]  # noqa: N806
    return target, A1[:, in_idx], B1, A0[:, in_idx], B0


def copy_weight(w: torch.Tensor, src: torch.Tensor) -> None:
    """Restore a saved W into `w`, whether each is a whole tensor or an FSDP2 shard."""
    if is_dtensor(src) and is_dtensor(w) and src.placements == w.placements and src.shape == w.shape:
        w.to_local().copy_(src.to_local())
        return
    target, (rows, cols) = local_block(w)
    src = whole(src)  # a shard saved under another layout: gather (every rank restores its state)
    if tuple(src.shape) != tuple(w.shape):
        raise ValueError(f"state: saved weight has shape {tuple(src.shape)}, the model's is {tuple(w.shape)}")
    target.copy_(src[rows, cols])


def refuse_sharded_merge(slots: list[Any]) -> None:
    if any(is_dtensor(s.weight) for s in slots):
        raise ValueError(
            "model: its weights are FSDP2 shards, so merging would need the whole W on one process; "
            "export_adapter() (rank-2r, every rank calls it) and merge it into the unsharded base model"
        )


def refuse_sharded_save(engine: str, slots: list[Any]) -> None:
    if engine == "inplace" and any(is_dtensor(s.weight) for s in slots):
        raise ValueError(
            "engine='inplace' on an FSDP2 model: the state includes the written W, which is sharded; "
            "checkpoint it with each rank's optimizer.state_dict() (Delta-LoRA's state travels there, W as "
            "this rank's shard) or with torch.distributed.checkpoint, not with DeltaLoRA.save"
        )
