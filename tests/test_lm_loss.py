"""The causal-LM loss on labelled positions only (deltalora/lm_loss.py) changes nothing but the cost.

For every method of the registry on a tiny float64 GPT-2 (Conv1D targets), a batch shaped like the NLG
runner's (prompt tokens unlabelled, right padding unlabelled) gives the same loss and the same gradient
for every trainable parameter with and without `label_only_inputs`. Label smoothing inside the model
equals transformers' own LabelSmoother, and it keeps AdaLoRA's orthogonal regulariser, which the
Trainer's smoothing path drops.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import VOCAB, base_model, randomize_lora
from transformers.trainer_pt_utils import LabelSmoother

from deltalora import lm_loss
from deltalora.methods import MethodContext, get_method, registry

CTX = MethodContext(
    target_modules=("c_attn",), fan_in_fan_out=True, task_type="CAUSAL_LM", total_steps=20, seed=3
)


def _gpt2():
    return base_model("gpt2")  # float64, dropout off, Conv1D layers


def _batch(seed: int = 5) -> dict[str, torch.Tensor]:
    """Prompt + target rows of different lengths, right padded: labels only on the targets."""
    g = torch.Generator().manual_seed(seed)
    rows = [(7, 5), (3, 9), (11, 2), (5, 6)]  # (prompt length, target length)
    width = max(p + t for p, t in rows) + 2
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (p, t) in enumerate(rows):
        ids[i, : p + t] = torch.randint(1, VOCAB, (p + t,), generator=g)
        mask[i, : p + t] = 1
        labels[i, p : p + t] = ids[i, p : p + t]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _method_model(name: str):
    method = get_method(name)
    hp = dict(method.defaults)
    hp.update({k: v for k, v in {"r": 4, "alpha": 8.0, "dropout": 0.0}.items() if k in hp})
    model = method.apply(_gpt2(), hp, CTX)
    randomize_lora(model)
    lm_loss.install_loss(model)
    model.train()
    return model


def _loss_and_grads(model, inputs):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(11)  # same dropout masks / DyLoRA rank draws for both computations
    loss = model(**inputs).loss
    loss.backward()
    grads = {
        n: p.grad.detach().clone()
        for n, p in model.named_parameters()
        if p.requires_grad and p.grad is not None
    }
    return loss.detach(), grads


METHODS = sorted(registry.METHODS)  # every registered method, so a new baseline is covered too


@pytest.mark.parametrize("name", METHODS)
def test_same_loss_and_gradients_for_every_method(name):
    model = _method_model(name)
    assert lm_loss.supports_label_only_logits(model)
    batch = _batch()
    full_loss, full_grads = _loss_and_grads(model, batch)
    compact = lm_loss.label_only_inputs(batch)
    n_labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert int(compact["logits_to_keep"].sum()) == n_labelled < batch["labels"].numel() // 2
    with torch.no_grad():  # the model really returns the kept rows only
        assert model(**compact).logits.shape == (n_labelled, VOCAB)
    part_loss, part_grads = _loss_and_grads(model, compact)
    assert torch.isfinite(full_loss) and full_loss > 0
    assert abs(float(full_loss - part_loss)) < 1e-12
    assert full_grads.keys() == part_grads.keys() and full_grads
    for n, g in full_grads.items():
        assert torch.allclose(g, part_grads[n], rtol=0, atol=1e-12), n
    assert any(float(g.abs().max()) > 1e-6 for g in full_grads.values())


def test_with_gradient_accumulation_normalisation():
    """The Trainer passes num_items_in_batch (labelled tokens over the accumulated batch): same division."""
    model = _method_model("lora")
    batch = _batch()
    n = torch.tensor(37)
    a = model(**batch, num_items_in_batch=n).loss.detach()
    b = model(**lm_loss.label_only_inputs(batch), num_items_in_batch=n).loss.detach()
    ref = (
        torch.nn.functional.cross_entropy(
            model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1].reshape(-1, VOCAB),
            batch["labels"][:, 1:].reshape(-1),
            ignore_index=-100,
            reduction="sum",
        ).detach()
        / 37
    )
    assert abs(float(a - ref)) < 1e-12 and abs(float(b - ref)) < 1e-12


@pytest.mark.parametrize("eps", [0.0, 0.1])
@torch.no_grad()
def test_smoothing_in_model_equals_transformers_label_smoother(eps):
    model = _gpt2()
    lm_loss.install_loss(model, label_smoothing=eps)
    batch = _batch()
    outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
    plain = torch.nn.functional.cross_entropy(
        outputs.logits[:, :-1].reshape(-1, VOCAB), batch["labels"][:, 1:].reshape(-1)
    )
    expected = LabelSmoother(epsilon=eps)(outputs, batch["labels"], shift_labels=True) if eps else plain
    ours = [model(**inputs).loss.detach() for inputs in (batch, lm_loss.label_only_inputs(batch))]
    assert abs(float(ours[0] - ours[1])) < 1e-12
    # LabelSmoother sums the smoothing term in float32 (dtype=torch.float32), hence 1e-6, not 1e-12
    assert abs(float(ours[0] - expected)) < 1e-6
    if eps:  # smoothing really changes the loss
        assert abs(float(plain - expected)) > 1e-4


def test_smoothing_in_model_keeps_adalora_regulariser():
    """Trainer's smoothing pops the labels, so AdaLoRA's forward never adds its orthogonality term."""
    model = _method_model("adalora")
    lm_loss.install_loss(model, label_smoothing=0.1)
    batch = _batch()
    with_reg = model(**batch).loss.detach()
    outputs = model(**{k: v for k, v in batch.items() if k != "labels"})  # what the Trainer path scores
    trainer_path = LabelSmoother(epsilon=0.1)(outputs, batch["labels"], shift_labels=True).detach()
    orth = model.peft_config["default"].orth_reg_weight
    assert orth > 0
    assert float(with_reg - trainer_path) > 1e-6  # the regulariser is there (random factors: A A^T != I)
    assert abs(float(model(**lm_loss.label_only_inputs(batch)).loss.detach() - with_reg)) < 1e-12


def test_models_without_mask_slicing_are_left_alone():
    from transformers import BertConfig, BertForSequenceClassification

    bert = BertForSequenceClassification(
        BertConfig(
            vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20
        )
    )
    assert not lm_loss.is_causal_lm(bert)
    assert not lm_loss.supports_label_only_logits(bert)
    with pytest.raises(ValueError, match="not a causal LM"):
        lm_loss.install_loss(bert)


def test_lm_head_benchmark_runs(capsys):
    """benchmarks/lm_head.py (the README's numbers) runs and reports both step times and their ratio."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "lm_head.py"
    spec = importlib.util.spec_from_file_location("lm_head_benchmark", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(
        [
            "--models",
            "gpt2-embedded",
            "--rounds",
            "1",
            "--steps",
            "1",
            "--threads",
            "1",
            "--seq",
            "32",
            "--device",
            "cpu",
        ]
    )
    row = capsys.readouterr().out.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0].startswith("gpt2-embedded") and all(float(c) > 0 for c in cells[1:])
