//! Admin work on a live store: stats, JSON-lines export and import, and
//! compacting backups taken while another thread keeps writing.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Progress, Store};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "accounts")]
struct Account {
    #[persistent(key)]
    id: u64,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    tags: Option<String>,
    balance: i64,
}

fn account(id: u64) -> Account {
    Account {
        id,
        email: format!("a{id}@x.org"),
        tags: id.is_multiple_of(2).then(|| "even".into()),
        balance: id as i64 * 10,
    }
}

fn seeded(n: u64) -> Store {
    let store = engine::temporary().unwrap();
    store.write(|tx| (0..n).try_for_each(|id| tx.save(&account(id)))).unwrap();
    store
}

#[test]
fn stats_count_records_and_index_entries() {
    let store = seeded(10);
    let stats = store.stats().unwrap();
    let accounts = stats.models.iter().find(|m| m.name == "accounts").unwrap();
    assert_eq!(accounts.records, 10);
    assert_eq!(accounts.index_entries, [10, 5]);
    if !engine::on_slatedb() {
        // LMDB's map and reader table; SlateDB has neither and reports zeros.
        assert!(stats.used_bytes > 0 && stats.used_bytes <= stats.map_size as u64);
    }
    assert!(stats.readers <= stats.max_readers);
}

#[test]
fn export_then_import_reproduces_the_records_and_their_indexes() {
    let source = seeded(2500);
    let mut exported = Vec::new();
    let mut reports = Vec::new();
    let count = source.export_json_lines("accounts", &mut exported, &mut |p| reports.push(p)).unwrap();
    assert_eq!(count, 2500);
    assert_eq!(reports.last(), Some(&Progress { done: 2500, total: Some(2500) }));
    assert_eq!(reports.len(), 3, "progress every 1000 records and at the end");

    let target = engine::temporary().unwrap();
    let imported = target.import_json_lines("accounts", &mut exported.as_slice(), &mut |_| {}).unwrap();
    assert_eq!(imported, 2500);
    assert_eq!(Account::all(&target).unwrap(), Account::all(&source).unwrap());
    assert_eq!(Account::load_by(&target, Account::EMAIL, "a7@x.org").unwrap().unwrap(), account(7));
    assert!(target.verify().unwrap().is_clean());
}

#[test]
fn a_bad_line_imports_nothing_and_names_the_line() {
    let store = engine::temporary().unwrap();
    let lines = "{\"id\":1,\"email\":\"a@x\",\"tags\":null,\"balance\":0}\n{\"id\":2,\"email\":\"b@x\"}\n";
    let err = store.import_json_lines("accounts", &mut lines.as_bytes(), &mut |_| {}).unwrap_err();
    assert!(matches!(&err, Error::Import { line: 2, source } if matches!(**source, Error::Decode { .. })), "{err}");
    assert_eq!(Account::count(&store).unwrap(), 0);
    let clash = "{\"id\":1,\"email\":\"a@x\",\"tags\":null,\"balance\":0}\n\n{\"id\":2,\"email\":\"a@x\",\"tags\":null,\"balance\":0}\n";
    let err = store.import_json_lines("accounts", &mut clash.as_bytes(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, Error::Import { line: 3, source } if matches!(**source, Error::UniqueViolation { .. })),
        "{err}"
    );
    assert_eq!(Account::count(&store).unwrap(), 0);
    let not_utf8 = b"{\"id\":1,\"email\":\"a@x\",\"tags\":null,\"balance\":0}\n{\"id\":2,\"email\":\"\xff\"}\n";
    let err = store.import_json_lines("accounts", &mut &not_utf8[..], &mut |_| {}).unwrap_err();
    assert!(matches!(&err, Error::Import { line: 2, .. }), "{err}");
    assert!(matches!(store.export_json_lines("nope", &mut Vec::new(), &mut |_| {}), Err(Error::UnknownModel { .. })));
}

