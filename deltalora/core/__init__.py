"""The method: Delta-LoRA (Zi et al. 2023, Algorithm 1) for PEFT LoRA models, and nothing else.

This package is the library half of deltalora. It imports only torch (and, for the Trainer
callback, transformers and peft): never the reproduction suite around it (tasks, records,
collectors, audit, Snakemake). `tests/test_import_graph.py` fails if that ever changes, so a user
who wants the method alone can rely on `pip install` of the core dependencies and
`from deltalora.core import DeltaLoRA`.

- `delta_lora.py`: `DeltaLoRA`, the two engines behind one API, state, export, merge.
- `_folded.py`: the folded engine's PEFT LoRA variant (W never written).
- `_slot.py`: one adapted layer's factors, snapshot and scaling.
- `_runtime.py`: where training really runs (wrappers, AMP skipped steps, ranks).
- `telescoping.py`: the telescoped rank-2r product, computed once.
- `quantized.py`: frozen quantized bases (bitsandbytes) and what `inplace` must refuse there.
- `callback.py`: `DeltaLoRACallback` for `transformers.Trainer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["ENGINES", "DeltaLoRA", "DeltaLoRACallback"]

if TYPE_CHECKING:  # pragma: no cover
    from .callback import DeltaLoRACallback
    from .delta_lora import ENGINES, DeltaLoRA


def __getattr__(name: str):
    # Lazy: `from deltalora.core import DeltaLoRA` must not import transformers (only the callback
    # needs it), and `import deltalora` (the CLI's --help) must not pay for torch.
    if name in ("DeltaLoRA", "ENGINES"):
        from . import delta_lora

        return getattr(delta_lora, name)
    if name == "DeltaLoRACallback":
        from .callback import DeltaLoRACallback

        return DeltaLoRACallback
    raise AttributeError(f"module 'deltalora.core' has no attribute {name!r}")
