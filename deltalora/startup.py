"""Process start-up: what a `deltalora train` process may leave unimported.

PEFT imports bitsandbytes whenever it is installed (``peft.helpers`` at ``import peft``), and
bitsandbytes wraps its kernels in ``torch.compile`` at import, which loads TorchDynamo: 1.3 to 2.4 s
of a 9 to 12 s smoke-size training process on this project's 2-core machine (measured 2026-12-06,
`deltalora train` on the RTE proxy, 4 steps, with and without). Only a run on a quantized base
(``model_options.quantize``, QLoRA) or a pre-quantized checkpoint calls it.

So a `deltalora train` command (never `cli.main([...])` called inside someone's Python process, which
may quantize later) that cannot need it marks the package absent *for itself* before anything
imports PEFT: ``importlib.util.find_spec`` then answers None, which is how PEFT (``is_bnb_available``)
and transformers ask, and both take the paths they take on a machine without bitsandbytes. The
decision is made before the configurations are resolved (resolving them imports PEFT), so it is
conservative: any mention of ``quantize`` in the command's settings, rows or config file, or a model
that may be quantized (a hub id, or a checkpoint whose config.json has a ``quantization_config``), keeps
bitsandbytes. `check_skip` then refuses, loudly, a resolved run
that quantizes in a process that skipped it (it cannot happen unless this rule is wrong).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

_MARK = "quantize"
_skipped = False


def _unquantized_model(model: str | None) -> bool:
    """The profile's own model (None), an embedded one, or a local checkpoint whose config.json has no
    ``quantization_config`` (the workflow's pre-trained NLG models). A hub id may name a pre-quantized
    checkpoint, so it keeps bitsandbytes."""
    if model is None or model.startswith("embedded:"):
        return True
    config = Path(model) / "config.json"
    return config.is_file() and "quantization_config" not in config.read_text(errors="replace")


def may_skip(settings: Iterable[str], model: str | None, loaded: Iterable[str]) -> bool:
    """The rule: no mention of ``quantize`` in `settings` (the raw --set values, --rows-json and --config
    text), a model that is not quantized (`_unquantized_model`), and neither PEFT nor bitsandbytes in
    `loaded` (the names of the modules already imported)."""
    if not _unquantized_model(model):
        return False
    if any(_MARK in s for s in settings):
        return False
    return not {"bitsandbytes", "peft"} & set(loaded)


def skip_bitsandbytes(settings: Iterable[str], model: str | None) -> bool:
    """Mark bitsandbytes absent in this process when `may_skip` allows it; returns whether it did. The
    method (`deltalora.core`) never calls this: only the suite's own training processes."""
    global _skipped
    if not may_skip(settings, model, sys.modules):
        return False
    sys.modules["bitsandbytes"] = None  # type: ignore[assignment] - the import system's "absent"
    _skipped = True
    return True


def check_skip(quantizations: Iterable[str]) -> None:
    """Refuse a run on a quantized base in a process that skipped bitsandbytes: PEFT would have built
    its layers without the 4-bit classes and trained another model without a word."""
    asked = sorted({q for q in quantizations if q != "none"})
    if _skipped and asked:
        raise RuntimeError(
            f"model_options.quantize={asked[0]} in a process that skipped bitsandbytes: "
            "deltalora/startup.py's rule missed how it was set; please report this"
        )
