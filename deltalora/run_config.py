"""A run's configuration, typed: frozen dataclasses read by attribute (`cfg.train.lr`).

`deltalora.config.resolve_run` resolves and validates a run's configuration as a nested dict (profile
< --config < task block < method hp < --set; docs/run_config.md). `RunConfig.from_dict` types that
dict once, at the start of a run, so the modules that read it (train.py, the task runners) name every
value as an attribute: a reader sees where a value flows, and a misspelt name is an AttributeError
instead of a silent `.get()` default.

Why a section remembers which keys it was given: a profile need not set every key (the default profile
has no `train.label_smoothing`), and a run's record keeps its configuration exactly as resolved. An
absent key reads as the default the runs have always used, and `to_dict()` leaves it out, so
`RunConfig.from_dict(d).to_dict() == d`, key order included (the record's bytes do not change).

The fields follow the run schema (`deltalora/profiles/run.schema.yaml`); tests/test_run_config.py fails
when the two disagree. Values are not checked again here: `resolve_run` has checked them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from .config import ConfigError, suggest

_GIVEN = "_given"


def _frozen(value: Any) -> Any:
    """Lists become tuples and mappings read-only, so a frozen config cannot be changed in place."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


def _plain(value: Any) -> Any:
    """The inverse of `_frozen`: the JSON-shaped value the resolved dict held."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_fields(cls: type) -> tuple[str, ...]:
    """The configuration keys of a section class (its dataclass fields, bookkeeping aside)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != _GIVEN)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Section:
    """One section of a run's configuration; remembers which keys it was given, in order."""

    SECTION: ClassVar[str] = ""
    NESTED: ClassVar[dict[str, type[_Section]]] = {}

    _given: tuple[str, ...] | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _Section:
        """Type a resolved section; an unknown key or a missing required one is a ConfigError."""
        where = f"{cls.SECTION}." if cls.SECTION else ""
        if not isinstance(d, Mapping):
            what = cls.SECTION or "run configuration"
            raise ConfigError(f"{what}: expected a mapping, got {type(d).__name__}")
        names = config_fields(cls)
        unknown = [k for k in d if k not in names]
        if unknown:
            raise ConfigError("; ".join(f"{where}{k}: unknown key{suggest(str(k), names)}" for k in unknown))
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [k for k in required if k not in d]
        if missing:
            raise ConfigError(f"{cls.SECTION or 'run configuration'}: missing {', '.join(missing)}")
        kw = {k: (cls.NESTED[k].from_dict(v) if k in cls.NESTED else _frozen(v)) for k, v in d.items()}
        return cls(**kw, _given=tuple(d))

    def to_dict(self) -> dict[str, Any]:
        """The resolved dict this section was built from: the keys it was given, in their order."""
        keys = self._given if self._given is not None else config_fields(type(self))
        out = {}
        for k in keys:
            v = getattr(self, k)
            out[k] = v.to_dict() if isinstance(v, _Section) else _plain(v)
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelOptions(_Section):
    """How the model is loaded (deltalora/models.py)."""

    SECTION: ClassVar[str] = "model_options"

    num_hidden_layers: int = 0  # 0: the model's own depth
    trust_remote_code: bool = False
    pooling: str = "cls"  # cls | mean (mean: BERT only, deltalora/heads.py)
    quantize: str = "none"  # none | nf4 | nf4-dq | fp4 | fp4-dq | int8 (QLoRA base)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(_Section):
    """Which examples a run sees (GLUE proxies or real data; NLG proxies)."""

    SECTION: ClassVar[str] = "data"

    n_train: int  # 0: the full split
    n_val: int
    seed: int  # the data seed, fixed across training seeds
    dev_size: float = 0  # GLUE dev split carved from train: a count if >= 1, a fraction if < 1
    dev_max: int = 0  # cap on the dev split (0: none)
    data_dir: str | None = None
    files: Mapping[str, str] | None = None  # split -> JSON Lines file (your own data)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(_Section):
    """The optimisation and the Trainer's settings (deltalora/train.py)."""

    SECTION: ClassVar[str] = "train"

    epochs: int
    batch_size: int
    grad_accum: int
    lr: float
    lr_scheduler: str
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    max_length: int  # 0: the task's own
    eval_batch_size: int
    precision: str  # fp32 | fp16 | bf16
    threads: int  # 0: torch's default
    checkpoint_every: int  # 0: no checkpoints
    logging_steps: int
    max_steps: int  # 0: epochs decide
    warmup_steps: int = 0  # > 0 replaces warmup_ratio
    label_smoothing: float = 0.0
    label_only_logits: bool = True
    group_by_length: bool = False
    init_from: str | None = None  # a run's init_state/ to start from
    save_init: bool = False
    regression_bias_init: bool = False
    smoke: bool = False
    report_to: str | tuple[str, ...] = "none"


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationConfig(_Section):
    """Beam search after an NLG run (deltalora/tasks/textgen_runner.py)."""

    SECTION: ClassVar[str] = "generation"
    DECODING: ClassVar[tuple[str, ...]] = (
        "num_beams",
        "length_penalty",
        "no_repeat_ngram_size",
        "max_new_tokens",
    )

    num_beams: int | None = None
    length_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    max_new_tokens: int | None = None
    batch_size: int = 16
    max_eval: int = 0  # 0: every evaluation input

    def decoding(self) -> dict[str, Any]:
        """The decoding options this run sets, in the order given; the task's own apply to the rest."""
        return {k: v for k, v in self.to_dict().items() if k in self.DECODING}


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnalysisConfig(_Section):
    """Optional measurements a run records for the audit."""

    SECTION: ClassVar[str] = "analysis"

    update_rank: bool = False
    grad_cosine_steps: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig(_Section):
    """One run's resolved configuration.

    `hp` stays a (read-only) mapping: its keys are the method's own (`deltalora.methods`, each method's
    `defaults`), validated against that method by `resolve_run`, and each method reads them itself. A
    typed class per method would repeat the registry's defaults in a second place.
    """

    NESTED: ClassVar[dict[str, type[_Section]]] = {
        "model_options": ModelOptions,
        "data": DataConfig,
        "train": TrainConfig,
        "generation": GenerationConfig,
        "analysis": AnalysisConfig,
    }

    profile: str
    task: str
    method: str
    seed: int
    model: str
    model_options: ModelOptions
    data: DataConfig
    train: TrainConfig
    hp: Mapping[str, Any]
    generation: GenerationConfig
    analysis: AnalysisConfig
    row: str | None = None  # the table row this run fills (`deltalora train --row`); default: the method

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:  # type: ignore[override]
        """Type a dict returned by `resolve_run` (optionally with a `row`)."""
        return super().from_dict(d)  # type: ignore[return-value]

    @classmethod
    def coerce(cls, cfg: RunConfig | Mapping[str, Any]) -> RunConfig:
        """A RunConfig as it is, a resolved dict typed (the entry points accept both)."""
        return cfg if isinstance(cfg, RunConfig) else cls.from_dict(cfg)

    @property
    def row_name(self) -> str:
        """The row a run records: `row` if given, else the method."""
        return self.row or self.method

    def hp_dict(self) -> dict[str, Any]:
        """A fresh, mutable copy of the method's hyper-parameters (the methods take a dict)."""
        return copy.deepcopy(_plain(self.hp))


def resolve_run_config(**kwargs: Any) -> RunConfig:
    """`deltalora.config.resolve_run(**kwargs)`, typed."""
    from .config import resolve_run

    return RunConfig.from_dict(resolve_run(**kwargs))


__all__ = [
    "AnalysisConfig",
    "DataConfig",
    "GenerationConfig",
    "ModelOptions",
    "RunConfig",
    "TrainConfig",
    "config_fields",
    "resolve_run_config",
]
