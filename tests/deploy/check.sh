#!/usr/bin/env bash
# Checks the deployment kit in deploy/ with real tools, offline.
#
#   bash tests/deploy/check.sh
#   bash tests/deploy/check.sh --install   # only set up the tools and the venv
#
# Installs what is missing (as root on Debian): the `prometheus` package for promtool (its
# service is kept from starting), and a venv at target/deploy-venv with kubernetes-validate
# and PyYAML. Then runs every check, prints a summary and exits non-zero if any failed.
# systemd-analyze is used when present (scripts/install-test-deps.sh installs it where the
# distribution offers it); without it that check is reported as skipped.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/target/deploy-venv"
PY_REQUIREMENTS=("kubernetes-validate==1.37.0" "PyYAML>=6,<7")
K8S_VERSIONS=(1.29.0 1.37.0)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

PASSED=()
FAILED=()
SKIPPED=()

log() { printf '\n==> %s\n' "$*"; }

# run NAME COMMAND...: runs a check, records its outcome.
run() {
    local name="$1"
    shift
    log "$name"
    if "$@"; then
        PASSED+=("$name")
    else
        FAILED+=("$name")
        echo "FAILED: $name"
    fi
}

# --------------------------------------------------------------------------- installs
APT_UPDATED=0
apt_install() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "cannot install $* (needs root and apt-get): install it and re-run" >&2
        return 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    # Keep package maintainer scripts from starting services (the prometheus package
    # enables and starts prometheus.service): policy-rc.d exit 101 = "action forbidden".
    local created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "$@" </dev/null
    local rc=$?
    if [ "$created_policy" -eq 1 ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    return $rc
}

ensure_promtool() {
    if command -v promtool >/dev/null; then
        return 0
    fi
    log "installing the Debian prometheus package (for promtool)"
    apt_install prometheus && command -v promtool >/dev/null
}

ensure_venv() {
    local stamp="$VENV/.deploy-requirements"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${PY_REQUIREMENTS[*]}" ]; then
        return 0
    fi
    log "creating $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 needs python3-venv for ensurepip.
        rm -rf "$VENV"
        apt_install python3 python3-venv && python3 -m venv "$VENV" || return 1
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" || return 1
    echo "${PY_REQUIREMENTS[*]}" >"$stamp"
}

SETUP_OK=1
ensure_promtool || { echo "promtool is not available" >&2; SETUP_OK=0; }
ensure_venv || { echo "the Python venv could not be set up" >&2; SETUP_OK=0; }
if [ "$SETUP_OK" -ne 1 ]; then
    echo "deploy checks: setup failed" >&2
    exit 1
fi
[ "${1:-}" = --install ] && exit 0
PY="$VENV/bin/python"
echo "promtool: $(promtool --version 2>&1 | head -n1)"
echo "kubernetes-validate: $("$VENV/bin/kubernetes-validate" --version 2>&1)"

# --------------------------------------------------------------------------- checks
RULES=deploy/prometheus/sailpoint-task-exporter.rules.yml

