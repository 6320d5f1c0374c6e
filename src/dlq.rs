//! `sinkfleet dlq`: what the dead-letter topic holds, counted (open and
//! resolved), shown and replayed.

use crate::dlq_resolved::{DeadLetters, Resolver, describe};
use sinkfleet_kafka::OnError;
use sinkfleet_kafka::inspect::Letter;
use sinkfleet_kafka::parking::{ParkedKey, read_parked};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Which records `show` and `replay` take. Every filter given must match.
#[derive(Debug, Default, clap::Args)]
pub struct Filter {
    /// Only this error class.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(CLASSES))]
    pub class: Option<String>,
    /// Only this table: the source's `schema.table`, the target table the
    /// sink writes it to (`namespace.table`, as `tables:` maps it), or
    /// either's name alone. Decode dead letters have no table: address
    /// them by `--topic`, `--partition` and offsets.
    #[arg(long)]
    pub table: Option<String>,
    /// Only this key: the record key's exact text, or, for a JSON key, the
    /// same JSON (spacing aside; a `{"schema","payload"}` key matches its
    /// payload).
    #[arg(long)]
    pub key: Option<String>,
    /// Only records whose key (as text) contains this.
    #[arg(long, conflicts_with = "key")]
    pub key_contains: Option<String>,
    /// Only records read from this topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Only records read from this partition (of their topic).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Only original offsets at or above this.
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Only original offsets at or below this.
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Each source table's target table (`schema.table` of both), for
    /// `--table` (see [`Filter::with_targets`]).
    #[arg(skip)]
    targets: HashMap<String, String>,
}

/// The classes a dead letter can have (`unknown`: a record without
/// sinkfleet's headers).
const CLASSES: [&str; 5] = ["decode", "apply", "schema", "parked", "unknown"];

impl Filter {
    /// Lets `--table` match the target tables `config`'s sink writes the
    /// letters' source tables to.
    pub fn with_targets(mut self, config: &crate::config::Config, dead: &DeadLetters) -> Self {
        for source in dead.distinct().iter().filter_map(|l| l.table.as_deref()) {
            if let Some(target) = config.target_table(source) {
                self.targets.insert(source.to_owned(), target);
            }
        }
        self
    }

    /// True when no filter is given (every letter is kept).
    pub fn is_empty(&self) -> bool {
        self.class.is_none()
            && self.table.is_none()
            && self.key.is_none()
            && self.key_contains.is_none()
            && self.topic.is_none()
            && self.partition.is_none()
            && self.from_offset.is_none()
            && self.to_offset.is_none()
    }

    /// The letters this filter keeps.
    pub fn apply<'a>(&self, letters: &'a [Letter]) -> Vec<&'a Letter> {
        letters.iter().filter(|l| self.keeps(l)).collect()
    }

    fn keeps(&self, l: &Letter) -> bool {
        let origin = l.origin.as_ref();
        let offset = origin.map(|o| o.2);
        self.class.as_ref().is_none_or(|c| *c == l.class)
            && self.table.as_ref().is_none_or(|t| {
                l.table.as_deref().is_some_and(|source| {
                    let named = |full: &str| {
                        full == t || full.split_once('.').is_some_and(|(_, name)| name == t)
                    };
                    named(source) || self.targets.get(source).is_some_and(|target| named(target))
                })
            })
            && self
                .key
                .as_ref()
                .is_none_or(|k| key_is(l.key.as_deref(), k))
            && self
                .key_contains
                .as_ref()
                .is_none_or(|k| text(l.key.as_deref()).contains(k.as_str()))
            && self
                .topic
                .as_ref()
                .is_none_or(|t| origin.is_some_and(|o| o.0 == *t))
            && self
                .partition
                .is_none_or(|p| origin.is_some_and(|o| o.1 == p))
            && self
                .from_offset
                .is_none_or(|f| offset.is_some_and(|o| o >= f))
            && self
                .to_offset
                .is_none_or(|t| offset.is_some_and(|o| o <= t))
    }

    /// What nothing matched, for the message that says so.
    pub fn nothing_matched(&self, letters: &[Letter]) -> String {
        let mut given = Vec::new();
        let mut add = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                given.push(format!("--{name} {v}"));
            }
        };
        add("class", self.class.clone());
        add("table", self.table.clone());
        add("key", self.key.clone());
        add("key-contains", self.key_contains.clone());
        add("topic", self.topic.clone());
        add("partition", self.partition.map(|p| p.to_string()));
        add("from-offset", self.from_offset.map(|o| o.to_string()));
        add("to-offset", self.to_offset.map(|o| o.to_string()));
        let mut out = format!(
            "0 of {} dead letters match {}",
            letters.len(),
            given.join(" ")
        );
        if self.table.is_some() && letters.iter().any(|l| l.table.is_none()) {
            out.push_str(
                " (decode dead letters have no table: select them by --class decode, --topic, --partition)",
            );
        }
        out
    }
}

