"""The README and docs/ are a contract: every command in them parses, every path they name exists, every
job count the README states is what a dry run gives now, and the generated parts (the record's fields,
the audit's claims) equal the code they come from.

The checks read the pages, not fixed sentences: another engineer may rewrite a section, and the test
checks whatever it then says. Dry runs (a few seconds each) are cached for the session. Runtime: 221 s
on the shared 2-core development machine under load (2026-12-06), most of it ~15 dry runs and one tiny
training run.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_pipeline import copy_workflow, workflow_env
from waiting import GUARD_S

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


# --------------------------------------------------------------------------- dry runs
@dataclass
class Job:
    rule: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    shell: str = ""


@dataclass
class DryRun:
    args: tuple[str, ...]
    returncode: int
    text: str
    jobs: list[Job]

    @property
    def total(self) -> int:
        m = re.search(r"^total\s+(\d+)\s*$", self.text, re.M)
        assert m, f"no job total in the dry run of {self.args}:\n{self.text[-2000:]}"
        return int(m.group(1))

    def records(self, rule_prefix: str = "") -> list[str]:
        """The run records (training runs) the DAG's jobs would write, of rules starting with rule_prefix."""
        return [
            o
            for j in self.jobs
            if j.rule.startswith(rule_prefix)
            for o in j.outputs
            if o.endswith("/record.json")
        ]


def parse_dry_run(text: str) -> list[Job]:
    jobs = []
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", text, re.M):
        job = Job(m.group(1))
        for line in m.group(2).splitlines():
            key, _, value = line.strip().partition(": ")
            if key in ("input", "output"):
                getattr(job, key + "s").extend(v.strip() for v in value.split(",") if v.strip())
        rest = text[m.end() :]
        shell = re.match(r"(?:\n)?Shell command: (.*)", rest)
        if shell:
            job.shell = shell.group(1)
        jobs.append(job)
    return jobs


