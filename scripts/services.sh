#!/usr/bin/env bash
# Local services for development, tests and the quickstart, on 127.0.0.1 only:
#   PostgreSQL 15 (wal_level=logical, TLS), tansu (Kafka-protocol broker,
#   sqlite storage), ClickHouse (Debian's 18.16, HTTP and HTTPS) and moto (an
#   S3-compatible server, in memory, bucket `sinkfleet` created at start; a
#   second one serves HTTPS) and scripts/schema-registry.py (the project's own
#   TEST schema registry, Confluent's REST subset: plain HTTP, and a second
#   listener with TLS and HTTP basic auth; data kept in
#   $STATE_DIR/schema-registry/registry.json). TLS uses test CAs made at first
#   start. A virtualenv with Confluent's Python client and serializers
#   (confluent-kafka[avro,json,protobuf,schemaregistry]) is installed for the
#   test-data scripts (scripts/testdata/connect_avro.py) that produce
#   Confluent-framed records through that registry.
#   The current ClickHouse engine (chdb-core, PyPI's ClickHouse-as-a-library)
#   is served by scripts/chdb-server.py, the part of ClickHouse's HTTP
#   interface the sink uses, so the ClickHouse tests also run against a
#   current engine (no current ClickHouse server is installable here).
#   Prometheus and promtool are installed, not started (tests start their own);
#   so is kubernetes-validate (PyPI), which checks deploy/kubernetes.
#
#   scripts/services.sh start    install what is missing (build dependencies
#                                included), start what is not running
#   scripts/services.sh build-deps  only the build dependencies
#   scripts/services.sh stop     stop both (data is kept)
#   scripts/services.sh status   show what runs
#   scripts/services.sh env      print the connection settings as shell exports
#   scripts/services.sh python   print the path of the Python (moto's virtualenv,
#                                with pyarrow added) that benches use
#   scripts/services.sh serializers-python  print the path of the Python with
#                                confluent-kafka's serializers (installed if
#                                missing; also in `env` as SINKFLEET_SERIALIZERS_PYTHON)
#   scripts/services.sh stop-registry|start-registry  the schema registry alone
#   scripts/services.sh stop-clickhouse|kill-clickhouse|start-clickhouse
#                                ClickHouse alone (tests; kill = SIGKILL, a crash:
#                                on SIGTERM it keeps serving for seconds)
#
# Idempotent: running `start` twice starts nothing twice. Ports and data
# locations can be overridden with SINKFLEET_PG_PORT, SINKFLEET_KAFKA_PORT,
# SINKFLEET_REGISTRY_PORT, SINKFLEET_REGISTRY_TLS_PORT and SINKFLEET_STATE_DIR;
# tools built once are kept in SINKFLEET_TOOLS_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_PORT=${SINKFLEET_PG_PORT:-55432}
KAFKA_PORT=${SINKFLEET_KAFKA_PORT:-59092}
CH_HTTP_PORT=${SINKFLEET_CLICKHOUSE_HTTP_PORT:-58123}
CH_TCP_PORT=${SINKFLEET_CLICKHOUSE_TCP_PORT:-59000}
CH_HTTPS_PORT=${SINKFLEET_CLICKHOUSE_HTTPS_PORT:-58443}
CH_CURRENT_PORT=${SINKFLEET_CLICKHOUSE_CURRENT_PORT:-58124}
S3_PORT=${SINKFLEET_S3_PORT:-59900}
S3_TLS_PORT=${SINKFLEET_S3_TLS_PORT:-59943}
REGISTRY_PORT=${SINKFLEET_REGISTRY_PORT:-58081}
REGISTRY_TLS_PORT=${SINKFLEET_REGISTRY_TLS_PORT:-58082}
# Fixed test credentials of the registry's TLS listener (a test service on
# 127.0.0.1, not a secret).
REGISTRY_USER=sinkfleet
REGISTRY_PASSWORD=sinkfleet-test-registry
MOTO_VERSION=5.2.5
CONFLUENT_KAFKA_VERSION=2.16.2
# connect_protobuf.py builds messages with these (descriptor_pb2, google.type).
PROTOBUF_VERSION=7.36.2
GOOGLEAPIS_COMMON_PROTOS_VERSION=1.76.0
# JSONSerializer's validator (the [json] extra leaves it unpinned).
JSONSCHEMA_VERSION=4.26.0
REFERENCING_VERSION=0.37.0
KUBERNETES_VALIDATE_VERSION=1.37.0
PYARROW_VERSION=26.0.1
# chdb 4.4.0 brings chdb-core 26.9 (ClickHouse 26.9.2.1), ~530 MB.
CHDB_VERSION=4.4.0
CHDB_CORE_VERSION=26.9.0
STATE_DIR=${SINKFLEET_STATE_DIR:-$ROOT/.local}
TOOLS_DIR=${SINKFLEET_TOOLS_DIR:-$HOME/.local/share/sinkfleet}
PG_BIN=/usr/lib/postgresql/15/bin
TANSU_VERSION=0.6.0
TANSU=$TOOLS_DIR/tansu-$TANSU_VERSION/bin/tansu

