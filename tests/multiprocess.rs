//! Many OS processes on one store. Every test re-executes this test binary:
//! the child runs the same test function, which sees its role in the
//! environment and does the child's part instead of the parent's.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Error, Persistent, Store};

#[path = "common/children.rs"]
mod children;
use children::{COUNT, INDEX, env_number, env_path, finish, role, say, spawn_child, wait_for_line};

#[path = "common/engine.rs"]
mod engine;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Counter {
    #[persistent(key)]
    name: String,
    #[persistent(index)]
    value: u64,
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Member {
    #[persistent(key)]
    id: u32,
    #[persistent(index, unique)]
    email: String,
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Chunk {
    #[persistent(key)]
    id: (u32, u32),
    #[persistent(index)]
    writer: u32,
    /// A `String` rather than `Vec<u8>`: serde writes it as one slice,
    /// where a `Vec<u8>` goes byte by byte (slow in debug builds).
    text: String,
}

fn relaxed(path: &Path) -> Store {
    engine::options().durability(Durability::MayCorruptOnPowerLoss).open(path).unwrap()
}

fn count_by_processes(test: &str, processes: u32, increments: u32) {
    if role().is_some() {
        let store = relaxed(&env_path());
        for _ in 0..env_number(COUNT) {
            Counter::upsert(&store, || Counter { name: "hits".into(), value: 0 }, |c| c.value += 1).unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..processes).map(|i| spawn_child(test, "counter", dir.path(), i, increments)).collect();
    children.into_iter().for_each(|child| drop(finish(child)));
    let store = engine::open(dir.path()).unwrap();
    let expected = u64::from(processes * increments);
    assert_eq!(Counter::load(&store, "hits").unwrap().unwrap().value, expected);
    let entries = Counter::range_index(&store, Counter::VALUE, ..).unwrap();
    assert_eq!(entries.len(), 1, "the index holds one entry, for the final value");
    assert_eq!(Counter::scan_index(&store, Counter::VALUE, &expected).unwrap().len(), 1);
}

#[test]
fn eight_processes_times_500_increments_end_at_exactly_4000() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    count_by_processes("eight_processes_times_500_increments_end_at_exactly_4000", 8, 500);
}

#[test]
#[ignore = "soak test: cargo test --test multiprocess -- --ignored"]
fn soak_sixteen_processes_times_5000_increments() {
    count_by_processes("soak_sixteen_processes_times_5000_increments", 16, 5000);
}

#[test]
fn unique_insert_race_among_eight_processes_has_one_winner() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "unique_insert_race_among_eight_processes_has_one_winner";
    if role().is_some() {
        let store = engine::open(env_path()).unwrap();
        let go = env_path().join("go");
        while !go.exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let me = Member { id: env_number(INDEX), email: "race@example.com".into() };
        match me.insert(&store) {
            Ok(()) => say("won"),
            Err(Error::UniqueViolation { index: "email", .. }) => say("lost"),
            Err(other) => panic!("unexpected error {other}"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    drop(engine::open(dir.path()).unwrap()); // create the environment before the race
    let children: Vec<_> = (0..8).map(|i| spawn_child(TEST, "racer", dir.path(), i, 0)).collect();
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let outcomes: Vec<String> = children.into_iter().flat_map(finish).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "won").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "lost").count(), 7, "{outcomes:?}");
    let store = engine::open(dir.path()).unwrap();
    assert_eq!(Member::count(&store).unwrap(), 1);
    assert_eq!(Member::range_index(&store, Member::EMAIL, ..).unwrap().len(), 1);
}

#[test]
fn lock_guards_in_two_processes_lose_no_update() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "lock_guards_in_two_processes_lose_no_update";
    const ROUNDS: u32 = 100;
    if role().is_some() {
        let store = relaxed(&env_path());
        for _ in 0..ROUNDS {
            let mut guard = Counter::lock(&store, "shared").unwrap();
            let seen = guard.get().map_or(0, |c| c.value);
            // A longer piece of work between the read and the write.
            std::thread::sleep(Duration::from_micros(200));
            guard.set(Counter { name: "shared".into(), value: seen + 1 }).unwrap();
            guard.save().unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..2).map(|i| spawn_child(TEST, "locker", dir.path(), i, 0)).collect();
    // Writers of other records carry on meanwhile.
    let store = relaxed(dir.path());
    for _ in 0..50 {
        Counter::upsert(&store, || Counter { name: "other".into(), value: 0 }, |c| c.value += 1).unwrap();
    }
    children.into_iter().for_each(|child| drop(finish(child)));
    assert_eq!(Counter::load(&store, "shared").unwrap().unwrap().value, u64::from(2 * ROUNDS));
    assert_eq!(Counter::load(&store, "other").unwrap().unwrap().value, 50);
}

#[test]
fn a_lock_dies_with_its_process() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "a_lock_dies_with_its_process";
    if role().is_some() {
        let store = engine::open(env_path()).unwrap();
        let _guard = Counter::lock(&store, "held").unwrap();
        say("locked");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut holder = spawn_child(TEST, "holder", dir.path(), 0, 0);
    wait_for_line(&mut holder, "locked");
    let store = engine::open(dir.path()).unwrap();
    assert!(matches!(Counter::try_lock(&store, "held"), Err(Error::Locked { .. })));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let guard = Counter::lock_timeout(&store, "held", Duration::from_secs(5)).expect("the dead holder's lock is gone");
    drop(guard);
    Counter { name: "held".into(), value: 1 }.save(&store).unwrap();
}

#[test]
fn map_grows_from_1_mib_to_1_gib_under_four_writers_and_a_reader() {
    if engine::not_on_slatedb("LMDB's memory map and its growth") {
        return;
    }
    const TEST: &str = "map_grows_from_1_mib_to_1_gib_under_four_writers_and_a_reader";
    const WRITERS: u32 = 4;
    const CHUNKS: u32 = 136; // of 1 MiB each: 544 MiB in all, past half a GiB
    let chunk = |writer: u32, n: u32| {
        let letter = char::from(b'a' + u8::try_from((writer * 7 + n) % 26).unwrap());
        Chunk { id: (writer, n), writer, text: letter.to_string().repeat(1 << 20) }
    };
    let verify_all = |store: &Store| {
        for writer in 0..WRITERS {
            for n in 0..CHUNKS {
                assert_eq!(Chunk::load(store, &(writer, n)).unwrap().unwrap(), chunk(writer, n));
            }
        }
    };
    let wait_for_all = |store: &Store| {
        while Chunk::count(store).unwrap() < u64::from(WRITERS * CHUNKS) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    match role().as_deref() {
        Some("writer") => {
            let store = engine::options()
                .map_size(1 << 20)
                .durability(Durability::MayCorruptOnPowerLoss)
                .open(env_path())
                .unwrap();
            let writer = env_number(INDEX);
            for n in 0..CHUNKS {
                chunk(writer, n).save(&store).unwrap();
            }
            wait_for_all(&store);
            verify_all(&store);
            return;
        }
        Some("reader") => {
            let store = engine::options().map_size(1 << 20).open(env_path()).unwrap();
            while Chunk::count(&store).unwrap() < u64::from(WRITERS * CHUNKS) {
                let mine = Chunk::scan_index(&store, Chunk::WRITER, &0).unwrap();
                assert!(mine.iter().all(|c| c.writer == 0));
            }
            verify_all(&store);
            say(&store.map_size().to_string());
            return;
        }
        _ => {}
    }
    let dir = tempfile::tempdir().unwrap();
    drop(engine::options().map_size(1 << 20).open(dir.path()).unwrap());
    let mut children: Vec<_> = (0..WRITERS).map(|i| spawn_child(TEST, "writer", dir.path(), i, 0)).collect();
    children.push(spawn_child(TEST, "reader", dir.path(), 0, 0));
    let reports: Vec<String> = children.into_iter().flat_map(finish).collect();
    let reader_map: usize = reports[0].parse().unwrap();
    assert!(reader_map >= 1 << 30, "the reader adopted a map of {reader_map} bytes");
    let store = engine::open(dir.path()).unwrap();
    assert!(store.map_size() >= 1 << 30, "map is {} bytes", store.map_size());
    verify_all(&store);
}

#[test]
fn killed_readers_leave_no_reader_slots_taken() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "killed_readers_leave_no_reader_slots_taken";
    const READERS: u32 = 130;
    const SLOTS: u32 = 140;
    match role().as_deref() {
        Some("reader") => {
            let store = engine::options().max_readers(SLOTS).open(env_path()).unwrap();
            store
                .read(|tx| {
                    say("reading");
                    let _ = tx.count::<Counter>();
                    std::thread::sleep(Duration::from_secs(60));
                    Ok(())
                })
                .unwrap();
            return;
        }
        Some("after") => {
            // Only 10 slots are left unless the 130 stale ones were reclaimed.
            let store = engine::options().max_readers(SLOTS).open(env_path()).unwrap();
            let threads: Vec<_> = (0..40)
                .map(|_| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        store.read(|tx| {
                            std::thread::sleep(Duration::from_millis(100));
                            tx.count::<Counter>()
                        })
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap().unwrap();
            }
            Counter { name: "after".into(), value: 1 }.save(&store).unwrap();
            return;
        }
        _ => {}
    }
    let dir = tempfile::tempdir().unwrap();
    drop(engine::options().max_readers(SLOTS).open(dir.path()).unwrap());
    let mut readers: Vec<_> = (0..READERS).map(|i| spawn_child(TEST, "reader", dir.path(), i, 0)).collect();
    for reader in &mut readers {
        wait_for_line(reader, "reading");
    }
    for reader in &mut readers {
        reader.kill().unwrap();
        reader.wait().unwrap();
    }
    let start = Instant::now();
    finish(spawn_child(TEST, "after", dir.path(), 0, 0));
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(Counter::exists(&engine::open(dir.path()).unwrap(), "after").unwrap());
}

#[test]
fn a_writer_killed_inside_its_transaction_does_not_block_the_next() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "a_writer_killed_inside_its_transaction_does_not_block_the_next";
    match role().as_deref() {
        Some("stuck") => {
            let store = engine::open(env_path()).unwrap();
            store
                .write(|tx| {
                    tx.save(&Counter { name: "uncommitted".into(), value: 1 })?;
                    say("in-transaction");
                    std::thread::sleep(Duration::from_secs(60));
                    Ok(())
                })
                .unwrap();
            return;
        }
        Some("next") => {
            let store = engine::open(env_path()).unwrap();
            say("waiting");
            Counter { name: "next".into(), value: 2 }.save(&store).unwrap();
            return;
        }
        _ => {}
    }
    let dir = tempfile::tempdir().unwrap();
    drop(engine::open(dir.path()).unwrap());
    let mut stuck = spawn_child(TEST, "stuck", dir.path(), 0, 0);
    wait_for_line(&mut stuck, "in-transaction");
    let mut next = spawn_child(TEST, "next", dir.path(), 0, 0);
    wait_for_line(&mut next, "waiting");
    std::thread::sleep(Duration::from_millis(200));
    assert!(next.try_wait().unwrap().is_none(), "the next writer waits for the write lock");
    stuck.kill().unwrap();
    stuck.wait().unwrap();
    let start = Instant::now();
    while next.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(5), "the next writer is still blocked");
        std::thread::sleep(Duration::from_millis(10));
    }
    finish(next);
    let store = engine::open(dir.path()).unwrap();
    assert!(Counter::exists(&store, "next").unwrap());
    assert!(!Counter::exists(&store, "uncommitted").unwrap(), "the killed transaction left nothing");
}

