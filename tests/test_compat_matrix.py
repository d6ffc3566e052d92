"""The compatibility matrix: every way Delta-LoRA is combined with PEFT, optimizers, the Trainer and files.

One shared, parametrized tester (in the spirit of PEFT's testers over a matrix of tiny models): each
cell is (area, scenario, engine). A cell is either **exact** (it asserts agreement with an independent
float64 Algorithm 1, written below without deltalora: plain PEFT LoRA, and after each optimizer step
t > K, W += lam*s*(B'A' - BA) from both full products) or **refused** (it asserts a ValueError whose
message names the field and matches the reason written in the table, and that the refused call left
the model exactly as it was). `docs/compatibility.md` is rendered from the same table (`CELLS`);
`test_compatibility_doc_is_generated` fails when the committed file differs. Regenerate it with
`PYTHONPATH=. python tests/test_compat_matrix.py`.

Runtime (float64 tiny BERT/GPT-2, K = 1, 5 optimizer steps): 67 s on one core of the 2-core dev machine
under a load average of 10-15 (26 s of CPU time), measured 2026-12-06.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from tiny_models import base_model, batches, examples, logits, lora_model, replicate, trainer_args

from deltalora import DeltaLoRA
from deltalora.core.delta_lora import OPTIMIZER_STATE_KEY

pytestmark = pytest.mark.filterwarnings("ignore")
K, STEPS, LAM, TOL = 1, 5, 2.0, 1e-9
ENGINES = ("inplace", "folded")
DOC = Path(__file__).resolve().parents[1] / "docs" / "compatibility.md"


# ---------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Cell:
    area: str
    scenario: str
    outcome: str  # "exact" or "refused"
    why: str  # what exact means here, or the refusal's reason (a regex the error message must match)
    engines: tuple[str, ...] = ENGINES
    inplace_refused: str | None = None  # refused under engine="inplace" only, with this reason

    def expected(self, engine: str) -> tuple[str, str]:
        if engine == "inplace" and self.inplace_refused:
            return "refused", self.inplace_refused
        return self.outcome, self.why


LAYER_REFUSAL = (
    "Delta-LoRA supports nn.Linear and GPT-2 Conv1D, bitsandbytes 8-bit, bitsandbytes 4-bit targets"
)
CELLS: dict[str, Cell] = {
    # ------------------------------------------------------------ layer kinds
    "layer/linear": Cell(
        "layer", "`Linear` (nn.Linear, BERT query/value)", "exact", "Algorithm 1; export reloads in PEFT"
    ),
    "layer/conv1d_gpt2": Cell(
        "layer", "`Conv1D` (GPT-2 c_attn, fan_in_fan_out)", "exact", "Algorithm 1; export reloads in PEFT"
    ),
    "layer/embedding": Cell(
        "layer",
        "`Embedding` (word_embeddings)",
        "refused",
        r"model: .*word_embeddings is a PEFT Embedding LoRA layer",
    ),
    "layer/conv1d_torch": Cell(
        "layer", "`Conv1d` (torch)", "refused", r"model: .*c1 is a PEFT Conv1d LoRA layer"
    ),
    "layer/conv2d": Cell("layer", "`Conv2d`", "refused", r"model: .*c2 is a PEFT Conv2d LoRA layer"),
    "layer/mha": Cell(
        "layer", "`MultiheadAttention`", "refused", r"model: .*mha is a PEFT MultiheadAttention LoRA layer"
    ),
    "layer/param_wrapper": Cell(
        "layer",
        "`ParamWrapper` (`target_parameters`)",
        "refused",
        r"model: .* is a PEFT ParamWrapper LoRA layer, a target_parameters LoRA",
    ),
    "layer/bnb_8bit": Cell(
        "layer",
        "bitsandbytes 8-bit (`Linear8bitLt`)",
        "exact",
        "folded on the quantized base (exactness: tests/test_quantized.py)",
        inplace_refused=r"engine='inplace' writes W .* quantized \(bnb-int8\)",
    ),
    "layer/bnb_4bit": Cell(
        "layer",
        "bitsandbytes 4-bit (`Linear4bit`, NF4)",
        "exact",
        "folded on the quantized base (exactness: tests/test_quantized.py)",
        inplace_refused=r"engine='inplace' writes W .* quantized \(bnb-nf4\)",
    ),
    "layer/torchao": Cell(
        "layer",
        "torchao (`TorchaoLoraLinear`, emulated by class)",
        "refused",
        r"model: .* is a PEFT TorchaoLoraLinear LoRA layer, a torchao-quantized base",
    ),
    "layer/hqq": Cell(
        "layer",
        "HQQ (`HqqLoraLinear`, emulated by class)",
        "refused",
        r"model: .* is a PEFT HqqLoraLinear LoRA layer, an HQQ-quantized base",
    ),
    "layer/dora": Cell(
        "layer", "DoRA (`use_dora=True`)", "refused", r"model: .* uses a LoRA variant \(e.g. DoRA\)"
    ),
    "layer/alora": Cell(
        "layer",
        "aLoRA (`alora_invocation_tokens`, another variant)",
        "refused",
        r"model: .* uses a LoRA variant",
    ),
    "layer/lora_bias": Cell("layer", "`lora_bias=True`", "refused", r"model: .* has lora_bias=True"),
    "layer/adalora": Cell("layer", "AdaLoRA layers", "refused", r"model: .* is an AdaLoRA layer"),
    # ------------------------------------------------------------ optimizers (exact + resume via optimizer)
    "optimizer/adamw": Cell(
        "optimizer", "AdamW (plain)", "exact", "Algorithm 1; resume from optimizer.state_dict()"
    ),
    "optimizer/adamw_foreach": Cell(
        "optimizer", "AdamW (foreach)", "exact", "Algorithm 1; resume from optimizer.state_dict()"
    ),
    "optimizer/adamw_fused": Cell(
        "optimizer", "AdamW (fused)", "exact", "Algorithm 1; resume from optimizer.state_dict()"
    ),
    "optimizer/sgd": Cell(
        "optimizer",
        "SGD without momentum (keeps no state of its own)",
        "exact",
        "Algorithm 1; resume from optimizer.state_dict()",
    ),
    "optimizer/sgd_momentum": Cell(
        "optimizer", "SGD with momentum", "exact", "Algorithm 1; resume from optimizer.state_dict()"
    ),
    "optimizer/adafactor": Cell(
        "optimizer", "Adafactor (transformers)", "exact", "Algorithm 1; resume from optimizer.state_dict()"
    ),
    "optimizer/bnb_adamw8bit": Cell(
        "optimizer",
        "bitsandbytes AdamW8bit (load_state_dict runs no hooks)",
        "exact",
        "Algorithm 1; state restored before the next step",
    ),
    "optimizer/bnb_paged_adamw": Cell(
        "optimizer",
        "bitsandbytes PagedAdamW (load_state_dict runs no hooks)",
        "exact",
        "Algorithm 1; state restored before the next step",
    ),
    "optimizer/loraplus": Cell(
        "optimizer",
        "PEFT `create_loraplus_optimizer`",
        "exact",
        "Algorithm 1; resume from optimizer.state_dict()",
    ),
    "optimizer/groups_scheduler": Cell(
        "optimizer",
        "AdamW, three param groups + LambdaLR scheduler",
        "exact",
        "Algorithm 1; resume from optimizer.state_dict()",
    ),
    "optimizer/missing_adapter": Cell(
        "optimizer",
        "optimizer without lora_A/lora_B, then a retry with the right one",
        "refused",
        r"optimizer: it does not update lora_A/lora_B of .*; pass the optimizer",
    ),
    "optimizer/deepspeed_zero": Cell(
        "optimizer",
        "DeepSpeed ZeRO-1/2 optimizer (emulated by class)",
        "refused",
        r"optimizer: it is DeepSpeed's DeepSpeedZeroOptimizer\. DeepSpeed is not supported at any ZeRO "
        r"stage: ZeRO-1/2 give the optimizer flat fp32 partitions",
    ),
    "optimizer/deepspeed_engine": Cell(
        "optimizer",
        "DeepSpeed engine as the model (emulated by class)",
        "refused",
        r"model: it is DeepSpeed's DeepSpeedEngine\. DeepSpeed is not supported",
    ),
    # ------------------------------------------------------------ lifecycle
    **{
        f"lifecycle/resume_{where}_{at}": Cell(
            "lifecycle",
            f"resume through `load()` in the {where.replace('_', ' ')} at step {at}",
            "exact",
            "bitwise equal to the uninterrupted run",
        )
        for where in ("same_process", "fresh_model")
        for at in ("K-1", "K", "K+1", "K+2")
    },
    "lifecycle/load_other_targets": Cell(
        "lifecycle",
        "`load_state_dict` of a state with other targets",
        "refused",
        r"state: its adapted layers differ from this model's",
    ),
    "lifecycle/load_bad_shape": Cell(
        "lifecycle",
        "`load_state_dict` of a state with another rank",
        "refused",
        r"state: snap_A of .* has shape \(4, 24\), the model's is \(2, 24\)",
    ),
    "lifecycle/detach_then_train": Cell(
        "lifecycle",
        "`detach()` then plain LoRA steps",
        "exact",
        "Algorithm 1 up to detach, then LoRA on the frozen term",
    ),
    "lifecycle/detach_while_merged": Cell(
        "lifecycle",
        "`merge_adapter(); detach()`",
        "refused",
        r"model: adapters are merged in .*; call model.unmerge_adapter\(\) before detach\(\)",
    ),
    "lifecycle/merge_unmerge_detach": Cell(
        "lifecycle",
        "`merge_adapter(); unmerge_adapter(); detach()`",
        "exact",
        "the trained function after each call",
    ),
    "lifecycle/merge_and_unload": Cell(
        "lifecycle", "`merge_and_unload()`", "exact", "merged weights give Algorithm 1's outputs"
    ),
    "lifecycle/disable_adapter": Cell(
        "lifecycle",
        "`with model.disable_adapter():`",
        "exact",
        "the pretrained model W_0, under both engines",
    ),
    "lifecycle/export_twice": Cell(
        "lifecycle",
        "export, train on, export again to the same path",
        "exact",
        "the second export replaces the first; reloads in PEFT",
    ),
    "lifecycle/export_user_dir": Cell(
        "lifecycle",
        "export into a non-empty directory not made by an export",
        "refused",
        r"path: .* is a non-empty directory that is not an earlier Delta-LoRA export",
    ),
    "lifecycle/export_rank1_barrier": Cell(
        "lifecycle",
        "export on rank 1 of 2 (torch.distributed, emulated)",
        "exact",
        "rank 1 writes nothing and waits at a barrier",
    ),
    "lifecycle/device_move_meta": Cell(
        "lifecycle",
        "model moved after construction (`model.to('meta')`)",
        "exact",
        "snapshot and previous factors follow; next step runs",
    ),
    "lifecycle/data_parallel_replica": Cell(
        "lifecycle",
        "`nn.DataParallel` replica on another device/dtype (emulated)",
        "exact",
        "the branch reads the replica's factors; gradients reach the originals",
    ),
    # ------------------------------------------------------------ Trainer
    "trainer/export_dir_is_output_dir": Cell(
        "trainer",
        "`export_dir=args.output_dir`",
        "refused",
        r"export_dir: .* would hold the Trainer's checkpoints",
        engines=("folded",),
    ),
    "trainer/export_dir_foreign": Cell(
        "trainer",
        "`export_dir` a non-empty user directory",
        "refused",
        r"export_dir: .* is a non-empty directory that is not an earlier Delta-LoRA export",
        engines=("folded",),
    ),
    "trainer/load_best_model_at_end": Cell(
        "trainer", "`load_best_model_at_end=True`", "exact", "equal to a fresh load of the best checkpoint"
    ),
    "trainer/model_init_second_train": Cell(
        "trainer",
        "a second `train()` with `model_init`",
        "exact",
        "equal to the first train()",
        engines=("folded",),
    ),
    "trainer/hyperparameter_search": Cell(
        "trainer",
        "two hyperparameter-search trials (set the trial's arguments, `train()` with `model_init`)",
        "exact",
        "each trial equals a single run with its learning rate",
        engines=("folded",),
    ),
    "trainer/resume_after_skipped_steps": Cell(
        "trainer",
        "in-process `train(resume_from_checkpoint=...)` after a step the grad scaler skipped",
        "exact",
        "equal to the uninterrupted run",
    ),
}


def cell_params():
    return [pytest.param(cid, e, id=f"{cid}-{e}") for cid, c in CELLS.items() for e in c.engines]


# ---------------------------------------------------------------------------- the independent reference
def lora_layers(model):
    return [m for _, m in model.named_modules() if isinstance(m, LoraLayer) and "default" in m.lora_A]


def train(model, opt, data, sched=None):
    model.train()
    for batch in data:
        model(**batch).loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad(set_to_none=True)


def make_optimizer(name: str, model):
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01, foreach=False), None
    if name == "adamw_foreach":
        return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01, foreach=True), None
    if name == "adamw_fused":
        return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01, fused=True), None
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.5), None
    if name == "sgd_momentum":
        return torch.optim.SGD(params, lr=0.2, momentum=0.9), None
    if name == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=1e-2, scale_parameter=False, relative_step=False, warmup_init=False), None
    if name in ("bnb_adamw8bit", "bnb_paged_adamw"):
        import bitsandbytes as bnb

        cls = bnb.optim.AdamW8bit if name == "bnb_adamw8bit" else bnb.optim.PagedAdamW
        return cls(params, lr=1e-2), None
    if name == "loraplus":
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(model, torch.optim.AdamW, lr=1e-2, loraplus_lr_ratio=4.0), None
    if name == "groups_scheduler":
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if "lora_A" in n], "lr": 1e-2},
            {"params": [p for n, p in named if "lora_B" in n], "lr": 2e-2, "weight_decay": 0.0},
            {"params": [p for n, p in named if "lora_" not in n], "lr": 5e-3},
        ]
        opt = torch.optim.AdamW(groups, weight_decay=0.01)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + s))
    raise ValueError(name)


@functools.cache
def reference(kind: str, opt_name: str = "adamw", steps: int = STEPS, stop_at: int | None = None, **kw):
    """Algorithm 1, literally, in float64 (no deltalora): logits and the final adapted W's."""
    model = lora_model(kind, **dict(kw))
    opt, sched = make_optimizer(opt_name, model)
    layers = lora_layers(model)
    model.train()
    for t, batch in enumerate(batches(kind, steps)):
        model(**batch).loss.backward()
        old = [
            (m.lora_B["default"].weight.detach().clone(), m.lora_A["default"].weight.detach().clone())
            for m in layers
        ]
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad(set_to_none=True)
        if t > K and (stop_at is None or t < stop_at):
            with torch.no_grad():
                for m, (b0, a0) in zip(layers, old, strict=True):
                    b1, a1 = m.lora_B["default"].weight, m.lora_A["default"].weight
                    d = LAM * m.scaling["default"] * (b1 @ a1 - b0 @ a0)
                    m.get_base_layer().weight += d.T if m.fan_in_fan_out else d
    return model


