#!/usr/bin/env bash
# CI for the paper profile's smoke runs (issue 14). Run it after .ci/run has installed the project:
#   .ci/smoke.sh                     # set up, then run tests/test_paper_smoke.py and tests/test_slurm.py
#   .ci/smoke.sh CMD ARGS...         # set up, then run CMD (e.g. the whole pytest suite) with the cluster up
# Set-up: the SLURM executor plugin (pyproject extra "cluster"), Debian's munge/slurmctld/slurmd, and a
# single-node cluster (workflow/profiles/slurm-local/cluster.sh up). A trap brings the cluster down on
# every exit, failure included. Runs as root on Debian 12; idempotent. With CI=true the smoke tests fail
# (never skip) when a piece is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 CI="${CI:-true}"
python3 -m pip install --quiet -e ".[cluster]"
CLUSTER=workflow/profiles/slurm-local/cluster.sh
trap '"$CLUSTER" down || true' EXIT
"$CLUSTER" up
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$(mktemp -d)}" HF_HOME="${HF_HOME:-$(mktemp -d)}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$(mktemp -d)}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
if [ $# -gt 0 ]; then
    "$@"
else
    python3 -m pytest -q -p no:cacheprovider tests/test_paper_smoke.py tests/test_slurm.py
fi
