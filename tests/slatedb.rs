//! What only the SlateDB engine has (feature `slatedb`): one writer that a
//! second one fences, readers in other processes that follow the writer,
//! a writer killed with SIGKILL, an S3 server killed mid-write and
//! restarted, and a store used inside a tokio program.
//! The rest of the suite runs on SlateDB too (`SKYSHELVE_ENGINE=slatedb`,
//! read by the suite's own `tests/common/engine.rs`, never by the library).
//!
//! Objects go to `SKYSHELVE_SLATEDB_URL` (CI points it at an S3 server on
//! loopback) under a fresh name per test, or to a temporary folder.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Error, Persistent, Store};

#[path = "common/children.rs"]
mod children;
#[path = "common/s3_server.rs"]
mod s3_server;
#[path = "common/tmpfs.rs"]
mod tmpfs;
use children::{COUNT, child_command, env_number, env_path, finish, role, say, spawn_child, wait_for_line};
use s3_server::{S3Server, client_env, free_port};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Note {
    #[persistent(key)]
    id: u64,
    #[persistent(index)]
    author: String,
    text: String,
}

fn note(id: u64, author: &str) -> Note {
    Note { id, author: author.into(), text: format!("note {id}") }
}

/// Where a test keeps its objects, and the folder that holds them when no
/// object store is configured (kept until the test ends).
struct Objects {
    url: String,
    _folder: tempfile::TempDir,
}

fn objects() -> Objects {
    let folder = tempfile::tempdir().unwrap();
    let url = match std::env::var("SKYSHELVE_SLATEDB_URL") {
        Ok(base) => {
            let name = folder.path().file_name().unwrap().to_string_lossy().into_owned();
            format!("{}/slatedb-tests/{name}", base.trim_end_matches('/'))
        }
        Err(_) => format!("file://{}/objects", folder.path().display()),
    };
    Objects { url, _folder: folder }
}

/// Opens the store at `url` with the local folder `dir`.
fn open(url: &str, dir: &std::path::Path) -> Store {
    Store::options().slatedb(url).open(dir).unwrap()
}

const URL: &str = "SKYSHELVE_TEST_URL";

fn spawn_with_url(test: &str, role: &str, url: &str, local: &std::path::Path, count: u32) -> std::process::Child {
    // SAFETY: set before the child starts, read only by the child.
    unsafe { std::env::set_var(URL, url) };
    spawn_child(test, role, local, 0, count)
}

