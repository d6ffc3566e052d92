"""The contract every fine-tuning method implements.

A method turns a freshly loaded pretrained model into the model the Trainer optimizes, and may add
Trainer callbacks (AdaLoRA's rank allocator, Delta-LoRA's W update, DyLoRA's rank sampling). Keeping
that to two calls is what lets a new baseline be one small module plus one registration line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn


@dataclass(frozen=True)
class MethodContext:
    """What a method needs to know about the model and the run, decided by the runner.

    target_modules: module-name suffixes the LoRA protocol adapts for this model family
        (["query", "value"] for BERT/RoBERTa, ["c_attn"] for GPT-2, ["q_proj", "v_proj"] for BART).
    fan_in_fan_out: True for GPT-2's Conv1D layers (weight stored in x out).
    task_type: a peft.TaskType name: "SEQ_CLS", "CAUSAL_LM" or "SEQ_2_SEQ_LM".
    modules_to_save: modules trained in full beside the adapter (a classification head).
    total_steps: optimizer steps the run will take (AdaLoRA's schedule and DyLoRA need it).
    seed: the run's seed, for methods that draw random numbers of their own.
    """

    target_modules: tuple[str, ...]
    fan_in_fan_out: bool = False
    task_type: str = "SEQ_CLS"
    modules_to_save: tuple[str, ...] = ()
    total_steps: int = 1
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Method:
    """Base class. Subclasses set `name`, `description` and `defaults` and implement `apply`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Method hyper-parameters and their defaults; the runner validates overrides against these keys
    # and types, so a misspelt `--set method.rr=4` fails instead of being ignored.
    defaults: ClassVar[dict[str, Any]] = {}

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        """Return the model to train (may wrap `model`); only parameters to train require grad."""
        raise NotImplementedError

    def check(self, run: dict[str, Any]) -> list[str]:
        """Problems with a resolved run configuration that each key alone cannot show (one per line).

        Why: a combination the method refuses (Delta-LoRA with dropout on its branch) must be reported
        when the configuration is validated, before a model is loaded or a file is written; found later,
        inside training, it would cost a model load and leave a half-made run folder behind.
        """
        return []

    def check_run(self, run: dict[str, Any]) -> list[str] | None:
        """Problems with a resolved run's `hp` (one line each), or None: checked against `defaults`.

        A method whose hyper-parameters are open-ended (the generic `peft` method: a config class's
        arguments) overrides this; it sees the whole run, so it can check against the model too.
        """
        return None

    def optimizer(self, model: nn.Module, hp: dict[str, Any], lr: float, weight_decay: float) -> Any:
        """The optimizer this method trains with, or None for the Trainer's AdamW (most methods)."""
        return None

    def callbacks(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> list:
        """transformers.TrainerCallback instances this method needs during training."""
        return []

    def extra_updated_params(self, model: nn.Module, hp: dict[str, Any]) -> int:
        """Parameters changed during training without a gradient (Delta-LoRA's W); 0 for most methods."""
        return 0

    def __repr__(self) -> str:
        return f"<method {self.name}>"
