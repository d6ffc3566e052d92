#!/usr/bin/env bash
# CI: the paper profile's smoke runs (issue 14), after .ci/run has installed the project.
#   1. the slurm executor plugin (pyproject extra "cluster") and Debian's munge/slurmctld/slurmd;
#   2. a single-node SLURM cluster (workflow/profiles/slurm-local/cluster.sh up), brought down by a
#      trap even when a test fails;
#   3. the smoke tests: the local smoke DAG, the SLURM smoke DAG, and scancel-and-resume.
# Runs as root on Debian 12. Idempotent. With CI=true the tests fail (never skip) if a piece is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 CI="${CI:-true}"
python3 -m pip install --quiet -e ".[cluster]"
CLUSTER=workflow/profiles/slurm-local/cluster.sh
trap '"$CLUSTER" down || true' EXIT
"$CLUSTER" up
export XDG_CACHE_HOME="$(mktemp -d)" HF_HOME="$(mktemp -d)" MPLCONFIGDIR="$(mktemp -d)"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -m pytest -q -p no:cacheprovider tests/test_paper_smoke.py tests/test_slurm.py
