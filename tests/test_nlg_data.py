"""NLG data: proxies are deterministic and schema-exact, references are grouped correctly, unseen
WebNLG categories stay out of training, the pre-training corpus is disjoint from evaluation data, and
the real loaders fail with a clear message offline."""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import pytest

from deltalora.tasks import e2e, webnlg, xsum
from deltalora.tasks.textgen_io import (
    DatasetUnavailableError,
    fingerprint,
    load_hub_dataset,
    manifest_is_current,
)
from deltalora.tasks.textgen_lexicon import E2E_SLOTS, E2E_VALUES, all_names
from deltalora.tasks.textgen_proxy import (
    TEST_UNSEEN_WITH_LEX,
    TEST_WITH_LEX,
    E2EProxyConfig,
    WebNLGProxyConfig,
    XSumProxyConfig,
    e2e_proxy_rows,
    webnlg_proxy_rows,
    xsum_proxy_rows,
)
from deltalora.textgen.corpus import CorpusConfig, build_corpus, names_corpus_entity, split_sentences

SMALL_E2E = E2EProxyConfig(n_train=40, n_validation=8, n_test=12)
SMALL_WEB = WebNLGProxyConfig(n_train=40, n_dev=6, n_test_seen=8, n_test_unseen=8)
SMALL_XSUM = XSumProxyConfig(n_train=30, n_validation=6, n_test=10)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("proxies")
    return {
        "e2e": e2e.load_proxy(root / "e2e", SMALL_E2E),
        "webnlg": webnlg.load_proxy(root / "webnlg", SMALL_WEB),
        "xsum": xsum.load_proxy(root / "xsum", SMALL_XSUM),
    }


# --------------------------------------------------------------------------------------------------
# determinism and files
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fn,cfg,other",
    [
        (e2e_proxy_rows, SMALL_E2E, E2EProxyConfig(n_train=40, n_validation=8, n_test=12, seed=1)),
        (
            webnlg_proxy_rows,
            SMALL_WEB,
            WebNLGProxyConfig(n_train=40, n_dev=6, n_test_seen=8, n_test_unseen=8, seed=1),
        ),
        (xsum_proxy_rows, SMALL_XSUM, XSumProxyConfig(n_train=30, n_validation=6, n_test=10, seed=1)),
    ],
)
def test_proxy_rows_deterministic_and_seeded(fn, cfg, other):
    a, b = fn(cfg), fn(cfg)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert json.dumps(a, sort_keys=True) != json.dumps(fn(other), sort_keys=True)


def test_eval_inputs_do_not_depend_on_train_size():
    big = e2e_proxy_rows(E2EProxyConfig(n_train=80, n_validation=8, n_test=12))
    assert big["test"] == e2e_proxy_rows(SMALL_E2E)["test"]


def test_proxy_files_reused_only_when_fingerprint_matches(tmp_path):
    d = tmp_path / "e2e"
    e2e.load_proxy(d, SMALL_E2E)
    man = json.loads((d / "manifest.json").read_text())
    assert man["fingerprint"] == fingerprint("e2e_proxy", man["version"], SMALL_E2E)
    mtime = (d / "train.jsonl").stat().st_mtime_ns
    e2e.load_proxy(d, SMALL_E2E)  # same params: reused
    assert (d / "train.jsonl").stat().st_mtime_ns == mtime
    # a damaged file is detected and rebuilt
    (d / "test.jsonl").write_text("garbage\n")
    assert not manifest_is_current(d, man["fingerprint"])
    ds = e2e.load_proxy(d, SMALL_E2E)
    assert manifest_is_current(d, man["fingerprint"]) and len(ds["test"]) > 0
    # new params: rebuilt, new fingerprint
    e2e.load_proxy(d, E2EProxyConfig(n_train=41, n_validation=8, n_test=12))
    assert json.loads((d / "manifest.json").read_text())["fingerprint"] != man["fingerprint"]
    assert not [p for p in os.listdir(d) if p.endswith(".tmp")]


# --------------------------------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------------------------------
def test_schemas_exact(loaded):
    assert set(loaded["e2e"]) == {"train", "validation", "test"}
    assert set(loaded["webnlg"]) == {"train", "dev", "test"}
    assert set(loaded["xsum"]) == {"train", "validation", "test"}
    for name, mod in (("e2e", e2e), ("webnlg", webnlg), ("xsum", xsum)):
        for split in loaded[name].values():
            assert split.features == mod.features()
    assert loaded["e2e"]["train"].column_names == ["meaning_representation", "human_reference"]
    assert loaded["xsum"]["train"].column_names == ["document", "summary", "id"]
    assert loaded["webnlg"]["train"].column_names == [
        "category",
        "size",
        "eid",
        "original_triple_sets",
        "modified_triple_sets",
        "shape",
        "shape_type",
        "lex",
        "test_category",
        "dbpedia_links",
        "links",
    ]


