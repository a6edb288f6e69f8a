//! The index catalog: an index added to a model is built from the records
//! already stored, a removed one is dropped, a changed one rebuilt, and two
//! programs with different definitions of one model do not fight.
//!
//! The models below are versions of one model, `catalog_users`, as
//! successive releases of a program would define it. One binary holds them
//! all, so each store here is opened with one of them
//! (`StoreOptions::models`), as that release would open it; the
//! multi-process test re-executes this binary, one release per process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Error, Persistent, Progress, Store};

#[path = "common/children.rs"]
mod children;
use children::{finish, say, wait_for_line};

#[path = "common/engine.rs"]
mod engine;

/// Release 1: a unique email index.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "catalog_users")]
struct UserV1 {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
    team: String,
}

/// Release 2: the team is indexed too.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "catalog_users", version = 2, from(UserV1 = 1))]
struct UserV2 {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: String,
}

/// Release 2 built differently: the team index is case-blind.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "catalog_users", version = 2, from(UserV1 = 1))]
struct UserV2CaseBlind {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index(with = UserV2CaseBlind::team_lower_case, value = String))]
    team: String,
}

/// Release 2 built differently: one record per team.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "catalog_users", version = 2, from(UserV1 = 1))]
struct UserV2UniqueTeam {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index, unique)]
    team: String,
}

/// Release 3: the team index is gone again.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "catalog_users", version = 3, from(UserV1 = 1, UserV2 = 2))]
struct UserV3 {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
    team: String,
}

/// A report built against release 2, declaring only the index it queries.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "catalog_users", version = 2, from(UserV1 = 1))]
struct UserV2Report {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
    team: String,
}

impl UserV2CaseBlind {
    fn team_lower_case(&self) -> [String; 1] {
        [self.team.to_lowercase()]
    }
}

macro_rules! same_fields {
    ($from:ty => $($to:ty),*) => {$(
        impl From<$from> for $to {
            fn from(old: $from) -> Self {
                Self { id: old.id, email: old.email, team: old.team }
            }
        }
    )*};
}
same_fields!(UserV1 => UserV2, UserV2CaseBlind, UserV2UniqueTeam, UserV2Report, UserV3);
same_fields!(UserV2 => UserV3);

fn email(id: u32) -> String {
    format!("u{id}@example.com")
}

fn team(id: u32) -> String {
    if id.is_multiple_of(2) { "Red".into() } else { "Blue".into() }
}

fn v1(id: u32) -> UserV1 {
    UserV1 { id, email: email(id), team: team(id) }
}

fn v2(id: u32) -> UserV2 {
    UserV2 { id, email: email(id), team: team(id) }
}

/// Opens the store as the release defining `M` would.
fn open_as<M: Persistent>(path: &Path) -> Store {
    options_as::<M>().open(path).unwrap()
}

fn options_as<M: Persistent>() -> skyshelve::StoreOptions {
    engine::options().models([M::INFO]).durability(Durability::MayLoseLastCommits)
}

/// Opens the store as `M`'s release, returning the index-build progress reports.
fn open_watching<M: Persistent>(path: &Path) -> (Store, Vec<Progress>) {
    watching(options_as::<M>(), path)
}

/// Opens the store as `M`'s release taking its indexes over at an equal
/// model version, returning the index-build progress reports.
fn take_over_watching<M: Persistent>(path: &Path) -> (Store, Vec<Progress>) {
    watching(options_as::<M>().take_over_indexes(true), path)
}

fn watching(options: skyshelve::StoreOptions, path: &Path) -> (Store, Vec<Progress>) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let store = options
        .on_index_build(move |model, progress| {
            assert_eq!(model, "catalog_users");
            sink.lock().unwrap().push(progress);
        })
        .open(path)
        .unwrap();
    let reports = reports.lock().unwrap().clone();
    (store, reports)
}

fn store_v1_records(path: &Path, ids: std::ops::Range<u32>) {
    let store = open_as::<UserV1>(path);
    store.write(|tx| ids.clone().try_for_each(|id| tx.save(&v1(id)))).unwrap();
}

