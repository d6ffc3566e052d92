"""NLG runner: E2E and WebNLG (GPT-2, causal LM) and XSum (BART, seq2seq).

Per epoch the Trainer records the validation loss; after training, beam search generates a text for
every evaluation input (the test split, as the LoRA protocol scores) and the official metric suite
scores it multi-reference. Generation runs once, at the end, so the record's "best" epoch for the
generation metrics is the final one (generating at every epoch would multiply the cost of a run).
Generated texts are saved beside the record (`generations.jsonl`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..models import Family, family_of, load_config, load_pretrained, load_tokenizer
from ..records import atomic_write_text
from ..run_config import RunConfig
from .base import TaskSpec

MAIN_METRIC = {"e2e": "bleu", "webnlg": "bleu_all", "xsum": "rouge2"}


def _task_module(name: str):
    from . import e2e, webnlg, xsum

    return {"e2e": e2e, "webnlg": webnlg, "xsum": xsum}[name]


class NLGRunner:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.mod = _task_module(cfg.task)
        info = self.mod.TASK
        self.info = info
        self.spec = TaskSpec(
            name=info.name,
            family="nlg",
            input_columns=(),
            metric_name=MAIN_METRIC[info.name],
            hub_id=info.hub_id,
            hub_config=info.hub_config,
            train_split=info.train_split,
            eval_split=info.eval_split,
            extra_metrics=tuple(m for m in info.metrics if m != MAIN_METRIC[info.name]),
            description=info.notes,
        )
        self.model_config = load_config(cfg.model, cfg.model_options.to_dict())
        self.family: Family = family_of(self.model_config.model_type)
        self.kind = "bart" if self.family.kind == "seq2seq" else "gpt2"
        if self.kind != info.kind:
            raise ValueError(
                f"task {info.name} uses a {info.kind} model; {cfg.model!r} is a "
                f"{self.model_config.model_type} model"
            )
        self.peft_task_type = "SEQ_2_SEQ_LM" if self.kind == "bart" else "CAUSAL_LM"

    @property
    def metric_key(self) -> str:
        return self.spec.metric_name

    # ------------------------------------------------------------------ data and model
    def load_data(self):
        d = self.cfg.data
        if self.cfg.profile == "paper":
            return self.mod.load("paper")
        data_dir = Path(d.data_dir) / "nlg" / self.info.name if d.data_dir else None
        return self.mod.load("embedded", data_dir=data_dir)

    def load_model(self):
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        cls = AutoModelForSeq2SeqLM if self.kind == "bart" else AutoModelForCausalLM
        options = {**self.cfg.model_options.to_dict(), "num_hidden_layers": 0}  # never truncate generators
        model = load_pretrained(self.cfg.model, cls, options)
        tokenizer = load_tokenizer(self.cfg.model, options)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    def init_head(self, model, data) -> None:
        return None

    def modules_to_save(self, model) -> tuple[str, ...]:
        return ()

    def _lengths(self) -> tuple[int, int]:
        total = self.cfg.train.max_length
        src, tgt = self.info.max_source_tokens, self.info.max_target_tokens
        if total:  # the configured budget, split in the task's source:target proportion
            src = max(8, total * src // (src + tgt))
            tgt = max(8, total - src) if self.kind == "gpt2" else tgt
        return src, tgt

    def tokenize(self, data, tokenizer):
        from ..textgen.features import build_features

        src, tgt = self._lengths()
        train = build_features(
            tokenizer,
            self.mod.train_pairs(data[self.info.train_split]),
            kind=self.kind,
            max_source_length=src,
            max_target_length=tgt,
        )
        valid = build_features(
            tokenizer,
            self.mod.train_pairs(data[self.info.valid_split]),
            kind=self.kind,
            max_source_length=src,
            max_target_length=tgt,
        )
        if not train:
            raise ValueError(f"{self.info.name}: the training split is empty")
        return train, ({"validation": valid} if valid else {})

    def collator(self, tokenizer, model):
        from ..textgen.features import PadCollator

        return PadCollator(tokenizer.pad_token_id)

    compute_metrics = None

    def epoch_metrics(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_epoch: dict[int, dict[str, Any]] = defaultdict(lambda: {"metrics": {}})
        for h in history:
            if "eval_validation_loss" in h:
                e = by_epoch[round(h["epoch"])]
                e["step"] = h.get("step")
                e["metrics"]["validation_loss"] = h["eval_validation_loss"]
        return [
            {"epoch": ep, "step": v.get("step"), "metrics": v["metrics"], "extra_splits": {}}
            for ep, v in sorted(by_epoch.items())
        ]

    # ------------------------------------------------------------------ generation and scoring
    def final_evaluation(self, trainer, model, tokenizer, data, out: Path) -> dict[str, Any]:
        from ..textgen.generation import generate

        split = data[self.info.eval_split]
        if self.info.name == "webnlg":
            seen = self.mod.seen_categories(data[self.info.train_split])
            groups = self.mod.eval_groups(split, seen=seen)
        else:
            seen = None
            groups = self.mod.eval_groups(split)
        limit = self.cfg.generation.max_eval or 0
        if limit:
            groups = groups[:limit]
        gen = {**dict(self.info.gen), **self.cfg.generation.decoding()}
        src_len, _ = self._lengths()
        hyps = generate(
            model,
            tokenizer,
            [g.source for g in groups],
            kind=self.kind,
            batch_size=self.cfg.generation.batch_size,
            max_source_length=src_len,
            **gen,
        )
        refs = [g.references for g in groups]
        if self.info.name == "e2e":
            from ..metrics.e2e import e2e_metrics

            scores = e2e_metrics(hyps, refs)
        elif self.info.name == "webnlg":
            from ..metrics.webnlg import webnlg_metrics

            scores = webnlg_metrics(hyps, refs, [g.meta["category"] for g in groups], seen)
        else:
            from ..metrics.rouge import rouge_metrics

            scores = rouge_metrics(hyps, refs)
        lines = [
            json.dumps({"source": g.source, "hypothesis": h, "references": g.references, "meta": g.meta})
            for g, h in zip(groups, hyps, strict=False)
        ]
        atomic_write_text(out / "generations.jsonl", "\n".join(lines) + "\n")
        self.record_extra = {
            "generation": {
                "decoding": gen,
                "n_eval": len(groups),
                "file": "generations.jsonl",
                "samples": [
                    {"source": g.source, "hypothesis": h, "references": g.references[:3]}
                    for g, h in list(zip(groups, hyps, strict=False))[:3]
                ],
            }
        }
        return {k: v for k, v in scores.items()}
