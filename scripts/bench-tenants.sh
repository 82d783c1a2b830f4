#!/usr/bin/env bash
# Many tenants in one daemon: peak and steady RSS, RSS per additional tenant, CPU per
# cycle, time until every tenant is up, and exposition size and series per tenant in
# each format (text, OpenMetrics, protobuf with native histograms), for 1, 100 and 500
# simulated tenants (release build). `simulate --tenants N` serves the N tenants (steady scenario
# unless SCENARIO says otherwise, each its own seed) from a second process, so only the
# daemon is measured.
#
#   bash scripts/bench-tenants.sh                  # 1, 100 and 500 tenants
#   TENANTS="1 200" bash scripts/bench-tenants.sh  # other sizes
#   CYCLES=6 PENDING_INTERVAL=5 COMPLETED_INTERVAL=10 SPEED=60 bash scripts/bench-tenants.sh
#
# SPEED is the simulator's time-lapse (default 60: an hour of tenant life per minute), so
# that completions, and with them the duration histograms, grow during the run as they
# would over hours on real tenants.
# A cycle is one completed interval (two pending polls and one completed poll per tenant).
# Extra settings for every tenant (YAML flow-mapping entries) come from TENANT_EXTRA, and
# a `metrics:` section from METRICS, e.g.
#   METRICS='{ duration_buckets: [60, 300, 900, 3600, 21600, 86400] }' bash scripts/bench-tenants.sh
# SCENARIO picks the simulator's scenario for every tenant (default steady), e.g.
#   SCENARIO=incident TENANTS=200 bash scripts/bench-tenants.sh
# It prints figures; it asserts nothing about speed.
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS=${TENANTS:-"1 100 500"}
CYCLES=${CYCLES:-6}
PENDING_INTERVAL=${PENDING_INTERVAL:-5}
COMPLETED_INTERVAL=${COMPLETED_INTERVAL:-10}
TENANT_EXTRA=${TENANT_EXTRA:-}
METRICS=${METRICS:-"{}"}
SPEED=${SPEED:-60}
SCENARIO=${SCENARIO:-steady}

# BIN: another build to measure (e.g. a copy of an older release); default: build this one.
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; fi
bin=${BIN:-target/release/sailpoint-task-exporter}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Scrapes ask for gzip as Prometheus does (curl decodes); plain_scrape does not.
scrape() { curl -s --compressed --max-time 20 "http://127.0.0.1:$1/metrics"; }
plain_scrape() { curl -s --max-time 20 "http://127.0.0.1:$1/metrics"; }
OPENMETRICS='application/openmetrics-text;version=1.0.0'
PROTOBUF='application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited'
# format_bytes PORT ACCEPT CODING: the body's size in that format and content coding.
format_bytes() { curl -s --max-time 20 -H "Accept: $2" -H "Accept-Encoding: $3" "http://127.0.0.1:$1/metrics" | wc -c; }
# format_scrape_ms PORT ACCEPT: how long one gzip scrape in that format takes.
format_scrape_ms() {
  local t0; t0=$(now_ms)
  curl -s --max-time 20 -o /dev/null -H "Accept: $2" -H 'Accept-Encoding: gzip' "http://127.0.0.1:$1/metrics"
  echo $(( $(now_ms) - t0 ))
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }

base_rss=""
run_case() {
  local n=$1 sim_port daemon_port sim daemon
  sim_port=$(free_port); daemon_port=$(free_port)
  SAILPOINT_SIM_CLIENT_SECRET=bench-secret "$bin" simulate --listen "127.0.0.1:$sim_port" \
    --client-id bench --tenants "$n" --scenario "$SCENARIO" --speed "$SPEED" 2>"$work/sim-$n.log" &
  sim=$!; pids+=("$sim")
  for _ in $(seq 1 600); do
    grep -q 'listening' "$work/sim-$n.log" 2>/dev/null && break
    sleep 0.1
  done
  {
    echo "web:"
    echo "  listen_address: \"127.0.0.1:$daemon_port\""
    echo "metrics: $METRICS"
    echo "tenants:"
    for k in $(seq 1 "$n"); do
      echo "  - { name: t$k, base_url: \"http://127.0.0.1:$sim_port/t$k\", client_id: bench, client_secret: bench-secret, pending_interval: ${PENDING_INTERVAL}s, completed_interval: ${COMPLETED_INTERVAL}s, lookback: 24h${TENANT_EXTRA:+, $TENANT_EXTRA} }"
    done
  } >"$work/bench-$n.yaml"
  local started; started=$(now_ms)
  "$bin" serve --config.file "$work/bench-$n.yaml" 2>"$work/daemon-$n.log" &
  daemon=$!; pids+=("$daemon")
  # Ready = every tenant primed; then scrape (rarely more than once) until all are up.
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$daemon_port/-/ready")" = 200 ]; do
    [ $(( $(now_ms) - started )) -gt 600000 ] && { echo "  not ready after 10 minutes"; break; }
    sleep 0.2
  done
  local ready_ms=$(( $(now_ms) - started )) ready_hwm; ready_hwm=$(hwm_kib "$daemon")
  local up=0
  while [ "$up" -lt "$n" ] && [ $(( $(now_ms) - started )) -lt 600000 ]; do
    up=$(scrape "$daemon_port" | grep -c '^sailpoint_up{.*} 1$' || true)
    [ "$up" -lt "$n" ] && sleep 1
  done
  local all_up_ms=$(( $(now_ms) - started )) startup_hwm; startup_hwm=$(hwm_kib "$daemon")
  sleep "$COMPLETED_INTERVAL"   # one steady-state cycle before measuring
  # Polling cost: CPU over CYCLES cycles and RSS, with no scrape in between.
  local cpu0 cpu1 poll_rss
  cpu0=$(cpu_ticks "$daemon")
  sleep $((CYCLES * COMPLETED_INTERVAL))
  cpu1=$(cpu_ticks "$daemon")
  poll_rss=$(rss_kib "$daemon")
  # Scrape cost: one gzip scrape (as Prometheus asks), then one plain scrape.
  local s0 s1 t0 t1 p0 p1 q0 q1 series bytes gz rss hwm plain_rss plain_hwm
  s0=$(cpu_ticks "$daemon"); t0=$(now_ms)
  gz=$(curl -s --max-time 20 -H 'Accept-Encoding: gzip' "http://127.0.0.1:$daemon_port/metrics" | wc -c)
  t1=$(now_ms); s1=$(cpu_ticks "$daemon")
  rss=$(rss_kib "$daemon"); hwm=$(hwm_kib "$daemon")
  p0=$(cpu_ticks "$daemon"); q0=$(now_ms)
  plain_scrape "$daemon_port" >"$work/metrics-$n.txt"
  q1=$(now_ms); p1=$(cpu_ticks "$daemon")
  plain_rss=$(rss_kib "$daemon"); plain_hwm=$(hwm_kib "$daemon")
  series=$(grep -vc '^#' "$work/metrics-$n.txt" || true)
  bytes=$(wc -c <"$work/metrics-$n.txt")
  echo "tenants=$n  (scenario $SCENARIO, pending ${PENDING_INTERVAL}s, completed ${COMPLETED_INTERVAL}s, speed ${SPEED}x, $CYCLES cycles measured, metrics $METRICS)"
  awk -v r="$ready_ms" -v h="$((ready_hwm / 1024))" -v ms="$all_up_ms" -v k="$((startup_hwm / 1024))" 'BEGIN {
    printf "  ready (all primed) after %.1f s, peak RSS by then %d MiB (no scrape yet)\n", r / 1000, h
    printf "  all tenants up after:  %.1f s, peak RSS by then %d MiB (one scrape)\n", ms / 1000, k }'
  echo "  daemon RSS polling (no scrape yet): $((poll_rss / 1024)) MiB; after gzip scrapes: $((rss / 1024)) MiB; peak: $((hwm / 1024)) MiB"
  echo "  after one plain scrape: RSS $((plain_rss / 1024)) MiB, peak $((plain_hwm / 1024)) MiB"
  if [ -n "$base_rss" ] && [ "$n" -gt 1 ]; then
    awk -v r="$poll_rss" -v b="$base_rss" -v n="$n" 'BEGIN { printf "  RSS per additional tenant while polling (vs 1 tenant): %.2f MiB\n", (r - b) / 1024 / (n - 1) }'
  fi
  [ "$n" = 1 ] && base_rss=$poll_rss
  awk -v t=$((cpu1 - cpu0)) -v c="$CYCLES" -v n="$n" 'BEGIN {
    printf "  daemon CPU per cycle:   %.0f ms (%.2f ms per tenant)\n", t * 10 / c, t * 10 / c / n }'
  echo "  /metrics: $series series, $bytes bytes plain, $gz bytes gzip ($((bytes / n)) bytes per tenant)"
  echo "  one gzip scrape: $((t1 - t0)) ms, $(( (s1 - s0) * 10 )) ms CPU; one plain scrape: $((q1 - q0)) ms, $(( (p1 - p0) * 10 )) ms CPU"
  # The other formats, as Prometheus asks for them: OpenMetrics (its default; exemplars)
  # and protobuf (with native histograms). The first scrape of a format renders it for
  # every tenant; the second is the steady cost.
  local om_plain om_gz pb_plain pb_gz om_ms pb_ms
  om_ms=$(format_scrape_ms "$daemon_port" "$OPENMETRICS")
  om_gz=$(format_bytes "$daemon_port" "$OPENMETRICS" gzip)
  om_plain=$(format_bytes "$daemon_port" "$OPENMETRICS" identity)
  pb_ms=$(format_scrape_ms "$daemon_port" "$PROTOBUF")
  pb_gz=$(format_bytes "$daemon_port" "$PROTOBUF" gzip)
  pb_plain=$(format_bytes "$daemon_port" "$PROTOBUF" identity)
  local fmt_rss fmt_hwm; fmt_rss=$(rss_kib "$daemon"); fmt_hwm=$(hwm_kib "$daemon")
  # Series a Prometheus stores per tenant: every sample line of the text format; with
  # native histograms each task duration and queue-wait histogram child is one series
  # instead of its buckets, _sum and _count.
  local classic_lines children native_series
  classic_lines=$(grep -cE '^sailpoint_task_(duration|queue_wait)_seconds_(bucket|sum|count)\{' "$work/metrics-$n.txt" || true)
  children=$(grep -cE '^sailpoint_task_(duration|queue_wait)_seconds_count\{' "$work/metrics-$n.txt" || true)
  native_series=$((series - classic_lines + children))
  echo "  series per tenant: $((series / n)) classic (text or OpenMetrics), $((native_series / n)) with native histograms (protobuf)"
  echo "  bytes per scrape:  text $bytes plain / $gz gzip; OpenMetrics $om_plain plain / $om_gz gzip; protobuf $pb_plain plain / $pb_gz gzip"
  curl -s --max-time 20 -H "Accept: $PROTOBUF" "http://127.0.0.1:$daemon_port/metrics" >"$work/metrics-$n.pb"
  python3 - "$work/metrics-$n.pb" "$bytes" <<'PY'
