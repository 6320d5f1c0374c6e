//! Where a source table's changes go.

use crate::change::TableId;
use crate::error::SinkError;
use crate::identifier::IdentifierPolicy;
use std::collections::BTreeMap;

/// The target `(namespace, table)` of a source table (a namespace is a
/// Postgres schema or a ClickHouse database).
///
/// An explicit entry in `mapping` (`"public.orders": "crm.orders"`) wins;
/// configured names are the operator's and only need to be
/// `namespace.table`. Otherwise the target is `(namespace or the source
/// schema, the source table)`, and every name taken from the event must
/// pass `policy` within `max_bytes`: a name outside it is refused, never
/// quoted through, cut or mapped onto another.
pub fn route(
    table: &TableId,
    mapping: &BTreeMap<String, String>,
    namespace: Option<&str>,
    policy: IdentifierPolicy,
    max_bytes: usize,
) -> Result<(String, String), SinkError> {
    if let Some(mapped) = mapping.get(&table.to_string()) {
        let (namespace, name) = mapped.split_once('.').ok_or_else(|| {
            SinkError::schema(format!("table mapping `{mapped}` is not namespace.table"))
        })?;
        return Ok((namespace.to_owned(), name.to_owned()));
    }
    let (namespace, name) = policy
        .check_table(table, namespace, max_bytes)
        .map_err(|e| SinkError::schema(e.to_string()))?;
    Ok((namespace.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_then_namespace_then_source_schema() {
        let mapping = BTreeMap::from([("public.orders".to_owned(), "crm.sales".to_owned())]);
        let strict = IdentifierPolicy::Strict;
        let orders = TableId::new("public", "orders");
        let items = TableId::new("public", "items");
        assert_eq!(
            route(&orders, &mapping, Some("replica"), strict, 63).unwrap(),
            ("crm".into(), "sales".into())
        );
        assert_eq!(
            route(&items, &mapping, Some("replica"), strict, 63).unwrap(),
            ("replica".into(), "items".into())
        );
        assert_eq!(
            route(&items, &mapping, None, strict, 63).unwrap(),
            ("public".into(), "items".into())
        );
        let odd = TableId::new("public", "we ird");
        assert!(route(&odd, &mapping, None, strict, 63).is_err());
        assert!(route(&odd, &mapping, None, IdentifierPolicy::Printable, 63).is_ok());
        let bad = BTreeMap::from([("public.items".to_owned(), "nodot".to_owned())]);
        assert!(route(&items, &bad, None, strict, 63).is_err());
    }
}
