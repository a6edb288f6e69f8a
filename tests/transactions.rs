//! Multi-record transactions: all of it commits or none of it does.

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Store};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Wallet {
    #[persistent(key)]
    owner: String,
    #[persistent(index, unique)]
    address: String,
    coins: i64,
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Transfer {
    #[persistent(key)]
    id: u64,
    #[persistent(parent = Wallet)]
    from: String,
    amount: i64,
}

fn wallet(owner: &str, coins: i64) -> Wallet {
    Wallet { owner: owner.into(), address: format!("addr-{owner}"), coins }
}

fn seeded() -> Store {
    let store = engine::temporary().unwrap();
    wallet("ada", 100).save(&store).unwrap();
    wallet("bob", 0).save(&store).unwrap();
    store
}

fn transfer(tx: &mut skyshelve::WriteTx<'_>, id: u64, from: &str, to: &str, amount: i64) -> Result<(), Error> {
    Wallet::update_in(tx, from, |w| w.coins -= amount)?;
    Wallet::update_in(tx, to, |w| w.coins += amount)?;
    tx.insert(&Transfer { id, from: from.into(), amount })
}

fn coins(store: &Store, owner: &str) -> i64 {
    Wallet::load(store, owner).unwrap().unwrap().coins
}

#[test]
fn several_models_commit_together() {
    let store = seeded();
    store.write(|tx| transfer(tx, 1, "ada", "bob", 30)).unwrap();
    assert_eq!((coins(&store, "ada"), coins(&store, "bob")), (70, 30));
    assert_eq!(Transfer::children(&store, Transfer::FROM, "ada").unwrap().len(), 1);
}

#[test]
fn failure_midway_leaves_nothing_behind() {
    let store = seeded();
    let err = store.write(|tx| transfer(tx, 1, "ada", "nobody", 30)).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert_eq!((coins(&store, "ada"), coins(&store, "bob")), (100, 0));
    assert_eq!(Transfer::count(&store).unwrap(), 0);
}

#[test]
fn failure_after_several_writes_of_several_models_rolls_all_back() {
    let store = seeded();
    store.write(|tx| transfer(tx, 1, "ada", "bob", 10)).unwrap();
    let err = store
        .write(|tx| {
            transfer(tx, 2, "ada", "bob", 10)?;
            tx.save(&wallet("cy", 5))?;
            transfer(tx, 1, "bob", "ada", 1) // transfer 1 exists: AlreadyExists
        })
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!((coins(&store, "ada"), coins(&store, "bob")), (90, 10));
    assert!(Wallet::load(&store, "cy").unwrap().is_none());
    assert_eq!(Transfer::count(&store).unwrap(), 1);
}

#[derive(Debug)]
enum AppError {
    Store(Error),
    Insufficient,
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Store(err)
    }
}

#[test]
fn a_user_error_type_aborts_the_transaction() {
    let store = seeded();
    let result = store.write_with_error(|tx| {
        let after = Wallet::update_in(tx, "bob", |w| w.coins -= 50)?;
        if after.coins < 0 {
            return Err(AppError::Insufficient);
        }
        Ok(())
    });
    assert!(matches!(result, Err(AppError::Insufficient)));
    assert_eq!(coins(&store, "bob"), 0);
    let store_error =
        store.write_with_error(|tx| Wallet::update_in(tx, "zed", |w| w.coins = 1).map_err(AppError::from));
    assert!(matches!(store_error, Err(AppError::Store(Error::NotFound { .. }))));
}

