//! Record history (`#[persistent(history = N)]`): the versions kept per
//! record, tombstones, reads as of a time or a position, trimming, the
//! setting in the catalog, history across processes and through a
//! migration, verify and export/import.
//!
//! Several models here share one name (the same model as different
//! programs would declare it), so every store is opened for the models a
//! test names.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use skyshelve::{AsOf, Change, Error, ModelInfo, Persistent, Store, Trim};

#[path = "common/children.rs"]
mod children;
use children::{env_number, env_path, finish, role, say, spawn_child};

#[path = "common/engine.rs"]
mod engine;
#[path = "common/raw.rs"]
mod raw;
use raw::raw_table;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "price", history = 3)]
struct Price {
    #[persistent(key)]
    item: String,
    cents: u32,
    #[persistent(index, unique)]
    code: u32,
}

/// The same model as a program keeping one previous version would declare it.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "price", history = 1)]
struct PriceKeepingOne {
    #[persistent(key)]
    item: String,
    cents: u32,
    #[persistent(index, unique)]
    code: u32,
}

/// The same model as a program without history would declare it.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "price")]
struct PriceWithoutHistory {
    #[persistent(key)]
    item: String,
    cents: u32,
    #[persistent(index, unique)]
    code: u32,
}

/// A model without history, for the error.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "plain")]
struct Plain {
    #[persistent(key)]
    id: u32,
}

/// A counter updated by several processes, keeping every version.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "tally", history = 1000)]
struct Tally {
    #[persistent(key)]
    id: u32,
    count: u32,
    by: u32,
}

fn open(dir: &std::path::Path, models: &[&'static ModelInfo]) -> Store {
    engine::options().models(models.iter().copied()).open(dir).unwrap()
}

fn price(item: &str, cents: u32) -> Price {
    Price { item: item.into(), cents, code: cents }
}

fn temporary() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &[Price::INFO, Plain::INFO]);
    (dir, store)
}

#[test]
fn every_change_is_kept_newest_first_with_its_kind_time_and_position() {
    let (_dir, store) = temporary();
    let started = SystemTime::now() - Duration::from_millis(1);
    price("tea", 300).save(&store).unwrap();
    Price::update(&store, "tea", |p| p.cents = 320).unwrap();
    Price::delete(&store, "tea").unwrap();
    price("tea", 280).insert(&store).unwrap();

    let history = Price::history(&store, "tea").unwrap();
    let changes: Vec<Change> = history.iter().map(|v| v.change).collect();
    assert_eq!(changes, [Change::Created, Change::Deleted, Change::Updated, Change::Created]);
    let cents: Vec<Option<u32>> = history.iter().map(|v| v.record.as_ref().map(|p| p.cents)).collect();
    assert_eq!(cents, [Some(280), None, Some(320), Some(300)]);
    let positions: Vec<u64> = history.iter().map(|v| v.position).collect();
    assert_eq!(positions, [4, 3, 2, 1]);
    assert!(history.windows(2).all(|pair| pair[0].at >= pair[1].at));
    assert!(history.iter().all(|v| v.at >= started && v.at <= SystemTime::now() && v.model_version == 1));
    assert!(Price::history(&store, "coffee").unwrap().is_empty(), "no change touched it");
}

