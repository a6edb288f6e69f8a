//! Record locks within one process; tests/multiprocess.rs covers processes.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Store};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ticket {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    state: String,
    edits: u32,
}

fn ticket(id: u32) -> Ticket {
    Ticket { id, state: "open".into(), edits: 0 }
}

fn short_waits() -> Store {
    engine::options().lock_wait(Duration::from_millis(200)).open_temporary().unwrap()
}

#[test]
fn guard_reads_changes_and_saves_the_record() {
    let store = engine::temporary().unwrap();
    ticket(1).save(&store).unwrap();
    let mut guard = Ticket::lock(&store, &1).unwrap();
    assert_eq!(guard.get(), Some(&ticket(1)));
    guard.get_mut().unwrap().state = "closed".into();
    guard.save().unwrap();
    guard.update(|t| t.edits += 1).unwrap();
    drop(guard);
    let stored = Ticket::load(&store, &1).unwrap().unwrap();
    assert_eq!((stored.state.as_str(), stored.edits), ("closed", 1));
    assert_eq!(Ticket::scan_index(&store, Ticket::STATE, "closed").unwrap().len(), 1);
    assert!(Ticket::scan_index(&store, Ticket::STATE, "open").unwrap().is_empty());
}

#[test]
fn guard_can_create_and_delete_its_record() {
    let store = engine::temporary().unwrap();
    let mut guard = Ticket::lock(&store, &5).unwrap();
    assert!(guard.get().is_none());
    assert!(matches!(guard.save(), Err(Error::NotFound { .. })));
    guard.set(ticket(5)).unwrap();
    guard.save().unwrap();
    assert!(Ticket::exists(&store, &5).unwrap());
    assert!(guard.delete().unwrap());
    guard.unlock().unwrap();
    assert!(!Ticket::exists(&store, &5).unwrap());
}

#[test]
fn try_lock_and_lock_timeout_fail_while_held() {
    let store = engine::temporary().unwrap();
    let held = Ticket::lock(&store, &1).unwrap();
    assert!(matches!(Ticket::try_lock(&store, &1), Err(Error::Locked { .. })));
    let start = Instant::now();
    assert!(matches!(Ticket::lock_timeout(&store, &1, Duration::from_millis(100)), Err(Error::Locked { .. })));
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(Ticket::try_lock(&store, &2).is_ok(), "other records stay free");
    drop(held);
    assert!(Ticket::try_lock(&store, &1).is_ok());
}

#[test]
fn every_write_path_waits_for_the_lock_and_gives_up_with_locked() {
    let store = short_waits();
    ticket(1).save(&store).unwrap();
    let _held = Ticket::lock(&store, &1).unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                assert!(matches!(ticket(1).save(&store), Err(Error::Locked { .. })));
                assert!(matches!(Ticket::update(&store, &1, |t| t.edits += 1), Err(Error::Locked { .. })));
                assert!(matches!(Ticket::delete(&store, &1), Err(Error::Locked { .. })));
                assert!(matches!(Ticket::upsert(&store, || ticket(1), |t| t.edits += 1), Err(Error::Locked { .. })));
                // A transaction that swallows the error still does not commit half its work.
                let result = store.write(|tx| {
                    tx.save(&ticket(2))?;
                    let _ = tx.save(&ticket(1));
                    Ok(())
                });
                assert!(matches!(result, Err(Error::Locked { .. })));
            })
            .join()
            .unwrap();
    });
    assert!(!Ticket::exists(&store, &2).unwrap());
    // Writers of other records carry on.
    ticket(3).save(&store).unwrap();
    assert_eq!(Ticket::load(&store, &1).unwrap().unwrap(), ticket(1));
}

#[test]
fn the_thread_holding_a_lock_is_told_at_once_to_write_through_the_guard() {
    let store = engine::temporary().unwrap(); // the default 30 s lock wait
    ticket(1).save(&store).unwrap();
    let mut guard = Ticket::lock(&store, &1).unwrap();
    let started = Instant::now();
    let refused = Ticket::update(&store, &1, |t| t.edits += 1).unwrap_err();
    assert!(matches!(refused, Error::LockedByThisThread { .. }), "{refused}");
    assert!(refused.to_string().contains("through the guard"), "{refused}");
    assert!(matches!(ticket(1).save(&store), Err(Error::LockedByThisThread { .. })));
    assert!(started.elapsed() < Duration::from_secs(10), "refused without waiting for the lock");
    // Other records, and the guard itself, write as usual.
    ticket(2).save(&store).unwrap();
    guard.update(|t| t.edits += 1).unwrap();
    assert_eq!(Ticket::load(&store, &1).unwrap().unwrap().edits, 1);
}

#[test]
fn a_guard_refuses_a_record_with_another_key() {
    let store = engine::temporary().unwrap();
    ticket(1).save(&store).unwrap();
    let mut guard = Ticket::lock(&store, &1).unwrap();
    assert!(matches!(guard.set(ticket(2)), Err(Error::WrongKey { .. })));
    assert_eq!(guard.get(), Some(&ticket(1)), "the held record is unchanged");
    guard.get_mut().unwrap().id = 2;
    assert!(matches!(guard.save(), Err(Error::WrongKey { .. })));
    drop(guard);
    assert!(!Ticket::exists(&store, &2).unwrap(), "nothing was written under the other key");
}

#[test]
fn a_blocked_writer_proceeds_once_the_guard_drops() {
    let store = engine::temporary().unwrap();
    ticket(1).save(&store).unwrap();
    let mut guard = Ticket::lock(&store, &1).unwrap();
    let (started, wait_started) = mpsc::channel();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            started.send(()).unwrap();
            Ticket::update(&store, &1, |t| t.edits += 100).unwrap()
        })
    };
    wait_started.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    guard.update(|t| t.edits += 1).unwrap();
    drop(guard);
    let after = writer.join().unwrap();
    assert_eq!(after.edits, 101, "the writer ran after the guard's save, losing nothing");
}
