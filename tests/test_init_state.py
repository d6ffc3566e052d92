"""Starting a run from another run's trained state (the LoRA protocol's MNLI initialisation).

A source run on MNLI saves `init_state/`; a target run on RTE (another head: 2 classes, not 3) starts
from it. The target trains at a negligible learning rate, so after its few steps the model must still
equal the source's trained model in every carried-over weight: for Delta-LoRA that includes W_T, which
the folded engine never wrote into W.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft.tuners.lora import LoraLayer

from deltalora.analysis import _effective_matrix
from deltalora.config import resolve_run
from deltalora.init_state import INIT_DIR
from deltalora.train import run

TINY = [
    "model_options.num_hidden_layers=1",
    "data.n_train=32",
    "data.n_val=32",
    "train.epochs=1",
    "train.batch_size=8",
    "train.logging_steps=1",
]


def cfg(task, method, tmp: Path, extra=()):
    return resolve_run(
        task=task, method=method, seed=0, sets=[*TINY, f"data.data_dir={tmp / 'data'}", *extra]
    )


def effective(model) -> dict[str, torch.Tensor]:
    """The effective weight (W + adapter, any engine) of each adapted layer, by pushing I through it."""
    model.eval()
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, LoraLayer) and "default" in m.lora_A:
            w = m.get_base_layer().weight
            out[name.replace("base_model.model.", "")] = _effective_matrix(m, w.shape[1], w.device, w.dtype)
    return out


def backbone(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "classifier" not in k}


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("lora", ()),
        ("delta_lora", ("hp.engine=folded", "hp.start_step=0")),
        ("delta_lora", ("hp.engine=inplace", "hp.start_step=0")),
    ],
)
def test_target_starts_from_the_source_adapter_and_weights(tmp_path, method, extra):
    seen = {}
    src = run(
        cfg("glue/mnli", method, tmp_path, [*extra, "train.save_init=true"]),
        tmp_path / "mnli",
        on_trained=lambda m: seen.update(src=effective(m)),
    )
    assert (tmp_path / "mnli" / INIT_DIR / "init_state.json").is_file()
    if method == "delta_lora":
        assert src["delta_lora"]["switched"]
    # the target: same method, Delta-LoRA's K beyond the run so W does not move; a negligible lr
    tgt_extra = ["hp.start_step=1000"] if method == "delta_lora" else []
    run(
        cfg(
            "glue/rte",
            method,
            tmp_path,
            [*tgt_extra, "train.lr=1e-12", f"train.init_from={tmp_path / 'mnli' / INIT_DIR}"],
        ),
        tmp_path / "rte",
        on_trained=lambda m: seen.update(tgt=effective(m)),
    )
    # and a target that does not start from MNLI, to show the comparison is not vacuous
    run(
        cfg("glue/rte", method, tmp_path, [*tgt_extra, "train.lr=1e-12"]),
        tmp_path / "rte0",
        on_trained=lambda m: seen.update(fresh=effective(m)),
    )
    assert seen["src"].keys() == seen["tgt"].keys() and seen["src"]
    for name, w in seen["src"].items():
        assert (seen["tgt"][name] - w).abs().max().item() < 1e-5, name
    assert max((seen["fresh"][n] - w).abs().max().item() for n, w in seen["src"].items()) > 1e-3


def test_full_ft_target_starts_from_the_source_backbone(tmp_path):
    seen = {}
    run(
        cfg("glue/mnli", "full_ft", tmp_path, ["train.save_init=true"]),
        tmp_path / "mnli",
        on_trained=lambda m: seen.update(src=backbone(m)),
    )
    run(
        cfg(
            "glue/rte",
            "full_ft",
            tmp_path,
            ["hp.lr=1e-12", f"train.init_from={tmp_path / 'mnli' / INIT_DIR}"],
        ),
        tmp_path / "rte",
        on_trained=lambda m: seen.update(tgt=backbone(m)),
    )
    assert seen["src"].keys() == seen["tgt"].keys()
    worst = max(
        (seen["tgt"][k] - v).abs().max().item() for k, v in seen["src"].items() if v.is_floating_point()
    )
    assert worst < 1e-6


def test_mismatched_source_is_refused(tmp_path):
    run(cfg("glue/mnli", "lora", tmp_path, ["train.save_init=true"]), tmp_path / "mnli")
    state = tmp_path / "mnli" / INIT_DIR
    with pytest.raises(ValueError, match="holds a 'lora' run's state; this run's method is 'dora'"):
        run(cfg("glue/rte", "dora", tmp_path, [f"train.init_from={state}"]), tmp_path / "a")
    with pytest.raises(ValueError, match=r"has shape \(8, 384\); this model.s is \(4, 384\)"):
        run(cfg("glue/rte", "lora", tmp_path, ["hp.r=4", f"train.init_from={state}"]), tmp_path / "b")
    with pytest.raises(ValueError, match="init_state.json does not exist"):
        run(cfg("glue/rte", "lora", tmp_path, [f"train.init_from={tmp_path / 'nowhere'}"]), tmp_path / "c")
    assert not any((tmp_path / d / "record.json").exists() for d in "abc")
