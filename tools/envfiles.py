"""Write the two conda environment files from pyproject.toml, so that they cannot drift from it.

Why: pyproject.toml is where dependencies are declared and what pip installs; the conda files
(`environment.yml` for a developer's environment, `workflow/envs/deltalora.yaml` for Snakemake's
per-rule `--sdm conda` environments) used to be kept in step by hand, and they drifted (a platform
marker was lost). Run ``python tools/envfiles.py`` after changing pyproject.toml's dependencies;
``python tools/envfiles.py --check`` (run by tests/test_envfiles.py) exits 1 and names the stale file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
ENVIRONMENT = ROOT / "environment.yml"
RULE_ENV = ROOT / "workflow" / "envs" / "deltalora.yaml"

_CONDA_HEADER = """name: deltalora
channels:
  - conda-forge
dependencies:
  - python{python}
  - pip
  - openjdk>=11          # METEOR (pycocoevalcap) runs on Java
  - pip:
"""
_GENERATED = (
    "# Generated from pyproject.toml by `python tools/envfiles.py`; edit pyproject.toml, not this file.\n"
)


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


def _pip_line(req: str) -> str:
    # YAML: a requirement with an environment marker holds quotes and ';': write it as a JSON string,
    # which YAML reads as a double-quoted scalar.
    return f"      - {json.dumps(req)}\n" if ";" in req else f"      - {req}\n"


def environment_yml(project: dict) -> str:
    """The developer's environment: Python, Java and torch from conda/pip, the package editable."""
    torch = next(r for r in project["dependencies"] if r.startswith("torch"))
    extras = ",".join(sorted(project["optional-dependencies"]))
    return (
        _GENERATED
        + "# conda env create -f environment.yml && conda activate deltalora\n"
        + "# torch: pick the CUDA or CPU build for your machine first if you need a specific one.\n"
        + _CONDA_HEADER.format(python=project["requires-python"])
        + f"      - {torch}\n"
        + f"      - -e .[{extras}]\n"
    )


def rule_env_yaml(project: dict) -> str:
    """Software for every rule: the core dependencies and the `suite` extra, not the package itself
    (every rule runs `python3 -m deltalora` in the repository root, so Python imports the checkout)."""
    reqs = [*project["dependencies"], *project["optional-dependencies"]["suite"]]
    return (
        _GENERATED
        + "# Used by every rule's `conda:` directive with `--sdm conda`. The package itself is not\n"
        + "# installed: rules run `python3 -m deltalora` in the repository root, so Python imports the\n"
        + "# checkout.\n"
        + _CONDA_HEADER.format(python=project["requires-python"])
        + "".join(_pip_line(r) for r in reqs)
    )


def expected() -> dict[Path, str]:
    project = _project()
    return {ENVIRONMENT: environment_yml(project), RULE_ENV: rule_env_yaml(project)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a file differs from pyproject.toml")
    args = p.parse_args(argv)
    stale = [path for path, text in expected().items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(ROOT)} is out of date with pyproject.toml: run python tools/envfiles.py"
            )
        return 1 if stale else 0
    for path, text in expected().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
