"""`DeltaLoRACallback`: Delta-LoRA inside `transformers.Trainer`.

transformers is imported when this module is imported (the callback subclasses `TrainerCallback`),
so `from deltalora import DeltaLoRA` stays free of it; `deltalora.DeltaLoRACallback` loads this module
on first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ._sharding import is_sharded
from .delta_lora import ENGINES, DeltaLoRA, _check_number


class DeltaLoRACallback(TrainerCallback):
    """Delta-LoRA for `transformers.Trainer`: attaches to the Trainer's optimizer at train begin.

    A thin shell (as PEFT's AdaMSS callback is) around `DeltaLoRA`, whose optimizer hooks do the
    work; custom loops use `DeltaLoRA` directly.

    - Checkpoints: the Delta-LoRA state (step, snapshots, the inplace engine's W) travels inside the
      optimizer's state, which the Trainer saves in every checkpoint and loads on resume, so
      `trainer.train(resume_from_checkpoint=<any checkpoint path>)` continues exactly.
    - `trainer.save_model()` saves PEFT's rank-r adapter only, which is not the trained Delta-LoRA
      model. `export_dir=` writes the rank-2r adapter that is (`DeltaLoRA.export_adapter`) at the end
      of training, from the process that saves (the Trainer's `should_save`); under FSDP2 every rank
      takes part (the export gathers the shards) and rank 0 writes.
    - Multi-GPU: DDP works (every process holds the same state); FSDP1 and DeepSpeed ZeRO are refused.
      FSDP2 works in a custom loop (docs/sharding.md); under the Trainer it is untested.
    """

    def __init__(
        self,
        update_ratio: float = 2.0,
        start_step: int = 500,
        engine: str = "folded",
        allow_dropout: bool = False,
        *,
        allow_low_precision: bool = False,
        export_dir: str | os.PathLike | None = None,
    ) -> None:
        _check_number("update_ratio", update_ratio, integer=False)
        _check_number("start_step", start_step, integer=True)
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
        self.kwargs = dict(
            update_ratio=update_ratio,
            start_step=start_step,
            engine=engine,
            allow_dropout=allow_dropout,
            allow_low_precision=allow_low_precision,
        )
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.delta_lora: DeltaLoRA | None = None

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None, **kwargs: Any
    ) -> None:
        if self.delta_lora is None:
            self.delta_lora = DeltaLoRA(model, optimizer, **self.kwargs)
        else:  # a second train() call: the Trainer may have built a new optimizer
            self.delta_lora.attach(optimizer)
        if state.global_step > 0 and not self.delta_lora.restored_from_optimizer:
            if self.delta_lora.step != state.global_step:
                raise RuntimeError(
                    f"resuming at step {state.global_step}, but the checkpoint's optimizer state has no Delta-LoRA "
                    "state (was it written without DeltaLoRACallback, or with save_only_model=True?): the run "
                    "cannot continue exactly"
                )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.export_dir is None or self.delta_lora is None:
            return
        if is_sharded(self.delta_lora.slots):  # FSDP2: export gathers (a collective); rank 0 writes
            self.delta_lora.export_adapter(self.export_dir)
        elif args.should_save:
            self.delta_lora.export_adapter(self.export_dir, main_process_only=False)