log() { printf '[services] %s\n' "$*" >&2; }

# As the postgres user, from / (it may not enter a private checkout).
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

# Postgres refuses to run as root and its data must be reachable by the
# `postgres` user. A checkout below a private directory (mktemp -d) is not,
# so its cluster lives in a per-checkout directory under /var/tmp instead.
pg_dir() {
  local want=$STATE_DIR/postgres
  mkdir -p "$STATE_DIR"
  if id postgres >/dev/null 2>&1 && as_postgres test -x "$STATE_DIR"; then
    echo "$want"
  else
    echo "/var/tmp/sinkfleet-pg-$(printf '%s' "$ROOT" | md5sum | cut -c1-12)"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 200); do port_open "$port" && return 0; sleep 0.1; done
  log "$what did not open 127.0.0.1:$port"; return 1
}

# What building sinkfleet needs beyond a Rust toolchain: a C toolchain for
# the bundled librdkafka, and OpenSSL's headers for its TLS/SASL support.
install_build_deps() {
  local missing=()
  command -v cc >/dev/null || missing+=(gcc libc6-dev)
  command -v make >/dev/null || missing+=(make)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing build dependencies: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_postgres() {
  if [ -x "$PG_BIN/pg_ctl" ]; then return; fi
  log "installing PostgreSQL 15 (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >/dev/null
}

install_tansu() {
  if [ -x "$TANSU" ]; then return; fi
  # No prebuilt binaries can be downloaded here: build it from crates.io once
  # (~11 minutes on 2 cores) with the sqlite storage engine, and keep it.
  log "building tansu $TANSU_VERSION (once, ~11 min) into $TOOLS_DIR"
  mkdir -p "$TOOLS_DIR"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
    --root "$TOOLS_DIR/tansu-$TANSU_VERSION" >&2
}

# A test CA and a server certificate for 127.0.0.1/localhost, written to
# $1 as ca.crt, server.crt and server.key (kept if present), so TLS modes up
# to full verification run against the real servers.
test_certs() {
  local out=$1
  if [ -f "$out/server.crt" ] && [ -f "$out/ca.crt" ]; then return; fi
  command -v openssl >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null
  }
  mkdir -p "$out"
  local tmp; tmp=$(mktemp -d)
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sinkfleet test CA" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$tmp/ext"
  openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 3650 -extfile "$tmp/ext" -out "$tmp/server.crt" 2>/dev/null
  install -m 600 "$tmp/server.key" "$out/server.key"
  install -m 644 "$tmp/server.crt" "$tmp/ca.crt" "$out/"
  rm -rf "$tmp"
}

# Postgres reads server.crt/server.key from its data directory (owned by
# postgres); clients trust $(pg_dir)/ca.crt.
pg_tls() {
  local dir=$1
  if [ -f "$dir/data/server.crt" ] && [ -f "$dir/ca.crt" ]; then return; fi
  local tmp; tmp=$(mktemp -d)
  test_certs "$tmp"
  install -o postgres -g postgres -m 600 "$tmp/server.key" "$dir/data/server.key"
  install -o postgres -g postgres -m 644 "$tmp/server.crt" "$dir/data/server.crt"
  install -m 644 "$tmp/ca.crt" "$dir/ca.crt"
  rm -rf "$tmp"
}