def test_e2e_mrs_use_real_slots_and_values(loaded):
    for ex in loaded["e2e"]["train"]:
        mr = e2e.parse_mr(ex["meaning_representation"])
        assert "name" in mr and set(mr) <= set(E2E_SLOTS)
        assert list(mr) == [s for s in E2E_SLOTS if s in mr]  # canonical order
        for slot, v in mr.items():
            if slot in E2E_VALUES:
                assert v in E2E_VALUES[slot]
        assert mr["name"] in ex["human_reference"]


def test_webnlg_rows_are_consistent(loaded):
    for split in ("train", "dev", "test"):
        for ex in loaded["webnlg"][split]:
            triples = webnlg._triple_set(ex)
            assert ex["size"] == len(triples) and 1 <= len(triples) <= 4
            for t in triples:
                s, p, o = webnlg.split_triple(t)
                assert " " not in s and " " not in o  # DBpedia-style underscores
            assert webnlg.references(ex)


def test_webnlg_proxy_has_paths_as_well_as_stars():
    """Version 2: some triple sets are paths (subject | place-property | P, P | country | X), as in the
    real WebNLG; each lexicalisation names every entity. Version 1 drew stars only (never a path)."""
    rows = webnlg_proxy_rows(WebNLGProxyConfig(seed=0))
    paths = stars = 0
    for split in ("train", "dev", "test"):
        for ex in rows[split]:
            triples = [webnlg.split_triple(t) for t in webnlg._triple_set(ex)]
            subjects = [s for s, _, _ in triples]
            if len(set(subjects)) == 1:
                stars += 1
                continue
            paths += 1
            assert (
                len(triples) >= 3
                and len(set(subjects)) == 2
                and subjects.count(subjects[0]) == len(triples) - 1
            )
            (place, prop, country) = triples[-1]
            assert prop == "country" and any(o == place for _, _, o in triples[:-1])
            for text in webnlg.references(ex):
                for s, _, o in triples:
                    assert s.replace("_", " ") in text and o.replace("_", " ") in text, (text, triples)
    assert stars > 0 and 0.03 < paths / (paths + stars) < 0.2, (paths, stars)


def test_webnlg_sample_without_chains_draws_stars_only():
    """chain_p=0 (the pretraining corpus's call) never makes a path."""
    import random

    from deltalora.tasks.textgen_lexicon import CATEGORIES
    from deltalora.tasks.textgen_realize import webnlg_sample

    rng = random.Random(0)
    for i in range(400):
        triples, _ = webnlg_sample(CATEGORIES[i % len(CATEGORIES)], 1 + i % 4, rng, "proxy")
        assert len({s for s, _, _ in triples}) == 1


def test_webnlg_accessors_accept_both_nested_layouts():
    ex_lists = {
        "modified_triple_sets": {"mtriple_set": [["A | p | B"]]},
        "lex": {"text": ["t1", "t2"], "comment": ["good", "bad"], "lid": ["1", "2"], "lang": ["", ""]},
    }
    ex_dicts = {
        "modified_triple_sets": [{"mtriple_set": ["A | p | B"]}],
        "lex": [{"text": "t1", "comment": "good"}, {"text": "t2", "comment": "bad"}],
    }
    for ex in (ex_lists, ex_dicts):
        assert webnlg.linearize(ex) == "A : p : B"
        assert webnlg.references(ex) == ["t1"]  # LoRA keeps only "good" lexicalisations
    no_good = {
        "modified_triple_sets": [{"mtriple_set": ["A | p | B"]}],
        "lex": [{"text": "t1", "comment": ""}, {"text": "", "comment": ""}],
    }
    assert webnlg.references(no_good) == ["t1"]


def test_xsum_documents_and_summaries(loaded):
    ids = Counter()
    for split in loaded["xsum"].values():
        for ex in split:
            sents = ex["document"].split("\n")
            assert 3 <= len(sents) <= 6
            assert ex["summary"] not in sents  # a paraphrase, not a copied sentence
            assert ex["id"].isdigit()
            ids[ex["id"]] += 1
    assert max(ids.values()) == 1


# --------------------------------------------------------------------------------------------------
# multi-reference grouping, seen/unseen
# --------------------------------------------------------------------------------------------------
def test_e2e_grouping_keeps_every_reference(loaded):
    test = loaded["e2e"]["test"]
    groups = e2e.eval_groups(test)
    by_mr = {g.meta["mr"]: g for g in groups}
    assert len(groups) == len(set(test["meaning_representation"])) == SMALL_E2E.n_test
    assert sum(len(g.references) for g in groups) == len(test)
    for ex in test:
        assert ex["human_reference"] in by_mr[ex["meaning_representation"]].references
    assert all(len(g.references) >= SMALL_E2E.refs_eval[0] for g in groups)
    assert groups[0].source == e2e.linearize(groups[0].meta["mr"])
    assert e2e.linearize("name[The Vaults], eatType[pub], customer rating[5 out of 5]") == (
        "name : The Vaults | eatType : pub | customer rating : 5 out of 5"
    )


