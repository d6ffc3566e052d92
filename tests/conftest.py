"""Test-wide settings: keep every cache in a temporary folder and never touch a hub."""

from __future__ import annotations

import os
import tempfile

_CACHE_ROOT = tempfile.mkdtemp(prefix="deltalora-test-cache-")
for _var, _sub in (("HF_HOME", "hf"), ("XDG_CACHE_HOME", "xdg"), ("MPLCONFIGDIR", "mpl")):
    os.environ[_var] = os.path.join(_CACHE_ROOT, _sub)
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE_ROOT, "hf", "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import slurm_helpers  # noqa: E402 - after the cache settings above

# One `deltalora mirror` per test session, shared by every test file that asks for it (a fixture
# imported into a test module would be built again for that module).
mirror_home = slurm_helpers.mirror_home
# The paper smoke, built once per session across workers (tests/test_paper_smoke.py, tests/test_slurm.py).
paper_smoke = slurm_helpers.paper_smoke


def pytest_configure(config):  # noqa: ARG001
    # One intra-op thread per test process: tests run in parallel workers (pytest -n), and tiny models
    # gain nothing from more threads.
    import torch

    torch.set_num_threads(1)
