//! Group commit: concurrent durable writers share commits, and one
//! writer's failure or panic neither fails nor undoes the others.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skyshelve::{Error, Persistent, Store};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Member {
    #[persistent(key)]
    id: u64,
    #[persistent(index, unique)]
    email: String,
}

fn member(id: u64) -> Member {
    Member { id, email: format!("m{id}@x.org") }
}

fn grouped() -> Store {
    engine::options().group_commit(true).open_temporary().unwrap()
}

#[test]
fn concurrent_writers_all_land() {
    let store = grouped();
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..40 {
                    member(thread * 100 + i).insert(store).unwrap();
                }
            });
        }
    });
    assert_eq!(Member::count(&store).unwrap(), 320);
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn a_failing_writer_does_not_undo_the_others() {
    let store = grouped();
    member(0).insert(&store).unwrap();
    let outcomes: Vec<Result<(), Error>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (1..=8)
            .map(|thread| {
                let store = &store;
                scope.spawn(move || {
                    let mut last = Ok(());
                    for i in 0..20 {
                        let mut record = member(thread * 100 + i);
                        if thread == 4 && i == 10 {
                            record.email = member(0).email; // clashes with member 0
                        }
                        let result = record.insert(store);
                        if result.is_err() {
                            last = result;
                        }
                    }
                    last
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (thread, outcome) in (1..=8).zip(&outcomes) {
        if thread == 4 {
            assert!(matches!(outcome, Err(Error::UniqueViolation { .. })), "{outcome:?}");
        } else {
            assert!(outcome.is_ok(), "thread {thread}: {outcome:?}");
        }
    }
    assert_eq!(Member::count(&store).unwrap(), 1 + 8 * 20 - 1);
    assert!(!Member::exists(&store, &410).unwrap(), "the failed insert wrote nothing");
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn a_panicking_writer_panics_in_its_own_thread_only() {
    let store = grouped();
    std::thread::scope(|scope| {
        let panicking = scope.spawn(|| {
            store
                .write(|tx| {
                    tx.save(&member(999))?;
                    if tx.count::<Member>()? < u64::MAX {
                        panic!("a bug in a write closure");
                    }
                    Ok(())
                })
                .unwrap();
        });
        let writers: Vec<_> = (0..4)
            .map(|thread| {
                let store = &store;
                scope.spawn(move || (0..20).try_for_each(|i| member(thread * 100 + i).insert(store)))
            })
            .collect();
        assert!(panicking.join().is_err(), "the panic reaches its own thread");
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
    });
    assert!(!Member::exists(&store, &999).unwrap(), "the panicking closure's write was rolled back");
    assert_eq!(Member::count(&store).unwrap(), 80);
}

#[test]
fn grouped_writes_still_wait_for_record_locks() {
    let store = grouped();
    member(1).insert(&store).unwrap();
    let guard = Member::lock(&store, &1).unwrap();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| Member::update(&store, &1, |m| m.email = "new@x.org".into()));
        std::thread::sleep(Duration::from_millis(50));
        member(2).insert(&store).unwrap(); // other records carry on meanwhile
        drop(guard);
        writer.join().unwrap().unwrap();
    });
    assert_eq!(Member::load(&store, &1).unwrap().unwrap().email, "new@x.org");
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Photo {
    #[persistent(key)]
    id: u64,
    /// A `String` so that serde writes it as one slice (fast in debug builds).
    pixels: String,
}

#[test]
fn a_write_inside_a_read_never_fails_another_threads_write() {
    let store = engine::options()
        .group_commit(true)
        .map_size(1 << 20)
        .resize_wait(Duration::from_secs(5))
        .open_temporary()
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let inside_read = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut outcomes = (0, 0);
            for id in 0.. {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                match store.read(|_| member(id).save(&store)) {
                    Ok(()) => outcomes.0 += 1,
                    // The map must grow, which waits for this thread's own read: refused at once.
                    Err(Error::OwnTransactionOpen) => outcomes.1 += 1,
                    Err(other) => panic!("a write inside a read failed with {other}"),
                }
            }
            outcomes
        });
        for id in 0..60 {
            Photo { id, pixels: "p".repeat(64 << 10) }.save(&store).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert_eq!(Photo::count(&store).unwrap(), 60);
    assert_eq!(Member::count(&store).unwrap(), inside_read.0);
    if !engine::on_slatedb() {
        assert!(store.map_size() > 1 << 20, "the map grew while reads were open");
    }
}
