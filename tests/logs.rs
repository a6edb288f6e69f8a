//! The log building blocks: sequence keys, composite indexes with paged
//! queries, watching commits from other processes, and expiring records.
//! Multi-process promises are tested with real processes: the test binary
//! re-executes itself (see `common/children.rs`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Error, Persistent, Store};

#[path = "common/children.rs"]
mod children;
use children::{COUNT, INDEX, env_number, env_path, finish, role, spawn_child};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Entry {
    #[persistent(key, sequence)]
    id: u64,
    #[persistent(sequence = "entries_written")]
    version: u64,
    #[persistent(index, unique)]
    label: String,
    writer: u32,
}

fn entry(label: &str) -> Entry {
    Entry { id: 0, version: 0, label: label.into(), writer: 0 }
}

#[test]
fn append_assigns_increasing_numbers_never_reused_after_a_delete() {
    let store = engine::temporary().unwrap();
    let mut first = entry("a");
    assert_eq!(first.append(&store).unwrap(), 1);
    assert_eq!((first.id, first.version), (1, 1));
    assert_eq!(entry("b").append(&store).unwrap(), 2);
    Entry::delete(&store, &2).unwrap();
    assert_eq!(entry("c").append(&store).unwrap(), 3, "a deleted number is not issued again");
    assert_eq!(store.read(|tx| tx.last_sequence("entry.id")).unwrap(), Some(3));
    assert_eq!(store.read(|tx| tx.last_sequence("entries_written")).unwrap(), Some(3));
}

#[test]
fn a_failed_append_gives_its_numbers_back() {
    let store = engine::temporary().unwrap();
    entry("taken").append(&store).unwrap();
    let outcome = store.write(|tx| {
        let clash = tx.append(&mut entry("taken"));
        assert!(matches!(clash, Err(Error::UniqueViolation { .. })), "{clash:?}");
        tx.append(&mut entry("free"))
    });
    assert_eq!(outcome.unwrap(), 2, "the failed append left no gap");
    let aborted = store.write(|tx| {
        tx.append(&mut entry("rolled back"))?;
        Err::<(), _>(Error::NotFound { model: "test", key: "abort".into() })
    });
    assert!(aborted.is_err());
    assert_eq!(entry("after").append(&store).unwrap(), 3, "an aborted transaction gives its numbers back");
}

#[test]
fn a_record_saved_with_its_own_number_moves_the_sequence_past_it() {
    let store = engine::temporary().unwrap();
    Entry { id: 10, version: 4, label: "by hand".into(), writer: 0 }.save(&store).unwrap();
    assert_eq!(entry("next").append(&store).unwrap(), 11);
    assert_eq!(store.read(|tx| tx.last_sequence("entries_written")).unwrap(), Some(5));
    Entry { id: 3, version: 1, label: "lower".into(), writer: 0 }.insert(&store).unwrap();
    assert_eq!(entry("then").append(&store).unwrap(), 12, "a lower number leaves the sequence alone");
}

#[cfg(feature = "json")]
#[test]
fn an_imported_store_goes_on_numbering_after_its_records() {
    let store = engine::temporary().unwrap();
    for label in ["a", "b", "c"] {
        entry(label).append(&store).unwrap();
    }
    let mut exported = Vec::new();
    store.export_json_lines("entry", &mut exported, &mut |_| {}).unwrap();
    let copy = engine::temporary().unwrap();
    copy.import_json_lines("entry", &mut exported.as_slice(), &mut |_| {}).unwrap();
    assert_eq!(entry("d").append(&copy).unwrap(), 4);
}

#[test]
fn sequence_names_are_checked() {
    let store = engine::temporary().unwrap();
    assert!(matches!(store.write(|tx| tx.next_sequence("")), Err(Error::InvalidName { .. })));
    let long = "s".repeat(256);
    assert!(matches!(store.read(|tx| tx.last_sequence(&long)), Err(Error::InvalidName { .. })));
}

