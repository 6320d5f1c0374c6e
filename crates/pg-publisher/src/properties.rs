//! Every property of Debezium's PostgreSQL connector (3.x), and what this
//! publisher does with it: implemented; accepted because it changes
//! nothing this publisher writes; accepted only at the value that means
//! what this publisher does; or refused at start with what to do instead.
//! A property that would change the events is never accepted and ignored.
//! `docs/publisher.md` lists the same table for operators.

/// What the publisher does with a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Read and applied (`config`, `types::options`).
    Implemented,
    /// Changes nothing this publisher writes (a Kafka Connect runtime or
    /// JDBC tuning setting): accepted whatever its value.
    NoEffect,
    /// Accepted only at this value, which is what the publisher does.
    Only(&'static str),
    /// Refused, saying why or what to use instead.
    Refused(&'static str),
}

use Support::{Implemented, NoEffect, Only, Refused};

const NOT_IMPLEMENTED: &str = "not implemented by sinkfleet's publisher";
const JVM: &str = "a Java extension point: nothing to load here";
const REGISTRY_AUTH: &str =
    "only basic auth (basic.auth.credentials.source=USER_INFO) is implemented";
const JSON_SCHEMA_OPTION: &str =
    "changes how Java objects are turned into JSON: the publisher writes Connect values only";
const CONVERTER_OPTION: &str = "a converter option sinkfleet's publisher does not implement (see docs/publisher.md for those it does)";

/// The connector's properties by name.
pub const PROPERTIES: &[(&str, Support)] = &[
    // Connection.
    ("name", NoEffect),
    (
        "connector.class",
        Only("io.debezium.connector.postgresql.PostgresConnector"),
    ),
    ("tasks.max", Only("1")),
    ("topic.prefix", Implemented),
    ("database.hostname", Implemented),
    ("database.port", Implemented),
    ("database.user", Implemented),
    ("database.password", Implemented),
    ("database.dbname", Implemented),
    ("database.server.name", NoEffect), // Debezium 1.x; topic.prefix names the topics
    ("database.sslmode", Implemented),
    ("database.sslrootcert", Implemented),
    ("database.sslcert", Implemented),
    ("database.sslkey", Implemented),
    (
        "database.sslpassword",
        Refused("encrypted client keys are not supported: give an unencrypted database.sslkey"),
    ),
    ("database.sslfactory", Refused(JVM)),
    ("database.connection.factory.class", Refused(JVM)),
    ("database.query.timeout.ms", Refused(NOT_IMPLEMENTED)),
    ("database.tcpKeepAlive", Only("true")),
    ("database.initial.statements", Refused(NOT_IMPLEMENTED)),
    ("read.only", Only("false")),
    ("connection.validation.timeout.ms", NoEffect),
    // Replication, slot and publication.
    ("plugin.name", Only("pgoutput")),
    ("slot.name", Implemented),
    ("slot.drop.on.stop", Implemented),
    ("slot.failover", Refused("failover slots need Postgres 17")),
    (
        "slot.stream.params",
        Refused("pgoutput's parameters are fixed by the publisher"),
    ),
    ("slot.max.retries", Refused(NOT_IMPLEMENTED)),
    ("slot.retry.delay.ms", Refused(NOT_IMPLEMENTED)),
    (
        "offset.mismatch.strategy",
        Refused("offsets live in the slot only: there is nothing to mismatch"),
    ),
    ("publication.name", Implemented),
    ("publication.autocreate.mode", Implemented),
    ("publish.via.partition.root", Only("false")),
    ("replica.identity.autoset.values", Refused(NOT_IMPLEMENTED)),
    ("status.update.interval.ms", NoEffect), // the publisher reports every 500 ms
    ("lsn.flush.mode", Only("connector")),
    ("flush.lsn.source", Only("true")),
    ("lsn.flush.timeout.ms", NoEffect),
    ("lsn.flush.timeout.action", Only("fail")),
    ("xmin.fetch.interval.ms", Only("0")),
    ("message.prefix.include.list", Implemented),
    ("message.prefix.exclude.list", Implemented),
    // Filters.
    ("schema.include.list", Implemented),
    ("schema.exclude.list", Implemented),
    ("table.include.list", Implemented),
    ("table.exclude.list", Implemented),
    ("column.include.list", Implemented),
    ("column.exclude.list", Implemented),
    ("table.ignore.builtin", Only("true")),
    ("skip.messages.without.change", Only("false")),
    ("skipped.operations", Implemented),
    // Data representation.
    ("decimal.handling.mode", Implemented),
    ("time.precision.mode", Implemented),
    ("interval.handling.mode", Implemented),
    ("hstore.handling.mode", Implemented),
    ("binary.handling.mode", Implemented),
    ("money.fraction.digits", Implemented),
    ("include.unknown.datatypes", Implemented),
    ("unavailable.value.placeholder", Implemented),
    ("schema.name.adjustment.mode", Only("none")),
    ("field.name.adjustment.mode", Only("none")),
    ("include.schema.comments", Only("false")),
    ("column.propagate.source.type", Refused(NOT_IMPLEMENTED)),
    ("datatype.propagate.source.type", Refused(NOT_IMPLEMENTED)),
    ("message.key.columns", Implemented),
    ("converters", Refused(JVM)),
    ("post.processors", Refused(JVM)),
    (
        "sourceinfo.struct.maker",
        Only("io.debezium.connector.postgresql.PostgresSourceInfoStructMaker"),
    ),
    ("tombstones.on.delete", Implemented),
    ("provide.transaction.metadata", Implemented),
    (
        "transaction.metadata.factory",
        Only("io.debezium.pipeline.txmetadata.DefaultTransactionMetadataFactory"),
    ),
    ("extended.headers.enabled", Implemented),
    (
        "topic.naming.strategy",
        Only("io.debezium.schema.SchemaTopicNamingStrategy"),
    ),
    ("topic.delimiter", Only(".")),
    ("topic.cache.size", NoEffect),
    ("topic.transaction", Only("transaction")),
    ("topic.heartbeat.prefix", Only("__debezium-heartbeat")),
    ("heartbeat.topics.prefix", Only("__debezium-heartbeat")),
    // Snapshot.
    ("snapshot.mode", Implemented),
    (
        "snapshot.isolation.mode",
        Refused("the snapshot is read in the snapshot the slot exported (repeatable read)"),
    ),
    ("snapshot.locking.mode", Only("none")),
    ("snapshot.query.mode", Only("select_all")),
    ("snapshot.include.collection.list", Refused(NOT_IMPLEMENTED)),
    (
        "snapshot.select.statement.overrides",
        Refused(NOT_IMPLEMENTED),
    ),
    ("snapshot.lock.timeout.ms", NoEffect), // no locks are taken
    ("snapshot.fetch.size", NoEffect),      // rows are fetched 2000 at a time
    ("snapshot.delay.ms", Only("0")),
    ("streaming.delay.ms", Only("0")),
    ("snapshot.max.threads", Only("1")),
    ("snapshot.tables.order.by.row.count", Only("disabled")),
    // Signals and incremental snapshots.
    ("signal.data.collection", Implemented),
    ("signal.enabled.channels", Only("source")),
    ("signal.poll.interval.ms", NoEffect), // the source channel is read from the stream
    (
        "signal.kafka.topic",
        Refused("signals are read from the signal table only (signal.enabled.channels=source)"),
    ),
    ("incremental.snapshot.chunk.size", Implemented),
    // sinkfleet's own: backfill tables added to the include list.
    ("snapshot.new.tables", Implemented),
    (
        "incremental.snapshot.watermarking.strategy",
        Only("insert_insert"),
    ),
    ("incremental.snapshot.allow.schema.changes", Only("false")),
    ("notification.enabled.channels", Refused(NOT_IMPLEMENTED)),
    // Heartbeats.
    ("heartbeat.interval.ms", Implemented),
    ("heartbeat.action.query", Implemented),
    // Queues, errors, metrics.
    ("max.batch.size", NoEffect),
    ("max.queue.size", NoEffect),
    ("max.queue.size.in.bytes", NoEffect),
    ("poll.interval.ms", NoEffect),
    ("query.fetch.size", NoEffect),
    ("event.processing.failure.handling.mode", Implemented),
    ("event.converting.failure.handling.mode", Implemented),
    ("errors.max.retries", Refused(NOT_IMPLEMENTED)),
    ("retriable.restart.connector.wait.ms", NoEffect),
    ("custom.metric.tags", Refused(NOT_IMPLEMENTED)),
    ("statistics.metrics.enabled", NoEffect),
    ("include.schema.changes", Only("false")), // the PostgreSQL connector has no schema change topic
    // Kafka Connect's converters: JsonConverter, or Confluent's
    // AvroConverter, JsonSchemaConverter or ProtobufConverter through a
    // Schema Registry (`avro`, `json_schema`, `protobuf`),
    // for key and value independently.
    ("key.converter", Implemented),
    ("value.converter", Implemented),
    (
        "header.converter",
        Only("org.apache.kafka.connect.storage.SimpleHeaderConverter"),
    ),
    ("key.converter.schemas.enable", Implemented),
    ("value.converter.schemas.enable", Implemented),
    ("value.converter.replace.null.with.default", Implemented),
    ("key.converter.schema.registry.url", Implemented),
    ("value.converter.schema.registry.url", Implemented),
    ("key.converter.basic.auth.credentials.source", Implemented),
    ("value.converter.basic.auth.credentials.source", Implemented),
    ("key.converter.basic.auth.user.info", Implemented),
    ("value.converter.basic.auth.user.info", Implemented),
    // AvroConverter options at the value that is what this publisher does.
    ("key.converter.auto.register.schemas", Only("true")),
    ("value.converter.auto.register.schemas", Only("true")),
    ("key.converter.use.latest.version", Only("false")),
    ("value.converter.use.latest.version", Only("false")),
    (
        "key.converter.key.subject.name.strategy",
        Only("io.confluent.kafka.serializers.subject.TopicNameStrategy"),
    ),
    (
        "value.converter.value.subject.name.strategy",
        Only("io.confluent.kafka.serializers.subject.TopicNameStrategy"),
    ),
    ("key.converter.enhanced.avro.schema.support", Only("false")),
    (
        "value.converter.enhanced.avro.schema.support",
        Only("false"),
    ),
    ("key.converter.connect.meta.data", Only("true")),
    ("value.converter.connect.meta.data", Only("true")),
    ("key.converter.scrub.invalid.names", Only("false")),
    ("value.converter.scrub.invalid.names", Only("false")),
    ("key.converter.normalize.schemas", Only("false")),
    ("value.converter.normalize.schemas", Only("false")),
    ("key.converter.schemas.cache.config", NoEffect),
    ("value.converter.schemas.cache.config", NoEffect),
    (
        "key.converter.schema.registry.ssl.truststore.location",
        Implemented,
    ),
    (
        "key.converter.schema.registry.ssl.truststore.type",
        Only("PEM"),
    ),
    (
        "value.converter.schema.registry.ssl.truststore.location",
        Implemented,
    ),
    (
        "value.converter.schema.registry.ssl.truststore.type",
        Only("PEM"),
    ),
    (
        "key.converter.bearer.auth.credentials.source",
        Refused(REGISTRY_AUTH),
    ),
    (
        "value.converter.bearer.auth.credentials.source",
        Refused(REGISTRY_AUTH),
    ),
    // JsonSchemaConverter (JsonSchemaDataConfig, KafkaJsonSchemaSerializerConfig)
    // options at the value that is what this publisher does (`json_schema`).
    ("key.converter.json.fail.invalid.schema", Only("false")),
    ("value.converter.json.fail.invalid.schema", Only("false")),
    ("key.converter.json.fail.unknown.properties", Only("true")),
    ("value.converter.json.fail.unknown.properties", Only("true")),
    (
        "key.converter.json.validate.before.domain.rules",
        Only("false"),
    ),
    (
        "value.converter.json.validate.before.domain.rules",
        Only("false"),
    ),
    ("key.converter.json.write.dates.iso8601", Only("false")),
    ("value.converter.json.write.dates.iso8601", Only("false")),
    ("key.converter.json.schema.spec.version", Only("draft_7")),
    ("value.converter.json.schema.spec.version", Only("draft_7")),
    ("key.converter.json.oneof.for.nullables", Only("true")),
    ("value.converter.json.oneof.for.nullables", Only("true")),
    ("key.converter.json.indent.output", Only("false")),
    ("value.converter.json.indent.output", Only("false")),
    ("key.converter.json.envelope.detection", Only("true")),
    ("value.converter.json.envelope.detection", Only("true")),
    (
        "key.converter.json.default.property.inclusion",
        Refused(JSON_SCHEMA_OPTION),
    ),
    (
        "value.converter.json.default.property.inclusion",
        Refused(JSON_SCHEMA_OPTION),
    ),
    (
        "key.converter.json.schema.scan.packages",
        Refused(JSON_SCHEMA_OPTION),
    ),
    (
        "value.converter.json.schema.scan.packages",
        Refused(JSON_SCHEMA_OPTION),
    ),
    ("key.converter.validation.rules.execution", Only("DISABLED")),
    (
        "value.converter.validation.rules.execution",
        Only("DISABLED"),
    ),
    ("key.converter.object.additional.properties", Only("true")),
    ("value.converter.object.additional.properties", Only("true")),
    ("key.converter.use.optional.for.nonrequired", Only("false")),
    (
        "value.converter.use.optional.for.nonrequired",
        Only("false"),
    ),
    ("key.converter.ignore.modern.dialects", Only("false")),
    ("value.converter.ignore.modern.dialects", Only("false")),
    ("key.converter.decimal.format", Only("BASE64")),
    ("value.converter.decimal.format", Only("BASE64")),
    ("key.converter.flatten.singleton.unions", Only("true")),
    ("value.converter.flatten.singleton.unions", Only("true")),
    (
        "key.converter.preserve.additional.properties",
        Only("false"),
    ),
    (
        "value.converter.preserve.additional.properties",
        Only("false"),
    ),
    ("key.converter.generalized.sum.type.support", Only("false")),
    (
        "value.converter.generalized.sum.type.support",
        Only("false"),
    ),
    ("key.converter.ignore.default.for.nullables", Only("false")),
    (
        "value.converter.ignore.default.for.nullables",
        Only("false"),
    ),
    // ProtobufConverter (ProtobufDataConfig, KafkaProtobufSerializerConfig)
    // options at the value that is what this publisher does (`protobuf`).
    (
        "key.converter.enhanced.protobuf.schema.support",
        Only("false"),
    ),
    (
        "value.converter.enhanced.protobuf.schema.support",
        Only("false"),
    ),
    ("key.converter.int.for.enums", Only("false")),
    ("value.converter.int.for.enums", Only("false")),
    ("key.converter.optional.for.nullables", Implemented),
    ("value.converter.optional.for.nullables", Implemented),
    ("key.converter.optional.for.proto2", Only("true")),
    ("value.converter.optional.for.proto2", Only("true")),
    ("key.converter.wrapper.for.nullables", Only("false")),
    ("value.converter.wrapper.for.nullables", Only("false")),
    ("key.converter.wrapper.for.raw.primitives", Only("true")),
    ("value.converter.wrapper.for.raw.primitives", Only("true")),
    ("key.converter.generate.struct.for.nulls", Only("false")),
    ("value.converter.generate.struct.for.nulls", Only("false")),
    ("key.converter.generate.index.for.unions", Only("true")),
    ("value.converter.generate.index.for.unions", Only("true")),
    ("key.converter.flatten.unions", Only("false")),
    ("value.converter.flatten.unions", Only("false")),
    ("key.converter.reference.lookup.only", Only("false")),
    ("value.converter.reference.lookup.only", Only("false")),
    ("key.converter.skip.known.types", Only("true")),
    ("value.converter.skip.known.types", Only("true")),
    (
        "key.converter.reference.subject.name.strategy",
        Only("io.confluent.kafka.serializers.subject.DefaultReferenceSubjectNameStrategy"),
    ),
    (
        "value.converter.reference.subject.name.strategy",
        Only("io.confluent.kafka.serializers.subject.DefaultReferenceSubjectNameStrategy"),
    ),
    ("errors.log.enable", NoEffect),
    ("errors.log.include.messages", NoEffect),
];

/// Property name prefixes that pass settings to Java components.
const REFUSED_PREFIXES: &[(&str, &str)] = &[
    ("driver.", JVM),
    (
        "signal.",
        "signals other than the signal table's are not implemented",
    ),
    (
        "transforms",
        "single message transforms run in Kafka Connect, not here",
    ),
    (
        "predicates",
        "single message transforms run in Kafka Connect, not here",
    ),
    ("key.converter.", CONVERTER_OPTION),
    ("value.converter.", CONVERTER_OPTION),
];

/// How `key` is supported (`None`: not a property of the connector).
pub fn support(key: &str) -> Option<Support> {
    PROPERTIES
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, s)| *s)
        .or_else(|| {
            // Read by the configuration parser, which names what is wrong.
            crate::column_mappers::is_mapper_property(key).then_some(Implemented)
        })
        .or_else(|| {
            REFUSED_PREFIXES
                .iter()
                .find(|(prefix, _)| key.starts_with(prefix))
                .map(|(_, why)| Refused(why))
        })
}