#[test]
fn only_the_current_version_and_n_previous_are_kept() {
    let (_dir, store) = temporary();
    for cents in 1..=10 {
        price("tea", cents).save(&store).unwrap();
    }
    let cents: Vec<u32> =
        Price::history(&store, "tea").unwrap().into_iter().filter_map(|v| v.record).map(|p| p.cents).collect();
    assert_eq!(cents, [10, 9, 8, 7], "history = 3 keeps three versions before the current one");
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn as_of_a_time_or_a_position_answers_from_the_kept_versions() {
    let (_dir, store) = temporary();
    let before = SystemTime::now() - Duration::from_secs(1);
    price("tea", 300).save(&store).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let between = SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    Price::update(&store, "tea", |p| p.cents = 350).unwrap();

    assert_eq!(Price::as_of(&store, "tea", before).unwrap(), None, "not created yet");
    assert_eq!(Price::as_of(&store, "tea", between).unwrap().map(|p| p.cents), Some(300));
    assert_eq!(Price::as_of(&store, "tea", SystemTime::now()).unwrap().map(|p| p.cents), Some(350));
    assert_eq!(Price::as_of(&store, "tea", AsOf::Position(1)).unwrap().map(|p| p.cents), Some(300));
    assert_eq!(Price::as_of(&store, "tea", AsOf::Position(2)).unwrap().map(|p| p.cents), Some(350));
    assert_eq!(Price::as_of(&store, "tea", AsOf::Position(0)).unwrap(), None);

    Price::delete(&store, "tea").unwrap();
    assert_eq!(Price::as_of(&store, "tea", SystemTime::now()).unwrap(), None, "deleted by now");
    assert_eq!(Price::as_of(&store, "tea", between).unwrap().map(|p| p.cents), Some(300), "the past stays");

    // Once the creation is trimmed away, the time before the oldest kept version is unknown.
    Price::trim_history(&store, Trim::default().keep(2)).unwrap();
    let trimmed = Price::as_of(&store, "tea", between);
    assert!(matches!(trimmed, Err(Error::BeforeHistory { model: "price", .. })), "{trimmed:?}");
    assert_eq!(Price::as_of(&store, "tea", SystemTime::now()).unwrap(), None, "the tombstone is kept");
}

#[test]
fn a_model_without_history_says_so() {
    let (_dir, store) = temporary();
    Plain { id: 1 }.save(&store).unwrap();
    assert!(matches!(Plain::history(&store, &1), Err(Error::HistoryNotKept { model: "plain" })));
    assert!(matches!(Plain::as_of(&store, &1, SystemTime::now()), Err(Error::HistoryNotKept { .. })));
    assert!(matches!(Plain::trim_history(&store, Trim::default()), Err(Error::HistoryNotKept { .. })));
}

#[test]
fn a_key_move_leaves_a_tombstone_and_starts_the_new_key() {
    let (_dir, store) = temporary();
    price("tea", 300).save(&store).unwrap();
    Price::update(&store, "tea", |p| p.item = "green tea".into()).unwrap();
    let old: Vec<Change> = Price::history(&store, "tea").unwrap().iter().map(|v| v.change).collect();
    assert_eq!(old, [Change::Deleted, Change::Created]);
    let new = Price::history(&store, "green tea").unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!((new[0].change, new[0].record.as_ref().map(|p| p.cents)), (Change::Created, Some(300)));
}

#[test]
fn failed_writes_and_aborted_transactions_leave_no_version() {
    let (_dir, store) = temporary();
    price("tea", 300).save(&store).unwrap();
    // A unique clash: nothing written, not even history.
    assert!(matches!(price("coffee", 300).save(&store), Err(Error::UniqueViolation { .. })));
    assert!(matches!(price("coffee", 300).insert(&store), Err(Error::UniqueViolation { .. })));
    let aborted: skyshelve::Result<()> = store.write(|tx| {
        tx.save(&price("tea", 1))?;
        Err(Error::NotFound { model: "price", key: "abort".into() })
    });
    assert!(aborted.is_err());
    assert!(Price::history(&store, "coffee").unwrap().is_empty());
    assert_eq!(Price::history(&store, "tea").unwrap().len(), 1);
    // A transaction that goes on past a clash keeps the versions of what it did write.
    store
        .write(|tx| {
            assert!(tx.insert(&price("coffee", 300)).is_err());
            tx.save(&price("coffee", 410))
        })
        .unwrap();
    let coffee = Price::history(&store, "coffee").unwrap();
    assert_eq!(coffee.iter().map(|v| v.record.as_ref().map(|p| p.cents)).collect::<Vec<_>>(), [Some(410)]);
}

#[test]
fn inside_a_transaction_history_streams_and_sees_the_transactions_own_changes() {
    let (_dir, store) = temporary();
    let seen = store
        .write(|tx| {
            tx.save(&price("tea", 300))?;
            tx.update::<Price, _, _>("tea", |p| p.cents = 310)?;
            let newest = tx.history::<Price, _>("tea")?.next().transpose()?;
            Ok(newest.and_then(|v| v.record).map(|p| p.cents))
        })
        .unwrap();
    assert_eq!(seen, Some(310));
    let count = store.read(|tx| Ok(tx.history::<Price, _>("tea")?.count())).unwrap();
    assert_eq!(count, 2);
}

#[test]
fn trimming_by_count_and_by_age_keeps_each_live_records_current_version() {
    let (_dir, store) = temporary();
    for cents in 1..=4 {
        price("tea", cents).save(&store).unwrap();
        price("coffee", 100 + cents).save(&store).unwrap();
    }
    price("cocoa", 500).save(&store).unwrap();
    Price::delete(&store, "cocoa").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    price("tea", 5).save(&store).unwrap();

    // Everything written before now is old, except what is current.
    let removed = Price::trim_history(&store, Trim::default().older_than_age(Duration::from_millis(10))).unwrap();
    assert_eq!(removed, 3 + 3 + 2, "tea's three older versions, coffee's three before the current, cocoa's two");
    let kept = |item: &str| {
        Price::history(&store, item).unwrap().into_iter().map(|v| v.record.map(|p| p.cents)).collect::<Vec<_>>()
    };
    assert_eq!(kept("tea"), [Some(5)]);
    assert_eq!(kept("coffee"), [Some(104)]);
    assert!(kept("cocoa").is_empty(), "a deleted record's old tombstone goes too");
    assert_eq!(Price::trim_history(&store, Trim::default().keep(1)).unwrap(), 0);
}

#[test]
fn trimming_a_large_history_runs_in_many_transactions_and_removes_exactly_the_excess() {
    let (_dir, store) = temporary();
    store
        .write(|tx| {
            for item in 0..1_500 {
                for cents in 0..3 {
                    tx.save(&Price { item: format!("item {item:04}"), cents, code: item * 10 + cents })?;
                }
            }
            Ok(())
        })
        .unwrap();
    let commits = store.stats().unwrap().activity.commits;
    assert_eq!(Price::trim_history(&store, Trim::default().keep(1)).unwrap(), 1_500 * 2);
    assert!(store.stats().unwrap().activity.commits >= commits + 4, "4,500 versions in batches of about 1,000");
    for item in [0, 749, 1_499] {
        assert_eq!(Price::history(&store, &format!("item {item:04}")).unwrap().len(), 1);
    }
}

#[test]
fn the_setting_is_in_the_catalog_and_a_lower_one_trims_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), &[Price::INFO]);
        for cents in 1..=6 {
            price("tea", cents).save(&store).unwrap();
        }
        assert_eq!(Price::history(&store, "tea").unwrap().len(), 4);
    }
    {
        let store = open(dir.path(), &[PriceKeepingOne::INFO]);
        let kept: Vec<u32> = PriceKeepingOne::history(&store, "tea")
            .unwrap()
            .into_iter()
            .filter_map(|v| v.record)
            .map(|p| p.cents)
            .collect();
        assert_eq!(kept, [6, 5], "trimmed at open to the current version and one more");
        PriceKeepingOne { item: "tea".into(), cents: 7, code: 7 }.save(&store).unwrap();
    }
    {
        // Raising the setting again starts keeping more from now on.
        let store = open(dir.path(), &[Price::INFO]);
        price("tea", 8).save(&store).unwrap();
        let kept: Vec<u32> =
            Price::history(&store, "tea").unwrap().into_iter().filter_map(|v| v.record).map(|p| p.cents).collect();
        assert_eq!(kept, [8, 7, 6]);
    }
    {
        // A program without history drops what was kept.
        let store = open(dir.path(), &[PriceWithoutHistory::INFO]);
        PriceWithoutHistory { item: "tea".into(), cents: 9, code: 9 }.save(&store).unwrap();
    }
    let store = open(dir.path(), &[Price::INFO]);
    assert!(Price::history(&store, "tea").unwrap().is_empty(), "no version survives");
    assert_eq!(Price::load(&store, "tea").unwrap().map(|p| p.cents), Some(9));
    let unknown = Price::as_of(&store, "tea", SystemTime::now());
    assert!(matches!(unknown, Err(Error::BeforeHistory { .. })), "written while no history was kept: {unknown:?}");
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn versions_from_several_processes_are_all_kept_in_commit_order() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const PROCESSES: u32 = 4;
    const UPDATES: u32 = 50;
    if role().as_deref() == Some("tally") {
        let store = open(&env_path(), &[Tally::INFO]);
        let me = env_number(children::INDEX);
        for _ in 0..UPDATES {
            Tally::upsert(
                &store,
                || Tally { id: 1, count: 0, by: me },
                |t| {
                    t.count += 1;
                    t.by = me;
                },
            )
            .unwrap();
        }
        say("done");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), &[Tally::INFO]));
    let test = "versions_from_several_processes_are_all_kept_in_commit_order";
    let children: Vec<_> = (0..PROCESSES).map(|i| spawn_child(test, "tally", dir.path(), i, 0)).collect();
    for child in children {
        assert_eq!(finish(child), ["done"]);
    }
    let store = open(dir.path(), &[Tally::INFO]);
    let mut history = Tally::history(&store, &1).unwrap();
    history.reverse();
    let total = PROCESSES * UPDATES;
    assert_eq!(history.len(), total as usize, "every acknowledged update is a kept version");
    for (n, version) in history.iter().enumerate() {
        let n = u32::try_from(n).unwrap();
        assert_eq!(version.position, u64::from(n) + 1, "positions follow commit order without gaps");
        assert_eq!(version.record.as_ref().map(|t| t.count), Some(n + 1), "each version is one more than the last");
        assert_eq!(version.change, if n == 0 { Change::Created } else { Change::Updated });
    }
    let writers: std::collections::HashSet<u32> =
        history.iter().filter_map(|v| v.record.as_ref()).map(|t| t.by).collect();
    assert_eq!(writers.len(), PROCESSES as usize, "every process wrote versions");
}

