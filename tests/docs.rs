//! The documentation against the code: the README stays short, every link
//! between documents resolves, nothing points outside the repository (the
//! tests' fixtures aside), every `sinkfleet` command line shown exists with
//! the flags it shows, and every worker config fragment shown is valid
//! (`sinkfleet validate` on the example config with the fragment in place
//! of its sections).

#![allow(clippy::unwrap_used)] // test helpers may panic: that fails the test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// README.md and every page under docs/.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut docs = vec![Path::new(ROOT).join("README.md")];
    walk(&Path::new(ROOT).join("docs"), &mut docs);
    docs.sort();
    docs
}

/// The fenced code blocks of `text`: (info string, body).
fn code_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

fn sinkfleet(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sinkfleet"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_readme_is_a_front_page() {
    let lines = std::fs::read_to_string(Path::new(ROOT).join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines: move detail to docs/"
    );
}

/// The targets of the Markdown links `[text](target)` in `line`.
fn links(line: &str) -> Vec<&str> {
    line.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|target| !target.is_empty() && !target.contains(char::is_whitespace))
        .collect()
}

#[test]
fn links_resolve_and_nothing_points_outside_the_repository() {
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (i, line) in text.lines().enumerate() {
            // The tests' fixtures live beside a checkout, on purpose.
            if line.contains("../shared") && !line.contains("../shared/fixtures") {
                panic!(
                    "{}:{}: points outside the repository: {line}",
                    doc.display(),
                    i + 1
                );
            }
            for target in links(line) {
                if target.starts_with("http") || target.starts_with('#') {
                    continue;
                }
                let file = target.split('#').next().unwrap_or_default();
                let resolved = doc.parent().unwrap().join(file);
                assert!(
                    resolved.exists(),
                    "{}:{}: link to {target}, which does not exist",
                    doc.display(),
                    i + 1
                );
            }
        }
    }
}

/// The `sinkfleet …` commands of inline code spans in `text`.
fn inline_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Spans are the odd pieces between backticks.
        for span in line.split('`').skip(1).step_by(2) {
            if let Some(command) = span.strip_prefix("sinkfleet ") {
                out.push(command.to_owned());
            }
        }
    }
    out
}

