"""`deltalora` command line: the entry points the Snakemake rules call.

Errors a user can cause (a bad task, method, model, `--set` value or data file) end with exit code 2
and one clear message on stderr, never a traceback, and never a record.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import UserError  # re-exported as deltalora.cli.UserError

TASK_DESCRIPTIONS = {
    "glue/cola": "CoLA: grammatical acceptability (Matthews correlation)",
    "glue/sst2": "SST-2: binary sentiment (accuracy)",
    "glue/mrpc": "MRPC: paraphrase (accuracy; F1 recorded)",
    "glue/qqp": "QQP: duplicate questions (accuracy; F1 recorded)",
    "glue/stsb": "STS-B: similarity 0-5 (Pearson; Spearman recorded)",
    "glue/mnli": "MNLI: 3-way entailment (accuracy on validation_matched; mismatched recorded)",
    "glue/qnli": "QNLI: does the sentence answer the question (accuracy)",
    "glue/rte": "RTE: 2-way entailment (accuracy)",
    "e2e": "E2E NLG Challenge: restaurant MR -> text (BLEU, NIST, METEOR, ROUGE-L, CIDEr)",
    "webnlg": "WebNLG 2017: triples -> text (BLEU seen/unseen/all, METEOR, TER)",
    "xsum": "XSum: document -> one-sentence summary (ROUGE-1/2/L)",
}


# Commands that write tables: each output's build time and commit go to build_info.json beside it, so
# that the tables themselves carry no wall-clock stamp and rebuild byte for byte.
BUILD_COMMANDS = frozenset({"collect", "audit", "bench"})


def _user_errors() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .models import ModelError
    from .records import RecordError
    from .train import RunError

    errors: tuple[type[BaseException], ...] = (UserError, ConfigError, ModelError, RunError, RecordError)
    try:
        from .tasks.data_checks import DataError  # needs `datasets`, absent on some benchmark machines
    except ImportError:
        return errors
    return (*errors, DataError)


def _raised_by_core(e: BaseException) -> bool:
    """A ValueError raised inside deltalora.core: the method's refusal of bad input (its documented contract).

    Why: the core refuses bad input with a ValueError naming the field; the suite checks most of those
    before training (Method.check), and any the configuration cannot foresee must still reach the user
    as one message, not a traceback. A ValueError from anywhere else may be a bug and keeps its traceback.
    """
    if not isinstance(e, ValueError):
        return False
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    core = Path(__file__).resolve().parent / "core"
    return Path(tb.tb_frame.f_code.co_filename).resolve().parent == core


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(
            f"--seed {text!r}: expected an integer or a comma-separated list like 0,1,2"
        ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise UserError(f"--seed {text!r}: seeds must be non-negative integers")
    return seeds


def cmd_train(args: argparse.Namespace) -> int:
    from .startup import check_skip, skip_bitsandbytes

    if args.own_process:  # not a caller's process: `main([...])` from Python may quantize later
        config_text = Path(args.config).read_text() if args.config and Path(args.config).is_file() else ""
        skip_bitsandbytes([*(args.set or []), args.rows_json or "", config_text], args.model)
    from .config import resolve_run
    from .methods import METHODS
    from .run_config import RunConfig
    from .train import run, summarize

    if args.task not in TASK_DESCRIPTIONS:
        from .config import suggest

        raise UserError(f"--task: unknown task {args.task!r}{suggest(args.task, TASK_DESCRIPTIONS)}")
    rows = _parse_rows(args)
    for r in rows:
        if r["method"] not in METHODS:
            from .config import suggest

            raise UserError(f"--method: unknown method {r['method']!r}{suggest(r['method'], METHODS)}")
    seeds = _parse_seeds(args.seed)
    if len(seeds) > 1 and "{seed}" not in args.out:
        raise UserError("--out must contain {seed} when several seeds are given, e.g. runs/rte/seed{seed}")
    if len(rows) > 1 and "{row}" not in args.out:
        raise UserError(
            "--out must contain {row} when several rows are given, e.g. runs/rte/{row}/seed{seed}"
        )
    plan = []
    for r in rows:  # validate every configuration before training any
        for s in seeds:
            resolved = resolve_run(
                task=args.task,
                method=r["method"],
                seed=s,
                profile=args.profile,
                model=args.model,
                config_file=args.config,
                sets=[*(args.set or []), *r.get("set", [])],
            )
            cfg = RunConfig.from_dict({**resolved, "row": r["row"]})
            plan.append((cfg, Path(args.out.format(seed=s, row=r["row"]))))
    check_skip(cfg.model_options.quantize for cfg, _ in plan)
    from .devices import select_device

    select_device(args.device)
    for cfg, out in plan:
        record = run(cfg, out)
        print(summarize(record), flush=True)
    return 0


def _parse_rows(args: argparse.Namespace) -> list[dict]:
    """One row from --method/--row, or several from --rows-json (one process trains them all)."""
    if args.rows_json is None:
        if not args.method:
            raise UserError("--method is required (or --rows-json)")
        return [{"row": args.row or args.method, "method": args.method, "set": []}]
    if args.method or args.row:
        raise UserError("give either --method/--row or --rows-json, not both")
    import json

    try:
        rows = json.loads(args.rows_json)
    except json.JSONDecodeError as e:
        raise UserError(f"--rows-json: not valid JSON ({e.msg})") from None
    ok = (
        isinstance(rows, list)
        and rows
        and all(
            isinstance(r, dict)
            and isinstance(r.get("row"), str)
            and isinstance(r.get("method"), str)
            and isinstance(r.get("set", []), list)
            and all(isinstance(x, str) for x in r.get("set", []))
            and set(r) <= {"row", "method", "set"}
            for r in rows
        )
    )
    if not ok:
        raise UserError(
            '--rows-json: expected a list like [{"row": "lora_nodrop", "method": "lora", '
            '"set": ["hp.dropout=0.0"]}, ...]'
        )
    return rows


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS

    width = max(map(len, METHODS))
    for name, m in METHODS.items():
        print(f"{name:<{width}}  {m.description}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    width = max(map(len, TASK_DESCRIPTIONS))
    for name, desc in TASK_DESCRIPTIONS.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deltalora",
        description=(
            "Delta-LoRA reproduction and audit suite: train runs, build tables, audit the paper's claims."
        ),
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser(
        "train",
        help="train and evaluate one (task, model, method, seed); write DIR/record.json",
        description="Train and evaluate one configuration with transformers.Trainer (evaluation at the end "
        "of every epoch) and write DIR/record.json atomically and last. Several seeds may share one process "
        "(--seed 0,1,2 with {seed} in --out), which saves the ~5 s start-up per run.",
        epilog="Examples:\n  deltalora train --task glue/rte --model embedded:minilm --method delta_lora "
        "--seed 0 --out runs/rte\n  deltalora train --task glue/sst2 --method lora --seed 0,1,2 "
        "--out runs/sst2/seed{seed} --set train.lr=5e-4 --set hp.r=16\n\n"
        "--set sections: model, model_options.*, data.*, train.*, "
        "hp.* (method hyper-parameters; see `deltalora methods`), generation.*, analysis.*",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--task", required=True, help="glue/<name>, e2e, webnlg or xsum (see `deltalora tasks`)")
    t.add_argument(
        "--model",
        default=None,
        help=(
            "hub id, embedded:minilm|gpt2|bart, or a local directory "
            "(default: the profile's model for the task)"
        ),
    )
    t.add_argument("--method", default=None, help="a registered method (see `deltalora methods`)")
    t.add_argument("--seed", required=True, help="training seed, or a comma-separated list")
    t.add_argument("--out", required=True, help="run directory (must contain {seed} for several seeds)")
    t.add_argument(
        "--profile",
        default="default",
        choices=["default", "paper"],
        help="default: embedded proxies on CPU; paper: the paper's hub models and data",
    )
    t.add_argument("--config", default=None, help="YAML overrides with the same structure as a profile")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one value (repeatable)")
    t.add_argument(
        "--row",
        default=None,
        help="name of the table row this run belongs to (default: the method), e.g. lora_nodrop",
    )
    t.add_argument(
        "--rows-json",
        default=None,
        metavar="JSON",
        help='several rows in one process: [{"row": ..., "method": ..., "set": [...]}, ...]; '
        "--out must then contain {row}",
    )
    t.add_argument(
        "--device",
        default="auto",
        help="auto: respect CUDA_VISIBLE_DEVICES if set, else lock one free GPU (or use the CPU); "
        "cpu: force the CPU",
    )
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("methods", help="list the registered fine-tuning methods")
    m.set_defaults(func=cmd_methods)
    ts = sub.add_parser("tasks", help="list the tasks")
    ts.set_defaults(func=cmd_tasks)

    from . import cli_pipeline

    cli_pipeline.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.own_process = argv is None  # the `deltalora` command itself (console script, python -m)
    try:
        # outputs a build writes (a table, an audit); `bench memory --measurements` alone writes no table
        builds = getattr(args, "command", None) in BUILD_COMMANDS and getattr(args, "out", None) is not None
        if builds:
            from .collect import build_info

            build_info.check(args.out)
        rc = args.func(args)
        if builds and rc == 0:
            what = getattr(args, "table", None) or getattr(args, "bench", None) or ""
            build_info.note(args.out, f"deltalora {args.command} {what}".rstrip())
        return rc
    except KeyboardInterrupt:
        print("deltalora: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        # `pip install -e .` is the method only; this command is the reproduction suite
        if not (e.name or "").startswith("deltalora"):
            print(
                f"deltalora: error: this command needs the suite's packages (missing: {e.name}); "
                "install them from the repository's clone with: pip install -e '.[suite]'",
                file=sys.stderr,
            )
            return 2
        raise
    except Exception as e:  # noqa: BLE001 - sorted below into user errors and bugs
        from .methods.releases import MethodUnavailable
        from .train import DivergenceError

        if isinstance(e, DivergenceError):
            print(f"deltalora: error: {e}", file=sys.stderr)
            return 3
        if isinstance(e, MethodUnavailable):  # the installed PEFT predates the row's tuner: not an error
            print(f"deltalora: {e}", file=sys.stderr)
            return 4
        if isinstance(e, _user_errors()) or _raised_by_core(e):
            print(f"deltalora: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
