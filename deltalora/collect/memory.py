"""The memory/speed table: CSV + Markdown + a bar plot of the ratios to LoRA."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import smoke
from ..atomic import atomic_write_text
from .tables import fmt, markdown_table, profile_note, write_outputs

GOAL = 1.02  # both engines within 1.02x of LoRA in peak memory and step time
QLORA_GOAL = 1.05  # Delta-LoRA folded on the 4-bit base within 1.05x of QLoRA (peak memory and step time)


# A comparison whose rounds' step times spread wider than this (slowest / fastest round) was disturbed,
# e.g. by other work on the machine: its verdict against a goal says so rather than standing as measured.
# On an idle 2-core machine the spread was x1.05-1.12 (2026-12-06); beside other work one round reached x5.3.
NOISY_SPREAD = 1.5


def disturbed(sub: pd.DataFrame, configs: Sequence[str]) -> list[str]:
    """ "<config> x<spread>" for each of `configs` (rows of one model and dtype, indexed by config) whose
    slowest round took more than NOISY_SPREAD times its fastest; [] when the rows carry no range."""
    if not {"step_s_min", "step_s_max"} <= set(sub.columns):  # rows measured without their rounds' range
        return []
    wide = []
    for c in configs:
        if c not in sub.index:
            continue
        lo, hi = sub.loc[c, "step_s_min"], sub.loc[c, "step_s_max"]
        if isinstance(lo, pd.Series):  # repeated rows of one config (an audit's input): their whole range
            lo, hi = lo.min(), hi.max()
        if pd.notna(lo) and pd.notna(hi) and lo > 0 and hi / lo > NOISY_SPREAD:
            wide.append(f"{c} x{hi / lo:.1f}")
    return wide


def noise_note(sub: pd.DataFrame, configs: Sequence[str]) -> str:
    """ " (noisy: ...)" when `disturbed` finds any of `configs`, else ""."""
    wide = disturbed(sub, configs)
    if not wide:
        return ""
    return (
        f" (noisy: slowest/fastest round {', '.join(wide)}; not a reliable verdict, remeasure on an idle "
        "machine or with more rounds)"
    )


def _mib(b: float) -> str:
    return f"{b / 2**20:.1f}"


# Columns every measured row must have for the table (benchmark.measure writes them all).
REQUIRED = (
    "model",
    "dtype",
    "config",
    "device",
    "batch",
    "seq",
    "peak_method",
    "peak_bytes",
    "peak_bytes_min",
    "peak_bytes_max",
    "median_step_s",
    "step_s_min",
    "step_s_max",
    "peak_ratio_to_lora",
    "step_ratio_to_lora",
    "weights_bytes",
    "gradients_bytes",
    "optimizer_bytes",
    "activations_bytes",
)


def write_measurements(
    path: str | os.PathLike, rows: Sequence[dict[str, Any]], bf16: dict[str, Any] | None = None
) -> None:
    """The measured rows on disk, atomically, before any table or plot is made from them: a failure
    there must never cost the (long) measurements, and the table can be rebuilt without re-measuring."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"rows": list(rows), "bf16": bf16}, indent=1) + "\n")


def read_measurements(path: str | os.PathLike) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows and bf16 result written by `write_measurements`."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path}: not a memory measurements file (a JSON object with a 'rows' list)")
    return data["rows"], data.get("bf16")