start_postgres() {
  install_postgres
  local dir; dir=$(pg_dir)
  if port_open "$PG_PORT"; then
    log "postgres already listening on 127.0.0.1:$PG_PORT"
    if [ "$(psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -XAtc 'SHOW ssl' 2>/dev/null)" != on ]; then
      log "WARNING: it runs without TLS (started by an older checkout?); the TLS tests need: $0 stop && $0 start"
    fi
    return
  fi
  install -d -o postgres -g postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -N -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  pg_tls "$dir"
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
    "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c wal_level=logical -c ssl=on \
     -c max_replication_slots=20 -c max_wal_senders=20 -c max_connections=200 -c wal_sender_timeout=10s" start >/dev/null
  log "postgres started on 127.0.0.1:$PG_PORT (data $dir/data)"
}

start_kafka() {
  install_tansu
  local dir=$STATE_DIR/tansu
  mkdir -p "$dir"
  if port_open "$KAFKA_PORT"; then log "tansu already listening on 127.0.0.1:$KAFKA_PORT"; return; fi
  # The sqlite path is relative to the working directory. `cd` first, so
  # that `$!` is tansu's own PID (not that of a backgrounded `cd && ...`).
  (
    cd "$dir"
    nohup "$TANSU" broker \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine sqlite://tansu.db >broker.log 2>&1 &
    echo $! >broker.pid
  )
  wait_port "$KAFKA_PORT" tansu
  log "tansu started on 127.0.0.1:$KAFKA_PORT (data $dir)"
}

# Prometheus and promtool (Debian's package installs the binaries; no
# service is started): the tests run their own Prometheus against real
# workers and unit-test the alert rules.
install_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return; fi
  log "installing Prometheus (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

install_clickhouse() {
  if command -v clickhouse-server >/dev/null; then return; fi
  log "installing ClickHouse (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clickhouse-server clickhouse-client >/dev/null
}

start_clickhouse() {
  install_clickhouse
  local dir=$STATE_DIR/clickhouse
  if port_open "$CH_HTTP_PORT"; then log "clickhouse already listening on 127.0.0.1:$CH_HTTP_PORT"; return; fi
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  cp /etc/clickhouse-server/users.xml "$dir/users.xml"
  test_certs "$dir/tls"
  # Our own minimal config: own paths and ports, loopback only.
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/server.log</log><errorlog>$dir/server.err.log</errorlog><size>100M</size><count>2</count></logger>
  <http_port>$CH_HTTP_PORT</http_port>
  <https_port>$CH_HTTPS_PORT</https_port>
  <openSSL><server>
    <certificateFile>$dir/tls/server.crt</certificateFile><privateKeyFile>$dir/tls/server.key</privateKeyFile>
    <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>
    <disableProtocols>sslv2,sslv3</disableProtocols><preferServerCiphers>true</preferServerCiphers>
  </server></openSSL>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <timezone>UTC</timezone>
</yandex>
XML
  (
    cd "$dir"
    nohup clickhouse-server --config-file="$dir/config.xml" >server.stdout 2>&1 &
    echo $! >server.pid
  )
  wait_port "$CH_HTTP_PORT" clickhouse
  log "clickhouse started on 127.0.0.1:$CH_HTTP_PORT (data $dir)"
}

moto_venv() { echo "$TOOLS_DIR/moto-$MOTO_VERSION"; }

# Python virtualenvs need Debian's python3-venv.
install_venv_support() {
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    log "installing python3-venv (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
}

install_moto() {
  local venv; venv=$(moto_venv)
  if [ -x "$venv/bin/moto_server" ]; then return; fi
  install_venv_support
  log "installing moto $MOTO_VERSION into $venv (once, ~35 s)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION" >&2
}

kubernetes_validate() { echo "$TOOLS_DIR/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION/bin/kubernetes-validate"; }

