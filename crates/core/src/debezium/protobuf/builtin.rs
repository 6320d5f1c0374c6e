//! The `.proto` files a Confluent serializer never registers (its
//! `_is_builtin`: `confluent/`, `google/protobuf/`, `google/type/`):
//! a reader must know them itself. `google/protobuf/*` come with protox;
//! the others Kafka Connect's `ProtobufData` imports are here.

use protox::Error;
use protox::file::{File, FileResolver, GoogleFileResolver};

const META: &str = r#"syntax = "proto3";
package confluent;
import "google/protobuf/descriptor.proto";
message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
  repeated Rule rules = 4;
}
message Rule {
  string name = 1;
  string doc = 2;
  string expr = 3;
  string sql = 4;
}
extend google.protobuf.FileOptions { Meta file_meta = 1088; }
extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
"#;

const DECIMAL: &str = r#"syntax = "proto3";
package confluent.type;
message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
"#;

/// The path `confluent.type.Decimal` had before; it re-exports it.
const LEGACY_DECIMAL: &str = r#"syntax = "proto3";
import public "confluent/type/decimal.proto";
"#;

const DATE: &str = r#"syntax = "proto3";
package google.type;
message Date {
  int32 year = 1;
  int32 month = 2;
  int32 day = 3;
}
"#;

const TIME_OF_DAY: &str = r#"syntax = "proto3";
package google.type;
message TimeOfDay {
  int32 hours = 1;
  int32 minutes = 2;
  int32 seconds = 3;
  int32 nanos = 4;
}
"#;

/// The builtin files by import path.
const FILES: [(&str, &str); 5] = [
    ("confluent/meta.proto", META),
    ("confluent/type/decimal.proto", DECIMAL),
    ("confluent/types/decimal.proto", LEGACY_DECIMAL),
    ("google/type/date.proto", DATE),
    ("google/type/timeofday.proto", TIME_OF_DAY),
];

/// True for an import the serializer does not register.
pub(super) fn is_builtin(name: &str) -> bool {
    name.starts_with("confluent/")
        || name.starts_with("google/protobuf/")
        || name.starts_with("google/type/")
}

/// Resolves the builtin files (Confluent's, `google/type`'s, and protox's
/// `google/protobuf`).
pub(super) struct Builtins(GoogleFileResolver);

impl Builtins {
    pub(super) fn new() -> Self {
        Builtins(GoogleFileResolver::new())
    }
}

impl FileResolver for Builtins {
    fn open_file(&self, name: &str) -> Result<File, Error> {
        match FILES.iter().find(|(path, _)| *path == name) {
            Some((path, text)) => File::from_source(path, text),
            None => self.0.open_file(name),
        }
    }
}
