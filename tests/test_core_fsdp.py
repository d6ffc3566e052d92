"""Delta-LoRA under FSDP2 (`fully_shard`): two CPU processes (gloo), float64, both engines.

Each rank holds FSDP2 shards of a PEFT model (every block and the root `fully_shard`-ed) and trains on
its half of every batch; FSDP2 averages the gradients, so the run must equal one unsharded process
trained on the whole batch. The shapes are chosen so that shards are uneven and some are empty: BERT with
hidden 26, intermediate 41 and a 1-output LoRA-adapted classifier (rank 1 holds no row of its W), r=3 (A
splits 2/1); GPT-2 (Conv1D, W stored in x out) with hidden 27 and r=1 (rank 1 holds no row of A) on
c_attn and both c_proj (attention's is square: the Linear shortcut of using B's own shard would take the
wrong rows there); and BERT again with r=2 and every matrix split by columns (`shard_placement_fn`
returning Shard(1)). Each run also writes a checkpoint halfway (each rank's model and optimizer state
dicts, which carry Delta-LoRA's state), resumes from it in a fresh sharded model, and exports the rank-2r
adapter (every rank calls export; rank 0 writes). Cost of the whole file (both engines, three models,
resume included): 32 s of CPU time (user + sys, all processes) and 32 s wall, measured on 2026-12-06
beside a running build on a 2-core machine. Most of it is the two processes importing torch, transformers
and peft."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from peft import LoraConfig, PeftModel, get_peft_model
from tiny_models import VOCAB, randomize_lora
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

from deltalora import DeltaLoRA, DeltaLoRACallback

STEPS, K, BATCH, HALFWAY = 6, 2, 4, 4
ENGINES = ("inplace", "folded")
KINDS = ("bert", "gpt2", "bert_cols")  # bert_cols: BERT with every matrix split by columns (Shard(1))


def _fsdp2_missing() -> str | None:
    """Why FSDP2 cannot run two CPU processes here, or None."""
    if not dist.is_available() or not dist.is_gloo_available():
        return "torch.distributed with the gloo backend is not available"
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no torch.distributed.fsdp.fully_shard (FSDP2 needs torch>=2.6)"
    if tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) < (2, 7):
        return f"torch {torch.__version__}: FSDP2 on CPU fails at the first forward before torch 2.7"
    return None


def base(kind: str, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind.startswith("bert"):
        cfg = BertConfig(
            vocab_size=VOCAB,
            hidden_size=26,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=41,
            max_position_embeddings=32,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            num_labels=1,
        )
        return BertForSequenceClassification(cfg).to(dtype)
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_positions=32,
        n_embd=27,
        n_layer=2,
        n_head=3,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(cfg).to(dtype)


def lora(kind: str, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    if kind.startswith("bert"):
        r = 2 if kind == "bert_cols" else 3  # bert_cols: B's r columns split evenly too
        cfg = LoraConfig(
            r=r,
            lora_alpha=2 * r,
            lora_dropout=0.0,
            target_modules=["query", "value", "intermediate.dense", "classifier"],
        )
    else:
        cfg = LoraConfig(
            r=1, lora_alpha=2, lora_dropout=0.0, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True
        )
    model = get_peft_model(base(kind, dtype), cfg)
    randomize_lora(model)  # B != 0 from the start, so every step moves BA
    return model


def data(kind: str, n: int, seed: int = 123) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (BATCH, 9), generator=g)
        labels = (
            torch.randn(BATCH, 1, generator=g, dtype=torch.float64)
            if kind.startswith("bert")
            else ids.clone()
        )
        out.append({"input_ids": ids, "labels": labels})
    return out


def logits(model, kind: str) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(input_ids=data(kind, 1, seed=999)[0]["input_ids"]).logits
    model.train()
    return out


def shard(model, kind: str, mesh) -> None:
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    # bert_cols: FSDP2's shard_placement_fn splits every matrix by columns (W, A and B: in = 26, r = 2);
    # FSDP2 splits dimensions other than 0 only evenly
    def by_columns(p):
        return Shard(1) if p.ndim == 2 and p.shape[1] % mesh.size() == 0 else None

    kw = {"shard_placement_fn": by_columns} if kind == "bert_cols" else {}
    inner = model.base_model.model
    for block in inner.bert.encoder.layer if kind.startswith("bert") else inner.transformer.h:
        fully_shard(block, mesh=mesh, **kw)
    fully_shard(model, mesh=mesh, **kw)


def _optimizer(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.01)


def _train(model, opt, kind, steps, *, rank=0, world=1, collectives: list | None = None) -> None:
    """Train on this rank's half of each batch; `collectives` gets each optimizer step's collective count."""
    for batch in steps:
        part = {k: v[rank * BATCH // world : (rank + 1) * BATCH // world] for k, v in batch.items()}
        model(**part).loss.backward()
        if collectives is None:
            opt.step()
        else:  # Delta-LoRA's own cost: FSDP2's collectives are in forward/backward, never in the step
            from torch.distributed.tensor.debug import CommDebugMode

            with CommDebugMode() as comm:
                opt.step()
            collectives.append(comm.get_total_counts())
        opt.zero_grad(set_to_none=True)


def _whole(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _record(model, handle, kind) -> dict:
    """Logits, whole parameters and, per adapted layer, whole W and the telescoped change (every rank)."""
    return {
        "logits": logits(model, kind),
        "params": {n: _whole(p.detach()).clone() for n, p in model.named_parameters()},
        "W": {s.name: _whole(s.weight.detach()).clone() for s in handle.slots},
        "delta": dict(handle.iter_weight_updates()),
        "step": handle.step,
    }


def _sharded_run(kind, engine, mesh, rank, world, out: Path) -> dict:
    model = lora(kind)
    shard(model, kind, mesh)
    opt = _optimizer(model)
    handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=K, engine=engine)
    batches = data(kind, STEPS)
    collectives: list[int] = []
    _train(model, opt, kind, batches[:HALFWAY], rank=rank, world=world, collectives=collectives)
    logits(model, kind)  # an evaluation forward: FSDP2's root keeps whole parameters registered after it
    ckpt = out / f"ckpt-{kind}-{engine}-rank{rank}.pt"
    torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, ckpt)
    _train(model, opt, kind, batches[HALFWAY:], rank=rank, world=world)
    # W, the pre-step copies and the factors stay shards; only the snapshots are kept whole
    slot = handle.slots[-1]
    rec = {"collectives": collectives, "layers": len(handle.slots)}
    rec["sharded"] = {
        "W": type(slot.weight).__name__,
        "A": type(slot.A).__name__,
        "prev_A": type(slot.prev_A).__name__ if slot.prev_A is not None else None,
        "snap_A": type(slot.snap_A).__name__,
        "W_local_shape": tuple(slot.weight.to_local().shape),
    }
    rec.update(_record(model, handle, kind))
    handle.export_adapter(out / f"adapter-{kind}-{engine}")  # every rank calls it; rank 0 writes
    handle.export_adapter(out / f"adapter-{kind}-{engine}-rank{rank}")
    # the Trainer callback's export at train end: the Trainer's should_save is True on rank 0 only
    cb = DeltaLoRACallback(export_dir=out / f"callback-{kind}-{engine}")
    cb.delta_lora = handle
    cb.on_train_end(SimpleNamespace(should_save=rank == 0), None, None)
    # DeltaLoRA.save: folded state (step, whole snapshots) is written by rank 0; inplace's sharded W refused
    try:
        handle.save(out / f"state-{kind}-{engine}.safetensors")
        rec["save"] = "written"
    except ValueError as e:
        rec["save"] = str(e)
    dist.barrier()
    # resume in a fresh sharded model from this rank's checkpoint written by the sharded run
    model2 = lora(kind)
    shard(model2, kind, mesh)
    opt2 = _optimizer(model2)
    logits(model2, kind)  # attaching after an evaluation forward still finds the shards the optimizer steps
    handle2 = DeltaLoRA(model2, opt2, update_ratio=2.0, start_step=K, engine=engine)
    saved = torch.load(ckpt, weights_only=False)
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["optim"])
    rec["restored"] = (handle2.restored_from_optimizer, handle2.step)
    _train(model2, opt2, kind, batches[HALFWAY:], rank=rank, world=world)
    rec["resumed"] = _record(model2, handle2, kind)
    return rec


def _refusals(mesh) -> dict:
    """Sharded bf16 W with inplace follows the unsharded rule; a Partial DTensor is refused."""
    got = {}
    model = lora("bert", torch.bfloat16)
    shard(model, "bert", mesh)
    try:
        DeltaLoRA(model, _optimizer(model), engine="inplace")
        got["bf16"] = "accepted"
    except ValueError as e:
        got["bf16"] = str(e)
    model = lora("bert", torch.bfloat16)
    shard(model, "bert", mesh)
    DeltaLoRA(model, _optimizer(model), engine="inplace", allow_low_precision=True)
    got["bf16_opt_in"] = "accepted"
    return got


def _worker(rank: int, world: int, out: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    torch.set_num_threads(1)
    # a collective that one rank skips fails after 2 minutes instead of hanging the test run
    dist.init_process_group(
        "gloo", init_method=f"file://{out}/store", rank=rank, world_size=world, timeout=timedelta(seconds=120)
    )
    try:
        mesh = init_device_mesh("cpu", (world,))
        results = {(k, e): _sharded_run(k, e, mesh, rank, world, Path(out)) for k in KINDS for e in ENGINES}
        results["refusals"] = _refusals(mesh)
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _single(kind, engine) -> dict:
    model = lora(kind)
    opt = _optimizer(model)
    handle = DeltaLoRA(model, opt, update_ratio=2.0, start_step=K, engine=engine)
    _train(model, opt, kind, data(kind, STEPS))
    return {**_record(model, handle, kind), "handle_state": handle.state_dict()}


def _maxdiff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b)
    return max((a[n] - b[n]).abs().max().item() for n in a)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    why = _fsdp2_missing()
    if why is not None:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("fsdp")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(2, str(out)), nprocs=2, join=True)
    return out, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", KINDS)
def test_fsdp2_two_ranks_on_half_batches_match_one_process(ranks, kind, engine):
    out, (r0, r1) = ranks
    a, b, one = r0[(kind, engine)], r1[(kind, engine)], _single(kind, engine)
    assert a["step"] == b["step"] == one["step"] == STEPS
    assert torch.equal(a["logits"], b["logits"])
    assert (a["logits"] - one["logits"]).abs().max().item() < 1e-9
    assert _maxdiff(a["params"], one["params"]) < 1e-9
    # W_0 + the telescoped change: the effective weight of every adapted layer
    w0 = {
        n.removesuffix(".base_layer.weight"): p.detach()
        for n, p in lora(kind).named_parameters()
        if n.endswith(".base_layer.weight")
    }
    eff = {n: a["W"][n] + (0 if engine == "inplace" else a["delta"][n]) for n in a["W"]}
    eff_one = {n: one["W"][n] + (0 if engine == "inplace" else one["delta"][n]) for n in one["W"]}
    assert _maxdiff(eff, eff_one) < 1e-9
    telescoped = {n: w0[n] + a["delta"][n] for n in a["W"]}
    assert _maxdiff(eff, telescoped) < 1e-9
    if engine == "folded":
        assert _maxdiff(a["W"], w0) == 0.0  # never written
    # memory: W, A and the pre-step copies are this rank's shards; the snapshots are whole
    s = a["sharded"]
    assert (s["W"], s["A"], s["snap_A"]) == ("DTensor", "DTensor", "Tensor")
    assert s["prev_A"] == ("DTensor" if engine == "inplace" else None)
    last_w = one["W"][list(one["W"])[-1]]
    dim = 1 if kind == "bert_cols" else 0
    assert s["W_local_shape"][dim] + b["sharded"]["W_local_shape"][dim] == last_w.shape[dim]
    assert b["sharded"]["W_local_shape"][dim] < last_w.shape[dim]  # bert classifier: 1 row / 0 rows
    assert s["W_local_shape"][1 - dim] == last_w.shape[1 - dim]
    if engine == "folded":  # the file rank 0 wrote restores the unsharded run's state
        assert a["save"] == b["save"] == "written"
        fresh = lora(kind)
        single = DeltaLoRA(fresh, _optimizer(fresh), update_ratio=2.0, start_step=K, engine=engine)
        single.load(out / f"state-{kind}-{engine}.safetensors")
        assert single.step == STEPS
        assert _maxdiff(single.state_dict()["tensors"], one["handle_state"]["tensors"]) < 1e-9
    else:
        assert "engine='inplace' on an FSDP2 model" in a["save"] and "optimizer.state_dict()" in a["save"]
    # rank 0 wrote the rank-2r adapter alone; vanilla PEFT loads it on an unsharded base
    assert (out / f"adapter-{kind}-{engine}-rank0").is_dir()
    assert not (out / f"adapter-{kind}-{engine}-rank1").exists()
    for written in (
        f"adapter-{kind}-{engine}",
        f"callback-{kind}-{engine}",
    ):  # DeltaLoRA's and the callback's
        loaded = PeftModel.from_pretrained(base(kind), str(out / written))
        assert loaded.peft_config["default"].r == 2 * lora(kind).peft_config["default"].r
        assert (logits(loaded, kind) - a["logits"]).abs().max().item() < 1e-9


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", KINDS)
def test_fsdp2_resume_from_sharded_checkpoint_is_exact(ranks, kind, engine):
    _, (r0, r1) = ranks
    for r in (r0, r1):
        rec = r[(kind, engine)]
        assert rec["restored"] == (True, HALFWAY)
        res = rec["resumed"]
        assert res["step"] == STEPS
        assert (res["logits"] - rec["logits"]).abs().max().item() < 1e-12
        assert _maxdiff(res["params"], rec["params"]) < 1e-12
        assert _maxdiff(res["W"], rec["W"]) < 1e-12


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", KINDS)
def test_fsdp2_collectives_per_step_are_the_documented_few(ranks, kind, engine):
    """What a step costs on top of LoRA under FSDP2 (whose own gathers are in forward and backward).

    folded: nothing but the snapshot at the switch (A and B of each layer, once). inplace: per layer and
    step, one gather (A with its pre-step copy; a Linear's B is used as this rank holds it) or two for
    GPT-2's Conv1D (A and B). Steps 0..K write nothing.
    """
    _, (r0, r1) = ranks
    for r in (r0, r1):
        rec = r[(kind, engine)]
        n, got = rec["layers"], rec["collectives"]
        assert n == (6 if kind == "gpt2" else 7)  # bert: query, value, intermediate x 2, classifier
        # a row-split Linear reads B from its own shard; Conv1D and column splits gather B too
        per_layer = 0 if engine == "folded" else (1 if kind == "bert" else 2)
        expected = [0] * K + [2 * n] + [per_layer * n] * (HALFWAY - K - 1)  # step K ends with the snapshot
        assert got == expected, (kind, engine, got, expected)


def test_fsdp2_low_precision_inplace_follows_the_unsharded_rule(ranks):
    _, (r0, r1) = ranks
    for r in (r0, r1):
        assert "bfloat16 weight" in r["refusals"]["bf16"] and "allow_low_precision" in r["refusals"]["bf16"]
        assert r["refusals"]["bf16_opt_in"] == "accepted"


# ---------------------------------------------------------------------------- refusals (one process, no FSDP)
@pytest.mark.parametrize(
    "name", ["DeepSpeedZeroOptimizer", "DeepSpeedZeroOptimizer_Stage3", "BF16_Optimizer"]
)
def test_deepspeed_zero_optimizers_are_refused_with_the_reason(name):
    """Stand-ins named like DeepSpeed's optimizers (deepspeed is not installed), wrapped like accelerate."""
    model = lora("gpt2")
    inner = _optimizer(model)
    zero = type(name, (), {"optimizer": inner})()
    wrapped = type("AcceleratedOptimizer", (), {"optimizer": zero})()
    match = rf"optimizer: it is DeepSpeed's {name}\. .*stale factors.*fully_shard"
    with pytest.raises(ValueError, match=match):
        DeltaLoRA(model, wrapped)


@pytest.mark.parametrize("how", ["fsdp1_wrapper", "flat_param"])
def test_fsdp1_is_refused_pointing_to_fsdp2(how):
    model = lora("gpt2")
    opt = _optimizer(model)
    if how == "flat_param":
        next(
            p for n, p in model.named_parameters() if n.endswith("c_attn.base_layer.weight")
        )._is_flat_param = True
        match = "an FSDP1 flat parameter, which is not supported"
    else:
        model = type("FullyShardedDataParallel", (torch.nn.Module,), {})()
        match = r"wrapped by FSDP1 \(FullyShardedDataParallel, flat parameters\), which is not supported"
    with pytest.raises(ValueError, match=rf"{match}.*supports FSDP2.*fully_shard"):
        DeltaLoRA(model, opt)
