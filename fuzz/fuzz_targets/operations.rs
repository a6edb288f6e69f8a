//! Arbitrary operation sequences on a store, checked against a BTreeMap
//! model after every step and by `verify` at the end.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq, Arbitrary)]
struct Rec {
    #[persistent(key)]
    id: u8,
    #[persistent(index, unique)]
    email: u8,
    #[persistent(index)]
    team: Option<u8>,
    #[persistent(index(with = Rec::tag_values))]
    tags: Vec<u8>,
}

impl Rec {
    fn tag_values(&self) -> Vec<u8> {
        self.tags.clone()
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Save(Rec),
    Insert(Rec),
    Delete(u8),
    SetTeam(u8, Option<u8>),
    Aborted(Vec<Rec>),
}

fn unique_clash(model: &BTreeMap<u8, Rec>, record: &Rec) -> bool {
    model.values().any(|other| other.id != record.id && other.email == record.email)
}

fuzz_target!(|ops: Vec<Op>| {
    let store = Store::temporary().unwrap();
    let mut model: BTreeMap<u8, Rec> = BTreeMap::new();
    for op in ops.iter().take(64) {
        match op {
            Op::Save(record) => {
                let result = record.save(&store);
                if unique_clash(&model, record) {
                    assert!(matches!(result, Err(Error::UniqueViolation { .. })));
                } else {
                    result.unwrap();
                    model.insert(record.id, record.clone());
                }
            }
            Op::Insert(record) => {
                let result = record.insert(&store);
                if model.contains_key(&record.id) {
                    assert!(matches!(result, Err(Error::AlreadyExists { .. })));
                } else if unique_clash(&model, record) {
                    assert!(matches!(result, Err(Error::UniqueViolation { .. })));
                } else {
                    result.unwrap();
                    model.insert(record.id, record.clone());
                }
            }
            Op::Delete(id) => assert_eq!(Rec::delete(&store, id).unwrap(), model.remove(id).is_some()),
            Op::SetTeam(id, team) => {
                let result = Rec::update(&store, id, |r| r.team = *team);
                match model.get_mut(id) {
                    Some(stored) => {
                        result.unwrap();
                        stored.team = *team;
                    }
                    None => assert!(matches!(result, Err(Error::NotFound { .. }))),
                }
            }
            Op::Aborted(records) => {
                let result = store.write(|tx| {
                    records.iter().for_each(|r| drop(tx.save(r)));
                    Err::<(), _>(Error::Storage("abort".into()))
                });
                assert!(result.is_err());
            }
        }
        assert_eq!(Rec::all(&store).unwrap(), model.values().cloned().collect::<Vec<_>>());
    }
    assert!(store.verify().unwrap().is_clean());
});
