//! Where the local services are. `scripts/services.sh env` exports their
//! addresses as `SINKFLEET_*` variables (`scripts/test.sh` does it for the
//! suite); this module is the only reader of them. An address has the
//! scripts' local default; a setting with no sensible default (a CA file,
//! a tool's path) fails the test naming the variable and the script.

/// `name`, or `default` when it is not set.
fn or_default(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `name`; panics naming it when it is not set.
fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through scripts/test.sh (or eval \"$(scripts/services.sh env)\")")
    })
}

/// Postgres: `postgres://postgres@127.0.0.1:55432/postgres`.
pub fn pg_url() -> String {
    or_default(
        "SINKFLEET_PG_URL",
        "postgres://postgres@127.0.0.1:55432/postgres",
    )
}

/// The port of [`pg_url`], for configs that name host and port apart
/// (the publisher's Debezium properties).
pub fn pg_port() -> String {
    let url = pg_url();
    url.rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .unwrap_or("55432")
        .to_owned()
}

/// The CA that signed the local Postgres's TLS certificate.
pub fn pg_ca() -> String {
    required("SINKFLEET_PG_CA")
}

/// Kafka (tansu): `bootstrap.servers`.
pub fn brokers() -> String {
    or_default("SINKFLEET_KAFKA_BROKERS", "127.0.0.1:59092")
}

/// ClickHouse's HTTP interface (18.16, or the current engine on the
/// suite's second pass, which points this variable at it).
pub fn clickhouse_url() -> String {
    or_default("SINKFLEET_CLICKHOUSE_URL", "http://127.0.0.1:58123")
}

/// ClickHouse's native TCP port, for `clickhouse-client` in the benches.
pub fn clickhouse_tcp_port() -> String {
    or_default("SINKFLEET_CLICKHOUSE_TCP_PORT", "59000")
}

/// ClickHouse's HTTPS interface and the CA that signed its certificate.
pub fn clickhouse_https() -> (String, String) {
    (
        required("SINKFLEET_CLICKHOUSE_HTTPS_URL"),
        required("SINKFLEET_CLICKHOUSE_CA"),
    )
}

/// The S3-compatible server (moto).
pub fn s3_endpoint() -> String {
    or_default("SINKFLEET_S3_ENDPOINT", "http://127.0.0.1:59900")
}

/// The S3-compatible server over TLS, and the CA that signed it.
pub fn s3_tls() -> (String, String) {
    (
        required("SINKFLEET_S3_TLS_ENDPOINT"),
        required("SINKFLEET_S3_CA"),
    )
}

/// The project's test Schema Registry.
pub fn registry_url() -> String {
    or_default("SINKFLEET_REGISTRY_URL", "http://127.0.0.1:58081")
}

/// The registry behind TLS and basic authentication.
pub struct RegistryTls {
    /// Its `https://` URL.
    pub url: String,
    /// The CA that signed its certificate.
    pub ca: String,
    /// Basic-auth user.
    pub user: String,
    /// Basic-auth password.
    pub password: String,
}

/// [`RegistryTls`], when the scripts exported it.
pub fn registry_tls() -> Option<RegistryTls> {
    let var = |name: &str| std::env::var(name).ok();
    Some(RegistryTls {
        url: var("SINKFLEET_REGISTRY_TLS_URL")?,
        ca: var("SINKFLEET_REGISTRY_CA")?,
        user: var("SINKFLEET_REGISTRY_USER")?,
        password: var("SINKFLEET_REGISTRY_PASSWORD")?,
    })
}

/// The Python that has Confluent's serializers (confluent-kafka), when
/// the scripts installed it.
pub fn serializers_python() -> Option<String> {
    std::env::var("SINKFLEET_SERIALIZERS_PYTHON").ok()
}

/// [`serializers_python`], required.
pub fn serializers_python_required() -> String {
    required("SINKFLEET_SERIALIZERS_PYTHON")
}

/// The `kubernetes-validate` tool the scripts installed.
pub fn kubernetes_validate() -> String {
    required("SINKFLEET_KUBERNETES_VALIDATE")
}