def ref_logits(
    kind: str, opt_name: str = "adamw", steps: int = STEPS, stop_at: int | None = None
) -> torch.Tensor:
    return logits(reference(kind, opt_name, steps, stop_at), kind)


def engine_run(kind, engine, opt_name="adamw", steps=STEPS, **kw):
    model = lora_model(kind, **kw)
    opt, sched = make_optimizer(opt_name, model)
    handle = DeltaLoRA(model, opt, update_ratio=LAM, start_step=K, engine=engine)
    train(model, opt, batches(kind, steps), sched)
    return model, handle, opt, sched


def dev(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# ---------------------------------------------------------------------------- helpers for refusals
def fingerprint(model) -> tuple:
    """Everything a construction could change: parameters, PEFT variant tables, hooks, attach markers."""
    params = {n: p.detach().clone() for n, p in model.state_dict().items() if isinstance(p, torch.Tensor)}
    variants = {n: sorted(getattr(m, "lora_variant", {})) for n, m in model.named_modules()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    marks = [getattr(model, a, None) for a in ("_deltalora_attached", "_deltalora_detached_term")]
    return params, variants, hooks, marks


def assert_same(before: tuple, after: tuple) -> None:
    assert before[1:] == after[1:]
    assert before[0].keys() == after[0].keys()
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])


