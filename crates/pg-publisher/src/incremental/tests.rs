use super::*;
use std::collections::BTreeMap;

fn incremental() -> Incremental {
    let p: BTreeMap<String, String> = [
        ("database.hostname", "h"),
        ("database.user", "u"),
        ("database.password", ""),
        ("database.dbname", "app"),
        ("topic.prefix", "app"),
        ("signal.data.collection", "public.signals"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Incremental::new(&ConnectorConfig::from_properties(&p).unwrap())
}

fn request(table: &str, last: Option<&str>, done: u64) -> Request {
    Request {
        table: table.into(),
        filter: None,
        last: last.map(|l| vec![l.to_owned()]),
        done,
    }
}

/// A chunk of `table` published after `last` and committed as the
/// stream's `commit`th commit.
fn publish(inc: &mut Incremental, table: &str, last: Option<&str>, done: u64, commit: u64) {
    inc.in_flight.push_back(InFlight {
        commit: None,
        before: request(table, last, done),
    });
    inc.committed(commit);
}

#[test]
fn progress_resumes_before_the_oldest_chunk_not_acknowledged() {
    let mut inc = incremental();
    inc.queue.push_back(request("public.b", None, 0));
    publish(&mut inc, "public.a", Some("1024"), 1024, 7);
    publish(&mut inc, "public.a", Some("2048"), 2048, 9);
    let p = inc.progress().unwrap();
    let current = p.current.unwrap();
    assert_eq!(
        (current.table.as_str(), current.last, current.done),
        ("public.a", Some(vec!["1024".to_owned()]), 1024)
    );
    assert_eq!(p.queue.len(), 1);
    assert_eq!(p.queue[0].table, "public.b");

    // The first chunk acknowledged: a restart resumes at the second.
    inc.acknowledged(8);
    assert_eq!(
        inc.progress().unwrap().current.unwrap().last,
        Some(vec!["2048".to_owned()])
    );
    // Both: nothing left in flight, nothing being read, one table waiting.
    inc.acknowledged(9);
    assert!(inc.in_flight.is_empty());
    assert_eq!(inc.progress().unwrap().current.unwrap().table, "public.b");
}

#[test]
fn a_table_finished_but_not_acknowledged_is_still_recorded() {
    let mut inc = incremental();
    // public.a's last chunk is in flight; public.b waits.
    publish(&mut inc, "public.a", Some("4096"), 4096, 3);
    inc.queue.push_back(request("public.b", None, 0));
    let p = inc.progress().unwrap();
    assert_eq!(p.current.unwrap().table, "public.a");
    assert_eq!(p.queue[0].table, "public.b");
}

#[test]
fn windows_wait_once_enough_chunks_are_in_flight() {
    let mut inc = incremental();
    inc.queue.push_back(request("public.a", None, 0));
    for commit in 1..CHUNKS_IN_FLIGHT as u64 {
        publish(&mut inc, "public.a", None, 0, commit);
        assert!(inc.wants_window());
    }
    publish(&mut inc, "public.a", None, 0, CHUNKS_IN_FLIGHT as u64);
    assert!(!inc.wants_window());
    inc.acknowledged(1);
    assert!(inc.wants_window());
}

#[test]
fn the_done_marker_waits_for_every_chunk() {
    let mut inc = incremental();
    inc.recorded = true;
    publish(&mut inc, "public.a", None, 0, 5);
    // An uncommitted chunk is not acknowledged by a count past it.
    inc.in_flight.push_back(InFlight {
        commit: None,
        before: request("public.a", Some("1"), 1),
    });
    assert!(!inc.wants_window());
    inc.acknowledged(6);
    assert!(!inc.wants_window());
    inc.committed(7);
    inc.acknowledged(7);
    assert!(inc.wants_window());
}

#[test]
fn a_stopped_table_leaves_the_progress_and_the_chunks_in_flight() {
    let mut inc = incremental();
    publish(&mut inc, "public.a", None, 0, 1);
    inc.queue.push_back(request("public.b", None, 0));
    inc.stop(&Signal {
        id: "s".into(),
        kind: "stop-snapshot".into(),
        data: Some(r#"{"data-collections": ["public.a"]}"#.into()),
    });
    assert!(inc.in_flight.is_empty());
    assert_eq!(inc.progress().unwrap().current.unwrap().table, "public.b");
}
