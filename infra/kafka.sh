#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) on 127.0.0.1 from the official jars on Maven Central.
#   infra/kafka.sh start   resolve jars (cached), format storage once, start, wait until it answers
#   infra/kafka.sh stop    stop cleanly (SIGTERM, wait for the controlled shutdown)
#   infra/kafka.sh status  exit 0 when the broker answers
#   infra/kafka.sh config  write server.properties and print it (the broker never creates topics on
#                          first use: `posvenda topics create` makes them as topics/catalogue.py declares)
# When KAFKA_BOOTSTRAP_SERVERS is set, that cluster is used and nothing is started.
# Environment (all optional): POSVENDA_STATE_DIR (data, config, pid file and logs; default .state),
# POSVENDA_KAFKA_PORT (PLAINTEXT, 9092), POSVENDA_KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP (768m).
# POSVENDA_KAFKA_SCRAM="user:password" adds a SASL_PLAINTEXT listener with SCRAM-SHA-512 on
# POSVENDA_KAFKA_SASL_PORT (9094) and makes sure that credential exists (PLAINTEXT stays for the
# controller, inter-broker traffic and local tools). POSVENDA_KAFKA_TLS=1 adds an SSL listener on
# POSVENDA_KAFKA_SSL_PORT (9095) with a local CA and broker certificate generated once under
# $POSVENDA_STATE_DIR/kafka/tls (clients: KAFKA_SSL_CAFILE=.../tls/ca.pem); both together also add
# SASL_SSL (SCRAM over TLS) on POSVENDA_KAFKA_SASL_SSL_PORT (9096). stop and status only need
# POSVENDA_STATE_DIR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
KAFKA_VERSION=${KAFKA_VERSION:-3.9.1}
CACHE_DIR=${POSVENDA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/posvenda}
STATE_DIR=${POSVENDA_STATE_DIR:-$repo/.state}
KAFKA_PORT=${POSVENDA_KAFKA_PORT:-9092}
CONTROLLER_PORT=${POSVENDA_KAFKA_CONTROLLER_PORT:-9093}
SASL_PORT=${POSVENDA_KAFKA_SASL_PORT:-9094}
SCRAM=${POSVENDA_KAFKA_SCRAM:-}
SSL_PORT=${POSVENDA_KAFKA_SSL_PORT:-9095}
SASL_SSL_PORT=${POSVENDA_KAFKA_SASL_SSL_PORT:-9096}
TLS=${POSVENDA_KAFKA_TLS:-}
[ "$TLS" = 0 ] && TLS=
tls="$STATE_DIR/kafka/tls"
libs="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
data="$STATE_DIR/kafka/data"
conf="$STATE_DIR/kafka/server.properties"
pidfile="$STATE_DIR/kafka/broker.pid"
logfile="$STATE_DIR/kafka/broker.log"

die() { echo "infra/kafka.sh: $*" >&2; exit 1; }

need_tools() {
  command -v java >/dev/null || die "java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)"
  local v; v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ "${v:-0}" -ge 17 ] || die "java $v found, Kafka $KAFKA_VERSION needs a JDK 17+ (apt-get install openjdk-17-jdk-headless)"
  [ -f "$libs/.complete" ] || command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: apt-get install maven)"
}

resolve_jars() {
  [ -f "$libs/.complete" ] && return 0
  echo "resolving Apache Kafka $KAFKA_VERSION jars from Maven Central into $libs ..."
  mkdir -p "$libs"
  mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs"
  touch "$libs/.complete"
}


scram_user() { printf '%s' "${SCRAM%%:*}"; }
scram_password() { printf '%s' "${SCRAM#*:}"; }