def refused(pattern: str, fn, model=None) -> None:
    before = fingerprint(model) if model is not None else None
    with pytest.raises(ValueError, match=pattern):
        fn()
    if model is not None:
        assert_same(before, fingerprint(model))


# ---------------------------------------------------------------------------- layer kinds
class ConvMha(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv1d(4, 4, 3)
        self.c2 = torch.nn.Conv2d(4, 4, 3)
        self.mha = torch.nn.MultiheadAttention(8, 2)
        self.lin = torch.nn.Linear(8, 8)


def _sgd(model):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)


@functools.lru_cache(maxsize=1)
def _bnb_checkpoint() -> str:
    import tempfile

    from transformers import BertForSequenceClassification

    path = tempfile.mkdtemp(prefix="tiny-bert-")
    base = base_model("bert", dtype=torch.float32)
    BertForSequenceClassification(base.config).save_pretrained(path)
    return path


def layer_model(scenario: str):
    if scenario == "linear":
        return lora_model("bert"), "bert"
    if scenario == "conv1d_gpt2":
        return lora_model("gpt2"), "gpt2"
    if scenario == "embedding":
        return lora_model("bert", targets=["query", "value", "word_embeddings"]), None
    if scenario in ("conv1d_torch", "conv2d", "mha"):
        target = {"conv1d_torch": "c1", "conv2d": "c2", "mha": "mha"}[scenario]
        return get_peft_model(
            ConvMha(), LoraConfig(r=2, target_modules=["lin", target], lora_dropout=0.0)
        ), None
    if scenario == "param_wrapper":
        cfg = LoraConfig(
            r=2, target_modules=[], target_parameters=["intermediate.dense.weight"], lora_dropout=0.0
        )
        return get_peft_model(base_model("bert"), cfg), None
    if scenario in ("bnb_8bit", "bnb_4bit"):
        from transformers import BertForSequenceClassification

        from deltalora.core.quantized import load_kwargs

        kw = load_kwargs("int8" if scenario == "bnb_8bit" else "nf4")
        base = BertForSequenceClassification.from_pretrained(_bnb_checkpoint(), **kw)
        cfg = LoraConfig(
            r=4, lora_alpha=8, target_modules=["query", "value"], lora_dropout=0.0, task_type="SEQ_CLS"
        )
        return get_peft_model(base, cfg), None
    if scenario in ("torchao", "hqq"):
        from peft.tuners.lora.layer import Linear

        model = lora_model("bert")
        name = "TorchaoLoraLinear" if scenario == "torchao" else "HqqLoraLinear"
        module = "peft.tuners.lora.torchao" if scenario == "torchao" else "peft.tuners.lora.hqq"
        fake = type(name, (Linear,), {"__module__": module})  # what PEFT dispatches for those bases
        layer = lora_layers(model)[0]
        layer.__class__ = fake
        return model, None
    if scenario == "dora":
        return lora_model("bert", use_dora=True), None
    if scenario == "alora":
        return lora_model("gpt2", alora_invocation_tokens=[3, 4]), None
    if scenario == "lora_bias":
        return lora_model("bert", lora_bias=True), None
    if scenario == "adalora":
        from peft import AdaLoraConfig

        cfg = AdaLoraConfig(init_r=4, target_r=2, target_modules=["query"], lora_dropout=0.0, total_step=10)
        return get_peft_model(base_model("bert"), cfg), None
    raise ValueError(scenario)