def test_webnlg_grouping_dedupes_unseen_file_and_flags_seen(loaded):
    d = loaded["webnlg"]
    test = d["test"]
    cats = Counter(test["test_category"])
    assert cats[TEST_WITH_LEX] == SMALL_WEB.n_test_seen + SMALL_WEB.n_test_unseen
    assert cats[TEST_UNSEEN_WITH_LEX] == SMALL_WEB.n_test_unseen
    seen = webnlg.seen_categories(d["train"])
    groups = webnlg.eval_groups(test, seen)
    assert len(groups) == cats[TEST_WITH_LEX]  # the unseen file is not counted twice
    assert sum(g.meta["seen"] for g in groups) == SMALL_WEB.n_test_seen
    for g in groups:
        assert g.meta["seen"] == (g.meta["category"] in seen)
        assert len(g.references) >= SMALL_WEB.refs_eval[0]
    # without the train split, the unseen test file decides
    assert [g.meta["seen"] for g in webnlg.eval_groups(test)] == [g.meta["seen"] for g in groups]
    # train pairs: one per reference
    assert len(webnlg.train_pairs(d["train"])) == sum(len(webnlg.references(ex)) for ex in d["train"])


def test_unseen_categories_never_in_train_or_dev(loaded):
    d = loaded["webnlg"]
    unseen = set(SMALL_WEB.unseen_categories)
    assert not unseen & set(d["train"]["category"])
    assert not unseen & set(d["dev"]["category"])
    assert unseen & set(d["test"]["category"])
    assert webnlg.seen_categories(d["train"]) <= set(SMALL_WEB.seen_categories)


def test_inputs_do_not_repeat_across_splits(loaded):
    e = loaded["e2e"]
    assert not set(e["train"]["meaning_representation"]) & set(e["test"]["meaning_representation"])
    w = loaded["webnlg"]
    assert not {webnlg.linearize(x) for x in w["train"]} & {webnlg.linearize(x) for x in w["test"]}
    x = loaded["xsum"]
    assert not set(x["train"]["document"]) & set(x["test"]["document"])


# --------------------------------------------------------------------------------------------------
# pre-training corpus vs evaluation data
# --------------------------------------------------------------------------------------------------
def test_name_pools_are_disjoint():
    assert not set(all_names("proxy")) & set(all_names("corpus"))


def test_corpus_disjoint_from_evaluation_data(loaded):
    docs = build_corpus(CorpusConfig(n_restaurant=300, n_facts=300, n_news=200))
    corpus_text = "\n".join(docs)
    corpus_sents = {s for d in docs for s in split_sentences(d)}
    assert all(names_corpus_entity(s) for s in corpus_sents)
    eval_texts: list[str] = []
    for name, mod in (("e2e", e2e), ("webnlg", webnlg), ("xsum", xsum)):
        for split in ("validation", "dev", "test"):
            if split in loaded[name]:
                for g in mod.eval_groups(loaded[name][split]):
                    eval_texts += [g.source, *g.references]
    assert eval_texts
    for t in eval_texts:
        assert t not in corpus_text
        for s in split_sentences(t):
            assert s not in corpus_sents
            assert not names_corpus_entity(s), s  # proxies never use a corpus-pool name
    # ...while sharing the domain language (same content words are there)
    words = set(re.findall(r"[a-z]+", corpus_text))
    assert {"pub", "riverside", "runway", "orbit", "councillors", "jobs"} <= words


# --------------------------------------------------------------------------------------------------
# real loaders offline
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mod", [e2e, webnlg, xsum])
def test_real_loader_fails_clearly_offline(mod, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    def no_network(*a, **k):
        raise ConnectionError("no route to host")

    with pytest.raises(DatasetUnavailableError) as ei:
        load_hub_dataset(
            mod.TASK.hub_id, mod.TASK.hub_config, revision=mod.TASK.hub_revision, loader=no_network
        )
    msg = str(ei.value)
    assert mod.TASK.hub_id in msg and "offline" in msg and "embedded" in msg


def test_real_loader_through_datasets_offline(monkeypatch, tmp_path):
    """The actual `datasets.load_dataset` call, offline, turns into our error (no network used)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match="EdinburghNLP/xsum"):
        xsum.load_real(cache_dir=str(tmp_path))


def test_task_protocol_settings():
    assert e2e.TASK.gen["num_beams"] == 10 and e2e.TASK.gen["length_penalty"] == 0.9
    assert webnlg.TASK.gen["length_penalty"] == 0.8 and webnlg.TASK.gen["no_repeat_ngram_size"] == 4
    assert xsum.TASK.gen["num_beams"] == 8 and xsum.TASK.gen["max_new_tokens"] == 64
    assert e2e.TASK.kind == webnlg.TASK.kind == "gpt2" and xsum.TASK.kind == "bart"
