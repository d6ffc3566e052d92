"""XSum (Narayan et al. 2018) for BART: real loader, embedded proxy, single-reference grouping.

Schema (checked against the hub dataset card of ``EdinburghNLP/xsum`` and its Parquet export):
``document: string``, ``summary: string``, ``id: string``; splits train / validation / test
(about 204k / 11.3k / 11.3k). The AdaLoRA script (``NLG_QA/scripts/run_bart_xsum.sh``) decodes with
8 beams and a maximum target length of 64, with source length 768.
"""

from __future__ import annotations

import os
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
from .textgen_proxy import XSUM_PROXY_VERSION, XSumProxyConfig, xsum_proxy_rows

TASK = NLGTaskInfo(
    name="xsum",
    hub_id="EdinburghNLP/xsum",
    hub_config=None,
    hub_revision=PARQUET_REVISION,
    kind="bart",
    paper_model="facebook/bart-large",
    splits=("train", "validation", "test"),
    train_split="train",
    valid_split="validation",
    eval_split="test",
    # AdaLoRA XSum script: 8 beams, max target length 64. no_repeat_ngram_size 3 and length penalty 1.0
    # are what facebook/bart-large's own generation defaults would supply (not set by the script;
    # UNCONFIRMED which values the Delta-LoRA authors used).
    gen={"num_beams": 8, "length_penalty": 1.0, "no_repeat_ngram_size": 3, "max_new_tokens": 64},
    metrics=("rouge1", "rouge2", "rougeL"),
    max_source_tokens=768,
    max_target_tokens=64,
    notes="single reference per document",
)


def features() -> Any:
    import datasets

    V = datasets.Value
    return datasets.Features({"document": V("string"), "summary": V("string"), "id": V("string")})


def linearize(ex: Mapping[str, Any]) -> str:
    return ex["document"]


def train_pairs(split: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    return [(ex["document"], ex["summary"]) for ex in split if ex["document"].strip()]


def eval_groups(split: Iterable[Mapping[str, Any]]) -> list[RefGroup]:
    """One item per document; XSum has a single reference (kept as a one-element list)."""
    return [
        RefGroup(source=ex["document"], references=[ex["summary"]], meta={"id": ex["id"]})
        for ex in split
        if ex["document"].strip()
    ]


def load_real(*, cache_dir: str | None = None) -> Any:
    return load_hub_dataset(TASK.hub_id, TASK.hub_config, revision=TASK.hub_revision, cache_dir=cache_dir)


def load_proxy(
    data_dir: str | os.PathLike[str] | None = None,
    cfg: XSumProxyConfig | None = None,
    *,
    cache_dir: str | None = None,
) -> Any:
    cfg = cfg or XSumProxyConfig()
    out = data_dir if data_dir is not None else default_data_root() / "xsum"
    paths = ensure_jsonl_splits(
        out,
        generator="xsum_proxy",
        version=XSUM_PROXY_VERSION,
        params=cfg,
        build=lambda: xsum_proxy_rows(cfg),
    )
    return load_jsonl_splits(paths, features(), cache_dir=cache_dir)


def load(profile: Profile = "embedded", **kw: Any) -> Any:
    if profile == "paper":
        return load_real(cache_dir=kw.get("cache_dir"))
    return load_proxy(kw.get("data_dir"), kw.get("cfg"), cache_dir=kw.get("cache_dir"))