/// Eight processes append at once; three are killed part-way. Every
/// number a process was told is stored, each process saw its numbers
/// increase, and the stored numbers are exactly 1..=last: none issued
/// twice, none skipped by a crash.
#[test]
fn sequence_numbers_from_eight_processes_with_kills_are_unique_and_gapless() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "sequence_numbers_from_eight_processes_with_kills_are_unique_and_gapless";
    if role().is_some() {
        let store = engine::options().durability(Durability::MayLoseLastCommits).open(env_path()).unwrap();
        let writer = env_number(INDEX);
        for n in 0..env_number(COUNT) {
            let mut record = Entry { id: 0, version: 0, label: format!("w{writer}-{n}"), writer };
            let id = record.append(&store).unwrap();
            children::say(&id.to_string());
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    drop(engine::open(dir.path()).unwrap());
    let mut spawned: Vec<_> = (0..8).map(|i| spawn_child(TEST, "appender", dir.path(), i, 300)).collect();
    std::thread::sleep(Duration::from_millis(150));
    for child in &mut spawned[..3] {
        child.kill().unwrap();
    }
    let mut acknowledged = BTreeSet::new();
    for (i, child) in spawned.into_iter().enumerate() {
        let ids: Vec<u64> = if i < 3 {
            let output = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.lines().filter_map(|l| l.strip_prefix('@')?.parse().ok()).collect()
        } else {
            finish(child).iter().map(|l| l.parse().unwrap()).collect()
        };
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "process {i} saw its numbers increase");
        for id in ids {
            assert!(acknowledged.insert(id), "number {id} was issued twice");
        }
    }
    let store = engine::open(dir.path()).unwrap();
    let stored: Vec<u64> = Entry::all(&store).unwrap().iter().map(|e| e.id).collect();
    let last = store.read(|tx| tx.last_sequence("entry.id")).unwrap().unwrap();
    assert_eq!(stored, (1..=last).collect::<Vec<_>>(), "stored numbers are 1..=last");
    assert!(acknowledged.iter().all(|id| stored.binary_search(id).is_ok()), "every acknowledged append is stored");
    assert!(stored.len() >= 5 * 300, "the five processes not killed finished");
    Entry::delete(&store, &last).unwrap();
    assert_eq!(entry("after").append(&store).unwrap(), last + 1);
}

// ---- composite indexes and paged queries ----

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(index(name = "by_aggregate", fields(aggregate, version), unique))]
struct Event {
    #[persistent(key, sequence)]
    id: u64,
    aggregate: String,
    version: u64,
    body: String,
}

fn event(aggregate: &str, version: u64) -> Event {
    Event { id: 0, aggregate: aggregate.into(), version, body: format!("{aggregate}@{version}") }
}

