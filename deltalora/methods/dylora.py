"""DyLoRA baseline (Valipour et al., EACL 2023, arXiv 2210.07558) on top of stock PEFT LoRA.

DyLoRA trains one LoRA adapter for every rank 1..r at once. Before each optimizer step it draws a
rank b uniformly from 1..r (one b shared by all adapted layers), and the LoRA branch of every layer
uses only the truncated factors:

    h = W0 x + (alpha / b) * B[:, :b] @ A[:b, :] @ x

Evaluation uses the full rank r by default, where the branch is exactly PEFT's LoRA (alpha / r).

Choices, checked against the official code (GitHub ``huawei-noah/Efficient-NLP``, folder ``DyLoRA/``,
commit 278c345d, the code the paper's README points to; ``huawei-noah/KD-NLP/DyLoRA`` is the older
address of the same code):

1. **Scale of a truncated rank: alpha / b.** ``loralib/layers.py`` keeps ``scaling = lora_alpha / r``
   and ``loralib/DyLoRA.py::dynamic.forward`` multiplies each truncated factor by
   ``sqrt(r / b)``; the product is (alpha / r) * (r / b) = alpha / b. The first author's PEFT port
   (GitHub ``mojivalipour/peft``, ``src/peft/tuners/lora.py``) multiplies the branch by
   ``scaling * r / b``: the same alpha / b. Here the factor r / b is applied once, on B's output,
   which gives the same forward values and the same gradients as sqrt(r/b) on each factor.
2. **Which rows are trained: only the b-th ("frozen" mode) by default.** The official training
   callback (``examples/NLU/examples/text-classification/run_glue.py``, ``callback_step``) calls
   ``model.set_rank(torch.randint(0, r), frozen=True)`` in ``on_step_begin``: rows 1..b-1 of A and
   columns 1..b-1 of B are used in the forward pass but detached, so only row b of A and column b
   of B get a gradient. (``set_rank``'s own default is ``frozen=False``, which trains all of
   1..b; that is available here as ``frozen=False``.) Rows/columns > b get no gradient in either
   mode. Note that a zero gradient is not a frozen parameter under AdamW: moments from earlier steps
   and weight decay still move those rows, exactly as in the official code.
3. **One draw per optimizer step**, in ``on_step_begin`` like the official callback, so all
   micro-batches of a gradient-accumulation step and any gradient-checkpointing recomputation use
   the same b. The official code draws from torch's global RNG; here a private, seeded
   ``torch.Generator`` (seed = the run's seed) makes the rank sequence reproducible and resumable,
   and gives every data-parallel process the same b.
4. **Evaluation rank.** The official ``dynamic`` module evaluates at whatever rank was last set and
   its script loops over all ranks; here eval mode uses ``eval_rank`` (default: full rank r), so a
   model in ``eval()`` is plain PEFT LoRA unless a smaller evaluation rank is asked for.
5. **Defaults** r=8, alpha=16, dropout 0 are those of the official RoBERTa-base GLUE scripts
   (``examples/NLU/roberta_base_*.sh``: ``--lora_r 8 --lora_alpha 16``; its ``lora.Linear`` is built
   without dropout). Their LR / epochs / batch sizes follow the LoRA scripts and are the runner's
   business, not this module's.

Mechanism: the PEFT adapter's ``lora_A[adapter]`` and ``lora_B[adapter]`` ``nn.Linear`` modules get
their class swapped to a subclass whose ``forward`` slices the existing weight. No parameter is
created or renamed, so PEFT state-dict keys, saving, merging and ``deepcopy``/pickle keep working;
``merge_adapter``/``merge_and_unload`` always merge the full-rank adapter.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import TrainerCallback

from .base import Method, MethodContext

__all__ = [
    "METHOD",
    "DyLoRA",
    "DyLoRAController",
    "DyLoRARankCallback",
    "get_controller",
    "install_dylora",
    "uninstall_dylora",
]

CONTROLLER_ATTR = "dylora_controller"


class DyLoRAController:
    """Holds the rank used by every DyLoRA layer of one model, and the seeded sampler that draws it.

    Training mode (``module.training``): layers use ``rank`` (b in 1..r), or the full rank r when no
    rank is set (``rank is None``, e.g. before the first draw or after ``full_rank()``).
    Eval mode: layers use ``eval_rank`` (None means the full rank r).

    For a custom loop call ``sample()`` once per optimizer step, before the forward pass(es).
    """

    def __init__(self, r: int, seed: int = 0, frozen: bool = True, eval_rank: int | None = None):
        if r < 1:
            raise ValueError(f"DyLoRA needs r >= 1, got {r}")
        self.r = int(r)
        self.seed = int(seed)
        self.frozen = bool(frozen)
        self.rank: int | None = None
        self.eval_rank: int | None = None
        self.set_eval_rank(eval_rank)
        self.num_draws = 0
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        self.layers: list[nn.Module] = []  # the PEFT LoRA layers driven by this controller

    # -- rank control -------------------------------------------------------------------------
    def _check(self, b: int) -> int:
        b = int(b)
        if not 1 <= b <= self.r:
            raise ValueError(f"rank must be in 1..{self.r}, got {b}")
        return b

    def sample(self) -> int:
        """Draw b uniformly from 1..r with the private generator, make it the training rank, return it."""
        b = int(torch.randint(1, self.r + 1, (1,), generator=self.generator).item())
        self.num_draws += 1
        self.rank = b
        return b

    def set_rank(self, b: int) -> None:
        """Set the training rank by hand (does not advance the sampler)."""
        self.rank = self._check(b)

    def full_rank(self) -> None:
        """Training-mode forward passes use the full rank r again (plain LoRA, nothing detached)."""
        self.rank = None

    def set_eval_rank(self, b: int | None) -> None:
        """Rank used in eval mode; None (default) means the full rank r."""
        self.eval_rank = None if b is None else self._check(b)

    def active_rank(self, training: bool) -> int | None:
        """The rank a layer uses now; None means untruncated (plain LoRA)."""
        b = self.rank if training else self.eval_rank
        if b is None or (b == self.r and not (training and self.frozen)):
            return None  # full rank with every row trainable: exactly PEFT's LoRA forward
        return b

    # -- sampler state ------------------------------------------------------------------------
    def reset(self) -> None:
        """Restart the rank sequence from the seed."""
        self.generator.manual_seed(self.seed)
        self.num_draws = 0
        self.rank = None

    def sync_to_step(self, step: int) -> None:
        """Position the sampler after `step` draws (one draw per optimizer step), replaying from the seed.

        This is how a resumed Trainer run continues the same rank sequence without any extra file:
        the draw count equals the checkpoint's ``global_step``.
        """
        step = int(step)
        if step == self.num_draws:
            return
        self.reset()
        for _ in range(step):
            self.sample()

    def state_dict(self) -> dict[str, Any]:
        return {
            "r": self.r,
            "seed": self.seed,
            "frozen": self.frozen,
            "rank": self.rank,
            "eval_rank": self.eval_rank,
            "num_draws": self.num_draws,
            "generator_state": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["r"]) != self.r:
            raise ValueError(f"state is for r={state['r']}, this controller has r={self.r}")
        self.seed = int(state["seed"])
        self.frozen = bool(state["frozen"])
        self.rank = state["rank"]
        self.eval_rank = state["eval_rank"]
        gen_state = state.get("generator_state")
        if gen_state is not None:
            self.generator.set_state(torch.as_tensor(gen_state, dtype=torch.uint8))
            self.num_draws = int(state["num_draws"])
        else:  # JSON-friendly state without the generator bytes: replay
            self.sync_to_step(int(state["num_draws"]))
            self.rank = state["rank"]

    def __repr__(self) -> str:
        return (
            f"DyLoRAController(r={self.r}, rank={self.rank}, eval_rank={self.eval_rank}, "
            f"frozen={self.frozen}, seed={self.seed}, num_draws={self.num_draws}, layers={len(self.layers)})"
        )


def _truncated(weight: torch.Tensor, b: int, dim: int, frozen: bool) -> torch.Tensor:
    """First b slices of `weight` along `dim`; with `frozen`, only the b-th one carries a gradient."""
    w = weight.narrow(dim, 0, b)
    if frozen and b > 1 and torch.is_grad_enabled() and weight.requires_grad:
        w = torch.cat([weight.narrow(dim, 0, b - 1).detach(), weight.narrow(dim, b - 1, 1)], dim=dim)
    return w


class _DyLoRADown(nn.Linear):
    """PEFT's lora_A (weight r x in) with its output truncated to the first b ranks."""

    _dylora: DyLoRAController

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctl = self._dylora
        b = ctl.active_rank(self.training)
        if b is None:
            return super().forward(x)
        w = _truncated(self.weight, b, 0, self.training and ctl.frozen)
        bias = None if self.bias is None else self.bias[:b]
        return F.linear(x, w, bias)