check_scram() {
  [ -n "$SCRAM" ] || return 0
  case "$SCRAM" in *:*) ;; *) die "POSVENDA_KAFKA_SCRAM must be user:password";; esac
  [[ "$(scram_user)" =~ ^[A-Za-z0-9._-]+$ ]] || die "POSVENDA_KAFKA_SCRAM: the user name may only hold letters, digits, . _ -"
  [[ "$(scram_password)" =~ ^[^][,\"[:space:]]+$ ]] || die "POSVENDA_KAFKA_SCRAM: the password must be non-empty, without spaces, quotes, commas or brackets"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

write_config() {
  mkdir -p "$data"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  [ -n "$SCRAM" ] && { listeners+=",SASL_PLAINTEXT://127.0.0.1:$SASL_PORT"; protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"; }
  [ -n "$TLS" ] && { listeners+=",SSL://127.0.0.1:$SSL_PORT"; protocols+=",SSL:SSL"; }
  [ -n "$TLS" ] && [ -n "$SCRAM" ] && { listeners+=",SASL_SSL://127.0.0.1:$SASL_SSL_PORT"; protocols+=",SASL_SSL:SASL_SSL"; }
  cat > "$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
log.cleaner.backoff.ms=2000
PROPS
  if [ -n "$SCRAM" ]; then  # the server side of SCRAM needs a login module but no secret of its own
    cat >> "$conf" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
PROPS
  fi
  if [ -n "$TLS" ]; then
    cat >> "$conf" <<PROPS
ssl.keystore.type=PKCS12
ssl.keystore.location=$tls/broker.p12
ssl.keystore.password=$(cat "$tls/store.pass")
ssl.key.password=$(cat "$tls/store.pass")
ssl.client.auth=none
PROPS
  fi
}

# A local CA and a broker certificate for 127.0.0.1/localhost, made once per state directory with the
# JDK's keytool; clients trust the CA through KAFKA_SSL_CAFILE=$tls/ca.pem.
ensure_tls_material() {
  [ -n "$TLS" ] || return 0
  [ -f "$tls/broker.p12" ] && [ -f "$tls/ca.pem" ] && return 0
  command -v keytool >/dev/null || die "keytool not found (it comes with the JDK)"
  rm -rf "$tls" && mkdir -p "$tls" && chmod 700 "$tls"
  local pass; pass=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s' "$pass" > "$tls/store.pass"
  local san="SAN=ip:127.0.0.1,dns:localhost"
  (
    cd "$tls"
    keytool -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=posvenda local CA" \
      -ext bc:c -ext ku:c=keyCertSign,cRLSign -keystore ca.p12 -storetype PKCS12 -storepass "$pass" -keypass "$pass"
    keytool -exportcert -rfc -alias ca -keystore ca.p12 -storepass "$pass" -file ca.pem
    keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 3650 -dname "CN=localhost" \
      -keystore broker.p12 -storetype PKCS12 -storepass "$pass" -keypass "$pass"
    keytool -certreq -alias broker -keystore broker.p12 -storepass "$pass" \
      | keytool -gencert -alias ca -keystore ca.p12 -storepass "$pass" -ext "$san" -ext eku=serverAuth \
          -ext ku:c=digitalSignature,keyEncipherment -validity 3650 -rfc > broker.pem
    keytool -importcert -noprompt -alias ca -file ca.pem -keystore broker.p12 -storepass "$pass"
    keytool -importcert -noprompt -alias broker -file broker.pem -keystore broker.p12 -storepass "$pass"
  ) >/dev/null 2>&1 || die "could not create the TLS material in $tls"
  echo "created a local CA and broker certificate in $tls (clients: KAFKA_SSL_CAFILE=$tls/ca.pem)"
}

# Credentials live in the cluster metadata: bootstrapped by `format --add-scram` on a fresh data
# directory, upserted through the PLAINTEXT listener otherwise (a fingerprint file skips the upsert
# when nothing changed, which saves a JVM start).
scram_fingerprint() { printf '%s' "$SCRAM" | sha256sum | cut -d' ' -f1; }

ensure_scram_user() {
  [ -n "$SCRAM" ] || return 0
  local marker="$STATE_DIR/kafka/scram.sha256"
  [ -f "$marker" ] && [ "$(cat "$marker")" = "$(scram_fingerprint)" ] && return 0
  java -cp "$libs/*" -Dlog4j.configuration="file:$STATE_DIR/kafka/log4j.properties" kafka.admin.ConfigCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter --entity-type users --entity-name "$(scram_user)" \
    --add-config "SCRAM-SHA-512=[password=$(scram_password)]" >/dev/null || die "could not set the SCRAM credential"
  scram_fingerprint > "$marker"
  echo "SCRAM-SHA-512 credential of user $(scram_user) set"
}

log4j_config() {
  cat > "$STATE_DIR/kafka/log4j.properties" <<PROPS
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$logfile
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
PROPS
}

start() {
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    echo "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: using that cluster, starting nothing"
    return 0
  fi
  need_tools
  check_scram
  resolve_jars
  if running; then echo "kafka already running (pid $(cat "$pidfile")) on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  if (exec 3<>/dev/tcp/127.0.0.1/"$KAFKA_PORT") 2>/dev/null; then
    die "port $KAFKA_PORT is taken by another process (another checkout's broker?): stop it, or set KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT to use it, or POSVENDA_KAFKA_PORT to pick another port"
  fi
  ensure_tls_material
  write_config
  log4j_config
  [ -f "$logfile" ] && mv "$logfile" "$logfile.prev"
  if [ ! -f "$data/meta.properties" ]; then
    local cid; cid=$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)
    local scram_args=()
    [ -n "$SCRAM" ] && scram_args=(--add-scram "SCRAM-SHA-512=[name=$(scram_user),password=$(scram_password)]")
    java -cp "$libs/*" -Dlog4j.configuration="file:$STATE_DIR/kafka/log4j.properties" \
      kafka.tools.StorageTool format -t "$cid" -c "$conf" "${scram_args[@]}" >/dev/null
    [ -n "$SCRAM" ] && scram_fingerprint > "$STATE_DIR/kafka/scram.sha256"
    echo "formatted new KRaft storage in $data (cluster $cid)"
  fi
  nohup java -Xms256m -Xmx${KAFKA_HEAP:-768m} -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$STATE_DIR/kafka/log4j.properties" \
    -cp "$libs/*" kafka.Kafka "$conf" >>"$STATE_DIR/kafka/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  local deadline=$((SECONDS + 90))
  until (exec 3<>/dev/tcp/127.0.0.1/"$KAFKA_PORT") 2>/dev/null && grep -q "BrokerServer id=1\] Transition from STARTING to STARTED" "$logfile" 2>/dev/null; do
    running || die "broker exited during start-up; see $logfile and $STATE_DIR/kafka/stdout.log"
    [ $SECONDS -lt $deadline ] || die "broker did not answer on 127.0.0.1:$KAFKA_PORT within 90 s; see $logfile"
    sleep 0.5
  done
  ensure_scram_user
  echo "kafka $KAFKA_VERSION up on 127.0.0.1:$KAFKA_PORT (pid $(cat "$pidfile"), data $data)" \
       "${SCRAM:+with SASL_PLAINTEXT/SCRAM-SHA-512 on 127.0.0.1:$SASL_PORT}" \
       "${TLS:+with SSL on 127.0.0.1:$SSL_PORT${SCRAM:+ and SASL_SSL on 127.0.0.1:$SASL_SSL_PORT} (CA $tls/ca.pem)}"
}

stop() {
  [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] && { echo "external cluster: nothing to stop"; return 0; }
  if ! running; then echo "kafka not running"; rm -f "$pidfile"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "controlled shutdown took over 60 s: killing"; kill -9 "$pid"; break; }
    sleep 0.3
  done
  rm -f "$pidfile"
  echo "kafka stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  config) write_config; cat "$conf" ;;
  status) running && echo "running (pid $(cat "$pidfile"))" || { echo "not running"; exit 1; } ;;
  *) echo "usage: infra/kafka.sh start|stop|status|config" >&2; exit 2 ;;
esac
