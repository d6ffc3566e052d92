"""Run configuration: a profile, optional overrides, `--set key=value`, all validated.

A run's configuration is resolved in this order (later wins):

1. the profile file (`deltalora/profiles/{default,paper}.yaml`),
2. a user config file (`--config FILE`, same structure as a profile, deep-merged),
3. the task's own block (`tasks: {glue/rte: {train: ...}}`) and the method's hyper-parameters
   (method defaults < `methods._shared` for keys the method has < `methods.<name>`),
4. `--set key=value` on the *resolved* run (`train.lr=2e-4`, `hp.start_step=100`, `data.n_train=256`),
   so a `--set` always wins, whatever per-task blocks the profile has.

Every key is checked: unknown keys fail with a "did you mean", values are checked for type, range
and allowed values. Errors are `ConfigError` (a ValueError) with one line per problem.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import suggest  # noqa: F401 - the "did you mean" of every message here; re-exported

PROFILES = ("default", "paper")
SET_SECTIONS = ("model", "model_options", "data", "train", "hp", "generation", "analysis")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type, or out of range."""


def _read_yaml(path: Path | str, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{what}: {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path} must hold a mapping at the top level, not a {type(data).__name__}")
    return data


@functools.cache
def _profile(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("deltalora.profiles").joinpath(f"{name}.yaml").read_text())


def load_profile(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ConfigError(f"profile: unknown profile {name!r}{suggest(name, PROFILES)}")
    return copy.deepcopy(_profile(name))


@functools.cache
def schema() -> dict[str, Any]:
    """The run-configuration JSON schema (cached; do not mutate)."""
    return yaml.safe_load(resources.files("deltalora.profiles").joinpath("run.schema.yaml").read_text())


@functools.lru_cache(maxsize=64)
def _validator(key: str) -> Any:
    import jsonschema

    root = schema()
    sub = root if key == "" else _subschema(key)
    full = {**sub, "$defs": root["$defs"]}
    return jsonschema.Draft202012Validator(full)


def _subschema(key: str) -> dict[str, Any]:
    kind, _, name = key.partition(":")
    return schema()["$defs"][name] if kind == "def" else schema()["properties"][name]


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------- schema validation
def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "<top>"


def _format_error(err: Any) -> str:
    where = _path(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        return "; ".join(f"{_path([*err.absolute_path, k])}: unknown key{suggest(k, allowed)}" for k in extra)
    if err.validator == "propertyNames":
        return f"{where}: unknown key {err.instance!r} ({err.message})"
    if err.validator == "enum":
        return (
            f"{where}: {err.instance!r} is not allowed; allowed: {', '.join(map(str, err.validator_value))}"
        )
    if err.validator == "type":
        return f"{where}: expected {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    if err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[
            err.validator
        ]
        return f"{where}: {err.instance!r} is out of range; must be {op} {err.validator_value}"
    if err.validator == "required":
        return f"{where}: {err.message}"
    return f"{where}: {err.message}"


def validate_against(instance: Any, key: str, prefix: str = "") -> list[str]:
    """Validate against the whole schema (key "") or a part: "def:train", "prop:analysis"."""
    validator = _validator(key)
    problems = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        msg = _format_error(err)
        problems.append(f"{prefix}{msg}" if prefix else msg)
    return problems


def validate_profile_config(cfg: Mapping[str, Any]) -> None:
    """Check a full (profile-shaped) configuration; raise ConfigError listing every problem."""
    problems = validate_against(cfg, "")
    from .methods import METHODS

    methods = cfg.get("methods") or {}
    for name, block in methods.items() if isinstance(methods, Mapping) else ():
        if name != "_shared" and name not in METHODS:
            problems.append(f"methods.{name}: unknown method{suggest(name, [*METHODS, '_shared'])}")
        elif not isinstance(block, Mapping):
            problems.append(f"methods.{name}: expected a mapping of hyper-parameters")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------- --set
def parse_value(text: str) -> Any:
    """YAML scalar semantics, plus the float forms YAML 1.1 misses ("1e-3")."""
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            f = float(value)
            return f
        except ValueError:
            return value
    return value


def parse_set(item: str) -> tuple[list[str], Any]:
    """'train.lr=2e-4' -> (['train', 'lr'], 0.0002)."""
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=2e-4")
    key, _, raw = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p.strip() for p in parts) or any(ch.isspace() for ch in key):
        raise ConfigError(f"--set {item!r}: the key {key!r} is not a dotted name like train.lr")
    if parts[0] not in SET_SECTIONS:
        raise ConfigError(f"--set {item!r}: unknown section {parts[0]!r}{suggest(parts[0], SET_SECTIONS)}")
    if parts[0] == "model":
        if len(parts) != 1:
            raise ConfigError(f"--set {item!r}: 'model' takes a value, not sub-keys")
    elif len(parts) != 2:
        raise ConfigError(f"--set {item!r}: expected {parts[0]}.<key>=value")
    return parts, parse_value(raw)


# --------------------------------------------------------------------------- method hyper-parameters
_HP_RULES: dict[str, tuple[str, Any]] = {
    # key: (kind, constraint)
    "r": ("int", (1, 4096)),
    "init_r": ("int", (1, 4096)),
    "target_r": ("int", (1, 4096)),
    "alpha": ("number", (1e-12, 1e6)),
    "dropout": ("number", (0.0, 0.999)),
    "update_ratio": ("number", (0.0, 1e6)),
    "start_step": ("int", (0, 10**12)),
    "engine": ("enum", ("inplace", "folded")),
    "lr": ("number", (1e-12, 1.0)),
    "eval_rank": ("int", (0, 4096)),
    "tinit_frac": ("number", (0.0, 1.0)),
    "tfinal_frac": ("number", (0.0, 1.0)),
    "delta_t_frac": ("number", (0.0, 1.0)),
    "beta1": ("number", (0.0, 1.0)),
    "beta2": ("number", (0.0, 1.0)),
    "orth_reg_weight": ("number", (0.0, 1e6)),
    "optimizer": ("enum", ("adamw", "sgd")),  # full_ft; the peft method checks its own
    "momentum": ("number", (0.0, 0.999)),
}


def check_hp(method: str, hp: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, value in hp.items():
        where = f"hp.{key} (method {method})"
        if key not in defaults:
            problems.append(f"{where}: unknown hyper-parameter{suggest(key, defaults)}")
            continue
        default = defaults[key]
        kind, constraint = _HP_RULES.get(key, (None, None))
        if kind is None:
            kind = (
                "bool"
                if isinstance(default, bool)
                else "int"
                if isinstance(default, int)
                else ("number" if isinstance(default, float) else "str")
            )
        if kind == "bool":
            if not isinstance(value, bool):
                problems.append(f"{where}: expected true or false, got {value!r}")
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{where}: expected an integer, got {value!r}")
            elif constraint and not constraint[0] <= value <= constraint[1]:
                problems.append(f"{where}: {value} is out of range [{constraint[0]}, {constraint[1]}]")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{where}: expected a finite number, got {value!r}")
            elif constraint and not constraint[0] <= value <= constraint[1]:
                problems.append(f"{where}: {value} is out of range [{constraint[0]}, {constraint[1]}]")
        elif kind == "enum":
            if value not in constraint:
                problems.append(f"{where}: {value!r} is not allowed; allowed: {', '.join(constraint)}")
        elif kind == "str" and not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {value!r}")
    return problems


# --------------------------------------------------------------------------- resolution
def task_family(task: str) -> str:
    return "glue" if task.startswith("glue/") else task


def resolve_run(
    *,
    task: str,
    method: str,
    seed: int,
    profile: str = "default",
    model: str | None = None,
    config_file: str | Path | None = None,
    sets: Iterable[str] = (),
) -> dict[str, Any]:
    """The fully resolved, validated configuration of one run."""
    from .methods import get_method

    cfg = load_profile(profile)
    if config_file is not None:
        user = _read_yaml(config_file, "--config")
        if "profile" in user and user["profile"] != profile:
            raise ConfigError(
                f"--config {config_file}: profile {user['profile']!r} does not match --profile {profile!r}"
            )
        cfg = deep_merge(cfg, user)
    validate_profile_config(cfg)
    m = get_method(method)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    family = task_family(task)
    task_block = (cfg.get("tasks") or {}).get(task, {})
    methods = cfg.get("methods") or {}
    shared = {k: v for k, v in (methods.get("_shared") or {}).items() if k in m.defaults}
    hp = {
        **m.defaults,
        **shared,
        **(methods.get(method) or {}),
        **((task_block.get("methods") or {}).get(method) or {}),
    }
    run = {
        "profile": profile,
        "task": task,
        "method": method,
        "seed": seed,
        "model": model or cfg["models"].get(family),
        "model_options": dict(cfg["model_options"]),
        "data": deep_merge(cfg["data"], task_block.get("data") or {}),
        "train": deep_merge(cfg["train"], task_block.get("train") or {}),
        "hp": hp,
        "generation": deep_merge(cfg["generation"], task_block.get("generation") or {}),
        "analysis": dict(cfg["analysis"]),
    }
    if "lr" in hp:  # a method's own learning rate (full fine-tuning) replaces the task's
        run["train"]["lr"] = hp["lr"]
    for item in sets:
        parts, value = parse_set(item)
        if parts[0] == "model":
            run["model"] = value
            continue
        run[parts[0]][parts[1]] = value
        if parts[1] == "lr" and parts[0] in ("train", "hp") and "lr" in hp:  # keep the two in step
            run["train"]["lr"] = run["hp"]["lr"] = value
    if not run["model"]:
        raise ConfigError(f"model: no model given for task {task!r} and the profile has none for {family!r}")
    if not isinstance(run["model"], str):
        raise ConfigError(
            f"model: expected a string (hub id, embedded:<name> or a directory), got {run['model']!r}"
        )
    problems = []
    problems += validate_against(run["train"], "def:train", "train.")
    problems += validate_against(run["data"], "def:data", "data.")
    problems += validate_against(run["generation"], "def:generation", "generation.")
    problems += validate_against(run["model_options"], "prop:model_options", "model_options.")
    problems += validate_against(run["analysis"], "prop:analysis", "analysis.")
    own = m.check_run(run)  # a method with open-ended hyper-parameters (peft) checks its own
    problems += own if own is not None else check_hp(method, run["hp"], m.defaults)
    if not problems:  # the method's own cross-field rules read well-typed values
        problems += m.check(run)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return run
