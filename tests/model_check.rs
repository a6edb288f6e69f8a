//! The index logic against an in-memory model: random sequences of save,
//! insert, update, delete, aborted transactions, and transactions whose
//! caller goes on past failing operations (key moves onto taken keys,
//! unique clashes) and commits, compared with a `BTreeMap` after every
//! step through every query and index kind, and through the newest kept
//! version of every key (the model keeps history).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Store};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(index(name = "team_email", fields(team, email)), history = 2)]
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
    /// `None`, long past, or far ahead: an expired record must behave as
    /// one that is not there.
    #[persistent(expires)]
    expires: Option<SystemTime>,
}

fn expiry() -> impl Strategy<Value = Option<SystemTime>> {
    prop_oneof![
        6 => Just(None),
        2 => Just(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1))),
        1 => Just(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(10_000_000_000))),
    ]
}

fn expired(record: &Rec) -> bool {
    record.expires.is_some_and(|at| at < SystemTime::now())
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
    /// Operations in one transaction that ignores their errors and commits.
    GoingOn(Vec<Inner>),
}

/// An operation inside a `GoingOn` transaction.
#[derive(Debug, Clone)]
enum Inner {
    Save(Rec),
    Insert(Rec),
    /// Move record `.0` to key `.1`, giving it email `.2`.
    Move(u8, u8, u8),
    Delete(u8),
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        0u8..8,
        0u8..6,
        proptest::option::of(0u8..3),
        proptest::collection::vec(0u8..4, 0..3),
        proptest::option::of(0u8..8),
        expiry(),
    )
        .prop_map(|(id, email, team, tags, parent, expires)| Rec { id, email, team, tags, parent, expires })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => rec().prop_map(Op::Save),
        2 => rec().prop_map(Op::Insert),
        1 => (0u8..8, proptest::option::of(0u8..3)).prop_map(|(id, team)| Op::UpdateTeam(id, team)),
        1 => (0u8..8, proptest::collection::vec(0u8..4, 0..3)).prop_map(|(id, tags)| Op::UpdateTags(id, tags)),
        1 => (0u8..8).prop_map(Op::Delete),
        1 => proptest::collection::vec(rec(), 1..3).prop_map(Op::AbortedBatch),
        2 => proptest::collection::vec(inner(), 1..6).prop_map(Op::GoingOn),
    ]
}

fn inner() -> impl Strategy<Value = Inner> {
    prop_oneof![
        1 => rec().prop_map(Inner::Save),
        1 => rec().prop_map(Inner::Insert),
        3 => (0u8..8, 0u8..8, 0u8..6).prop_map(|(from, to, email)| Inner::Move(from, to, email)),
        1 => (0u8..8).prop_map(Inner::Delete),
    ]
}

/// What the model says moving record `from` to key `to` with `email` does.
fn model_move(model: &mut BTreeMap<u8, Rec>, from: u8, to: u8, email: u8) -> Result<(), &'static str> {
    let Some(mut moved) = model.get(&from).cloned() else { return Err("missing") };
    if to != from && model.contains_key(&to) {
        return Err("exists");
    }
    if model.values().any(|other| other.id != from && other.email == email) {
        return Err("unique");
    }
    model.remove(&from);
    (moved.id, moved.email) = (to, email);
    model.insert(to, moved);
    Ok(())
}

fn apply_inner(tx: &mut skyshelve::WriteTx<'_>, model: &mut BTreeMap<u8, Rec>, op: &Inner) {
    match op {
        Inner::Save(record) => expect_same(tx.save(record), model_write(model, record, false)),
        Inner::Insert(record) => expect_same(tx.insert(record), model_write(model, record, true)),
        Inner::Move(from, to, email) => {
            let moved = Rec::update_in(tx, from, |r| (r.id, r.email) = (*to, *email));
            expect_same(moved.map(drop), model_move(model, *from, *to, *email));
        }
        Inner::Delete(id) => assert_eq!(Rec::delete_in(tx, id).unwrap(), model.remove(id).is_some()),
    }
}

/// What the model says a save or insert of `record` does.
fn model_write(model: &mut BTreeMap<u8, Rec>, record: &Rec, must_be_new: bool) -> Result<(), &'static str> {
    if must_be_new && model.contains_key(&record.id) {
        return Err("exists");
    }
    if model.values().any(|other| other.id != record.id && other.email == record.email) {
        return Err("unique");
    }
    // An expired record is stored but, to every reader and writer, gone.
    if expired(record) {
        model.remove(&record.id);
    } else {
        model.insert(record.id, record.clone());
    }
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
        Op::GoingOn(ops) => {
            // The closure may run again (map growth): start from the same model each time.
            let before = model.clone();
            store
                .write(|tx| {
                    *model = before.clone();
                    ops.iter().for_each(|op| apply_inner(tx, model, op));
                    Ok(())
                })
                .unwrap();
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
    compare_composite(store, model);
    compare_history(store, model);
}

/// Every key's newest kept version is what the key holds now: the record,
/// or a deletion (an expired record counts as gone, kept or purged).
fn compare_history(store: &Store, model: &BTreeMap<u8, Rec>) {
    for id in 0..8u8 {
        let history = Rec::history(store, &id).unwrap();
        assert!(history.len() <= 3, "history = 2 keeps the current version and two more");
        assert!(history.windows(2).all(|pair| pair[0].position > pair[1].position), "newest first");
        let newest = history.into_iter().next().and_then(|version| version.record).filter(|r| !expired(r));
        assert_eq!(newest.as_ref(), model.get(&id), "newest kept version of {id}");
    }
}

/// The composite (team, email) index, paged two records at a time in
/// both directions, against the model sorted the same way.
fn compare_composite(store: &Store, model: &BTreeMap<u8, Rec>) {
    for team in [None, Some(0), Some(1), Some(2)] {
        let mut expected: Vec<(u8, u8)> = model.values().filter(|r| r.team == team).map(|r| (r.email, r.id)).collect();
        expected.sort_unstable();
        for reverse in [false, true] {
            let mut query = Rec::query_by(Rec::TEAM_EMAIL).prefix(&(team,)).limit(2);
            if reverse {
                query = query.reverse();
            }
            let mut seen = Vec::new();
            let mut page = query.fetch(store).unwrap();
            loop {
                seen.extend(page.records.iter().map(|r| (r.email, r.id)));
                match (page.more, page.last) {
                    (true, Some(last)) => page = query.clone().after(&last).fetch(store).unwrap(),
                    _ => break,
                }
            }
            if reverse {
                seen.reverse();
            }
            assert_eq!(seen, expected, "team {team:?}, reverse {reverse}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_a_btreemap_model(ops in proptest::collection::vec(op(), 1..40)) {
        let store = engine::temporary().unwrap();
        let mut model = BTreeMap::new();
        for op in &ops {
            apply(&store, &mut model, op);
            compare(&store, &model);
        }
        let report = Rec::verify(&store).unwrap();
        prop_assert!(report.is_clean(), "{}", report);
    }
}
