#!/usr/bin/env bash
# Runs the official-SDK conformance script against a running simulated tenant.
#
#   SAIL_CLIENT_SECRET=... tests/sdk/run.sh BASE_URL CLIENT_ID
#   tests/sdk/run.sh --install     # only create the venv (scripts/install-test-deps.sh)
#
# The secret comes from the environment only (never the command line). Optional:
# SIM_TRUTH=path/to/ground-truth.json for exact comparisons (see conformance.py).
# Creates (or reuses) a virtualenv in target/sdk-venv with sailpoint>=1.4,<1.5.
# Exit codes: 0 pass, 1 conformance failure, 2 usage, 3 the SDK could not be installed.
set -euo pipefail

install_only=0
[[ "${1:-}" == --install ]] && install_only=1
if [[ $install_only -eq 0 && ( $# -ne 2 || -z "${SAIL_CLIENT_SECRET:-}" ) ]]; then
    echo "usage: SAIL_CLIENT_SECRET=... $0 BASE_URL CLIENT_ID" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/sdk-venv"
python="${PYTHON:-python3}"

if ! "$venv/bin/python" -c 'import sailpoint, importlib.metadata as m; v = m.version("sailpoint"); assert v.startswith("1.4."), v' 2>/dev/null; then
    echo "run.sh: installing sailpoint>=1.4,<1.5 into $venv" >&2
    if ! { "$python" -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check 'sailpoint>=1.4,<1.5'; } >&2; then
        echo "run.sh: could not install the SailPoint SDK from the package index" >&2
        exit 3
    fi
fi
[[ $install_only -eq 1 ]] && exit 0

export SAIL_BASE_URL="$1" SAIL_CLIENT_ID="$2"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
cd "$root/target"   # the SDK reads ./config.json when present; keep it out of the way
exec "$venv/bin/python" "$root/tests/sdk/conformance.py"