/// Every `$ sinkfleet …` line of a code block and every inline
/// `sinkfleet …` span: its subcommands exist and every `--flag` it uses is
/// one their `--help` names.
#[test]
fn every_command_shown_exists_with_its_flags() {
    let mut checked = 0;
    let mut help: BTreeMap<String, String> = BTreeMap::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let shown = code_blocks(&text)
            .into_iter()
            .flat_map(|(_, body)| {
                body.lines()
                    .filter_map(|l| l.trim().strip_prefix("$ sinkfleet "))
                    .map(|c| c.split('#').next().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            })
            .chain(inline_commands(&text));
        {
            for command in shown {
                let line = command.as_str();
                let words: Vec<&str> = command.split_whitespace().collect();
                // The subcommand path: the words before the first flag.
                let path: Vec<&str> = words
                    .iter()
                    .take_while(|w| !w.starts_with('-'))
                    .copied()
                    .collect();
                let key = path.join(" ");
                let text = help.entry(key.clone()).or_insert_with(|| {
                    let mut args = path.clone();
                    args.push("--help");
                    let (ok, text) = sinkfleet(&args);
                    assert!(
                        ok,
                        "{}: `sinkfleet {key}` does not exist: {text}",
                        doc.display()
                    );
                    text
                });
                let flags = words
                    .iter()
                    .map(|w| w.trim_matches(['[', ']']))
                    .filter(|w| w.starts_with('-'));
                for flag in flags {
                    let flag = flag.split('=').next().unwrap_or_default();
                    let named = text.match_indices(flag).any(|(at, _)| {
                        text[at + flag.len()..]
                            .chars()
                            .next()
                            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-')
                    });
                    assert!(
                        named,
                        "{}: `sinkfleet {key}` has no {flag}: {line}",
                        doc.display()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} command lines found");
}

/// The example worker config with `fragment`'s top-level sections in place
/// of its own.
fn with_fragment(example: &str, fragment: &str) -> String {
    let top = |line: &str| {
        line.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            .then(|| line.split(':').next().unwrap_or_default().to_owned())
    };
    let replaced: Vec<String> = fragment.lines().filter_map(top).collect();
    let mut out = String::new();
    let mut skipping = false;
    for line in example.lines() {
        if let Some(key) = top(line) {
            skipping = replaced.contains(&key);
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    let mut config = out + fragment;
    // A fragment showing registry formats alone: the registry is elsewhere.
    if fragment.contains("formats:") && !fragment.contains("registry:") {
        config = config.replace(
            "\ndecode:\n",
            "\ndecode:\n  registry: { url: \"http://127.0.0.1:1\" }\n",
        );
    }
    config
}

/// A CA certificate made with `openssl`, for fragments that name one
/// (`validate` reads it).
fn test_ca(dir: &Path) -> PathBuf {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=sinkfleet docs test CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    cert
}

/// Worker config fragments (`yaml` blocks outside the publisher's pages)
/// validate in the example config; a CA file they name is replaced by a
/// real one.
#[test]
fn every_worker_config_fragment_shown_is_valid() {
    let example = std::fs::read_to_string(Path::new(ROOT).join("config/postgres.yaml")).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs-fragments");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = test_ca(&dir);
    let mut checked = 0;
    for doc in documents() {
        if doc.ends_with("publisher.md") || doc.ends_with("snapshots-on-demand.md") {
            continue; // Debezium connector configs: tests/publisher*.rs
        }
        let text = std::fs::read_to_string(&doc).unwrap();
        for (i, (_, body)) in code_blocks(&text)
            .into_iter()
            .filter(|(info, _)| info == "yaml")
            .enumerate()
        {
            let body: String = body
                .lines()
                .map(|line| match line.split_once("ca_file: ") {
                    Some((before, _)) => format!("{before}ca_file: {}\n", ca.display()),
                    None => format!("{line}\n"),
                })
                .collect();
            let config = with_fragment(&example, &body);
            let path = dir.join(format!(
                "{}-{i}.yaml",
                doc.file_stem().unwrap().to_string_lossy()
            ));
            std::fs::write(&path, &config).unwrap();
            let (ok, text) = sinkfleet(&["validate", "--config", path.to_str().unwrap()]);
            assert!(ok, "{} block {i}:\n{body}\n{text}", doc.display());
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} fragments found");
}

/// The `sinkfleet_…` names in `text` (a histogram's `_bucket`, `_sum` and
/// `_count` series count as the histogram).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("sinkfleet_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .map_or(name.clone(), str::to_owned);
        if name.len() > "sinkfleet_".len() && !name.ends_with('_') {
            names.insert(name);
        }
    }
    names
}

/// Each crate's `src/metrics.rs`, the only files that declare metrics.
fn metrics_modules() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("crates"))
        .unwrap()
        .map(|krate| krate.unwrap().path().join("src/metrics.rs"))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    assert!(found.len() >= 5, "metrics modules: {found:?}");
    found
}

/// The string literals in `text` that are a whole metric name.
fn name_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|l| {
            l.starts_with("sinkfleet_")
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// Every metric name the crates declare.
fn declared_metrics() -> std::collections::BTreeSet<String> {
    metrics_modules()
        .iter()
        .flat_map(|path| name_literals(&std::fs::read_to_string(path).unwrap()))
        .collect()
}

/// docs/metrics.md and docs/publisher.md name every metric the crates
/// declare in their `metrics.rs`, and nothing else.
#[test]
fn the_metrics_pages_name_exactly_the_declared_metrics() {
    let declared = declared_metrics();
    let read = |page: &str| std::fs::read_to_string(Path::new(ROOT).join(page)).unwrap();
    let documented = metric_names(&(read("docs/metrics.md") + &read("docs/publisher.md")));
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty(),
        "declared, not documented: {undocumented:?}"
    );
    assert!(unknown.is_empty(), "documented, not declared: {unknown:?}");
}

/// The dashboard and the alert rules (and their unit tests) watch only
/// declared metrics. `tests/monitoring.rs` checks the same against the
/// series real processes export; this catches a typo without servers.
#[test]
fn dashboards_and_alerts_name_only_declared_metrics() {
    let declared = declared_metrics();
    for file in [
        "deploy/grafana/sinkfleet.json",
        "deploy/prometheus/alerts.yaml",
        "deploy/prometheus/alerts.test.yaml",
    ] {
        let named = metric_names(&std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap());
        assert!(named.len() >= 5, "{file}: only {named:?}");
        let unknown: Vec<_> = named.difference(&declared).collect();
        assert!(
            unknown.is_empty(),
            "{file} names undeclared metrics: {unknown:?}"
        );
    }
}

/// No code names a metric outside the crates' `metrics.rs`: every
/// `"sinkfleet_…"` string in the sources is declared in one of them, and
/// no name is declared twice.
#[test]
fn metric_names_are_declared_in_one_place() {
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let modules = metrics_modules();
    let declared = declared_metrics();
    let declarations: usize = modules
        .iter()
        .map(|path| name_literals(&std::fs::read_to_string(path).unwrap()).len())
        .sum();
    assert_eq!(
        declarations,
        declared.len(),
        "a metric declared in two crates"
    );
    let mut files = Vec::new();
    sources(&Path::new(ROOT).join("src"), &mut files);
    for krate in std::fs::read_dir(Path::new(ROOT).join("crates")).unwrap() {
        sources(&krate.unwrap().path().join("src"), &mut files);
    }
    for file in files.iter().filter(|f| !modules.contains(f)) {
        let text = std::fs::read_to_string(file).unwrap();
        for name in name_literals(&text) {
            assert!(
                declared.contains(&name),
                "{}: names {name}, which no crate's metrics.rs declares",
                file.display()
            );
        }
    }
}
