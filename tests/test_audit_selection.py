"""Claim 5 selects on dev and compares on validation; the matched-scale comparison is shown beside it."""

from __future__ import annotations

from deltalora.audit.claims import Settings, assess_lr_objection
from deltalora.audit.evidence import Evidence
from deltalora.audit.rules import REFUTED, SUPPORTED

SEEDS = range(5)
NOISE = {0: 0.1, 1: -0.2, 2: 0.3, 3: -0.1, 4: 0.05}


def _rec(row: str, seed: int, val: float, dev: float | None, lr: float = 3e-3) -> dict:
    method = (
        "delta_lora" if row.startswith("delta_lora") else "lora_scaled" if row == "lora_scaled" else "lora"
    )
    best = {
        "epoch": 1,
        "step": 32,
        "metrics": {"accuracy": val + NOISE[seed]},
        "extra_splits": {} if dev is None else {"dev": {"accuracy": dev + NOISE[seed]}},
    }
    return {
        "task": "glue/rte",
        "task_family": "glue",
        "row": row,
        "method": method,
        "seed": seed,
        "profile": "default",
        "metric": "accuracy",
        "best": best,
        "final": best,
        "epochs": [best],
        "model": "embedded:minilm",
        "config": {"train": {"lr": lr}, "hp": {"dropout": 0.0}, "data": {"n_val": 192}},
    }


# row -> (validation, dev): dev and validation disagree on every choice
PLANTED = {
    "delta_lora": (70.0, 60.0),
    "delta_lora_lr0.001": (60.0, 80.0),  # dev's choice for Delta-LoRA
    "lora": (90.0, 70.0),
    "lora_lr0.001": (50.0, 75.0),  # dev's choice among the controls
    "lora_scaled": (95.0, 50.0),  # validation's choice among the controls
}


def _verdicts(with_dev: bool) -> tuple[dict[str, str], dict[str, dict]]:
    recs = [
        _rec(r, s, v, d if with_dev else None, lr=1e-3 if "lr0.001" in r else 3e-3)
        for r, (v, d) in PLANTED.items()
        for s in SEEDS
    ]
    rows = assess_lr_objection(Evidence("default", recs), Settings(n_resamples=2000))
    return {r.id: r.verdict for r in rows}, {r.id: r for r in rows}


def test_claim5_selects_on_dev_and_compares_on_validation():
    v, rows = _verdicts(with_dev=True)
    cmp = rows["5.glue/rte"].data["cmp"]
    assert cmp.extra["best_delta"] == "delta_lora_lr0.001" and cmp.extra["best"] == "lora_lr0.001"
    assert cmp.extra["selected_on"] == "dev" and cmp.extra["split"] == "validation"
    assert abs(cmp.ci.estimate - 10.0) < 1e-9  # validation scores of the dev-selected rows: 60 - 50
    assert v["5.glue/rte"] == SUPPORTED and v["5"] == SUPPORTED
    # matched effective scale, no selection: delta_lora (70) - lora_scaled (95) on validation
    assert abs(rows["5.scale.glue/rte"].data["cmp"].ci.estimate + 25.0) < 1e-9
    assert v["5.scale.glue/rte"] == REFUTED and v["5.scale"] == REFUTED


def test_claim5_without_dev_falls_back_to_validation_and_says_so():
    v, rows = _verdicts(with_dev=False)
    cmp = rows["5.glue/rte"].data["cmp"]
    assert cmp.extra["selected_on"] == "validation"
    assert cmp.extra["best_delta"] == "delta_lora" and cmp.extra["best"] == "lora_scaled"
    assert v["5"] == REFUTED
    assert "selection favours" in rows["5"].evidence


def test_a_tie_on_dev_goes_to_the_row_with_the_lower_median_dev_loss():
    """Two learning rates both reach the saturated dev score; the one that fits dev better is chosen."""
    from deltalora.audit.selection import select_best

    recs = []
    for row, loss in (("lora", 0.30), ("lora_lr0.001", 0.45)):
        for s in SEEDS:
            best = {
                "epoch": 1,
                "metrics": {"accuracy": 80.0},
                "extra_splits": {"dev": {"accuracy": 96.875, "loss": loss + NOISE[s] / 10}},
            }
            recs.append(
                {
                    "task": "glue/rte",
                    "task_family": "glue",
                    "row": row,
                    "method": "lora",
                    "seed": s,
                    "profile": "default",
                    "metric": "accuracy",
                    "best": best,
                    "final": best,
                    "epochs": [best],
                    "model": "embedded:minilm",
                    "config": {},
                }
            )
    best, med = select_best(Evidence("default", recs), "glue/rte", ["lora", "lora_lr0.001"], "dev")
    assert med == {"lora": 96.875, "lora_lr0.001": 96.875}
    assert best == "lora"  # the name that sorts last (lora_lr0.001) would win without the loss
