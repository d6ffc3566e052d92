"""The generated proxy data do not change unless their version number does.

Why: cached proxy files, run records and every table built on them are keyed by the generators'
version constants. The word lists live in data files (``deltalora/tasks/data/``) that anyone may edit;
an edit that changes the rows without a version bump would silently mix old and new data. The digests
below were taken from the generators before their word lists moved out of the code (commit 63493e4),
and match after: the move changed no byte.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from deltalora.tasks import glue_proxy
from deltalora.tasks.textgen_proxy import (
    E2E_PROXY_VERSION,
    WEBNLG_PROXY_VERSION,
    XSUM_PROXY_VERSION,
    E2EProxyConfig,
    WebNLGProxyConfig,
    XSumProxyConfig,
    e2e_proxy_rows,
    webnlg_proxy_rows,
    xsum_proxy_rows,
)
from deltalora.textgen.corpus import CORPUS_VERSION, CorpusConfig, build_corpus

GLUE = {
    "cola": "43bc4441069b45a0",
    "sst2": "33dd0f5b5ea8eb55",
    "mrpc": "c198c6e3d3ca6749",
    "qqp": "5904da378046da43",
    "stsb": "21e4403c28826398",
    "mnli": "cd6e3bc3c0607600",
    "qnli": "39d5e88b90b511d4",
    "rte": "667d6c57e5bae988",
}
VERSIONS = {"glue": "1", "e2e": 1, "webnlg": 2, "xsum": 1, "corpus": 1}
BUMP = "the generated rows changed: bump the generator's version constant and update this digest"


def digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def test_versions_are_the_ones_the_digests_belong_to():
    now = {
        "glue": glue_proxy.GENERATOR_VERSION,
        "e2e": E2E_PROXY_VERSION,
        "webnlg": WEBNLG_PROXY_VERSION,
        "xsum": XSUM_PROXY_VERSION,
        "corpus": CORPUS_VERSION,
    }
    assert now == VERSIONS, "a version was bumped: update the digests in this file to the new output"


@pytest.mark.parametrize("task", sorted(GLUE))
def test_glue_proxy_rows_unchanged(task):
    assert digest(glue_proxy.generate_task(task, 40, 40, seed=3)) == GLUE[task], BUMP


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: e2e_proxy_rows(E2EProxyConfig(seed=3, n_train=40)), "736146577794ff1c"),
        (lambda: webnlg_proxy_rows(WebNLGProxyConfig(seed=3, n_train=40)), "e6c513bbca0805fd"),
        (lambda: xsum_proxy_rows(XSumProxyConfig(seed=3, n_train=40)), "9ad67a21038b658c"),
        (
            lambda: build_corpus(CorpusConfig(seed=3, n_restaurant=60, n_facts=60, n_news=60)),
            "1004d955090258bb",
        ),
    ],
    ids=["e2e", "webnlg", "xsum", "corpus"],
)
def test_nlg_proxy_rows_unchanged(make, expected):
    assert digest(make()) == expected, BUMP