class DryRuns:
    """`snakemake -n -p ARGS` in a private copy of the workflow, each distinct ARGS run once."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = workflow_env(workdir)

    @functools.cache  # noqa: B019 - one instance per session
    def __call__(self, *args: str) -> DryRun:
        p = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "-p", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=GUARD_S,
        )
        text = p.stdout + p.stderr
        return DryRun(args, p.returncode, text, parse_dry_run(text))


@pytest.fixture(scope="session")
def dry(tmp_path_factory) -> DryRuns:
    return DryRuns(copy_workflow(tmp_path_factory.mktemp("wf_docs")))


PAPER = ("--configfile", "workflow/config/paper.yaml")


# --------------------------------------------------------------------------- the README's numbers
def _main_job_runs(dry: DryRuns) -> int:
    return len(dry("results/glue_table.csv").records())


def _all_jobs(dry: DryRuns) -> int:
    return dry("all").total


def _all_runs(dry: DryRuns) -> int:
    return len(dry("all").records())


def _paper_jobs(dry: DryRuns) -> int:
    return dry("all", *PAPER).total


def _paper_decisive_runs(dry: DryRuns) -> int:
    return len(dry("all", *PAPER).records("decisive_train"))


# (what the README says, how to count it now): every "<N> jobs" or "<N> runs" in the README must match one
# of these patterns, so a new count cannot be stated without a dry run to check it.
README_COUNTS = [
    (r"`results/glue_table\.csv`[^|\n]*?\((\d+) runs\)", _main_job_runs),
    (r"everything[^|\n]*?: (\d+) jobs", _all_jobs),
    (r"everything[^|\n]*?\((\d+) training runs", _all_runs),
    (r"the DAG: (\d+) jobs", _paper_jobs),
    (r"(\d+) smoke jobs", lambda dry: dry("all", "--configfile", "workflow/config/default-smoke.yaml").total),
    (r"power plan asks for = (\d+) runs\)", _paper_decisive_runs),
    (r"seeds = (\d+) runs\) about", lambda dry: len(dry("all", *PAPER).records("baselines_train"))),
]


def test_every_job_count_in_the_readme_comes_from_a_dry_run(dry):
    text = (ROOT / "README.md").read_text()
    checked: set[int] = set()
    wrong = []
    for pattern, count in README_COUNTS:
        for m in re.finditer(pattern, text):
            checked.add(m.start(1))
            now = count(dry)
            if int(m.group(1)) != now:
                wrong.append(f"README says {m.group(0)!r}; a dry run now gives {now}")
    unchecked = [
        m.group(0)
        for m in re.finditer(r"\b(\d[\d,]*) (?:jobs|runs|training runs)\b", text)
        if m.start(1) not in checked
    ]
    assert not wrong, "\n".join(wrong)
    assert not unchecked, f"job counts no dry run checks (add them to README_COUNTS): {unchecked}"
    assert checked, "the README states no job count at all: are the patterns stale?"


# --------------------------------------------------------------------------- commands
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def code_blocks(text: str) -> list[str]:
    """Fenced blocks of shell (or no language); Python, YAML and others are skipped."""
    return [body for lang, body in FENCE.findall(text) if lang in ("", "bash", "sh", "shell", "console")]


COMMAND_HEADS = ("deltalora", "snakemake", "python", "python3", "pip", "export", "tensorboard")


def commands_of(page: Path) -> list[tuple[str, bool]]:
    """(command, is_fragment) of a page: lines of fenced shell blocks that start with a command
    (continuations joined, comments dropped, `&&` split), and inline code that starts with one (a
    fragment: it may name a subcommand and options without the required rest)."""
    text = page.read_text()
    out = []
    for block in code_blocks(text):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            for c in (c.strip() for c in re.split(r"&&|;", line)):
                head = c.split(" ")[0] if c else ""
                if head in COMMAND_HEADS or re.fullmatch(r"[\w./-]+\.sh", head):
                    out.append((c, False))
    for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)):
        if re.match(r"(deltalora|snakemake|python3? -m deltalora|pip install)( |$)", span):
            out.append((span, True))
    return out


ALL_COMMANDS = [(p.relative_to(ROOT).as_posix(), c, f) for p in PAGES for c, f in commands_of(p)]
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.")


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def check_deltalora(tokens: list[str], fragment: bool = False) -> list[str]:
    """A `deltalora ...` command: the parser accepts it and its --set keys exist. A fragment (inline code
    such as `deltalora train --row`) or a synopsis (`collect <table>`, `a | b`): each subcommand named
    exists and each option it names is one of that subcommand's."""
    from deltalora.cli import build_parser
    from deltalora.config import parse_set, resolve_run

    parser = build_parser()
    line = " ".join(tokens)
    complete = not fragment or "--task" in tokens
    if " | " in line or PLACEHOLDER.search(line) or not complete:
        subs = _subparsers(parser)
        problems = []
        for alt in line.split(" | "):
            words = alt.split()
            if not words:
                continue
            if words[0] not in subs:
                problems.append(f"no subcommand {words[0]!r}")
                continue
            sub, rest = subs[words[0]], words[1:]
            if rest and rest[0] in getattr(_subparsers_or_none(sub), "keys", lambda: [])():
                sub, rest = _subparsers(sub)[rest[0]], rest[1:]
            known = {o for a in sub._actions for o in a.option_strings}
            problems += [
                f"`deltalora {words[0]}` has no option {w}"
                for w in rest
                if w.startswith("--") and w.split("=")[0] not in known
            ]
        return problems
    try:
        args = parser.parse_args(tokens)
    except SystemExit as e:
        return [f"the command line parser refuses it (exit {e.code})"]
    sets = getattr(args, "set", None) or []
    problems = []
    if getattr(args, "command", None) == "train" and args.method:
        try:
            resolve_run(task=args.task, method=args.method, seed=0, profile=args.profile, sets=sets)
        except ValueError as e:
            problems.append(f"its configuration is refused: {e}")
    else:
        for s in sets:
            try:
                parse_set(s)
            except ValueError as e:
                problems.append(str(e))
    return problems


def _subparsers_or_none(parser):
    try:
        return _subparsers(parser)
    except StopIteration:
        return None


SNAKEMAKE_VALUED = {
    "--cores",
    "-c",
    "--jobs",
    "-j",
    "--resources",
    "--report",
    "--workflow-profile",
    "--profile",
}


