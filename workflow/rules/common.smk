# Shared definitions: config validation and the small functions the rules use.
import json
import shlex
import subprocess

from snakemake.utils import validate

validate(config, "../config/schema.yaml")

PROFILE = config["profile"]
RUNS = config["runs_dir"]
SEEDS = [int(s) for s in config["seeds"]]
SEED_LIST = ",".join(map(str, SEEDS))
GPUS = int(config.get("gpus_per_job", 1 if PROFILE == "paper" else 0))
ROWS = config["rows"]
# Path patterns (wildcards: task, row, seed).
GLUE_RECORD = f"{RUNS}/glue/{{task}}/{{row}}/seed{{seed}}/record.json"
GLUE_RUN_DIR = f"{RUNS}/glue/{{task}}/{{row}}/seed{{{{seed}}}}"
GLUE_LOG = f"{RUNS}/logs/glue/{{task}}/{{row}}.log"
GLUE_SEED_LOG = f"{RUNS}/logs/glue/{{task}}/{{row}}/seed{{seed}}.log"
# How many GLUE runs share one process: "task" (every row and seed of a task), "row" (the seeds of a
# (task, row)) or "seed" (one run per job: long GPU runs, where a failure should cost one seed).
GLUE_GROUP = config["glue"].get("group", "seed" if PROFILE == "paper" else "task")
GLUE_TASK_LOG = f"{RUNS}/logs/glue/{{task}}.log"
AUDIT_TASK_LOG = f"{RUNS}/logs/glue/{{task}}_audit_rows.log"
GLUE_TASKS = config["glue"]["tasks"]
GLUE_ROWS = config["glue"]["rows"]

# The LoRA protocol starts these tasks from the same row's (and seed's) MNLI-trained state (docs/sources.md §6.2).
MNLI_INIT = config["glue"].get("mnli_init", [])
if MNLI_INIT and GLUE_GROUP != "seed":
    raise ValueError(f"glue.mnli_init ({MNLI_INIT}) needs glue.group: seed (each run waits for its own MNLI run); "
                     f"this config has glue.group: {GLUE_GROUP}")
AUDIT_TASKS = config["audit"]["tasks"]
AUDIT_ROWS = config["audit"]["rows"]
AUDIT_ONLY_ROWS = [r for r in AUDIT_ROWS if r not in GLUE_ROWS]
for _key, _rows in (("glue.rows", GLUE_ROWS), ("audit.rows", AUDIT_ROWS)):
    for _row in _rows:
        if _row not in ROWS:
            raise ValueError(f"{_key}: row {_row!r} is not defined under rows: ({', '.join(ROWS)})")


wildcard_constraints:
    task="cola|sst2|mrpc|qqp|stsb|mnli|qnli|rte",
    row="[A-Za-z0-9_.]+",
    seed="[0-9]+",


def row_method(wildcards):
    return ROWS[wildcards.row]["method"]


def row_items(row):
    """A row's --set items: its `hp:` mapping (hp.<key>=<JSON value>, which --set reads as YAML), then `set:`."""
    spec = ROWS[row]
    return [*(f"hp.{k}={json.dumps(v)}" for k, v in (spec.get("hp") or {}).items()), *spec.get("set", [])]


def set_args(items, threads, extra=()):
    """The one --set builder: the workflow's overrides, then `items`, the job's thread count, `extra`."""
    every = [*config.get("overrides", []), *items, f"train.threads={threads}", *extra]
    return " ".join(f"--set {shlex.quote(s)}" for s in every)


def row_sets(wildcards, threads):
    """--set arguments of a row: the workflow's overrides, the row's own, and the job's thread count."""
    return set_args(row_items(wildcards.row), threads)


def seed_sets(wildcards, threads):
    """row_sets plus the MNLI initialisation: MNLI runs save their state, glue.mnli_init tasks start from it."""
    extra = []
    if MNLI_INIT and wildcards.task == "mnli":
        extra.append("train.save_init=true")
    if wildcards.task in MNLI_INIT:
        extra.append(f"train.init_from={RUNS}/glue/mnli/{wildcards.row}/seed{wildcards.seed}/init_state")
    return set_args(row_items(wildcards.row), threads, extra)


def mnli_source(wildcards):
    """The MNLI run a glue.mnli_init task starts from (its record is written after its init_state/)."""
    if wildcards.task in MNLI_INIT:
        return GLUE_RECORD.format(task="mnli", row=wildcards.row, seed=wildcards.seed)
    return []


