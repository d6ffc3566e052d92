"""The typed run configuration (deltalora/run_config.py) is the resolved dict, exactly, read by attribute.

Why: a run's record keeps its configuration as resolved (`record["config"]`), so typing it must lose
nothing (every key, value and order comes back); and the point of typing is that a misspelt name fails,
so an unknown attribute or key must raise. Resolving needs no download: `resolve_run` only reads the
packaged profiles.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from deltalora.config import PROFILES, SET_SECTIONS, ConfigError, resolve_run, schema
from deltalora.methods import METHODS
from deltalora.run_config import (
    AnalysisConfig,
    DataConfig,
    GenerationConfig,
    ModelOptions,
    RunConfig,
    TrainConfig,
    config_fields,
    resolve_run_config,
)
from deltalora.train import _training_arguments

GLUE = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")
TASKS = [f"glue/{t}" for t in GLUE] + ["e2e", "webnlg", "xsum"]


@pytest.mark.parametrize("profile", PROFILES)
def test_round_trip_every_task_and_method(profile):
    for task in TASKS:
        for method in METHODS:
            d = resolve_run(task=task, method=method, seed=3, profile=profile)
            back = RunConfig.from_dict(d).to_dict()
            assert back == d, (profile, task, method)
            # the record's bytes: same keys in the same order, same value types (1 vs 1.0)
            assert json.dumps(back) == json.dumps(d), (profile, task, method)


def test_round_trip_keeps_optional_keys_and_row():
    sets = [
        "data.files={train: /x/train.jsonl}",
        "train.report_to=[tensorboard, wandb]",
        "analysis.grad_cosine_steps=[0, 5]",
        "train.warmup_steps=7",
        "train.label_smoothing=0.1",
        "generation.max_eval=3",
        "data.dev_max=10",
        "model_options.quantize=nf4",
        "hp.start_step=2",
    ]
    d = {**resolve_run(task="e2e", method="delta_lora", seed=0, sets=sets), "row": "my_row"}
    cfg = RunConfig.from_dict(d)
    assert json.dumps(cfg.to_dict()) == json.dumps(d)
    assert cfg.row_name == "my_row" and cfg.train.warmup_steps == 7 and cfg.train.label_smoothing == 0.1
    assert cfg.train.report_to == ("tensorboard", "wandb") and cfg.analysis.grad_cosine_steps == (0, 5)
    assert dict(cfg.data.files) == {"train": "/x/train.jsonl"} and cfg.model_options.quantize == "nf4"
    assert cfg.hp["start_step"] == 2 and cfg.hp_dict() == d["hp"]


def test_absent_keys_read_as_defaults_and_stay_absent():
    d = resolve_run(task="glue/rte", method="lora", seed=0)  # the default profile sets no label_smoothing
    assert "label_smoothing" not in d["train"] and "warmup_steps" not in d["train"]
    cfg = resolve_run_config(task="glue/rte", method="lora", seed=0)
    assert cfg.train.label_smoothing == 0.0 and cfg.train.warmup_steps == 0 and cfg.train.smoke is False
    assert "label_smoothing" not in cfg.to_dict()["train"]
    assert cfg.row is None and cfg.row_name == "lora"
    # decoding options: only those the configuration gives (the task's own apply to the rest)
    gen = GenerationConfig.from_dict({"num_beams": 4, "max_eval": 2})
    assert gen.decoding() == {"num_beams": 4} and gen.batch_size == 16 and gen.max_eval == 2


def test_values_reach_the_trainer_by_attribute(tmp_path):
    cfg = resolve_run_config(
        task="glue/rte",
        method="lora",
        seed=5,
        sets=["train.lr=2e-4", "train.batch_size=3", "train.warmup_steps=9"],
    )
    args = _training_arguments(cfg, tmp_path, has_eval=True, use_cuda=False)
    got = (args.learning_rate, args.per_device_train_batch_size, args.warmup_steps, args.seed)
    assert got == (2e-4, 3, 9, 5)


def test_typos_fail():
    cfg = resolve_run_config(task="glue/rte", method="lora", seed=0)
    with pytest.raises(AttributeError):
        cfg.train.lrr  # noqa: B018 - reading a misspelt name must fail
    with pytest.raises(AttributeError):
        cfg.trian  # noqa: B018
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.hp["r"] = 4  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown key; did you mean 'lr'"):
        TrainConfig.from_dict({**cfg.train.to_dict(), "lrr": 1e-3})
    with pytest.raises(ConfigError, match=r"unknown key.*did you mean 'train'"):
        RunConfig.from_dict({**cfg.to_dict(), "trian": {}})
    bad = cfg.to_dict()
    del bad["data"]["n_train"]
    with pytest.raises(ConfigError, match="data: missing n_train"):
        RunConfig.from_dict(bad)


def test_fields_agree_with_the_schema():
    """A key the validator allows must be a field, and a field must be a key the validator allows."""
    root = schema()
    sections = {
        TrainConfig: root["$defs"]["train"],
        DataConfig: root["$defs"]["data"],
        GenerationConfig: root["$defs"]["generation"],
        ModelOptions: root["properties"]["model_options"],
        AnalysisConfig: root["properties"]["analysis"],
    }
    for cls, sub in sections.items():
        assert set(config_fields(cls)) == set(sub["properties"]), cls.__name__
    resolved = resolve_run(task="glue/rte", method="lora", seed=0)
    assert set(config_fields(RunConfig)) == {*resolved, "row"}
    assert set(SET_SECTIONS) <= set(config_fields(RunConfig))
    assert set(RunConfig.NESTED) == set(SET_SECTIONS) - {"model", "hp"}
