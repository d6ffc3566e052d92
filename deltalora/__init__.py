"""deltalora: exact Delta-LoRA for Hugging Face models, and a suite that reproduces and audits the paper.

Two halves. `deltalora.core` is the method: `DeltaLoRA` attaches Algorithm 1 of Zi et al. (2023)
to any PEFT LoRA model and its optimizer; `DeltaLoRACallback` does the same for
`transformers.Trainer`. Both are re-exported here. Everything else in this package is the
reproduction suite built on it (run -> tasks and methods -> records -> collectors -> audit).
"""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["ENGINES", "DeltaLoRA", "DeltaLoRACallback", "__version__"]


def __getattr__(name: str):
    # Lazy: `import deltalora` (e.g. for the CLI's --help) must not pay for torch/transformers/peft, and
    # `from deltalora import DeltaLoRA` must not import transformers (only the callback needs it).
    if name in ("DeltaLoRA", "ENGINES", "DeltaLoRACallback"):
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module 'deltalora' has no attribute {name!r}")
