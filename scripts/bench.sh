#!/usr/bin/env bash
# Process-level benchmark of the daemon (figures for the README's performance section):
# the simulator and the daemon run as two separate release processes, so the daemon's own
# resident memory and CPU time are measured, for a small and a large history, and
# /metrics is loaded with wrk (Debian package `wrk`, installed when missing).
#
#   bash scripts/bench.sh            # 10 000, 20 000 and 100 000 completed tasks, 1 000 pending
#   CYCLES=10 bash scripts/bench.sh  # steady-state cycles to measure (default 6)
#   CASES=20000 bash scripts/bench.sh  # only the scrape-ratio case
#
# The 20 000 case measures the pre-rendered scrape: /metrics requests/s as a ratio to
# /-/healthy on the same server in the same run (wrk, 16 connections), and scrape p99.
#
# It prints figures; it asserts nothing about speed.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${CYCLES:-6}
PENDING_INTERVAL=2
COMPLETED_INTERVAL=4

if ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
cargo build --release --quiet
bin=target/release/sailpoint-task-exporter
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { # sum of the samples whose series starts with $2 (name, or name{first-label)
  curl -s "http://127.0.0.1:$1/metrics" | grep -F -- "$2" | grep -v '^#' | awk '{s+=$NF} END {printf "%.0f", s}'
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

run_case() {
  local history=$1 sim_port daemon_port
  sim_port=$(free_port); daemon_port=$(free_port)
  SAILPOINT_SIM_CLIENT_SECRET=bench-secret "$bin" simulate --listen "127.0.0.1:$sim_port" \
    --client-id bench --scenario large-history --history "$history" --pending 1000 \
    2>"$work/sim-$history.log" &
  pids+=($!)
  cat > "$work/bench-$history.yaml" <<EOF
web:
  listen_address: "127.0.0.1:$daemon_port"
tenants:
  - name: bench
    base_url: http://127.0.0.1:$sim_port
    client_id: bench
    client_secret: bench-secret
    pending_interval: ${PENDING_INTERVAL}s
    completed_interval: ${COMPLETED_INTERVAL}s
    lookback: 24h
    rate_limit: { requests: 1000, per: 10s }
EOF
  "$bin" serve --config.file "$work/bench-$history.yaml" 2>"$work/daemon-$history.log" &
  local daemon=$!
  pids+=("$daemon")
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$daemon_port/-/ready")" = 200 ] && break
    sleep 0.2
  done
  sleep "$COMPLETED_INTERVAL"   # let the first steady-state cycle pass
  local req0 cpu0 req1 cpu1 seconds
  req0=$(metric "$daemon_port" 'sailpoint_exporter_api_requests_total{')
  cpu0=$(cpu_ticks "$daemon")
  seconds=$((CYCLES * COMPLETED_INTERVAL))
  sleep "$seconds"
  req1=$(metric "$daemon_port" 'sailpoint_exporter_api_requests_total{')
  cpu1=$(cpu_ticks "$daemon")
  echo "history=$history pending=1000 cycles=$CYCLES (cycle = ${COMPLETED_INTERVAL}s: 2 pending polls + 1 completed poll)"
  awk -v r=$((req1 - req0)) -v c="$CYCLES" -v t=$((cpu1 - cpu0)) 'BEGIN {
    printf "  API requests per cycle: %.1f\n  daemon CPU per cycle:   %.1f ms\n", r / c, t * 10 / c }'
  echo "  daemon RSS now: $(( $(rss_kib "$daemon") / 1024 )) MiB, peak: $(( $(hwm_kib "$daemon") / 1024 )) MiB"
  echo "  tracked tasks: pending=$(metric "$daemon_port" 'state="pending"') recent=$(metric "$daemon_port" 'state="recent"')"
  echo "  /metrics body: $(curl -s "http://127.0.0.1:$daemon_port/metrics" | wc -c) bytes"
  if [ "$history" = "$LOAD_CASE" ]; then
    echo "  wrk -t2 -c32 -d10s /metrics (plain):"
    wrk -t2 -c32 -d10s --latency "http://127.0.0.1:$daemon_port/metrics" | sed -n '/Latency/p;/50%/p;/99%/p;/Requests\/sec/p' | sed 's/^/    /'
    echo "  wrk -t2 -c32 -d10s /metrics (Accept-Encoding: gzip):"
    wrk -t2 -c32 -d10s --latency -H 'Accept-Encoding: gzip' "http://127.0.0.1:$daemon_port/metrics" | sed -n '/Latency/p;/50%/p;/99%/p;/Requests\/sec/p' | sed 's/^/    /'
    echo "  daemon RSS after load: $(( $(rss_kib "$daemon") / 1024 )) MiB"
  fi
  if [ "$history" = "$RATIO_CASE" ]; then
    scrape_ratio "$daemon_port"
  fi
  if grep -q panicked "$work/daemon-$history.log"; then echo "  PANIC in daemon log"; fi
  kill "$daemon"; wait "$daemon" 2>/dev/null || true
}

# /metrics against /-/healthy of the same server, one after the other in one run: the
# ratio says how close a scrape is to the cheapest request the server answers.
scrape_ratio() {
  local port=$1 healthy plain gzip
  healthy=$(wrk -t2 -c16 -d10s --latency "http://127.0.0.1:$port/-/healthy")
  plain=$(wrk -t2 -c16 -d10s --latency "http://127.0.0.1:$port/metrics")
  gzip=$(wrk -t2 -c16 -d10s --latency -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/metrics")
  rps() { awk '/Requests\/sec/ {print $2}'; }
  p99() { awk '$1 == "99%" {print $2}'; }
  local h p g
  h=$(rps <<<"$healthy"); p=$(rps <<<"$plain"); g=$(rps <<<"$gzip")
  echo "  wrk -t2 -c16 -d10s each, same server, one run:"
  echo "    /-/healthy:       $h req/s, p99 $(p99 <<<"$healthy")"
  echo "    /metrics (plain): $p req/s, p99 $(p99 <<<"$plain")"
  echo "    /metrics (gzip):  $g req/s, p99 $(p99 <<<"$gzip")"
  awk -v h="$h" -v p="$p" -v g="$g" 'BEGIN {
    printf "    scrape ratio /metrics : /-/healthy = %.2f plain, %.2f gzip (target >= 0.5)\n", p / h, g / h }'
}

LOAD_CASE=100000
RATIO_CASE=20000
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
for history in ${CASES:-10000 20000 100000}; do
  run_case "$history"
done