fn is_mismatch<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::SchemaMismatch { model: "catalog_users", .. }))
}

#[test]
fn a_new_index_is_built_from_the_stored_records_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    store_v1_records(dir.path(), 0..2500);

    let (store, reports) = open_watching::<UserV2>(dir.path());
    let done: Vec<u64> = reports.iter().map(|p| p.done).collect();
    assert_eq!(done, [1000, 2000, 2500], "one report per batch of 1,000 records");
    assert!(reports.iter().all(|p| p.total == Some(2500)));
    assert_eq!(UserV2::scan_index(&store, UserV2::TEAM, "Red").unwrap().len(), 1250);
    assert!(UserV2::verify(&store).unwrap().is_clean(), "{}", UserV2::verify(&store).unwrap());
    drop(store);

    let (_store, reports) = open_watching::<UserV2>(dir.path());
    assert!(reports.is_empty(), "built once: {reports:?}");
}

#[test]
fn a_changed_index_is_rebuilt_and_a_removed_one_dropped() {
    if engine::not_on_slatedb("reads or damages LMDB's files directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_as::<UserV2>(dir.path());
        (0..10).try_for_each(|id| v2(id).save(&store)).unwrap();
    }
    {
        // Same model version, other definitions: opening changes nothing.
        let (store, reports) = open_watching::<UserV2CaseBlind>(dir.path());
        assert!(reports.is_empty(), "{reports:?}");
        let refused = UserV2CaseBlind { id: 50, email: email(50), team: team(50) }.save(&store).unwrap_err();
        assert!(refused.to_string().contains("take_over_indexes"), "{refused}");
        drop(store);
        let release_2 = open_as::<UserV2>(dir.path());
        v2(1).save(&release_2).expect("the store's definitions are still release 2's");
        assert_eq!(UserV2::scan_index(&release_2, UserV2::TEAM, "Red").unwrap().len(), 5);
    }
    {
        let (store, reports) = take_over_watching::<UserV2CaseBlind>(dir.path());
        assert_eq!(reports.last().map(|p| p.done), Some(10), "rebuilt: the definition changed");
        let red = UserV2CaseBlind::scan_index(&store, UserV2CaseBlind::TEAM, "red").unwrap();
        assert_eq!(red.iter().map(|u| u.id).collect::<Vec<_>>(), [0, 2, 4, 6, 8]);
        assert!(UserV2CaseBlind::scan_index(&store, UserV2CaseBlind::TEAM, "Red").unwrap().is_empty());
        assert!(store.verify().unwrap().is_clean());
    }
    {
        let (store, reports) = open_watching::<UserV3>(dir.path());
        assert!(reports.is_empty(), "nothing to build: {reports:?}");
        assert_eq!(UserV3::load_by(&store, UserV3::EMAIL, &email(3)).unwrap().unwrap().team, "Blue");
        assert!(store.verify().unwrap().is_clean());
    }
    assert_eq!(raw_entries(dir.path(), "catalog_users/team"), 0, "the removed index's entries are gone");
}

#[test]
fn an_older_release_reads_but_does_not_write_a_model_a_newer_one_redefined() {
    let dir = tempfile::tempdir().unwrap();
    store_v1_records(dir.path(), 0..20);
    drop(open_as::<UserV2>(dir.path()));

    let old = open_as::<UserV1>(dir.path());
    assert_eq!(UserV1::load(&old, &4).unwrap(), Some(v1(4)));
    assert_eq!(UserV1::load_by(&old, UserV1::EMAIL, &email(5)).unwrap(), Some(v1(5)), "both define email alike");
    let refused = v1(100).save(&old).unwrap_err();
    assert!(matches!(refused, Error::SchemaMismatch { .. }), "{refused}");
    assert!(refused.to_string().contains("a release with a newer model version defined them"), "{refused}");
    assert!(is_mismatch(UserV1::delete(&old, &4)));
    assert!(is_mismatch(UserV1::update(&old, &4, |u| u.team = "Green".into())));
    assert_eq!(UserV1::count(&old).unwrap(), 20, "nothing written");
    drop(old);

    let (store, reports) = open_watching::<UserV2>(dir.path());
    assert!(reports.is_empty(), "the older release left the catalog alone: {reports:?}");
    assert!(store.verify().unwrap().is_clean());
    v2(100).save(&store).unwrap();
}

