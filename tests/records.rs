//! Save, insert, load, exists, delete, update and upsert of single records.

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Account {
    #[persistent(key)]
    id: u64,
    owner: String,
    balance: i64,
}

fn account(id: u64, balance: i64) -> Account {
    Account { id, owner: format!("owner{id}"), balance }
}

#[test]
fn save_then_load_returns_the_record() {
    let store = engine::temporary().unwrap();
    account(1, 10).save(&store).unwrap();
    assert_eq!(Account::load(&store, &1).unwrap(), Some(account(1, 10)));
    assert_eq!(Account::load(&store, &2).unwrap(), None);
}

#[test]
fn save_replaces_a_record_with_the_same_key() {
    let store = engine::temporary().unwrap();
    account(1, 10).save(&store).unwrap();
    account(1, 20).save(&store).unwrap();
    assert_eq!(Account::load(&store, &1).unwrap().unwrap().balance, 20);
    assert_eq!(Account::count(&store).unwrap(), 1);
}

#[test]
fn insert_refuses_an_existing_key_and_keeps_the_old_record() {
    let store = engine::temporary().unwrap();
    account(1, 10).insert(&store).unwrap();
    let err = account(1, 99).insert(&store).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { model: "account", .. }), "{err}");
    assert_eq!(Account::load(&store, &1).unwrap().unwrap().balance, 10);
}

#[test]
fn exists_and_delete() {
    let store = engine::temporary().unwrap();
    account(5, 0).save(&store).unwrap();
    assert!(Account::exists(&store, &5).unwrap());
    assert!(Account::delete(&store, &5).unwrap());
    assert!(!Account::exists(&store, &5).unwrap());
    assert!(!Account::delete(&store, &5).unwrap(), "deleting twice reports absence");
}

#[test]
fn update_applies_the_change_and_returns_the_saved_record() {
    let store = engine::temporary().unwrap();
    account(1, 10).save(&store).unwrap();
    let updated = Account::update(&store, &1, |a| a.balance *= 3).unwrap();
    assert_eq!(updated.balance, 30);
    assert_eq!(Account::load(&store, &1).unwrap().unwrap().balance, 30);
}

#[test]
fn update_of_a_missing_record_is_not_found_and_writes_nothing() {
    let store = engine::temporary().unwrap();
    let err = Account::update(&store, &9, |a| a.balance += 1).unwrap_err();
    assert!(matches!(err, Error::NotFound { model: "account", .. }), "{err}");
    assert_eq!(Account::count(&store).unwrap(), 0);
}

#[test]
fn update_that_changes_the_key_moves_the_record() {
    let store = engine::temporary().unwrap();
    account(1, 10).save(&store).unwrap();
    Account::update(&store, &1, |a| a.id = 2).unwrap();
    assert!(Account::load(&store, &1).unwrap().is_none());
    assert_eq!(Account::load(&store, &2).unwrap().unwrap().balance, 10);
}

#[test]
fn update_that_moves_onto_an_existing_key_fails_and_writes_nothing() {
    let store = engine::temporary().unwrap();
    account(1, 10).save(&store).unwrap();
    account(2, 20).save(&store).unwrap();
    let err = Account::update(&store, &1, |a| a.id = 2).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(Account::load(&store, &1).unwrap().unwrap().balance, 10);
    assert_eq!(Account::load(&store, &2).unwrap().unwrap().balance, 20);
}

#[test]
fn upsert_starts_from_the_default_then_from_the_stored_record() {
    let store = engine::temporary().unwrap();
    for _ in 0..3 {
        Account::upsert(&store, || account(7, 100), |a| a.balance += 1).unwrap();
    }
    assert_eq!(Account::load(&store, &7).unwrap().unwrap().balance, 103);
}

#[test]
fn string_keys_can_be_queried_by_str() {
    #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    struct Page {
        #[persistent(key)]
        path: String,
    }
    let store = engine::temporary().unwrap();
    Page { path: "/a".into() }.save(&store).unwrap();
    assert!(Page::load(&store, "/a").unwrap().is_some());
    assert!(Page::exists(&store, &"/a".to_string()).unwrap());
}

#[test]
fn records_survive_reopening_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = engine::open(dir.path()).unwrap();
        account(1, 42).save(&store).unwrap();
    }
    let store = engine::open(dir.path()).unwrap();
    assert_eq!(Account::load(&store, &1).unwrap().unwrap().balance, 42);
}