def check_layer(scenario: str, engine: str, outcome: str, why: str, tmp_path: Path) -> None:
    model, kind = layer_model(scenario)
    if outcome == "refused":
        refused(why, lambda: DeltaLoRA(model, _sgd(model), start_step=K, engine=engine), model)
        return
    if (
        kind is None
    ):  # quantized bases: accepted by the folded engine, its numbers pinned in test_quantized.py
        handle = DeltaLoRA(model, _sgd(model), start_step=K, engine=engine)
        assert len(handle.slots) == 4 and all(s.fold_handle is not None for s in handle.slots)
        return
    model, handle, _, _ = engine_run(kind, engine)
    assert dev(logits(model, kind), ref_logits(kind)) < TOL
    assert dev(logits(model, kind), logits(lora_model(kind), kind)) > 1e-4  # it trained
    loaded = PeftModel.from_pretrained(base_model(kind), str(handle.export_adapter(tmp_path / "a")))
    assert dev(logits(loaded, kind), ref_logits(kind)) < TOL


# ---------------------------------------------------------------------------- optimizers
def _without_carried_state(sd: dict) -> dict:
    sd = copy.deepcopy(sd)
    for st in sd["state"].values():
        st.pop(OPTIMIZER_STATE_KEY, None)
    return sd


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def check_optimizer(name: str, engine: str, outcome: str, why: str) -> None:
    if name == "missing_adapter":
        model = lora_model("bert")
        head = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
        refused(why, lambda: DeltaLoRA(model, torch.optim.AdamW(head), start_step=K, engine=engine), model)
        # the refusal left nothing behind: a retry with the right optimizer is exact
        opt, _ = make_optimizer("adamw", model)
        DeltaLoRA(model, opt, update_ratio=LAM, start_step=K, engine=engine)
        train(model, opt, batches("bert", STEPS))
        assert dev(logits(model, "bert"), ref_logits("bert")) < TOL
        return
    if name == "deepspeed_zero":
        model = lora_model("bert")
        flat = torch.nn.Parameter(torch.zeros(10, dtype=torch.float64))  # ZeRO's flat fp32 partition
        zero_cls = type("DeepSpeedZeroOptimizer", (), {"__module__": "deepspeed.runtime.zero.stage_1_and_2"})
        zero = zero_cls()
        zero.optimizer = torch.optim.AdamW([flat])
        refused(why, lambda: DeltaLoRA(model, zero, start_step=K, engine=engine), model)
        return
    if name == "deepspeed_engine":
        model = lora_model("bert")
        engine_cls = type("DeepSpeedEngine", (torch.nn.Module,), {"__module__": "deepspeed.runtime.engine"})
        wrapper = engine_cls()
        wrapper.module = model
        refused(why, lambda: DeltaLoRA(wrapper, _sgd(model), start_step=K, engine=engine), model)
        return
    # exact, and a resume at K+2 through the optimizer's state dict alone (fresh model and optimizer)
    model, handle, _, _ = engine_run("bert", engine, name)
    assert dev(logits(model, "bert"), ref_logits("bert", name)) < TOL
    assert dev(logits(model, "bert"), logits(lora_model("bert"), "bert")) > 1e-4
    data, cut = batches("bert", STEPS), K + 2
    first = lora_model("bert")
    opt1, sched1 = make_optimizer(name, first)
    DeltaLoRA(first, opt1, update_ratio=LAM, start_step=K, engine=engine)
    train(first, opt1, data[:cut], sched1)
    saved = _roundtrip(
        {
            "adapter": get_peft_model_state_dict(first),
            "opt": opt1.state_dict(),
            "sched": sched1.state_dict() if sched1 else None,
        }
    )
    assert OPTIMIZER_STATE_KEY in str(saved["opt"]["state"])  # carried even by an optimizer without state
    second = lora_model("bert")
    set_peft_model_state_dict(second, saved["adapter"])
    opt2, sched2 = make_optimizer(name, second)
    h2 = DeltaLoRA(second, opt2, update_ratio=LAM, start_step=K, engine=engine)
    opt2.load_state_dict(saved["opt"])
    if sched2 is not None:
        sched2.load_state_dict(saved["sched"])
    train(second, opt2, data[cut:], sched2)
    assert h2.restores == 1 and h2.step == STEPS
    assert dev(logits(second, "bert"), logits(model, "bert")) < 1e-12