#[test]
fn a_release_whose_index_another_release_changed_cannot_query_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_as::<UserV2>(dir.path());
        (0..4).try_for_each(|id| v2(id).save(&store)).unwrap();
    }
    drop(open_as::<UserV3>(dir.path()));
    let older = open_as::<UserV2>(dir.path());
    assert!(is_mismatch(UserV2::scan_index(&older, UserV2::TEAM, "Red")), "the team index was dropped");
    assert_eq!(UserV2::load_by(&older, UserV2::EMAIL, &email(1)).unwrap().map(|u| u.id), Some(1));
}

#[test]
fn a_running_release_stops_querying_an_index_another_release_changes() {
    // A query's catalog check is remembered for the snapshot it was made
    // in: a later commit of another process, which drops the index, is
    // looked at again.
    const TEST: &str = "a_running_release_stops_querying_an_index_another_release_changes";
    if std::env::var(ROLE).as_deref() == Ok("release 3") {
        drop(open_as::<UserV3>(&PathBuf::from(std::env::var(STORE).unwrap())));
        say("opened");
        return;
    }
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open_as::<UserV2>(dir.path());
    (0..4).try_for_each(|id| v2(id).save(&store)).unwrap();
    let red = UserV2::scan_index(&store, UserV2::TEAM, "Red").unwrap().len();
    assert_eq!(UserV2::scan_index(&store, UserV2::TEAM, "Red").unwrap().len(), red, "asked again, nothing changed");
    assert_eq!(finish(spawn_in(TEST, "release 3", dir.path(), 0)), ["opened"]);
    assert!(is_mismatch(UserV2::scan_index(&store, UserV2::TEAM, "Red")), "the other release dropped the team index");
    assert_eq!(UserV2::load_by(&store, UserV2::EMAIL, &email(1)).unwrap().map(|u| u.id), Some(1));
}

#[test]
fn migrate_rewrites_older_records_in_batches_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    store_v1_records(dir.path(), 0..2500);
    let store = open_as::<UserV2>(dir.path());
    let mut reports = Vec::new();
    assert_eq!(UserV2::migrate(&store, &mut |p| reports.push(p)).unwrap(), 2500);
    let done: Vec<u64> = reports.iter().map(|p| p.done).collect();
    assert_eq!(done, [1000, 2000, 2500], "one transaction per batch of 1,000");
    assert!(reports.iter().all(|p| p.total == Some(2500)));
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(UserV2::migrate(&store, &mut |_| {}).unwrap(), 0);
}

#[test]
fn a_unique_index_the_records_break_is_reported_and_built_once_they_are_corrected() {
    let dir = tempfile::tempdir().unwrap();
    {
        // One team per user, except that user 1200 is in user 5's team.
        let store = open_as::<UserV2>(dir.path());
        let team_of = |id: u32| if id == 1200 { "t5".to_owned() } else { format!("t{id}") };
        store
            .write(|tx| (0..1500).try_for_each(|id| tx.save(&UserV2 { id, email: email(id), team: team_of(id) })))
            .unwrap();
    }
    {
        // The first batch (users 0..1000) builds; the second meets the clash.
        let (store, reports) = take_over_watching::<UserV2UniqueTeam>(dir.path());
        assert_eq!(reports.iter().map(|p| p.done).collect::<Vec<_>>(), [1000]);
        let refused = UserV2UniqueTeam::load_by(&store, UserV2UniqueTeam::TEAM, "t7").unwrap_err();
        assert!(matches!(refused, Error::SchemaMismatch { .. }), "{refused}");
        assert!(refused.to_string().contains("could not be built (unique index catalog_users.team"), "{refused}");
        // Writes carry on, so the clash can be corrected; moving user 1200
        // away from "t5" must not take user 5's entry with it.
        UserV2UniqueTeam::update(&store, &1200, |u| u.team = "t1200".into()).unwrap();
    }
    let (store, reports) = open_watching::<UserV2UniqueTeam>(dir.path());
    assert_eq!(reports.last().map(|p| p.done), Some(1500), "the build resumed and finished");
    assert_eq!(UserV2UniqueTeam::load_by(&store, UserV2UniqueTeam::TEAM, "t5").unwrap().map(|u| u.id), Some(5));
    assert_eq!(UserV2UniqueTeam::load_by(&store, UserV2UniqueTeam::TEAM, "t1200").unwrap().map(|u| u.id), Some(1200));
    assert!(store.verify().unwrap().is_clean(), "{}", store.verify().unwrap());
}