#[test]
fn reads_inside_a_write_see_its_own_writes() {
    let store = seeded();
    store
        .write(|tx| {
            tx.save(&wallet("cy", 7))?;
            assert_eq!(Wallet::load_in(tx, "cy")?.unwrap().coins, 7);
            assert_eq!(tx.load_by(Wallet::ADDRESS, "addr-cy")?.unwrap().owner, "cy");
            assert_eq!(tx.count::<Wallet>()?, 3);
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_read_transaction_is_a_snapshot() {
    let store = seeded();
    store
        .read(|tx| {
            assert_eq!(Wallet::load_in(tx, "ada")?.unwrap().coins, 100);
            Wallet::update(&store, "ada", |w| w.coins = 1)?;
            assert_eq!(Wallet::load_in(tx, "ada")?.unwrap().coins, 100, "the snapshot does not move");
            Ok(())
        })
        .unwrap();
    assert_eq!(coins(&store, "ada"), 1);
}

#[test]
fn unique_violation_inside_a_transaction_leaves_the_transaction_untouched() {
    let store = seeded();
    store
        .write(|tx| {
            let mut clash = wallet("cy", 1);
            clash.address = "addr-ada".into();
            assert!(matches!(tx.save(&clash), Err(Error::UniqueViolation { .. })));
            // The caller chose to go on: the failed save must have written nothing.
            tx.save(&wallet("dan", 2))
        })
        .unwrap();
    assert!(Wallet::load(&store, "cy").unwrap().is_none());
    assert_eq!(Wallet::load_by(&store, Wallet::ADDRESS, "addr-ada").unwrap().unwrap().owner, "ada");
    assert_eq!(Wallet::count(&store).unwrap(), 3);
}

#[test]
fn starting_a_second_write_inside_a_write_is_an_error_not_a_deadlock() {
    let store = seeded();
    let result = store.write(|tx| {
        tx.save(&wallet("cy", 1))?;
        wallet("dan", 1).save(&store)
    });
    assert!(matches!(result, Err(Error::NestedWrite)), "{result:?}");
    assert!(Wallet::load(&store, "cy").unwrap().is_none(), "the outer transaction was rolled back");
    // Reads inside a write are fine.
    store.write(|tx| tx.save(&wallet(&Wallet::load(&store, "ada")?.unwrap().owner.repeat(2), 1))).unwrap();
    assert!(Wallet::exists(&store, "adaada").unwrap());
}

#[test]
fn a_refused_key_move_leaves_both_records() {
    let store = seeded();
    store
        .write(|tx| {
            // bob's key is taken: the move fails and the caller goes on.
            let moved = Wallet::update_in(tx, "ada", |w| w.owner = "bob".into());
            assert!(matches!(moved, Err(Error::AlreadyExists { .. })), "{moved:?}");
            Ok(())
        })
        .unwrap();
    assert_eq!(Wallet::load(&store, "ada").unwrap(), Some(wallet("ada", 100)));
    assert_eq!(Wallet::load(&store, "bob").unwrap(), Some(wallet("bob", 0)));
    assert!(Wallet::verify(&store).unwrap().is_clean());
}

#[test]
fn a_key_move_onto_a_taken_unique_value_leaves_both_records() {
    let store = seeded();
    for via_upsert in [false, true] {
        store
            .write(|tx| {
                let change = |w: &mut Wallet| {
                    w.owner = "cy".into();
                    w.address = "addr-bob".into();
                };
                let moved = if via_upsert {
                    tx.upsert(|| wallet("ada", 0), change)
                } else {
                    Wallet::update_in(tx, "ada", change)
                };
                assert!(matches!(moved, Err(Error::UniqueViolation { .. })), "{moved:?}");
                Ok(())
            })
            .unwrap();
        assert_eq!(Wallet::load(&store, "ada").unwrap(), Some(wallet("ada", 100)));
        assert_eq!(Wallet::load_by(&store, Wallet::ADDRESS, "addr-bob").unwrap(), Some(wallet("bob", 0)));
        assert!(Wallet::load(&store, "cy").unwrap().is_none());
        assert!(Wallet::verify(&store).unwrap().is_clean(), "{}", Wallet::verify(&store).unwrap());
    }
}

#[test]
fn a_key_move_may_keep_its_own_unique_value() {
    let store = seeded();
    let moved = Wallet::update(&store, "ada", |w| w.owner = "ann".into()).unwrap();
    assert_eq!(moved.address, "addr-ada");
    assert!(Wallet::load(&store, "ada").unwrap().is_none());
    assert_eq!(Wallet::load_by(&store, Wallet::ADDRESS, "addr-ada").unwrap().unwrap().owner, "ann");
    assert!(Wallet::verify(&store).unwrap().is_clean());
}

#[test]
fn closures_need_no_error_annotation() {
    let store = seeded();
    let total = store.read(|tx| {
        let mut total = 0;
        for wallet in tx.iter::<Wallet>()? {
            total += wallet?.coins;
        }
        Ok(total)
    });
    assert_eq!(total.unwrap(), 100);
    store
        .write(|tx| {
            tx.save(&wallet("cy", 1))?;
            Ok(())
        })
        .unwrap();
    assert!(Wallet::exists(&store, "cy").unwrap());
}
