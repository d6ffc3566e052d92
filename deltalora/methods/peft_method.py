"""Any PEFT tuner as a baseline, from its config class name and keyword arguments: no code.

A workflow row ``loha: {method: peft, hp: {config: LoHaConfig, r: 8, alpha: 16}}`` builds
``peft.LoHaConfig(r=8, alpha=16, ...)`` and wraps the model with it. Why a generic method: PEFT ships a
new tuner every few releases, and each is a reviewer's natural control for Delta-LoRA; a module per
tuner would repeat this one.

What the suite decides, as it does for LoRA: ``target_modules``, ``task_type``, ``modules_to_save``
and, where the config has it, ``fan_in_fan_out`` come from the model family; a row may not set them.
Everything else is the config dataclass's own field names, checked against its fields with a "did
you mean" and then by the dataclass itself (PEFT's ``__post_init__`` checks values), before any model
is loaded. A tuner PEFT cannot apply to the family's layers (e.g. a GPT-2 ``Conv1D``) is refused by
name, by trying it on a stand-in layer of the family's type at validation time.

Two hyper-parameters are the suite's own: ``optimizer`` (``adamw``: the Trainer's AdamW; ``loraplus``:
PEFT's ``create_loraplus_optimizer``, where B learns ``loraplus_lr_ratio`` times faster than A) and
``loraplus_lr_ratio``. A tuner or option newer than the installed PEFT is skipped with the release
named (:mod:`deltalora.methods.releases`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from torch import nn

from .base import Method, MethodContext
from .releases import check_available

#: Filled in by the suite per model family (a row may not set them), or PEFT's own bookkeeping.
SUITE_FIELDS = ("target_modules", "task_type", "modules_to_save", "fan_in_fan_out")
PEFT_BOOKKEEPING = (
    "peft_type",
    "auto_mapping",
    "peft_version",
    "base_model_name_or_path",
    "revision",
    "inference_mode",
)
OPTIMIZERS = ("adamw", "loraplus")
#: LoRA initialisations that need a pass over training data before training (PEFT's eva, corda):
#: the suite does not run one, so they are refused rather than silently mis-initialised.
NEEDS_DATA_INIT = ("eva", "corda")


def tuner_configs() -> dict[str, type]:
    """PEFT's tuner config classes (those that adapt target modules), by class name."""
    import peft

    out = {}
    for name in dir(peft):
        cls = getattr(peft, name)
        if (
            name.endswith("Config")
            and isinstance(cls, type)
            and issubclass(cls, peft.PeftConfig)
            and dataclasses.is_dataclass(cls)
            and "target_modules" in {f.name for f in dataclasses.fields(cls)}
        ):
            out[name] = cls
    return out


def _suggest(key: str, allowed: list[str]) -> str:
    from ..errors import suggest

    return suggest(key, allowed)


def config_kwargs(hp: dict[str, Any]) -> dict[str, Any]:
    """The row's arguments for the config class (the suite's own keys removed)."""
    return {k: v for k, v in hp.items() if k not in PeftMethod.defaults}


