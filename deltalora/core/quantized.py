"""Delta-LoRA on a quantized base (QLoRA-style): what is supported, and the few helpers it needs.

Algorithm 1 writes ``W <- W + lam*s*delta(BA)`` after every step. A 4-bit (NF4/FP4) or 8-bit W can
neither hold nor accumulate updates that small, so the ``inplace`` engine is refused on a quantized
W. The ``folded`` engine never writes W: it adds ``lam*s*(B A - S_B S_A) x`` to the LoRA branch
through PEFT's per-layer variant dispatch, which PEFT's bitsandbytes LoRA layers use exactly as the
plain ``lora.Linear`` does. So Delta-LoRA on a quantized base is the folded engine, unchanged; this
module only (1) recognises quantized base layers, (2) gives their dequantized weight and true shape
(bitsandbytes packs 4-bit weights two to a byte, so ``weight.numel()`` is half the matrix), and
(3) builds the ``BitsAndBytesConfig`` the runs load their model with (``model_options.quantize``).

Supported and tested: bitsandbytes ``Linear4bit`` (NF4, FP4, with and without double quantization)
and ``Linear8bitLt``. PEFT also wraps HQQ and torchao layers (``HqqLoraLinear``,
``TorchaoLoraLinear``); neither library is installed in this project's environment, so those layers
are refused by class name under both engines (``delta_lora.SUPPORTED_LAYERS``), and ``quantization_of``
still recognises their weights.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

# model_options.quantize values -> (bitsandbytes quant type, double quantization)
QUANTIZE_CHOICES = ("none", "nf4", "nf4-dq", "fp4", "fp4-dq", "int8")


def bnb_status() -> tuple[bool, str]:
    """(usable, reason): whether bitsandbytes can be imported here, and why not when it cannot."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # ImportError, or a backend that fails to initialise (macOS without one)
        return (
            False,
            f"bitsandbytes is not usable here ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); "
            "install it with `pip install -e .[suite]` (the quantized-base targets and tests need it)",
        )
    return True, ""


def _base(layer: nn.Module) -> nn.Module:
    return layer.get_base_layer() if hasattr(layer, "get_base_layer") else layer


def quantization_of(layer: nn.Module) -> str | None:
    """The quantization of a (LoRA-wrapped) layer's frozen weight: "bnb-nf4", "bnb-fp4-dq", "bnb-int8",
    "hqq", "torchao", or None for an ordinary floating-point weight."""
    base = _base(layer)
    if hasattr(base, "W_q"):
        return "hqq"
    weight = getattr(base, "weight", None)
    if weight is None:
        return None
    wcls = type(weight)
    if wcls.__module__.startswith("torchao"):
        return "torchao"
    if wcls.__name__ == "Params4bit":
        qs = getattr(weight, "quant_state", None)
        kind = getattr(qs, "quant_type", None) or getattr(weight, "quant_type", "4bit")
        return f"bnb-{kind}" + ("-dq" if getattr(qs, "nested", False) else "")
    if wcls.__name__ == "Int8Params" or type(base).__name__ == "Linear8bitLt":
        return "bnb-int8"
    return None


def weight_shape(layer: nn.Module) -> torch.Size:
    """The shape of the weight matrix as the layer uses it (unpacked for 4-bit weights)."""
    base = _base(layer)
    if quantization_of(layer) is not None:
        return torch.Size((int(base.out_features), int(base.in_features)))
    return base.weight.shape


def weight_numel(layer: nn.Module) -> int:
    """Entries of the weight matrix (what Algorithm 1 updates), not of its packed storage."""
    shape = weight_shape(layer)
    return int(shape[0]) * int(shape[1])


def dequantized_weight(layer: nn.Module) -> torch.Tensor:
    """The layer's frozen weight as a float32 (out, in) matrix: deq(W_q) for a quantized layer."""
    from peft.utils.integrations import dequantize_module_weight

    base = _base(layer)
    qs = getattr(getattr(base, "weight", None), "quant_state", None)
    if getattr(qs, "packing_format_for_cpu", False):
        # bitsandbytes repacks a 4-bit weight for its bf16 CPU inference kernel the first time the layer
        # runs in eval mode on CPU; the packed layout no longer dequantizes with the standard routine.
        raise ValueError(
            f"{type(base).__name__}: this 4-bit weight was repacked by bitsandbytes for CPU inference "
            "(a forward in eval mode); dequantize it before that, or train in model.train() mode"
        )
    with torch.no_grad():
        w = dequantize_module_weight(base) if quantization_of(layer) is not None else base.weight
        return w.detach().to(torch.float32).clone()


