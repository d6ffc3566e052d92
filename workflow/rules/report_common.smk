# `snakemake --cores all --report results/report.html`: one self-contained page with every result that
# exists, grouped by category, each with an RST caption (workflow/report/*.rst).
#
# Snakemake (9.x) stops the report with "File ... marked for report but does not exist" when a flagged
# file has not been built yet. So the flags live here, on the inputs of `rule all` (concrete paths,
# no wildcards), and a file is flagged only when it exists when the workflow is parsed: after a partial
# build, the report holds what exists and does not fail. Flags change nothing when building.
import os
from types import SimpleNamespace

REPORT_DIR = "workflow/report"  # captions, relative to the Snakefile that defines rule all


def _item(path, category, subcategory, caption):
    return (path, category, subcategory, f"{REPORT_DIR}/{caption}.rst")


def _with_csv(items):
    """Each table page (.html) followed by its CSV: the data, offered as a download by the report."""
    out = []
    for path, cat, sub, cap in items:
        out.append((path, cat, sub, cap))
        if path.endswith(".html"):
            out.append((path.removesuffix(".html") + ".csv", cat, sub, f"{REPORT_DIR}/table_csv.rst"))
    return out


def report_catalogue():
    """Every result the report can hold, for this config: (path, category, subcategory, caption)."""
    items = [
        _item("results/glue_table.html", "GLUE", "Table", "glue_table"),
        _item("results/plots/glue_scores.png", "GLUE", "Figures", "glue_scores"),
        _item("results/plots/glue_training_curves.png", "GLUE", "Figures", "glue_training_curves"),
    ]
    for t in NLG_TASKS:
        name = {"e2e": "E2E", "webnlg": "WebNLG", "xsum": "XSum"}[t]
        items += [
            _item(f"results/{t}_table.html", "NLG", name, "nlg_table"),
            _item(f"results/plots/{t}_scores.png", "NLG", name, "nlg_scores"),
        ]
    items += [
        _item("results/ablation_dropout.html", "Ablations", "Dropout", "ablation_dropout"),
        _item("results/plots/ablation_dropout_scores.png", "Ablations", "Dropout", "ablation_dropout"),
        _item("results/plots/ablation_dropout_cosines.png", "Ablations", "Dropout", "ablation_dropout_cosines"),
        _item("results/ablation_lambda_k.html", "Ablations", "Lambda x K", "ablation_lambda_k"),
        _item("results/plots/ablation_lambda_k_heatmap.png", "Ablations", "Lambda x K", "ablation_lambda_k"),
        _item("results/ablation_rank.html", "Ablations", "Rank", "ablation_rank"),
        _item("results/plots/ablation_rank.png", "Ablations", "Rank", "ablation_rank"),
        _item("results/memory_table.html", "Memory and speed", "Memory and step time", "memory_table"),
        _item("results/plots/memory_speed.png", "Memory and speed", "Memory and step time", "memory_table"),
        _item("results/runtime_table.html", "Memory and speed", "Pipeline run time", "runtime_table"),
        _item("results/audit.html", "Audit", "Verdicts", "audit"),
        _item("results/plots/audit/audit_forest.png", "Audit", "Verdicts", "audit_forest"),
    ]
    if QLORA:  # workflow/rules/qlora.smk
        items += [
            _item("results/qlora_table.html", "QLoRA", "Table", "qlora_table"),
            _item("results/plots/qlora_scores.png", "QLoRA", "Figures", "qlora_table"),
        ]
    if BL:  # workflow/rules/baselines.smk
        items += [
            _item("results/baselines_table.html", "Modern baselines", "Table", "baselines_table"),
            _item("results/plots/baselines_rank.png", "Modern baselines", "Figures", "baselines_table"),
        ]
    if DEC:  # workflow/rules/decisive.smk
        items.append(_item("results/audit_decisive.html", "Audit", "Decisive study", "audit_decisive"))
    for name in ("rank_spectra", "memory", "dropout_cosines", "dropout_scores", "baselines", "controls",
                 "engines"):
        items.append(_item(f"results/plots/audit/audit_{name}.png", "Audit", "Evidence", "audit_plot"))
    return _with_csv(items)


def report_inputs():
    """The catalogue's files that exist now, flagged for the report."""
    return [report(path, category=cat, subcategory=sub, caption=cap)
            for path, cat, sub, cap in report_catalogue() if os.path.exists(path)]


BENCH = f"{RUNS}/benchmarks"


def training_benchmarks(wildcards=None):
    """The benchmark file of every training job of this config (see the rules' `benchmark:`)."""
    pairs = [(t, r) for t in GLUE_TASKS for r in GLUE_ROWS]
    pairs += [(t, r) for t in AUDIT_TASKS for r in AUDIT_ROWS if (t, r) not in pairs]
    if GLUE_GROUP == "task":
        paths = expand(f"{BENCH}/glue/{{task}}.tsv", task=GLUE_TASKS)
        if AUDIT_ONLY_ROWS:
            paths += expand(f"{BENCH}/glue/{{task}}_audit_rows.tsv", task=AUDIT_TASKS)
    elif GLUE_GROUP == "row":
        paths = [f"{BENCH}/glue/{t}/{r}.tsv" for t, r in pairs]
    else:
        paths = [f"{BENCH}/glue/{t}/{r}/seed{s}.tsv" for t, r in pairs for s in SEEDS]
    paths += expand(f"{BENCH}/nlg/{{t}}/{{r}}.tsv", t=NLG_TASKS, r=NLG_ROWS)
    if PROFILE != "paper":
        paths += expand(f"{BENCH}/pretrain_{{k}}.tsv", k=sorted({NLG_KIND[t] for t in NLG_TASKS}))
    for study in ("dropout", "lambda_k", "rank"):
        for rec in ablation_records(SimpleNamespace(study=study)):
            run = os.path.dirname(os.path.dirname(os.path.relpath(rec, f"{RUNS}/ablations")))
            paths.append(f"{BENCH}/ablations/{run}.tsv")
    return list(dict.fromkeys(paths))
