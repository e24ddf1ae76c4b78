#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package, once; a no-op when both are there.
# The package's own service is not wanted (infra/prometheus.sh runs Prometheus with the project's
# config and data dir), so package scripts are told not to start it (policy-rc.d, exit 101).
# Prints one line on failure and exits 1.
set -uo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi

fail() { echo "infra/install-prometheus.sh: cannot install prometheus: $*" >&2; exit 1; }

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (install Debian's prometheus package, or put prometheus and promtool on PATH)"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and no sudo (run: apt-get install prometheus)"
  sudo="sudo -n"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
  # Keep the package's postinst from starting a system-wide prometheus on :9090.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null 2>&1 && $sudo chmod +x "$policy" && made_policy=1
fi
ok=1
if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends prometheus >"$log" 2>&1; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q >>"$log" 2>&1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends prometheus >>"$log" 2>&1 || ok=""
fi
[ -n "$made_policy" ] && $sudo rm -f "$policy"
[ -n "$ok" ] || fail "apt-get install prometheus failed: $(grep -E '^E:' "$log" | head -1)"
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
  || fail "the prometheus package installed but prometheus/promtool are not on PATH"
echo "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') installed"
