"""The conda environment files are generated from pyproject.toml and must not drift from it.

Why: `environment.yml` and `workflow/envs/deltalora.yaml` (the rules' `--sdm conda` environment) were
kept in step by hand and drifted. They are now written by `tools/envfiles.py`; this test fails, naming
the command, when either differs from what pyproject.toml gives, and checks the parsed requirement
lists themselves so a generator bug cannot hide behind a text comparison.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pip_section(path: Path) -> list[str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    return next(d["pip"] for d in deps if isinstance(d, dict))


def test_environment_files_are_current():
    r = subprocess.run(
        [sys.executable, "tools/envfiles.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_rule_environment_lists_exactly_the_core_and_suite_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = [*project["dependencies"], *project["optional-dependencies"]["suite"]]
    assert _pip_section(ROOT / "workflow" / "envs" / "deltalora.yaml") == want
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python{project['requires-python']}" in env["dependencies"]
    extras = ",".join(sorted(project["optional-dependencies"]))
    assert f"-e .[{extras}]" in _pip_section(ROOT / "environment.yml")


def test_a_stale_file_is_named(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import envfiles
    finally:
        sys.path.pop(0)
    stale = tmp_path / "deltalora.yaml"
    stale.write_text("name: deltalora\n")
    monkeypatch.setattr(envfiles, "RULE_ENV", stale)
    monkeypatch.setattr(envfiles, "ROOT", tmp_path)
    monkeypatch.setattr(envfiles, "ENVIRONMENT", tmp_path / "environment.yml")
    assert envfiles.main(["--check"]) == 1
