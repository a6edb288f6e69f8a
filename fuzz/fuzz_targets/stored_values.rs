//! Random values of the serde shapes bincode cannot read back (fields
//! skipped when empty, internally tagged and untagged enums), nested where
//! the derive cannot see them, through save and load and a map: a write
//! either fails and stores nothing, or stores what reads back as written.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Persistent, Store};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Arbitrary)]
struct Skipping {
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    list: Vec<u16>,
    last: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Arbitrary)]
#[serde(tag = "kind")]
enum Tagged {
    Circle { radius: u8 },
    Label { text: String },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Arbitrary)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
    Text(String),
    Pair(u8, Option<u8>),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Arbitrary)]
enum Plain {
    Unit,
    Tuple(i16, Option<String>),
    Struct { a: Vec<u8>, b: bool },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Arbitrary)]
enum Shape {
    Skipping(Skipping),
    Tagged(Tagged),
    Untagged(Untagged),
    Plain(Plain),
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq, Arbitrary)]
struct Holder {
    #[persistent(key)]
    id: u8,
    shape: Shape,
}

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    // No fsync per write: the target checks encodings, not durability.
    STORE.get_or_init(|| {
        Store::options().durability(Durability::MayCorruptOnPowerLoss).open_temporary().expect("a temporary store")
    })
}

fuzz_target!(|holder: Holder| {
    let store = store();
    let _ = Holder::delete(store, &holder.id);
    match holder.save(store) {
        Ok(()) => assert_eq!(Holder::load(store, &holder.id).unwrap().as_ref(), Some(&holder)),
        Err(_) => assert!(!Holder::exists(store, &holder.id).unwrap(), "a refused write stored nothing"),
    }
    let map = store.map::<u8, Shape>("shapes").unwrap();
    let before = map.get(&holder.id).unwrap();
    match map.insert(&holder.id, &holder.shape) {
        Ok(_) => assert_eq!(map.get(&holder.id).unwrap().as_ref(), Some(&holder.shape)),
        Err(_) => assert_eq!(map.get(&holder.id).unwrap(), before, "a refused insert changed nothing"),
    }
});