# kubernetes-validate: the Kubernetes schemas, bundled, for the manifests test.
install_kubernetes_validate() {
  local venv="$TOOLS_DIR/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
  if [ -x "$venv/bin/kubernetes-validate" ]; then return; fi
  install_venv_support
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv (once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
}

# One moto server: $1 port, $2 name (pid and log files), $3 "tls" for
# https:// with the test certificate. Bucket `sinkfleet` is created.
start_moto() {
  local port=$1 name=$2 tls=${3:-} dir=$STATE_DIR/moto venv scheme=http
  venv=$(moto_venv)
  if port_open "$port"; then log "moto already listening on 127.0.0.1:$port"; return; fi
  mkdir -p "$dir"
  local args=(-H 127.0.0.1 -p "$port")
  if [ "$tls" = tls ]; then
    test_certs "$dir/tls"
    args+=(--ssl-cert "$dir/tls/server.crt" --ssl-key "$dir/tls/server.key")
    scheme=https
  fi
  (
    cd "$dir"
    nohup "$venv/bin/moto_server" "${args[@]}" >"$name.log" 2>&1 &
    echo $! >"$name.pid"
  )
  wait_port "$port" moto
  "$venv/bin/python" - "$scheme://127.0.0.1:$port" "$dir/tls/ca.crt" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="sinkfleet", aws_secret_access_key="sinkfleet",
                  verify=sys.argv[2] if sys.argv[1].startswith("https") else None)
s3.create_bucket(Bucket="sinkfleet")
PY
  log "moto (S3) started on $scheme://127.0.0.1:$port, bucket sinkfleet (in memory)"
}

start_s3() {
  install_moto
  start_moto "$S3_PORT" server
  start_moto "$S3_TLS_PORT" server-tls tls
}

stop_s3() {
  local name port
  for name in server server-tls; do
    local pidfile=$STATE_DIR/moto/$name.pid
    [ -f "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    port=$S3_PORT; [ $name = server-tls ] && port=$S3_TLS_PORT
    for _ in $(seq 1 50); do port_open "$port" || break; sleep 0.1; done
    rm -f "$pidfile"
    log "moto ($name) stopped"
  done
}

serializers_venv() { echo "$TOOLS_DIR/confluent-kafka-$CONFLUENT_KAFKA_VERSION"; }

# Confluent's Python client with its schema-registry serializers (Avro via
# fastavro, Protobuf, JSON Schema): test data is framed by Confluent's own
# code, not ours. Checked by importing them, so a half-done install is redone.
install_serializers() {
  local venv; venv=$(serializers_venv)
  local check='import confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.protobuf, confluent_kafka.schema_registry.json_schema, google.protobuf.message_factory, google.type.date_pb2'
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then return; fi
  install_venv_support
  log "installing confluent-kafka[avro,json,protobuf,schemaregistry] $CONFLUENT_KAFKA_VERSION into $venv (once, ~15 s)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "confluent-kafka[avro,json,protobuf,schemaregistry]==$CONFLUENT_KAFKA_VERSION" \
    "protobuf==$PROTOBUF_VERSION" "googleapis-common-protos==$GOOGLEAPIS_COMMON_PROTOS_VERSION" \
    "jsonschema==$JSONSCHEMA_VERSION" "referencing==$REFERENCING_VERSION" >&2
  "$venv/bin/python" -c "$check" || { log "confluent-kafka's serializers do not import from $venv"; return 1; }
}

# The project's test schema registry (scripts/schema-registry.py, Python
# standard library only): plain HTTP on REGISTRY_PORT, HTTPS with basic auth
# on REGISTRY_TLS_PORT. Schemas and ids persist in registry.json.
start_registry() {
  local dir=$STATE_DIR/schema-registry
  if port_open "$REGISTRY_PORT"; then log "schema registry already listening on 127.0.0.1:$REGISTRY_PORT"; return; fi
  install_venv_support
  mkdir -p "$dir"
  test_certs "$dir/tls"
  (
    cd "$dir"
    nohup python3 "$ROOT/scripts/schema-registry.py" --data "$dir/registry.json" \
      --port "$REGISTRY_PORT" --tls-port "$REGISTRY_TLS_PORT" \
      --cert "$dir/tls/server.crt" --key "$dir/tls/server.key" \
      --user "$REGISTRY_USER" --password "$REGISTRY_PASSWORD" >registry.log 2>&1 &
    echo $! >registry.pid
  )
  wait_port "$REGISTRY_PORT" "schema registry"
  wait_port "$REGISTRY_TLS_PORT" "schema registry (https)"
  log "schema registry started on http://127.0.0.1:$REGISTRY_PORT and https://127.0.0.1:$REGISTRY_TLS_PORT (data $dir/registry.json)"
}

stop_registry() {
  local pidfile=$STATE_DIR/schema-registry/registry.pid
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do port_open "$REGISTRY_PORT" || port_open "$REGISTRY_TLS_PORT" || break; sleep 0.1; done
  rm -f "$pidfile"
  log "schema registry stopped"
}

chdb_venv() { echo "$TOOLS_DIR/chdb-$CHDB_VERSION"; }

install_chdb() {
  local venv; venv=$(chdb_venv)
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import chdb' 2>/dev/null; then return; fi
  install_venv_support
  log "installing chdb $CHDB_VERSION (the current ClickHouse engine, ~530 MB) into $venv (once, ~1 min)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "chdb==$CHDB_VERSION" "chdb-core==$CHDB_CORE_VERSION" >&2
}

# scripts/chdb-server.py on CH_CURRENT_PORT, data in $STATE_DIR/chdb.
start_chdb() {
  local dir=$STATE_DIR/chdb
  if port_open "$CH_CURRENT_PORT"; then log "current ClickHouse engine already listening on 127.0.0.1:$CH_CURRENT_PORT"; return; fi
  install_chdb
  mkdir -p "$dir"
  nohup "$(chdb_venv)/bin/python" "$ROOT/scripts/chdb-server.py" --port "$CH_CURRENT_PORT" \
    --data "$dir/data" >"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  wait_port "$CH_CURRENT_PORT" "current ClickHouse engine (chdb, $dir/server.log)"
  log "current ClickHouse engine (chdb $CHDB_VERSION) on http://127.0.0.1:$CH_CURRENT_PORT"
}

# Stops the process of pid file $1 listening on port $2 ($3 names it):
# SIGTERM, up to 5 s for the port to close, then SIGKILL.
stop_pidfile() {
  local pidfile=$1 port=$2 what=$3
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 1 50); do port_open "$port" || break; sleep 0.1; done
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    log "$what stopped"
  fi
}