def check_snakemake(tokens: list[str], dry: DryRuns) -> list[str]:
    """A `snakemake ...` command: its targets exist in a dry run of its config files; paths exist."""
    targets, configs, problems = [], [], []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t == "--configfile":
            i += 1
            while i < len(tokens) and not tokens[i].startswith("-"):
                configs.append(tokens[i])
                i += 1
            continue
        if t in SNAKEMAKE_VALUED:
            if t in ("--workflow-profile", "--profile") and i + 1 < len(tokens):
                if not (ROOT / tokens[i + 1]).is_dir():
                    problems.append(f"no profile directory {tokens[i + 1]}")
            i += 2
            continue
        if not t.startswith("-"):
            targets.append(t)
        i += 1
    for c in configs:
        if not (ROOT / c).is_file():
            problems.append(f"no config file {c}")
    if problems or any(PLACEHOLDER.search(t) for t in targets):  # `<target>`: a synopsis, not a target
        return problems
    run = dry(*targets, *(["--configfile", *configs] if configs else []))
    if run.returncode != 0:
        problems.append(f"its dry run fails:\n{run.text[-1500:]}")
    return problems


def check_pip(tokens: list[str]) -> list[str]:
    """`pip install ...`: the extras named exist in pyproject.toml (torch pins and URLs are not checked)."""
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    problems = []
    for t in tokens:
        m = re.fullmatch(r"\.?\[([\w,]+)\]|\.\[([\w,]+)\]|'?\.\[([\w,]+)\]'?", t.strip("\"'"))
        if m:
            named = set(next(g for g in m.groups() if g).split(","))
            problems += [f"no extra {x!r} in pyproject.toml" for x in sorted(named - extras)]
        if t == "deltalora":
            problems.append("`pip install deltalora`: there is no release on PyPI; install from a clone")
    return problems


@pytest.mark.parametrize(
    "page, command, fragment", ALL_COMMANDS, ids=[f"{p}: {c[:60]}" for p, c, _ in ALL_COMMANDS]
)
def test_every_command_in_the_docs_parses(page, command, fragment, dry):
    tokens = shlex.split(command)
    while tokens and re.fullmatch(r"\w+=\S*", tokens[0]):  # VAR=value prefixes
        tokens = tokens[1:]
    if not tokens:
        return
    if tokens[:3] in (["python", "-m", "deltalora"], ["python3", "-m", "deltalora"]):
        tokens = ["deltalora", *tokens[3:]]
    head = tokens[0]
    if head == "deltalora":
        problems = check_deltalora(tokens[1:], fragment)
    elif head == "snakemake":
        problems = check_snakemake(tokens[1:], dry)
    elif (
        head in ("pip", "python", "python3")
        and tokens[1:2] == ["install"]
        or tokens[:2] == ["pip", "install"]
    ):
        problems = check_pip(tokens[2:])
    elif head in ("python", "python3") and tokens[1:2] == ["-m"]:
        module = tokens[2]
        problems = [] if importlib.util.find_spec(module) else [f"no module {module}"]
    elif "/" in head and not head.startswith(("/", "$")):
        problems = [] if (ROOT / head).is_file() else [f"no script {head}"]
    else:
        problems = []  # another tool (export, ruff, git, ...): not this project's to check
    assert not problems, f"{page}: `{command}`:\n" + "\n".join(problems)


def test_the_command_extractor_finds_commands():
    """The checker itself: commands are found in the README, so an empty list cannot pass silently."""
    readme = [c for p, c, _ in ALL_COMMANDS if p == "README.md"]
    assert any(c.startswith("snakemake") for c in readme) and any(c.startswith("deltalora") for c in readme)
    assert check_pip(["deltalora"]) and check_pip([".[nosuchextra]"]) and not check_pip(["-e", ".[suite]"])
    assert check_deltalora(
        "train --task glue/rte --method lora --seed 0 --out o --set train.nosuchkey=1".split()
    )
    assert check_deltalora(["train", "--task", "glue/rte", "--method", "lora"])  # no --seed, --out
    assert check_deltalora(["train", "--nosuchoption"], fragment=True) and check_deltalora(["nosuchcommand"])
    assert not check_deltalora(["train", "--row"], fragment=True)


# --------------------------------------------------------------------------- paths
PATH_RE = re.compile(
    r"(?<![\w/.~$-])((?:deltalora|workflow|tests|docs|benchmarks|examples|paper_tables|profiles|\.ci)/[\w./-]*[\w/])"
)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_path_in_the_docs_exists(page):
    missing = []
    for n, line in enumerate(page.read_text().splitlines(), 1):
        for m in PATH_RE.finditer(line):
            path = m.group(1)
            after = line[m.end() : m.end() + 1]
            if after in "<{*" and after or re.search(r"[<>{}*]", path):
                continue  # a pattern, not a path
            if not (ROOT / path).exists() and not (page.parent / path).exists():
                missing.append(f"{page.name}:{n}: {path}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_every_page_of_docs_is_linked_from_the_readme_or_another_page():
    linked = set()
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+\.md)", page.read_text()):
            linked.add((page.parent / target).resolve())
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"pages of docs/ that nothing links to: {orphans}"


