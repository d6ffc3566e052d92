"""DyLoRA's promise to data-parallel training: every process draws the same rank b at every step.

Two processes joined by a gloo process group (CPU), each with a *different* global torch seed and
different use of the global RNG (as per-process dropout would), build the same DyLoRA model with the
run's seed and step their rank callback. The rank sequences are gathered over the group: they must be
identical, else the processes would train different sub-adapters and all-reduce mismatched gradients.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

STEPS = 16


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from tiny_models import base_model

    from deltalora.methods.base import MethodContext
    from deltalora.methods.registry import get_method

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(1000 + rank)  # per-process global RNG, as data-parallel runs may seed it
        method = get_method("dylora")
        ctx = MethodContext(target_modules=("query", "value"), task_type="SEQ_CLS", seed=7, total_steps=STEPS)
        model = method.apply(base_model("bert", seed=0), {**method.defaults, "r": 8}, ctx)
        (cb,) = method.callbacks(model, {**method.defaults, "r": 8}, ctx)
        ranks = []
        for _ in range(STEPS):
            cb.on_step_begin(None, None, None)
            ranks.append(cb.controller.rank)
            torch.rand(3 + rank)  # the processes use the global RNG differently between draws
        gathered: list = [None] * world
        dist.all_gather_object(gathered, ranks)
        if rank == 0:
            Path(out_dir, "ranks.json").write_text(json.dumps(gathered))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch built without the gloo backend",
)
def test_every_process_draws_the_same_rank(tmp_path):
    import torch.multiprocessing as mp

    tests_dir = str(Path(__file__).resolve().parent)
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    gathered = json.loads((tmp_path / "ranks.json").read_text())
    assert len(gathered) == 2 and len(gathered[0]) == STEPS
    assert gathered[0] == gathered[1]
    assert all(1 <= b <= 8 for b in gathered[0]) and len(set(gathered[0])) > 2  # really drawn, not fixed