# ---------------------------------------------------------------------------- lifecycle
def check_resume(where: str, at: str, engine: str, tmp_path: Path) -> None:
    """Save at step p (K-1..K+2), then restore through load(): into the very model that trained on since
    (same process), or into a new one; the optimizer's own state is restored without the carried copy."""
    p = K + {"K-1": -1, "K": 0, "K+1": 1, "K+2": 2}[at]
    data = batches("bert", STEPS)
    model = lora_model("bert")
    opt, _ = make_optimizer("adamw", model)
    handle = DeltaLoRA(model, opt, update_ratio=LAM, start_step=K, engine=engine)
    train(model, opt, data[:p])
    adapter = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
    opt_sd = _without_carried_state(opt.state_dict())
    handle.save(tmp_path / "dl.safetensors")
    train(model, opt, data[p:])  # the uninterrupted run
    full = logits(model, "bert")
    assert dev(full, ref_logits("bert")) < TOL
    if where == "fresh_model":
        model = lora_model("bert")
        opt, _ = make_optimizer("adamw", model)
        handle = DeltaLoRA(model, opt, update_ratio=LAM, start_step=K, engine=engine)
    set_peft_model_state_dict(model, adapter)
    opt.load_state_dict(opt_sd)
    assert handle.restores == 0  # nothing came through the optimizer: load() does it all
    handle.load(tmp_path / "dl.safetensors")
    assert handle.step == p
    train(model, opt, data[p:])
    assert torch.equal(logits(model, "bert"), full)