/// True if `key` is `wanted`: the same bytes, or the same JSON value (a
/// Kafka Connect `{"schema","payload"}` key compared by its payload).
fn key_is(key: Option<&[u8]>, wanted: &str) -> bool {
    let Some(key) = key else { return false };
    if key == wanted.as_bytes() {
        return true;
    }
    let (Ok(key), Ok(wanted)) = (
        serde_json::from_slice::<serde_json::Value>(key),
        serde_json::from_str::<serde_json::Value>(wanted),
    ) else {
        return false;
    };
    key == wanted
        || key.as_object().is_some_and(|o| {
            o.len() == 2 && o.contains_key("schema") && o.get("payload") == Some(&wanted)
        })
}

fn text(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(String::new, |b| String::from_utf8_lossy(b).into_owned())
}

fn origin(l: &Letter) -> String {
    l.origin
        .as_ref()
        .map_or("-".to_owned(), |(t, p, o)| format!("{t}/{p}@{o}"))
}

/// Reads the dead-letter topic of `config`, and what is resolved.
pub fn letters(config: &crate::config::Config) -> anyhow::Result<DeadLetters> {
    DeadLetters::read(config, TIMEOUT)
}

/// `dlq list`: dead letters per error class, source table and origin
/// partition, open and resolved.
pub fn list(dead: &DeadLetters) -> String {
    #[derive(Default)]
    struct Count {
        letters: usize,
        open: usize,
    }
    let mut counts: BTreeMap<(String, String, String), Count> = BTreeMap::new();
    for l in dead.distinct() {
        let partition = l
            .origin
            .as_ref()
            .map_or("-".to_owned(), |(t, p, _)| format!("{t}/{p}"));
        let table = l.table.clone().unwrap_or_else(|| "-".into());
        let count = counts
            .entry((l.class.clone(), table, partition))
            .or_default();
        count.letters += 1;
        if dead.resolution(l).is_none() {
            count.open += 1;
        }
    }
    let mut out = format!(
        "{:<8} {:<32} {:<40} {:>8} {:>8} {:>8}\n",
        "class", "table", "from", "letters", "open", "resolved"
    );
    for ((class, table, partition), n) in &counts {
        out.push_str(&format!(
            "{class:<8} {table:<32} {partition:<40} {:>8} {:>8} {:>8}\n",
            n.letters,
            n.open,
            n.letters - n.open
        ));
    }
    let open: usize = counts.values().map(|c| c.open).sum();
    let letters = dead.distinct().len();
    out.push_str(&format!(
        "{letters} dead letters: {open} open, {} resolved",
        letters - open
    ));
    if dead.records() > letters {
        out.push_str(&format!(
            " ({} records in the topic: {} are copies of a record dead-lettered again, \
             counted and replayed once)",
            dead.records(),
            dead.records() - letters
        ));
    }
    out.push('\n');
    if let Some(at) = dead.last_resolved_ms(None) {
        out.push_str(&format!(
            "last resolved {}; `dlq show` says how each one was resolved\n",
            crate::timestamps::time_text(at)
        ));
    }
    out
}

/// The keys parked now (`on_error: park_key`), for `dlq list`: where, since
/// which offset, why.
pub fn parked_keys(config: &crate::config::Config) -> anyhow::Result<String> {
    if config.dead_letter.on_error != OnError::ParkKey {
        return Ok(String::new());
    }
    let topic = config.dead_letter.parked_topic();
    let client = sinkfleet_kafka::client_config(&config.kafka);
    let mut parked = read_parked(&client, &topic, TIMEOUT)
        .map_err(|e| anyhow::anyhow!("reading {topic}: {e}"))?;
    parked.sort_by(|a, b| (&a.topic, a.partition, a.since).cmp(&(&b.topic, b.partition, b.since)));
    let mut out = format!(
        "\n{} parked keys (release: dlq replay --key <key>, or dlq discard the record that parked it)\n",
        parked.len()
    );
    for p in &parked {
        out.push_str(&format!(
            "{}/{} since {} key {}: {}\n",
            p.topic,
            p.partition,
            p.since,
            text(Some(&p.key)),
            p.reason
        ));
    }
    Ok(out)
}