# Splits the plain protobuf body into histogram families and the rest (counters, gauges):
# the rest alone is what any protobuf body with these series costs at least.
import sys
data, text = open(sys.argv[1], "rb").read(), int(sys.argv[2])
def varint(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1; r |= (x & 0x7F) << s; s += 7
        if x < 0x80:
            return r, i
def family_type(msg):
    i = 0
    while i < len(msg):
        key, i = varint(msg, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(msg, i)
            if field == 3:
                return v
        elif wire == 2:
            n, i = varint(msg, i); i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            return None
    return 0  # proto2 default: COUNTER
hist = other = i = 0
while i < len(data):
    n, j = varint(data, i)
    if family_type(data[j:j + n]) == 4:
        hist += j + n - i
    else:
        other += j + n - i
    i = j + n
print(f"  protobuf body: histogram families {hist} bytes, counters and gauges {other} bytes"
      f" = {100 * other / max(text, 1):.1f} % of the plain text (no protobuf body of these series is smaller)")
PY
  echo "  first scrape of a format (renders it): OpenMetrics $om_ms ms, protobuf $pb_ms ms; RSS with all three kept $((fmt_rss / 1024)) MiB, peak $((fmt_hwm / 1024)) MiB"
  kill "$daemon" "$sim" 2>/dev/null || true
  wait "$daemon" "$sim" 2>/dev/null || true
}

echo "sailpoint-task-exporter $($bin --version | awk '{print $2}'), $(nproc) CPUs, $(date -u +%FT%TZ)"
for n in $TENANTS; do run_case "$n"; done
