#!/usr/bin/env bash
# The whole test suite: starts the local services (installing what is
# missing), then runs every unit and integration test against them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
eval "$(scripts/services.sh start)"
export SINKFLEET_PG_URL SINKFLEET_KAFKA_BROKERS SINKFLEET_CLICKHOUSE_URL SINKFLEET_CLICKHOUSE_HTTPS_URL SINKFLEET_CLICKHOUSE_CA \
  SINKFLEET_S3_ENDPOINT SINKFLEET_S3_TLS_ENDPOINT SINKFLEET_S3_CA SINKFLEET_PG_CA \
  SINKFLEET_KUBERNETES_VALIDATE SINKFLEET_REGISTRY_URL SINKFLEET_REGISTRY_TLS_URL SINKFLEET_REGISTRY_CA \
  SINKFLEET_REGISTRY_USER SINKFLEET_REGISTRY_PASSWORD SINKFLEET_SERIALIZERS_PYTHON \
  SINKFLEET_CLICKHOUSE_CURRENT_URL
THREADS=${SINKFLEET_TEST_THREADS:-4}
# Integration tests spawn workers and brokers' clients: on 2 cores, a few at a time.
# --no-fail-fast: one failing test binary must not hide the others' results.
status=0
cargo test --workspace --locked --no-fail-fast -- --test-threads "$THREADS" || status=$?
# The ClickHouse tests again, against the current ClickHouse engine (chdb,
# scripts/chdb-server.py) instead of Debian's 18.16. Left out: HTTPS (the
# front serves plain HTTP) and the server restart (18.16's process).
echo "== ClickHouse tests against the current engine ($SINKFLEET_CLICKHOUSE_CURRENT_URL)"
export SINKFLEET_CLICKHOUSE_URL=$SINKFLEET_CLICKHOUSE_CURRENT_URL
# The executables the first pass built, run directly: cargo would rebuild
# dependencies for the narrower selection (its features differ).
executables() {
  cargo test --workspace --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
wanted = set(sys.argv[1:])
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["kind"] == ["test"] \
            and m["target"]["name"] in wanted and m.get("executable"):
        print(os.path.dirname(m["manifest_path"]), m["executable"])
' "$@"
}
# run_again FILTER NAME...: runs test executables NAME... with FILTER
# (libtest arguments); a name not found fails the suite, not skips it.
run_again() {
  local filter=$1; shift
  local found
  mapfile -t found < <(executables "$@")
  if [ "${#found[@]}" -ne "$#" ]; then
    echo "second pass: found ${#found[@]} of the test executables $*" >&2
    status=1
    return
  fi
  for line in "${found[@]}"; do
    (cd "${line%% *}" && "${line#* }" --test-threads "$THREADS" $filter) || status=$?
  done
}
run_again "--skip https" clickhouse
run_again "clickhouse_pipeline:: conformance::clickhouse fixtures::clickhouse" integration
exit $status
