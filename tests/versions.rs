//! Schema versions: records written by an older model version (the golden
//! store in tests/data, written by tests/golden_v1.rs) are upgraded on read
//! and rewritten by `migrate`; records of a newer version are refused,
//! never overwritten.

use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvOpenOptions};
use skyshelve::{Error, Persistent};

#[path = "common/golden_users.rs"]
mod golden_users;
use golden_users::User;

#[path = "common/engine.rs"]
mod engine;

/// A writable copy of the committed golden store.
fn golden_copy() -> tempfile::TempDir {
    copy_of("users_v1")
}

/// A writable copy of the committed store in tests/data/`name`.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data").join(name).join("data.mdb");
    std::fs::copy(golden, dir.path().join("data.mdb")).unwrap();
    dir
}

#[test]
fn a_store_from_before_the_catalog_gets_its_indexes_rebuilt_on_open() {
    if engine::not_on_slatedb("opens a golden store written by LMDB") {
        return;
    }
    let dir = copy_of("users_v1_before_catalog");
    let store = engine::open(dir.path()).unwrap();
    // Built from the upgraded records: lower-case teams, the new index filled.
    assert!(User::verify(&store).unwrap().is_clean(), "{}", User::verify(&store).unwrap());
    assert_eq!(User::scan_index(&store, User::TEAM, "red").unwrap(), [user(1, "red"), user(3, "red")]);
    assert_eq!(User::scan_index(&store, User::ACTIVE, &true).unwrap().len(), 3);
    assert_eq!(User::migrate(&store, &mut |_| {}).unwrap(), 3, "the records themselves are still version 1");
}

fn user(id: u32, team: &str) -> User {
    User { id, email: format!("u{id}@example.com"), team: team.into(), active: true }
}

#[test]
fn older_records_are_upgraded_on_read() {
    if engine::not_on_slatedb("opens a golden store written by LMDB") {
        return;
    }
    let dir = golden_copy();
    let store = engine::open(dir.path()).unwrap();
    assert_eq!(User::load(&store, &1).unwrap().unwrap(), user(1, "red"));
    assert_eq!(User::all(&store).unwrap(), [user(1, "red"), user(2, "blue"), user(3, "red")]);
    assert_eq!(User::load_by(&store, User::EMAIL, "u2@example.com").unwrap().unwrap(), user(2, "blue"));
}

#[test]
fn migrate_rewrites_older_records_and_rebuilds_their_index_entries() {
    if engine::not_on_slatedb("opens a golden store written by LMDB") {
        return;
    }
    let dir = golden_copy();
    let store = engine::open(dir.path()).unwrap();
    assert!(!User::verify(&store).unwrap().is_clean(), "entries written by version 1 differ");
    let mut reports = Vec::new();
    assert_eq!(User::migrate(&store, &mut |p| reports.push(p)).unwrap(), 3);
    assert_eq!(reports.last().map(|p| p.done), Some(3));
    assert!(User::verify(&store).unwrap().is_clean(), "{}", User::verify(&store).unwrap());
    assert_eq!(User::scan_index(&store, User::TEAM, "red").unwrap(), [user(1, "red"), user(3, "red")]);
    assert!(User::scan_index(&store, User::TEAM, "Red").unwrap().is_empty());
    assert_eq!(User::scan_index(&store, User::ACTIVE, &true).unwrap().len(), 3);
    assert_eq!(User::migrate(&store, &mut |_| {}).unwrap(), 0, "nothing older is left");
}

#[test]
fn writing_over_an_older_record_rebuilds_its_entries() {
    if engine::not_on_slatedb("opens a golden store written by LMDB") {
        return;
    }
    let dir = golden_copy();
    let store = engine::open(dir.path()).unwrap();
    User::update(&store, &1, |u| u.team = "green".into()).unwrap();
    user(2, "blue").save(&store).unwrap();
    assert!(User::delete(&store, &3).unwrap());
    assert!(store.verify().unwrap().is_clean(), "{}", store.verify().unwrap());
    assert_eq!(User::scan_index(&store, User::TEAM, "green").unwrap(), [user(1, "green")]);
    assert!(User::scan_index(&store, User::TEAM, "Red").unwrap().is_empty());
}

/// Rewrites the version in the header of record `id`, as a newer program would have.
fn stamp_version(dir: &Path, id: u32, version: u16) {
    // SAFETY: no skyshelve handle on this folder is open in this process.
    let env = unsafe { EnvOpenOptions::new().max_dbs(16).open(dir) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let table = env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            opener.create_database::<Bytes, Bytes>(wtxn, Some("golden_users")).map(CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    let mut wtxn = env.write_txn().unwrap();
    let mut bytes = table.get(&wtxn, &id.to_be_bytes()).unwrap().unwrap().to_vec();
    bytes[1..3].copy_from_slice(&version.to_be_bytes());
    table.put(&mut wtxn, &id.to_be_bytes(), &bytes).unwrap();
    wtxn.commit().unwrap();
}

#[test]
fn records_of_a_newer_version_are_refused_and_never_overwritten() {
    if engine::not_on_slatedb("opens a golden store written by LMDB") {
        return;
    }
    let dir = golden_copy();
    stamp_version(dir.path(), 2, 3);
    let store = engine::open(dir.path()).unwrap();
    let newer = |result: Result<(), Error>| matches!(result, Err(Error::NewerVersion { stored: 3, known: 2, .. }));
    assert!(newer(User::load(&store, &2).map(drop)));
    assert!(newer(user(2, "blue").save(&store)));
    assert!(newer(User::update(&store, &2, |u| u.active = false).map(drop)));
    assert!(newer(User::delete(&store, &2).map(drop)));
    assert_eq!(User::load(&store, &1).unwrap().unwrap(), user(1, "red"), "other records still load");
    // Migrating rewrites the older records and leaves the newer one as it is.
    assert_eq!(User::migrate(&store, &mut |_| {}).unwrap(), 2);
    assert!(newer(User::load(&store, &2).map(drop)));
}

#[test]
fn a_refused_save_of_an_older_record_keeps_its_index_entries() {
    if engine::not_on_slatedb("opens a golden store written by LMDB") {
        return;
    }
    let dir = golden_copy();
    let store = engine::open(dir.path()).unwrap();
    store
        .write(|tx| {
            let clash = User { email: "u2@example.com".into(), ..user(1, "red") };
            assert!(matches!(tx.save(&clash), Err(Error::UniqueViolation { .. })));
            let moved = User::update_in(tx, &1, |u| u.email = "u3@example.com".into());
            assert!(matches!(moved, Err(Error::UniqueViolation { .. })));
            Ok(())
        })
        .unwrap();
    assert_eq!(User::load_by(&store, User::EMAIL, "u1@example.com").unwrap(), Some(user(1, "red")));
    let thief = User { email: "u1@example.com".into(), ..user(9, "red") };
    assert!(matches!(thief.insert(&store), Err(Error::UniqueViolation { .. })), "record 1 still holds its email");
}
