"""DeltaLoRACallback inside a real transformers.Trainer (tiny float64 BERT, CPU)."""

from __future__ import annotations

import shutil

import pytest
import torch
from peft import PeftModel
from tiny_models import base_model, batches, examples, logits, lora_model, trainer_args
from transformers import Trainer, TrainingArguments

from deltalora import DeltaLoRA, DeltaLoRACallback
from deltalora.core.delta_lora import OPTIMIZER_STATE_KEY


def run(tmp_path, engine, *, accum=1, max_steps=12, save_steps=None, resume=None, model=None, callback=None):
    model = model or lora_model("bert")
    cb = callback or DeltaLoRACallback(update_ratio=2.0, start_step=3, engine=engine)
    args = TrainingArguments(
        **trainer_args(
            tmp_path,
            gradient_accumulation_steps=accum,
            max_steps=max_steps,
            lr_scheduler_type="linear",
            warmup_steps=2,
            save_strategy="steps" if save_steps else "no",
            save_steps=save_steps or 500,
        )
    )
    trainer = Trainer(model=model, args=args, train_dataset=examples(48), callbacks=[cb])
    trainer.train(resume_from_checkpoint=resume)
    return model, cb, trainer


def test_trainer_engines_agree_and_count_optimizer_steps(tmp_path):
    m_in, cb_in, tr = run(tmp_path / "a", "inplace", accum=2)
    m_fo, cb_fo, _ = run(tmp_path / "b", "folded", accum=2)
    assert cb_in.delta_lora.step == tr.state.global_step == 12  # micro-batches are not steps
    assert (logits(m_in, "bert") - logits(m_fo, "bert")).abs().max().item() < 1e-9
    plain, _, _ = run(
        tmp_path / "c", "folded", accum=2, callback=DeltaLoRACallback(update_ratio=0.0, start_step=3)
    )
    assert (logits(m_fo, "bert") - logits(plain, "bert")).abs().max().item() > 1e-4


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_trainer_resume_from_any_checkpoint_path_is_exact(tmp_path, engine):
    full, _, _ = run(tmp_path / "full", engine, max_steps=12)
    out = tmp_path / "first"
    run(out, engine, max_steps=12, save_steps=6)  # writes checkpoint-6 and checkpoint-12
    moved = tmp_path / "elsewhere" / "my-ckpt"  # not <output_dir>/checkpoint-N
    shutil.copytree(out / "checkpoint-6", moved)
    shutil.rmtree(out)
    resumed, cb, _ = run(tmp_path / "second", engine, max_steps=12, resume=str(moved))
    assert cb.delta_lora.restored_from_optimizer and cb.delta_lora.step == 12
    assert torch.equal(logits(resumed, "bert"), logits(full, "bert"))


def test_resume_without_delta_lora_state_fails_clearly(tmp_path):
    out = tmp_path / "r"
    run(out, "folded", max_steps=6, save_steps=6)
    opt_file = out / "checkpoint-6" / "optimizer.pt"
    sd = torch.load(opt_file, weights_only=True)
    assert sum(OPTIMIZER_STATE_KEY in st for st in sd["state"].values()) == 1
    for st in sd["state"].values():
        st.pop(OPTIMIZER_STATE_KEY, None)
    torch.save(sd, opt_file)
    with pytest.raises(RuntimeError, match="has no Delta-LoRA state"):
        run(out, "folded", max_steps=12, resume=str(out / "checkpoint-6"))


@pytest.mark.parametrize("engine", ["inplace", "folded"])
def test_export_dir_writes_the_rank_2r_adapter(tmp_path, engine):
    cb = DeltaLoRACallback(update_ratio=2.0, start_step=3, engine=engine, export_dir=tmp_path / "export")
    model, cb, trainer = run(tmp_path / "o", engine, callback=cb)
    loaded = PeftModel.from_pretrained(base_model("bert"), str(tmp_path / "export"))
    assert loaded.peft_config["default"].r == 2 * model.peft_config["default"].r
    assert (logits(loaded, "bert") - logits(model, "bert")).abs().max().item() < 1e-9
    # what trainer.save_model() writes is the rank-r LoRA part only: not the trained model
    trainer.save_model(str(tmp_path / "saved"))
    lora_only = PeftModel.from_pretrained(base_model("bert"), str(tmp_path / "saved"))
    assert (logits(lora_only, "bert") - logits(model, "bert")).abs().max().item() > 1e-4


def test_attach_moves_the_hooks_to_a_new_optimizer():
    model = lora_model("bert")
    params = [p for p in model.parameters() if p.requires_grad]
    old = torch.optim.AdamW(params, lr=1e-2)
    handle = DeltaLoRA(model, old, update_ratio=2.0, start_step=1, engine="folded")
    for b in batches("bert", 2):
        model(**b).loss.backward()
        old.step()
        old.zero_grad()
    new = torch.optim.AdamW(params, lr=1e-2)
    handle.attach(new)
    assert handle.optimizer is new
    model(**batches("bert", 1)[0]).loss.backward()
    old.step()  # no longer hooked
    assert handle.step == 2
    new.step()
    assert handle.step == 3


def test_callback_validates_arguments():
    with pytest.raises(ValueError, match="engine must be one of"):
        DeltaLoRACallback(engine="x")
    with pytest.raises(ValueError, match="start_step must be a non-negative integer"):
        DeltaLoRACallback(start_step=-3)
