//! The source's types, from its catalog: what a column's type OID is
//! (a base type by name, a domain over another type, an enum and its
//! labels, an array of an element type). pgoutput's Relation messages
//! carry only OIDs, and enums, domains and extension types (`hstore`,
//! `ltree`, `citext`) have OIDs that differ per database.

use sqlx::PgPool;
use std::collections::HashMap;

/// What a type is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeShape {
    /// A base (or pseudo/extension) type, known by its name.
    Base,
    /// A domain over `base`, with the domain's own modifier (-1 = none).
    Domain {
        /// The type the domain constrains.
        base: u32,
        /// `typtypmod`: e.g. `numeric(10,2)` of `CREATE DOMAIN d AS numeric(10,2)`.
        typmod: i32,
    },
    /// An enum with its labels in sort order.
    Enum(Vec<String>),
    /// An array of `element`.
    Array {
        /// The element type.
        element: u32,
    },
    /// A range type (text, as Debezium carries the built-in ranges).
    Range,
    /// A composite, multirange or other type without a mapping.
    Other,
}

/// One type of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// `typname` (`int4`, `timestamptz`, `hstore`, ...).
    pub name: String,
    /// What it is.
    pub shape: TypeShape,
}

/// The source's types by OID.
#[derive(Debug, Clone, Default)]
pub struct TypeRegistry {
    types: HashMap<u32, PgType>,
    /// How the server writes `money` (its `lc_monetary`), when that
    /// layout cannot be read back exactly (`None`: it can).
    pub unreadable_money: Option<String>,
}

/// The built-in types of `pg_catalog`, whose OIDs are fixed in every
/// database: enough to encode events without a catalog (unit tests).
const BUILTIN: &[(u32, &str)] = &[
    (16, "bool"),
    (17, "bytea"),
    (18, "char"),
    (19, "name"),
    (20, "int8"),
    (21, "int2"),
    (23, "int4"),
    (25, "text"),
    (26, "oid"),
    (114, "json"),
    (142, "xml"),
    (600, "point"),
    (650, "cidr"),
    (700, "float4"),
    (701, "float8"),
    (774, "macaddr8"),
    (790, "money"),
    (829, "macaddr"),
    (869, "inet"),
    (1042, "bpchar"),
    (1043, "varchar"),
    (1082, "date"),
    (1083, "time"),
    (1114, "timestamp"),
    (1184, "timestamptz"),
    (1186, "interval"),
    (1266, "timetz"),
    (1560, "bit"),
    (1562, "varbit"),
    (1700, "numeric"),
    (2950, "uuid"),
    (3614, "tsvector"),
    (3802, "jsonb"),
];

/// Built-in array types: (array OID, element OID).
const BUILTIN_ARRAYS: &[(u32, u32)] = &[
    (1000, 16),
    (1001, 17),
    (1002, 18),
    (1003, 19),
    (1005, 21),
    (1007, 23),
    (1009, 25),
    (1014, 1042),
    (1015, 1043),
    (1016, 20),
    (1017, 600),
    (1021, 700),
    (1022, 701),
    (1028, 26),
    (1040, 829),
    (1041, 869),
    (651, 650),
    (775, 774),
    (791, 790),
    (143, 142),
    (1115, 1114),
    (1182, 1082),
    (1183, 1083),
    (1185, 1184),
    (1187, 1186),
    (1231, 1700),
    (1270, 1266),
    (1561, 1560),
    (1563, 1562),
    (199, 114),
    (2951, 2950),
    (3643, 3614),
    (3807, 3802),
];

impl TypeRegistry {
    /// The built-in types only.
    pub fn builtin() -> TypeRegistry {
        let mut types = HashMap::new();
        for &(oid, name) in BUILTIN {
            types.insert(
                oid,
                PgType {
                    name: name.to_owned(),
                    shape: TypeShape::Base,
                },
            );
        }
        for &(oid, element) in BUILTIN_ARRAYS {
            let name = format!("_{}", types.get(&element).map_or("", |t| t.name.as_str()));
            types.insert(
                oid,
                PgType {
                    name,
                    shape: TypeShape::Array { element },
                },
            );
        }
        TypeRegistry {
            types,
            unreadable_money: None,
        }
    }

    /// Every type of the source database.
    pub async fn load(pool: &PgPool) -> Result<TypeRegistry, sqlx::Error> {
        type TypeRow = (
            i64,
            String,
            String,
            i64,
            i32,
            i64,
            String,
            Option<Vec<String>>,
        );
        let rows: Vec<TypeRow> = sqlx::query_as(
            "SELECT t.oid::bigint, t.typname::text, t.typtype::text, t.typbasetype::bigint, t.typtypmod,
                    t.typelem::bigint, t.typcategory::text,
                    (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                       FROM pg_enum e WHERE e.enumtypid = t.oid)
               FROM pg_type t",
        )
        .fetch_all(pool)
        .await?;
        let mut types = HashMap::with_capacity(rows.len());
        for (oid, name, typtype, base, typmod, element, category, labels) in rows {
            let shape = match typtype.as_str() {
                "d" => TypeShape::Domain {
                    base: base as u32,
                    typmod,
                },
                "e" => TypeShape::Enum(labels.unwrap_or_default()),
                "r" => TypeShape::Range,
                "b" if category == "A" && element != 0 => TypeShape::Array {
                    element: element as u32,
                },
                "b" | "p" => TypeShape::Base,
                _ => TypeShape::Other,
            };
            types.insert(oid as u32, PgType { name, shape });
        }
        // `money` is written in the server's locale: check that this one
        // reads back exactly before trusting any money value.
        let sample: String = sqlx::query_scalar("SELECT (-1234.56)::numeric::money::text")
            .fetch_one(pool)
            .await?;
        let unreadable_money = (super::numeric::money_amount(&sample).as_deref()
            != Some("-1234.56"))
        .then_some(sample);
        Ok(TypeRegistry {
            types,
            unreadable_money,
        })
    }

    /// The type of `oid`, if the registry has it.
    pub fn get(&self, oid: u32) -> Option<&PgType> {
        self.types.get(&oid)
    }

    /// Adds (or replaces) a type: enums and domains in unit tests.
    pub fn insert(&mut self, oid: u32, name: &str, shape: TypeShape) {
        self.types.insert(
            oid,
            PgType {
                name: name.to_owned(),
                shape,
            },
        );
    }
}
