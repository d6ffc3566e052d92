"""results/build_info.json: the one file with each output's build time and commit (the tables carry none).

Checks: entries accumulate per output with the commit and versions; collectors running at once (as in a
Snakemake build) lose no entry; a build_info.json this library did not write is refused before any
output is written, and left as it was. ~10 s.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

import pytest

from deltalora.collect import build_info
from deltalora.errors import UserError
from deltalora.records import git_commit


def test_each_output_gets_its_entry_with_commit_and_versions(tmp_path):
    path = build_info.note(tmp_path / "glue_table.csv", "deltalora collect glue")
    build_info.note(tmp_path / "audit.md", "deltalora audit")
    assert path == tmp_path / "build_info.json"
    data = json.loads(path.read_text())
    assert sorted(data["outputs"]) == ["audit.md", "glue_table.csv"]
    entry = data["outputs"]["glue_table.csv"]
    assert entry["command"] == "deltalora collect glue"
    assert entry["git_commit"] == git_commit()["commit"] and entry["versions"]["python"]
    assert entry["versions"]["matplotlib"] and entry["versions"]["pandas"]  # what wrote the tables and plots
    assert entry["built_at"][:2] == "20" and "T" in entry["built_at"]


def _note(args: tuple[str, int]) -> None:
    folder, i = args
    build_info.note(os.path.join(folder, f"table{i}.csv"), f"deltalora collect t{i}")


def test_concurrent_collectors_lose_no_entry(tmp_path):
    """Each note reads, updates and replaces the file; without the folder lock, writers that overlap
    drop each other's entries."""
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_note, [(str(tmp_path), i) for i in range(16)])
    outputs = json.loads((tmp_path / "build_info.json").read_text())["outputs"]
    assert sorted(outputs) == sorted(f"table{i}.csv" for i in range(16))


@pytest.mark.parametrize("text", ["my own notes\n", '{"outputs": {}}\n'])
def test_a_foreign_build_info_file_is_refused_and_left_alone(tmp_path, text):
    foreign = tmp_path / "build_info.json"
    foreign.write_text(text)
    with pytest.raises(UserError, match="not a deltalora build-info file"):
        build_info.note(tmp_path / "t.csv", "deltalora collect glue")
    assert foreign.read_text() == text
    # through the command line: refused before the table is written
    r = subprocess.run(
        [sys.executable, "-m", "deltalora", "collect", "glue", str(tmp_path / "none.json")]
        + ["--out", str(tmp_path / "t.csv"), "--profile", "default"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "not a deltalora build-info file" in r.stderr, r.stderr
    assert str(foreign) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "t.csv").exists() and foreign.read_text() == text
