"""`deltalora collect ...` and the other pipeline sub-commands (thin shells over the package)."""

from __future__ import annotations

import argparse


def _collect_glue(args: argparse.Namespace) -> int:
    from .collect import collect_glue

    out = collect_glue(
        args.records,
        args.out,
        profile=args.profile,
        paper_csv=args.paper,
        rows=args.rows.split(",") if args.rows else None,
        plots_dir=args.plots,
    )
    print(f"wrote {out} (+ .md, .tex)")
    return 0


def _collect_ablation(args: argparse.Namespace) -> int:
    from .collect import ablations

    fn = {
        "dropout": ablations.collect_dropout,
        "lambda-k": ablations.collect_lambda_k,
        "rank": ablations.collect_rank,
    }[args.table]
    out = fn(args.records, args.out, profile=args.profile, plots_dir=args.plots)
    print(f"wrote {out} (+ .md)")
    return 0


def _collect_nlg(args: argparse.Namespace) -> int:
    from .collect.generation_tables import collect_nlg

    out = collect_nlg(
        args.table,
        args.records,
        args.out,
        profile=args.profile,
        paper_csv=args.paper,
        rows=args.rows.split(",") if args.rows else None,
        plots_dir=args.plots,
    )
    print(f"wrote {out} (+ .md)")
    return 0


def _collect_qlora(args: argparse.Namespace) -> int:
    from .collect.qlora import collect_qlora

    out = collect_qlora(
        args.records,
        args.out,
        profile=args.profile,
        rows=args.rows.split(","),
        quantize=args.quantize,
        plots_dir=args.plots,
    )
    print(f"wrote {out} (+ .md)")
    return 0


def _common_collect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("records", nargs="+", help="run records (record.json)")
    p.add_argument("--out", required=True, help="CSV path; .md is written beside it")
    p.add_argument(
        "--profile",
        required=True,
        choices=["default", "paper"],
        help="records of another profile are refused",
    )
    p.add_argument("--plots", default=None, help="folder for the plots (PNG + PDF)")


def _pretrain(args: argparse.Namespace) -> int:
    from .models import embedded_dir
    from .textgen.pretrain import pretrain

    out = args.out or str(embedded_dir() / args.kind)
    prov = pretrain(args.kind, out, steps=args.steps, seed=args.seed, num_threads=args.threads or None)
    print(
        f"pre-trained embedded {args.kind} in {prov['wall_time_s']:.0f}s (final loss "
        f"{prov.get('final_loss', float('nan')):.3f}) -> {out}"
    )
    return 0


def _smoke_without_records(args: argparse.Namespace) -> None:
    """Label a table that reads no run record: smoke when the workflow says so (``--smoke``), or when
    a paper-profile build reads a `deltalora mirror` cache (its jobs trained on stand-ins)."""
    from . import smoke

    stand_in = args.profile == "paper" and smoke.cache_is_mirror()
    if args.smoke or stand_in:
        smoke.activate(stand_in=stand_in)


def _collect_runtime(args: argparse.Namespace) -> int:
    from .collect.runtime import collect_runtime

    _smoke_without_records(args)  # benchmark files carry no record to say so
    out = collect_runtime(args.benchmarks, args.out, root=args.root, profile=args.profile)
    print(f"wrote {out} (+ .md)")
    return 0


def _plan_seeds(args: argparse.Namespace) -> int:
    import json

    from .audit.power import plan_seeds
    from .errors import UserError

    try:
        spec = json.loads(args.spec)
        plan = plan_seeds(spec, field=args.field)
    except json.JSONDecodeError as e:
        raise UserError(f"{args.field}: not JSON ({e}): {args.spec!r}") from None
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
    print(json.dumps({"seeds": plan.seeds, "needed": plan.needed, "text": plan.text}))
    return 0


