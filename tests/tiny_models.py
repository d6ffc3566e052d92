"""Tiny models built from a config (no downloads), shared by the tests.

Two families cover the two layer types Delta-LoRA must handle: BERT (nn.Linear targets) and GPT-2
(Conv1D targets, fan_in_fan_out=True). Dropout in the base model is off so that runs are comparable
step by step; the LoRA branch's own dropout is set per test.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

VOCAB = 61


def base_model(kind: str, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "bert":
        cfg = BertConfig(
            vocab_size=VOCAB,
            hidden_size=24,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=40,
            max_position_embeddings=32,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            num_labels=3,
        )
        model = BertForSequenceClassification(cfg)
    elif kind == "gpt2":
        cfg = GPT2Config(
            vocab_size=VOCAB,
            n_positions=32,
            n_embd=24,
            n_layer=2,
            n_head=2,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(kind)
    return model.to(dtype)


DEFAULT_TARGETS = {"bert": ["query", "value"], "gpt2": ["c_attn"]}


def lora_model(
    kind: str,
    *,
    seed: int = 0,
    r: int = 4,
    alpha: float = 8,
    dropout: float = 0.0,
    targets: list[str] | None = None,
    use_rslora: bool = False,
    dtype: torch.dtype = torch.float64,
    **extra,
):
    model = base_model(kind, seed, dtype)
    cfg = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets or DEFAULT_TARGETS[kind],
        fan_in_fan_out=(kind == "gpt2"),
        use_rslora=use_rslora,
        task_type="SEQ_CLS" if kind == "bert" else "CAUSAL_LM",
        **extra,
    )
    torch.manual_seed(seed + 1000)  # LoRA A init
    return get_peft_model(model, cfg)


def randomize_lora(model) -> None:
    """PEFT initializes B = 0; give every factor random values so the branch is not trivially zero."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)


def batches(kind: str, n: int, *, batch: int = 4, seq: int = 9, seed: int = 123) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (batch, seq), generator=g)
        if kind == "bert":
            out.append({"input_ids": ids, "labels": torch.randint(0, 3, (batch,), generator=g)})
        else:
            out.append({"input_ids": ids, "labels": ids.clone()})
    return out


def logits(model, kind: str, seed: int = 999) -> torch.Tensor:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(**{k: v for k, v in batches(kind, 1, seed=seed)[0].items() if k != "labels"}).logits
    model.train(was)
    return out


def make_optimizer(model, lr: float = 1e-2) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def replicate(network: torch.nn.Module, **to) -> torch.nn.Module:
    """What torch.nn.parallel.replicate (DataParallel, every forward) does for one device, on CPU where the
    real one needs CUDA: shallow module copies (`_replicate_for_data_parallel`) whose parameters are
    differentiable copies moved by `to` (a dtype, or the meta device standing for another GPU), so
    gradients flow back to the originals. Integer buffers keep their dtype."""
    modules = list(network.modules())
    copies = {id(m): m._replicate_for_data_parallel() for m in modules}
    for m in modules:
        r = copies[id(m)]
        for key, child in m._modules.items():
            r._modules[key] = None if child is None else copies[id(child)]
        for key, p in m._parameters.items():
            r._parameters[key] = None if p is None else p.to(**to)
        for key, b in m._buffers.items():
            if b is None:
                r._buffers[key] = None
            elif b.is_floating_point():
                r._buffers[key] = b.to(**to)
            else:
                r._buffers[key] = b.to(device=to["device"]) if "device" in to else b
    return copies[id(network)]


def examples(n: int) -> list[dict]:
    """n BERT examples as a plain list (the Trainer takes any sequence): the core tests need no `datasets`."""
    return [
        {"input_ids": ids, "labels": y}
        for b in batches("bert", n // 4)
        for ids, y in zip(b["input_ids"], b["labels"], strict=True)
    ]


def trainer_args(output_dir, **over) -> dict:
    """TrainingArguments keywords shared by the Trainer tests: deterministic, CPU, quiet; `over` wins."""
    kw = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        weight_decay=0.01,
        logging_steps=1000,
        save_strategy="no",
        report_to=[],
        seed=0,
        data_seed=0,
        use_cpu=True,
        disable_tqdm=True,
    )
    kw.update(over)
    return kw
