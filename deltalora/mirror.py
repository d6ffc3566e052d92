"""`deltalora mirror --out DIR`: a tiny, offline Hugging Face hub for the paper profile.

Why: the paper profile loads its models and datasets by their hub ids (``FacebookAI/roberta-base``,
``nyu-mll/glue`` ...). To prove that path end to end on a machine without network (this project's CI,
an air-gapped cluster), we write a cache in the exact ``HF_HOME`` layout that a user's earlier online
run would have left behind, holding small stand-ins under the real ids. Then, with
``HF_HOME=DIR HF_HUB_OFFLINE=1``, the profile's own unchanged calls (``from_pretrained(repo_id)``,
``load_dataset(repo_id, config, revision=...)``) load them.

* Models go to ``DIR/hub/models--{org}--{name}/`` (``refs/main``, ``snapshots/<commit>/`` with
  relative links into ``blobs/``, as huggingface_hub writes them): the real model class and config
  type at a tiny size (2 layers, hidden 32), random weights in safetensors, and a byte-level BPE
  trained on the proxy text with the real special tokens, saved as ``vocab.json``, ``merges.txt`` and
  ``tokenizer.json``.
* Datasets go to ``DIR/datasets/{org}___{name}/{config}/0.0.0/<hash>/`` (Arrow files and
  ``dataset_info.json``): the layout ``datasets`` writes when it prepares a hub dataset, and the one
  it reads offline (``datasets.packaged_modules.cache``). Rows come from the embedded proxies, which
  already have the real features; the split names are the hub's.

The mirror never touches a cache it did not make. ``--out`` must be absent, an empty folder, or an
earlier mirror: a folder with :data:`~deltalora.smoke.MIRROR_MARKER` at its root, listing every file the
mirror wrote there. Anything else (a real Hugging Face cache above all) is refused by path before
anything is written, and so is an earlier mirror that holds a file the mirror did not write (a real
download into it), the by-products of reading it aside (``datasets``' ``*.lock`` and ``cache-*.arrow``
files). The new mirror is built in a sibling temporary folder, its marker written last, and then
takes the place of the old one in one atomic exchange (``renameat2(RENAME_EXCHANGE)``; two renames where
the kernel lacks it): a reader sees the old mirror or the new one, whole.

Every stand-in is marked so that no run can take it for the real thing: a model's ``config.json``
carries ``deltalora_stand_in`` and its ``README.md`` the note, a dataset's description is the note
(:func:`deltalora.smoke.stand_ins` finds them; the run's record then says it is a smoke run).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from unittest import mock

from .errors import UserError
from .smoke import MIRROR_MARKER, MIRROR_NOTE, STAND_IN_KEY

#: The hub ids the paper profile loads (deltalora/profiles/paper.yaml), and their stand-ins' kind.
MODELS: dict[str, str] = {
    "FacebookAI/roberta-base": "roberta",
    "openai-community/gpt2-medium": "gpt2",
    "facebook/bart-large": "bart",
}
GLUE_CONFIGS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")
_COMMIT = hashlib.sha1(b"deltalora-mirror-v1").hexdigest()  # the fake snapshot's commit id
_DATA_HASH = _COMMIT[:16]


def _blob_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_hub_repo(hf_home: Path, repo_id: str, files: dict[str, bytes], kind: str = "models") -> Path:
    """Write `files` as one snapshot of `repo_id` in huggingface_hub's cache layout; return the snapshot."""
    repo_dir = hf_home / "hub" / f"{kind}--{repo_id.replace('/', '--')}"
    snap = repo_dir / "snapshots" / _COMMIT
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = repo_dir / "blobs" / _blob_id(data)
        if not blob.exists():
            _atomic_bytes(blob, data)
        link = snap / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    _atomic_bytes(repo_dir / "refs" / "main", _COMMIT.encode())
    return snap


