"""E2E NLG Challenge (Novikova et al. 2017): real loader, embedded proxy, and multi-reference grouping.

Which hub dataset: ``e2e_nlg`` (now ``tuetschek/e2e_nlg``), the ORIGINAL E2E release: 42,061 / 4,672 /
4,693 rows, which are the sizes the LoRA paper reports (about 42k / 4.6k / 4.6k) and the data its
``examples/NLG`` scripts use. ``GEM/e2e_nlg`` was not chosen: it is the cleaned re-annotation
(Dušek et al. 2019, 33,525 training rows) with different MRs and splits, so scores on it are not
comparable with the LoRA/Delta-LoRA tables.

Schema (checked against the hub loading script ``datasets/e2e_nlg/e2e_nlg.py`` and the TFDS
community catalog page for ``e2e_nlg``): ``meaning_representation: string``,
``human_reference: string``; one row per (MR, reference) pair, several rows per MR.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .textgen_io import (
    PARQUET_REVISION,
    NLGTaskInfo,
    Profile,
    RefGroup,
    default_data_root,
    ensure_jsonl_splits,
    load_hub_dataset,
    load_jsonl_splits,
)
from .textgen_proxy import E2E_PROXY_VERSION, E2EProxyConfig, e2e_proxy_rows

TASK = NLGTaskInfo(
    name="e2e",
    hub_id="tuetschek/e2e_nlg",
    hub_config=None,
    hub_revision=PARQUET_REVISION,
    kind="gpt2",
    paper_model="gpt2-medium",
    splits=("train", "validation", "test"),
    train_split="train",
    valid_split="validation",
    eval_split="test",
    # LoRA Table 11: beam 10, length penalty 0.9 (the README command uses 0.8), no-repeat 4-grams.
    gen={"num_beams": 10, "length_penalty": 0.9, "no_repeat_ngram_size": 4, "max_new_tokens": 64},
    metrics=("bleu", "nist", "meteor", "rouge_l", "cider"),
    max_source_tokens=64,
    max_target_tokens=64,
    notes="multi-reference: group rows by meaning_representation",
)


def features() -> Any:
    import datasets

    return datasets.Features(
        {"meaning_representation": datasets.Value("string"), "human_reference": datasets.Value("string")}
    )


_SLOT = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


def parse_mr(mr: str) -> dict[str, str]:
    """``"name[The Vaults], eatType[pub]"`` -> ``{"name": "The Vaults", "eatType": "pub"}``."""
    out = {m.group(1): m.group(2) for m in _SLOT.finditer(mr)}
    if not out:
        raise ValueError(f"not an E2E meaning representation: {mr!r}")
    return out


def linearize(mr: str) -> str:
    """The model input: ``name : The Vaults | eatType : pub | ...`` (slot order of the MR).

    The LoRA scripts use the prefix-tuning preprocessing, ``name : X | Type : pub | price : ...``;
    we keep E2E's own slot names, which changes only the tokens of the (unscored) source.
    """
    return " | ".join(f"{k} : {v}" for k, v in parse_mr(mr).items())


def train_pairs(split: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(source, target) for every row: each reference is its own training example, as in LoRA."""
    return [(linearize(ex["meaning_representation"]), ex["human_reference"]) for ex in split]


def eval_groups(split: Iterable[Mapping[str, Any]]) -> list[RefGroup]:
    """One item per distinct MR (first-seen order) with ALL its references, for multi-ref scoring."""
    groups: dict[str, RefGroup] = {}
    for ex in split:
        mr = ex["meaning_representation"]
        g = groups.get(mr)
        if g is None:
            g = groups[mr] = RefGroup(source=linearize(mr), references=[], meta={"mr": mr})
        ref = ex["human_reference"]
        if ref:
            g.references.append(ref)
    return [g for g in groups.values() if g.references]


def load_real(*, cache_dir: str | None = None) -> Any:
    """The real E2E data from the hub (needs network or a populated HF cache)."""
    return load_hub_dataset(TASK.hub_id, TASK.hub_config, revision=TASK.hub_revision, cache_dir=cache_dir)


def load_proxy(
    data_dir: str | os.PathLike[str] | None = None,
    cfg: E2EProxyConfig | None = None,
    *,
    cache_dir: str | None = None,
) -> Any:
    """The embedded proxy (generated once per parameter set, then reused), typed with E2E's Features."""
    cfg = cfg or E2EProxyConfig()
    out = data_dir if data_dir is not None else default_data_root() / "e2e"
    paths = ensure_jsonl_splits(
        out, generator="e2e_proxy", version=E2E_PROXY_VERSION, params=cfg, build=lambda: e2e_proxy_rows(cfg)
    )
    return load_jsonl_splits(paths, features(), cache_dir=cache_dir)


def load(profile: Profile = "embedded", **kw: Any) -> Any:
    """DatasetDict with splits train/validation/test for either profile."""
    if profile == "paper":
        return load_real(cache_dir=kw.get("cache_dir"))
    return load_proxy(kw.get("data_dir"), kw.get("cfg"), cache_dir=kw.get("cache_dir"))
