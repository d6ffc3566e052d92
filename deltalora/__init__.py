"""deltalora: exact Delta-LoRA for Hugging Face models, and a suite that reproduces and audits the paper.

`DeltaLoRA` attaches Algorithm 1 of Zi et al. (2023) to any PEFT LoRA model and its optimizer;
`DeltaLoRACallback` does the same for `transformers.Trainer`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["ENGINES", "DeltaLoRA", "DeltaLoRACallback", "__version__"]


def __getattr__(name: str):
    # Lazy: `import deltalora` (e.g. for the CLI's --help) must not pay for torch/transformers/peft.
    if name in ("DeltaLoRA", "DeltaLoRACallback", "ENGINES"):
        from . import delta_lora

        return getattr(delta_lora, name)
    raise AttributeError(f"module 'deltalora' has no attribute {name!r}")
