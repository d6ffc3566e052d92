"""One run: train one (task, model, method, seed) with transformers.Trainer, evaluate, write one record.

Read top to bottom: `run()` resolves the data, the model and the method, builds a Trainer, trains
with evaluation at the end of every epoch, and writes `record.json` atomically and last. The
task-specific parts (tokenization, metrics, generation) live in `deltalora.tasks.runners`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from . import smoke
from .models import unwrap_peft
from .records import RECORD_NAME, PeakMemory, atomic_write_json, provenance
from .run_config import RunConfig, TrainConfig
from .tasks.dev_split import DEV_SPLIT


class DivergenceError(RuntimeError):
    """The training loss became NaN or inf."""


class RunError(ValueError):
    """A run cannot start: bad data, model or configuration (message says which)."""


def _trainer_class():
    import torch
    from transformers import Trainer

    class GuardedTrainer(Trainer):
        """Trainer that stops at the first non-finite loss instead of training on garbage."""

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            if not torch.isfinite(loss).all():
                raise DivergenceError(
                    f"training diverged: loss is {loss.detach().float().item()} at optimizer step "
                    f"{self.state.global_step + 1} (epoch {self.state.epoch:.2f}); no record written"
                )
            return loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Training batches of a causal LM: logits at the labelled positions only (deltalora/lm_loss.py).
            if getattr(self, "label_only_logits", False) and model.training and "labels" in inputs:
                from .lm_loss import label_only_inputs

                inputs = label_only_inputs(inputs)
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return GuardedTrainer


def latest_checkpoint(trainer_dir: Path) -> Path | None:
    """The newest checkpoint that was completely written (Trainer writes trainer_state.json last)."""
    if not trainer_dir.is_dir():
        return None
    done = []
    for p in trainer_dir.glob("checkpoint-*"):
        suffix = p.name.split("-", 1)[1]
        if suffix.isdigit() and (p / "trainer_state.json").is_file() and (p / ".complete").is_file():
            done.append((int(suffix), p))
    return max(done)[1] if done else None


def check_checkpoint(ckpt: Path, *, needs_delta_lora_state: bool) -> None:
    """Refuse, before resuming, a checkpoint that cannot continue the run exactly.

    A resumed run must continue the interrupted one exactly; a file damaged after the checkpoint was
    marked complete (a full disk, a copy cut short) or a Delta-LoRA run whose checkpoint lacks the
    Delta-LoRA state (step, snapshots and, for `inplace`, W: it travels in the optimizer's state, so
    in `optimizer.pt`) would otherwise fail deep inside the Trainer, or worse, continue from the wrong
    state. Checks are cheap: safetensors headers, torch zip directories, JSON, and for Delta-LoRA the
    optimizer file loaded with `weights_only=True` (as the Trainer loads it).
    """
    import json
    import zipfile

    from safetensors import safe_open

    advice = f"delete {ckpt} to resume from the previous checkpoint, or the run directory to start over"
    for f in sorted(ckpt.iterdir()):
        try:
            if f.suffix == ".safetensors":
                with safe_open(str(f), framework="pt") as st:
                    st.keys()
            elif f.suffix in (".pt", ".pth", ".bin"):
                zipfile.ZipFile(f).close()
            elif f.suffix == ".json":
                json.loads(f.read_text())
        except Exception as e:  # noqa: BLE001 - any failure to read means a damaged file
            first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RunError(
                f"checkpoint {ckpt} is corrupt: {f.name} cannot be read ({first_line}); {advice}"
            ) from None
    if needs_delta_lora_state and not _optimizer_file_has_delta_lora_state(ckpt / "optimizer.pt"):
        raise RunError(
            f"checkpoint {ckpt} has no Delta-LoRA state (optimizer.pt carries none), so the run "
            f"cannot continue exactly; {advice}"
        )


def _optimizer_file_has_delta_lora_state(path: Path) -> bool:
    import torch

    from .core.delta_lora import OPTIMIZER_STATE_KEY

    if not path.is_file():
        return False
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise RunError(
            f"checkpoint {path.parent} was refused by torch.load(weights_only=True) (unsafe or "
            f"corrupt pickle in {path.name}): {str(e).splitlines()[0]}; delete {path.parent} to "
            "restart from the previous one"
        ) from None
    return any(isinstance(v, dict) and OPTIMIZER_STATE_KEY in v for v in (sd.get("state") or {}).values())


def _training_arguments(
    cfg: RunConfig | dict[str, Any],
    out: Path,
    *,
    has_eval: bool,
    use_cuda: bool,
    smoothing_in_model: bool = False,
):
    from transformers import TrainingArguments

    cfg = RunConfig.coerce(cfg)
    t = cfg.train
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    kw: dict[str, Any] = {
        "output_dir": str(out / "trainer"),
        "per_device_train_batch_size": t.batch_size,
        "per_device_eval_batch_size": t.eval_batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "num_train_epochs": t.epochs,
        "max_steps": t.max_steps or -1,
        "learning_rate": t.lr,
        "lr_scheduler_type": t.lr_scheduler,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        # a causal LM smooths inside its own loss (lm_loss.install_loss), so wrappers see the loss
        "label_smoothing_factor": 0.0 if smoothing_in_model else t.label_smoothing,
        "eval_strategy": "epoch" if has_eval else "no",
        "save_strategy": "steps" if t.checkpoint_every else "no",
        "save_steps": t.checkpoint_every or 500,
        "save_total_limit": 2,
        "logging_strategy": "steps",
        "logging_steps": t.logging_steps,
        "report_to": report_to(t),
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "use_cpu": not use_cuda,
        "fp16": precision_used(t.precision, use_cuda) == "fp16",
        "bf16": t.precision == "bf16",
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,  # the runners keep exactly the model's inputs
        "disable_tqdm": os.environ.get("DELTALORA_NO_PROGRESS") == "1",
        "save_safetensors": True,
    }
    if t.group_by_length:
        # transformers >= 5 names it train_sampling_strategy; 4.x had a boolean group_by_length
        if "train_sampling_strategy" in fields:
            kw["train_sampling_strategy"] = "group_by_length"
        else:
            kw["group_by_length"] = True
    if t.warmup_steps:
        kw["warmup_steps"] = int(t.warmup_steps)
    elif "warmup_ratio" in fields:
        kw["warmup_ratio"] = t.warmup_ratio
    else:  # transformers 5: a float < 1 is a ratio
        kw["warmup_steps"] = float(t.warmup_ratio)
    if kw["report_to"] and "logging_dir" in fields:  # transformers 4.x; 5.x reads TENSORBOARD_LOGGING_DIR
        kw["logging_dir"] = str(out / "tensorboard")
    kw = {k: v for k, v in kw.items() if k in fields}
    return TrainingArguments(**kw)


def report_to(t: TrainConfig) -> list[str]:
    """train.report_to as the Trainer's list: "none" (the profiles' default) is [], "all" every installed
    integration, else names such as "tensorboard" or "tensorboard,wandb". An unknown or uninstalled name is
    a clear error before any training (transformers would fail later, or not at all)."""
    from transformers.integrations import integration_utils as iu

    value = t.report_to
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if str(v).strip()]
    if names in ([], ["none"]):
        return []
    available = iu.get_available_reporting_integrations()
    if names == ["all"]:
        return list(available)
    known = sorted(iu.INTEGRATION_TO_CALLBACK)
    for n in names:
        if n not in known:
            raise RunError(
                f"train.report_to: {n!r} is not an integration transformers knows; allowed: "
                "none, all, "
                f"{', '.join(known)}"
            )
        if n not in available:
            raise RunError(
                f"train.report_to: {n!r} is not installed here (installed: "
                f"{', '.join(available) or 'none'}); pip install it or use train.report_to=none"
            )
    return names


def precision_used(requested: str, use_cuda: bool) -> str:
    """The precision a run really trains in: fp16 mixed precision needs a GPU, so on CPU an fp16 request
    (the paper profile's "fp16 where a GPU exists") trains in fp32. The record keeps both."""
    if requested == "fp16" and not use_cuda:
        return "fp32"
    return requested


def _epoch_end_checkpoint_callback():
    from transformers import TrainerCallback

    class EvaluateBeforeEpochEndCheckpoint(TrainerCallback):
        """A checkpoint saved on an epoch's last step must hold that epoch's evaluation.

        Trainer saves a step checkpoint before the epoch-end evaluation runs, so a run resumed from it
        never evaluated that epoch (its record missed an epoch) and drew other dropout masks (the
        evaluation moves the global torch RNG after the saved RNG state). On such a step we evaluate
        first (Trainer evaluates before it saves) and skip the epoch-end evaluation of the same step.
        """

        def __init__(self) -> None:
            self.evaluated_step = -1

        def on_step_end(self, args, state, control, **kwargs):
            at_epoch_end = state.epoch is not None and abs(state.epoch - round(state.epoch)) < 1e-9
            by_epoch = getattr(args.eval_strategy, "value", args.eval_strategy) == "epoch"
            if control.should_save and at_epoch_end and by_epoch:
                control.should_evaluate = True
                self.evaluated_step = state.global_step
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.evaluated_step == state.global_step:
                control.should_evaluate = False
            return control

    return EvaluateBeforeEpochEndCheckpoint()


def _checkpoint_marker_callback():
    from transformers import TrainerCallback

    class CheckpointComplete(TrainerCallback):
        """Marks a checkpoint complete after every callback (e.g. Delta-LoRA's state) has written to it."""

        def on_save(self, args, state, control, **kwargs):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                (ckpt / ".complete").write_text(str(state.global_step))

    return CheckpointComplete()


def run(cfg: RunConfig | dict[str, Any], out: str | os.PathLike, *, on_trained: Any = None) -> dict[str, Any]:
    """Train and evaluate one configuration; write `out/record.json` last; return the record.

    cfg: a RunConfig, or the dict `deltalora.config.resolve_run` returns (typed here, once).

    on_trained: optional callable(model) called after training, before the record is written
    (tests use it to inspect weights).
    """
    import torch
    import transformers
    from transformers import set_seed

    from . import init_state, lm_loss
    from .analysis import capture_initial_weights, weight_update_analysis
    from .methods import MethodContext, get_method
    from .tasks.runners import get_runner

    started = time.time()
    cfg = RunConfig.coerce(cfg)
    t = cfg.train
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / RECORD_NAME
    if record_path.exists():  # a stale record must never survive a rerun that fails
        record_path.unlink()
    transformers.logging.set_verbosity_error()
    if t.threads:
        torch.set_num_threads(t.threads)
    use_cuda = torch.cuda.is_available()
    peak = PeakMemory()

    runner = get_runner(cfg)  # task-specific: data, model class, metrics
    data = runner.load_data()
    set_seed(cfg.seed)
    model, tokenizer = runner.load_model()
    stand_in = smoke.stand_ins(model, data)  # a `deltalora mirror` cache: a smoke run, whatever the config
    if stand_in:
        what = [f"model {stand_in['model']}"] if "model" in stand_in else []
        what += [f"data splits {', '.join(stand_in['data_splits'])}"] if "data_splits" in stand_in else []
        print(
            f"deltalora: this run loaded stand-ins of `deltalora mirror` ({'; '.join(what)}): "
            "its record says smoke",
            file=sys.stderr,
            flush=True,
        )
    runner.init_head(model, data)
    family = runner.family
    train_ds, eval_sets = runner.tokenize(data, tokenizer)

    steps_per_epoch = math.ceil(math.ceil(len(train_ds) / t.batch_size) / t.grad_accum)
    total_steps = t.max_steps or steps_per_epoch * t.epochs
    method = get_method(cfg.method)
    ctx = MethodContext(
        target_modules=family.target_modules,
        fan_in_fan_out=family.fan_in_fan_out,
        task_type=runner.peft_task_type,
        modules_to_save=runner.modules_to_save(model),
        total_steps=total_steps,
        seed=cfg.seed,
    )
    if t.init_from:  # the LoRA protocol's MNLI initialisation (deltalora/init_state.py)
        init_state.read_meta(t.init_from, method=cfg.method)
        init_state.load_base_weights(model, t.init_from)  # before capture: W_0 is the start of this run
    initial = capture_initial_weights(model, family.target_modules) if cfg.analysis.update_rank else None
    set_seed(cfg.seed)
    model = method.apply(model, cfg.hp_dict(), ctx)
    if t.init_from:
        init_state.load_adapter_state(model, t.init_from)
    callbacks = method.callbacks(model, cfg.hp_dict(), ctx)
    # A method's own optimizer (LoRA+, SGD for full FT); None: the Trainer builds its AdamW.
    optimizer = method.optimizer(model, cfg.hp_dict(), t.lr, t.weight_decay)
    cosine_cb = None
    if cfg.analysis.grad_cosine_steps:
        from .gradients import GradientCosineCallback

        cosine_cb = GradientCosineCallback(list(cfg.analysis.grad_cosine_steps))
        callbacks.append(cosine_cb)
    callbacks.append(_epoch_end_checkpoint_callback())
    callbacks.append(
        _checkpoint_marker_callback()
    )  # last: marks a checkpoint complete after the others wrote
    n_total = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    causal = lm_loss.is_causal_lm(model)
    if causal:  # the model computes its own (smoothed) loss: PEFT wrappers such as AdaLoRA add to it
        lm_loss.install_loss(model, label_smoothing=t.label_smoothing)
    label_only = bool(t.label_only_logits) and lm_loss.supports_label_only_logits(model)
    args = _training_arguments(
        cfg, out, has_eval=bool(eval_sets), use_cuda=use_cuda, smoothing_in_model=causal
    )
    # TensorBoard's event files go in the run's folder (transformers 5 reads this when the Trainer is made)
    tb_env = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    try:
        trainer = _trainer_class()(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_sets or None,
            data_collator=runner.collator(tokenizer, model),
            compute_metrics=runner.compute_metrics,
            callbacks=callbacks,
            optimizers=(optimizer, None),
        )
    finally:
        if tb_env is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = tb_env
    trainer.label_only_logits = label_only
    resume = latest_checkpoint(out / "trainer") if t.checkpoint_every else None
    resumed_from = None
    if resume is not None:  # a killed or pre-empted job's rerun: check the checkpoint and say so in its log
        check_checkpoint(resume, needs_delta_lora_state=_delta_lora_callback(callbacks) is not None)
        resumed_from = {"checkpoint": str(resume.relative_to(out)), "step": int(resume.name.split("-", 1)[1])}
        print(f"deltalora: resuming from checkpoint {resume}", file=sys.stderr, flush=True)
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except pickle.UnpicklingError as e:
        # Trainer loads checkpoint files with torch.load(weights_only=True): a pickle carrying code is
        # refused.
        raise RunError(
            f"checkpoint {resume} was refused by torch.load(weights_only=True) (unsafe or corrupt "
            f"pickle): {str(e).splitlines()[0]}; delete {resume} to restart from the previous one"
        ) from None

    if on_trained is not None:
        on_trained(model)
    history = trainer.state.log_history
    epochs = runner.epoch_metrics(history)
    final_eval = runner.final_evaluation(trainer, model, tokenizer, data, out)
    if final_eval is not None:  # scores computed after training (NLG generation) belong to the final state
        step = trainer.state.global_step
        if not epochs or epochs[-1]["step"] != step:
            epochs.append(
                {"epoch": round(trainer.state.epoch or 0, 3), "step": step, "metrics": {}, "extra_splits": {}}
            )
        epochs[-1]["metrics"].update(final_eval)
    metric = runner.metric_key
    if not epochs:
        raise RunError("no evaluation was recorded (no validation split?)")
    best = best_epoch(epochs, metric)
    delta = _delta_lora_summary(callbacks)
    record = {
        "schema_version": 1,
        "status": "complete",
        "task": cfg.task,
        "task_family": runner.spec.family,
        "model": cfg.model,
        "method": cfg.method,
        "row": cfg.row_name,
        "seed": cfg.seed,
        "profile": cfg.profile,
        "smoke": bool(t.smoke) or stand_in is not None,
        "stand_in": stand_in,
        "precision": {
            "requested": t.precision,
            "used": precision_used(t.precision, use_cuda),
            "device": "cuda" if use_cuda else "cpu",
        },
        "config": cfg.to_dict(),  # the resolved dict, exactly (RunConfig keeps which keys it was given)
        "metric": metric,
        "epochs": epochs,
        "best": best,
        "selected_on": "dev" if any(DEV_SPLIT in e.get("extra_splits", {}) for e in epochs) else "validation",
        "final": epochs[-1],
        "train_curve": [
            {"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"]}
            for h in history
            if "loss" in h and "eval_loss" not in h
        ],
        "train_summary": {
            k: v for k, v in (history[-1] if history else {}).items() if k.startswith("train_")
        },
        "steps": trainer.state.global_step,
        "params": {
            "total": n_total,
            "trainable": n_trainable,
            "extra_updated": method.extra_updated_params(model, cfg.hp_dict()),
        },
        "delta_lora": delta,
        "loss": {
            "label_smoothing": t.label_smoothing,
            "smoothing": "in model" if causal else "trainer",
            "label_only_logits": label_only,
        },
        "analysis": {
            **({"update_rank": weight_update_analysis(model, callbacks, initial)} if initial else {}),
            **({"grad_cosine": cosine_cb.to_record()} if cosine_cb is not None else {}),
        },
        **getattr(runner, "record_extra", {}),
        "provenance": {**provenance(started, peak), "resumed_from": resumed_from},
    }
    if t.save_init:  # for runs that start from this one (before the record: record => state complete)
        init_state.save_init_state(
            model,
            out / init_state.INIT_DIR,
            method=cfg.method,
            task=cfg.task,
            head=runner.modules_to_save(unwrap_peft(model)),
            delta_lora=_delta_lora_handle(callbacks),
        )
    atomic_write_json(out / "log_history.json", history)
    if not t.checkpoint_every or not os.environ.get("DELTALORA_KEEP_CHECKPOINTS"):
        shutil.rmtree(out / "trainer", ignore_errors=True)
    atomic_write_json(record_path, record)  # last: its presence means the run is complete
    return record