#[test]
fn backup_while_writing_then_restore() {
    if engine::not_on_slatedb("backup and restore copy LMDB's files (SlateDB keeps its copies in object storage)") {
        return;
    }
    let store = seeded(1000);
    let work = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut id = 1000;
            while !stop.load(Ordering::Relaxed) {
                account(id).save(&store).unwrap();
                id += 1;
            }
        });
        store.backup(work.path().join("backup")).unwrap();
        stop.store(true, Ordering::Relaxed);
    });
    assert!(store.backup(work.path().join("backup")).is_err(), "a backup never overwrites another");

    let copy = engine::open(work.path().join("backup")).unwrap();
    assert!(copy.verify().unwrap().is_clean());
    let copied = Account::count(&copy).unwrap();
    assert!(copied >= 1000 && copied <= Account::count(&store).unwrap());
    drop(copy);

    Store::restore(work.path().join("backup"), work.path().join("restored")).unwrap();
    let restored = engine::open(work.path().join("restored")).unwrap();
    assert_eq!(Account::count(&restored).unwrap(), copied);
    assert!(restored.verify().unwrap().is_clean());
    assert!(Store::restore(work.path().join("backup"), work.path().join("restored")).is_err());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(work.path().join("backup/data.mdb")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_store_cut_short_is_refused_with_a_typed_error_not_a_crash() {
    if engine::not_on_slatedb("reads or damages LMDB's files directly") {
        return;
    }
    let store = seeded(20_000);
    let work = tempfile::tempdir().unwrap();
    store.backup(work.path().join("backup")).unwrap();
    let data = work.path().join("backup/data.mdb");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&data).unwrap().set_len(len / 2).unwrap();

    let opened = engine::open(work.path().join("backup"));
    assert!(matches!(opened, Err(Error::DamagedStore { .. })), "{opened:?}");
    let restored = Store::restore(work.path().join("backup"), work.path().join("restored"));
    assert!(matches!(restored, Err(Error::DamagedStore { .. })), "{restored:?}");
    assert!(!work.path().join("restored/data.mdb").exists(), "a refused restore leaves no store");
}

/// Runs `open` on a thread of its own and gives its result. If it has not
/// returned within ten seconds, the whole test process ends with a
/// failure: the hung thread may hold locks that every other test of this
/// file would then wait on for ever.
fn within_seconds<T: Send + 'static>(what: &str, open: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(open()));
    receiver.recv_timeout(std::time::Duration::from_secs(10)).unwrap_or_else(|_| {
        eprintln!("{what} hung for ten seconds; ending the test process");
        std::process::exit(101)
    })
}

fn make_fifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn a_data_file_that_is_not_a_regular_file_is_refused_without_waiting() {
    if engine::not_on_slatedb("puts other kinds of file in place of LMDB's data file") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // A FIFO: opening it to read would wait for a writer for ever.
    let fifo = work.path().join("fifo");
    std::fs::create_dir(&fifo).unwrap();
    make_fifo(&fifo.join("data.mdb"));
    // A folder where the file should be.
    let folder = work.path().join("folder");
    std::fs::create_dir_all(folder.join("data.mdb")).unwrap();
    for (dir, what) in [(fifo, "not a regular file"), (folder, "a folder")] {
        for read_only in [true, false] {
            let path = dir.clone();
            let opened = within_seconds("the open", move || {
                let options = if read_only { Store::options().read_only() } else { Store::options() };
                options.open(path)
            });
            assert!(
                matches!(&opened, Err(Error::DamagedStore { reason, .. }) if reason.contains(what)),
                "read-only {read_only}: {opened:?}"
            );
        }
        let restored = Store::restore(&dir, work.path().join("restored"));
        assert!(matches!(restored, Err(Error::DamagedStore { .. })), "{restored:?}");
        assert!(!work.path().join("restored/data.mdb").exists(), "a refused restore leaves no store");
    }
}

