//! The typed key-value map.

use skyshelve::{Error, Store};

#[path = "common/engine.rs"]
mod engine;

#[test]
fn get_insert_remove_contains_len() {
    let store = engine::temporary().unwrap();
    let map = store.map::<u32, Vec<String>>("lists").unwrap();
    assert!(map.is_empty().unwrap());
    assert!(map.insert(&1, &vec!["a".into()]).unwrap());
    assert!(map.insert(&2, &vec![]).unwrap());
    assert!(!map.insert(&1, &vec!["b".into()]).unwrap(), "replacing is not new");
    assert_eq!(map.get(&1).unwrap(), Some(vec!["b".to_string()]));
    assert!(map.contains(&2).unwrap());
    assert_eq!(map.len().unwrap(), 2);
    assert_eq!(map.remove(&2).unwrap(), Some(vec![]));
    assert_eq!(map.remove(&2).unwrap(), None);
    assert!(!map.contains(&2).unwrap());
}

#[test]
fn iterate_range_and_prefix_follow_key_order() {
    let store = engine::temporary().unwrap();
    let map = store.map::<String, i64>("scores").unwrap();
    for (name, score) in [("bob", 2), ("ada", 1), ("adam", 3), ("cy", 4)] {
        map.insert(&name.to_string(), &score).unwrap();
    }
    let keys = |entries: Vec<(String, i64)>| entries.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(map.iter().unwrap()), ["ada", "adam", "bob", "cy"]);
    assert_eq!(keys(map.prefix("ada").unwrap()), ["ada", "adam"]);
    assert_eq!(keys(map.range("adam".to_string().."cy".to_string()).unwrap()), ["adam", "bob"]);
    let mut seen = Vec::new();
    map.for_each(|k, v| {
        seen.push((k, v));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), 4);
}

#[test]
fn strings_and_bytes_round_trip_and_are_not_each_other() {
    let store = engine::temporary().unwrap();
    let text = store.map::<u8, String>("text").unwrap();
    text.insert(&1, &"héllo".to_string()).unwrap();
    assert_eq!(text.get(&1).unwrap().as_deref(), Some("héllo"));
    let bytes = store.map::<u8, Vec<u8>>("bytes").unwrap();
    bytes.insert(&1, &vec![0xFF, 0xFE]).unwrap();
    assert_eq!(bytes.get(&1).unwrap(), Some(vec![0xFF, 0xFE]));
    // A string map read as bytes (or bytes as text) is another type.
    assert!(matches!(store.map::<u8, Vec<u8>>("text"), Err(Error::MapTypeMismatch { .. })));
    assert!(matches!(store.map::<u8, String>("bytes"), Err(Error::MapTypeMismatch { .. })));
}

#[test]
fn maps_with_different_names_are_separate() {
    let store = engine::temporary().unwrap();
    let a = store.map::<u8, u8>("a").unwrap();
    let b = store.map::<u8, u8>("b").unwrap();
    a.insert(&1, &1).unwrap();
    assert!(b.get(&1).unwrap().is_none());
}

#[test]
fn a_map_read_with_another_value_type_is_refused_before_anything_is_decoded() {
    let store = engine::temporary().unwrap();
    store.map::<u8, (u64, u64)>("typed").unwrap().insert(&1, &(1, 2)).unwrap();
    for refused in [
        store.map::<u8, (u64, u64, u64)>("typed").map(drop),
        store.map::<u8, u64>("typed").map(drop),
        store.map::<u8, String>("typed").map(drop),
    ] {
        assert!(matches!(refused, Err(Error::MapTypeMismatch { .. })), "{refused:?}");
    }
}

#[test]
fn invalid_map_names_are_refused() {
    let store = engine::temporary().unwrap();
    for name in ["", "a/b", "nul\0"] {
        let err = store.map::<u8, u8>(name).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
    }
}

#[test]
fn too_many_maps_is_a_typed_error_naming_the_setting() {
    let store = engine::temporary().unwrap();
    let err = (0..1000).map(|i| store.map::<u32, u32>(&format!("m{i}"))).find_map(Result::err).unwrap();
    assert!(matches!(err, Error::TooManyTables { .. }), "{err:?}");
    assert!(err.to_string().contains("max_tables"), "{err}");
}

#[test]
fn maps_work_inside_transactions_of_their_own_store_only() {
    let (store, other) = (engine::temporary().unwrap(), engine::temporary().unwrap());
    let counts = store.map::<String, u64>("counts").unwrap();
    store
        .write(|tx| {
            counts.upsert_in(tx, &"a".to_string(), || 0, |n| *n += 2)?;
            assert_eq!(counts.get_in(tx, "a")?, Some(2), "a write transaction sees its own writes");
            Ok(())
        })
        .unwrap();
    assert_eq!(store.read(|tx| counts.get_in(tx, "a")).unwrap(), Some(2));
    let err = other.write(|tx| counts.insert_in(tx, &"b".to_string(), &1)).unwrap_err();
    assert!(matches!(err, Error::OtherStore { .. }), "{err:?}");
    assert!(matches!(other.read(|tx| counts.get_in(tx, "a")), Err(Error::OtherStore { .. })));
}

#[test]
fn map_room_sets_how_many_maps_a_store_can_open() {
    let maps_opened = |store: &Store| (0..1000).take_while(|i| store.map::<u32, u32>(&format!("m{i}")).is_ok()).count();
    let roomy = maps_opened(&engine::temporary().unwrap());
    let tight = maps_opened(&engine::options().map_room(2).open_temporary().unwrap());
    assert!(tight >= 2, "room for 2 maps opens 2: {tight}");
    assert_eq!(roomy - tight, skyshelve::MAP_ROOM as usize - 2, "the default has room for MAP_ROOM");
}

/// A map knows its types: opened again with others (in this process, or
/// after the store is closed and opened again, as another program would)
/// it is refused, instead of reading values as another type or taking
/// keys of another type.
#[test]
fn a_map_opened_with_other_types_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = engine::open(dir.path()).unwrap();
        store.map::<String, u64>("m").unwrap().insert(&"a".into(), &7).unwrap();
        let other_value = store.map::<String, String>("m");
        assert!(matches!(other_value, Err(Error::MapTypeMismatch { .. })), "{other_value:?}");
    }
    let store = engine::open(dir.path()).unwrap();
    let Err(Error::MapTypeMismatch { name, differences }) = store.map::<String, String>("m") else {
        panic!("a reopened store still knows the map's types")
    };
    assert_eq!(name, "m");
    assert!(differences.contains("its values: the value is u64 in the store, str here"), "{differences}");
    let Err(Error::MapTypeMismatch { differences, .. }) = store.map::<u64, u64>("m") else {
        panic!("another key type")
    };
    assert!(differences.contains("its keys are alloc::string::String in the store, u64 here"), "{differences}");
    let same = store.map::<String, u64>("m").unwrap();
    assert_eq!(same.get("a").unwrap(), Some(7), "the same types open as before");
}
