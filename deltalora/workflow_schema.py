"""The workflow config's list of methods, generated from the method registry.

Why: `workflow/config/schema.yaml` validates a workflow config inside Snakemake before any job runs,
and a row naming an unknown method must fail there, clearly. Snakemake reads the schema as a file and
importing the registry (torch, PEFT) in every DAG build costs seconds, so the schema file keeps a
literal list, written by this module from the registry: after registering a new method, run
``python -m deltalora.workflow_schema`` (``tests/test_workflow_schema.py`` fails until the file is
current). :func:`workflow_schema` gives the same schema in memory, for validating a config from Python.
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "workflow" / "config" / "schema.yaml"
# The one line of schema.yaml that lists the methods (rows.<row>.method).
_METHOD_LINE = re.compile(
    r"^(?P<indent>\s*)method: \{enum: \[(?P<names>[^\]]*)\]\}(?P<rest>.*)$", re.MULTILINE
)


def registered_methods() -> list[str]:
    """Names of the registered methods, sorted."""
    from .methods.registry import METHODS

    return sorted(METHODS)


def schema_methods(text: str) -> list[str]:
    """The method names listed in a schema file's text."""
    m = _METHOD_LINE.search(text)
    if m is None:
        raise ValueError("schema.yaml: no line 'method: {enum: [...]}' under rows")
    return [n.strip() for n in m.group("names").split(",") if n.strip()]


def with_methods(text: str, methods: list[str]) -> str:
    """The schema text with its method list replaced by `methods` (comments and layout kept)."""
    return _METHOD_LINE.sub(
        lambda m: f"{m['indent']}method: {{enum: [{', '.join(methods)}]}}{m['rest']}", text, count=1
    )


def workflow_schema(path: str | Path = SCHEMA_FILE) -> dict[str, Any]:
    """The workflow schema as a dict, its method list taken from the registry (not from the file)."""
    schema = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    schema = copy.deepcopy(schema)
    schema["properties"]["rows"]["additionalProperties"]["properties"]["method"] = {
        "enum": registered_methods()
    }
    return schema


def validate_workflow_config(config: dict[str, Any], path: str | Path = SCHEMA_FILE) -> None:
    """Raise ValueError naming the field if `config` does not fit the schema (with registered methods)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(workflow_schema(path))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ValueError(f"workflow config: {where}: {e.message}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the registered methods into workflow/config/schema.yaml.")
    p.add_argument("--schema", default=str(SCHEMA_FILE))
    p.add_argument("--check", action="store_true", help="only check; exit 1 if the file is stale")
    args = p.parse_args(argv)
    path = Path(args.schema)
    text = path.read_text(encoding="utf-8")
    methods = registered_methods()
    if schema_methods(text) == methods:
        return 0
    if args.check:
        print(f"{path}: methods {schema_methods(text)} != registered {methods}")
        return 1
    from .records import atomic_write_text

    atomic_write_text(path, with_methods(text, methods))
    print(f"{path}: methods set to {methods}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