stop_chdb() { stop_pidfile "$STATE_DIR/chdb/server.pid" "$CH_CURRENT_PORT" "current ClickHouse engine"; }

python_tools() {
  install_moto
  local venv; venv=$(moto_venv)
  if ! "$venv/bin/python" -c 'import pyarrow' 2>/dev/null; then
    log "installing pyarrow $PYARROW_VERSION into $venv"
    "$venv/bin/pip" install -q "pyarrow==$PYARROW_VERSION" >&2
  fi
  echo "$venv/bin/python"
}

stop_all() {
  local dir; dir=$(pg_dir)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast stop >/dev/null || true
    log "postgres stopped"
  fi
  local pidfile=$STATE_DIR/tansu/broker.pid pid=""
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
  else
    # Started by another checkout: find our broker by its exact command line.
    pid=$(command -v pgrep >/dev/null && pgrep -f "$TANSU broker --listener-url tcp://127.0.0.1:$KAFKA_PORT " || true)
  fi
  if [ -n "$pid" ]; then
    # tansu does not always exit on SIGTERM: give it 5 s, then SIGKILL
    # (its sqlite storage is transactional).
    kill $pid 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    kill -9 $pid 2>/dev/null || true
    for _ in $(seq 1 50); do port_open "$KAFKA_PORT" || break; sleep 0.1; done
    log "tansu stopped"
  fi
  rm -f "$pidfile"
  stop_clickhouse
  stop_chdb
  stop_s3
  stop_registry
}

stop_clickhouse() { stop_pidfile "$STATE_DIR/clickhouse/server.pid" "$CH_HTTP_PORT" clickhouse; }

