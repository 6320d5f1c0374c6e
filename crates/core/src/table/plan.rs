//! The column plan: from a batch of changes, the columns a target table
//! needs and their types ([`create`]), or what must change in an existing
//! table ([`alter`]). One rule for every table sink; each sink brings its
//! physical types through a [`TypeSystem`] and turns the plan into its own
//! DDL.
//!
//! The rule: key columns first, then every column a change declares (its
//! schema), then every row column no schema declares (typed from its
//! values). A column's type is the widest of what the batch says about it
//! (a batch can straddle an `ALTER COLUMN TYPE` at the source), and an
//! existing column is widened only when a lossless widening exists;
//! otherwise the value fails on write and is dead-lettered, never rounded.

use crate::batch::agreed_key_columns;
use crate::change::{Change, ColumnType, column_evidence};
use crate::error::SinkError;
use crate::identifier::IdentifierPolicy;
use crate::value::Value;

/// A target's physical column types, named as the target reports them
/// (`format_type` in Postgres, `system.columns.type` in ClickHouse).
pub trait TypeSystem {
    /// The type storing a column of logical type `ty`; `sample` is one of
    /// its values, for types that depend on values (schema-less columns,
    /// arrays).
    fn map(&self, ty: &ColumnType, sample: Option<&Value>) -> String;

    /// The type to change `current` to so that it also holds `wanted`
    /// exactly; `None` when `current` already holds it, or when no
    /// lossless widening exists.
    fn widen(&self, current: &str, wanted: &str) -> Option<String>;

    /// The type of a column the batch only ever gives NULL.
    fn fallback(&self) -> String;
}

/// What a column type is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// A new column: a schema-less integer gets the widest integer type,
    /// room for what comes later.
    Create,
    /// The least an existing column must hold: a schema-less integer needs
    /// only the narrowest integer type holding it, so an `integer` column
    /// is not widened for the value 1.
    Hold,
}

/// The type `column` needs for all of `changes` and whether any change
/// allows NULL in it; `None` when no change gives it a type (only NULLs).
pub fn wanted_type<T: TypeSystem + ?Sized>(
    types: &T,
    changes: &[&Change],
    column: &str,
    fit: Fit,
) -> Option<(String, bool)> {
    let mut wanted: Option<(String, bool)> = None;
    for (declared, sample) in column_evidence(changes, column) {
        let candidate = match (declared, sample) {
            (Some(col), _) if col.ty != ColumnType::Inferred => {
                (types.map(&col.ty, sample), col.optional)
            }
            (_, Some(Value::Int(i))) if fit == Fit::Hold => {
                (types.map(&narrowest_integer(*i), None), true)
            }
            (_, Some(v)) if !v.is_null() => (types.map(&ColumnType::Inferred, Some(v)), true),
            _ => continue,
        };
        wanted = Some(match wanted {
            None => candidate,
            Some((current, optional)) => (
                types.widen(&current, &candidate.0).unwrap_or(current),
                optional || candidate.1,
            ),
        });
    }
    wanted
}

fn narrowest_integer(i: i64) -> ColumnType {
    if i16::try_from(i).is_ok() {
        ColumnType::Int16
    } else if i32::try_from(i).is_ok() {
        ColumnType::Int32
    } else {
        ColumnType::Int64
    }
}

/// One column a batch needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedColumn {
    /// Column name.
    pub name: String,
    /// Physical type.
    pub ty: String,
    /// Whether some change allows NULL (or the type is only inferred).
    pub optional: bool,
    /// Whether it is a key column.
    pub key: bool,
}

/// How a target table may be changed, and which names it reserves.
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    /// Create a missing table.
    pub create_tables: bool,
    /// Add columns and widen types.
    pub evolve_schema: bool,
    /// Whether key columns may be widened (ClickHouse cannot alter its
    /// sorting key's types).
    pub widen_keys: bool,
    /// The sink's own columns, which no source column may take.
    pub bookkeeping: &'a [String],
    /// Which names from events are accepted.
    pub identifiers: IdentifierPolicy,
    /// The target's longest name.
    pub max_name_bytes: usize,
}