#[test]
fn the_environment_never_changes_the_engine_a_program_opens() {
    if role().as_deref() == Some("opener") {
        let store = Store::open(env_path()).unwrap();
        say(&format!("engine {}", store.engine()));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child =
        child_command("the_environment_never_changes_the_engine_a_program_opens", "opener", dir.path(), 0, 1);
    child.env("SKYSHELVE_ENGINE", "slatedb");
    let lines = finish(child.spawn().unwrap());
    assert_eq!(lines, ["engine LMDB"], "a program that names no engine gets LMDB, whatever its environment says");
    assert!(!dir.path().join("objects").exists());
}

#[test]
fn records_indexes_and_queries_work_and_survive_reopening() {
    let objects = objects();
    let local = tempfile::tempdir().unwrap();
    {
        let store = open(&objects.url, local.path());
        assert_eq!(store.engine(), "SlateDB");
        for id in 1..=50 {
            note(id, if id % 2 == 0 { "ada" } else { "bob" }).save(&store).unwrap();
        }
        Note::delete(&store, &7).unwrap();
        assert_eq!(Note::count(&store).unwrap(), 49);
    }
    let store = open(&objects.url, local.path());
    assert_eq!(Note::count(&store).unwrap(), 49);
    let ada: Vec<Note> = Note::scan_index(&store, Note::AUTHOR, "ada").unwrap();
    assert_eq!(ada.len(), 25);
    assert!(Note::load(&store, &7).unwrap().is_none());
    assert!(store.verify().unwrap().is_clean());
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Account {
    #[persistent(key)]
    id: u64,
    #[persistent(index, unique)]
    email: String,
}

fn account(id: u64) -> Account {
    Account { id, email: format!("{id}@example.com") }
}

fn inserted(store: &Store, record: Account) -> Result<(), Error> {
    store.write(|tx| tx.insert(&record))
}

#[test]
fn a_write_never_takes_a_key_or_unique_value_already_there() {
    // The writer skips lookups of keys its tables cannot hold: every key
    // of an empty table, and every key above a table's greatest one. Each
    // way it comes to know that is crossed here, and a taken key or value
    // must be refused after each.
    let taken = |outcome: Result<(), Error>| matches!(outcome, Err(Error::AlreadyExists { .. }));
    let violates = |outcome: Result<(), Error>| matches!(outcome, Err(Error::UniqueViolation { .. }));
    let objects = objects();
    let local = tempfile::tempdir().unwrap();
    {
        let store = open(&objects.url, local.path());
        // Into empty tables, out of order, in one transaction.
        store.write(|tx| [5, 1, 9].iter().try_for_each(|&id| tx.insert(&account(id)))).unwrap();
        for id in [9, 1, 5] {
            assert!(taken(inserted(&store, account(id))), "key {id}, at and below the greatest");
        }
        assert!(violates(inserted(&store, Account { id: 10, email: account(1).email })));
        assert!(violates(inserted(&store, Account { id: 11, email: account(9).email })));
        // The greatest key deleted: it stays a bound, and below it the
        // store is asked.
        Account::delete(&store, &9).unwrap();
        inserted(&store, account(9)).unwrap();
        assert!(taken(inserted(&store, account(9))));
        // Every key deleted: the table may be empty, and is asked again.
        for id in [1, 5, 9] {
            Account::delete(&store, &id).unwrap();
        }
        inserted(&store, account(3)).unwrap();
        assert!(taken(inserted(&store, account(3))));
        // A transaction rolled back leaves what is known as it was.
        let rolled_back: Result<(), Error> = store.write(|tx| {
            tx.insert(&account(20))?;
            Err(Error::Io(std::io::Error::other("the caller gives up")))
        });
        assert!(rolled_back.is_err());
        inserted(&store, account(20)).unwrap();
        assert!(taken(inserted(&store, account(20))));
        // Keys above every other one, as sequences hand out.
        for id in 21..40 {
            inserted(&store, account(id)).unwrap();
            assert!(taken(inserted(&store, account(id))), "key {id}");
        }
    }
    // A new writer knows nothing yet, and learns it from the store.
    let store = open(&objects.url, local.path());
    for id in [3, 20, 39] {
        assert!(taken(inserted(&store, account(id))), "key {id} after reopening");
    }
    assert!(violates(inserted(&store, Account { id: 100, email: account(39).email })));
    inserted(&store, account(40)).unwrap();
    assert_eq!(Account::count(&store).unwrap(), 22);
    assert!(store.verify().unwrap().is_clean());
}

/// The child side of the fencing tests: opens the store named by the
/// parent as its writer (fencing the parent's) and saves note `id`.
fn write_as_second_writer(id: u64) {
    let url = std::env::var(URL).unwrap();
    let store = open(&url, &env_path());
    note(id, "second").save(&store).unwrap();
    say("written");
}

#[test]
fn a_second_writer_fences_the_first_with_a_typed_error() {
    const TEST: &str = "a_second_writer_fences_the_first_with_a_typed_error";
    if role().is_some() {
        return write_as_second_writer(2);
    }
    let objects = objects();
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = open(&objects.url, here.path());
    note(1, "first").save(&first).unwrap();
    let lines = finish(spawn_with_url(TEST, "second writer", &objects.url, there.path(), 0));
    assert_eq!(lines, ["written"]);
    let refused = note(3, "first").save(&first);
    assert!(
        matches!(refused, Err(Error::Fenced { lost: 0 })),
        "the fenced writer's next write is refused: {refused:?}"
    );
    drop(first);
    let store = open(&objects.url, here.path());
    let ids: Vec<u64> = Note::all(&store).unwrap().into_iter().map(|n| n.id).collect();
    assert_eq!(ids, [1, 2], "both acknowledged writes are kept; the refused one is not");
}

#[test]
fn a_fenced_writer_that_acknowledged_before_flushing_says_how_many_commits_it_lost() {
    const TEST: &str = "a_fenced_writer_that_acknowledged_before_flushing_says_how_many_commits_it_lost";
    if role().is_some() {
        return write_as_second_writer(1_000_000);
    }
    let objects = objects();
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Store::options()
        .slatedb(&objects.url)
        .durability(Durability::MayLoseLastCommits)
        .slatedb_poll_interval(Duration::from_millis(200))
        .open(here.path())
        .unwrap();
    note(0, "first").save(&first).unwrap();
    // Saves acknowledged before they are flushed; the first ten flushed by
    // hand, then the second writer fences the first among the others.
    let (mut acknowledged, started) = (0_u64, Instant::now());
    let mut second = None;
    let fenced = loop {
        match note(acknowledged + 1, "first").save(&first) {
            Ok(()) => acknowledged += 1,
            Err(err) => break err,
        }
        if acknowledged == 10 {
            first.sync().unwrap();
            second = Some(spawn_with_url(TEST, "second writer", &objects.url, there.path(), 0));
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the fence was never noticed");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(finish(second.expect("fenced after the second writer started")), ["written"]);
    let Error::Fenced { lost } = fenced else { panic!("expected Error::Fenced, got {fenced:?}") };
    drop(first);
    let store = open(&objects.url, here.path());
    let firsts: Vec<Note> = Note::scan_index(&store, Note::AUTHOR, "first").unwrap();
    let kept = firsts.len() as u64 - 1;
    println!("acknowledged {acknowledged}, kept {kept}, lost {lost}");
    assert_eq!(lost, acknowledged - kept, "Error::Fenced counts the acknowledged commits that are gone");
    assert!(Note::load(&store, &1_000_000).unwrap().is_some(), "the new writer's commit is kept");
}

#[test]
fn a_reader_in_another_process_follows_the_writer_and_its_watch_wakes() {
    const TEST: &str = "a_reader_in_another_process_follows_the_writer_and_its_watch_wakes";
    const TOTAL: u64 = 30;
    if role().is_some() {
        let url = std::env::var(URL).unwrap();
        let store = Store::options()
            .slatedb(url)
            .slatedb_poll_interval(Duration::from_millis(50))
            .read_only()
            .open(env_path())
            .unwrap();
        let mut watch = Note::watch(&store).unwrap();
        say("ready");
        let deadline = Instant::now() + Duration::from_secs(60);
        // The writer saves ids 0..=TOTAL: TOTAL + 1 records in all.
        let mut seen = 0;
        while seen <= TOTAL {
            seen = Note::count(&store).unwrap();
            if seen <= TOTAL {
                assert!(Instant::now() < deadline, "the reader saw only {seen} of {}", TOTAL + 1);
                watch.wait_timeout(Duration::from_secs(5));
            }
        }
        let last = Note::load(&store, &TOTAL).unwrap().unwrap();
        say(&format!("saw {seen}, last by {}", last.author));
        assert!(matches!(note(99, "reader").save(&store), Err(Error::ReadOnly)));
        return;
    }
    let objects = objects();
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = open(&objects.url, here.path());
    note(0, "writer").save(&store).unwrap();
    let mut reader = spawn_with_url(TEST, "reader", &objects.url, there.path(), 0);
    wait_for_line(&mut reader, "ready");
    for id in 1..=TOTAL {
        note(id, "writer").save(&store).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(finish(reader), [format!("saw {}, last by writer", TOTAL + 1)]);
}

#[test]
fn a_writer_killed_with_sigkill_loses_no_acknowledged_write() {
    const TEST: &str = "a_writer_killed_with_sigkill_loses_no_acknowledged_write";
    if role().is_some() {
        let url = std::env::var(URL).unwrap();
        let store = open(&url, &env_path());
        for id in 0..u64::from(env_number(COUNT)) {
            note(id, "killed").save(&store).unwrap();
            say(&id.to_string());
        }
        return;
    }
    let objects = objects();
    let local = tempfile::tempdir().unwrap();
    drop(open(&objects.url, local.path()));
    let mut writer = spawn_with_url(TEST, "writer", &objects.url, local.path(), 100_000);
    wait_for_line(&mut writer, "20");
    std::thread::sleep(Duration::from_millis(200));
    writer.kill().unwrap();
    let output = writer.wait_with_output().unwrap();
    let acknowledged: Vec<u64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix('@')?.parse().ok())
        .collect();
    let last = acknowledged.last().copied().unwrap_or(20);
    let store = open(&objects.url, local.path());
    for id in 0..=last {
        assert!(Note::exists(&store, &id).unwrap(), "acknowledged write {id} of 0..={last} is missing");
    }
    note(last + 1_000_000, "next writer").save(&store).unwrap();
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn group_commit_and_threads_lose_nothing() {
    let objects = objects();
    let local = tempfile::tempdir().unwrap();
    let store = Store::options().slatedb(&objects.url).open(local.path()).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let store = store.clone();
            scope.spawn(move || {
                for n in 0..25 {
                    note(thread * 100 + n, "thread").save(&store).unwrap();
                }
            });
        }
    });
    assert_eq!(Note::count(&store).unwrap(), 100);
}

#[test]
fn durability_modes_keep_every_commit_across_a_clean_close() {
    for durability in [Durability::Full, Durability::MayLoseLastCommits, Durability::MayCorruptOnPowerLoss] {
        let objects = objects();
        let local = tempfile::tempdir().unwrap();
        {
            let store = Store::options().slatedb(&objects.url).durability(durability).open(local.path()).unwrap();
            for id in 0..20 {
                note(id, "mode").save(&store).unwrap();
            }
        }
        let store = open(&objects.url, local.path());
        assert_eq!(Note::count(&store).unwrap(), 20, "{durability:?}");
    }
}

#[test]
fn a_store_works_inside_a_tokio_program() {
    // As in a program under #[tokio::main]: the store is opened, used and
    // dropped on a runtime's threads, and never needs that runtime.
    for flavour in ["multi-thread", "current-thread"] {
        let runtime = if flavour == "multi-thread" {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
        };
        let objects = objects();
        let local = tempfile::tempdir().unwrap();
        let count = runtime.block_on(async {
            let store = open(&objects.url, local.path());
            let task = {
                let store = store.clone();
                tokio::spawn(async move {
                    for id in 0..10 {
                        note(id, "task").save(&store).unwrap();
                    }
                })
            };
            task.await.unwrap();
            let count = Note::count(&store).unwrap();
            drop(store);
            // An open that fails drops its runtime here too, without a panic.
            let nowhere = tempfile::tempdir().unwrap();
            let empty = format!("file://{}/none", nowhere.path().display());
            let refused = Store::options().slatedb(empty).read_only().open(nowhere.path());
            assert!(refused.is_err(), "a reader of a store never written: {:?}", refused.map(|_| ()));
            count
        });
        assert_eq!(count, 10, "{flavour}");
    }
}

#[test]
fn backup_says_what_to_do_instead() {
    let objects = objects();
    let local = tempfile::tempdir().unwrap();
    let store = open(&objects.url, local.path());
    let target = tempfile::tempdir().unwrap();
    let refused = store.backup(target.path().join("copy"));
    assert!(matches!(refused, Err(Error::Unsupported { what: "backup", .. })), "{refused:?}");
}

#[test]
fn a_write_the_object_store_refuses_fails_with_a_typed_error_and_nothing_acknowledged_is_lost() {
    // The object store stops taking writes mid-stream (here a local folder
    // on a tmpfs remounted read-only; the same path as an S3 server that
    // refuses): the write fails after SlateDB's bounded retries instead of
    // waiting forever, and once writes are taken again a reopened store
    // holds every acknowledged write.
    if std::env::var_os("SKYSHELVE_SLATEDB_URL").is_some() {
        eprintln!("runs on a local folder only: it turns the folder read-only");
        return;
    }
    let Some(fs) = tmpfs::Tmpfs::mount("size=64m") else { return };
    let url = format!("file://{}/objects", fs.path().display());
    let local = tempfile::tempdir().unwrap();
    let store = open(&url, local.path());
    for id in 0..10 {
        note(id, "before").save(&store).unwrap();
    }
    fs.remount("ro");
    let started = Instant::now();
    let refused = note(10, "refused").save(&store);
    // `Stopped` when the request refused was the log's flush.
    assert!(matches!(refused, Err(Error::Io(_) | Error::Stopped { .. })), "a typed refusal: {refused:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "failed after {:?}, not never", started.elapsed());
    fs.remount("rw");
    if matches!(refused, Err(Error::Stopped { .. })) {
        let again = note(12, "on the stopped handle").save(&store);
        assert!(matches!(again, Err(Error::Stopped { .. })), "a stopped handle stays stopped: {again:?}");
    }
    drop(store);
    let store = open(&url, local.path());
    for id in 0..10 {
        assert!(Note::exists(&store, &id).unwrap(), "acknowledged write {id} is kept");
    }
    note(11, "after").save(&store).unwrap();
    assert!(store.verify().unwrap().is_clean());
}

/// The bucket of the S3 server these tests start.
const BUCKET: &str = "skyshelve-restarts";

/// Runs this test as a child with `role`, its store's objects on the S3
/// server at `port`.
fn spawn_on_s3(test: &str, role: &str, local: &std::path::Path, port: u16, count: u32) -> std::process::Child {
    child_command(test, role, local, 0, count)
        .env(URL, format!("s3://{BUCKET}/store"))
        .envs(client_env(port))
        .spawn()
        .expect("the test binary can start itself")
}

#[test]
fn an_s3_server_killed_mid_write_fails_the_write_and_once_restarted_has_every_acknowledged_write() {
    const TEST: &str = "an_s3_server_killed_mid_write_fails_the_write_and_once_restarted_has_every_acknowledged_write";
    match role().as_deref() {
        Some("writer") => {
            // Saves until a save fails, saying each acknowledged id.
            let store = open(&std::env::var(URL).unwrap(), &env_path());
            for id in 0.. {
                let started = Instant::now();
                if let Err(error) = note(id, "before the kill").save(&store) {
                    let waited = started.elapsed();
                    // `Stopped` when the failed request was the log's flush,
                    // which stops SlateDB's handle for good.
                    assert!(matches!(error, Error::Io(_) | Error::Stopped { .. }), "a typed error: {error:?}");
                    assert!(waited < Duration::from_secs(60), "failed after {waited:?}, not never");
                    say("refused");
                    return;
                }
                say(&id.to_string());
            }
        }
        Some("resumer") => {
            let store = open(&std::env::var(URL).unwrap(), &env_path());
            let last = u64::from(env_number(COUNT));
            for id in 0..=last {
                assert!(Note::exists(&store, &id).unwrap(), "acknowledged write {id} of 0..={last} is missing");
            }
            note(last + 1, "after the restart").save(&store).unwrap();
            assert!(store.verify().unwrap().is_clean());
            say("resumed");
        }
        _ => {}
    }
    if role().is_some() {
        return;
    }
    let Some(script) = s3_server::script() else { return };
    let state = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = S3Server::start(&script, port, BUCKET, state.path());
    let mut writer = spawn_on_s3(TEST, "writer", local.path(), port, 0);
    wait_for_line(&mut writer, "20");
    server.kill();
    let said = finish(writer);
    assert_eq!(said.last().map(String::as_str), Some("refused"), "the writer's save failed: {said:?}");
    let acknowledged: Vec<u64> = said.iter().filter_map(|line| line.parse().ok()).collect();
    let last = *acknowledged.last().unwrap_or(&20);
    let _server = S3Server::start(&script, port, BUCKET, state.path());
    let resumer = spawn_on_s3(TEST, "resumer", local.path(), port, u32::try_from(last).unwrap());
    assert_eq!(finish(resumer), ["resumed"]);
}
