#!/usr/bin/env bash
# Local Prometheus (Debian's package) scraping the posvenda workers on loopback.
#   infra/prometheus.sh start              write the runtime config, start, wait until ready
#   infra/prometheus.sh stop               stop (SIGTERM, wait)
#   infra/prometheus.sh status             exit 0 when it is running
#   infra/prometheus.sh config             write the runtime config only and print its path
#   infra/prometheus.sh targets H:P ...    write the scrape targets file (workers' web host:port)
# The runtime config is infra/prometheus/prometheus.yml with absolute paths for the rules and the
# targets file. Environment (defaults in brackets):
#   POSVENDA_PROMETHEUS_HOST [127.0.0.1]  POSVENDA_PROMETHEUS_PORT [9090]
#   POSVENDA_PROMETHEUS_DIR [.state/prometheus]: pid, log, runtime config and data/ (the TSDB)
#   POSVENDA_PROMETHEUS_TARGETS [$POSVENDA_PROMETHEUS_DIR/targets.json]
#   POSVENDA_PROMETHEUS_RULES [alerts/prometheus/rules.yml]
#   POSVENDA_PROMETHEUS_RETENTION [15d]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
STATE_DIR=${POSVENDA_STATE_DIR:-$repo/.state}
HOST=${POSVENDA_PROMETHEUS_HOST:-127.0.0.1}
PORT=${POSVENDA_PROMETHEUS_PORT:-9090}
DIR=${POSVENDA_PROMETHEUS_DIR:-$STATE_DIR/prometheus}
TARGETS=${POSVENDA_PROMETHEUS_TARGETS:-$DIR/targets.json}
RULES=${POSVENDA_PROMETHEUS_RULES:-$repo/alerts/prometheus/rules.yml}
RETENTION=${POSVENDA_PROMETHEUS_RETENTION:-15d}
template="$here/prometheus/prometheus.yml"
conf="$DIR/prometheus.yml"
pidfile="$DIR/prometheus.pid"
logfile="$DIR/prometheus.log"

die() { echo "infra/prometheus.sh: $*" >&2; exit 1; }

absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

write_targets() {
  # Atomic replace: Prometheus watches the file and must never read half of it.
  mkdir -p "$(dirname "$TARGETS")"
  local list="" t
  for t in "$@"; do list="$list${list:+, }\"$t\""; done
  printf '[{"targets": [%s], "labels": {"service": "posvenda-worker"}}]\n' "$list" > "$TARGETS.tmp"
  mv "$TARGETS.tmp" "$TARGETS"
}

write_config() {
  mkdir -p "$DIR/data"
  TARGETS=$(absolute "$TARGETS"); RULES=$(absolute "$RULES")
  [ -f "$TARGETS" ] || write_targets
  sed -e "s#\.\./\.\./alerts/prometheus/rules\.yml#$RULES#" \
      -e "s#\.\./\.\./\.state/prometheus/targets\.json#$TARGETS#" "$template" > "$conf.tmp"
  grep -qF "$RULES" "$conf.tmp" && grep -qF "$TARGETS" "$conf.tmp" \
    || die "$template no longer has the rules/targets paths this script rewrites"
  mv "$conf.tmp" "$conf"
}

ready() { curl -fsS -o /dev/null --max-time 2 "http://$HOST:$PORT/-/ready" 2>/dev/null; }

start() {
  command -v prometheus >/dev/null 2>&1 || "$here/install-prometheus.sh" || exit 1
  if running; then echo "prometheus already running (pid $(cat "$pidfile")) on $HOST:$PORT"; return 0; fi
  write_config
  [ -f "$RULES" ] || echo "infra/prometheus.sh: note: no rules file at $RULES yet (alerting rules not loaded)" >&2
  if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
    die "$HOST:$PORT is already in use (another Prometheus? set POSVENDA_PROMETHEUS_PORT)"
  fi
  [ -f "$logfile" ] && mv "$logfile" "$logfile.prev"
  nohup prometheus --config.file="$conf" --storage.tsdb.path="$DIR/data" \
    --storage.tsdb.retention.time="$RETENTION" --web.listen-address="$HOST:$PORT" \
    --web.enable-lifecycle >"$logfile" 2>&1 &
  echo $! > "$pidfile"
  local deadline=$((SECONDS + 60))
  until ready; do
    running || die "prometheus exited during start-up: $(grep -m1 -iE 'err|fail' "$logfile" || tail -1 "$logfile")"
    [ $SECONDS -lt $deadline ] || die "prometheus not ready on $HOST:$PORT within 60 s; see $logfile"
    sleep 0.3
  done
  echo "prometheus up on http://$HOST:$PORT (pid $(cat "$pidfile"), targets $TARGETS, data $DIR/data)"
}

stop() {
  if ! running; then echo "prometheus not running"; rm -f "$pidfile"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "prometheus did not stop within 30 s: killing"; kill -9 "$pid"; break; }
    sleep 0.2
  done
  rm -f "$pidfile"
  echo "prometheus stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "running (pid $(cat "$pidfile")) on $HOST:$PORT" || { echo "not running"; exit 1; } ;;
  config) write_config; echo "$conf" ;;
  targets) shift; write_targets "$@"; echo "$TARGETS: $*" ;;
  *) echo "usage: infra/prometheus.sh start|stop|status|config|targets HOST:PORT..." >&2; exit 2 ;;
esac
