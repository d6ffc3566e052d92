"""The NLG path of `deltalora train` end to end on tiny pre-trained models (a few steps each):
E2E with GPT-2 (Conv1D, fan_in_fan_out) and Delta-LoRA, XSum with BART; records, texts, metrics."""

from __future__ import annotations

import json

import pytest

from deltalora.config import resolve_run
from deltalora.metrics.e2e import e2e_metrics
from deltalora.metrics.rouge import rouge_metrics
from deltalora.records import read_record
from deltalora.textgen.pretrain import pretrain
from deltalora.train import run

FAST = [
    "train.max_steps=3",
    "train.batch_size=4",
    "generation.max_eval=3",
    "generation.num_beams=2",
    "generation.max_new_tokens=8",
    "train.logging_steps=1",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded")
    for kind in ("gpt2", "bart"):
        pretrain(kind, root / kind, steps=3, seed=0, num_threads=1)
    return root


def assert_scores_recompute(rec: dict, texts: list[dict], metric_fn, *, check_pairing: bool = False) -> None:
    """Recompute the record's generation metrics from generations.jsonl with `metric_fn`; they must agree.

    check_pairing: also show that scoring against another input's references gives other numbers (needs
    hypotheses that depend on their input; an untrained model's are near zero against any reference).
    """
    expected = metric_fn([t["hypothesis"] for t in texts], [t["references"] for t in texts])
    got = rec["final"]["metrics"]
    for key, value in expected.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    if not check_pairing:
        return
    # scored against another input's references, the same hypotheses score differently
    shifted = [t["references"] for t in texts[1:] + texts[:1]]
    wrong = metric_fn([t["hypothesis"] for t in texts], shifted)
    assert any(v is not None and v != pytest.approx(got[k], rel=1e-9) for k, v in wrong.items()), wrong


def test_e2e_delta_lora_on_conv1d_gpt2(models, tmp_path):
    cfg = resolve_run(
        task="e2e",
        method="delta_lora",
        seed=0,
        model=str(models / "gpt2"),
        sets=[*FAST, f"data.data_dir={tmp_path / 'data'}", "hp.start_step=0", "analysis.update_rank=true"],
    )
    seen = {}

    def inspect(model):
        from peft.tuners.lora import LoraLayer

        layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        seen["conv1d"] = all(
            type(m.get_base_layer()).__name__ == "Conv1D" and m.fan_in_fan_out for m in layers
        )
        seen["n"] = len(layers)

    rec = run(cfg, tmp_path / "run", on_trained=inspect)
    assert seen["conv1d"] and seen["n"] > 0
    rec = read_record(tmp_path / "run" / "record.json")
    assert rec["task_family"] == "nlg" and rec["metric"] == "bleu"
    for key in ("bleu", "nist", "rouge_l", "cider"):
        assert isinstance(rec["final"]["metrics"][key], float)
    assert "meteor" in rec["final"]["metrics"]  # a number with Java, None (with a warning) without
    assert rec["delta_lora"]["steps_counted"] == 3 and rec["delta_lora"]["switched"]
    layers = rec["analysis"]["update_rank"]["layers"]
    assert layers and all(e["w"]["ranks"]["0.001"] <= e["two_r"] for e in layers.values())
    texts = [json.loads(line) for line in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()]
    assert len(texts) == 3 and all(
        len(t["references"]) >= 1 and isinstance(t["hypothesis"], str) for t in texts
    )
    assert len({t["source"] for t in texts}) == 3  # three different inputs
    # the record's scores are the metric functions applied to these very texts, each with its own references
    assert_scores_recompute(rec, texts, e2e_metrics)
    assert [(s["source"], s["hypothesis"]) for s in rec["generation"]["samples"]] == [
        (t["source"], t["hypothesis"]) for t in texts
    ]


def test_xsum_lora_on_bart(models, tmp_path, monkeypatch):
    from deltalora.textgen import generation

    real = generation.generate
    seen = {}

    def echo_source(model, tokenizer, sources, **kw):
        """Real generation runs (and is checked), but each input's hypothesis is its own source text:
        input-specific, so that scores against the wrong references would differ."""
        seen["outputs"] = real(model, tokenizer, sources, **kw)
        return [" ".join(s.split()[:40]) for s in sources]

    monkeypatch.setattr(generation, "generate", echo_source)
    cfg = resolve_run(
        task="xsum",
        method="lora",
        seed=0,
        model=str(models / "bart"),
        sets=[*FAST, f"data.data_dir={tmp_path / 'data'}"],
    )
    rec = run(cfg, tmp_path / "run")
    assert len(seen["outputs"]) == 3
    assert rec["metric"] == "rouge2"
    assert {"rouge1", "rouge2", "rougeL"} <= set(rec["final"]["metrics"])
    assert rec["generation"]["n_eval"] == 3
    texts = [json.loads(line) for line in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()]
    assert_scores_recompute(rec, texts, rouge_metrics, check_pairing=True)
    assert rec["final"]["metrics"]["rouge1"] > 1  # the echoed source shares words with its summary
    assert (
        rec["loss"]["smoothing"] == "trainer" and rec["loss"]["label_only_logits"] is False
    )  # seq2seq: untouched


def _answer_with_own_reference(monkeypatch, task_module, answer):
    """Real generation runs, then each input's hypothesis is `answer(group)`, decided from that input's own
    group (references, category): a hypothesis scored against another input's references scores lower."""
    from deltalora.textgen import generation

    groups, real_generate, real_groups = {}, generation.generate, task_module.eval_groups

    def capture(*a, **kw):
        out = real_groups(*a, **kw)
        groups.update({g.source: g for g in out})
        return out

    def generate(model, tokenizer, sources, **kw):
        assert len(real_generate(model, tokenizer, sources, **kw)) == len(sources)
        return [answer(groups[s]) for s in sources]

    monkeypatch.setattr(task_module, "eval_groups", capture)
    monkeypatch.setattr(generation, "generate", generate)
    return groups


def _lora_run(task: str, models, tmp_path, *, max_eval: int) -> tuple[dict, list[dict]]:
    """A LoRA run on the tiny GPT-2, scored on the first `max_eval` inputs: its record and generations."""
    sets = [*FAST, f"generation.max_eval={max_eval}", f"data.data_dir={tmp_path / 'data'}"]
    rec = run(
        resolve_run(task=task, method="lora", seed=0, model=str(models / "gpt2"), sets=sets), tmp_path / "run"
    )
    lines = (tmp_path / "run" / "generations.jsonl").read_text().splitlines()
    return rec, [json.loads(line) for line in lines]


def test_e2e_hypotheses_are_scored_against_their_own_references(models, tmp_path, monkeypatch):
    """Each hypothesis is its input's first reference, so BLEU is exactly 100 with the right pairing;
    against the references of the next input it is far lower (an untrained model's outputs cannot show a
    mispairing: they score near zero against any reference)."""
    from deltalora.tasks import e2e

    groups = _answer_with_own_reference(monkeypatch, e2e, lambda g: g.references[0])
    rec, texts = _lora_run("e2e", models, tmp_path, max_eval=4)
    assert len(texts) == 4 and len({t["source"] for t in texts}) == 4
    for t in texts:  # each line pairs an input with its own references and its own hypothesis
        assert t["references"] == groups[t["source"]].references
        assert t["hypothesis"] == groups[t["source"]].references[0]
    assert rec["final"]["metrics"]["bleu"] == pytest.approx(100.0, abs=1e-9)
    assert_scores_recompute(rec, texts, e2e_metrics, check_pairing=True)
    shifted = e2e_metrics([t["hypothesis"] for t in texts], [t["references"] for t in texts[1:] + texts[:1]])
    assert shifted["bleu"] < 60


def test_webnlg_pairs_hypotheses_references_and_seen_unseen_categories(models, tmp_path, monkeypatch):
    """Seen inputs answer with their own first reference, unseen ones with their triples: BLEU on the seen
    subset is exactly 100, on the unseen subset below it. Seen = the input's category occurs in the
    training split (computed here independently of the runner)."""
    from deltalora.metrics.webnlg import webnlg_metrics
    from deltalora.tasks import webnlg

    groups = _answer_with_own_reference(
        monkeypatch, webnlg, lambda g: g.references[0] if g.meta["seen"] else g.source
    )
    rec, texts = _lora_run("webnlg", models, tmp_path, max_eval=6)
    data = webnlg.load("embedded", data_dir=tmp_path / "data" / "nlg" / "webnlg")
    seen = {ex["category"] for ex in data["train"]}
    assert len(texts) == 6
    flags = [t["meta"]["category"] in seen for t in texts]
    assert [t["meta"]["seen"] for t in texts] == flags and True in flags and False in flags
    for t in texts:
        assert t["references"] == groups[t["source"]].references
    got = rec["final"]["metrics"]
    assert got["bleu_seen"] == pytest.approx(100.0, abs=1e-9)
    assert got["bleu_unseen"] < 90 and got["bleu_seen"] > got["bleu_all"] > got["bleu_unseen"]
    cats = [t["meta"]["category"] for t in texts]
    assert_scores_recompute(rec, texts, lambda h, r: webnlg_metrics(h, r, cats, seen), check_pairing=True)


def test_gpt2_refused_for_a_seq2seq_task(models, tmp_path):
    with pytest.raises(ValueError, match="uses a bart model"):
        run(
            resolve_run(task="xsum", method="lora", seed=0, model=str(models / "gpt2"), sets=FAST),
            tmp_path / "r",
        )


def test_label_only_logits_changes_nothing_in_a_run(models, tmp_path):
    """The Trainer path (deltalora/lm_loss.py): same training losses and validation loss with and without
    logits at the labelled positions only; the record says which loss computation ran."""
    recs = {}
    for flag in (True, False):
        cfg = resolve_run(
            task="e2e",
            method="adalora",
            seed=0,
            model=str(models / "gpt2"),
            sets=[
                *FAST,
                "train.max_steps=4",
                f"train.label_only_logits={str(flag).lower()}",
                "train.label_smoothing=0.1",
                f"data.data_dir={tmp_path / 'data'}",
            ],
        )
        recs[flag] = run(cfg, tmp_path / f"run_{flag}")
    on, off = recs[True], recs[False]
    assert on["loss"] == {"label_smoothing": 0.1, "smoothing": "in model", "label_only_logits": True}
    assert off["loss"]["label_only_logits"] is False
    losses = [[c["loss"] for c in r["train_curve"]] for r in (on, off)]
    assert len(losses[0]) == 4 and losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert on["final"]["metrics"]["validation_loss"] == pytest.approx(
        off["final"]["metrics"]["validation_loss"], abs=1e-5
    )