/// An existing table, as the target reports it.
#[derive(Debug, Clone, Copy)]
pub struct Existing<'a> {
    /// Columns with their physical types.
    pub columns: &'a [(String, String)],
    /// Key (primary or sorting key) columns.
    pub key: &'a [String],
}

/// The type of column `name` in a table's `(name, type)` list.
pub fn column_type<'a>(columns: &'a [(String, String)], name: &str) -> Option<&'a str> {
    columns
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.as_str())
}

/// A table to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTable {
    /// Every column, key columns first.
    pub columns: Vec<PlannedColumn>,
    /// Key columns, in key order.
    pub key: Vec<String>,
}

/// What an existing table needs (`add` and `widen` empty: it fits).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Alteration {
    /// The changes' key columns (empty when none is keyed).
    pub key: Vec<String>,
    /// Columns to add.
    pub add: Vec<PlannedColumn>,
    /// Columns to widen: `(name, current type, new type)`.
    pub widen: Vec<(String, String, String)>,
}

impl Alteration {
    /// True when the table fits already.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.widen.is_empty()
    }
}

/// The key the changes agree on and the columns they need, checked against
/// the identifier policy and the bookkeeping names.
fn columns_of(
    changes: &[&Change],
    rules: &Rules<'_>,
) -> Result<(Vec<String>, Vec<String>), SinkError> {
    let key: Vec<String> = agreed_key_columns(changes)
        .map_err(SinkError::schema)?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let names = wanted_columns(&key, changes);
    for n in &names {
        if rules.bookkeeping.iter().any(|b| b == n) {
            return Err(SinkError::schema(format!(
                "source column `{n}` collides with a sinkfleet bookkeeping column (rename it in the sink's config)"
            )));
        }
        rules
            .identifiers
            .check("column", n, rules.max_name_bytes)
            .map_err(|e| SinkError::schema(e.to_string()))?;
    }
    Ok((key, names))
}

fn planned<T: TypeSystem + ?Sized>(
    types: &T,
    changes: &[&Change],
    name: &str,
    key: &[String],
) -> PlannedColumn {
    let (ty, optional) =
        wanted_type(types, changes, name, Fit::Create).unwrap_or_else(|| (types.fallback(), true));
    PlannedColumn {
        name: name.to_owned(),
        ty,
        optional,
        key: key.iter().any(|k| k == name),
    }
}

/// Plans a missing table `table` (named in errors) for `changes`. Every
/// keyed change must name the same key columns; every column name must
/// pass the identifier policy and not be a bookkeeping column. A refusal is
/// a schema error for the whole batch, which the runtime splits down to the
/// offending record.
pub fn create<T: TypeSystem + ?Sized>(
    types: &T,
    table: &str,
    changes: &[&Change],
    rules: &Rules<'_>,
) -> Result<NewTable, SinkError> {
    let (key, names) = columns_of(changes, rules)?;
    if !rules.create_tables {
        return Err(SinkError::schema(format!(
            "{table} does not exist and create_tables is off"
        )));
    }
    if key.is_empty() {
        return Err(SinkError::schema(format!(
            "cannot create {table}: no key columns known (only truncates seen)"
        )));
    }
    Ok(NewTable {
        columns: names
            .iter()
            .map(|n| planned(types, changes, n, &key))
            .collect(),
        key,
    })
}