def check_lifecycle(scenario: str, engine: str, outcome: str, why: str, tmp_path: Path, monkeypatch) -> None:
    if scenario.startswith("resume_"):
        where, at = scenario[len("resume_") :].rsplit("_", 1)
        return check_resume(where, at, engine, tmp_path)
    if scenario in ("load_other_targets", "load_bad_shape"):
        _, h, _, _ = engine_run("bert", engine)
        state = h.state_dict()
        kw = {"targets": ["query", "key"]} if scenario == "load_other_targets" else {"r": 2}
        other = lora_model("bert", **kw)
        h2 = DeltaLoRA(
            other, make_optimizer("adamw", other)[0], update_ratio=LAM, start_step=K, engine=engine
        )
        before = (h2.step, [s.snap_A for s in h2.slots], fingerprint(other))
        refused(why, lambda: h2.load_state_dict(state))
        assert (h2.step, [s.snap_A for s in h2.slots]) == before[:2]
        assert_same(before[2], fingerprint(other))
        return
    if scenario == "detach_then_train":
        model, h, opt, _ = engine_run("bert", engine, steps=STEPS)
        h.detach()
        train(model, opt, batches("bert", STEPS + 2)[STEPS:])
        assert dev(logits(model, "bert"), ref_logits("bert", steps=STEPS + 2, stop_at=STEPS)) < TOL
        return
    if scenario == "detach_while_merged":
        model, h, _, _ = engine_run("bert", engine)
        model.merge_adapter()
        refused(why, h.detach)
        return
    if scenario == "merge_unmerge_detach":
        model, h, _, _ = engine_run("bert", engine)
        for call in (
            model.merge_adapter,
            model.unmerge_adapter,
            h.detach,
            model.merge_adapter,
            model.unmerge_adapter,
        ):
            call()
            assert dev(logits(model, "bert"), ref_logits("bert")) < TOL, call
        return
    if scenario == "merge_and_unload":
        model, h, _, _ = engine_run("bert", engine)
        merged = h.merge_and_unload()
        assert not any(isinstance(m, LoraLayer) for m in merged.modules())
        assert dev(logits(merged, "bert"), ref_logits("bert")) < TOL
        return
    if scenario == "disable_adapter":
        model, h, _, _ = engine_run("bert", engine)
        with model.disable_adapter():
            assert dev(logits(model, "bert"), logits(base_model("bert"), "bert")) < TOL
        assert dev(logits(model, "bert"), ref_logits("bert")) < TOL
        return
    if scenario == "export_twice":
        model = lora_model("bert")
        opt, _ = make_optimizer("adamw", model)
        h = DeltaLoRA(model, opt, update_ratio=LAM, start_step=K, engine=engine)
        data = batches("bert", STEPS)
        train(model, opt, data[: K + 2])
        path = h.export_adapter(tmp_path / "adapter")
        train(model, opt, data[K + 2 :])
        assert h.export_adapter(path) == path
        assert json.loads((path / "deltalora.json").read_text())["step"] == STEPS
        loaded = PeftModel.from_pretrained(base_model("bert"), str(path))
        assert dev(logits(loaded, "bert"), ref_logits("bert")) < TOL
        assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no temporary folder left
        return
    if scenario == "export_user_dir":
        _, h, _, _ = engine_run("bert", engine, steps=K + 2)
        user = tmp_path / "mine"
        user.mkdir()
        (user / "notes.txt").write_text("keep me")
        (user / "adapter_config.json").write_text("{}")
        refused(why, lambda: h.export_adapter(user))
        assert sorted(p.name for p in user.iterdir()) == ["adapter_config.json", "notes.txt"]
        assert (user / "notes.txt").read_text() == "keep me"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
        return
    if scenario == "export_rank1_barrier":
        import torch.distributed as dist

        _, h, _, _ = engine_run("bert", engine, steps=K + 2)
        calls = []
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "barrier", lambda *a, **k: calls.append(dist.get_rank()))
        for rank in (1, 0):
            monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
            h.export_adapter(tmp_path / "a")
            assert (tmp_path / "a").exists() == (rank == 0)
        assert calls == [1, 0]  # both ranks wait at the barrier, rank 0 after writing
        return
    if scenario == "device_move_meta":
        model = lora_model("bert")
        opt = _sgd(model)
        h = DeltaLoRA(model, opt, update_ratio=LAM, start_step=K, engine=engine)
        train(model, opt, batches("bert", K + 2))
        model.to("meta")  # stands for .cuda()/accelerate.prepare: Delta-LoRA's tensors are not buffers
        # a move to CUDA keeps the parameter objects (the optimizer's); one to meta makes new ones: use them
        opt.param_groups[0]["params"] = [p for p in model.parameters() if p.requires_grad]
        meta = {k: v.to("meta") for k, v in batches("bert", 1)[0].items()}
        model(**meta).loss.backward()
        opt.step()
        for s in h.slots:
            held = [s.snap_A, s.snap_B] + ([s.prev_A, s.prev_B] if engine == "inplace" else [])
            assert all(t.device.type == "meta" for t in held)
        assert h.step == K + 3
        return
    if scenario == "data_parallel_replica":
        return check_replica(engine)
    raise ValueError(scenario)