def glue_records(wildcards=None):
    return expand(GLUE_RECORD, task=GLUE_TASKS, row=GLUE_ROWS, seed=SEEDS)


def glue_seed_dir(wildcards):
    return f"{RUNS}/glue/{wildcards.task}/{wildcards.row}/seed{wildcards.seed}"


def glue_task_dir(wildcards):
    """--out pattern of a task job; {row} and {seed} are filled in by deltalora train."""
    return f"{RUNS}/glue/{wildcards.task}/{{row}}/seed{{seed}}"


def rows_json(rows):
    import json

    return shlex.quote(json.dumps([{"row": r, "method": ROWS[r]["method"], "set": row_items(r)}
                                   for r in rows]))


def global_sets(wildcards, threads):
    """--set arguments of a job that trains several rows (each row's own are in --rows-json)."""
    return set_args([], threads)


def glue_run_dir(wildcards):
    """The --out pattern of one (task, row) job; {seed} is filled in by deltalora train."""
    return GLUE_RUN_DIR.format(task=wildcards.task, row=wildcards.row)


# ---------------------------------------------------------------------------- ablations
import pandas as pd
from snakemake.utils import Paramspace

ABL = config["ablations"]
ABL_SEEDS = [int(s) for s in ABL["seeds"]]
ABL_SEED_LIST = ",".join(map(str, ABL_SEEDS))
ABL_RECORD = f"{RUNS}/ablations/{{study}}/{{task}}/{{method}}/{{point}}/seed{{seed}}/record.json"
ABL_RUN_DIR = f"{RUNS}/ablations/{{study}}/{{task}}/{{method}}/{{point}}/seed{{{{seed}}}}"
ABL_LOG = f"{RUNS}/logs/ablations/{{study}}/{{task}}/{{method}}/{{point}}.log"
# lambda x K grid: K is given at the paper's scale and multiplied by k_scale (the embedded profile's
# runs are ~500/4 times shorter than K=500 assumes; see deltalora/profiles/default.yaml).
LAMBDA_K = Paramspace(
    pd.DataFrame(
        [(float(lam), int(k)) for lam in ABL["lambda_k"]["lambdas"] for k in ABL["lambda_k"]["ks"]],
        columns=["lam", "K"],
    ),
    filename_params="*",
    param_sep="~",
    single_wildcard="point",
)


def abl_run_dir(wildcards):
    return ABL_RUN_DIR.format(study=wildcards.study, task=wildcards.task, method=wildcards.method,
                              point=wildcards.point)


def dropout_sets(wildcards, threads):
    p = float(wildcards.point.removeprefix("p"))
    items = [f"hp.dropout={p}", f"analysis.grad_cosine_steps={ABL['dropout']['cosine_steps']}"]
    if wildcards.method == "delta_lora" and p > 0:
        items.append("hp.allow_dropout=true")  # Algorithm 1 as written, dropout in the branch
    return set_args(items, threads)


def lambda_k_sets(wildcards, threads):
    point = LAMBDA_K.instance(wildcards)
    k = int(round(float(point["K"]) * float(ABL["lambda_k"]["k_scale"])))
    return set_args([f"hp.update_ratio={float(point['lam'])}", f"hp.start_step={k}"], threads)


def rank_sets(wildcards, threads):
    r = int(wildcards.point.removeprefix("r"))
    return set_args([f"hp.r={r}", "analysis.update_rank=true"], threads)


def ablation_records(wildcards):
    s = wildcards.study
    if s == "dropout":
        points = [f"p{p}" for p in (0.0, float(ABL["dropout"]["p"]))]
        methods = ["lora", "delta_lora"]
        tasks = ABL["dropout"]["tasks"]
    elif s == "lambda_k":
        points = list(LAMBDA_K.instance_patterns)
        methods = ["delta_lora"]
        tasks = ABL["lambda_k"]["tasks"]
    else:
        points = [f"r{r}" for r in ABL["rank"]["ranks"]]
        methods = ["lora", "delta_lora"]
        tasks = ABL["rank"]["tasks"]
    return expand(ABL_RECORD, study=s, task=tasks, method=methods, point=points, seed=ABL_SEEDS)


