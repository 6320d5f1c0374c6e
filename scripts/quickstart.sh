#!/usr/bin/env bash
# The main job on local defaults, the whole pipeline end to end:
#   source Postgres --(sinkfleet publish)--> Kafka (tansu) --(sinkfleet run)--> target Postgres
#  1. install and start PostgreSQL 15 and tansu on 127.0.0.1 (idempotent);
#  2. create a demo source schema: orders (numeric, timestamptz) and products
#     (a large TOASTed description), with rows for the initial snapshot;
#  3. start the publisher (Debezium connector config, config/publisher.yaml)
#     and a sink worker (config/postgres.yaml);
#  4. run a workload: inserts, updates, deletes, price updates that leave the
#     TOASTed description unchanged, and an ALTER TABLE ADD COLUMN halfway;
#  5. prove the target identical to the source (row counts and a checksum per
#     table), then stop both with SIGTERM.
# Each run uses fresh names (schemas, topics, slot, publication, group); the
# slot is dropped when the publisher stops (slot.drop.on.stop).
#
# FORMAT=avro runs the same pipeline in Avro: the publisher writes keys and
# values as Confluent's AvroConverter does, through the local test Schema
# Registry, and the worker reads them with decode.formats (docs/formats.md).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TRANSACTIONS=${TRANSACTIONS:-3000}
FORMAT=${FORMAT:-json}
case "$FORMAT" in json|avro) ;; *) echo "FORMAT must be json or avro, not $FORMAT" >&2; exit 2 ;; esac
RUN=qs_$(date +%Y%m%d_%H%M%S)
SRC=${RUN}_src
DST=${RUN}_dst
PUB_PORT=${PUB_PORT:-9465}
SINK_PORT=${SINK_PORT:-9464}
mkdir -p .local

eval "$(scripts/services.sh start)"
echo "== building (release)"
cargo build --release --locked --bins -q
BIN=target/release

echo "== source: creating schema $SRC"
"$BIN/sinkfleet-demo" source-setup --schema "$SRC"

echo "== starting the publisher (slot ${RUN}_slot, topics $RUN.$SRC.*)"
PUB_CONFIG=.local/$RUN.publisher.yaml
sed -e "s/^  topic.prefix: .*/  topic.prefix: $RUN/" \
    -e "s/^  slot.name: .*/  slot.name: ${RUN}_slot\n  slot.drop.on.stop: true/" \
    -e "s/^  publication.name: .*/  publication.name: ${RUN}_pub/" \
    -e "s/^  table.include.list: .*/  table.include.list: $SRC.orders,$SRC.products/" \
    -e "s/^  metrics_listen: .*/  metrics_listen: 127.0.0.1:$PUB_PORT/" \
    config/publisher.yaml >"$PUB_CONFIG"
WORKER_CONFIG=config/postgres.yaml
if [ "$FORMAT" = avro ]; then
  for part in key value; do
    sed -i -e "s|^  # $part.converter: io.confluent.connect.avro.AvroConverter|  $part.converter: io.confluent.connect.avro.AvroConverter|" \
      -e "s|^  # $part.converter.schema.registry.url: .*|  $part.converter.schema.registry.url: $SINKFLEET_REGISTRY_URL|" "$PUB_CONFIG"
  done
  WORKER_CONFIG=.local/$RUN.worker.yaml
  sed -e "s|^decode:|decode:\n  formats: [{ topics: '^$RUN\\\\..*', key: avro, value: avro }]\n  registry: { url: \"$SINKFLEET_REGISTRY_URL\" }|" \
    config/postgres.yaml >"$WORKER_CONFIG"
  echo "== Avro through the Schema Registry at $SINKFLEET_REGISTRY_URL"
fi
"$BIN/sinkfleet" publish --config "$PUB_CONFIG" >".local/$RUN.publisher.log" 2>&1 &
PUBLISHER=$!
WORKER=""
trap 'kill $PUBLISHER $WORKER 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  grep -q "snapshot complete" ".local/$RUN.publisher.log" && break
  kill -0 $PUBLISHER 2>/dev/null || { cat ".local/$RUN.publisher.log"; echo "FAIL: publisher exited" >&2; exit 1; }
  sleep 0.5
done
grep "snapshot complete" ".local/$RUN.publisher.log" | sed 's/^/   /'

echo "== starting the sink worker (target schema $DST)"
SINKFLEET__KAFKA__TOPICS="[$RUN.$SRC.orders, $RUN.$SRC.products]" \
SINKFLEET__KAFKA__GROUP_ID="$RUN" \
SINKFLEET__DEAD_LETTER__TOPIC="$RUN.dlq" \
SINKFLEET__SINK__POSTGRES__TARGET_SCHEMA="$DST" \
SINKFLEET__SINK__POSTGRES__META_SCHEMA="${RUN}_meta" \
SINKFLEET__METRICS__LISTEN="127.0.0.1:$SINK_PORT" \
  "$BIN/sinkfleet" run --config "$WORKER_CONFIG" >".local/$RUN.worker.log" 2>&1 &
WORKER=$!

echo "== workload: $TRANSACTIONS transactions against $SRC"
started=$(date +%s)
"$BIN/sinkfleet-demo" source-load --schema "$SRC" --transactions "$TRANSACTIONS"

echo "== waiting for the target to be identical to the source"
# The wait stops as soon as the publisher or the worker is gone, with its log.
"$BIN/sinkfleet-demo" source-verify --schema "$SRC" --target "$DST" --timeout-secs 600 &
VERIFY=$!
while kill -0 $VERIFY 2>/dev/null; do
  for proc in "publisher:$PUBLISHER" "worker:$WORKER"; do
    if ! kill -0 "${proc#*:}" 2>/dev/null; then
      kill $VERIFY 2>/dev/null || true
      tail -20 ".local/$RUN.${proc%%:*}.log" >&2
      echo "FAIL: the ${proc%%:*} exited while the target was being compared (log: .local/$RUN.${proc%%:*}.log)" >&2
      exit 1
    fi
  done
  sleep 1
done
wait $VERIFY
elapsed=$(( $(date +%s) - started ))

# Sum of a metric's samples, read with bash alone (no curl on a fresh machine).
metric() {
  local text
  text=$(exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3)
  awk -v m="$2" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }' <<<"$text"
}
echo "== metrics"
echo "   publisher events produced: $(metric "$PUB_PORT" sinkfleet_publisher_events_total)"
echo "   publisher slot lag bytes:  $(metric "$PUB_PORT" sinkfleet_publisher_slot_lag_bytes)"
echo "   sink records in:           $(metric "$SINK_PORT" sinkfleet_records_in_total)"
echo "   sink rows applied:         $(metric "$SINK_PORT" sinkfleet_records_applied_total)"
echo "   sink dead-lettered:        $(metric "$SINK_PORT" sinkfleet_records_dead_lettered_total)"

kill -TERM $WORKER $PUBLISHER
wait $WORKER $PUBLISHER
trap - EXIT
echo "== publisher and worker stopped cleanly (logs: .local/$RUN.*.log)"
echo "OK: $TRANSACTIONS source transactions ($FORMAT) reached $DST identical, ${elapsed}s after the workload started"
