#!/usr/bin/env bash
# The project's one test command (README "Testing"). First installs everything the suite
# needs that is missing (scripts/install-test-deps.sh: Prometheus and promtool, Python with
# venv, systemd-analyze, chromium, and the Python virtualenvs under target/), then runs
# formatting, lint, every test and the deployment checks. Works on a fresh Debian or
# Ubuntu machine as root; idempotent.
#
# The last line counts every check: `total: N passed, N failed, N skipped`. A test that
# cannot run here reports itself on its own line as `SKIP: <test>: <why>` (Rust tests write
# it straight to stderr, past libtest's output capture; tests/deploy/check.sh counts its
# own) and is counted as skipped, not passed. Under CI (`CI=true`) any skip fails the run.
# `#[ignore]`d tests (the long soak, run by scripts/soak.sh) are listed separately: they
# are a different command, not a check this one could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test tools"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo doc (rustdoc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

mkdir -p target
step "cargo test"
cargo_rc=0
# --no-fail-fast: every test binary runs, so the total counts every test even after a failure.
cargo test --quiet --no-fail-fast 2>&1 | tee target/cargo-test.log || cargo_rc=$?
# cargo prints one summary per test binary; a binary that did not build or crashed prints
# none, so a non-zero exit with no failed test counts as one failure.
read -r cargo_passed cargo_failed cargo_ignored < <(awk '/^test result:/ {p+=$4; f+=$6; i+=$8} END {print p+0, f+0, i+0}' target/cargo-test.log)
if [ "$cargo_rc" != 0 ] && [ "$cargo_failed" = 0 ]; then
    cargo_failed=1
fi
# A skipping test returns normally, so libtest counted it as passed. Its line may follow
# `--quiet` progress marks (`.`, `i`, `F`) on the same line.
cargo_skipped="$(grep -cE '^[.iF]*SKIP: ' target/cargo-test.log || true)"
cargo_passed=$((cargo_passed - cargo_skipped))

step "deployment kit checks"
deploy_rc=0
bash tests/deploy/check.sh | tee target/deploy-check.log || deploy_rc=$?
read -r deploy_passed deploy_failed deploy_skipped < <(awk '/^deploy: [0-9]+ passed/ {print $2, $4, $6}' target/deploy-check.log)
deploy_passed="${deploy_passed:-0}" deploy_failed="${deploy_failed:-0}" deploy_skipped="${deploy_skipped:-0}"
if [ "$deploy_rc" != 0 ] && [ "$deploy_failed" = 0 ]; then
    deploy_failed=1
fi

passed=$((cargo_passed + deploy_passed))
failed=$((cargo_failed + deploy_failed))
skipped=$((cargo_skipped + deploy_skipped))

step "summary"
grep -hoE 'SKIP: .*' target/cargo-test.log || true
grep -h '^SKIP ' target/deploy-check.log || true
if [ "$cargo_ignored" -gt 0 ]; then
    echo "not run: $cargo_ignored #[ignore]d test(s) (the long soak: scripts/soak.sh)"
fi
status=0
if [ "$failed" -gt 0 ]; then
    status=1
elif [ "$skipped" -gt 0 ] && [ "${CI:-}" = true ]; then
    echo "CI=true: $skipped check(s) skipped; in CI every check must run"
    status=1
fi
echo "total: $passed passed, $failed failed, $skipped skipped"
exit "$status"
