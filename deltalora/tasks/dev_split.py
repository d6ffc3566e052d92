"""The dev split: a held-out part of *train* on which every selection is made.

Why: the audit picks things (a run's best epoch, the best learning rate of a sweep, the best LoRA
control). Picking on the validation split and then reporting on the same split favours whatever was
picked. So every GLUE task gets a ``dev`` split carved from its training data; choices are made on
``dev`` and comparisons are reported on ``validation``.

The split depends only on the task, the data seed and the sizes: never on the method, the row or the
training seed, so every compared run sees the same dev examples and trains on the same remaining
examples. It is disjoint from validation because it comes from a different source split (real GLUE:
``train`` vs ``validation``; proxies: the train generator and vocabulary, see ``glue_proxy``).

* Proxies (``profile=default``): the generator draws rows i.i.d., so the proxy is generated with
  ``n_train + n_dev`` training rows and the **last** ``n_dev`` become dev. The training rows are then
  exactly the rows a build without a dev split trains on (the generator is prefix-stable).
* Real data (``profile=paper``): a permutation of the train indices drawn with
  ``numpy.random.default_rng(data seed)``; its first ``n_dev`` indices are dev, the rest (in their
  original order) stay train. Done before any ``n_train`` subsample, so the subsample never reaches dev.

Size: ``data.dev_size`` is a count when >= 1 and a fraction of the training split when < 1 (0: no
dev split); ``data.dev_max`` caps it (0: no cap).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets

DEV_SPLIT = "dev"


def dev_count(n_train: int, dev_size: float, dev_max: int = 0) -> int:
    """Number of dev examples for a training split of ``n_train`` examples.

    dev_size >= 1: that many; 0 < dev_size < 1: that fraction (rounded, at least 1); 0: none.
    The result is capped by ``dev_max`` (0: no cap) and must leave at least one training example.
    """
    if (
        not isinstance(dev_size, (int, float))
        or isinstance(dev_size, bool)
        or dev_size < 0
        or not math.isfinite(dev_size)
    ):
        raise ValueError(
            f"data.dev_size must be a number >= 0 (a count, or a fraction < 1), got {dev_size!r}"
        )
    if dev_size >= 1 and dev_size != int(dev_size):
        raise ValueError(f"data.dev_size >= 1 is a count and must be a whole number, got {dev_size!r}")
    if not isinstance(dev_max, int) or dev_max < 0:
        raise ValueError(f"data.dev_max must be an integer >= 0 (0: no cap), got {dev_max!r}")
    if dev_size == 0:
        return 0
    n = int(dev_size) if dev_size >= 1 else max(1, round(dev_size * n_train))
    if dev_max:
        n = min(n, dev_max)
    if dev_size < 1 and n >= n_train:
        raise ValueError(f"data.dev_size={dev_size:g} would leave no training example (train has {n_train})")
    return n


def carve_tail(dd: datasets.DatasetDict, n_dev: int, *, train_split: str = "train") -> datasets.DatasetDict:
    """Move the last ``n_dev`` rows of train into ``dev`` (proxies: rows are i.i.d. draws)."""
    import datasets

    train = dd[train_split]
    if not 0 < n_dev < len(train):
        raise ValueError(
            f"dev split of {n_dev} rows needs a training split larger than that (has {len(train)})"
        )
    out = dict(dd)
    out[train_split] = train.select(range(len(train) - n_dev))
    out[DEV_SPLIT] = train.select(range(len(train) - n_dev, len(train)))
    return datasets.DatasetDict(out)


def carve_random(
    dd: datasets.DatasetDict, n_dev: int, seed: int, *, train_split: str = "train"
) -> datasets.DatasetDict:
    """Move a seeded random ``n_dev`` rows of train into ``dev`` (real data, possibly ordered)."""
    import datasets
    import numpy as np

    train = dd[train_split]
    if not 0 < n_dev < len(train):
        raise ValueError(
            f"dev split of {n_dev} rows needs a training split larger than that (has {len(train)})"
        )
    perm = np.random.default_rng(seed).permutation(len(train))
    dev_idx = np.sort(perm[:n_dev])
    keep = np.sort(perm[n_dev:])
    out = dict(dd)
    out[train_split] = train.select(keep.tolist())
    out[DEV_SPLIT] = train.select(dev_idx.tolist())
    return datasets.DatasetDict(out)


def fingerprint(ds: datasets.Dataset) -> str:
    """sha256 of the rows (JSON, sorted keys): records carry it, so a reader can check that every
    compared run was selected on the same dev examples."""
    import hashlib
    import json

    h = hashlib.sha256()
    for row in ds:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
