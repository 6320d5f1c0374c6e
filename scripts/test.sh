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
  SINKFLEET_REGISTRY_USER SINKFLEET_REGISTRY_PASSWORD SINKFLEET_SERIALIZERS_PYTHON
# Integration tests spawn workers and brokers' clients: on 2 cores, a few at a time.
# --no-fail-fast: one failing test binary must not hide the others' results.
cargo test --workspace --locked --no-fail-fast -- --test-threads "${SINKFLEET_TEST_THREADS:-4}"