def memory_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a frame, checked: every required column present, one row per (model, dtype, config)."""
    if not rows:
        raise ValueError("memory table: no measured rows")
    df = pd.DataFrame(list(rows))
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"memory table: measured rows lack the column(s) {', '.join(missing)}")
    # Ratios are empty where a (model, dtype) has no LoRA row; every other column is measured for every row.
    gaps = [c for c in REQUIRED if not c.endswith("_ratio_to_lora") and df[c].isna().any()]
    if gaps:
        raise ValueError(f"memory table: some measured rows have no {', '.join(gaps)}")
    dup = df[df.duplicated(["model", "dtype", "config"], keep=False)]
    if len(dup):
        keys = sorted(
            {f"{m}/{d}/{c}" for m, d, c in dup[["model", "dtype", "config"]].itertuples(index=False)}
        )
        raise ValueError(f"memory table: more than one row for (model/dtype/config) {', '.join(keys)}")
    for c in df.columns:  # ratios are None where a group has no LoRA/QLoRA row: NaN, not object
        if c.endswith(("_bytes", "_s", "_ratio_to_lora", "_ratio_to_qlora")) or c.startswith(
            ("peak_bytes", "step_s")
        ):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def write_memory_table(
    rows: Sequence[dict[str, Any]],
    out_csv: str | os.PathLike,
    *,
    profile: str,
    bf16: dict[str, Any] | None = None,
    plots_dir: str | os.PathLike | None = None,
) -> None:
    df = memory_frame(rows)
    plots = []
    if plots_dir is not None:
        plots = memory_plot(df, Path(plots_dir) / "memory_speed", profile=profile)
    device = ", ".join(sorted(set(df["device"])))
    body = []
    for _, r in df.iterrows():
        body.append(
            [
                r["model"],
                r["dtype"],
                r["config"],
                f"{_mib(r['peak_bytes'])} ({_mib(r['peak_bytes_min'])}-{_mib(r['peak_bytes_max'])})",
                fmt(r["peak_ratio_to_lora"], digits=3),
                f"{r['median_step_s'] * 1000:.1f} "
                f"({r['step_s_min'] * 1000:.1f}-{r['step_s_max'] * 1000:.1f})",
                fmt(r["step_ratio_to_lora"], digits=3),
                _mib(r["weights_bytes"]),
                _mib(r["gradients_bytes"]),
                _mib(r["optimizer_bytes"]),
                _mib(r["activations_bytes"]),
            ]
        )
    lines = [
        f"# Memory and speed ({smoke.label(profile)}, {device})",
        "",
        f"- Profile: **{profile}** ({profile_note(profile)})",
        f"- Peak memory: {df['peak_method'].iloc[0]}. Step: forward + backward + AdamW step, median over "
        "timed steps, then median over interleaved rounds (min-max over rounds in brackets).",
        f"- Batch {df['batch'].iloc[0]}, sequence length {df['seq'].iloc[0]}; Delta-LoRA switched on from "
        "the first step (K=0) so every timed step pays its full cost. Goal: both engines within "
        f"{GOAL}x of LoRA in peak memory and step time.",
        "- Split: weights, gradients and AdamW states counted from parameter sizes; activations = measured "
        "peak - those (on CPU also allocator slack).",
        "",
        markdown_table(
            [
                "model",
                "dtype",
                "config",
                "peak MiB",
                "peak / LoRA",
                "step ms",
                "step / LoRA",
                "weights MiB",
                "grads MiB",
                "AdamW MiB",
                "activations MiB",
            ],
            body,
        ),
    ]
    notes = []
    for model in sorted(set(df["model"])):
        for dtype in sorted(set(df[df["model"] == model]["dtype"])):
            sub = df[(df["model"] == model) & (df["dtype"] == dtype)].set_index("config")
            for engine in ("inplace", "folded"):
                if engine in sub.index and pd.notna(sub.loc[engine, "peak_ratio_to_lora"]):
                    ok = (
                        sub.loc[engine, "peak_ratio_to_lora"] <= GOAL
                        and sub.loc[engine, "step_ratio_to_lora"] <= GOAL
                    )
                    notes.append(
                        f"- {model} {dtype} {engine}: "
                        f"peak x{sub.loc[engine, 'peak_ratio_to_lora']:.3f}, step "
                        f"x{sub.loc[engine, 'step_ratio_to_lora']:.3f} of LoRA -> "
                        f"{'within' if ok else 'NOT within'} the {GOAL}x goal"
                        + noise_note(sub, [engine, "lora"])
                    )
    if notes:
        lines += ["", "## Against the goal", "", *notes]
    lines += qlora_section(df)
    if bf16:
        lines += [
            "",
            "## bf16: the part of the intended W update lost to rounding",
            "",
            f"Model {bf16['model']} in bf16 (LoRA factors float32), {bf16.get('lr')} learning rate, "
            "autocast bf16; lost = ||intended - actual|| / ||intended|| over all adapted layers and steps.",
            "",
            markdown_table(
                ["engine", "lost fraction of the W update"],
                [
                    ["inplace (W written in bf16)", f"{bf16['inplace_lost_fraction']:.4f}"],
                    ["folded (W never written)", f"{bf16['folded_lost_fraction']:.2e}"],
                ],
            ),
        ]
    if plots:
        rel = [os.path.relpath(p, Path(out_csv).parent) for p in plots if p.endswith(".png")]
        lines += ["", *[f"![memory and speed]({p})" for p in rel]]
    if bf16:
        for k, v in bf16.items():
            df[f"bf16_{k}"] = v
    write_outputs(df, out_csv, "\n".join(lines))


def memory_plot(df: pd.DataFrame, base: Path, *, profile: str) -> list[str]:
    from .plots import _plt, save

    plt = _plt()
    groups = [
        (m, d) for m in dict.fromkeys(df["model"]) for d in dict.fromkeys(df[df["model"] == m]["dtype"])
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    configs = list(dict.fromkeys(df["config"]))
    width = 0.8 / max(1, len(configs))
    for k, (col, title) in enumerate(
        (("peak_ratio_to_lora", "peak memory / LoRA"), ("step_ratio_to_lora", "median step time / LoRA"))
    ):
        ax = axes[k]
        for i, c in enumerate(configs):
            # A config measured on some (model, dtype) groups only (4-bit rows on some models): no bar.
            cells = [
                df[(df["model"] == m) & (df["dtype"] == d) & (df["config"] == c)][col] for m, d in groups
            ]
            vals = [float(v.iloc[0]) if len(v) else float("nan") for v in cells]
            ax.bar([g + i * width for g in range(len(groups))], vals, width=width, label=c, color=f"C{i}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(GOAL, color="k", lw=0.8, ls="--")
        ax.set_xticks([g + width * (len(configs) - 1) / 2 for g in range(len(groups))])
        ax.set_xticklabels([f"{m}\n{d}" for m, d in groups], fontsize=8)
        ax.set_ylabel(title)
        ax.set_title(f"{title} ({profile} profile)", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Memory and speed relative to LoRA (dashed: {GOAL}x goal) - {profile} profile", fontsize=10)
    fig.tight_layout()
    return save(fig, base)


def qlora_section(df: pd.DataFrame) -> list[str]:
    """Rows on the 4-bit base (QLoRA, Delta-LoRA folded) beside LoRA and Delta-LoRA inplace on the fp32 base,
    with ratios to QLoRA; empty when the table has no 4-bit rows."""
    if "config" not in df or "qlora" not in set(df["config"]):
        return []
    need = ("saved_activation_bytes", "peak_ratio_to_qlora", "step_ratio_to_qlora", "saved_ratio_to_qlora")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"memory table: the 4-bit (qlora) rows lack the column(s) {', '.join(missing)}")
    order = ("qlora", "folded_4bit", "lora", "inplace", "folded")
    names = {
        "qlora": "QLoRA (LoRA, NF4 base)",
        "folded_4bit": "Delta-LoRA folded, NF4 base",
        "lora": "LoRA, fp32 base",
        "inplace": "Delta-LoRA inplace, fp32 base (what Algorithm 1 needs)",
        "folded": "Delta-LoRA folded, fp32 base",
    }
    lines = [
        "",
        "## Delta-LoRA on a 4-bit base (ratios to QLoRA)",
        "",
        "Same model, batch and sequence; the 4-bit rows load the base in bitsandbytes NF4 (classifier/LM "
        "head in full precision) as QLoRA does. Weights include the 4-bit quantization constants. Saved "
        "activations: the exact bytes autograd keeps for backward in one training forward (parameters "
        f"excluded). Goal: Delta-LoRA folded on the 4-bit base within {QLORA_GOAL}x of QLoRA in peak memory "
        "and step time, and well below Delta-LoRA inplace on the fp32 base. On CPU, bitsandbytes dequantizes "
        "each 4-bit weight to a float32 temporary in every forward and backward and the peak RSS includes "
        "loading the checkpoint, "
        "so there the exact columns (saved activations, weights) are the comparable ones; "
        "`benchmarks/gpu_check.sh` measures the GPU peak (torch.cuda.max_memory_allocated).",
        "",
    ]
    body, notes = [], []
    for model in dict.fromkeys(df[df["config"] == "qlora"]["model"]):
        sub = df[(df["model"] == model) & (df["dtype"] == "fp32")].set_index("config")
        for c in order:
            if c not in sub.index:
                continue
            r = sub.loc[c]
            body.append(
                [
                    model,
                    names[c],
                    _mib(r["peak_bytes"]),
                    fmt(r["peak_ratio_to_qlora"], digits=3),
                    f"{r['median_step_s'] * 1000:.1f}",
                    fmt(r["step_ratio_to_qlora"], digits=3),
                    _mib(r["saved_activation_bytes"]),
                    fmt(r["saved_ratio_to_qlora"], digits=3),
                    _mib(r["weights_bytes"]),
                ]
            )
        if "folded_4bit" in sub.index:
            f = sub.loc["folded_4bit"]
            ok = f["peak_ratio_to_qlora"] <= QLORA_GOAL and f["step_ratio_to_qlora"] <= QLORA_GOAL
            line = (
                f"- {model}: Delta-LoRA folded on NF4 peak x{f['peak_ratio_to_qlora']:.3f}, step "
                f"x{f['step_ratio_to_qlora']:.3f}, saved activations x{f['saved_ratio_to_qlora']:.3f} "
                "of QLoRA -> "
                f"{'within' if ok else 'NOT within'} the {QLORA_GOAL}x goal"
                + noise_note(sub, ["folded_4bit", "qlora"])
            )
            if "inplace" in sub.index:
                line += (
                    "; Delta-LoRA inplace on the fp32 base is "
                    f"x{sub.loc['inplace', 'peak_ratio_to_qlora']:.3f} "
                    "of QLoRA's peak"
                )
            notes.append(line)
    lines += [
        markdown_table(
            [
                "model",
                "configuration",
                "peak MiB",
                "peak / QLoRA",
                "step ms",
                "step / QLoRA",
                "saved act. MiB",
                "saved / QLoRA",
                "weights MiB",
            ],
            body,
        ),
        "",
        *notes,
    ]
    return lines
