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

Every file is written into a temporary folder first and moved into place (the cache is whole or absent).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from unittest import mock

#: The hub ids the paper profile loads (deltalora/profiles/paper.yaml), and their stand-ins' kind.
MODELS: dict[str, str] = {
    "FacebookAI/roberta-base": "roberta",
    "openai-community/gpt2-medium": "gpt2",
    "facebook/bart-large": "bart",
}
GLUE_CONFIGS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")
#: A marker inside every mirrored file tree: a mirror is never mistaken for the real hub's content.
MIRROR_NOTE = "deltalora mirror: tiny random stand-in, not the real model or data"
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
    """A byte-level BPE (GPT-2/RoBERTa/BART's family): vocab and merges, specials first (RoBERTa's ids 0-3)."""
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
    """The real tokenizer class with the real special tokens; the last token gets the last id as on the hub."""
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


def mirror(out: str | os.PathLike[str], *, seed: int = 0) -> dict[str, list[str]]:
    """Fill `out` (an ``HF_HOME``) with the paper profile's models and datasets; return what was written."""
    import torch

    torch.set_num_threads(1)
    hf_home = Path(out).resolve()
    hf_home.mkdir(parents=True, exist_ok=True)
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
        f"mirrored {len(w['models'])} models and {len(w['datasets'])} datasets into {args.out} "
        f"(use HF_HOME={args.out} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1)"
    )
    return 0