mod migration {
    //! Version 2 of a model with history, next to the version 1 it upgrades.
    use super::*;

    #[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[persistent(name = "article", history = 10)]
    pub struct ArticleV1 {
        #[persistent(key)]
        pub id: u32,
        pub title: String,
    }

    #[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[persistent(name = "article", version = 2, from = ArticleV1, history = 10)]
    pub struct Article {
        #[persistent(key)]
        pub id: u32,
        pub title: String,
        pub words: u32,
    }

    impl From<ArticleV1> for Article {
        fn from(old: ArticleV1) -> Self {
            Article { id: old.id, words: old.title.split_whitespace().count() as u32, title: old.title }
        }
    }
}

#[test]
fn past_versions_written_by_an_older_model_version_read_upgraded_and_migration_adds_none() {
    use migration::{Article, ArticleV1};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), &[ArticleV1::INFO]);
        ArticleV1 { id: 1, title: "draft".into() }.save(&store).unwrap();
        ArticleV1 { id: 1, title: "a good title".into() }.save(&store).unwrap();
    }
    let store = open(dir.path(), &[Article::INFO]);
    assert_eq!(Article::migrate(&store, &mut |_| {}).unwrap(), 1);
    Article::update(&store, &1, |a| a.title = "the final title".into()).unwrap();

    let history = Article::history(&store, &1).unwrap();
    let seen: Vec<(u16, Option<u32>)> =
        history.iter().map(|v| (v.model_version, v.record.as_ref().map(|a| a.words))).collect();
    // The migration rewrote the record but is not a change: three versions, not four.
    assert_eq!(seen, [(2, Some(3)), (1, Some(3)), (1, Some(1))]);
    assert!(Article::verify(&store).unwrap().is_clean());
}