class _DyLoRAUp(nn.Linear):
    """PEFT's lora_B (weight out x r) fed b ranks; the output is scaled by r / b (so alpha/r -> alpha/b)."""

    _dylora: DyLoRAController

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        ctl = self._dylora
        b = ctl.active_rank(self.training)
        if b is None:
            return super().forward(h)
        w = _truncated(self.weight, b, 1, self.training and ctl.frozen)
        out = F.linear(h, w) * (ctl.r / b)
        return out if self.bias is None else out + self.bias


def install_dylora(
    model: nn.Module,
    seed: int = 0,
    frozen: bool = True,
    eval_rank: int | None = None,
    adapter_name: str = "default",
) -> DyLoRAController:
    """Make every PEFT LoRA layer of `model` (adapter `adapter_name`) a DyLoRA layer; return the controller.

    The controller is also stored as ``model.dylora_controller``.
    """
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and adapter_name in m.lora_A]
    if not layers:
        raise ValueError(f"no PEFT LoRA layer with adapter {adapter_name!r} found; apply LoRA first")
    ranks = {int(m.r[adapter_name]) for m in layers}
    if len(ranks) != 1:
        raise ValueError(f"DyLoRA needs one rank for all layers, found {sorted(ranks)}")
    ctl = DyLoRAController(ranks.pop(), seed=seed, frozen=frozen, eval_rank=eval_rank)
    for layer in layers:
        if adapter_name in layer.lora_variant:
            raise ValueError("DyLoRA cannot be combined with a LoRA variant (DoRA etc.)")
        down, up = layer.lora_A[adapter_name], layer.lora_B[adapter_name]
        if type(down) not in (nn.Linear, _DyLoRADown) or type(up) not in (nn.Linear, _DyLoRAUp):
            raise TypeError(f"DyLoRA supports nn.Linear LoRA factors only, got {type(down)}, {type(up)}")
        down.__class__, up.__class__ = _DyLoRADown, _DyLoRAUp
        down._dylora = up._dylora = ctl
        ctl.layers.append(layer)
    setattr(model, CONTROLLER_ATTR, ctl)
    return ctl


