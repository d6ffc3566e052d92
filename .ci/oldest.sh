#!/usr/bin/env bash
# CI leg: the core's tests on the OLDEST supported torch / transformers / peft (the pyproject floors,
# pinned in .ci/oldest-constraints.txt), in a second venv, so that the floors stay honest.
# Idempotent: reuses the venv when it exists. On a fresh machine it downloads torch 2.4.0 from PyPI
# (the only x86-64 Linux build there is the CUDA one, ~3 GB with its nvidia-* wheels; it runs on CPU).
#   bash .ci/oldest.sh [--install-only]   (OLDEST_VENV=/path to choose the venv; default /tmp/deltalora-oldest)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
venv="${OLDEST_VENV:-/tmp/deltalora-oldest}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
# The machine-wide pip constraint (if any) caps torch from above only; ours pins the floors.
"$py" -m pip install --quiet -c .ci/oldest-constraints.txt -e ".[test]"
"$py" - <<'PY'
import importlib.metadata as md
print("oldest leg:", ", ".join(f"{p} {md.version(p)}" for p in ("torch", "transformers", "peft", "safetensors", "numpy")))
PY
[ "${1:-}" = "--install-only" ] && exit 0
export XDG_CACHE_HOME="$(mktemp -d)" HF_HOME="$(mktemp -d)" MPLCONFIGDIR="$(mktemp -d)"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
# The core's tests only: they need torch, transformers, peft and the test extra, nothing of the suite.
"$py" -m pytest -q -p no:cacheprovider -n auto --dist loadfile tests/test_delta_lora.py tests/test_callback.py tests/test_core_runtime.py \
    tests/test_core_ddp.py