/// Checks a property the configuration parser does not read itself: the
/// problem if it is refused at this value.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    match support(key) {
        Some(Implemented | NoEffect) => Ok(()),
        Some(Only(allowed)) if value == allowed => Ok(()),
        Some(Only(allowed)) => Err(format!(
            "`{value}` is not supported: sinkfleet's publisher does what `{allowed}` means"
        )),
        Some(Refused(why)) => Err(format!("not supported: {why}")),
        None => Err(
            "not a property of Debezium's PostgreSQL connector (see docs/publisher.md for the supported set)"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_property_is_named_once() {
        let mut names: Vec<&str> = PROPERTIES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    /// The operators' table in docs/publisher.md names every property.
    #[test]
    fn the_docs_list_every_property() {
        let docs = include_str!("../../../docs/publisher.md");
        for (name, _) in PROPERTIES {
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "{name} missing from docs/publisher.md"
            );
        }
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(check("max.batch.size", "4096"), Ok(()));
        assert_eq!(check("topic.delimiter", "."), Ok(()));
        assert!(check("topic.delimiter", "_").is_err_and(|e| e.contains("`.`")));
        assert_eq!(check("column.mask.with.4.chars", "public.t.c"), Ok(()));
        assert!(
            check(
                "value.converter.schema.registry.ssl.keystore.location",
                "/k.jks"
            )
            .is_err_and(|e| e.contains("converter option"))
        );
        assert!(check("value.converter.auto.register.schemas", "false").is_err());
        assert!(check("made.up", "x").is_err_and(|e| e.contains("not a property")));
    }
}
