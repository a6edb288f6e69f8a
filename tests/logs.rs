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
    let store = Store::temporary().unwrap();
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
    let store = Store::temporary().unwrap();
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
    let store = Store::temporary().unwrap();
    Entry { id: 10, version: 4, label: "by hand".into(), writer: 0 }.save(&store).unwrap();
    assert_eq!(entry("next").append(&store).unwrap(), 11);
    assert_eq!(store.read(|tx| tx.last_sequence("entries_written")).unwrap(), Some(5));
    Entry { id: 3, version: 1, label: "lower".into(), writer: 0 }.insert(&store).unwrap();
    assert_eq!(entry("then").append(&store).unwrap(), 12, "a lower number leaves the sequence alone");
}

#[cfg(feature = "json")]
#[test]
fn an_imported_store_goes_on_numbering_after_its_records() {
    let store = Store::temporary().unwrap();
    for label in ["a", "b", "c"] {
        entry(label).append(&store).unwrap();
    }
    let mut exported = Vec::new();
    store.export_json_lines("entry", &mut exported, &mut |_| {}).unwrap();
    let copy = Store::temporary().unwrap();
    copy.import_json_lines("entry", &mut exported.as_slice(), &mut |_| {}).unwrap();
    assert_eq!(entry("d").append(&copy).unwrap(), 4);
}

#[test]
fn sequence_names_are_checked() {
    let store = Store::temporary().unwrap();
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
    const TEST: &str = "sequence_numbers_from_eight_processes_with_kills_are_unique_and_gapless";
    if role().is_some() {
        let store = Store::options().durability(Durability::MayLoseLastCommits).open(env_path()).unwrap();
        let writer = env_number(INDEX);
        for n in 0..env_number(COUNT) {
            let mut record = Entry { id: 0, version: 0, label: format!("w{writer}-{n}"), writer };
            let id = record.append(&store).unwrap();
            children::say(&id.to_string());
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
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
    let store = Store::open(dir.path()).unwrap();
    let stored: Vec<u64> = Entry::all(&store).unwrap().iter().map(|e| e.id).collect();
    let last = store.read(|tx| tx.last_sequence("entry.id")).unwrap().unwrap();
    assert_eq!(stored, (1..=last).collect::<Vec<_>>(), "stored numbers are 1..=last");
    assert!(acknowledged.iter().all(|id| stored.binary_search(id).is_ok()), "every acknowledged append is stored");
    assert!(stored.len() >= 5 * 300, "the five processes not killed finished");
    Entry::delete(&store, &last).unwrap();
    assert_eq!(entry("after").append(&store).unwrap(), last + 1);
}