def add_commands(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    c = sub.add_parser("collect", help="build a table (CSV + Markdown + LaTeX) and plots from run records")
    csub = c.add_subparsers(dest="table", metavar="TABLE")
    csub.required = True
    g = csub.add_parser("glue", help="the GLUE table: rows x 8 tasks + average, median over seeds with std")
    g.add_argument("records", nargs="+", help="run records (record.json)")
    g.add_argument("--out", required=True, help="CSV path; .md and .tex are written beside it")
    g.add_argument(
        "--profile",
        required=True,
        choices=["default", "paper"],
        help="records of another profile are refused",
    )
    g.add_argument("--paper", default=None, help="paper_tables CSV to show beside ours")
    g.add_argument("--rows", default=None, help="comma-separated row order (default: order of appearance)")
    g.add_argument("--plots", default=None, help="folder for the plots (PNG + PDF)")
    g.set_defaults(func=_collect_glue)
    for name, help_ in (
        ("dropout", "dropout ablation: LoRA and Delta-LoRA with/without dropout, plus gradient cosines"),
        ("lambda-k", "lambda x K ablation: grid of Delta-LoRA's update ratio and start step"),
        ("rank", "rank ablation: LoRA and Delta-LoRA at several r, with measured update ranks"),
    ):
        a = csub.add_parser(name, help=help_)
        _common_collect_args(a)
        a.set_defaults(func=_collect_ablation)
    for name in ("e2e", "webnlg", "xsum"):
        a = csub.add_parser(
            name, help=f"the {name} table: rows x metrics, median over seeds with std, paper units"
        )
        _common_collect_args(a)
        a.add_argument("--paper", default=None, help="paper_tables CSV to show beside ours")
        a.add_argument("--rows", default=None, help="comma-separated row order")
        a.set_defaults(func=_collect_nlg)
    r = csub.add_parser(
        "runtime", help="run time and peak memory of the training jobs (Snakemake benchmark files)"
    )
    r.add_argument("benchmarks", nargs="+", help="benchmark TSV files")
    r.add_argument(
        "--root",
        default=None,
        help="folder the job names are relative to (default: the files' "
        "common folder, <runs_dir>/benchmarks for the pipeline's)",
    )
    r.add_argument("--out", required=True, help="CSV path; .md beside it")
    r.add_argument("--profile", required=True, choices=["default", "paper"])
    r.add_argument(
        "--smoke", action="store_true", help="a smoke run: the title says it is not the paper's numbers"
    )
    r.set_defaults(func=_collect_runtime)
    q = csub.add_parser("qlora", help="LoRA and Delta-LoRA on a quantized (QLoRA) base beside the fp32 base")
    _common_collect_args(q)
    q.add_argument("--rows", default="lora,delta_lora", help="row names without the _fp32/_<quantize> suffix")
    q.add_argument("--quantize", default="nf4", choices=["nf4", "nf4-dq", "fp4", "fp4-dq", "int8"])
    q.set_defaults(func=_collect_qlora)
    mt = csub.add_parser(
        "memory", help="the memory/speed table and plot from `deltalora bench memory --measurements`"
    )
    mt.add_argument("measurements", help="JSON file written by deltalora bench memory --measurements")
    mt.add_argument("--out", required=True, help="CSV path; .md beside it")
    mt.add_argument("--profile", required=True, choices=["default", "paper"])
    mt.add_argument("--plots", default=None, help="folder for the bar plot")
    mt.add_argument(
        "--smoke", action="store_true", help="a smoke run: titles say it is not the paper's numbers"
    )
    mt.set_defaults(func=_collect_memory)
    add_bench(sub)
    p = sub.add_parser(
        "pretrain",
        help="pre-train the embedded GPT-2 or BART (no pretrained weights exist offline)",
        description="Train a byte-level BPE tokenizer and a small GPT-2/BART on a generated corpus "
        "disjoint from the NLG proxies' evaluation data; write it atomically (safetensors).",
    )
    p.add_argument("--kind", required=True, choices=["gpt2", "bart"])
    p.add_argument("--out", default=None, help="folder (default: where embedded:<kind> resolves)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the kind's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_pretrain)
    s = sub.add_parser(
        "plan-seeds",
        help="the decisive study's seeds: a list as given, or the count a power plan asks for (JSON out)",
        description="Print {seeds, needed, text} as JSON for a seed list or a power plan "
        "{paired_sd, effect, power, alpha, test, max} (deltalora.audit.power.plan_seeds). The workflow "
        "calls it to lay out the decisive study, so Snakemake itself needs neither scipy nor the package.",
    )
    s.add_argument("spec", help='JSON: [0, 1, 2] or {"paired_sd": 1.66, "effect": 1, "max": 20}')
    s.add_argument("--field", default="decisive.seeds", help="the config field named in error messages")
    s.set_defaults(func=_plan_seeds)
    from .audit.command import add_audit_command

    add_audit_command(sub)
    from .mirror import add_mirror_command

    add_mirror_command(sub)

    from .report_html import add_html_command

    add_html_command(sub)


def _bench_memory(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .benchmark import check_device, measure
    from .collect.memory import write_measurements
    from .errors import UserError

    if not args.out and not args.measurements:
        raise UserError("bench memory: give --measurements (the measured rows) and/or --out (the table)")
    try:
        check_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    # The measured rows go to disk first (and again with the bf16 result): whatever fails afterwards,
    # the table and the plot are rebuilt from them by `deltalora collect memory` without re-measuring.
    raw = args.measurements or str(Path(args.out).with_suffix(".measurements.json"))
    rows = measure(
        args.models.split(","),
        device=args.device,
        dtypes=args.dtypes.split(","),
        rounds=args.rounds,
        batch=args.batch,
        seq=args.seq,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
        qlora_models=tuple(m for m in args.qlora_models.split(",") if m),
    )
    write_measurements(raw, rows)
    bf16 = None
    if args.bf16_steps:
        from .benchmark import bf16_rounding_loss

        bf16 = bf16_rounding_loss(args.bf16_model, device=args.device, steps=args.bf16_steps)
        write_measurements(raw, rows, bf16)
    print(f"wrote {raw}")
    if args.out:
        _memory_table(raw, args)
    return 0


def _memory_table(measurements: str, args: argparse.Namespace) -> None:
    from .collect.memory import read_measurements, write_memory_table

    _smoke_without_records(args)  # benchmark files carry no record to say so
    rows, bf16 = read_measurements(measurements)
    write_memory_table(rows, args.out, profile=args.profile, bf16=bf16, plots_dir=args.plots)
    print(f"wrote {args.out} (+ .md)")


def _collect_memory(args: argparse.Namespace) -> int:
    _memory_table(args.measurements, args)
    return 0


def add_bench(sub) -> None:  # noqa: ANN001
    b = sub.add_parser("bench", help="memory and speed measurements")
    bsub = b.add_subparsers(dest="bench", metavar="WHAT")
    bsub.required = True
    m = bsub.add_parser(
        "memory", help="peak memory and step time: full FT, LoRA, Delta-LoRA (inplace, folded, naive)"
    )
    m.add_argument(
        "--models",
        default="minilm,gpt2m-4l",
        help="comma list: tiny, minilm, gpt2m-4l, roberta-base, gpt2-medium",
    )
    m.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    m.add_argument("--dtypes", default="fp32", help="comma list: fp32, bf16")
    m.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (CPU: one fresh process per measurement)"
    )
    m.add_argument("--batch", type=int, default=16)
    m.add_argument("--seq", type=int, default=64)
    m.add_argument("--steps", type=int, default=8)
    m.add_argument("--warmup", type=int, default=2)
    m.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    m.add_argument(
        "--bf16-steps", type=int, default=20, help="steps of the bf16 rounding-loss measurement (0: skip)"
    )
    m.add_argument("--bf16-model", default="minilm")
    m.add_argument(
        "--qlora-models",
        default="",
        help="comma list: models also measured on a 4-bit NF4 base "
        "(QLoRA and Delta-LoRA folded; needs bitsandbytes), with ratios to QLoRA",
    )
    m.add_argument("--profile", default="default", choices=["default", "paper"])
    m.add_argument(
        "--smoke", action="store_true", help="a smoke run: titles say it is not the paper's numbers"
    )
    m.add_argument(
        "--measurements",
        default=None,
        help="JSON file of the measured rows, written before any table "
        "(default with --out: <out>.measurements.json); `deltalora collect memory` makes the table from it",
    )
    m.add_argument("--out", default=None, help="table CSV path; .md beside it")
    m.add_argument("--plots", default=None, help="folder for the bar plot")
    m.set_defaults(func=_bench_memory)