def audit_records(wildcards=None):
    """Every run record the audit reads: the GLUE table, the audit's own rows, the dropout ablation."""
    paths = [
        *glue_records(),
        *expand(GLUE_RECORD, task=AUDIT_TASKS, row=AUDIT_ROWS, seed=SEEDS),
        *expand(ABL_RECORD, study="dropout", task=ABL["dropout"]["tasks"], method=["lora", "delta_lora"],
                point=[f"p{p}" for p in (0.0, float(ABL["dropout"]["p"]))], seed=ABL_SEEDS),
    ]
    nlg_tasks = [t for t in ("e2e", "webnlg") if t in config["nlg"]["tasks"]]
    nlg_rows = [r for r in ("lora", "delta_lora") if r in config["nlg"]["rows"]]
    paths += expand(f"{RUNS}/nlg/{{nlg_task}}/{{row}}/seed{{seed}}/record.json", nlg_task=nlg_tasks,
                    row=nlg_rows, seed=SEEDS)  # claims 4c/4d (BLEU gains on E2E and WebNLG)
    return list(dict.fromkeys(paths))  # a row may be in both the table and the audit list


# ---------------------------------------------------------------------------- NLG
NLG = config["nlg"]
NLG_TASKS = NLG["tasks"]
NLG_ROWS = NLG["rows"]
NLG_KIND = {"e2e": "gpt2", "webnlg": "gpt2", "xsum": "bart"}
MODELS_DIR = f"{RUNS}/embedded_models"
PRETRAIN_MARKER = f"{MODELS_DIR}/{{kind}}/pretrain.json"
NLG_RECORD = f"{RUNS}/nlg/{{nlg_task}}/{{row}}/seed{{seed}}/record.json"
NLG_RUN_DIR = f"{RUNS}/nlg/{{nlg_task}}/{{row}}/seed{{{{seed}}}}"
NLG_LOG = f"{RUNS}/logs/nlg/{{nlg_task}}/{{row}}.log"
for _row in NLG_ROWS:
    if _row not in ROWS:
        raise ValueError(f"nlg.rows: row {_row!r} is not defined under rows: ({', '.join(ROWS)})")


def nlg_model_input(wildcards):
    """The default profile's NLG models are pre-trained by this workflow; the paper's come from the hub."""
    if PROFILE == "paper":
        return []
    return PRETRAIN_MARKER.format(kind=NLG_KIND[wildcards.nlg_task])


def nlg_model_arg(wildcards):
    if PROFILE == "paper":
        return ""
    return f"--model {MODELS_DIR}/{NLG_KIND[wildcards.nlg_task]}"


def nlg_run_dir(wildcards):
    return NLG_RUN_DIR.format(nlg_task=wildcards.nlg_task, row=wildcards.row)


def nlg_records(wildcards):
    return expand(NLG_RECORD, nlg_task=wildcards.nlg_task, row=NLG_ROWS, seed=SEEDS)


def plan_seeds(spec, field="decisive.seeds"):
    """A study's seed plan from the package's (tested) power analysis, by its command, run like the rules
    run theirs: Snakemake's own Python needs neither the package nor scipy."""
    cmd = ["python3", "-m", "deltalora", "plan-seeds", json.dumps(spec), "--field", field]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ValueError(f"{field}: `{shlex.join(cmd)}` failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout)


# ---------------------------------------------------------------------------- baselines (baselines.smk)
import importlib.util
from pathlib import Path


def stdlib_module(relpath):
    """A standard-library-only module of the package, loaded by its path in the checkout: Snakemake's own
    Python needs neither the package's dependencies nor the checkout on its import path to build the DAG."""
    path = Path(workflow.basedir, relpath)
    if not path.is_file():  # the workflow runs outside the checkout: the installed package's file
        found = importlib.util.find_spec("deltalora")  # locates the package without importing it
        path = Path(found.submodule_search_locations[0]).parent.joinpath(relpath)
    spec = importlib.util.spec_from_file_location(f"deltalora_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def peft_releases():
    """deltalora/methods/releases.py: which PEFT release brought each tuner (no torch or PEFT at DAG build)."""
    return stdlib_module("deltalora/methods/releases.py")


record_row = stdlib_module("deltalora/collect/baseline_rows.py").record_row


def baselines_rows_json(wildcards):
    """One process trains a (task, row) of the baselines table at every learning rate of the sweep."""
    return shlex.quote(
        json.dumps(
            [
                {
                    "row": record_row(wildcards.brow, lr),
                    "method": ROWS[wildcards.brow]["method"],
                    "set": [*row_items(wildcards.brow), f"train.lr={lr!r}"],
                }
                for lr in BL_LRS
            ]
        )
    )
