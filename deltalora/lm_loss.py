"""Causal-LM training loss computed by the model itself, on the labelled positions only.

Two reasons this exists, both measured:

1. Speed. Fine-tuning a causal LM on (prompt, target) pairs puts a label on the target tokens only,
   yet the LM head projects every position (prompt and padding too) onto the vocabulary, and the
   softmax runs over all of them. In the embedded E2E/WebNLG batches 73-79% of the positions carry no
   label; for GPT-2 Medium's 50k-token vocabulary the head dominates the step. transformers >= 5
   accepts a boolean ``(batch, seq)`` ``logits_to_keep`` (``modeling_utils.slice_logits_to_keep``) and
   returns the kept positions flattened; the loss then takes the matching ``shift_labels``. The loss
   and every gradient are those of the full computation (the kept rows are the only ones the loss
   reads); only the unused logits are not computed. A training step of the embedded GPT-2 takes
   ~0.7x the time.

2. Correctness. ``Trainer``'s label smoothing pops ``labels`` and smooths the logits outside the
   model, so the model returns no loss, and a PEFT wrapper that adds its own term to the model's loss
   never sees one: AdaLoRA's orthogonal regulariser (``AdaLoraModel.forward``) was silently dropped
   for E2E/WebNLG in the paper profile (label smoothing 0.1, the LoRA protocol). Here the smoothing is
   part of the model's own loss function, so the labels stay in the inputs and wrappers keep working.

Models whose forward does not slice through ``slice_logits_to_keep`` (older transformers, other
architectures) keep the full computation; seq2seq models (BART) are untouched.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from .models import unwrap_peft

IGNORE_INDEX = -100


def is_causal_lm(model: Any) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return type(unwrap_peft(model)).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()


@functools.cache
def _forward_slices_with_mask(cls: type) -> bool:
    try:
        from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401
    except ImportError:  # transformers < 5: logits_to_keep is an int or a 1-D tensor only
        return False
    try:
        params = inspect.signature(cls.forward).parameters
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError, ValueError):
        return False
    return "logits_to_keep" in params and "slice_logits_to_keep(" in source


def supports_label_only_logits(model: Any) -> bool:
    """True when the (PEFT-unwrapped) model is a causal LM whose forward accepts a boolean mask."""
    base = unwrap_peft(model)
    return is_causal_lm(base) and _forward_slices_with_mask(type(base))


def label_only_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The same batch, asking the model for logits at the labelled (next-token) positions only.

    Position t predicts token t+1, so the kept positions are those whose shifted label is not ignored;
    ``shift_labels`` lists those labels in the same (row-major) order as the kept logits.
    """
    import torch.nn.functional as F

    labels = inputs["labels"]
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
    keep = shifted != IGNORE_INDEX
    return {**inputs, "logits_to_keep": keep, "shift_labels": shifted[keep]}


def causal_lm_loss(
    logits: Any,
    labels: Any,
    vocab_size: int,
    num_items_in_batch: Any = None,
    ignore_index: int = IGNORE_INDEX,
    shift_labels: Any = None,
    *,
    label_smoothing: float = 0.0,
    **_: Any,
) -> Any:
    """transformers' ``ForCausalLMLoss`` plus optional label smoothing (same normalisation).

    With smoothing eps the per-token loss is (1-eps)*NLL + eps*mean_c(-log p_c), which is what
    ``transformers.trainer_pt_utils.LabelSmoother`` computes; ignored positions count in neither term.
    A sum over tokens is divided by ``num_items_in_batch`` when the Trainer passes it (gradient
    accumulation), otherwise averaged, exactly as the unsmoothed loss.
    """
    import torch.nn.functional as F

    if logits.element_size() < 4:  # fp16/bf16 are upcast as transformers does; float64 stays float64
        logits = logits.float()
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:].contiguous()
    logits = logits.reshape(-1, vocab_size)
    shift_labels = shift_labels.reshape(-1).to(logits.device)
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = F.cross_entropy(
        logits,
        shift_labels,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=float(label_smoothing),
    )
    if reduction == "sum":
        if hasattr(num_items_in_batch, "to"):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss


def install_loss(model: Any, *, label_smoothing: float = 0.0) -> None:
    """Make the causal LM's own loss function the (optionally smoothed) ``causal_lm_loss``."""
    if not is_causal_lm(model):
        raise ValueError(f"{type(unwrap_peft(model)).__name__} is not a causal LM; its loss is left as it is")
    loss = functools.partial(causal_lm_loss, label_smoothing=float(label_smoothing))
    unwrap_peft(model).loss_function = loss


__all__ = [
    "causal_lm_loss",
    "install_loss",
    "is_causal_lm",
    "label_only_inputs",
    "supports_label_only_logits",
]
