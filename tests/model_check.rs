//! The index logic against an in-memory model: random sequences of save,
//! insert, update, delete and aborted transactions, compared with a
//! `BTreeMap` after every step through every query and index kind.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Rec {
    #[persistent(key)]
    id: u8,
    #[persistent(index, unique)]
    email: u8,
    #[persistent(index)]
    team: Option<u8>,
    #[persistent(index(with = Rec::tag_values))]
    tags: Vec<u8>,
    #[persistent(parent = Rec)]
    parent: Option<u8>,
}

impl Rec {
    fn tag_values(&self) -> Vec<u8> {
        self.tags.clone()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Save(Rec),
    Insert(Rec),
    UpdateTeam(u8, Option<u8>),
    UpdateTags(u8, Vec<u8>),
    Delete(u8),
    AbortedBatch(Vec<Rec>),
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        0u8..8,
        0u8..6,
        proptest::option::of(0u8..3),
        proptest::collection::vec(0u8..4, 0..3),
        proptest::option::of(0u8..8),
    )
        .prop_map(|(id, email, team, tags, parent)| Rec { id, email, team, tags, parent })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => rec().prop_map(Op::Save),
        2 => rec().prop_map(Op::Insert),
        1 => (0u8..8, proptest::option::of(0u8..3)).prop_map(|(id, team)| Op::UpdateTeam(id, team)),
        1 => (0u8..8, proptest::collection::vec(0u8..4, 0..3)).prop_map(|(id, tags)| Op::UpdateTags(id, tags)),
        1 => (0u8..8).prop_map(Op::Delete),
        1 => proptest::collection::vec(rec(), 1..3).prop_map(Op::AbortedBatch),
    ]
}

/// What the model says a save or insert of `record` does.
fn model_write(model: &mut BTreeMap<u8, Rec>, record: &Rec, must_be_new: bool) -> Result<(), &'static str> {
    if must_be_new && model.contains_key(&record.id) {
        return Err("exists");
    }
    if model.values().any(|other| other.id != record.id && other.email == record.email) {
        return Err("unique");
    }
    model.insert(record.id, record.clone());
    Ok(())
}

fn expect_same(result: Result<(), Error>, expected: Result<(), &'static str>) {
    match (&result, expected) {
        (Ok(()), Ok(())) => {}
        (Err(Error::AlreadyExists { .. }), Err("exists")) => {}
        (Err(Error::UniqueViolation { index: "email", .. }), Err("unique")) => {}
        (Err(Error::NotFound { .. }), Err("missing")) => {}
        _ => panic!("store said {result:?}, model said {expected:?}"),
    }
}

fn apply(store: &Store, model: &mut BTreeMap<u8, Rec>, op: &Op) {
    match op {
        Op::Save(record) => expect_same(record.save(store), model_write(model, record, false)),
        Op::Insert(record) => expect_same(record.insert(store), model_write(model, record, true)),
        Op::UpdateTeam(id, team) => {
            let expected = match model.get_mut(id) {
                Some(stored) => {
                    stored.team = *team;
                    Ok(())
                }
                None => Err("missing"),
            };
            expect_same(Rec::update(store, id, |r| r.team = *team).map(drop), expected);
        }
        Op::UpdateTags(id, tags) => {
            let expected = match model.get_mut(id) {
                Some(stored) => {
                    stored.tags.clone_from(tags);
                    Ok(())
                }
                None => Err("missing"),
            };
            expect_same(Rec::update(store, id, |r| r.tags.clone_from(tags)).map(drop), expected);
        }
        Op::Delete(id) => assert_eq!(Rec::delete(store, id).unwrap(), model.remove(id).is_some()),
        Op::AbortedBatch(records) => {
            let result = store.write(|tx| {
                for record in records {
                    let _ = tx.save(record);
                }
                Err::<(), _>(Error::Storage("abort on purpose".into()))
            });
            assert!(result.is_err());
        }
    }
}

fn ids(records: Vec<Rec>) -> Vec<u8> {
    records.into_iter().map(|r| r.id).collect()
}

fn compare(store: &Store, model: &BTreeMap<u8, Rec>) {
    assert_eq!(Rec::all(store).unwrap(), model.values().cloned().collect::<Vec<_>>());
    for value in 0..8u8 {
        let by_email = model.values().find(|r| r.email == value).map(|r| r.id);
        assert_eq!(Rec::load_by(store, Rec::EMAIL, &value).unwrap().map(|r| r.id), by_email);
        let team: Vec<u8> = model.values().filter(|r| r.team == Some(value)).map(|r| r.id).collect();
        assert_eq!(ids(Rec::scan_index(store, Rec::TEAM, &value).unwrap()), team);
        let tagged: Vec<u8> = model.values().filter(|r| r.tags.contains(&value)).map(|r| r.id).collect();
        assert_eq!(ids(Rec::scan_index(store, Rec::TAGS, &value).unwrap()), tagged);
        let children: Vec<u8> = model.values().filter(|r| r.parent == Some(value)).map(|r| r.id).collect();
        assert_eq!(ids(Rec::children(store, Rec::PARENT, &value).unwrap()), children);
    }
    let mut by_team: Vec<(u8, u8)> = model.values().filter_map(|r| r.team.map(|t| (t, r.id))).collect();
    by_team.sort_unstable();
    let ranged: Vec<(u8, u8)> =
        Rec::range_index(store, Rec::TEAM, 0..3).unwrap().into_iter().map(|r| (r.team.unwrap(), r.id)).collect();
    assert_eq!(ranged, by_team);
    assert_eq!(Rec::count(store).unwrap(), model.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_a_btreemap_model(ops in proptest::collection::vec(op(), 1..40)) {
        let store = Store::temporary().unwrap();
        let mut model = BTreeMap::new();
        for op in &ops {
            apply(&store, &mut model, op);
            compare(&store, &model);
        }
        let report = Rec::verify(&store).unwrap();
        prop_assert!(report.is_clean(), "{}", report);
    }
}
