"""Task runners: the task-specific half of one run (data, model head, tokenization, metrics).

`deltalora.train.run` is task-agnostic; it asks the runner of the task family for everything that
differs between GLUE classification and NLG generation.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..models import Family, family_of, load_config, load_pretrained, load_tokenizer
from ..run_config import RunConfig
from .base import TaskSpec
from .data_checks import DataError
from .dev_split import DEV_SPLIT

_DATA_CACHE: dict = {}


class GlueRunner:
    """GLUE: sequence classification (regression for STS-B), scored with the LoRA conventions."""

    peft_task_type = "SEQ_CLS"

    def __init__(self, cfg: RunConfig):
        from .glue import get_glue_task

        self.cfg = cfg
        self.spec: TaskSpec = get_glue_task(cfg.task.split("/", 1)[1])
        self.model_config = load_config(cfg.model, cfg.model_options.to_dict())
        self.family: Family = family_of(self.model_config.model_type)
        if self.family.kind != "encoder":
            raise ValueError(f"model {cfg.model!r} is a {self.family.kind} model; GLUE needs an encoder")

    @property
    def metric_key(self) -> str:
        return self.spec.metric_name

    def load_data(self):
        key = (self.cfg.profile, self.spec.name, repr(sorted(self.cfg.data.to_dict().items())))
        if key not in _DATA_CACHE:  # several runs of one process (seeds, rows) share the data
            _DATA_CACHE[key] = self._load_data()
        return _DATA_CACHE[key]

    def majority(self, data) -> float:
        """The majority-class baseline of this data (train-set majority scored on the scored split)."""
        from ..metrics.glue import majority_baseline

        return majority_baseline(
            self.spec.name,
            list(data[self.spec.train_split][self.spec.label_column]),
            list(data[self.spec.eval_split][self.spec.label_column]),
        )

    def _load_data(self):
        from .glue import load_glue

        d = self.cfg.data
        if d.files:  # user-supplied JSON Lines files in GLUE's schema, validated on load
            from .glue import load_glue_files

            missing = [s for s in self.spec.splits if s not in d.files]
            if missing:
                raise DataError(f"data.files: task {self.spec.name} needs files for splits {missing}")
            return load_glue_files(self.spec.name, {s: d.files[s] for s in self.spec.splits})
        return load_glue(
            self.spec.name,
            profile=self.cfg.profile,
            data_dir=d.data_dir,
            n_train=d.n_train or None,
            n_val=d.n_val or None,
            seed=d.seed,
            dev_size=d.dev_size,
            dev_max=d.dev_max,
        )

    def load_model(self):
        from transformers import AutoModelForSequenceClassification

        kw: dict[str, Any] = {"num_labels": self.spec.num_labels}
        if self.spec.label_names:
            kw["id2label"] = dict(enumerate(self.spec.label_names))
            kw["label2id"] = {n: i for i, n in enumerate(self.spec.label_names)}
        else:
            kw["problem_type"] = "regression"
        auto = AutoModelForSequenceClassification
        if self.cfg.model_options.pooling == "mean":
            if self.model_config.model_type != "bert":
                raise ValueError(
                    f"model_options.pooling=mean is implemented for BERT models; {self.cfg.model!r} "
                    f"is {self.model_config.model_type!r} (use pooling: cls)"
                )
            from ..heads import BertMeanPoolForSequenceClassification as auto
        options = self.cfg.model_options.to_dict()
        model = load_pretrained(self.cfg.model, auto, options, **kw)
        self._reset_head(model, self.cfg.seed)
        tokenizer = load_tokenizer(self.cfg.model, options)
        return model, tokenizer

    @staticmethod
    def _reset_head(model, seed: int) -> None:
        """Initialise the (new, task-specific) classification head from the run's seed.

        from_pretrained draws it once; the in-process model cache hands out copies, so each run redraws
        it here (N(0, initializer_range), zero bias: what transformers does for a missing Linear) to keep
        a run's result a function of its own seed, whichever runs shared the process before it.
        """
        import torch

        head = next((getattr(model, n) for n in ("classifier", "score") if hasattr(model, n)), None)
        if head is None:
            return
        std = getattr(model.config, "initializer_range", 0.02)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        with torch.no_grad():
            for m in head.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                    if m.bias is not None:
                        m.bias.zero_()

    def init_head(self, model, data) -> None:
        """Start a regression head's bias at the mean training label (train.regression_bias_init).

        With a few dozen steps, a zero-initialised STS-B head spends the run learning the label mean
        (Pearson stays near 20 on the proxy); starting there lets the run learn the similarity.
        """
        if not (self.spec.is_regression and self.cfg.train.regression_bias_init):
            return
        import torch

        labels = torch.tensor(data[self.spec.train_split][self.spec.label_column], dtype=torch.float64)
        head = getattr(model, "classifier", None)
        head = getattr(head, "out_proj", head)  # RoBERTa's head ends in out_proj
        if head is None or getattr(head, "bias", None) is None:
            raise ValueError("train.regression_bias_init: the model has no classifier bias to initialise")
        with torch.no_grad():
            head.bias.fill_(float(labels.mean()))

    def modules_to_save(self, model) -> tuple[str, ...]:
        for name in ("classifier", "score"):
            if hasattr(model, name):
                return (name,)
        return ()

    def tokenize(self, data, tokenizer):
        max_len = self.cfg.train.max_length or self.spec.max_length
        cols = list(self.spec.input_columns)

        def encode(batch):
            enc = tokenizer(*[batch[c] for c in cols], truncation=True, max_length=max_len)
            enc["labels"] = batch["label"]
            return enc

        def prep(split):
            # new_fingerprint: without one, `datasets` dill-hashes `encode` and the tokenizer it holds to
            # name a cache file that keep_in_memory never writes (1 s of a 10 s smoke-size run, measured
            # 2026-12-06 with cProfile); the name only has to be unique among this process's datasets.
            ds = data[split]
            return ds.map(
                encode,
                batched=True,
                remove_columns=ds.column_names,
                keep_in_memory=True,
                desc=None,
                new_fingerprint=f"deltalora-encoded-{split}-{max_len}",
            )

        train = prep(self.spec.train_split)
        # the dev split (carved from train, deltalora/tasks/dev_split.py) is evaluated beside validation
        self.eval_names = (*self.spec.eval_splits, *((DEV_SPLIT,) if DEV_SPLIT in data else ()))
        evals = {split: prep(split) for split in self.eval_names}
        return train, evals

    def collator(self, tokenizer, model):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        from ..metrics.glue import glue_metrics

        preds, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(preds, tuple):
            preds = preds[0]
        return glue_metrics(self.spec.name, preds, labels)

    def epoch_metrics(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per-epoch validation metrics from the Trainer's log history, scored split first."""
        by_epoch: dict[int, dict[str, Any]] = defaultdict(lambda: {"metrics": {}, "extra_splits": {}})
        main = self.spec.eval_split
        extra = tuple(s for s in getattr(self, "eval_names", self.spec.eval_splits) if s != main)
        for h in history:
            if "epoch" not in h:
                continue
            for key, value in h.items():
                for split in (main, *extra):
                    prefix = f"eval_{split}_"
                    if key.startswith(prefix):
                        e = by_epoch[round(h["epoch"])]
                        e["step"] = h.get("step")
                        name = key[len(prefix) :]
                        if name in ("runtime", "samples_per_second", "steps_per_second"):
                            continue
                        target = e["metrics"] if split == main else e["extra_splits"].setdefault(split, {})
                        target[name] = value
        return [
            {"epoch": ep, "step": v.get("step"), "metrics": v["metrics"], "extra_splits": v["extra_splits"]}
            for ep, v in sorted(by_epoch.items())
            if v["metrics"]
        ]

    def final_evaluation(self, trainer, model, tokenizer, data, out: Path) -> dict[str, float] | None:
        self.record_extra = {"majority_baseline": self.majority(data)}
        if DEV_SPLIT in data:  # which examples selection was made on: the same for every method and seed
            from .dev_split import fingerprint

            self.record_extra["dev_split"] = {
                "n": len(data[DEV_SPLIT]),
                "sha256": fingerprint(data[DEV_SPLIT]),
            }
        return None


def get_runner(cfg: RunConfig):
    task = cfg.task
    if task.startswith("glue/"):
        return GlueRunner(cfg)
    if task in ("e2e", "webnlg", "xsum"):
        from .textgen_runner import NLGRunner

        return NLGRunner(cfg)
    raise ValueError(f"unknown task {task!r}; see `deltalora tasks`")
