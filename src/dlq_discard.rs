//! `sinkfleet dlq discard`: dead letters dropped on purpose, such as a
//! record no fix can make readable.
//!
//! A discarded dead letter is recorded as resolved and never applied. With
//! `on_error: park_key`, a record that parked its key cannot release it by
//! a replay if it fails again (an undecodable one always does), so the
//! discard of such a record goes into its partition as a marker (its key,
//! no value, [`sinkfleet_kafka::inspect::DISCARD`]): where the marker
//! arrives, the worker releases the key, in stream order, as a replay
//! would. The key's records parked after it stay open dead letters, to be
//! replayed.

use crate::dlq::{Filter, parked_now, plan_line, select};
use crate::dlq_resolved::{DeadLetters, Resolver};
use sinkfleet_kafka::inspect::Letter;
use std::collections::HashMap;

/// `dlq discard`: the open dead letters `filter` keeps, discarded (or, with
/// `dry_run`, only listed).
pub async fn discard(
    config: &crate::config::Config,
    dead: &DeadLetters,
    filter: &Filter,
    dry_run: bool,
) -> anyhow::Result<String> {
    if filter.is_empty() {
        anyhow::bail!(
            "dlq discard drops records for good: select them with a filter (--key, --class, \
             --table, --topic, --partition, --from-offset, --to-offset); `dlq show` with the \
             same filter lists them first"
        );
    }
    let letters = dead.distinct();
    let (chosen, mut out) = select(dead, filter, false, "discard")?;
    let parked = parked_now(config)?;
    let releasing: Vec<&Letter> = chosen
        .iter()
        .copied()
        .filter(|l| crate::dlq_release::releases_key(&parked, l))
        .collect();
    let verb = if dry_run { "would discard" } else { "discard" };
    for l in &chosen {
        let releases = releasing.iter().any(|r| std::ptr::eq(*r, *l));
        out.push_str(&plan_line(verb, "from", l, releases));
    }
    if dry_run {
        out.push_str(&format!(
            "{} dead letters would be discarded (dry run)\n",
            chosen.len()
        ));
        return Ok(out);
    }
    let resolver = Resolver::new(config).await?;
    let client = sinkfleet_kafka::client_config(&config.kafka);
    let offsets = sinkfleet_kafka::inspect::discard(&client, &releasing)
        .await
        .map_err(anyhow::Error::msg)?;
    let markers: HashMap<_, _> = releasing
        .iter()
        .filter_map(|l| l.origin.clone())
        .zip(offsets)
        .collect();
    resolver.discarded(&chosen, &markers).await?;
    out.push_str(&format!(
        "{} dead letters discarded (never applied)\n",
        chosen.len()
    ));
    if !releasing.is_empty() {
        // The keys' records parked after the discarded ones: still open.
        let later: usize = letters
            .iter()
            .filter(|l| dead.resolution(l).is_none())
            .filter(|l| !chosen.iter().any(|c| c.origin == l.origin))
            .filter(|l| {
                releasing.iter().any(|r| {
                    r.key == l.key
                        && matches!((&r.origin, &l.origin),
                            (Some((t, p, o)), Some((lt, lp, lo))) if t == lt && p == lp && lo > o)
                })
            })
            .count();
        out.push_str(&format!(
            "{} parked keys are released where their discard marker arrives; {later} records \
             parked behind them stay open: once the workers passed the markers, `sinkfleet dlq \
             replay -c … --key '<key>'` applies them in order\n",
            releasing.len()
        ));
    }
    Ok(out)
}
