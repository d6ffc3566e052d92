"""`deltalora mirror` never touches a real cache, and nothing trained on a stand-in passes for a real result.

- The mirror refuses, by path and before writing anything, a folder it did not make (a Hugging Face
  cache with a hub snapshot and a datasets folder stays byte-identical), and an earlier mirror that
  holds a file it did not write; it replaces an earlier mirror whole, in one atomic exchange.
- A paper-profile run on a mirrored cache WITHOUT smoke.yaml writes a record that says smoke and names
  its stand-ins; the GLUE table built from it is titled as a smoke run, its CSV rows say so, its source
  line says "smoke mirror"; the audit's CSV rows say smoke; mixing it with a real record is refused.

Runtime: about 25 s on 2 shared CPU cores, plus the session's `mirror_home` fixture (about 25-90 s)
when no other test of the session built it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from slurm_helpers import REPO, mirror_env

from deltalora import mirror, smoke
from deltalora.records import RecordError


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under `root` (links not followed): a file's sha256, a link's target, a folder's mark."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            p = Path(d) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def fake_real_cache(root: Path) -> Path:
    """A real-looking HF_HOME: RoBERTa-base's hub snapshot abc123 (refs/main, blob links) and GLUE/RTE."""
    repo = root / "hub" / "models--FacebookAI--roberta-base"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    blob = repo / "blobs" / "0123456789abcdef"
    blob.write_text('{"model_type": "roberta", "hidden_size": 768}')
    (repo / "snapshots" / "abc123" / "config.json").symlink_to("../../blobs/0123456789abcdef")
    rte = root / "datasets" / "nyu-mll___glue" / "rte" / "0.0.0" / "feedbeef"
    rte.mkdir(parents=True)
    (rte / "dataset_info.json").write_text('{"description": "GLUE RTE"}')
    (rte / "glue-train.arrow").write_bytes(b"real arrow bytes")
    return root