def _finite(x: Any, missing: float = -math.inf) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else missing


def _delta_lora_callback(callbacks: list) -> Any:
    from .core.callback import DeltaLoRACallback

    return next((cb for cb in callbacks if isinstance(cb, DeltaLoRACallback)), None)


def best_epoch(epochs: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The epoch with the best selection score (dev when evaluated, else validation).

    Ties go to the lower loss on the same split, then to the earlier epoch: a small dev split drawn from
    the training distribution saturates (many epochs reach the same count of correct examples), and
    without the loss the earliest of those would win however much better later epochs fit.
    """
    return max(
        epochs,
        key=lambda e: (
            _finite(_selection_score(e, metric)),
            -_finite(_selection_score(e, "loss"), missing=math.inf),
            -e["epoch"],
        ),
    )


def _selection_score(epoch: dict[str, Any], metric: str) -> Any:
    """The score the best epoch is chosen by: dev when the run evaluates a dev split, else validation.

    Choosing on validation and reporting validation favours the chosen epoch; dev is carved from train
    for this (deltalora/tasks/dev_split.py).
    """
    extra = epoch.get("extra_splits") or {}
    if DEV_SPLIT in extra:
        return extra[DEV_SPLIT].get(metric)
    return epoch["metrics"].get(metric)


def _delta_lora_handle(callbacks: list) -> Any:
    cb = _delta_lora_callback(callbacks)
    return cb.delta_lora if cb is not None else None


def _delta_lora_summary(callbacks: list) -> dict[str, Any] | None:
    from .core.callback import DeltaLoRACallback

    for cb in callbacks:
        if isinstance(cb, DeltaLoRACallback) and cb.delta_lora is not None:
            dl = cb.delta_lora
            return {
                "steps_counted": dl.step,
                "switched": dl.switched,
                "engine": dl.engine,
                "update_ratio": dl.update_ratio,
                "start_step": dl.start_step,
                "extra_updated_params": dl.extra_updated_params(),
            }
    return None


def summarize(record: dict[str, Any]) -> str:
    m = record["metric"]
    return (
        f"{record['task']} {record['method']} seed {record['seed']}: best {m} "
        f"{record['best']['metrics'][m]:.2f} (epoch {record['best']['epoch']}), final "
        f"{record['final']['metrics'][m]:.2f}; {record['provenance']['wall_time_s']:.1f}s"
    )


__all__ = ["DivergenceError", "RunError", "check_checkpoint", "latest_checkpoint", "run", "summarize"]