/// `dlq show`: the dead letters `filter` keeps, with their headers and
/// state; one JSON object per line with `json`.
pub fn show(dead: &DeadLetters, filter: &Filter, json: bool) -> String {
    let mut out = String::new();
    let letters = dead.distinct();
    let chosen = filter.apply(letters);
    if chosen.is_empty() {
        // On stderr with --json, whose stdout is JSON lines only.
        let said = filter.nothing_matched(letters);
        if json {
            eprintln!("{said}");
        } else {
            out = format!("{said}\n");
        }
    }
    for l in chosen {
        let state = dead.resolution(l).map_or_else(
            || "open".to_owned(),
            |r| format!("resolved: {}", describe(r)),
        );
        if json {
            let line = serde_json::json!({
                "partition": l.partition,
                "offset": l.offset,
                "class": l.class,
                "message": l.message,
                "origin": l.origin.as_ref().map(|(t, p, o)| serde_json::json!({"topic": t, "partition": p, "offset": o})),
                "table": l.table,
                "key": l.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "value": l.value.as_deref().map(|v| String::from_utf8_lossy(v).into_owned()),
                "copies": dead.copies(l),
                "resolved": dead.resolution(l).map(describe),
            });
            out.push_str(&format!("{line}\n"));
        } else {
            let copies = match dead.copies(l) {
                1 => String::new(),
                n => format!(" ({n} copies)"),
            };
            out.push_str(&format!(
                "{}@{} {} from {} table {}: {}\n  state: {state}{copies}\n  key:   {}\n  value: {}\n",
                l.partition,
                l.offset,
                l.class,
                origin(l),
                l.table.as_deref().unwrap_or("-"),
                l.message,
                text(l.key.as_deref()),
                text(l.value.as_deref()),
            ));
        }
    }
    out
}

/// The keys parked now, where `config` parks keys.
pub(crate) fn parked_now(config: &crate::config::Config) -> anyhow::Result<Vec<ParkedKey>> {
    if config.dead_letter.on_error != OnError::ParkKey {
        return Ok(Vec::new());
    }
    let client = sinkfleet_kafka::client_config(&config.kafka);
    read_parked(&client, &config.dead_letter.parked_topic(), TIMEOUT)
        .map_err(|e| anyhow::anyhow!("reading the parked keys: {e}"))
}

/// Refuses `--through-sink` for records of keys parked now: the sink
/// would apply them, but the worker keeps the key parked (only a record
/// replayed into the key's partition releases it, in stream order), so
/// the key's next change would be parked again.
fn refuse_parked(parked: &[ParkedKey], chosen: &[&Letter]) -> anyhow::Result<()> {
    let mut hit: Vec<String> = parked
        .iter()
        .filter(|p| {
            chosen.iter().any(|l| {
                l.key.as_deref() == Some(&p.key[..])
                    && l.origin
                        .as_ref()
                        .is_some_and(|(t, part, _)| *t == p.topic && *part == p.partition)
            })
        })
        .map(|p| format!("{}/{} key {}", p.topic, p.partition, text(Some(&p.key))))
        .collect();
    hit.dedup();
    if hit.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "--through-sink does not release parked keys, and these records are of keys parked now: \
         {}. Nothing was applied. Release a key by replaying its records into its topic \
         (sinkfleet dlq replay -c … --key '<key>', with the workers running)",
        hit.join("; ")
    )
}

/// The open dead letters `filter` keeps (resolved ones too with `again`),
/// in their original order, and what was said of the resolved ones
/// skipped. Selecting nothing is an error naming `verb` (`replay`).
pub(crate) fn select<'a>(
    dead: &'a DeadLetters,
    filter: &Filter,
    again: bool,
    verb: &str,
) -> anyhow::Result<(Vec<&'a Letter>, String)> {
    let letters = dead.distinct();
    let matched = filter.apply(letters);
    if matched.is_empty() {
        anyhow::bail!("{}: nothing to {verb}", filter.nothing_matched(letters));
    }
    let (mut chosen, resolved): (Vec<&Letter>, Vec<&Letter>) = matched
        .into_iter()
        .partition(|l| again || dead.resolution(l).is_none());
    let mut said = String::new();
    if !resolved.is_empty() {
        said.push_str(&format!(
            "skipping {} dead letters resolved already{}\n",
            resolved.len(),
            if verb == "replay" {
                " (--again replays them)"
            } else {
                ""
            }
        ));
    }
    if chosen.is_empty() {
        anyhow::bail!("{said}nothing to {verb}: every matching dead letter is resolved");
    }
    chosen.sort_by(|a, b| a.origin.cmp(&b.origin));
    Ok((chosen, said))
}