def check_replica(engine: str) -> None:
    model, h, _, _ = engine_run("bert", engine, steps=K + 3)
    batch = batches("bert", 1, seed=5)[0]
    want = model(**batch).logits.detach()
    model.zero_grad(set_to_none=True)
    replica = replicate(model, dtype=torch.float32)  # another dtype than the snapshot's
    out = replica(**batch)
    assert out.logits.dtype == torch.float32 and dev(out.logits.double(), want) < 1e-5
    out.loss.backward()  # the gradient reaches the original (float64) factors, as DataParallel's does
    assert all(s.A.grad is not None and s.A.grad.dtype == torch.float64 for s in h.slots)
    meta = replicate(model, device="meta")  # another device than the snapshot's
    y = meta(**{k: v.to("meta") for k, v in batch.items()}).logits
    assert y.device.type == "meta"
    assert all(s.snap_A.device.type == "cpu" for s in h.slots)  # a replica does not move the original's


# ---------------------------------------------------------------------------- Trainer
def trainer_for(out, callbacks, *, model=None, model_init=None, **args_kw):
    from transformers import Trainer, TrainingArguments

    kw = trainer_args(out, **({"max_steps": STEPS + 1, "lr_scheduler_type": "constant"} | args_kw))
    return Trainer(
        model=model,
        model_init=model_init,
        args=TrainingArguments(**kw),
        train_dataset=examples(24),
        eval_dataset=examples(8) if args_kw.get("eval_strategy") else None,
        callbacks=callbacks,
    )


