#!/usr/bin/env bash
# Long fault-injection soak of the exporter daemon (issue 6): the real binary against the
# in-process simulated tenant with every fault at once, for SOAK_SECONDS (default 240).
# Prints the figures (completions, scrapes, API requests and faults, RSS / open fds of the
# first and last minute) and fails if a count differs from the simulator's ground truth,
# the daemon panicked, a scrape failed, or memory / descriptors were not flat.
#
#   scripts/soak.sh                  # 4 minutes
#   SOAK_SECONDS=900 scripts/soak.sh # 15 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECONDS="${SOAK_SECONDS:-240}"
echo "soak: ${SOAK_SECONDS} s of faults (plus priming and settling)"
exec cargo test --test it soak::long_soak_counts_exactly_and_stays_flat -- --ignored --nocapture --test-threads=1
