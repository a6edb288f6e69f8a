//! What a stored value may contain: nothing is written that cannot be read
//! back. Serde attributes the derive can see on a model are compile errors
//! (`ui-tests/fail/serde/`); the same attributes on a nested type, and
//! "any" types such as `serde_json::Value`, are refused when written with
//! `Error::UnreadableValue`, nothing written — on a model and as a map value.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent};

#[path = "common/engine.rs"]
mod engine;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Skipping {
    #[serde(skip_serializing_if = "Option::is_none")]
    nickname: Option<String>,
    age: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type")]
enum Internally {
    Circle { radius: u32 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "t", content = "c")]
enum Adjacently {
    Square(u32),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Inner {
    city: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Flattening {
    id: u32,
    #[serde(flatten)]
    inner: Inner,
}

/// Every shape under test, as a nested field the derive cannot look into.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Shape {
    Skipping(Skipping),
    Internally(Internally),
    Adjacently(Adjacently),
    Untagged(Untagged),
    Flattening(Flattening),
    Any(serde_json::Value),
}

fn unreadable_shapes() -> Vec<(&'static str, Shape)> {
    vec![
        ("skip_serializing_if", Shape::Skipping(Skipping { nickname: None, age: 30 })),
        ("internally tagged", Shape::Internally(Internally::Circle { radius: 2 })),
        ("adjacently tagged", Shape::Adjacently(Adjacently::Square(3))),
        ("untagged", Shape::Untagged(Untagged::Text("x".into()))),
        ("flatten", Shape::Flattening(Flattening { id: 1, inner: Inner { city: "Oslo".into() } })),
        ("serde_json::Value", Shape::Any(serde_json::json!({ "a": [1, 2] }))),
    ]
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Drawing {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    owner: String,
    shape: Shape,
}

/// The write was refused as unreadable, or (flatten) by the encoder itself.
fn refused<T>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::UnreadableValue { .. } | Error::Encode { .. }))
}

#[test]
fn a_nested_shape_the_codec_cannot_read_is_refused_and_nothing_is_written() {
    let store = engine::temporary().unwrap();
    for (what, shape) in unreadable_shapes() {
        let drawing = Drawing { id: 1, owner: "ada".into(), shape };
        let result = drawing.save(&store);
        assert!(refused(&result), "{what}: {result:?}");
        assert!(!Drawing::exists(&store, &1).unwrap(), "{what}: nothing written");
        assert!(Drawing::scan_index(&store, Drawing::OWNER, "ada").unwrap().is_empty(), "{what}: no index entry");
    }
    let err = Drawing { id: 1, owner: "ada".into(), shape: unreadable_shapes().remove(0).1 }.save(&store).unwrap_err();
    assert!(err.to_string().contains("skip_serializing_if"), "the message names the cause: {err}");
}

#[test]
fn a_refused_write_inside_a_transaction_leaves_the_rest() {
    let store = engine::temporary().unwrap();
    store
        .write(|tx| {
            tx.save(&readable(1))?;
            let bad = Drawing { id: 2, owner: "bob".into(), shape: unreadable_shapes().remove(1).1 };
            assert!(matches!(tx.save(&bad), Err(Error::UnreadableValue { .. })));
            Ok(())
        })
        .unwrap();
    assert_eq!(Readable::load(&store, &1).unwrap(), Some(readable(1)));
    assert_eq!(Drawing::count(&store).unwrap(), 0);
}

#[test]
fn map_values_the_codec_cannot_read_are_refused() {
    let store = engine::temporary().unwrap();
    let values = store.map::<String, serde_json::Value>("json").unwrap();
    let err = values.insert(&"a".to_string(), &serde_json::json!({ "x": 1 })).unwrap_err();
    assert!(matches!(err, Error::UnreadableValue { .. }), "{err:?}");
    assert_eq!(values.len().unwrap(), 0);
    let shapes = store.map::<u32, Shape>("shapes").unwrap();
    for (what, shape) in unreadable_shapes() {
        assert!(refused(&shapes.insert(&1, &shape)), "{what}");
        assert!(!shapes.contains(&1).unwrap(), "{what}");
    }
}

/// A model the derive cannot see into, holding only shapes that do read back.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Readable {
    #[persistent(key)]
    id: u32,
    inner: Inner,
    /// Many entries: a hash map may encode them in another order after a
    /// round trip, which must not count as unreadable.
    counts: HashMap<String, u64>,
    plain_enum: Option<Untagged2>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Untagged2 {
    A(u32),
    B { name: String },
}

fn readable(id: u32) -> Readable {
    Readable {
        id,
        inner: Inner { city: "Oslo".into() },
        counts: (0..200).map(|i| (format!("k{i}"), i)).collect(),
        plain_enum: Some(Untagged2::B { name: "n".into() }),
    }
}

#[test]
fn shapes_that_read_back_are_stored_whatever_their_order() {
    let store = engine::temporary().unwrap();
    let record = readable(1);
    record.save(&store).unwrap();
    assert_eq!(Readable::load(&store, &1).unwrap(), Some(record));
    let map = store.map::<u32, Readable>("readable").unwrap();
    map.insert(&1, &Readable::load(&store, &1).unwrap().unwrap()).unwrap();
    assert!(map.get(&1).unwrap().is_some());
}

/// Found by the `stored_values` fuzz target: skipping `first` shifts the
/// later fields so that the bytes read back, at the same length, as
/// `first: Some(251), list: [23]`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ShiftsIntoOtherValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<u8>,
    list: Vec<u16>,
    last: u32,
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Shifting {
    #[persistent(key)]
    id: u8,
    inner: ShiftsIntoOtherValues,
}

#[test]
fn a_skipped_field_that_would_read_back_as_other_values_is_refused() {
    let store = engine::temporary().unwrap();
    let record = Shifting { id: 4, inner: ShiftsIntoOtherValues { first: None, list: vec![5889], last: 0 } };
    let err = record.save(&store).unwrap_err();
    assert!(matches!(&err, Error::UnreadableValue { reason, .. } if reason.contains("`first`")), "{err}");
    assert!(!Shifting::exists(&store, &4).unwrap());
    let present = Shifting { id: 4, inner: ShiftsIntoOtherValues { first: Some(1), list: vec![5889], last: 0 } };
    present.save(&store).unwrap();
    assert_eq!(Shifting::load(&store, &4).unwrap(), Some(present));
}
