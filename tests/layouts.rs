//! The store knows each model's layout: a second program (a real process)
//! that declares a model of the same name with other fields is refused at
//! open with an error that says what differs, and writes nothing; one with
//! the same fields under another Rust name opens as before.

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Store};

#[path = "common/children.rs"]
mod children;
#[path = "common/engine.rs"]
mod engine;

use children::{finish, role, say, spawn_child};

/// The first program's `Entry`.
mod first {
    use super::*;

    #[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[persistent(name = "entry")]
    pub struct Entry {
        #[persistent(key)]
        pub id: u64,
        pub text: String,
        pub tags: Vec<String>,
    }
}

/// Another program's `Entry`: another key type and other fields.
mod second {
    use super::*;

    #[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[persistent(name = "entry")]
    pub struct Entry {
        #[persistent(key)]
        pub id: String,
        pub text: String,
        pub count: u32,
    }
}

/// The first program's fields under another Rust name.
mod renamed {
    use super::*;

    #[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[persistent(name = "entry")]
    pub struct Note {
        #[persistent(key)]
        pub id: u64,
        pub text: String,
        pub tags: Vec<String>,
    }
}

fn open_as(info: &'static skyshelve::ModelInfo, path: &std::path::Path) -> skyshelve::Result<Store> {
    engine::options().models([info]).open(path)
}

/// The child: opens the store as the program named by its role, and says
/// what happened.
fn second_program() {
    let path = children::env_path();
    let info = match role().as_deref() {
        Some("second") => second::Entry::INFO,
        _ => renamed::Note::INFO,
    };
    match open_as(info, &path) {
        Err(Error::LayoutMismatch { model, differences, .. }) => say(&format!("refused {model}: {differences}")),
        Err(other) => say(&format!("failed: {other}")),
        Ok(store) => {
            let count = store.read(|tx| tx.count::<renamed::Note>()).unwrap_or(0);
            say(&format!("opened with {count} records"));
        }
    }
}

fn seeded() -> (tempfile::TempDir, Vec<first::Entry>) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(first::Entry::INFO, dir.path()).unwrap();
    let entries: Vec<first::Entry> =
        (1..=3).map(|id| first::Entry { id, text: format!("entry {id}"), tags: vec!["a".into()] }).collect();
    for entry in &entries {
        entry.save(&store).unwrap();
    }
    (dir, entries)
}

#[test]
fn a_program_with_another_layout_under_the_same_name_is_refused_and_writes_nothing() {
    if role().is_some() {
        return second_program();
    }
    let (dir, entries) = seeded();
    let data = dir.path().join("data.mdb");
    let before = (!engine::on_slatedb()).then(|| std::fs::read(&data).unwrap());
    let lines = finish(spawn_child(
        "a_program_with_another_layout_under_the_same_name_is_refused_and_writes_nothing",
        "second",
        dir.path(),
        0,
        1,
    ));
    let said = lines.first().expect("the child says what happened");
    assert!(said.starts_with("refused entry: "), "{said}");
    assert!(said.contains("field `id` is u64 in the store, str here"), "names the key's type: {said}");
    assert!(said.contains("field `tags` (seq<str>) is in the store, not here"), "{said}");
    assert!(said.contains("field `count` (u32) is here, not in the store"), "{said}");
    if let Some(before) = before {
        assert!(std::fs::read(&data).unwrap() == before, "the refused program wrote nothing");
    }
    let store = open_as(first::Entry::INFO, dir.path()).unwrap();
    assert_eq!(first::Entry::all(&store).unwrap(), entries, "the first program reads its records as they were");
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn the_same_layout_under_another_rust_name_opens() {
    if role().is_some() {
        return second_program();
    }
    let (dir, _) = seeded();
    let lines = finish(spawn_child("the_same_layout_under_another_rust_name_opens", "renamed", dir.path(), 0, 1));
    assert_eq!(lines, ["opened with 3 records"]);
}

#[test]
fn a_layout_mismatch_in_the_same_process_is_refused_too() {
    let (dir, _) = seeded();
    let err = open_as(second::Entry::INFO, dir.path()).unwrap_err();
    let Error::LayoutMismatch { model, version, differences } = &err else { panic!("{err}") };
    assert_eq!((*model, *version), ("entry", 1));
    assert!(differences.contains("field `id`"), "{differences}");
    assert!(err.to_string().contains("#[persistent(name"), "says how to fix it: {err}");
    let read_only = engine::options().models([second::Entry::INFO]).read_only().open(dir.path());
    assert!(matches!(read_only, Err(Error::LayoutMismatch { .. })), "a reader is refused as well");
}
