"""The workflow config accepts exactly the registered methods: adding a baseline needs no hand edit.

`workflow/config/schema.yaml` lists the methods a row may name; `deltalora.workflow_schema` writes that
list from the registry. These tests register a new method and validate a config that uses it, and fail
when the file's list and the registry part ways.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from deltalora import workflow_schema as ws
from deltalora.methods import registry
from deltalora.methods.lora import LoRA

REPO = Path(__file__).resolve().parents[1]


def _config(method: str) -> dict:
    cfg = yaml.safe_load((REPO / "workflow" / "config" / "test.yaml").read_text())
    cfg["rows"]["new_row"] = {"method": method, "set": ["hp.r=4"]}
    cfg["glue"]["rows"] = [*cfg["glue"]["rows"], "new_row"]
    return cfg


@pytest.fixture
def registered_toy():
    """A new baseline: one class and one register() call, removed again after the test."""

    class ToyLoRA(LoRA):
        name: ClassVar[str] = "toy_lora"
        description: ClassVar[str] = "a baseline registered by a test"

    registry.register(ToyLoRA())
    yield "toy_lora"
    del registry.METHODS["toy_lora"]


def test_schema_file_lists_exactly_the_registered_methods():
    text = ws.SCHEMA_FILE.read_text(encoding="utf-8")
    assert ws.schema_methods(text) == ws.registered_methods(), "run: python -m deltalora.workflow_schema"
    assert ws.main(["--check"]) == 0


def test_a_registered_method_is_accepted_in_a_workflow_config(registered_toy):
    ws.validate_workflow_config(_config(registered_toy))  # raises if the method is not allowed


def test_an_unregistered_method_is_refused_by_name():
    with pytest.raises(ValueError, match=r"rows\.new_row\.method: 'toy_lora' is not one of"):
        ws.validate_workflow_config(_config("toy_lora"))


def test_the_generator_writes_the_new_method_into_the_schema(registered_toy, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text(ws.SCHEMA_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    assert ws.main(["--schema", str(schema), "--check"]) == 1  # stale: the toy method is missing
    assert ws.main(["--schema", str(schema)]) == 0
    text = schema.read_text(encoding="utf-8")
    assert "toy_lora" in ws.schema_methods(text)
    # the written file is still the same schema otherwise, and accepts the config
    import jsonschema

    jsonschema.Draft202012Validator(yaml.safe_load(text)).validate(_config(registered_toy))
    assert text.count("\n") == ws.SCHEMA_FILE.read_text(encoding="utf-8").count("\n")
