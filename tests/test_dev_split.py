"""The dev split (deltalora/tasks/dev_split.py): carved from train, deterministic, the same for every
method and seed, disjoint from validation, and the split every selection is made on."""

from __future__ import annotations

import datasets
import pytest

from deltalora.tasks import dev_split
from deltalora.tasks.glue import GLUE_TASKS, load_glue
from deltalora.train import best_epoch


def _texts(ds, task: str) -> set[tuple[str, ...]]:
    cols = GLUE_TASKS[task].input_columns
    return {tuple(r[c] for c in cols) for r in ds}


@pytest.mark.parametrize(
    ("size", "n_train", "cap", "want"),
    [
        (64, 256, 0, 64),
        (0.1, 1000, 0, 100),
        (0.1, 400_000, 2000, 2000),
        (0, 100, 0, 0),
        (0.001, 10, 0, 1),
    ],
)
def test_dev_count(size, n_train, cap, want):
    assert dev_split.dev_count(n_train, size, cap) == want


@pytest.mark.parametrize(
    ("size", "cap", "field"),
    [(-1, 0, "dev_size"), (2.5, 0, "dev_size"), (0.1, -1, "dev_max"), (0.99, 0, "dev_size")],
)
def test_dev_count_bad_input_names_the_field(size, cap, field):
    with pytest.raises(ValueError, match=field):
        dev_split.dev_count(2 if size == 0.99 else 100, size, cap)


@pytest.mark.parametrize("task", ["rte", "mnli", "stsb"])
def test_proxy_dev_is_deterministic_disjoint_and_leaves_train_unchanged(tmp_path, task):
    a = load_glue(task, profile="default", data_dir=tmp_path / "a", n_train=48, n_val=40, dev_size=16)
    b = load_glue(task, profile="default", data_dir=tmp_path / "b", n_train=48, n_val=40, dev_size=16)
    plain = load_glue(task, profile="default", data_dir=tmp_path / "c", n_train=48, n_val=40)
    assert len(a["dev"]) == 16 and len(a["train"]) == 48
    assert a["dev"].to_list() == b["dev"].to_list()  # deterministic (fresh files in another folder)
    assert dev_split.fingerprint(a["dev"]) == dev_split.fingerprint(b["dev"])
    assert a["train"].to_list() == plain["train"].to_list()  # training data as without a dev split
    assert "dev" not in plain
    assert not {r["idx"] for r in a["dev"]} & {r["idx"] for r in a["train"]}  # disjoint from train
    for split in GLUE_TASKS[task].eval_splits:  # disjoint from every validation split, by text
        assert not _texts(a["dev"], task) & _texts(a[split], task)


def test_random_carve_is_seeded_disjoint_and_complete():
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"idx": list(range(100))}),
            "validation": datasets.Dataset.from_dict({"idx": list(range(100, 120))}),
        }
    )
    a = dev_split.carve_random(ds, 10, seed=0)
    b = dev_split.carve_random(ds, 10, seed=0)
    c = dev_split.carve_random(ds, 10, seed=1)
    dev, train = list(a["dev"]["idx"]), list(a["train"]["idx"])
    assert dev == list(b["dev"]["idx"]) and dev != list(c["dev"]["idx"])
    assert len(dev) == 10 and not set(dev) & set(train) and sorted(dev + train) == list(range(100))
    assert dev != list(range(90, 100)) and dev != list(range(10))  # a random draw, not a slice
    assert list(a["validation"]["idx"]) == list(range(100, 120))


def test_best_epoch_is_selected_on_dev_not_validation():
    """Planted: validation prefers epoch 1, dev prefers epoch 2; the run's best epoch is chosen on dev."""
    epochs = [
        {"epoch": 1, "metrics": {"accuracy": 90.0}, "extra_splits": {"dev": {"accuracy": 60.0}}},
        {"epoch": 2, "metrics": {"accuracy": 70.0}, "extra_splits": {"dev": {"accuracy": 80.0}}},
    ]
    assert best_epoch(epochs, "accuracy")["epoch"] == 2
    no_dev = [{**e, "extra_splits": {}} for e in epochs]
    assert best_epoch(no_dev, "accuracy")["epoch"] == 1


def test_a_tie_on_dev_goes_to_the_lower_dev_loss_then_the_earlier_epoch():
    """A small dev split saturates: epochs 1-3 all reach 62/64; the lowest dev loss (epoch 3) wins."""
    dev = [(96.875, 0.40), (96.875, 0.31), (96.875, 0.25), (93.75, 0.20)]
    epochs = [
        {
            "epoch": i + 1,
            "metrics": {"accuracy": 80.0, "loss": 0.1},
            "extra_splits": {"dev": {"accuracy": a, "loss": loss}},
        }
        for i, (a, loss) in enumerate(dev)
    ]
    assert best_epoch(epochs, "accuracy")["epoch"] == 3
    no_loss = [
        {**e, "extra_splits": {"dev": {"accuracy": e["extra_splits"]["dev"]["accuracy"]}}} for e in epochs
    ]
    assert best_epoch(no_loss, "accuracy")["epoch"] == 1


def test_runs_of_every_method_are_scored_on_the_same_dev_split(tmp_path):
    from deltalora.config import resolve_run
    from deltalora.train import run

    sets = [
        "model_options.num_hidden_layers=1",
        "data.n_train=32",
        "data.n_val=32",
        "data.dev_size=16",
        "train.epochs=1",
        "train.batch_size=8",
        f"data.data_dir={tmp_path / 'data'}",
    ]
    recs = [
        run(resolve_run(task="glue/rte", method=m, seed=s, sets=sets), tmp_path / f"{m}{s}")
        for m, s in (("lora", 0), ("delta_lora", 1))
    ]
    for rec in recs:
        assert rec["selected_on"] == "dev"
        assert "accuracy" in rec["best"]["extra_splits"]["dev"] and "accuracy" in rec["best"]["metrics"]
        assert rec["dev_split"]["n"] == 16
    assert recs[0]["dev_split"]["sha256"] == recs[1]["dev_split"]["sha256"]


@pytest.mark.parametrize(
    ("selected", "says", "never"),
    [
        (["dev", "dev"], "chosen on the dev split carved from train", "also the split reported"),
        (["validation"], "on the validation split, which is also the split reported", "dev split"),
        (["dev", "validation"], "1 on dev, 1 on validation", "also the split reported"),
    ],
)
def test_glue_table_text_states_where_the_epoch_was_selected(selected, says, never):
    """results/glue_table.md's text follows the records' `selected_on`, not a fixed sentence."""
    from deltalora.collect.tables import epoch_selection_note

    note = epoch_selection_note([{"selected_on": s} for s in selected])
    assert says in note and never not in note, note
