"""DeltaLoRACallback inside a real transformers.Trainer (tiny float64 BERT, CPU)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from tiny_models import batches, logits, lora_model
from transformers import Trainer, TrainingArguments

from deltalora import DeltaLoRACallback
from deltalora.delta_lora import STATE_FILE


def dataset(n=48):
    rows = [b for b in batches("bert", n // 4)]
    ids = torch.cat([b["input_ids"] for b in rows])
    labels = torch.cat([b["labels"] for b in rows])
    return Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist()})


def run(tmp_path, engine, *, accum=1, max_steps=12, save_steps=None, resume=None, model=None, callback=None):
    model = model or lora_model("bert")
    cb = callback or DeltaLoRACallback(update_ratio=2.0, start_step=3, engine=engine)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=accum,
        max_steps=max_steps,
        learning_rate=1e-2,
        lr_scheduler_type="linear",
        warmup_steps=2,
        weight_decay=0.01,
        logging_steps=1000,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        report_to=[],
        seed=0,
        data_seed=0,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset(), callbacks=[cb])
    trainer.train(resume_from_checkpoint=resume)
    return model, cb, trainer


def test_trainer_engines_agree_and_count_optimizer_steps(tmp_path):
    m_in, cb_in, tr = run(tmp_path / "a", "inplace", accum=2)
    m_fo, cb_fo, _ = run(tmp_path / "b", "folded", accum=2)
    assert cb_in.delta_lora.step == tr.state.global_step == 12  # micro-batches are not steps
    assert (logits(m_in, "bert") - logits(m_fo, "bert")).abs().max().item() < 1e-9
    plain, _, _ = run(tmp_path / "c", "folded", accum=2,
                      callback=DeltaLoRACallback(update_ratio=0.0, start_step=3))
    assert (logits(m_fo, "bert") - logits(plain, "bert")).abs().max().item() > 1e-4


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_trainer_resume_from_checkpoint_is_exact(tmp_path, engine):
    full, _, _ = run(tmp_path / "full", engine, max_steps=12)
    out = tmp_path / "resumed"
    run(out, engine, max_steps=12, save_steps=6)  # writes checkpoint-6 and checkpoint-12
    assert (out / "checkpoint-6" / STATE_FILE).is_file()
    resumed, cb, _ = run(out, engine, max_steps=12, resume=str(out / "checkpoint-6"))
    assert cb.delta_lora.step == 12
    assert torch.equal(logits(resumed, "bert"), logits(full, "bert"))


def test_resume_without_state_file_fails_clearly(tmp_path):
    out = tmp_path / "r"
    run(out, "folded", max_steps=6, save_steps=6)
    (out / "checkpoint-6" / STATE_FILE).unlink()
    with pytest.raises(RuntimeError, match="has no Delta-LoRA state"):
        run(out, "folded", max_steps=12, resume=str(out / "checkpoint-6"))


def test_callback_validates_arguments():
    with pytest.raises(ValueError, match="engine must be one of"):
        DeltaLoRACallback(engine="x")
    with pytest.raises(ValueError, match="start_step must be a non-negative integer"):
        DeltaLoRACallback(start_step=-3)