def test_the_metric_functions_docs_metrics_names_exist():
    """docs/metrics.md names helpers as `<module>.<name>` of deltalora.metrics; each must exist."""
    import importlib

    text = (ROOT / "docs" / "metrics.md").read_text()
    named = set(re.findall(r"`(generation_common|e2e|webnlg|rouge|glue)\.(\w+)", text))
    assert len(named) >= 5, named
    missing = [
        f"{m}.{n}"
        for m, n in sorted(named)
        if not hasattr(importlib.import_module(f"deltalora.metrics.{m}"), n)
    ]
    assert not missing, f"docs/metrics.md names functions that do not exist: {missing}"


# --------------------------------------------------------------------------- generated parts
def test_every_claim_in_the_registry_has_a_section_in_the_audit_page():
    from deltalora.audit.claims import CLAIMS, FAMILIES
    from deltalora.docs_gen import audit_page

    text = (ROOT / "docs" / "audit.md").read_text()
    assert audit_page(text) == text, "docs/audit.md is out of date: run python -m deltalora.docs_gen"
    sections = text.split("\n### ")
    for family in FAMILIES:
        section = next((s for s in sections if s.startswith(family.title)), None)
        assert section is not None, f"no section for {family.title!r} in docs/audit.md"
        for c in family.claims:
            assert f"**{c.id}.**" in section, f"claim {c.id} is not in its family's section"
    assert len(CLAIMS) == sum(len(f.claims) for f in FAMILIES)


def test_a_new_claim_family_gets_a_section():
    """The generator itself: a family the page does not have yet gets its own section."""
    from deltalora.audit.claims import FAMILIES
    from deltalora.audit.claims.common import Claim, ClaimFamily
    from deltalora.docs_gen import audit_page

    text = (ROOT / "docs" / "audit.md").read_text()
    new = ClaimFamily(
        section="99",
        title="Claim 99: a test family",
        claims=(Claim("99", "t", "w", "x"),),
        assess=lambda ev, s: [],
    )
    FAMILIES.append(new)
    try:
        page = audit_page(text)
    finally:
        FAMILIES.remove(new)
    assert "### Claim 99: a test family" in page and "**99.** t." in page
    assert page.index("Claim 99") < page.index("## Adding a claim")


def test_the_record_field_table_is_the_schema(tmp_path, monkeypatch):
    """docs/run_record.md's table is generated from deltalora.records, whose field lists are the keys a
    real record has: a tiny GLUE Delta-LoRA run (with a dev split) has every field but the NLG-only ones."""
    from deltalora.cli import main
    from deltalora.docs_gen import record_fields_page
    from deltalora.records import DEVICE_FIELDS, PROVENANCE_FIELDS, RECORD_FIELDS, REQUIRED_KEYS, read_record

    text = (ROOT / "docs" / "run_record.md").read_text()
    assert record_fields_page(text) == text, (
        "docs/run_record.md is out of date: run python -m deltalora.docs_gen"
    )
    monkeypatch.setenv("DELTALORA_DATA_DIR", str(tmp_path / "data"))
    sets = [
        "model_options.num_hidden_layers=1",
        "data.n_train=32",
        "data.n_val=16",
        "data.dev_size=8",
        "train.epochs=1",
        "train.batch_size=8",
        "hp.start_step=1",
    ]
    out = tmp_path / "run"
    args = ["train", "--task", "glue/rte", "--method", "delta_lora", "--seed", "0", "--out", str(out)]
    assert main([*args, *sum((["--set", s] for s in sets), [])]) == 0
    rec = read_record(out / "record.json")
    documented = {k for k, _, _ in RECORD_FIELDS}
    nlg_only = {k for k, when, _ in RECORD_FIELDS if when == "NLG"}
    assert set(rec) == documented - nlg_only, set(rec) ^ (documented - nlg_only)
    assert set(REQUIRED_KEYS) <= documented
    assert set(rec["provenance"]) == {k for k, _, _ in PROVENANCE_FIELDS}  # on a CPU: rss_at_start_bytes too
    cpu_device = {k for k, when, _ in DEVICE_FIELDS if when != "CUDA"}
    assert set(rec["provenance"]["device"]) == cpu_device


