//! The typed key-value map.

use skyshelve::{Error, Store};

#[test]
fn get_insert_remove_contains_len() {
    let store = Store::temporary().unwrap();
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
    let store = Store::temporary().unwrap();
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
fn strings_and_bytes_are_stored_as_they_are() {
    let store = Store::temporary().unwrap();
    let text = store.map::<u8, String>("text").unwrap();
    text.insert(&1, &"héllo".to_string()).unwrap();
    // The same table read as raw bytes shows the UTF-8 bytes, nothing else.
    let raw = store.map::<u8, Vec<u8>>("text").unwrap();
    assert_eq!(raw.get(&1).unwrap(), Some("héllo".as_bytes().to_vec()));
    assert_eq!(text.get(&1).unwrap().as_deref(), Some("héllo"));
}

#[test]
fn maps_with_different_names_are_separate() {
    let store = Store::temporary().unwrap();
    let a = store.map::<u8, u8>("a").unwrap();
    let b = store.map::<u8, u8>("b").unwrap();
    a.insert(&1, &1).unwrap();
    assert!(b.get(&1).unwrap().is_none());
}

#[test]
fn reading_a_map_with_the_wrong_value_type_is_a_decode_error() {
    let store = Store::temporary().unwrap();
    store.map::<u8, (u64, u64)>("typed").unwrap().insert(&1, &(1, 2)).unwrap();
    let longer = store.map::<u8, (u64, u64, u64)>("typed").unwrap();
    assert!(matches!(longer.get(&1), Err(Error::Decode { .. })), "too few bytes");
    let shorter = store.map::<u8, u64>("typed").unwrap();
    assert!(matches!(shorter.get(&1), Err(Error::Decode { .. })), "trailing bytes");

    store.map::<u8, String>("raw").unwrap().insert(&1, &"hello".to_string()).unwrap();
    let headerless = store.map::<u8, u64>("raw").unwrap();
    assert!(matches!(headerless.get(&1), Err(Error::Decode { .. })), "no value header");
    store.map::<u8, Vec<u8>>("raw").unwrap().insert(&2, &vec![0xFF, 0xFE]).unwrap();
    let text = store.map::<u8, String>("raw").unwrap();
    assert!(matches!(text.get(&2), Err(Error::Decode { .. })), "invalid UTF-8");
    assert!(matches!(text.iter(), Err(Error::Decode { .. })));
}

#[test]
fn invalid_map_names_are_refused() {
    let store = Store::temporary().unwrap();
    for name in ["", "a/b", "nul\0"] {
        let err = store.map::<u8, u8>(name).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
    }
}

#[test]
fn too_many_maps_is_a_typed_error_naming_the_setting() {
    let store = Store::temporary().unwrap();
    let err = (0..1000).map(|i| store.map::<u32, u32>(&format!("m{i}"))).find_map(Result::err).unwrap();
    assert!(matches!(err, Error::TooManyTables { .. }), "{err:?}");
    assert!(err.to_string().contains("max_tables"), "{err}");
}

#[test]
fn maps_work_inside_transactions_of_their_own_store_only() {
    let (store, other) = (Store::temporary().unwrap(), Store::temporary().unwrap());
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
    let roomy = maps_opened(&Store::temporary().unwrap());
    let tight = maps_opened(&Store::options().map_room(2).open_temporary().unwrap());
    assert!(tight >= 2, "room for 2 maps opens 2: {tight}");
    assert_eq!(roomy - tight, skyshelve::MAP_ROOM as usize - 2, "the default has room for MAP_ROOM");
}