/// Plans the columns an existing table needs for `changes`, with the
/// checks of [`create`]; the changes' key must also be the table's (a
/// table without a key is the sink's to refuse: it cannot upsert).
pub fn alter<T: TypeSystem + ?Sized>(
    types: &T,
    table: &str,
    existing: Existing<'_>,
    changes: &[&Change],
    rules: &Rules<'_>,
) -> Result<Alteration, SinkError> {
    let (key, names) = columns_of(changes, rules)?;
    let same_key = existing.key.len() == key.len() && key.iter().all(|k| existing.key.contains(k));
    if !(key.is_empty() || existing.key.is_empty() || same_key) {
        return Err(SinkError::schema(format!(
            "{table} is keyed by ({}) but events are keyed by ({})",
            existing.key.join(", "),
            key.join(", ")
        )));
    }
    let mut out = Alteration::default();
    for n in &names {
        match column_type(existing.columns, n) {
            None if rules.evolve_schema => out.add.push(planned(types, changes, n, &key)),
            None => {
                return Err(SinkError::schema(format!(
                    "column `{n}` is not in {table} and evolve_schema is off"
                )));
            }
            Some(current) if rules.evolve_schema && (rules.widen_keys || !key.contains(n)) => {
                let wanted = wanted_type(types, changes, n, Fit::Hold);
                if let Some(to) = wanted.and_then(|(w, _)| types.widen(current, &w)) {
                    out.widen.push((n.clone(), current.to_owned(), to));
                }
            }
            Some(_) => {}
        }
    }
    out.key = key;
    Ok(out)
}

