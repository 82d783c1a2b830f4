#!/usr/bin/env bash
# Installs the system tools the test suite needs, only when missing:
#   promtool and prometheus (Debian package `prometheus`).
# The Debian package's maintainer scripts try to start a service; that is harmless here
# (no init system runs in CI containers) and is prevented with a policy-rc.d.
set -euo pipefail

# Chromium (Debian's `chromium`), driven headless by the status-page test
# (tests/status_page.rs). Self-contained: installed only when missing.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium missing and not root: install Debian's 'chromium' package" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends chromium fonts-dejavu-core >/dev/null
  command -v chromium >/dev/null
fi

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "promtool/prometheus missing and not root: install Debian's 'prometheus' package" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
[ "$created_policy" = 1 ] && rm -f "$policy"
# Stop a server the package may have started anyway; the tests start their own.
pkill -x prometheus 2>/dev/null || true
command -v promtool >/dev/null && command -v prometheus >/dev/null
