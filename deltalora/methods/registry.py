"""The method registry. Adding a baseline is one module plus one `register(...)` line below."""

from __future__ import annotations

from .base import Method

METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if not method.name or method.name in METHODS:
        raise ValueError(f"method name {method.name!r} is empty or already registered")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(sorted(METHODS))}") from None


# Registration lines: one per method module.
from . import adalora, delta_lora, dora, dylora, full_ft, lora, lora_scaled, peft_method  # noqa: E402

register(full_ft.METHOD)
register(lora.METHOD)
register(adalora.METHOD)
register(dylora.METHOD)
register(dora.METHOD)
register(delta_lora.METHOD)
register(lora_scaled.METHOD)
register(peft_method.METHOD)  # any PEFT tuner from YAML: {method: peft, hp: {config: LoHaConfig, ...}}
