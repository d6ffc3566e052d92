"""A training process that quantizes nothing leaves bitsandbytes unimported (deltalora/startup.py), and
trains exactly the model it trained before; one that quantizes keeps it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deltalora import startup

REPO = Path(__file__).resolve().parent.parent
SMALL = [
    "train", "--task", "glue/rte", "--method", "lora", "--seed", "0", "--profile", "default",
    "--set", "train.max_steps=4", "--set", "model_options.num_hidden_layers=1",
    "--set", "data.n_train=32", "--set", "data.n_val=32", "--set", "data.dev_size=16",
]  # fmt: skip


@pytest.mark.parametrize(
    "settings, model, loaded, expected",
    [
        (["train.lr=0.001", ""], None, ["torch"], True),
        (["train.lr=0.001"], "embedded:minilm", [], True),
        (["model_options.quantize=nf4"], None, [], False),  # a --set
        (['[{"row": "q", "method": "lora", "set": ["model_options.quantize=nf4"]}]'], None, [], False),
        (["model_options:\n  quantize: nf4\n"], None, [], False),  # a --config file's text
        ([], "TheBloke/some-model-bnb-4bit", [], False),  # a checkpoint may be pre-quantized
        ([], "/data/no-such-checkpoint", [], False),
        ([], None, ["peft"], False),  # too late: PEFT has asked already
        ([], None, ["bitsandbytes"], False),
    ],
)
def test_the_rule_skips_only_what_cannot_be_needed(settings, model, loaded, expected):
    assert startup.may_skip(settings, model, loaded) is expected


def test_a_local_checkpoint_keeps_bitsandbytes_only_when_it_is_quantized(tmp_path):
    plain, quantized = tmp_path / "plain", tmp_path / "quantized"
    q = {"model_type": "gpt2", "quantization_config": {"load_in_4bit": True}}
    for d, cfg in ((plain, {"model_type": "gpt2"}), (quantized, q)):
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
    assert startup.may_skip([], str(plain), []) is True  # e.g. the workflow's pre-trained NLG models
    assert startup.may_skip([], str(quantized), []) is False


def test_a_quantized_run_in_a_process_that_skipped_is_refused(monkeypatch):
    monkeypatch.setattr(startup, "_skipped", True)
    with pytest.raises(RuntimeError, match="model_options.quantize=nf4"):
        startup.check_skip(["none", "nf4"])
    startup.check_skip(["none"])  # nothing quantized: fine
    monkeypatch.setattr(startup, "_skipped", False)
    startup.check_skip(["nf4"])  # bitsandbytes kept: fine


def _train(tmp_path: Path, name: str, *extra: str, in_process_call: bool = False) -> tuple[dict, object]:
    """`deltalora train` in a fresh process (as the command, or as `main([...])` called from Python);
    the record and what sys.modules held for bitsandbytes."""
    out = tmp_path / name
    argv = [*SMALL, "--out", str(out), *extra]
    call = (
        f"main({argv!r})"
        if in_process_call
        else f"(sys.argv.__setitem__(slice(1, None), {argv!r}), main())[1]"
    )
    code = (
        "import sys, json\n"
        "from deltalora.cli import main\n"
        f"rc = {call}\n"
        "m = sys.modules.get('bitsandbytes', 'never imported')\n"
        "print('BNB' + json.dumps(m if m is None or isinstance(m, str) else 'imported'))\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "DELTALORA_DATA_DIR": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    bnb = json.loads(r.stdout.rsplit("BNB", 1)[1])
    return json.loads((out / "record.json").read_text()), bnb


def test_skipping_bitsandbytes_trains_the_same_model(tmp_path):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed: nothing to skip")
    skipped, bnb_skipped = _train(tmp_path, "skipped")
    kept, bnb_kept = _train(tmp_path, "kept", "--set", "model_options.quantize=none")  # a mention: kept
    assert bnb_skipped is None  # marked absent, never imported
    assert bnb_kept == "imported"  # PEFT imported it, as it does everywhere else
    for key in ("final", "best", "epochs", "train_curve", "params", "steps"):
        assert skipped[key] == kept[key], key


def test_main_called_from_python_never_hides_bitsandbytes(tmp_path):
    """`main([...])` runs inside a caller's process, which may quantize later: only the command skips."""
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed: nothing to skip")
    _, bnb = _train(tmp_path, "called", in_process_call=True)
    assert bnb == "imported"