# ----------------------------------------------------------------- the workflow as the docs describe it
def test_rule_all_builds_every_result_the_docs_list(dry):
    """`all` = everything: every rule of the workflow (for the default config) has a job in its DAG,
    the decisive audit included."""
    run = dry("all")
    assert run.returncode == 0, run.text[-2000:]
    listed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules"],
        cwd=dry.workdir,
        env=dry.env,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
    )
    rules = {r.strip() for r in listed.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", r)}
    assert "glue_train" in rules, listed.stdout + listed.stderr
    in_all = {j.rule for j in run.jobs}
    assert rules - in_all == set(), f"rules that `all` never runs: {sorted(rules - in_all)}"
    assert "results/audit_decisive.md" in next(j for j in run.jobs if j.rule == "all").inputs
    # a smoke build runs the decisive study too, shrunk by the overlay to one task and two seeds
    smoke = dry("all", *PAPER, "workflow/config/smoke.yaml")
    assert smoke.returncode == 0, smoke.text[-2000:]
    dec = [j for j in smoke.jobs if j.rule.startswith("decisive_train")]
    assert any(j.rule == "audit_decisive" for j in smoke.jobs) and 0 < len(dec) <= 9, len(dec)


def test_every_table_rule_writes_html_and_the_report_holds_it(dry, tmp_path):
    """Each rule that writes a results/*.md also writes its .html (docs/report.md), and once built, that
    page is flagged for the report (the QLoRA table and the decisive audit included)."""
    run = dry("all")
    pages = []
    for job in run.jobs:
        for o in job.outputs:
            if o.startswith("results/") and o.endswith(".md"):
                html = o.removesuffix(".md") + ".html"
                assert html in job.outputs, f"rule {job.rule} writes {o} but not {html}"
                pages.append(html)
    assert {"results/qlora_table.html", "results/audit_decisive.html"} <= set(pages)
    (tmp_path / "wf").mkdir()
    wf = copy_workflow(tmp_path / "wf")
    for p in pages:  # as if built: the report flags what exists when the workflow is parsed
        (wf / p).parent.mkdir(parents=True, exist_ok=True)
        (wf / p).write_text("<p>built</p>")
    built = DryRuns(wf)("all")
    flagged = next(j for j in built.jobs if j.rule == "all").inputs
    assert set(pages) <= set(flagged), f"pages the report leaves out: {sorted(set(pages) - set(flagged))}"


@pytest.mark.parametrize("config", [(), PAPER], ids=["default", "paper"])
def test_every_rule_runs_the_package_through_python3_m(config, dry):
    """The rule environment (workflow/envs/deltalora.yaml) does not install the package: every rule must run
    `python3 -m deltalora ...` from the checkout, never the bare `deltalora` console script."""
    run = dry("all", *config)
    commands = [j.shell for j in run.jobs if j.shell and j.shell != "None"]  # rules without a shell
    assert len(commands) > 10, run.text[-2000:]
    bad = []
    for cmd in commands:
        for part in re.split(r"&&|;|\|\|?", cmd):
            words = [w for w in part.split() if not re.fullmatch(r"\w+=\S*", w)]
            if words and words[0] not in ("python3",) and not words[0].startswith((">", "2>")):
                bad.append(part.strip()[:120])
    assert not bad, "rule commands that do not start with python3:\n" + "\n".join(sorted(set(bad)))


# --------------------------------------------------------------------------- what users expect to find
def test_version_license_citation_and_changelog_agree():
    import deltalora

    version = PYPROJECT["project"]["version"]
    assert deltalora.__version__ == version
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[?{re.escape(version)}\]?", changelog, re.M), (
        f"CHANGELOG.md has no {version} entry"
    )
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: \"?{re.escape(version)}\"?$", citation, re.M)
    assert "2309.02411" in citation
    assert PYPROJECT["project"]["license"]["text"] == "Apache-2.0"
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    floor = re.fullmatch(r">=(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)
    assert f"Python {floor}" in (ROOT / "README.md").read_text(), f"the README does not state Python {floor}"