#[test]
fn a_store_used_after_fork_is_refused() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    let store = engine::temporary().unwrap();
    Counter { name: "before".into(), value: 1 }.save(&store).unwrap();
    // SAFETY: the child only calls skyshelve (which checks the process id
    // before touching LMDB) and then `_exit`s without unwinding.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let refused = matches!(Counter::load(&store, "before"), Err(Error::ForkedProcess { .. }))
            && matches!(Counter { name: "x".into(), value: 0 }.save(&store), Err(Error::ForkedProcess { .. }));
        unsafe { libc::_exit(if refused { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child was not refused");
    assert!(Counter::exists(&store, "before").unwrap(), "the parent's handle still works");
}

/// The owner files in a store's `locks` folder.
fn owner_files(store: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(store.join("locks")) else { return Vec::new() };
    entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn lock_owner_files_go_with_their_last_guard_or_their_dead_process() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "lock_owner_files_go_with_their_last_guard_or_their_dead_process";
    if let Some(role) = role() {
        let store = engine::open(env_path()).unwrap();
        let guard = Counter::lock(&store, &format!("c{}", env_number(INDEX))).unwrap();
        say("locked");
        if role == "holder" {
            std::thread::sleep(Duration::from_secs(60)); // until killed
        }
        drop(guard);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..20).map(|i| spawn_child(TEST, "releaser", dir.path(), i, 0)).collect();
    children.into_iter().for_each(|child| drop(finish(child)));
    assert_eq!(owner_files(dir.path()), Vec::<String>::new(), "released locks leave no owner file");

    let mut holder = spawn_child(TEST, "holder", dir.path(), 99, 0);
    wait_for_line(&mut holder, "locked");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(owner_files(dir.path()).len(), 1, "the killed holder's file is still there");
    let store = engine::open(dir.path()).unwrap();
    let guard = Counter::lock(&store, "mine").unwrap();
    assert_eq!(owner_files(dir.path()).len(), 1, "the dead holder's file was swept; this process has its own");
    drop(guard);
    assert_eq!(owner_files(dir.path()), Vec::<String>::new());
}

#[test]
fn map_upserts_from_four_processes_lose_nothing() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "map_upserts_from_four_processes_lose_nothing";
    if role().is_some() {
        let store = relaxed(&env_path());
        let hits = store.map::<String, u64>("hits").unwrap();
        let claims = store.map::<u32, u32>("claims").unwrap();
        for _ in 0..env_number(COUNT) {
            hits.upsert(&"home".to_string(), || 0, |n| *n += 1).unwrap();
        }
        // Every process tries to claim the same ten jobs; each job gets one owner.
        for job in 0..10 {
            if claims.insert_if_absent(&job, &env_number(INDEX)).unwrap() {
                say(&format!("claimed {job}"));
            }
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..4).map(|i| spawn_child(TEST, "counter", dir.path(), i, 200)).collect();
    let claimed: Vec<String> = children.into_iter().flat_map(finish).collect();
    let store = engine::open(dir.path()).unwrap();
    assert_eq!(store.map::<String, u64>("hits").unwrap().get("home").unwrap(), Some(800));
    assert_eq!(claimed.len(), 10, "each job claimed exactly once: {claimed:?}");
    assert_eq!(store.map::<u32, u32>("claims").unwrap().len().unwrap(), 10);
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Team {
    #[persistent(key)]
    name: String,
}

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Player {
    #[persistent(key)]
    id: u32,
    #[persistent(parent = Team, must_exist, on_delete = cascade)]
    team: String,
}

#[test]
fn a_child_saved_while_another_process_deletes_its_parent_never_dangles() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    const TEST: &str = "a_child_saved_while_another_process_deletes_its_parent_never_dangles";
    if let Some(role) = role() {
        let store = relaxed(&env_path());
        if role == "deleter" {
            wait_for_file(&env_path().join("go"));
            std::thread::sleep(Duration::from_millis(u64::from(env_number(INDEX))));
            assert!(Team::delete(&store, "red").unwrap());
            say("deleted");
            return;
        }
        wait_for_file(&env_path().join("go"));
        for id in 0.. {
            match (Player { id, team: "red".into() }).save(&store) {
                Ok(()) => {}
                Err(Error::ParentMissing { .. }) => return say(&format!("refused after {id}")),
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        return;
    }
    for delay in [0u32, 5, 20] {
        let dir = tempfile::tempdir().unwrap();
        Team { name: "red".into() }.save(&relaxed(dir.path())).unwrap();
        let saver = spawn_child(TEST, "saver", dir.path(), delay, 0);
        let deleter = spawn_child(TEST, "deleter", dir.path(), delay, 0);
        std::fs::write(dir.path().join("go"), b"").unwrap();
        assert_eq!(finish(deleter), ["deleted"]);
        let said = finish(saver);
        assert!(said.iter().any(|l| l.starts_with("refused after ")), "{said:?}");
        let store = engine::open(dir.path()).unwrap();
        assert_eq!(Player::count(&store).unwrap(), 0, "saved before the delete: cascaded; after: refused");
        assert!(store.verify().unwrap().is_clean());
    }
}

fn wait_for_file(path: &Path) {
    while !path.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
}