run "promtool check rules" promtool check rules "$RULES"
run "promtool test rules (alert and recording rule unit tests)" \
    promtool test rules deploy/prometheus/tests/*.yml
run "every alert tested firing and silent, annotations, runbooks, metric names" \
    "$PY" tests/deploy/check_rules.py
run "promtool check config (compose Prometheus config)" \
    promtool check config deploy/prometheus/prometheus.yml

run "dashboard JSON is what generate-dashboard.py produces" \
    python3 deploy/grafana/generate-dashboard.py --check
run "dashboard structure (datasource, targets, tenant filter, required panels)" \
    python3 tests/deploy/check_dashboard.py

# Every dashboard expression, with the variables substituted, parsed by the real PromQL
# parser: promtool check rules on a rules file (JSON is YAML) of recording rules.
dashboard_promql() {
    python3 tests/deploy/promql_exprs.py >"$WORK/exprs.jsonl" || return 1
    python3 - "$WORK/exprs.jsonl" "$WORK/dashboard.rules.json" <<'EOF' || return 1
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
rules = [{"record": f"dashboard:panel_{r['panel_id']}_{r['ref_id']}", "expr": r["expr"]} for r in rows]
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
print(f"{len(rules)} dashboard expressions")
EOF
    promtool check rules "$WORK/dashboard.rules.json"
}
run "dashboard PromQL parses (promql_exprs.py + promtool)" dashboard_promql

run "PrometheusRule spec.groups == rules file groups" \
    "$PY" deploy/kubernetes/generate-prometheusrule.py --check

K8S_CORE=(deploy/kubernetes/serviceaccount.yaml deploy/kubernetes/configmap.yaml
    deploy/kubernetes/secret.example.yaml deploy/kubernetes/deployment.yaml
    deploy/kubernetes/service.yaml deploy/kubernetes/sharded/statefulset.yaml
    deploy/kubernetes/sharded/service-headless.yaml)
for version in "${K8S_VERSIONS[@]}"; do
    run "kubernetes-validate --strict (Kubernetes $version schemas)" \
        "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${K8S_CORE[@]}"
done
run "Kubernetes CRDs and cross-references (check_kubernetes.py)" \
    "$PY" tests/deploy/check_kubernetes.py

# Both kustomizations build: the base, and the base with the `sharded` component enabled
# (on a copy, so the committed base stays unsharded).
kustomize_builds() {
    kubectl kustomize deploy/kubernetes >"$WORK/base.yaml" || return 1
    cp -r deploy/kubernetes "$WORK/kubernetes" || return 1
    printf 'components:\n  - sharded\n' >>"$WORK/kubernetes/kustomization.yaml"
    kubectl kustomize "$WORK/kubernetes" >"$WORK/sharded.yaml" || return 1
    grep -q '^kind: StatefulSet$' "$WORK/sharded.yaml" && ! grep -q -e '^kind: Deployment$' -e '^kind: PersistentVolumeClaim$' "$WORK/sharded.yaml" \
        || { echo "the sharded build must have a StatefulSet and no Deployment or shared claim"; return 1; }
    # The built-in kinds of the build validate (the CRDs only warn: no schema ships).
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "${K8S_VERSIONS[-1]}" "$WORK/sharded.yaml" || return 1
    echo "kubectl kustomize: base and sharded build"
}
if command -v kubectl >/dev/null; then
    run "kubectl kustomize (base, and with the sharded component)" kustomize_builds
else
    SKIPPED+=("kubectl kustomize (kubectl not installed)")
fi
run "docker-compose and Dockerfile (static checks, no engine here)" \
    "$PY" tests/deploy/check_compose.py

# systemd-analyze verify fails when ExecStart's binary is missing, so the unit is checked
# as a copy whose ExecStart names an executable that exists (the built binary when there
# is one). Any output (unknown keys, bad values) counts as a failure.
systemd_verify() {
    local bin=/bin/true
    [ -x target/debug/sailpoint-task-exporter ] && bin="$ROOT/target/debug/sailpoint-task-exporter"
    local unit="$WORK/sailpoint-task-exporter.service"
    sed "s#/usr/local/bin/sailpoint-task-exporter#$bin#" deploy/systemd/sailpoint-task-exporter.service >"$unit"
    local out
    out="$(systemd-analyze verify "$unit" 2>&1)" || { echo "$out"; return 1; }
    if [ -n "$out" ]; then
        echo "$out"
        return 1
    fi
    echo "systemd-analyze verify: no findings"
    # --threshold is in tenths of the displayed exposure level: 20 = 2.0.
    systemd-analyze security --offline=yes --threshold=20 "$unit" | tail -n 1
}
if command -v systemd-analyze >/dev/null; then
    run "systemd-analyze verify + security (exposure <= 2.0)" systemd_verify
else
    SKIPPED+=("systemd-analyze verify (systemd-analyze not installed)")
fi

# --------------------------------------------------------------------------- summary
printf '\n==== deploy checks summary ====\n'
for c in "${PASSED[@]}"; do echo "PASS  $c"; done
for c in "${SKIPPED[@]}"; do echo "SKIP  $c"; done
for c in "${FAILED[@]}"; do echo "FAIL  $c"; done
echo "deploy: ${#PASSED[@]} passed, ${#FAILED[@]} failed, ${#SKIPPED[@]} skipped"
[ "${#FAILED[@]}" -eq 0 ]
