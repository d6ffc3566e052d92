#!/usr/bin/env bash
# Headless Chromium for tests/test_pipeline.py's browser test of the Snakemake report (Debian 12, as root).
# Idempotent: does nothing when chromium is already installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "chromium present: $(chromium --version 2>/dev/null | tail -1)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do   # apt may be locked briefly by another process
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; then
        break
    fi
    [ "$attempt" = 3 ] && { echo "could not install chromium" >&2; exit 1; }
    sleep 10
done
chromium --version 2>/dev/null | tail -1