def test_the_mirror_refuses_a_real_cache_by_path_and_leaves_it_byte_identical(tmp_path):
    cache = fake_real_cache(tmp_path / "hf")
    before, parent_before = tree_digest(cache), sorted(os.listdir(tmp_path))
    r = subprocess.run(
        [sys.executable, "-m", "deltalora", "mirror", "--out", str(cache)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert f"--out {cache}: refused" in r.stderr and "Nothing was written" in r.stderr
    assert "datasets/, hub/" in r.stderr  # it names what it found there
    with pytest.raises(mirror.MirrorError, match="not made by `deltalora mirror`"):
        mirror.mirror(cache)
    assert tree_digest(cache) == before
    assert (cache / "hub/models--FacebookAI--roberta-base/refs/main").read_text() == "abc123"
    assert sorted(os.listdir(tmp_path)) == parent_before  # no temporary folder beside it either


def fake_earlier_mirror(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    marker = {"made_by": "deltalora mirror", "files": sorted(files)}
    (root / smoke.MIRROR_MARKER).write_text(json.dumps(marker))
    return root


OLD = {"hub/models--FacebookAI--roberta-base/refs/main": b"old", "datasets/nyu-mll___glue/rte/x.arrow": b"o"}


def test_an_earlier_mirror_holding_a_file_it_did_not_write_is_refused(tmp_path):
    out = fake_earlier_mirror(tmp_path / "hf", OLD)
    # What reading a mirror leaves there is the mirror's own: datasets' locks and map caches.
    (out / "datasets" / "_tmp_hf_nyu-mll___glue_rte.lock").write_text("")
    (out / "datasets/nyu-mll___glue/rte/cache-0123abcd.arrow").write_bytes(b"map")
    assert mirror.check_out(out) is True
    # A real download into it is not: replacing the mirror would delete it.
    real = out / "hub/models--bert-base-uncased/snapshots/abc123/config.json"
    real.parent.mkdir(parents=True)
    real.write_text("{}")
    before = tree_digest(out)
    with pytest.raises(
        mirror.MirrorError, match="hub/models--bert-base-uncased/snapshots/abc123/config.json"
    ):
        mirror.mirror(out)
    assert tree_digest(out) == before


def test_an_earlier_mirror_is_replaced_whole_in_one_atomic_exchange(tmp_path, monkeypatch):
    out = fake_earlier_mirror(tmp_path / "hf", OLD)
    (out / "datasets" / "x.lock").write_text("")

    def build(root: Path, *, seed: int) -> dict[str, list[str]]:  # the real build takes ~25-90 s
        (root / "hub" / "models--FacebookAI--roberta-base").mkdir(parents=True)
        (root / "hub" / "models--FacebookAI--roberta-base" / "new").write_text(f"seed {seed}")
        return {"models": ["FacebookAI/roberta-base"], "datasets": []}

    swaps = []
    real_exchange = mirror._exchange

    def exchange(a: Path, b: Path) -> bool:
        assert (b / "hub/models--FacebookAI--roberta-base/refs/main").is_file()  # the old one, in place
        swaps.append(real_exchange(a, b))
        assert (b / smoke.MIRROR_MARKER).is_file() and (
            b / "hub/models--FacebookAI--roberta-base/new"
        ).is_file()
        return swaps[-1]

    monkeypatch.setattr(mirror, "_build", build)
    monkeypatch.setattr(mirror, "_exchange", exchange)
    assert mirror.mirror(out, seed=3) == {"models": ["FacebookAI/roberta-base"], "datasets": []}
    assert swaps == [True]  # renameat2(RENAME_EXCHANGE): `out` never stops existing
    assert set(tree_digest(out)) == {
        "hub",
        "hub/models--FacebookAI--roberta-base",
        "hub/models--FacebookAI--roberta-base/new",
        smoke.MIRROR_MARKER,
    }
    marker = json.loads((out / smoke.MIRROR_MARKER).read_text())
    assert marker["files"] == ["hub/models--FacebookAI--roberta-base/new"]
    assert os.listdir(tmp_path) == ["hf"]  # the old mirror and the build folder are gone
    # A new or empty folder is fine too; the new mirror can be replaced by the next one.
    monkeypatch.setattr(mirror, "_exchange", real_exchange)
    (tmp_path / "empty").mkdir()
    mirror.mirror(tmp_path / "empty")
    mirror.mirror(tmp_path / "empty")
    assert sorted(os.listdir(tmp_path)) == ["empty", "hf"]


# ------------------------------------------------------------------------------ runs on a stand-in
@pytest.fixture(scope="module")
def standin_record(mirror_home, tmp_path_factory) -> Path:
    """A paper-profile GLUE run on the mirror, WITHOUT smoke.yaml (no train.smoke anywhere)."""
    d = tmp_path_factory.mktemp("standin_run")
    out = d / "runs" / "paper" / "glue" / "rte" / "lora" / "seed0"
    r = subprocess.run(
        [
            *(sys.executable, "-m", "deltalora", "train", "--out", str(out)),
            *"--profile paper --task glue/rte --method lora --seed 0".split(),
            *"--set train.max_steps=2 --set train.threads=1".split(),
        ],
        capture_output=True,
        text=True,
        env=mirror_env(mirror_home, d),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (out / "stderr.txt").write_text(r.stderr)
    return out / "record.json"


def test_a_paper_run_on_the_mirror_without_smoke_yaml_is_flagged_as_a_stand_in(standin_record):
    rec = json.loads(standin_record.read_text())
    assert rec["profile"] == "paper"
    assert "smoke" not in rec["config"]["train"]  # nothing in its configuration says smoke ...
    assert rec["smoke"] is True  # ... its record does, and names the stand-ins
    assert rec["stand_in"]["model"] == "FacebookAI/roberta-base"
    assert rec["stand_in"]["data_splits"] == ["dev", "train", "validation"]
    assert rec["stand_in"]["note"] == smoke.MIRROR_NOTE
    assert smoke.is_smoke(rec) and smoke.is_stand_in(rec)
    warning = (
        "this run loaded stand-ins of `deltalora mirror` (model FacebookAI/roberta-base; data splits dev, "
        "train, validation): its record says smoke"
    )
    assert warning in (standin_record.parent / "stderr.txt").read_text()


def test_the_glue_table_and_the_audit_of_a_stand_in_run_say_smoke(standin_record, tmp_path):
    from deltalora.audit import build_audit
    from deltalora.collect import collect_glue

    try:
        collect_glue([standin_record], tmp_path / "glue_table.csv", profile="paper")
        md = (tmp_path / "glue_table.md").read_text()
        assert md.splitlines()[0] == f"# GLUE (paper profile - {smoke.SMOKE_NOTE})"
        source = next(line for line in md.splitlines() if line.startswith("- Profile:"))
        assert "smoke mirror" in source and "hub" not in source.replace("not the hub's", "")
        assert smoke.SMOKE_NOTE in (tmp_path / "glue_table.tex").read_text().splitlines()[0]
        csv = pd.read_csv(tmp_path / "glue_table.csv")
        assert len(csv) == 1 and csv["smoke"].tolist() == [True]
        rows = build_audit([standin_record], profile="paper", out_md=tmp_path / "audit.md")
        audit = pd.read_csv(tmp_path / "audit.csv", keep_default_na=False)
        assert len(audit) == len(rows) > 10 and set(audit["smoke"]) == {True}
        measured = audit[audit["scale"] != "no measurement"]["scale"]
        assert len(measured) and all(
            s.startswith("smoke scale (paper profile, tiny random") for s in measured
        )
        assert not audit["scale"].str.startswith("paper scale").any()
    finally:
        smoke.activate(False)


def test_a_stand_in_record_never_mixes_with_a_real_one(standin_record, tmp_path):
    from deltalora.audit import build_audit
    from deltalora.collect import collect_glue

    rec = json.loads(standin_record.read_text())
    rec.update(smoke=False, stand_in=None, seed=1)  # the same run as a real one would record it
    real = tmp_path / "real" / "record.json"
    real.parent.mkdir()
    real.write_text(json.dumps(rec))
    try:
        with pytest.raises(
            RecordError, match="is a run on a stand-in of `deltalora mirror` but .* is a real run"
        ):
            collect_glue([standin_record, real], tmp_path / "glue_table.csv", profile="paper")
        assert not (tmp_path / "glue_table.csv").exists()
        with pytest.raises(RecordError, match="never mix"):
            build_audit([real, standin_record], profile="paper", out_md=tmp_path / "audit.md")
        # a smoke measurement beside real records: refused too
        mem = {"model": "tiny", "dtype": "fp32", "config": "lora", "peak_ratio_to_lora": 1.0}
        pd.DataFrame([{**mem, "step_ratio_to_lora": 1.0, "smoke": True}]).to_csv(
            tmp_path / "mem.csv", index=False
        )
        with pytest.raises(RecordError, match="mem.csv comes from a smoke build"):
            build_audit(
                [real], profile="paper", memory_csv=tmp_path / "mem.csv", out_md=tmp_path / "audit.md"
            )
        assert not (tmp_path / "audit.md").exists()
    finally:
        smoke.activate(False)


def test_the_decisive_audit_refuses_to_mix_smoke_and_real_records(tmp_path):
    from deltalora.audit import decisive

    recs = {"a.json": {"profile": "paper", "stand_in": {"model": "x"}}, "b.json": {"profile": "paper"}}
    try:
        with pytest.raises(RecordError, match="a.json is a run on a stand-in .* b.json is a real run"):
            decisive.build(
                list(recs),
                profile="paper",
                out=tmp_path / "d.md",
                csv=tmp_path / "d.csv",
                read=recs.__getitem__,
            )
    finally:
        smoke.activate(False)
    assert not (tmp_path / "d.md").exists()


def test_tables_without_records_say_smoke_on_a_mirrored_cache(tmp_path, monkeypatch):
    """The run-time table reads no record: a paper-profile build on a mirror labels it from the cache."""
    from huggingface_hub import constants

    from deltalora.cli import main

    bench = tmp_path / "benchmarks" / "glue" / "rte.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\tcpu_time\n12.5\t0:00:12\t900\t20\n")
    hf = fake_earlier_mirror(tmp_path / "hf", {})
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "elsewhere" / "hub"))
    monkeypatch.delenv("HF_DATASETS_CACHE")
    try:
        for profile, mirrored, expect in (
            ("paper", False, False),
            ("default", True, False),
            ("paper", True, True),
        ):
            if mirrored:
                monkeypatch.setattr(constants, "HF_HOME", str(hf))
            out = tmp_path / f"{profile}{mirrored}" / "runtime_table.csv"
            assert main(["collect", "runtime", str(bench), "--out", str(out), "--profile", profile]) == 0
            assert pd.read_csv(out)["smoke"].tolist() == [expect]
            title = out.with_suffix(".md").read_text().splitlines()[0]
            assert (smoke.SMOKE_NOTE in title) is expect
            assert ("smoke mirror" in out.with_suffix(".md").read_text()) is expect
            smoke.activate(False)
    finally:
        smoke.activate(False)