def check_peft_hp(hp: dict[str, Any]) -> tuple[list[str], type | None]:
    """Problems with a `peft` row's hyper-parameters (one line each), and the config class if known.

    Raises MethodUnavailable when the installed PEFT predates what the row asks for (a skip, not an error).
    """
    where = "hp.{} (method peft)"
    name = hp.get("config")
    if not isinstance(name, str):
        return [f"{where.format('config')}: expected a PEFT config class name such as 'LoHaConfig'"], None
    check_available(hp)
    configs = tuner_configs()
    if name not in configs:
        return [
            f"{where.format('config')}: unknown PEFT tuner config {name!r}{_suggest(name, list(configs))}"
        ], None
    cls = configs[name]
    fields = [f.name for f in dataclasses.fields(cls)]
    problems = []
    settable = [f for f in fields if f not in SUITE_FIELDS and f not in PEFT_BOOKKEEPING]
    for key in config_kwargs(hp):
        if key in SUITE_FIELDS:
            problems.append(f"{where.format(key)}: set by the suite per model family; remove it from the row")
        elif key not in fields or key in PEFT_BOOKKEEPING:
            problems.append(
                f"{where.format(key)}: {name} has no argument {key!r}"
                f"{_suggest(key, [*settable, *PeftMethod.defaults])}"
            )
    opt = hp.get("optimizer", "adamw")
    if opt not in OPTIMIZERS:
        problems.append(
            f"{where.format('optimizer')}: {opt!r} is not allowed; allowed: {', '.join(OPTIMIZERS)}"
        )
    elif opt == "loraplus" and name != "LoraConfig":
        problems.append(
            f"{where.format('optimizer')}: loraplus splits LoRA's A and B; it needs config LoraConfig, "
            f"not {name}"
        )
    ratio = hp.get("loraplus_lr_ratio", 16.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        problems.append(f"{where.format('loraplus_lr_ratio')}: expected a number > 0, got {ratio!r}")
    init = hp.get("init_lora_weights")
    if isinstance(init, str) and init.lower() in NEEDS_DATA_INIT:
        problems.append(
            f"{where.format('init_lora_weights')}: {init!r} needs a pass over training data before "
            "training, which the suite does not run; allowed here: true, false, gaussian, pissa, olora, ..."
        )
    if problems:
        return problems, cls
    try:  # the dataclass's own checks of the values (PEFT's __post_init__)
        cls(**config_kwargs(hp), target_modules=["query"])
    except (TypeError, ValueError) as e:
        problems.append(f"hp (method peft): {name} rejects the row's arguments: {str(e).splitlines()[0]}")
    return problems, cls


def check_family(
    cls: type,
    hp: dict[str, Any],
    target_modules: tuple[str, ...],
    fan_in_fan_out: bool,
    family: str,
    width: int = 64,
) -> list[str]:
    """Refuse, by name, a tuner PEFT cannot apply to this family's layers.

    Tried on a stand-in of the family's layer type and width (``width`` x ``width``; GPT-2's fused
    ``c_attn`` is 3 x wider), so PEFT's own checks (layer type, shape rules) decide, in milliseconds.
    """
    from peft import get_peft_model
    from transformers.pytorch_utils import Conv1D

    stand_in = nn.Module()
    for t in target_modules:
        stand_in.add_module(t, Conv1D(3 * width, width) if fan_in_fan_out else nn.Linear(width, width))
    kind = "Conv1D" if fan_in_fan_out else "Linear"
    try:
        get_peft_model(
            stand_in, cls(**config_kwargs(hp), **_family_kwargs(cls, target_modules, fan_in_fan_out))
        )
    except (TypeError, ValueError, RuntimeError, NotImplementedError, KeyError) as e:
        return [
            f"hp.config (method peft): PEFT refuses {cls.__name__} with these arguments on the {family} "
            f"family's {', '.join(target_modules)} ({kind}) layers: {str(e).splitlines()[0]}"
        ]
    return []


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _family_kwargs(cls: type, target_modules: tuple[str, ...], fan_in_fan_out: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {"target_modules": list(target_modules)}
    if "fan_in_fan_out" in _fields(cls):
        kw["fan_in_fan_out"] = fan_in_fan_out
    return kw


class PeftMethod(Method):
    name: ClassVar[str] = "peft"
    description: ClassVar[str] = (
        "Any PEFT tuner from YAML: hp.config names the config class (LoHaConfig, VeraConfig, ...), the "
        "other hp are its arguments"
    )
    # The suite's own keys; every other hp key is an argument of the config class (checked against it).
    defaults: ClassVar[dict[str, Any]] = {
        "config": "LoraConfig",
        "optimizer": "adamw",
        "loraplus_lr_ratio": 16.0,
    }

    def check_run(self, run: dict[str, Any]) -> list[str]:
        hp = run["hp"]
        problems, cls = check_peft_hp(hp)
        if problems or cls is None:
            return problems
        from ..models import ModelError, family_of, load_config

        try:
            model_config = load_config(run["model"], run["model_options"])
            fam = family_of(model_config.model_type)
        except ModelError:
            return []  # the run itself reports the model
        width = int(getattr(model_config, "hidden_size", 64))
        return check_family(cls, hp, fam.target_modules, fam.fan_in_fan_out, fam.name, width)

    def apply(self, model: nn.Module, hp: dict[str, Any], ctx: MethodContext) -> nn.Module:
        from peft import get_peft_model

        check_available(hp)
        cls = tuner_configs()[hp["config"]]
        config = cls(
            **config_kwargs(hp),
            **_family_kwargs(cls, ctx.target_modules, ctx.fan_in_fan_out),
            task_type=ctx.task_type,
            modules_to_save=list(ctx.modules_to_save) or None,
        )
        return get_peft_model(model, config)

    def optimizer(self, model: nn.Module, hp: dict[str, Any], lr: float, weight_decay: float) -> Any:
        if hp.get("optimizer", "adamw") != "loraplus":
            return None
        import torch
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(
            model,
            torch.optim.AdamW,
            lr=lr,
            loraplus_lr_ratio=float(hp["loraplus_lr_ratio"]),
            weight_decay=weight_decay,
        )


METHOD = PeftMethod()