#[test]
fn verify_reports_a_damaged_version() {
    if engine::not_on_slatedb("reads or damages LMDB's files directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), &[Price::INFO]);
        price("tea", 300).save(&store).unwrap();
        price("tea", 310).save(&store).unwrap();
        assert!(store.verify().unwrap().is_clean());
    }
    // Damage the newest version's record bytes through LMDB directly.
    let (env, table) = raw_table(dir.path(), "price/~history");
    let mut wtxn = env.write_txn().unwrap();
    let (entry_key, mut value) = {
        let (key, value) = table.rev_iter(&wtxn).unwrap().find(|e| e.as_ref().unwrap().0.len() > 2).unwrap().unwrap();
        (key.to_vec(), value.to_vec())
    };
    value.truncate(value.len() - 3);
    table.put(&mut wtxn, &entry_key, &value).unwrap();
    wtxn.commit().unwrap();
    env.prepare_for_closing().wait();

    let store = open(dir.path(), &[Price::INFO]);
    let report = Price::verify(&store).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, skyshelve::Problem::BadHistory { key, .. } if key.windows(3).any(|w| w == b"tea"))),
        "{report}"
    );
    assert!(Price::history(&store, "tea").is_err(), "reading it fails as a decode error");
}

#[test]
fn history_exports_and_imports_as_json_lines_next_to_the_records() {
    let (_dir, store) = temporary();
    price("tea", 300).save(&store).unwrap();
    Price::update(&store, "tea", |p| p.cents = 320).unwrap();
    price("cocoa", 500).save(&store).unwrap();
    Price::delete(&store, "cocoa").unwrap();
    let export = |store: &Store, name: &str| {
        let mut out = Vec::new();
        store.export_json_lines(name, &mut out, &mut |_| {}).unwrap();
        String::from_utf8(out).unwrap()
    };
    let (records, history) = (export(&store, "price"), export(&store, "price~history"));
    assert_eq!(history.lines().count(), 4);
    assert!(history.contains(r#""change":"deleted","model_version":1,"record":null"#), "{history}");

    let copy_dir = tempfile::tempdir().unwrap();
    let copy = open(copy_dir.path(), &[Price::INFO, Plain::INFO]);
    copy.import_json_lines("price", &mut records.as_bytes(), &mut |_| {}).unwrap();
    assert_eq!(copy.import_json_lines("price~history", &mut history.as_bytes(), &mut |_| {}).unwrap(), 4);
    assert_eq!(export(&copy, "price~history"), history, "the same versions, positions and times");
    assert_eq!(Price::history(&copy, "tea").unwrap(), Price::history(&store, "tea").unwrap());
    // Positions go on after the imported ones.
    price("tea", 330).save(&copy).unwrap();
    assert_eq!(Price::history(&copy, "tea").unwrap()[0].position, 5);
    assert!(copy.verify().unwrap().is_clean());

    let bad = copy.import_json_lines("price~history", &mut "{\"key\":\"zz\"}\n".as_bytes(), &mut |_| {});
    assert!(matches!(bad, Err(Error::Import { line: 1, .. })), "{bad:?}");
    assert!(matches!(
        copy.export_json_lines("plain~history", &mut Vec::new(), &mut |_| {}),
        Err(Error::HistoryNotKept { .. })
    ));
}

#[test]
fn a_backup_carries_the_kept_versions() {
    if engine::not_on_slatedb("backup and restore copy LMDB's files (SlateDB keeps its copies in object storage)") {
        return;
    }
    let (dir, store) = temporary();
    price("tea", 300).save(&store).unwrap();
    Price::update(&store, "tea", |p| p.cents = 320).unwrap();
    let backup = dir.path().join("backup");
    store.backup(&backup).unwrap();
    let copy = open(&backup, &[Price::INFO, Plain::INFO]);
    assert_eq!(Price::history(&copy, "tea").unwrap(), Price::history(&store, "tea").unwrap());
    price("tea", 330).save(&copy).unwrap();
    assert_eq!(Price::history(&copy, "tea").unwrap()[0].position, 3, "positions go on in the copy");
}

#[test]
fn a_read_only_store_reads_the_kept_versions_and_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), &[Price::INFO]);
        price("tea", 300).save(&store).unwrap();
        price("tea", 310).save(&store).unwrap();
    }
    let reader = engine::options().models([Price::INFO]).read_only().open(dir.path()).unwrap();
    let cents: Vec<u32> =
        Price::history(&reader, "tea").unwrap().into_iter().filter_map(|v| v.record).map(|p| p.cents).collect();
    assert_eq!(cents, [310, 300]);
    assert_eq!(Price::as_of(&reader, "tea", AsOf::Position(1)).unwrap().map(|p| p.cents), Some(300));
    assert!(matches!(Price::trim_history(&reader, Trim::default().keep(1)), Err(Error::ReadOnly)), "nothing trimmed");
    drop(reader);

    // A store written before the model kept history, opened read-only, has no history table: nothing kept yet.
    let older = tempfile::tempdir().unwrap();
    drop(open(older.path(), &[PriceWithoutHistory::INFO]));
    let reader = engine::options().models([Price::INFO]).read_only().open(older.path()).unwrap();
    assert!(Price::history(&reader, "tea").unwrap().is_empty());
}