def uninstall_dylora(model: nn.Module) -> None:
    """Turn the DyLoRA layers back into plain PEFT LoRA layers (weights untouched)."""
    for m in model.modules():
        if isinstance(m, (_DyLoRADown, _DyLoRAUp)):
            m.__class__ = nn.Linear
            del m._dylora
    if CONTROLLER_ATTR in model.__dict__:
        delattr(model, CONTROLLER_ATTR)


def get_controller(model: nn.Module) -> DyLoRAController:
    """The controller installed on `model` (or on any wrapper/child of it)."""
    ctl = model.__dict__.get(CONTROLLER_ATTR)
    if ctl is not None:
        return ctl
    for m in model.modules():
        if isinstance(m, (_DyLoRADown, _DyLoRAUp)):
            return m._dylora
    raise ValueError("model has no DyLoRA layers; call install_dylora first")


class DyLoRARankCallback(TrainerCallback):
    """Draws the DyLoRA rank once per optimizer step (``on_step_begin``, as the official code does).

    ``on_train_begin`` positions the sampler at ``state.global_step`` draws, so a run resumed from a
    checkpoint continues the same rank sequence. ``on_train_end`` returns to the full rank.
    """

    def __init__(self, controller: DyLoRAController):
        self.controller = controller

    def on_train_begin(self, args, state, control, **kwargs):
        self.controller.sync_to_step(state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self.controller.sample()

    def on_train_end(self, args, state, control, **kwargs):
        self.controller.full_rank()

    def state_dict(self) -> dict[str, Any]:
        return self.controller.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state)


class DyLoRA(Method):
    name: ClassVar[str] = "dylora"
    description: ClassVar[str] = (
        "DyLoRA (Valipour et al. 2023): LoRA trained at a random rank b~U{1..r} per step, scale alpha/b"
    )
    # r/alpha/dropout: official RoBERTa GLUE scripts. frozen=True: the official training callback
    # (only the b-th row/column gets a gradient). eval_rank=0 means the full rank r.
    defaults: ClassVar[dict[str, Any]] = {"r": 8, "alpha": 16, "dropout": 0.0, "frozen": True, "eval_rank": 0}

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        hp = {**self.defaults, **hp}
        config = LoraConfig(
            r=int(hp["r"]),
            lora_alpha=hp["alpha"],
            lora_dropout=float(hp["dropout"]),
            target_modules=list(ctx.target_modules),
            fan_in_fan_out=ctx.fan_in_fan_out,
            task_type=ctx.task_type,
            modules_to_save=list(ctx.modules_to_save) or None,
            bias="none",
        )
        peft_model = get_peft_model(model, config)
        install_dylora(
            peft_model,
            seed=ctx.seed,
            frozen=bool(hp["frozen"]),
            eval_rank=int(hp["eval_rank"]) or None,
        )
        return peft_model

    def callbacks(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> list:
        return [DyLoRARankCallback(get_controller(model))]


METHOD = DyLoRA()