print_env() {
  cat <<ENV
export SINKFLEET_PG_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export SINKFLEET_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export SINKFLEET_CLICKHOUSE_URL=http://127.0.0.1:$CH_HTTP_PORT
export SINKFLEET_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:$CH_HTTPS_PORT
export SINKFLEET_CLICKHOUSE_CA=$STATE_DIR/clickhouse/tls/ca.crt
export SINKFLEET_CLICKHOUSE_CURRENT_URL=http://127.0.0.1:$CH_CURRENT_PORT
export SINKFLEET_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export SINKFLEET_S3_TLS_ENDPOINT=https://127.0.0.1:$S3_TLS_PORT
export SINKFLEET_S3_CA=$STATE_DIR/moto/tls/ca.crt
export SINKFLEET_PG_CA=$(pg_ca)
export SINKFLEET_KUBERNETES_VALIDATE=$(kubernetes_validate)
export SINKFLEET_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
export SINKFLEET_REGISTRY_TLS_URL=https://127.0.0.1:$REGISTRY_TLS_PORT
export SINKFLEET_REGISTRY_CA=$STATE_DIR/schema-registry/tls/ca.crt
export SINKFLEET_REGISTRY_USER=$REGISTRY_USER
export SINKFLEET_REGISTRY_PASSWORD=$REGISTRY_PASSWORD
export SINKFLEET_SERIALIZERS_PYTHON=$(serializers_venv)/bin/python
ENV
}

# The CA of the Postgres that is listening, which another checkout may have
# started: its ca.crt sits beside its data directory.
pg_ca() {
  local data
  if data=$(psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -XAtc 'SHOW data_directory' 2>/dev/null) \
     && [ -f "$(dirname "$data")/ca.crt" ]; then
    echo "$(dirname "$data")/ca.crt"
  else
    echo "$(pg_dir)/ca.crt"
  fi
}

case "${1:-}" in
  start) install_build_deps; install_prometheus; install_kubernetes_validate; start_postgres; start_kafka; start_clickhouse; start_chdb; start_s3; install_serializers; start_registry; print_env ;;
  build-deps) install_build_deps ;;
  stop) stop_all ;;
  status)
    port_open "$PG_PORT" && echo "postgres: up (127.0.0.1:$PG_PORT)" || echo "postgres: down"
    port_open "$KAFKA_PORT" && echo "kafka (tansu): up (127.0.0.1:$KAFKA_PORT)" || echo "kafka (tansu): down"
    port_open "$CH_HTTP_PORT" && echo "clickhouse: up (127.0.0.1:$CH_HTTP_PORT)" || echo "clickhouse: down"
    port_open "$CH_CURRENT_PORT" && echo "clickhouse, current engine (chdb): up (127.0.0.1:$CH_CURRENT_PORT)" || echo "clickhouse, current engine (chdb): down"
    port_open "$S3_PORT" && echo "s3 (moto): up (127.0.0.1:$S3_PORT)" || echo "s3 (moto): down"
    port_open "$S3_TLS_PORT" && echo "s3 (moto, https): up (127.0.0.1:$S3_TLS_PORT)" || echo "s3 (moto, https): down"
    port_open "$REGISTRY_PORT" && echo "schema registry: up (127.0.0.1:$REGISTRY_PORT)" || echo "schema registry: down"
    port_open "$REGISTRY_TLS_PORT" && echo "schema registry (https): up (127.0.0.1:$REGISTRY_TLS_PORT)" || echo "schema registry (https): down" ;;
  python) python_tools ;;
  serializers-python) install_serializers; echo "$(serializers_venv)/bin/python" ;;
  stop-registry) stop_registry ;;
  start-registry) start_registry ;;
  env) print_env ;;
  stop-clickhouse) stop_clickhouse ;;
  kill-clickhouse)
    chpid=$STATE_DIR/clickhouse/server.pid
    if [ -f "$chpid" ]; then kill -9 "$(cat "$chpid")" 2>/dev/null || true; rm -f "$chpid"; fi
    for _ in $(seq 1 50); do port_open "$CH_HTTP_PORT" || break; sleep 0.1; done
    log "clickhouse killed" ;;
  start-clickhouse) start_clickhouse ;;
  *) echo "usage: $0 start|stop|status|env|python|serializers-python|build-deps|stop-clickhouse|kill-clickhouse|start-clickhouse|stop-registry|start-registry" >&2; exit 2 ;;
esac