fn versions(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

#[test]
fn a_composite_index_answers_since_latest_and_pages() {
    let store = engine::temporary().unwrap();
    for version in 1..=20 {
        for aggregate in ["a", "b", "c"] {
            event(aggregate, version).append(&store).unwrap();
        }
    }
    let of_b = Event::query_by(Event::BY_AGGREGATE).prefix(&("b",));
    let since = of_b.clone().range(("b".to_string(), 16)..).fetch(&store).unwrap();
    assert_eq!(versions(&since.records), [16, 17, 18, 19, 20]);
    assert!(since.records.iter().all(|e| e.aggregate == "b"));
    let latest = of_b.clone().reverse().limit(1).fetch(&store).unwrap();
    assert_eq!(versions(&latest.records), [20]);
    assert!(latest.more);

    for limit in [1, 3, 7, 20, 25] {
        for reverse in [false, true] {
            let mut query = of_b.clone().limit(limit);
            if reverse {
                query = query.reverse();
            }
            let mut seen = Vec::new();
            let mut page = query.fetch(&store).unwrap();
            loop {
                assert!(page.records.len() <= limit);
                seen.extend(versions(&page.records));
                if !page.more {
                    break;
                }
                let text = page.last.unwrap().to_string();
                page = query.clone().after(&text.parse().unwrap()).fetch(&store).unwrap();
            }
            let mut expected: Vec<u64> = (1..=20).collect();
            if reverse {
                expected.reverse();
            }
            assert_eq!(seen, expected, "limit {limit}, reverse {reverse}");
        }
    }
    let duplicate = event("b", 7).append(&store);
    assert!(matches!(duplicate, Err(Error::UniqueViolation { index: "by_aggregate", .. })), "{duplicate:?}");
    assert_eq!(
        Event::INFO.indexes[0].fingerprint(),
        "composite unique by_aggregate: (String, u64) of (aggregate, version)"
    );
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn key_queries_page_in_both_directions() {
    let store = engine::temporary().unwrap();
    for version in 1..=10 {
        event("k", version).append(&store).unwrap();
    }
    let first = Event::query().range(3..).limit(4).fetch(&store).unwrap();
    assert_eq!(first.records.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5, 6]);
    let rest = Event::query().range(3..).after(first.last.as_ref().unwrap()).fetch(&store).unwrap();
    assert_eq!(rest.records.iter().map(|e| e.id).collect::<Vec<_>>(), [7, 8, 9, 10]);
    assert!(!rest.more);
    let down = Event::query().range(..=4).reverse().fetch(&store).unwrap();
    assert_eq!(down.records.iter().map(|e| e.id).collect::<Vec<_>>(), [4, 3, 2, 1]);
}

#[test]
fn a_composite_value_over_the_key_limit_is_refused_and_nothing_is_written() {
    let store = engine::temporary().unwrap();
    let long = event(&"x".repeat(600), 1).append(&store);
    assert!(matches!(long, Err(Error::KeyTooLong { .. })), "{long:?}");
    assert_eq!(Event::count(&store).unwrap(), 0);
    assert_eq!(store.read(|tx| tx.last_sequence("event.id")).unwrap(), None, "the number was given back");
}

/// A reader in this process pages through an aggregate, 7 at a time,
/// while another process appends to it: every version is seen once, in
/// order, none skipped.
#[test]
fn paging_while_another_process_appends_repeats_and_skips_nothing() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "paging_while_another_process_appends_repeats_and_skips_nothing";
    const TOTAL: u64 = 400;
    if role().is_some() {
        let store = engine::options().durability(Durability::MayLoseLastCommits).open(env_path()).unwrap();
        for version in 1..=TOTAL {
            event("live", version).append(&store).unwrap();
            event("other", version).append(&store).unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = engine::open(dir.path()).unwrap();
    let writer = spawn_child(TEST, "appender", dir.path(), 0, 0);
    let query = Event::query_by(Event::BY_AGGREGATE).prefix(&("live",)).limit(7);
    let (mut seen, mut cursor) = (Vec::new(), None);
    let mut pages = 0;
    while seen.len() < TOTAL as usize {
        let this = match &cursor {
            Some(at) => query.clone().after(at),
            None => query.clone(),
        };
        let page = this.fetch(&store).unwrap();
        pages += 1;
        seen.extend(versions(&page.records));
        cursor = page.last.or(cursor);
        if page.records.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    finish(writer);
    assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>());
    assert!(pages > 1);
}

// ---- exactly-once appends ----

/// An append carries (stream, producer, producer sequence); a unique
/// composite index over the three makes a retried append a typed
/// duplicate, refused in the same transaction that would have appended.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(index(name = "by_producer", fields(stream, producer, producer_seq), unique))]
struct Message {
    #[persistent(key, sequence)]
    offset: u64,
    stream: String,
    producer: String,
    producer_seq: u64,
    data: String,
}

/// Appends once: a retry of an append already stored is reported as
/// success with the offset it got the first time.
fn append_once(store: &Store, mut message: Message) -> skyshelve::Result<u64> {
    match message.append(store) {
        Err(Error::UniqueViolation { index: "by_producer", .. }) => {
            let key = (message.stream.clone(), message.producer.clone(), message.producer_seq);
            let first = Message::query_by(Message::BY_PRODUCER).range(key.clone()..=key).fetch(store)?;
            Ok(first.records[0].offset)
        }
        other => other,
    }
}

#[test]
fn a_retried_append_is_a_duplicate_not_a_second_message() {
    let store = engine::temporary().unwrap();
    let message = |seq: u64, data: &str| Message {
        offset: 0,
        stream: "s".into(),
        producer: "p1".into(),
        producer_seq: seq,
        data: data.into(),
    };
    assert_eq!(append_once(&store, message(1, "a")).unwrap(), 1);
    assert_eq!(append_once(&store, message(2, "b")).unwrap(), 2);
    assert_eq!(append_once(&store, message(1, "a")).unwrap(), 1, "the retry answers the first offset");
    assert_eq!(Message::count(&store).unwrap(), 2);
    assert_eq!(store.read(|tx| tx.last_sequence("message.offset")).unwrap(), Some(2), "the retry used no number");
    let other_producer = Message { producer: "p2".into(), ..message(1, "c") };
    assert_eq!(append_once(&store, other_producer).unwrap(), 3);
}

// ---- watching commits ----

/// Runs a future to completion on this thread: the smallest executor,
/// so that the async watch is tested without a runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park_timeout(Duration::from_secs(10));
    }
}