def check_trainer(scenario: str, engine: str, outcome: str, why: str, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    from deltalora import DeltaLoRACallback

    def cb(**kw):
        return DeltaLoRACallback(update_ratio=LAM, start_step=K, engine=engine, **kw)

    if scenario == "export_dir_is_output_dir":
        out = tmp_path / "out"
        tr = trainer_for(
            out, [cb(export_dir=out)], model=lora_model("bert"), save_strategy="steps", save_steps=2
        )
        with pytest.raises(ValueError, match=why):
            tr.train()
        assert tr.state.global_step == 0 and not list(out.glob("checkpoint-*"))  # before the first step
        return
    if scenario == "export_dir_foreign":
        user = tmp_path / "results"
        (user / "checkpoint-3").mkdir(parents=True)
        refused(why, lambda: cb(export_dir=user))
        assert (user / "checkpoint-3").is_dir()
        return
    if scenario == "load_best_model_at_end":
        scores = iter([3.0, 1.0, 2.0])  # the first evaluation (step 3, after the switch) is the best

        class Score(TrainerCallback):
            def on_evaluate(self, args, state, control, metrics=None, **kw):
                metrics["eval_score"] = next(scores)

        model = lora_model("bert")
        tr = trainer_for(
            tmp_path / "o",
            [cb(), Score()],
            model=model,
            max_steps=9,
            eval_strategy="steps",
            eval_steps=3,
            save_strategy="steps",
            save_steps=3,
            load_best_model_at_end=True,
            metric_for_best_model="score",
            greater_is_better=True,
        )
        tr.train()
        best = tr.state.best_model_checkpoint
        assert best is not None and best.endswith("checkpoint-3")
        final = logits(model, "bert")
        # a fresh load of that checkpoint: its adapter into a new model, its optimizer.pt into the optimizer
        # a Trainer builds for it, with a DeltaLoRA attached (the optimizer's load hook restores the state)
        from safetensors.torch import load_file

        fresh_model = lora_model("bert")
        set_peft_model_state_dict(fresh_model, load_file(str(Path(best) / "adapter_model.safetensors")))
        opt = trainer_for(tmp_path / "f", [], model=fresh_model).create_optimizer()
        fresh = DeltaLoRA(fresh_model, opt, update_ratio=LAM, start_step=K, engine=engine)
        opt.load_state_dict(torch.load(Path(best) / "optimizer.pt", weights_only=True))
        assert fresh.restores == 1 and fresh.step == 3
        assert torch.equal(final, logits(fresh_model, "bert"))
        last = lora_model("bert")
        trainer_for(tmp_path / "l", [cb()], model=last, max_steps=9).train()
        assert dev(final, logits(last, "bert")) > 1e-4  # the best is not the last: the check is not vacuous
        return
    if scenario == "model_init_second_train":
        callback = cb()
        tr = trainer_for(tmp_path / "o", [callback], model_init=lambda: lora_model("bert"))
        tr.train()
        first = logits(tr.model, "bert")
        tr.train()
        assert torch.equal(logits(tr.model, "bert"), first)
        assert callback.delta_lora.model is tr.model and callback.delta_lora.step == STEPS + 1
        return
    if scenario == "hyperparameter_search":
        # A trial of transformers' hyperparameter_search: set the trial's arguments on the one Trainer, then
        # train(), whose model_init builds a new model (and the Trainer a new optimizer). optuna is not a
        # dependency here, so the two trials are run that way directly.
        tr = trainer_for(tmp_path / "o", [cb()], model_init=lambda: lora_model("bert"))
        results = {}
        for lr in (1e-2, 3e-2):
            tr.args.learning_rate = lr
            tr.train()
            results[lr] = logits(tr.model, "bert")
        for lr, got in results.items():
            single = lora_model("bert")
            trainer_for(tmp_path / f"s{lr}", [cb()], model=single, learning_rate=lr).train()
            assert torch.equal(got, logits(single, "bert"))
        assert dev(results[1e-2], results[3e-2]) > 1e-4
        return
    if scenario == "resume_after_skipped_steps":

        class SkipOne(TrainerCallback):
            """What torch.amp.GradScaler does for a fused optimizer on an inf gradient: found_inf = 1."""

            def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
                inner = getattr(optimizer, "optimizer", optimizer)
                inner.found_inf = torch.ones((), dtype=torch.float32) if state.global_step == 1 else None

        model = lora_model("bert")
        callback = cb()
        tr = trainer_for(
            tmp_path / "o",
            [callback, SkipOne()],
            model=model,
            optim="adamw_torch_fused",
            max_steps=6,
            save_strategy="steps",
            save_steps=3,
        )
        tr.train()
        full = logits(model, "bert")
        assert callback.delta_lora.step == 5 and tr.state.global_step == 6  # the skipped step is not counted
        tr.train(resume_from_checkpoint=str(tmp_path / "o" / "checkpoint-3"))
        assert torch.equal(logits(model, "bert"), full)
        return
    raise ValueError(scenario)


# ---------------------------------------------------------------------------- the one shared tester
@pytest.mark.parametrize(("cell", "engine"), cell_params())
def test_cell(cell, engine, tmp_path, monkeypatch):
    area, scenario = cell.split("/", 1)
    outcome, why = CELLS[cell].expected(engine)
    if area == "layer":
        check_layer(scenario, engine, outcome, why, tmp_path)
    elif area == "optimizer":
        check_optimizer(scenario, engine, outcome, why)
    elif area == "lifecycle":
        check_lifecycle(scenario, engine, outcome, why, tmp_path, monkeypatch)
    else:
        check_trainer(scenario, engine, outcome, why, tmp_path)


# ---------------------------------------------------------------------------- the generated document
AREAS = {
    "layer": "PEFT layer kinds",
    "optimizer": "Optimizers and distributed wrappers",
    "lifecycle": "Lifecycle: resume, state, detach, merge, disable, export, devices",
    "trainer": "transformers.Trainer (`DeltaLoRACallback`)",
}


def _describe(outcome: str, why: str) -> str:
    if outcome == "exact":
        return f"exact: {why}"
    text = re.sub(r"\\(.)", r"\1", why).replace(".*", "...").replace(" ...", " …").replace("...", "…")
    return f"refused: `{text}`"


def render() -> str:
    lines = [
        "# Compatibility",
        "",
        "<!-- generated by tests/test_compat_matrix.py from its CELLS table; do not edit by hand. "
        "Regenerate:",
        "     PYTHONPATH=. python tests/test_compat_matrix.py -->",
        "",
        "What Delta-LoRA does in each combination with PEFT, optimizers, distributed wrappers and",
        "`transformers.Trainer`. Every row is a cell of `tests/test_compat_matrix.py`, run by CI. "
        "**exact**: the",
        f"cell trains tiny float64 BERT/GPT-2 models (K = {K}, lambda = {LAM:g}, {STEPS} optimizer steps) "
        "and",
        f"agrees with an independent float64 Algorithm 1 to {TOL:g} (or bitwise, where it says so). "
        "**refused**:",
        "`DeltaLoRA(...)` (or the call named) raises a `ValueError` whose message starts with the field and",
        "gives the reason quoted (… stands for names), before anything is installed or written; the model is",
        "left exactly as it was, so a retry with the right input works.",
        "",
    ]
    for area, title in AREAS.items():
        lines += [f"## {title}", "", "| scenario | `inplace` | `folded` |", "|---|---|---|"]
        for c in CELLS.values():
            if c.area != area:
                continue
            cols = [
                _describe(*c.expected(e)) if e in c.engines else "(same callback path as folded)"
                for e in ENGINES
            ]
            lines.append(f"| {c.scenario} | {cols[0]} | {cols[1]} |")
        lines.append("")
    lines += [
        "## Notes",
        "",
        "- `disable_adapter()` means the pretrained model W_0 under both engines: the inplace engine, "
        "whose W",
        "  holds the Delta-LoRA updates, takes lam*s*(B A - S_B S_A) x off the output while adapters are "
        "disabled.",
        "- `detach()` keeps the trained function: before the switch nothing is left; after it the inplace",
        "  engine's W and the folded engine's frozen term both hold lam*s*(B_T A_T - S_B S_A).",
        "- Emulated rows: CPU has neither CUDA nor DeepSpeed, torchao or HQQ. Device moves use the meta "
        "device,",
        "  DataParallel replicas are built the way `torch.nn.parallel.replicate` builds them (onto another "
        "dtype",
        "  and the meta device); `benchmarks/gpu_tests.py` runs the real two-GPU DataParallel case. A "
        "skipped",
        "  fp16 step is what `GradScaler` does to a fused optimizer (`found_inf = 1`).",
        "- bitsandbytes layers: the folded engine's agreement with Algorithm 1 on the dequantized weight "
        "and the",
        "  export on the quantized base are pinned in `tests/test_quantized.py`.",
        "- Sharded weights (FSDP, DeepSpeed ZeRO-3): see `docs/core.md`.",
        "",
    ]
    return "\n".join(lines)


def test_compatibility_doc_is_generated():
    assert DOC.read_text() == render(), (
        "docs/compatibility.md is stale: PYTHONPATH=. python tests/test_compat_matrix.py"
    )


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}", file=sys.stderr)
