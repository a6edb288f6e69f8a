//! Admin work on a live store: stats, JSON-lines export and import, and
//! compacting backups taken while another thread keeps writing.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Progress, Store};

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
    let store = Store::temporary().unwrap();
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
    assert!(stats.used_bytes > 0 && stats.used_bytes <= stats.map_size as u64);
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

    let target = Store::temporary().unwrap();
    let imported = target.import_json_lines("accounts", &mut exported.as_slice(), &mut |_| {}).unwrap();
    assert_eq!(imported, 2500);
    assert_eq!(Account::all(&target).unwrap(), Account::all(&source).unwrap());
    assert_eq!(Account::load_by(&target, Account::EMAIL, "a7@x.org").unwrap().unwrap(), account(7));
    assert!(target.verify().unwrap().is_clean());
}

#[test]
fn a_bad_line_imports_nothing_and_names_the_line() {
    let store = Store::temporary().unwrap();
    let lines = "{\"id\":1,\"email\":\"a@x\",\"tags\":null,\"balance\":0}\n{\"id\":2,\"email\":\"b@x\"}\n";
    let err = store.import_json_lines("accounts", &mut lines.as_bytes(), &mut |_| {}).unwrap_err();
    assert!(matches!(&err, Error::Decode { what, .. } if what == "JSON line 2"), "{err}");
    assert_eq!(Account::count(&store).unwrap(), 0);
    let clash = "{\"id\":1,\"email\":\"a@x\",\"tags\":null,\"balance\":0}\n{\"id\":2,\"email\":\"a@x\",\"tags\":null,\"balance\":0}\n";
    let err = store.import_json_lines("accounts", &mut clash.as_bytes(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::UniqueViolation { .. }), "{err}");
    assert_eq!(Account::count(&store).unwrap(), 0);
    assert!(matches!(store.export_json_lines("nope", &mut Vec::new(), &mut |_| {}), Err(Error::InvalidName { .. })));
}

#[test]
fn backup_while_writing_then_restore() {
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

    let copy = Store::open(work.path().join("backup")).unwrap();
    assert!(copy.verify().unwrap().is_clean());
    let copied = Account::count(&copy).unwrap();
    assert!(copied >= 1000 && copied <= Account::count(&store).unwrap());
    drop(copy);

    Store::restore(work.path().join("backup"), work.path().join("restored")).unwrap();
    let restored = Store::open(work.path().join("restored")).unwrap();
    assert_eq!(Account::count(&restored).unwrap(), copied);
    assert!(restored.verify().unwrap().is_clean());
    assert!(Store::restore(work.path().join("backup"), work.path().join("restored")).is_err());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(work.path().join("backup/data.mdb")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