/// A watcher process follows appends made by this process: it reads from
/// its own position, waits, and must see every entry, in order, without
/// a wait that runs into its timeout (a missed wake-up). Child 0 waits
/// blocking, child 1 awaits.
#[test]
fn a_watcher_in_another_process_sees_every_append() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "a_watcher_in_another_process_sees_every_append";
    const TOTAL: u64 = 60;
    if role().is_some() {
        let store = engine::open(env_path()).unwrap();
        let asynchronous = env_number(INDEX) == 1;
        let mut watch = Entry::watch(&store).unwrap();
        children::say("ready");
        let mut last = 0;
        while last < TOTAL {
            for record in Entry::query().range(last + 1..).fetch(&store).unwrap().records {
                assert_eq!(record.id, last + 1, "in order, none skipped");
                last = record.id;
                children::say(&last.to_string());
            }
            if last < TOTAL {
                if asynchronous {
                    block_on(watch.changed());
                } else {
                    assert!(watch.wait_timeout(Duration::from_secs(20)), "a commit was missed");
                }
            }
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = engine::open(dir.path()).unwrap();
    let mut watchers: Vec<_> = (0..2).map(|i| spawn_child(TEST, "watcher", dir.path(), i, 0)).collect();
    for watcher in &mut watchers {
        children::wait_for_line(watcher, "ready");
    }
    for n in 0..TOTAL {
        entry(&format!("e{n}")).append(&store).unwrap();
        if n % 3 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for watcher in watchers {
        let seen: Vec<u64> = finish(watcher).iter().filter_map(|l| l.parse().ok()).collect();
        assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>());
    }
}

#[test]
fn a_model_watch_wakes_for_its_model_and_a_store_watch_for_anything() {
    let store = engine::temporary().unwrap();
    let mut entries = Entry::watch(&store).unwrap();
    let mut everything = store.watch().unwrap();
    let map = store.map::<String, u64>("hits").unwrap();
    map.insert(&"a".to_string(), &1).unwrap();
    assert!(everything.wait_timeout(Duration::from_secs(5)), "a map write is a commit");
    entry("x").append(&store).unwrap();
    assert!(entries.wait_timeout(Duration::from_secs(5)));
    assert!(!entries.has_changed(), "the wait took the change");
    assert!(everything.has_changed(), "the append was a commit too");
    store.write(|tx| tx.last_sequence("nothing").map(drop)).unwrap();
    assert!(!everything.has_changed(), "a write transaction that changed nothing publishes nothing");
}

// ---- expiring records ----

use std::time::SystemTime;

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Session {
    #[persistent(key)]
    token: String,
    #[persistent(index, unique)]
    user: String,
    #[persistent(index)]
    team: u32,
    #[persistent(expires)]
    expires_at: Option<SystemTime>,
}

fn session(token: &str, user: &str, expires_at: Option<SystemTime>) -> Session {
    Session { token: token.into(), user: user.into(), team: 1, expires_at }
}

fn ago(ms: u64) -> Option<SystemTime> {
    Some(SystemTime::now() - Duration::from_millis(ms))
}

fn from_now(ms: u64) -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_millis(ms))
}

/// The raw number of stored records, expired ones included.
fn stored(store: &Store) -> u64 {
    store.stats().unwrap().models.iter().find(|m| m.name == "session").map_or(0, |m| m.records)
}

