//! Which wire format a topic's keys and values are in.

use regex::Regex;
use serde::Deserialize;

/// The format of a record's key or value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `JsonConverter`'s JSON, with or without the `{"schema","payload"}`
    /// envelope.
    #[default]
    Json,
    /// `AvroConverter`'s Avro in the Confluent wire format (magic byte 0, a
    /// 4-byte schema id, Avro binary), schemas from a Schema Registry.
    Avro,
    /// `ProtobufConverter`'s Protobuf in the Confluent wire format (magic
    /// byte 0, a 4-byte schema id, the message indexes, Protobuf binary).
    Protobuf,
    /// `JsonSchemaConverter`'s JSON in the Confluent wire format (magic
    /// byte 0, a 4-byte schema id, JSON text), schemas from a Schema
    /// Registry.
    JsonSchema,
}

impl Format {
    /// True if records name a registry schema.
    pub fn uses_registry(self) -> bool {
        self != Format::Json
    }

    /// The `schemaType` the registry gives this format's schemas.
    pub fn schema_type(self) -> &'static str {
        match self {
            Format::Json => "none",
            Format::Avro => "AVRO",
            Format::Protobuf => "PROTOBUF",
            Format::JsonSchema => "JSON",
        }
    }

    /// The name configuration spells it with.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Avro => "avro",
            Format::Protobuf => "protobuf",
            Format::JsonSchema => "json_schema",
        }
    }
}

/// A topic's key and value formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Formats {
    /// Of the Kafka key.
    pub key: Format,
    /// Of the Kafka value.
    pub value: Format,
}

/// Formats by topic: the first rule whose topic matches (a name, or a
/// regex when it starts with `^`, matched against the whole name) gives
/// them; a topic no rule matches is JSON.
#[derive(Debug, Clone, Default)]
pub struct TopicFormats {
    rules: Vec<(Topics, Formats)>,
}

#[derive(Debug, Clone)]
enum Topics {
    Name(String),
    Pattern(Regex),
}

impl TopicFormats {
    /// Rules in order; a pattern that is no regex is refused.
    pub fn new(rules: impl IntoIterator<Item = (String, Formats)>) -> Result<Self, String> {
        let rules = rules
            .into_iter()
            .map(|(topic, formats)| {
                let topics = if topic.starts_with('^') {
                    let anchored = if topic.ends_with('$') {
                        topic.clone()
                    } else {
                        format!("{topic}$")
                    };
                    Topics::Pattern(
                        Regex::new(&anchored).map_err(|e| format!("topic pattern {topic}: {e}"))?,
                    )
                } else {
                    Topics::Name(topic)
                };
                Ok((topics, formats))
            })
            .collect::<Result<_, String>>()?;
        Ok(TopicFormats { rules })
    }

    /// The formats of `topic`.
    pub fn of(&self, topic: &str) -> Formats {
        self.rules
            .iter()
            .find(|(topics, _)| match topics {
                Topics::Name(name) => name == topic,
                Topics::Pattern(re) => re.is_match(topic),
            })
            .map(|(_, f)| *f)
            .unwrap_or_default()
    }

    /// True if any topic's records name registry schemas.
    pub fn use_registry(&self) -> bool {
        self.rules
            .iter()
            .any(|(_, f)| f.key.uses_registry() || f.value.uses_registry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins_and_patterns_match_whole_names() {
        let avro = Formats {
            key: Format::Avro,
            value: Format::Avro,
        };
        let value_only = Formats {
            key: Format::Json,
            value: Format::Avro,
        };
        let f = TopicFormats::new([
            ("app.orders".to_owned(), value_only),
            ("^app\\..*".to_owned(), avro),
        ])
        .unwrap();
        assert_eq!(f.of("app.orders"), value_only);
        assert_eq!(f.of("app.customers"), avro);
        assert_eq!(f.of("xapp.customers"), Formats::default());
        assert_eq!(f.of("other"), Formats::default());
        assert!(TopicFormats::new([("^(".to_owned(), avro)]).is_err());
    }
}
