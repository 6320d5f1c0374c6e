//! Object names: where a file goes and how a name is read back.
//!
//! The object name is `<prefix>/<directory>/<topic>+<partition>+<first offset>.parquet`.
//! It depends only on the file's first record, so a file rewritten from the
//! same records lands on the same name, and reconciliation can find the
//! newest file of a partition by listing names alone (`+` never occurs in
//! a Kafka topic name; the offset is zero-padded to sort as text).

use chrono::DateTime;
use sinkfleet_core::TableId;

const PLACEHOLDERS: [&str; 5] = ["{schema}", "{table}", "{date}", "{topic}", "{partition}"];

/// Checks that `template` uses only known placeholders.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template.to_owned();
    for p in PLACEHOLDERS {
        rest = rest.replace(p, "");
    }
    if rest.contains('{') || rest.contains('}') {
        return Err(format!(
            "unknown placeholder in `{template}` (known: {})",
            PLACEHOLDERS.join(", ")
        ));
    }
    if template.split('/').any(|part| part == "..") {
        return Err("`..` is not allowed".into());
    }
    Ok(())
}

/// The identity of one open file: records of one table from one partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Source table.
    pub table: TableId,
    /// Kafka topic.
    pub topic: std::sync::Arc<str>,
    /// Kafka partition.
    pub partition: i32,
}

/// Renders object names for one configuration.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
    template: String,
}

impl Layout {
    /// A layout under `prefix` (slashes trimmed) with directory `template`.
    pub fn new(prefix: &str, template: &str) -> Self {
        Layout {
            prefix: prefix.trim_matches('/').to_owned(),
            template: template.trim_matches('/').to_owned(),
        }
    }

    fn join(&self, rest: &str) -> String {
        match (self.prefix.is_empty(), rest.is_empty()) {
            (true, _) => rest.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rest}", self.prefix),
        }
    }

    /// The object name of a file whose first record is `first_offset` and
    /// whose first change happened at `source_ts_ms` at the source.
    pub fn object(&self, key: &FileKey, first_offset: i64, source_ts_ms: Option<i64>) -> String {
        let date = source_ts_ms
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let dir = self
            .template
            .replace("{schema}", &key.table.schema)
            .replace("{table}", &key.table.table)
            .replace("{date}", &date)
            .replace("{topic}", &key.topic)
            .replace("{partition}", &key.partition.to_string());
        self.join(&format!(
            "{dir}/{}",
            file_name(&key.topic, key.partition, first_offset)
        ))
    }

    /// The longest prefix every object of `key` shares: the directory up
    /// to `{date}`, the only placeholder that varies per file (listing
    /// starts there, so a layout with `{topic}/{partition}` before `{date}`
    /// lists one partition's objects only).
    pub fn list_prefix(&self, key: &FileKey) -> String {
        let fixed_end = self.template.find("{date}").unwrap_or(self.template.len());
        let fixed = &self.template[..fixed_end];
        // Only whole directories: `date={date}` must not list `date=`.
        let fixed = match fixed.rfind('/') {
            Some(i) if fixed_end < self.template.len() => &fixed[..i],
            _ if fixed_end < self.template.len() => "",
            _ => fixed,
        };
        self.join(
            &fixed
                .replace("{schema}", &key.table.schema)
                .replace("{table}", &key.table.table)
                .replace("{topic}", &key.topic)
                .replace("{partition}", &key.partition.to_string()),
        )
    }
}

/// `<topic>+<partition>+<first offset, 20 digits>.parquet`.
pub fn file_name(topic: &str, partition: i32, first_offset: i64) -> String {
    format!("{topic}+{partition}+{first_offset:020}.parquet")
}

/// Reads `(topic, partition, first offset)` back from an object name.
pub fn parse_file_name(object: &str) -> Option<(&str, i32, i64)> {
    let name = object.rsplit('/').next()?.strip_suffix(".parquet")?;
    let mut parts = name.rsplitn(3, '+');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let topic = parts.next()?;
    Some((topic, partition, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FileKey {
        FileKey {
            table: TableId::new("public", "customers"),
            topic: "pg.public.customers".into(),
            partition: 3,
        }
    }

    #[test]
    fn object_names_depend_on_topic_partition_and_first_offset_only() {
        let layout = Layout::new("/cdc/", "{schema}/{table}/date={date}");
        let name = layout.object(&key(), 42, Some(1_700_000_000_000));
        assert_eq!(
            name,
            "cdc/public/customers/date=2023-11-14/pg.public.customers+3+00000000000000000042.parquet"
        );
        assert_eq!(parse_file_name(&name), Some(("pg.public.customers", 3, 42)));
        assert_eq!(parse_file_name("cdc/x/readme.txt"), None);
    }

    #[test]
    fn listing_starts_at_the_first_varying_directory() {
        let k = key();
        assert_eq!(
            Layout::new("cdc", "{schema}/{table}/date={date}").list_prefix(&k),
            "cdc/public/customers"
        );
        assert_eq!(
            Layout::new("", "{schema}/{table}").list_prefix(&k),
            "public/customers"
        );
        assert_eq!(
            Layout::new("cdc", "{date}/{schema}/{table}").list_prefix(&k),
            "cdc"
        );
        assert_eq!(
            Layout::new("cdc", "{schema}/{table}/{partition}/date={date}").list_prefix(&k),
            "cdc/public/customers/3"
        );
        assert_eq!(
            Layout::new("cdc", "{table}/{topic}+{partition}").list_prefix(&k),
            "cdc/customers/pg.public.customers+3"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template("{schema}/{table}/date={date}").is_ok());
        assert!(check_template("{schema}/{tabel}").is_err());
        assert!(check_template("../{schema}/{table}").is_err());
    }
}