/// An import is checked line by line before anything is written: a
/// position with no room after it (which made the next change panic in
/// debug builds and wrap in release ones), 0, or used twice; a record
/// whose key is not the line's; a key too long for the engine. Each names
/// its line, and the store is left as it was.
#[test]
fn history_import_refuses_inconsistent_lines_naming_them() {
    let (_dir, store) = temporary();
    price("tea", 300).save(&store).unwrap();
    price("cocoa", 500).save(&store).unwrap();
    let mut out = Vec::new();
    store.export_json_lines("price~history", &mut out, &mut |_| {}).unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (tea, cocoa) = (lines[0].clone(), lines[1].clone());
    let with = |line: &serde_json::Value, field: &str, value: serde_json::Value| {
        let mut line = line.clone();
        line[field] = value;
        line.to_string()
    };
    let cases = [
        (with(&tea, "position", u64::MAX.into()), 1, "position"),
        (with(&tea, "position", 0.into()), 1, "position"),
        (format!("{tea}\n{}", with(&cocoa, "position", tea["position"].clone())), 2, "two versions"),
        (with(&tea, "key", cocoa["key"].clone()), 1, "key"),
        // A deletion has no record to take the key from: only its length tells.
        (
            with(
                &serde_json::from_str(&with(&tea, "change", "deleted".into())).unwrap(),
                "record",
                serde_json::Value::Null,
            )
            .replace(tea["key"].as_str().unwrap(), &"ab".repeat(600)),
            1,
            "at most 511",
        ),
    ];
    for (import, line, says) in cases {
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = open(copy_dir.path(), &[Price::INFO, Plain::INFO]);
        let refused = copy.import_json_lines("price~history", &mut import.as_bytes(), &mut |_| {});
        let Err(Error::Import { line: at, source }) = &refused else { panic!("{import}: {refused:?}") };
        assert_eq!(*at, line, "{import}");
        assert!(source.to_string().contains(says), "{import}: {source}");
        assert!(Price::history(&copy, "tea").unwrap().is_empty(), "nothing was written");
        price("tea", 330).save(&copy).unwrap();
        assert!(copy.verify().unwrap().is_clean());
    }
}