/// What a command does (`verb`) with one dead letter: where it is, where it
/// came from, its class and key, and whether it releases a parked key.
pub(crate) fn plan_line(verb: &str, arrow: &str, l: &Letter, releases: bool) -> String {
    format!(
        "{verb} {}@{} {arrow} {} {} key {}{}\n",
        l.partition,
        l.offset,
        origin(l),
        l.class,
        text(l.key.as_deref()),
        if releases {
            " (releases parked key)"
        } else {
            ""
        }
    )
}

/// How `dlq replay` sends records back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    /// Only say what would be replayed.
    DryRun,
    /// Back into the partitions they came from (see
    /// [`sinkfleet_kafka::inspect::replay`]).
    IntoTopic,
    /// Applied by the configured sink directly (see [`crate::dlq_apply`]).
    ThroughSink,
}

/// `dlq replay`: the open dead letters `filter` keeps (resolved ones too
/// with `again`), replayed as `mode` says; each one handed back is
/// recorded as resolved.
pub async fn replay(
    config: &crate::config::Config,
    dead: &DeadLetters,
    filter: &Filter,
    mode: ReplayMode,
    again: bool,
    release_wait: Duration,
) -> anyhow::Result<String> {
    let dry_run = mode == ReplayMode::DryRun;
    let letters = dead.distinct();
    // Each key's records go back in their original order: a parked key is
    // released by the replay of the record that parked it, and its later
    // records must follow that one.
    let (chosen, mut out) = select(dead, filter, again, "replay")?;
    let parked = parked_now(config)?;
    // Through the sink, its report lists the records.
    if mode != ReplayMode::ThroughSink {
        let verb = if dry_run { "would replay" } else { "replay" };
        for l in &chosen {
            let releases = crate::dlq_release::releases_key(&parked, l);
            out.push_str(&plan_line(verb, "->", l, releases));
        }
    }
    if dry_run {
        out.push_str(&format!(
            "{} records would be replayed (dry run)\n",
            chosen.len()
        ));
        return Ok(out);
    }
    let resolver = Resolver::new(config).await?;
    if mode == ReplayMode::ThroughSink {
        refuse_parked(&parked, &chosen)?;
        let outcome = crate::dlq_apply::apply(config, &chosen).await?;
        let handled: Vec<&Letter> = outcome.handled.iter().map(|&i| chosen[i]).collect();
        resolver.applied(&handled).await?;
        let refused = chosen.len() - handled.len();
        if refused > 0 {
            anyhow::bail!(
                "{out}{}{refused} records refused again (they stay open in the dead-letter topic), \
                 {} handled",
                outcome.report,
                handled.len()
            );
        }
        return Ok(format!(
            "{out}{}{} records applied through the sink\n",
            outcome.report,
            handled.len()
        ));
    }
    // Only a worker applies the replayed records and releases the keys:
    // say before replaying when none runs, rather than after the wait.
    let releasing = chosen
        .iter()
        .filter(|l| crate::dlq_release::releases_key(&parked, l))
        .count();
    if releasing > 0 && crate::status::live_members(config)?.is_empty() {
        eprintln!(
            "no worker of group {} is running (by their status reports): {releasing} parked \
             keys are released when one applies their replayed records; waiting up to {}s for \
             that after the replay (stopping this command is safe: run the same replay again \
             once the workers caught up, replays are harmless)",
            config.kafka.group_id,
            release_wait.as_secs()
        );
    }
    let client = sinkfleet_kafka::client_config(&config.kafka);
    let offsets = sinkfleet_kafka::inspect::replay(&client, &chosen)
        .await
        .map_err(anyhow::Error::msg)?;
    resolver.replayed(&chosen, &offsets).await?;
    out.push_str(&format!("{} records replayed\n", offsets.len()));
    let releases = crate::dlq_release::releases(&parked, &chosen, &offsets);
    if !releases.is_empty() {
        // Where this replay read the dead-letter topic up to.
        let mut seen: HashMap<i32, i64> = HashMap::new();
        for l in letters {
            let end = seen.entry(l.partition).or_default();
            *end = (*end).max(l.offset + 1);
        }
        match crate::dlq_release::follow_up(config, &releases, &seen, &resolver, release_wait).await
        {
            Ok(done) => out.push_str(&done),
            Err(e) => anyhow::bail!("{out}{e}"),
        }
    }
    Ok(out)
}
