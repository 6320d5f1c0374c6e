#!/usr/bin/env bash
# The sink alone, fed a synthetic Debezium stream straight into Kafka (the
# main job, scripts/quickstart.sh, runs the whole pipeline instead):
#   1. install and start PostgreSQL 15 and a Kafka-protocol broker (tansu) on 127.0.0.1;
#   2. produce a realistic Debezium change stream for `public.customers` (creates,
#      updates, TOAST-partial updates, deletes with tombstones, re-creates, a column
#      added mid-stream, duplicates, a replayed range, out-of-order updates);
#   3. run a sinkfleet worker (config/postgres.yaml) into Postgres, showing progress;
#   4. verify the target equals the expected final state, stop the worker with
#      SIGTERM, and check that every offset was committed.
# Each run uses a fresh topic, consumer group and target schema.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CHANGES=${CHANGES:-50000}
KEYS=${KEYS:-5000}
RUN=qs_$(date +%Y%m%d_%H%M%S)
TOPIC=$RUN.public.customers
METRICS_PORT=${METRICS_PORT:-9464}

eval "$(scripts/services.sh start)"
echo "== building (release)"
cargo build --release --locked --bins -q
BIN=target/release

echo "== producing $CHANGES changes over $KEYS keys to $TOPIC"
"$BIN/sinkfleet-demo" --topic "$TOPIC" --changes "$CHANGES" --keys "$KEYS" produce --partitions 4

echo "== starting the worker (group $RUN, target schema $RUN)"
LOG=$ROOT/.local/$RUN.worker.log
SINKFLEET__KAFKA__TOPICS="[$TOPIC]" \
SINKFLEET__KAFKA__GROUP_ID="$RUN" \
SINKFLEET__DEAD_LETTER__TOPIC="$RUN.dlq" \
SINKFLEET__SINK__POSTGRES__TARGET_SCHEMA="$RUN" \
SINKFLEET__SINK__POSTGRES__META_SCHEMA="${RUN}_meta" \
SINKFLEET__METRICS__LISTEN="127.0.0.1:$METRICS_PORT" \
  "$BIN/sinkfleet" run --config config/postgres.yaml >"$LOG" 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT

echo "== waiting for the target to converge (metrics: http://127.0.0.1:$METRICS_PORT/metrics)"
started=$(date +%s)
"$BIN/sinkfleet-demo" --topic "$TOPIC" --changes "$CHANGES" --keys "$KEYS" verify --schema "$RUN" --timeout-secs 600
elapsed=$(( $(date +%s) - started ))

# Sum of a metric's samples, read with bash alone (no curl on a fresh machine).
metric() {
  local text
  text=$(exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3)
  awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }' <<<"$text"
}
# Commits happen every second. The topic is new (offsets start at 0), so
# once everything is committed the committed offsets add up to the records read.
for _ in $(seq 1 30); do
  records_in=$(metric sinkfleet_records_in_total)
  committed=$(metric sinkfleet_committed_offset)
  [ "$committed" = "$records_in" ] && break
  sleep 1
done
if [ "$committed" != "$records_in" ]; then
  echo "FAIL: committed offsets ($committed) never covered the records read ($records_in)" >&2
  exit 1
fi
echo "== worker metrics"
echo "   records in:            $(metric sinkfleet_records_in_total)"
echo "   rows applied:          $(metric sinkfleet_records_applied_total)"
echo "   skipped as stale:      $(metric sinkfleet_records_skipped_stale_total)"
echo "   dead-lettered:         $(metric sinkfleet_records_dead_lettered_total)"
echo "   committed offsets:     $committed of $records_in records (all durable)"

kill -TERM $WORKER
wait $WORKER
trap - EXIT
echo "== worker stopped cleanly (log: $LOG)"
echo "OK: $CHANGES changes converged into $RUN.customers in ${elapsed}s"
