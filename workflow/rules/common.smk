# Shared definitions: config validation and the small functions the rules use.
import shlex

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
# Several seeds per job (default: yes) saves the ~5 s process start-up per run on small CPU runs.
GROUP_SEEDS = bool(config.get("group_seeds", PROFILE != "paper"))
GLUE_TASKS = config["glue"]["tasks"]
GLUE_ROWS = config["glue"]["rows"]

for _row in GLUE_ROWS:
    if _row not in ROWS:
        raise ValueError(f"glue.rows: row {_row!r} is not defined under rows: ({', '.join(ROWS)})")


wildcard_constraints:
    task="[a-z0-9]+",
    row="[A-Za-z0-9_]+",
    seed="[0-9]+",


def row_method(wildcards):
    return ROWS[wildcards.row]["method"]


def row_sets(wildcards, threads):
    """--set arguments of a row: the workflow's overrides, the row's own, and the job's thread count."""
    items = [*config.get("overrides", []), *ROWS[wildcards.row].get("set", []), f"train.threads={threads}"]
    return " ".join(f"--set {shlex.quote(s)}" for s in items)


def glue_records(wildcards=None):
    return expand(GLUE_RECORD, task=GLUE_TASKS, row=GLUE_ROWS, seed=SEEDS)


def glue_seed_dir(wildcards):
    return f"{RUNS}/glue/{wildcards.task}/{wildcards.row}/seed{wildcards.seed}"


def glue_run_dir(wildcards):
    """The --out pattern of one (task, row) job; {seed} is filled in by deltalora train."""
    return GLUE_RUN_DIR.format(task=wildcards.task, row=wildcards.row)