def _atomic_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ text
def proxy_texts(data: dict[tuple[str, str | None], Any]) -> list[str]:
    """The proxy text the tokenizers are trained on: every string in every mirrored dataset."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            if v:
                out.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for dd in data.values():
        for ds in dd.values():
            for row in ds:
                walk(row)
    return out


def train_bpe(
    texts: Iterable[str], specials: list[str], vocab_size: int = 600
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE (GPT-2/RoBERTa/BART's family): vocab, merges; specials first (RoBERTa's ids 0-3)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    with tempfile.TemporaryDirectory() as d:
        tok.model.save(d)
        vocab = json.loads(Path(d, "vocab.json").read_text(encoding="utf-8"))
        merges = [
            tuple(m.split(" "))
            for m in Path(d, "merges.txt").read_text(encoding="utf-8").splitlines()
            if m and not m.startswith("#version")
        ]
    return vocab, merges


def build_tokenizer(kind: str, texts: list[str]) -> Any:
    """The real tokenizer class and special tokens; the last token gets the last id, as on the hub."""
    from transformers import GPT2Tokenizer, RobertaTokenizer

    if kind == "gpt2":
        vocab, merges = train_bpe(texts, [])
        vocab["<|endoftext|>"] = len(vocab)  # GPT-2: id 50256, the last one
        return GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=1024)
    vocab, merges = train_bpe(texts, ["<s>", "<pad>", "</s>", "<unk>"])
    vocab["<mask>"] = len(vocab)  # RoBERTa/BART: <s>=0 <pad>=1 </s>=2 <unk>=3, <mask> last
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=512)


def build_model(kind: str, tok: Any, seed: int = 0) -> Any:
    """The real repository's class and config type at a tiny size, random weights."""
    import torch
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        GPT2Config,
        GPT2LMHeadModel,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    torch.manual_seed(seed)
    n = len(tok)
    mark = {STAND_IN_KEY: MIRROR_NOTE}  # kept on model.config by from_pretrained, whatever the run's options
    if kind == "roberta":
        cfg = RobertaConfig(
            vocab_size=n,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=514,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            **mark,
        )
        return RobertaForMaskedLM(cfg)
    if kind == "gpt2":
        eos = tok.convert_tokens_to_ids("<|endoftext|>")
        cfg = GPT2Config(
            vocab_size=n,
            n_embd=32,
            n_layer=2,
            n_head=2,
            n_inner=64,
            n_positions=1024,
            bos_token_id=eos,
            eos_token_id=eos,
            **mark,
        )
        return GPT2LMHeadModel(cfg)
    if kind == "bart":
        cfg = BartConfig(
            vocab_size=n,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=1024,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
            forced_bos_token_id=0,
            forced_eos_token_id=2,
            **mark,
        )
        return BartForConditionalGeneration(cfg)
    raise ValueError(f"unknown model kind {kind!r}: use roberta, gpt2 or bart")


def model_files(kind: str, texts: list[str], seed: int = 0) -> dict[str, bytes]:
    """The files of one mirrored model repository (config, safetensors, tokenizer in the real formats)."""
    tok = build_tokenizer(kind, texts)
    model = build_model(kind, tok, seed=seed)
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)
        vocab = tok.get_vocab()
        Path(d, "vocab.json").write_text(
            json.dumps(dict(sorted(vocab.items(), key=lambda kv: kv[1]))), encoding="utf-8"
        )
        merges = json.loads(Path(d, "tokenizer.json").read_text(encoding="utf-8"))["model"]["merges"]
        lines = [" ".join(m) if isinstance(m, list) else m for m in merges]
        Path(d, "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")
        Path(d, "README.md").write_text(f"{MIRROR_NOTE}\n", encoding="utf-8")
        files = {p.name: p.read_bytes() for p in Path(d).iterdir() if p.is_file()}
    if "model.safetensors" not in files:
        raise RuntimeError(f"{kind}: save_pretrained wrote no model.safetensors ({sorted(files)})")
    return files