/// `verify` checks each kept version against its key and position: a
/// version filed under another record's key, or past the model's position
/// counter, is reported (both went unnoticed before).
#[test]
fn verify_reports_a_version_under_another_key_or_past_the_position_counter() {
    if engine::not_on_slatedb("the versions are moved through LMDB directly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), &[Price::INFO]);
        price("tea", 300).save(&store).unwrap();
        price("cocoa", 500).save(&store).unwrap();
    }
    let (env, table) = raw_table(dir.path(), "price/~history");
    let mut wtxn = env.write_txn().unwrap();
    let tea_value = {
        let mut entries = table.iter(&wtxn).unwrap().map(Result::unwrap);
        let tea = entries.find(|(key, _)| key.windows(3).any(|w| w == b"tea")).unwrap();
        tea.1.to_vec()
    };
    // Tea's version under cocoa's key (position 2 is cocoa's), and a copy past the counter (2).
    let cocoa_key = [&[0u8, 7][..], b"cocoa\0\0"].concat();
    table.put(&mut wtxn, &[&cocoa_key[..], &2u64.to_be_bytes()].concat(), &tea_value).unwrap();
    let tea_key = [&[0u8, 5][..], b"tea\0\0"].concat();
    table.put(&mut wtxn, &[&tea_key[..], &9u64.to_be_bytes()].concat(), &tea_value).unwrap();
    wtxn.commit().unwrap();
    env.prepare_for_closing().wait();

    let store = open(dir.path(), &[Price::INFO]);
    let report = Price::verify(&store).unwrap();
    let said = report.to_string();
    assert!(said.contains("it holds the record with key"), "{said}");
    assert!(said.contains("position 9 is past the model's last position 2"), "{said}");
}
