#!/usr/bin/env bash
# Installs everything the whole test suite needs, before any test runs, in one place:
#
#   tool                      needed by                                  Debian/Ubuntu package
#   promtool, prometheus      exporter_promtool, e2e_prometheus, deploy  prometheus
#   python3                   e2e_prometheus, simulator_sdk, deploy      python3
#   python3 -m venv (+ pip)   simulator_sdk (target/sdk-venv),           python3-venv, python3-pip
#                             deploy checks (target/deploy-venv)
#   systemd-analyze           deploy checks (unit verify + security)     systemd
#   chromium (+ a font)       status_page (headless browser test)        chromium, fonts-dejavu-core
#
# and then the two Python virtualenvs under target/ (the official SailPoint SDK; the
# Kubernetes schema validator and PyYAML), so no test has to reach the package index itself.
#
# Idempotent: checks each tool and installs only what is missing; `apt-get update` runs
# only when something must be installed. Covered: Debian (every tool) and Ubuntu (every
# tool but Chromium, which Ubuntu ships only as a snap: install it so that `chromium` is on
# PATH, or set SKIP_BROWSER_TESTS=1). Elsewhere, or without root, it prints what is
# missing and exits 1. SKIP_SDK_TESTS=1 / SKIP_BROWSER_TESTS=1 leave out what those tests
# need (the tests then report skips).
#
#   bash scripts/install-test-deps.sh            # everything
#   bash scripts/install-test-deps.sh --system   # system packages only, no virtualenvs
set -euo pipefail
cd "$(dirname "$0")/.."

system_only=0
[ "${1:-}" = --system ] && system_only=1

# missing_packages: prints the Debian/Ubuntu package of every missing tool, one a line.
missing_packages() {
    command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 ||
        echo prometheus
    command -v python3 >/dev/null 2>&1 || echo python3
    # A venv needs ensurepip, which Debian ships separately in python3-venv.
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        echo python3-venv
    fi
    command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 ||
        echo python3-pip
    command -v systemd-analyze >/dev/null 2>&1 || echo systemd
    if [ "${SKIP_BROWSER_TESTS:-}" != 1 ]; then
        command -v chromium >/dev/null 2>&1 || echo chromium
        [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || echo fonts-dejavu-core
    fi
}

# apt_candidate PACKAGE: true when apt can install PACKAGE on this distribution.
apt_candidate() {
    local candidate
    candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: missing: ${missing[*]}"
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: needs root and apt-get (Debian/Ubuntu); install these" \
            "packages (or your distribution's equivalents) and re-run: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt run (a parallel build on the same machine) instead of failing.
    apt=(apt-get -o DPkg::Lock::Timeout=600)
    "${apt[@]}" update -qq
    packages=()
    for p in "${missing[@]}"; do
        # `systemd` may be absent from a minimal image's sources: the deploy check then
        # reports a skip.
        if apt_candidate "$p"; then
            packages+=("$p")
        else
            echo "install-test-deps: this distribution offers no package '$p'" >&2
        fi
    done
    # Keep package maintainer scripts from starting services (the prometheus package
    # enables and starts prometheus.service): policy-rc.d exit 101 = "action forbidden".
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && created_policy=1
    fi
    status=0
    if [ "${#packages[@]}" -gt 0 ]; then
        echo "install-test-deps: apt-get install ${packages[*]}"
        RUNLEVEL=1 "${apt[@]}" install -y -qq --no-install-recommends "${packages[@]}" \
            </dev/null >/dev/null || status=$?
    fi
    [ "$created_policy" = 1 ] && rm -f "$policy"
    [ "$status" = 0 ] || exit "$status"
    mapfile -t still < <(missing_packages)
    # systemd-analyze is optional (the deploy check reports a skip without it); the rest
    # is required.
    required=()
    for p in "${still[@]}"; do [ "$p" = systemd ] || required+=("$p"); done
    if [ "${#required[@]}" -gt 0 ]; then
        echo "install-test-deps: still missing after apt-get: ${required[*]}" >&2
        exit 1
    fi
fi

[ "$system_only" = 1 ] && exit 0

# The Python environments the tests use, created here once (each script re-checks its
# own venv and only installs when the pinned requirements changed). SKIP_SDK_TESTS=1 (no
# package index here) leaves out the SDK, whose test then reports a skip.
if [ "${SKIP_SDK_TESTS:-}" != 1 ]; then
    bash tests/sdk/run.sh --install
fi
bash tests/deploy/check.sh --install