# ------------------------------------------------------------------------------------------ data
def _all_datasets(data_dir: Path, n_train: int = 64, n_val: int = 32) -> dict[tuple[str, str | None], Any]:
    """(repo_id, config) -> DatasetDict with the hub's features and split names, from the proxies."""
    import datasets

    from deltalora.tasks import e2e, webnlg, xsum
    from deltalora.tasks.glue import load_glue
    from deltalora.tasks.textgen_proxy import E2EProxyConfig, WebNLGProxyConfig, XSumProxyConfig

    out: dict[tuple[str, str | None], Any] = {}
    for task in GLUE_CONFIGS:
        dd = load_glue(task, profile="default", data_dir=data_dir / "glue", n_train=n_train, n_val=n_val)
        splits = {}
        for name, ds in dd.items():
            splits[name] = ds
            if name != "train":  # the hub's test splits: same features, label -1 (never scored)
                test = ds.map(
                    lambda ex, v=(-1.0 if task == "stsb" else -1): {"label": v}, features=ds.features
                )
                splits[name.replace("validation", "test")] = test
        out[("nyu-mll/glue", task)] = datasets.DatasetDict(splits)
    small = dict(n_validation=8, n_test=8)
    out[("tuetschek/e2e_nlg", None)] = e2e.load_proxy(data_dir / "e2e", E2EProxyConfig(n_train=24, **small))
    wn = webnlg.load_proxy(
        data_dir / "webnlg", WebNLGProxyConfig(n_train=24, n_dev=8, n_test_seen=6, n_test_unseen=6)
    )
    # The hub's Parquet export names WebNLG's "dev" split "validation" (deltalora.tasks.webnlg.load_real).
    out[("webnlg-challenge/web_nlg", webnlg.TASK.hub_config)] = datasets.DatasetDict(
        {("validation" if k == "dev" else k): v for k, v in wn.items()}
    )
    out[("EdinburghNLP/xsum", None)] = xsum.load_proxy(
        data_dir / "xsum", XSumProxyConfig(n_train=32, **small)
    )
    return out


def write_dataset_cache(hf_home: Path, repo_id: str, config: str | None, dd: Any) -> Path:
    """One prepared dataset in `datasets`' cache layout, as `load_dataset(repo_id, config)` leaves it."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    name = repo_id.split("/")[-1]
    final = hf_home / "datasets" / repo_id.replace("/", "___") / (config or "default") / "0.0.0" / _DATA_HASH
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
    splits = datasets.SplitDict(dataset_name=name)
    features = None
    for split, ds in dd.items():
        features = ds.features if features is None else features
        if ds.features != features:
            raise ValueError(f"{repo_id}/{config}: split {split} has other features than the first split")
        with ArrowWriter(features=ds.features, path=str(tmp / f"{name}-{split}.arrow")) as w:
            w.write_table(ds.flatten_indices().data.table)
            n, nbytes = w.finalize()
        splits.add(datasets.SplitInfo(name=split, num_bytes=nbytes, num_examples=n, dataset_name=name))
    info = datasets.DatasetInfo(
        description=MIRROR_NOTE,
        features=features,
        builder_name="parquet",
        dataset_name=name,
        config_name=config or "default",
        version="0.0.0",
        splits=splits,
    )
    info.write_to_directory(str(tmp))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


class MirrorError(UserError, ValueError):
    """`--out` is not a folder the mirror may write: it holds files the mirror did not write."""


def _by_product(rel: str) -> bool:
    """Files that reading a mirror leaves in it: ``datasets``' locks and its cached ``map`` results."""
    name = rel.rsplit("/", 1)[-1]
    return name.endswith(".lock") or (
        rel.startswith("datasets/") and name.startswith("cache-") and name.endswith(".arrow")
    )


def _files(root: Path) -> list[str]:
    """Every file and link under `root`, as sorted relative POSIX paths (links are not followed)."""
    out = []
    for d, dirs, names in os.walk(root):
        rel = Path(d).relative_to(root)
        out += [(rel / n).as_posix() for n in names]
        out += [(rel / n).as_posix() for n in dirs if (Path(d) / n).is_symlink()]
    return sorted(out)


