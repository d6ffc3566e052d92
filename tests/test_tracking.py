"""Experiment tracking: `--set train.report_to=...` reaches the Trainer; TensorBoard writes into the run.

Both profiles default to no tracking. TensorBoard is tested for real: a tiny run writes event files in
its own folder, and the losses they hold are the ones in the run record.
"""

from __future__ import annotations

import os

import pytest

from deltalora.config import resolve_run
from deltalora.train import RunError, _training_arguments, run

TINY = [
    "model_options.num_hidden_layers=1",
    "data.n_train=32",
    "data.n_val=32",
    "train.epochs=1",
    "train.batch_size=8",
    "train.logging_steps=1",
]


@pytest.mark.parametrize("profile", ["default", "paper"])
def test_both_profiles_default_to_no_tracking(tmp_path, profile):
    cfg = resolve_run(task="glue/rte", method="lora", seed=0, profile=profile)
    assert cfg["train"]["report_to"] == "none"
    assert _training_arguments(cfg, tmp_path, has_eval=True, use_cuda=False).report_to == []


@pytest.mark.parametrize(
    "value, expected", [("none", []), ("tensorboard", ["tensorboard"]), (" tensorboard , ", ["tensorboard"])]
)
def test_report_to_passes_through_to_training_arguments(tmp_path, value, expected):
    pytest.importorskip("tensorboard")
    cfg = resolve_run(task="glue/rte", method="lora", seed=0, sets=[f"train.report_to={value}"])
    assert _training_arguments(cfg, tmp_path, has_eval=True, use_cuda=False).report_to == expected


def test_report_to_all_is_every_installed_integration(tmp_path):
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    cfg = resolve_run(task="glue/rte", method="lora", seed=0, sets=["train.report_to=all"])
    args = _training_arguments(cfg, tmp_path, has_eval=True, use_cuda=False)
    assert args.report_to == get_available_reporting_integrations()


@pytest.mark.parametrize(
    "value, message",
    [
        ("tensorbord", "'tensorbord' is not an integration transformers knows; allowed: none, all, "),
        ("neptune", "'neptune' is not installed here"),
    ],
)
def test_bad_report_to_names_the_field(tmp_path, value, message):
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    if value in get_available_reporting_integrations():
        pytest.skip(f"{value} is installed here")
    cfg = resolve_run(task="glue/rte", method="lora", seed=0, sets=[f"train.report_to={value}"])
    with pytest.raises(RunError, match="train.report_to: " + message.replace("(", r"\(")):
        _training_arguments(cfg, tmp_path, has_eval=True, use_cuda=False)


def test_tensorboard_events_land_in_the_run_folder_with_the_recorded_losses(tmp_path, monkeypatch):
    if os.environ.get("CI") != "true":
        pytest.importorskip("tensorboard", reason="TensorBoard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    cfg = resolve_run(
        task="glue/rte",
        method="lora",
        seed=0,
        sets=[*TINY, f"data.data_dir={tmp_path / 'data'}", "train.report_to=tensorboard"],
    )
    out = tmp_path / "run"
    rec = run(cfg, out)
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1, sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("train/loss")}
    recorded = {p["step"]: p["loss"] for p in rec["train_curve"]}
    assert len(recorded) == 4 and logged.keys() == recorded.keys()
    for step, loss in recorded.items():
        assert logged[step] == pytest.approx(loss, rel=1e-6)
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # the run leaves the process environment as it was