/// Key columns, then declared columns, then undeclared row columns, each
/// once, in first-seen order.
pub fn wanted_columns(key: &[String], changes: &[&Change]) -> Vec<String> {
    let mut names: Vec<String> = key.to_vec();
    for change in changes {
        let declared = change
            .schema
            .iter()
            .flat_map(|s| s.columns.iter().map(|c| c.name.as_str()));
        for n in declared.chain(change.row.iter().flat_map(|r| r.names())) {
            if !names.iter().any(|w| w == n) {
                names.push(n.to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(changes: &[Change]) -> Vec<&Change> {
        changes.iter().collect()
    }
    use crate::change::{ColumnSchema, Op, Row, TableId, TableSchema};
    use crate::version::Version;
    use std::sync::Arc;

    /// Integer widths and text: enough to exercise the rule.
    struct Toy;

    impl TypeSystem for Toy {
        fn map(&self, ty: &ColumnType, sample: Option<&Value>) -> String {
            match (ty, sample) {
                (ColumnType::Int16, _) => "i16".into(),
                (ColumnType::Int32, _) => "i32".into(),
                (ColumnType::Int64, _) | (ColumnType::Inferred, Some(Value::Int(_))) => {
                    "i64".into()
                }
                _ => "text".into(),
            }
        }
        fn widen(&self, current: &str, wanted: &str) -> Option<String> {
            let rank = |t: &str| ["i16", "i32", "i64"].iter().position(|x| *x == t);
            match (rank(current), rank(wanted)) {
                (Some(c), Some(w)) if w > c => Some(wanted.into()),
                _ => None,
            }
        }
        fn fallback(&self) -> String {
            "text".into()
        }
    }

    fn change(schema: Option<Vec<(&str, ColumnType)>>, row: &[(&str, Value)]) -> Change {
        let mut image = Row::default();
        for (n, v) in row {
            image.set(*n, v.clone());
        }
        let mut key = Row::default();
        key.set("id", Value::Int(1));
        Change {
            table: TableId::new("s", "t"),
            op: Op::Create,
            key,
            row: Some(image),
            version: Version::ZERO,
            schema: schema.map(|cols| {
                Arc::new(TableSchema {
                    columns: cols
                        .into_iter()
                        .map(|(name, ty)| ColumnSchema {
                            name: name.into(),
                            ty,
                            optional: name != "id",
                        })
                        .collect(),
                })
            }),
            unchanged: Vec::new(),
            source_ts_ms: None,
            transaction: None,
        }
    }

    fn rules(bookkeeping: &[String]) -> Rules<'_> {
        Rules {
            create_tables: true,
            evolve_schema: true,
            widen_keys: true,
            bookkeeping,
            identifiers: IdentifierPolicy::Strict,
            max_name_bytes: 63,
        }
    }

    #[test]
    fn a_new_table_has_key_declared_then_undeclared_columns() {
        let changes = [
            change(
                Some(vec![("id", ColumnType::Int32), ("n", ColumnType::Int16)]),
                &[
                    ("id", Value::Int(1)),
                    ("n", Value::Int(2)),
                    ("extra", Value::Int(3)),
                ],
            ),
            change(
                Some(vec![("id", ColumnType::Int32), ("n", ColumnType::Int64)]),
                &[("id", Value::Int(1)), ("n", Value::Null)],
            ),
        ];
        let NewTable { columns, key } = create(&Toy, "t", &refs(&changes), &rules(&[])).unwrap();
        assert_eq!(key, vec!["id"]);
        let got: Vec<(&str, &str, bool, bool)> = columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty.as_str(), c.optional, c.key))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id", "i32", false, true),
                ("n", "i64", true, false), // the widest across the batch
                ("extra", "i64", true, false),
            ]
        );
    }

    #[test]
    fn an_existing_table_gains_columns_and_widens_only_as_needed() {
        let columns = [
            ("id".to_owned(), "i32".to_owned()),
            ("n".to_owned(), "i32".to_owned()),
        ];
        let key = ["id".to_owned()];
        let existing = Existing {
            columns: &columns,
            key: &key,
        };
        // A schema-less 1 does not widen an i32 column; 2^40 does.
        let small = [change(None, &[("n", Value::Int(1)), ("new", Value::Null)])];
        assert_eq!(
            alter(&Toy, "t", existing, &refs(&small), &rules(&[])).unwrap(),
            Alteration {
                add: vec![PlannedColumn {
                    name: "new".into(),
                    ty: "text".into(),
                    optional: true,
                    key: false
                }],
                widen: vec![],
                key: vec!["id".into()],
            }
        );
        let big = [change(None, &[("n", Value::Int(1 << 40))])];
        assert_eq!(
            alter(&Toy, "t", existing, &refs(&big), &rules(&[])).unwrap(),
            Alteration {
                add: vec![],
                widen: vec![("n".into(), "i32".into(), "i64".into())],
                key: vec!["id".into()],
            }
        );
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let bookkeeping = ["__v".to_owned()];
        let collides = [change(None, &[("__v", Value::Int(1))])];
        let err = create(&Toy, "t", &refs(&collides), &rules(&bookkeeping)).unwrap_err();
        assert!(err.to_string().contains("`__v`"), "{err}");
        let odd = [change(None, &[("we ird", Value::Int(1))])];
        assert!(create(&Toy, "t", &refs(&odd), &rules(&[])).is_err());
        let columns = [("tenant".to_owned(), "i32".to_owned())];
        let key = ["tenant".to_owned()];
        let existing = Existing {
            columns: &columns,
            key: &key,
        };
        let nothing = alter(&Toy, "t", existing, &refs(&odd[..0]), &rules(&[])).unwrap();
        assert!(nothing.is_empty(), "no change, nothing to compare or add");
        let keyed = [change(None, &[("n", Value::Int(1))])];
        let err = alter(&Toy, "t", existing, &refs(&keyed), &rules(&[])).unwrap_err();
        assert!(err.to_string().contains("keyed by (tenant)"), "{err}");
        let frozen = Rules {
            evolve_schema: false,
            ..rules(&[])
        };
        let columns = [("id".to_owned(), "i32".to_owned())];
        let key = ["id".to_owned()];
        let existing = Existing {
            columns: &columns,
            key: &key,
        };
        assert!(alter(&Toy, "t", existing, &refs(&keyed), &frozen).is_err());
        let frozen = Rules {
            create_tables: false,
            ..rules(&[])
        };
        assert!(create(&Toy, "t", &refs(&keyed), &frozen).is_err());
    }
}
