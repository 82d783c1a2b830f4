#!/usr/bin/env bash
# The project's one test command (README "Testing"). Installs what the tests need when it
# is missing — Debian's `prometheus` package (promtool and a real Prometheus server) and,
# through the tests themselves, Python venvs for the official SailPoint SDK and the
# Kubernetes schema validator — then runs formatting, lint, every test and the deployment
# checks. Works on a fresh Debian machine as root; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test tools"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

step "cargo test"
cargo test --quiet 2>&1 | tee target/cargo-test.log
# cargo prints one summary per test binary; show the grand total on one line.
read -r cargo_passed cargo_failed < <(awk '/^test result:/ {p+=$4; f+=$6} END {print p+0, f+0}' target/cargo-test.log)

step "deployment kit checks"
bash tests/deploy/check.sh | tee target/deploy-check.log
read -r deploy_passed deploy_failed < <(awk '/^deploy: [0-9]+ passed/ {print $2, $4}' target/deploy-check.log)

step "all checks passed"
echo "total: $((cargo_passed + ${deploy_passed:-0})) passed, $((cargo_failed + ${deploy_failed:-0})) failed"