#[test]
fn an_expired_record_is_invisible_to_every_read_before_any_purge() {
    let store = engine::temporary().unwrap();
    session("live", "ada", from_now(3_600_000)).save(&store).unwrap();
    session("forever", "bob", None).save(&store).unwrap();
    session("gone", "cyd", ago(1)).save(&store).unwrap();
    assert_eq!(stored(&store), 3, "nothing purged yet");

    assert!(Session::load(&store, "gone").unwrap().is_none());
    assert!(!Session::exists(&store, "gone").unwrap());
    assert!(Session::load_by(&store, Session::USER, "cyd").unwrap().is_none());
    assert_eq!(Session::scan_index(&store, Session::TEAM, &1).unwrap().len(), 2);
    assert_eq!(Session::range_index(&store, Session::TEAM, ..).unwrap().len(), 2);
    assert_eq!(Session::all(&store).unwrap().len(), 2);
    assert_eq!(Session::range(&store, ..).unwrap().len(), 2);
    assert_eq!(Session::prefix(&store, "go").unwrap().len(), 0);
    assert_eq!(Session::count(&store).unwrap(), 2);
    assert_eq!(Session::query().fetch(&store).unwrap().records.len(), 2);
    assert_eq!(Session::query_by(Session::TEAM).fetch(&store).unwrap().records.len(), 2);
    assert_eq!(store.read(|tx| Ok(tx.iter::<Session>()?.count())).unwrap(), 2);
    #[cfg(feature = "json")]
    {
        let mut exported = Vec::new();
        assert_eq!(store.export_json_lines("session", &mut exported, &mut |_| {}).unwrap(), 2);
        assert!(!String::from_utf8(exported).unwrap().contains("cyd"));
    }
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(store.purge_expired().unwrap(), 1);
    assert_eq!((stored(&store), Session::count(&store).unwrap()), (2, 2));
}

#[test]
fn writes_treat_an_expired_record_as_gone() {
    let store = engine::temporary().unwrap();
    session("t1", "ada", ago(1)).save(&store).unwrap();
    let update = Session::update(&store, "t1", |s| s.team = 2);
    assert!(matches!(update, Err(Error::NotFound { .. })), "{update:?}");
    session("t1", "ada", None).save(&store).unwrap();
    assert_eq!(Session::load(&store, "t1").unwrap().unwrap().expires_at, None);

    session("t2", "bob", ago(1)).save(&store).unwrap();
    session("t3", "bob", None).insert(&store).expect("an expired record's unique value is free");
    session("t2", "cyd", None).insert(&store).expect("an expired record's key is free");
    session("t4", "dan", ago(1)).save(&store).unwrap();
    assert!(!Session::delete(&store, "t4").unwrap(), "deleting an expired record finds nothing");
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(stored(&store), 3, "the writes removed the expired records they met");
}

#[test]
fn a_sliding_expiry_is_an_ordinary_update() {
    let store = engine::temporary().unwrap();
    let first_expiry = from_now(1000);
    session("s", "ada", first_expiry).save(&store).unwrap();
    while SystemTime::now() < first_expiry.unwrap() + Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(100));
        Session::update(&store, "s", |s| s.expires_at = from_now(1000)).unwrap();
    }
    assert!(Session::load(&store, "s").unwrap().is_some(), "kept alive past its first expiry");
    std::thread::sleep(Duration::from_millis(1100));
    assert!(Session::load(&store, "s").unwrap().is_none());
}

#[test]
fn an_expiry_in_a_bad_form_is_refused_and_nothing_is_written() {
    let store = engine::temporary().unwrap();
    let before_epoch = Some(SystemTime::UNIX_EPOCH - Duration::from_secs(1));
    let refused = session("bad", "ada", before_epoch).save(&store);
    assert!(matches!(refused, Err(Error::BadExpiry { model: "session", .. })), "{refused:?}");
    assert_eq!(stored(&store), 0);
}

/// A record saved by another process with a short expiry is visible
/// here until then, and invisible after, with nothing purged.
#[test]
fn expiry_is_seen_from_another_process_without_a_purge() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "expiry_is_seen_from_another_process_without_a_purge";
    if role().is_some() {
        let store = engine::open(env_path()).unwrap();
        session("short", "ada", from_now(2000)).save(&store).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = engine::open(dir.path()).unwrap();
    finish(spawn_child(TEST, "writer", dir.path(), 0, 0));
    assert!(Session::load(&store, "short").unwrap().is_some(), "not expired yet");
    std::thread::sleep(Duration::from_millis(2100));
    assert!(Session::load(&store, "short").unwrap().is_none());
    assert_eq!(Session::count(&store).unwrap(), 0);
    assert_eq!(stored(&store), 1, "still stored: nobody purged");
}

#[test]
fn the_background_purger_removes_expired_records() {
    let store = engine::options().purge_expired_every(Duration::from_millis(20)).open_temporary().unwrap();
    session("soon", "ada", from_now(50)).save(&store).unwrap();
    let start = std::time::Instant::now();
    while stored(&store) > 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the purger never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
}