def check_out(out: str | os.PathLike[str]) -> bool:
    """Whether `out` holds an earlier mirror (False: absent or empty); MirrorError for anything else.

    Why by the marker's list of files: a real Hugging Face cache (or a real download into an earlier
    mirror) must never be overwritten or deleted, and only what the mirror wrote itself is its own.
    """
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return False
    if not out.is_dir():
        raise MirrorError(
            f"--out {out}: exists and is not a folder. Nothing was written; choose a new or empty folder"
        )
    files = _files(out)
    if not files and not any(out.iterdir()):
        return False
    marker = out / MIRROR_MARKER
    hint = "Nothing was written; choose a new or empty folder for --out"
    if not marker.is_file():
        top = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
        raise MirrorError(
            f"--out {out}: refused, this folder was not made by `deltalora mirror` (no {MIRROR_MARKER}; it "
            f"holds {', '.join(top[:5])}{' ...' if len(top) > 5 else ''}) and may be a real Hugging Face "
            f"cache. {hint} (delete by hand a mirror made before deltalora wrote {MIRROR_MARKER})"
        )
    try:
        own = set(json.loads(marker.read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MirrorError(f"--out {out}: {MIRROR_MARKER} is unreadable ({e}). {hint}") from None
    foreign = [f for f in files if f not in own and f != MIRROR_MARKER and not _by_product(f)]
    if foreign:
        raise MirrorError(
            f"--out {out}: refused, this earlier mirror now holds files the mirror did not write "
            f"({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}); replacing it would delete "
            f"them. {hint}"
        )
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2 {a} <-> {b}: {os.strerror(err)}")


def _install(new: Path, out: Path) -> None:
    """Put the complete mirror `new` at `out`: a rename, or an atomic exchange with an earlier mirror."""
    if not check_out(out):  # absent or empty: rename(2) replaces an empty folder in one step
        os.replace(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new)  # it now holds the earlier mirror
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    os.replace(out, old / "mirror")
    os.replace(new, out)
    shutil.rmtree(old)


def mirror(out: str | os.PathLike[str], *, seed: int = 0) -> dict[str, list[str]]:
    """Fill `out` (an ``HF_HOME``) with the paper profile's models and datasets; return what was written.

    Refuses (MirrorError, before writing anything) a folder that is neither new, empty nor an earlier
    mirror: see the module's docstring.
    """
    out = Path(out).resolve()
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.mirror-"))
    try:
        written = _build(build, seed=seed)
        marker = {"made_by": "deltalora mirror", "note": MIRROR_NOTE, **written, "files": _files(build)}
        (build / MIRROR_MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        check_out(out)  # again: nothing may have come into `out` while the mirror was built
        _install(build, out)
    finally:
        if build.exists():
            shutil.rmtree(build)
    return written


def _build(hf_home: Path, *, seed: int) -> dict[str, list[str]]:
    import torch

    torch.set_num_threads(1)
    import datasets

    written: dict[str, list[str]] = {"models": [], "datasets": []}
    # The proxies are read through `datasets` (json builder): keep its cache out of the mirror.
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(datasets.config, "HF_DATASETS_CACHE", Path(tmp) / "cache"),
    ):
        data = _all_datasets(Path(tmp))
        texts = proxy_texts(data)
        for repo_id, kind in MODELS.items():
            write_hub_repo(hf_home, repo_id, model_files(kind, texts, seed=seed))
            written["models"].append(repo_id)
        for (repo_id, config), dd in data.items():
            write_dataset_cache(hf_home, repo_id, config, dd)
            written["datasets"].append(f"{repo_id}:{config}" if config else repo_id)
    return written


def add_mirror_command(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    p = sub.add_parser(
        "mirror",
        help="write a tiny offline HF_HOME with stand-ins of the paper profile's models and data",
        description="Write small random stand-ins of RoBERTa-base, GPT-2 Medium, BART-large and "
        "the GLUE/E2E/WebNLG/XSum datasets under their hub ids, in the Hugging Face cache layout. "
        "Then HF_HOME=OUT HF_HUB_OFFLINE=1 runs the paper profile offline (smoke tests only).",
    )
    p.add_argument("--out", required=True, help="the folder to use as HF_HOME")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.set_defaults(func=_cmd_mirror)


def _cmd_mirror(args: Any) -> int:
    w = mirror(args.out, seed=args.seed)
    print(
        f"mirrored {len(w['models'])} models and {len(w['datasets'])} datasets into {args.out}; run the "
        f"smoke with `env HF_HOME={args.out} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 <command>` (not export: "
        "a later real run in this shell would train on the stand-ins)"
    )
    return 0