#[test]
fn an_empty_data_file_is_no_store_to_a_reader_or_a_restore_and_a_new_store_to_a_writer() {
    if engine::not_on_slatedb("empties LMDB's data file") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    std::fs::create_dir(&dir).unwrap();
    // What a process killed while creating a store leaves, or a copy to a
    // full disk.
    std::fs::write(dir.join("data.mdb"), b"").unwrap();

    let read = Store::options().read_only().open(&dir);
    assert!(
        matches!(&read, Err(Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound
            && err.to_string().contains("holds no store")),
        "{read:?}"
    );
    let restored = Store::restore(&dir, work.path().join("restored"));
    assert!(matches!(&restored, Err(Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound), "{restored:?}");
    assert!(!work.path().join("restored/data.mdb").exists(), "a refused restore leaves no store");

    // A writer makes the store the empty file was meant to be.
    let store = Store::open(&dir).unwrap();
    account(1).save(&store).unwrap();
    drop(store);
    let reader = Store::options().read_only().open(&dir).unwrap();
    assert_eq!(Account::load(&reader, &1).unwrap(), Some(account(1)));
}

#[test]
fn verify_reads_the_data_file_the_process_opened_not_what_its_path_names_later() {
    if engine::not_on_slatedb("moves LMDB's data file") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    {
        let store = Store::open(&dir).unwrap();
        store.write(|tx| (0..1000).try_for_each(|id| tx.save(&account(id)))).unwrap();
    }
    let store = Store::options().read_only().open(&dir).unwrap();
    // The file moved away (the process still has it open and mapped) and
    // a FIFO put at its path, which a read by path would wait on for ever.
    std::fs::rename(dir.join("data.mdb"), work.path().join("moved.mdb")).unwrap();
    make_fifo(&dir.join("data.mdb"));
    let report = within_seconds("verify", move || store.verify().map(|report| (report.is_clean(), report.to_string())));
    let (clean, report) = report.unwrap();
    assert!(clean, "{report}");
}

#[test]
fn a_backup_left_half_written_is_replaced_by_the_next_attempt() {
    if engine::not_on_slatedb("backup and restore copy LMDB's files (SlateDB keeps its copies in object storage)") {
        return;
    }
    let store = seeded(100);
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");
    // What a backup killed part-way leaves: its temporary file, no store.
    std::fs::create_dir(&backup).unwrap();
    std::fs::write(backup.join("data.mdb.partial"), vec![7u8; 10_000]).unwrap();
    store.backup(&backup).unwrap();
    assert!(!backup.join("data.mdb.partial").exists());
    assert_eq!(Account::count(&engine::open(&backup).unwrap()).unwrap(), 100);
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Reading {
    #[persistent(key)]
    id: u32,
    value: f64,
    correction: Option<Option<u32>>,
}

#[test]
fn export_refuses_what_json_cannot_hold_and_round_trips_the_rest() {
    let store = engine::temporary().unwrap();
    let readings = [
        Reading { id: 1, value: 1.5, correction: None },
        Reading { id: 2, value: -0.25, correction: Some(Some(3)) },
        Reading { id: 3, value: f64::MAX, correction: None },
    ];
    store.write(|tx| readings.iter().try_for_each(|r| tx.save(r))).unwrap();
    let mut first = Vec::new();
    store.export_json_lines("reading", &mut first, &mut |_| {}).unwrap();
    let copy = engine::temporary().unwrap();
    copy.import_json_lines("reading", &mut first.as_slice(), &mut |_| {}).unwrap();
    let mut second = Vec::new();
    copy.export_json_lines("reading", &mut second, &mut |_| {}).unwrap();
    assert_eq!(first, second, "export, import, export is byte-identical");
    assert_eq!(Reading::all(&copy).unwrap(), readings);

    for (id, unholdable) in [
        (4, Reading { id: 4, value: f64::NAN, correction: None }),
        (5, Reading { id: 5, value: f64::INFINITY, correction: None }),
        (6, Reading { id: 6, value: 0.0, correction: Some(None) }),
    ] {
        unholdable.save(&store).unwrap();
        let err = store.export_json_lines("reading", &mut Vec::new(), &mut |_| {}).unwrap_err();
        assert!(matches!(&err, Error::Encode { what, .. } if what == &format!("reading record {id} as JSON")), "{err}");
        Reading::delete(&store, &id).unwrap();
    }
}

skyshelve::map_type!("admin_hits", (String, u32), u64);

#[test]
fn registered_maps_export_and_import_like_models() {
    let store = engine::temporary().unwrap();
    let hits = store.map::<(String, u32), u64>("admin_hits").unwrap();
    hits.insert(&("home".into(), 1), &10).unwrap();
    hits.insert(&("about".into(), 2), &3).unwrap();
    let mut out = Vec::new();
    assert_eq!(store.export_json_lines("admin_hits", &mut out, &mut |_| {}).unwrap(), 2);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "{\"key\":[\"about\",2],\"value\":3}\n{\"key\":[\"home\",1],\"value\":10}\n"
    );
    let copy = engine::temporary().unwrap();
    assert_eq!(copy.import_json_lines("admin_hits", &mut out.as_slice(), &mut |_| {}).unwrap(), 2);
    assert_eq!(copy.map::<(String, u32), u64>("admin_hits").unwrap().iter().unwrap(), hits.iter().unwrap());
    let bad = "{\"key\":[\"x\",1],\"value\":1}\n{\"key\":\"oops\"}\n";
    let err = copy.import_json_lines("admin_hits", &mut bad.as_bytes(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Import { line: 2, .. }), "{err}");
    assert!(!copy.map::<(String, u32), u64>("admin_hits").unwrap().contains(&("x".to_string(), 1)).unwrap());
}