def refuse_inplace(slots: Any) -> None:
    """engine="inplace" writes W: refuse it, naming the layer, where W is quantized."""
    for slot in slots:
        kind = quantization_of(slot.layer)
        if kind is not None:
            raise ValueError(
                f"engine='inplace' writes W after every step, but {slot.name} has a quantized ({kind}) "
                "weight that cannot hold or accumulate those updates; use engine='folded' (it never writes W "
                "and gives the same function on the quantized base)"
            )


def quantized_storage_bytes(model: nn.Module) -> int:
    """Bytes of the quantization constants that live outside parameters and buffers (bitsandbytes 4-bit
    quant_state: absmax, code, nested absmax), so a memory table counts a 4-bit model fully."""
    total = 0
    for p in model.parameters():
        qs = getattr(p, "quant_state", None)
        if qs is None:
            continue
        seen: set[int] = set()
        stack = [qs]
        while stack:
            s = stack.pop()
            for v in vars(s).values():
                if isinstance(v, torch.Tensor) and id(v) not in seen:
                    seen.add(id(v))
                    total += v.numel() * v.element_size()
                elif type(v).__name__ == "QuantState":
                    stack.append(v)
    return total


def bnb_config(
    quantize: str,
    *,
    skip_modules: tuple[str, ...] = ("classifier", "score", "lm_head"),
    compute_dtype: torch.dtype = torch.float32,
) -> Any:
    """The transformers BitsAndBytesConfig for a model_options.quantize value (None for "none").

    The task head stays in full precision (it is trained in full, as QLoRA does); compute runs in
    `compute_dtype` (float32 on CPU, so the exactness test compares like with like).
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(
            f"model_options.quantize must be one of {', '.join(QUANTIZE_CHOICES)}; got {quantize!r}"
        )
    if quantize == "none":
        return None
    ok, reason = bnb_status()
    if not ok:
        raise ValueError(f"model_options.quantize={quantize}: {reason}")
    from transformers import BitsAndBytesConfig

    if quantize == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(skip_modules))
    kind, _, dq = quantize.partition("-")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=kind,
        bnb_4bit_use_double_quant=dq == "dq",
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=list(skip_modules),
    )


def keep_training_kernel(model: nn.Module) -> int:
    """Make every bitsandbytes 4-bit layer compute the same way in eval mode as in train mode.

    On a CPU with AVX512-BF16, bitsandbytes repacks a 4-bit weight for a bf16 inference kernel the first
    time the layer runs in eval mode under no_grad (a Trainer evaluation). After that the layer computes
    in bf16, the standard dequantization no longer reads its weight, and a weight whose input size is
    below the quantization block (64) cannot be repacked at all (a RuntimeError inside bitsandbytes). A
    run evaluates between epochs and trains on, so the base must stay on the one kernel it trains with.
    Returns the number of layers changed.
    """
    n = 0
    for m in model.modules():
        if getattr(m, "support_avx512bf16_for_cpu", False):
            m.support_avx512bf16_for_cpu = False
            n += 1
    return n


def load_kwargs(quantize: str | None) -> dict[str, Any]:
    """from_pretrained keyword arguments that load a model quantized (empty for no quantization)."""
    if not quantize or quantize == "none":
        return {}
    # float32 compute: under the Trainer's fp16/bf16 autocast the matmuls run in that precision anyway, and
    # on CPU it keeps the dequantized base exact (the exactness test relies on it).
    on_gpu = torch.cuda.is_available() and os.environ.get("CUDA_VISIBLE_DEVICES", "x") != ""
    return {
        "quantization_config": bnb_config(quantize, compute_dtype=torch.float32),
        "device_map": {"": torch.cuda.current_device()} if on_gpu else {"": "cpu"},
    }


__all__ = [
    "QUANTIZE_CHOICES",
    "bnb_config",
    "bnb_status",
    "dequantized_weight",
    "load_kwargs",
    "quantization_of",
    "keep_training_kernel",
    "quantized_storage_bytes",
    "refuse_inplace",
    "weight_numel",
    "weight_shape",
]
