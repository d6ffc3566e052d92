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

from ._runtime import unwrap_model, unwrap_optimizer
from ._sharding import is_sharded
from .delta_lora import ENGINES, OPTIMIZER_STATE_KEY, DeltaLoRA, _barrier, _check_number, check_export_dir


class DeltaLoRACallback(TrainerCallback):
    """Delta-LoRA for `transformers.Trainer`: attaches to the Trainer's optimizer at train begin.

    A thin shell (as PEFT's AdaMSS callback is) around `DeltaLoRA`, whose optimizer hooks do the
    work; custom loops use `DeltaLoRA` directly.

    - Checkpoints: the Delta-LoRA state (step, snapshots, the inplace engine's W) travels inside the
      optimizer's state, which the Trainer saves in every checkpoint and loads on resume, so
      `trainer.train(resume_from_checkpoint=<any checkpoint path>)` continues exactly, in a fresh
      process or the same one. A resume whose checkpoint carries no Delta-LoRA state is refused.
    - `load_best_model_at_end=True`: the Trainer reloads the best checkpoint's adapter; the callback
      reloads that checkpoint's Delta-LoRA state with it (snapshot, step, the inplace engine's W).
    - A second `train()` with `model_init` (and so `hyperparameter_search`): each new model gets a new
      DeltaLoRA; the previous one is detached.
    - `trainer.save_model()` saves PEFT's rank-r adapter only, which is not the trained Delta-LoRA
      model. `export_dir=` writes the rank-2r adapter that is (`DeltaLoRA.export_adapter`) at the end
      of training, from the process that saves (the Trainer's `should_save`), then all ranks meet at a
      barrier; under FSDP2 every rank takes part (the export gathers the shards) and rank 0 writes. The
      location is checked when training begins: a non-empty directory that is not an earlier export, or
      the Trainer's `output_dir` (where checkpoints go), is refused before step 1.
    - Multi-GPU: DDP works (every process holds the same state); FSDP1 and DeepSpeed are refused.
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
        if self.export_dir is not None:
            check_export_dir(self.export_dir, "export_dir")
        self.delta_lora: DeltaLoRA | None = None
        self._restores_seen = 0

    def _check_export_dir(self, args: Any) -> None:
        if self.export_dir is None:
            return
        export, out = self.export_dir.resolve(), Path(args.output_dir).resolve()
        inside = out == export or export in out.parents
        under_checkpoint = out in export.parents and export.relative_to(out).parts[0].startswith(
            "checkpoint-"
        )
        if inside or under_checkpoint:
            raise ValueError(
                f"export_dir: {self.export_dir} would hold the Trainer's checkpoints "
                f"(output_dir={args.output_dir}); "
                "the export never replaces them. Use a separate directory, e.g. "
                "<output_dir>/delta_lora_adapter"
            )
        check_export_dir(self.export_dir, "export_dir")

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None, **kwargs: Any
    ) -> None:
        self._check_export_dir(args)
        if getattr(args, "load_best_model_at_end", False) and getattr(args, "save_only_model", False):
            raise ValueError(
                "load_best_model_at_end: with save_only_model=True the checkpoints hold no optimizer "
                "state, so "
                "the best checkpoint's Delta-LoRA state (snapshot, the inplace engine's W) cannot be reloaded"
            )
        if self.delta_lora is not None and unwrap_model(model) is not self.delta_lora.model:
            # a new model (model_init: a second train(), a hyperparameter_search trial): start afresh
            self.delta_lora.detach()
            self.delta_lora, self._restores_seen = None, 0
        if self.delta_lora is None:
            self.delta_lora = DeltaLoRA(model, optimizer, **self.kwargs)
        elif self.delta_lora.optimizer is not unwrap_optimizer(optimizer):
            self.delta_lora.attach(optimizer)  # a second train(): the Trainer may have built a new optimizer
        else:  # same optimizer: a state its load_state_dict left in place (no load hooks) is restored now
            self.delta_lora.restore_pending()
        restored = self.delta_lora.restores > self._restores_seen
        self._restores_seen = self.delta_lora.restores
        if state.global_step > 0 and not restored:
            raise RuntimeError(
                f"resuming at step {state.global_step}, but the checkpoint's optimizer state has no "
                "Delta-LoRA "
                "state (was it written without DeltaLoRACallback, or with save_only_model=True?): the run "
                "cannot continue exactly"
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.delta_lora is None:
            return
        best = getattr(state, "best_model_checkpoint", None)
        if getattr(args, "load_best_model_at_end", False) and best is not None:
            self._load_best(Path(best))
        if self.export_dir is not None:
            if is_sharded(self.delta_lora.slots):  # FSDP2: export gathers (a collective); rank 0 writes
                self.delta_lora.export_adapter(self.export_dir)
            else:
                if args.should_save:
                    self.delta_lora.export_adapter(self.export_dir, main_process_only=False)
                _barrier()

    def _load_best(self, checkpoint: Path) -> None:
        """The Trainer reloaded the best checkpoint's adapter; reload its Delta-LoRA state to match."""
        import torch

        opt_file = checkpoint / "optimizer.pt"
        if not opt_file.is_file():
            raise RuntimeError(
                f"load_best_model_at_end: {checkpoint} has no optimizer.pt, so its Delta-LoRA state cannot "
                "be "
                "reloaded with its adapter"
            )
        sd = torch.load(opt_file, map_location="cpu", weights_only=True)
        entries = [
            st[OPTIMIZER_STATE_KEY] for st in sd.get("state", {}).values() if OPTIMIZER_STATE_KEY in st
        ]
        if len(entries) != 1:
            raise RuntimeError(f"load_best_model_at_end: {opt_file} holds no Delta-LoRA state")
        st = dict(entries[0])
        st["engine"] = ENGINES[int(st["engine"])]
        self.delta_lora.load_state_dict(st)
        self._restores_seen = self.delta_lora.restores