#[test]
fn a_damaged_catalog_entry_makes_the_indexes_rebuild() {
    if engine::not_on_slatedb("reads or damages LMDB's files directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_as::<UserV2>(dir.path());
        (0..10).try_for_each(|id| v2(id).save(&store)).unwrap();
    }
    put_raw(dir.path(), "~catalog", b"catalog_users", b"\x01garbage");
    let (store, reports) = open_watching::<UserV2>(dir.path());
    assert_eq!(reports.last().map(|p| p.done), Some(10), "rebuilt from the records");
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(UserV2::scan_index(&store, UserV2::TEAM, "Red").unwrap().len(), 5);
}

/// Stores `value` under `key` in a table of the store, with heed directly.
fn put_raw(dir: &Path, table: &str, key: &[u8], value: &[u8]) {
    use heed::types::Bytes;
    // SAFETY: no skyshelve handle on this folder is open in this process any more.
    let env = unsafe { heed::EnvOpenOptions::new().max_dbs(16).open(dir) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let table = env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            opener.create_database::<Bytes, Bytes>(wtxn, Some(table)).map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    let mut wtxn = env.write_txn().unwrap();
    table.put(&mut wtxn, key, value).unwrap();
    wtxn.commit().unwrap();
}

/// Entries in a table of the store, read with heed directly.
fn raw_entries(dir: &Path, table: &str) -> u64 {
    use heed::types::Bytes;
    // SAFETY: no skyshelve handle on this folder is open in this process any more.
    let env = unsafe { heed::EnvOpenOptions::new().max_dbs(16).open(dir) }.unwrap();
    let rtxn = env.read_txn().unwrap();
    let table = env
        .open_databases_and_commit(rtxn, |opener, rtxn| {
            let table = opener.open_database::<Bytes, Bytes>(rtxn, Some(table))?.expect("the table exists");
            Ok::<_, heed::Error>(heed::CommitOrAbort::<_, ()>::Commit(table))
        })
        .unwrap()
        .unwrap_commit();
    table.len(&env.read_txn().unwrap()).unwrap()
}

// ---- Two releases in separate processes at once ----

const ROLE: &str = "SKYSHELVE_TEST_ROLE";
const STORE: &str = "SKYSHELVE_TEST_STORE";
const INDEX: &str = "SKYSHELVE_TEST_INDEX";
const TEST: &str = "two_releases_running_at_once_do_not_fight";

fn spawn(role: &str, store: &Path, index: u32) -> Child {
    spawn_in(TEST, role, store, index)
}

fn spawn_in(test: &str, role: &str, store: &Path, index: u32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1", "--quiet"])
        .env(ROLE, role)
        .env(STORE, store)
        .env(INDEX, index.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the test binary can start itself")
}

/// Release 1, running: writes new records until the catalog changes under it.
fn old_release_writing(path: &Path) {
    let store = open_as::<UserV1>(path);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut written = 0;
    let refused = loop {
        match v1(10_000 + written).save(&store) {
            Ok(()) => written += 1,
            Err(err) => break err,
        }
        if written == 1 {
            say("ready");
        }
        assert!(Instant::now() < deadline, "the newer release never took over");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(matches!(refused, Error::SchemaMismatch { .. }), "{refused}");
    // Still readable, and the index both releases define alike still answers.
    assert_eq!(UserV1::load(&store, &10_000).unwrap(), Some(v1(10_000)));
    assert_eq!(UserV1::load_by(&store, UserV1::EMAIL, &email(7)).unwrap(), Some(v1(7)));
    say(&format!("wrote {written}"));
}

/// Release 2: opens (building the team index, or joining the build) and writes.
fn new_release(path: &Path, index: u32) {
    let store = open_as::<UserV2>(path);
    for id in 0..10 {
        v2(20_000 + index * 10 + id).save(&store).unwrap();
    }
    say("wrote 10");
}

/// Release 1 started again after release 2 took over: it must not take back.
fn old_release_restarted(path: &Path) {
    let store = open_as::<UserV1>(path);
    assert!(is_mismatch(v1(30_000).save(&store)));
    assert_eq!(UserV1::load(&store, &3).unwrap(), Some(v1(3)));
    say("refused");
}

#[test]
fn two_releases_running_at_once_do_not_fight() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    if let Ok(role) = std::env::var(ROLE) {
        let path = PathBuf::from(std::env::var(STORE).unwrap());
        let index: u32 = std::env::var(INDEX).unwrap().parse().unwrap();
        match role.as_str() {
            "old" => old_release_writing(&path),
            "new" => new_release(&path, index),
            "old again" => old_release_restarted(&path),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    store_v1_records(dir.path(), 0..3000);

    let mut old = spawn("old", dir.path(), 0);
    wait_for_line(&mut old, "ready");
    // Two processes of release 2 open at once: one builds the new index, the
    // other joins the build or finds it done.
    let new: Vec<Child> = (0..2).map(|index| spawn("new", dir.path(), index)).collect();
    let old_lines = finish(old);
    let written: u32 = old_lines.iter().find_map(|l| l.strip_prefix("wrote ")).unwrap().parse().unwrap();
    for child in new {
        assert_eq!(finish(child), ["wrote 10"]);
    }
    assert_eq!(finish(spawn("old again", dir.path(), 0)), ["refused"]);

    let (store, reports) = open_watching::<UserV2>(dir.path());
    assert!(reports.is_empty(), "the index was complete: {reports:?}");
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report}");
    let records = u64::from(3000 + written + 20);
    assert_eq!(UserV2::count(&store).unwrap(), records);
    assert_eq!(report.models[0].index_entries, [records, records], "every record in both indexes");
    let red_by_scan = UserV2::all(&store).unwrap().into_iter().filter(|u| u.team == "Red").count();
    assert_eq!(UserV2::scan_index(&store, UserV2::TEAM, "Red").unwrap().len(), red_by_scan);
}

// ---- A program that only reads, next to one that writes ----

const READER_TEST: &str = "a_program_with_fewer_indexes_that_only_reads_leaves_writers_and_indexes_alone";

/// Release 2, running: writes until told to stop; every write must succeed.
fn writer_until_stopped(path: &Path) {
    let store = open_as::<UserV2>(path);
    let stop = path.join("stop");
    let mut written = 0;
    while !stop.exists() {
        v2(50_000 + written).save(&store).unwrap();
        written += 1;
        if written == 1 {
            say("ready");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    say(&format!("wrote {written}"));
}

/// The report: opens (read-only when asked) and reads everything.
fn report(path: &Path, read_only: bool) {
    let options = if read_only { options_as::<UserV2Report>().read_only() } else { options_as::<UserV2Report>() };
    let store = options.open(path).unwrap();
    let users = UserV2Report::all(&store).unwrap();
    assert!(users.len() >= 100);
    assert_eq!(UserV2Report::load_by(&store, UserV2Report::EMAIL, &email(7)).unwrap().map(|u| u.id), Some(7));
    say(&format!("read {}", users.len()));
}

#[test]
fn a_program_with_fewer_indexes_that_only_reads_leaves_writers_and_indexes_alone() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    if let Ok(role) = std::env::var(ROLE) {
        let path = PathBuf::from(std::env::var(STORE).unwrap());
        match role.as_str() {
            "writer" => writer_until_stopped(&path),
            "report" => report(&path, false),
            "read-only report" => report(&path, true),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_as::<UserV2>(dir.path());
        store.write(|tx| (0..100).try_for_each(|id| tx.save(&v2(id)))).unwrap();
    }
    let mut writer = spawn_in(READER_TEST, "writer", dir.path(), 0);
    wait_for_line(&mut writer, "ready");
    for role in ["report", "read-only report"] {
        let lines = finish(spawn_in(READER_TEST, role, dir.path(), 0));
        assert!(lines.iter().any(|l| l.starts_with("read ")), "{lines:?}");
    }
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    let lines = finish(writer);
    assert!(lines.iter().any(|l| l.starts_with("wrote ")), "the writer kept writing: {lines:?}");

    let (store, reports) = open_watching::<UserV2>(dir.path());
    assert!(reports.is_empty(), "no index was dropped, so none is rebuilt: {reports:?}");
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report}");
    let records = UserV2::count(&store).unwrap();
    assert_eq!(report.models[0].index_entries, [records, records], "both indexes complete");
}

#[test]
fn a_read_only_open_writes_nothing() {
    if engine::not_on_slatedb("reads or damages LMDB's files directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_as::<UserV2>(dir.path());
        store.write(|tx| (0..100).try_for_each(|id| tx.save(&v2(id)))).unwrap();
    }
    let data = dir.path().join("data.mdb");
    let before = std::fs::read(&data).unwrap();
    // As a store written before watches existed: no notification file.
    std::fs::remove_file(dir.path().join("watch.shm")).unwrap();
    let files_before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    {
        // Fewer indexes at the same version: a normal open would not take them over either.
        let store = options_as::<UserV2Report>().read_only().open(dir.path()).unwrap();
        assert_eq!(UserV2Report::count(&store).unwrap(), 100);
        let refused = UserV2Report { id: 500, email: email(500), team: team(500) }.save(&store);
        assert!(matches!(refused, Err(Error::ReadOnly)), "{refused:?}");
        assert!(matches!(UserV2Report::lock(&store, &1), Err(Error::ReadOnly)));
        assert!(matches!(store.map::<u32, u32>("new").map(drop), Err(Error::ReadOnly)));
    }
    assert_eq!(std::fs::read(&data).unwrap(), before, "data.mdb is byte for byte the same");
    let files_after: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files_after, files_before, "no file was created");
    assert!(options_as::<UserV2>().read_only().open(dir.path().join("absent")).is_err(), "read-only never creates");
}

#[test]
fn a_read_only_handle_reads_the_records_of_a_model_whose_new_index_is_not_built_and_refuses_the_index() {
    let dir = tempfile::tempdir().unwrap();
    store_v1_records(dir.path(), 0..20);
    let store = options_as::<UserV2>().read_only().open(dir.path()).unwrap();
    assert_eq!(UserV2::count(&store).unwrap(), 20, "the records are there to read");
    assert_eq!(UserV2::load_by(&store, UserV2::EMAIL, &email(7)).unwrap().map(|u| u.id), Some(7));
    // The catalog says the store has no such index (and, beneath it, the
    // missing table answers Error::IndexNotBuilt to any read that gets
    // that far): never an empty answer.
    let unbuilt = UserV2::scan_index(&store, UserV2::TEAM, &team(7));
    assert!(matches!(unbuilt, Err(Error::SchemaMismatch { .. })), "read as an empty index: {unbuilt:?}");
    let report = store.verify().unwrap();
    assert!(report.models[0].problems.contains(&skyshelve::Problem::IndexNotBuilt { index: "team" }), "{report}");
    let stats = store.stats().unwrap();
    assert_eq!(stats.models[0].unbuilt_indexes, ["team"]);
    drop(store);
    // A writable open builds it.
    let store = open_as::<UserV2>(dir.path());
    assert_eq!(UserV2::scan_index(&store, UserV2::TEAM, &team(7)).unwrap().len(), 10);
}
