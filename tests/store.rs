//! Opening stores: sharing one environment per folder, temporary stores,
//! options, automatic map growth and its ceiling.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Error, Persistent, Store};

#[path = "common/engine.rs"]
mod engine;
#[path = "common/raw.rs"]
mod raw;

#[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
struct Blob {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    size: u32,
    bytes: Vec<u8>,
}

fn blob(id: u32, size: usize) -> Blob {
    Blob { id, size: u32::try_from(size).unwrap(), bytes: vec![u8::try_from(id % 251).unwrap(); size] }
}

#[test]
fn the_suite_runs_on_the_engine_it_was_asked_for() {
    let expected = if cfg!(feature = "slatedb") && engine::on_slatedb() { "SlateDB" } else { "LMDB" };
    assert_eq!(engine::temporary().unwrap().engine(), expected);
}

#[test]
fn store_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Store>();
}

#[test]
fn opening_a_folder_twice_shares_one_environment() {
    let dir = tempfile::tempdir().unwrap();
    let first = engine::open(dir.path()).unwrap();
    let second = engine::open(dir.path()).unwrap();
    let respelled = engine::open(dir.path().join(".").join("")).unwrap();
    assert!(first.same_environment(&second));
    assert!(first.same_environment(&respelled));
    blob(1, 1).save(&first).unwrap();
    assert!(Blob::exists(&second, &1).unwrap());
}

#[test]
fn a_symlink_to_the_folder_shares_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    let link = dir.path().join("link");
    let store = engine::open(&real).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let through_link = engine::open(&link).unwrap();
    assert!(store.same_environment(&through_link));
}

#[test]
fn a_folder_can_be_reopened_after_every_handle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = engine::open(dir.path()).unwrap();
    blob(1, 1).save(&store).unwrap();
    drop(store);
    let store = engine::options().durability(Durability::MayLoseLastCommits).open(dir.path()).unwrap();
    assert!(Blob::exists(&store, &1).unwrap());
}

#[test]
fn temporary_store_is_removed_when_the_last_clone_drops() {
    let store = engine::temporary().unwrap();
    let clone = store.clone();
    let path = store.path().to_owned();
    drop(store);
    assert!(path.exists(), "a clone still uses it");
    drop(clone);
    assert!(!path.exists());
}

#[test]
fn store_folders_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private");
    let _store = engine::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_path_that_is_a_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a store").unwrap();
    let err = engine::open(&file).unwrap_err();
    assert!(matches!(err, Error::Io(_)));
    let message = err.to_string();
    assert!(
        message.contains(&file.display().to_string()) && message.contains("is a file"),
        "names the path: {message}"
    );
}

#[test]
fn a_read_only_open_that_finds_no_store_names_the_path_and_why() {
    if engine::not_on_slatedb("a read-only open of a local folder's LMDB files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a store").unwrap();
    let empty_folder = dir.path().join("empty");
    std::fs::create_dir(&empty_folder).unwrap();
    let missing = dir.path().join("a/b/missing");
    for (path, why, kind) in [
        (&file, "it is a file, not a folder", std::io::ErrorKind::NotADirectory),
        (&missing, "No such file or directory", std::io::ErrorKind::NotFound),
        (&empty_folder, "holds no store: it has no data file", std::io::ErrorKind::NotFound),
    ] {
        let opened = Store::options().read_only().open(path);
        let Err(Error::Io(err)) = &opened else { panic!("{}: {opened:?}", path.display()) };
        let message = err.to_string();
        assert_eq!(err.kind(), kind, "{message}");
        assert!(message.contains(&format!("{path:?}")) && message.contains(why), "names the path and why: {message}");
    }
    assert!(!missing.exists(), "a read-only open creates nothing");
}

#[test]
fn another_programs_lmdb_environment_is_refused_and_left_as_it_was() {
    if engine::not_on_slatedb("another program's LMDB environment") {
        return;
    }
    // An environment with a table named like a model of this one (`Blob`,
    // in this file).
    let named = tempfile::tempdir().unwrap();
    {
        let (env, table) = raw::raw_table(named.path(), "blob");
        let mut wtxn = env.write_txn().unwrap();
        table.put(&mut wtxn, b"\0\0\0\x01", b"another program's bytes").unwrap();
        wtxn.commit().unwrap();
    }
    assert_refused_as_foreign(named.path(), |found| found == "\"blob\"");

    // One that keeps plain entries in LMDB's unnamed table, a key of them
    // not UTF-8: seven, of which the error shows five.
    let plain = tempfile::tempdir().unwrap();
    {
        let (env, table) = raw::raw_main_table(plain.path());
        let mut wtxn = env.write_txn().unwrap();
        for key in [&b"\x01\xff binary"[..], b"k1", b"k2", b"k3", b"k4", b"k5", b"k6"] {
            table.put(&mut wtxn, key, b"a plain value").unwrap();
        }
        wtxn.commit().unwrap();
    }
    assert_refused_as_foreign(plain.path(), |found| found.contains('\u{fffd}') && found.ends_with("and 2 more"));
}

/// Asserts that opening the environment in `dir` (read-only or not) is
/// `Error::NotAStore` with a list of what it found that passes `found`,
/// and that the folder's files and its data file are left as they were.
fn assert_refused_as_foreign(dir: &std::path::Path, found: impl Fn(&str) -> bool) {
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        names
    };
    let data = || std::fs::read(dir.join("data.mdb")).unwrap();
    let (files_before, data_before) = (files(), data());
    for read_only in [false, true] {
        let options = if read_only { Store::options().read_only() } else { Store::options() };
        let opened = options.open(dir);
        assert!(
            matches!(&opened, Err(Error::NotAStore { found: listed, .. }) if found(listed)),
            "read-only {read_only}: {:?}",
            opened.map(|_| ())
        );
    }
    assert_eq!(files(), files_before, "no file of skyshelve's was made in the folder");
    assert_eq!(data(), data_before, "the environment is as the other program left it");
}

#[test]
fn links_put_in_place_of_skyshelves_own_files_are_never_followed() {
    if engine::not_on_slatedb("LMDB's writer lock file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("store");
    std::fs::create_dir(&folder).unwrap();
    // Someone else's file, and a path where nothing is.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, vec![0xAB; 8192]).unwrap();
    let elsewhere = dir.path().join("created-elsewhere");
    std::os::unix::fs::symlink(&victim, folder.join("watch.shm")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, folder.join("writer.lock")).unwrap();

    // The open writes (the catalog), so it needs the writer lock.
    let refused = Store::open(&folder);
    assert!(
        matches!(&refused, Err(Error::Io(err)) if err.to_string().contains("writer.lock")),
        "the open names the file it cannot use: {:?}",
        refused.map(|_| ())
    );
    std::fs::remove_file(folder.join("writer.lock")).unwrap();
    let store = Store::open(&folder).unwrap();
    assert!(store.watch().is_err(), "no watches through a link");
    Blob { id: 1, size: 1, bytes: vec![1] }.save(&store).unwrap();
    assert_eq!(Blob::load(&store, &1).unwrap(), Some(Blob { id: 1, size: 1, bytes: vec![1] }));

    assert_eq!(std::fs::read(&victim).unwrap(), vec![0xAB; 8192], "the linked file is untouched");
    assert!(!elsewhere.exists(), "no file was made where the link pointed");
}

/// Asserts that `options` are refused at open, as invalid input whose
/// message `says` why.
fn assert_refused_at_open(options: skyshelve::StoreOptions, path: &std::path::Path, says: &str) {
    let opened = options.open(path);
    assert!(
        matches!(&opened, Err(Error::Io(err)) if err.kind() == std::io::ErrorKind::InvalidInput
            && err.to_string().contains(says)),
        "{says}: {:?}",
        opened.map(|_| ())
    );
}

#[test]
fn options_past_what_the_engine_can_honour_are_refused_at_open_and_the_longest_waits_work() {
    if engine::not_on_slatedb("LMDB's limits on tables, readers and the map") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let refused = |options, says| assert_refused_at_open(options, &dir.path().join("refused"), says);
    // Room for this many tables once corrupted the heap in LMDB (its
    // transaction set-up computes their size in a C int).
    refused(Store::options().max_tables(u32::MAX), "a store opens at most 32768");
    refused(Store::options().map_room(u32::MAX), "StoreOptions::map_room");
    refused(Store::options().max_readers(0), "max_readers must be at least 1");
    let enormous = Store::options().map_size(usize::MAX).open(dir.path().join("enormous"));
    assert!(matches!(enormous, Err(Error::Io(_))), "a map no address space holds: {:?}", enormous.map(|_| ()));

    // A wait too long to be a deadline once panicked at every write.
    let patient = Store::options()
        .lock_wait(std::time::Duration::MAX)
        .resize_wait(std::time::Duration::MAX)
        .max_tables(32_768)
        .open(dir.path().join("patient"))
        .unwrap();
    Blob { id: 1, size: 1, bytes: vec![1] }.save(&patient).unwrap();
    assert_eq!(Blob::count(&patient).unwrap(), 1);
}

#[test]
fn a_purge_interval_that_would_starve_writers_or_a_read_only_purger_is_refused_at_open() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let refused = |options, says| assert_refused_at_open(options, &dir.path().join("refused"), says);
    // Zero once ran a write transaction back to back for as long as the
    // store was open; on a read-only handle the option did nothing.
    refused(engine::options().purge_expired_every(Duration::ZERO), "at least 10 ms");
    refused(engine::options().purge_expired_every(Duration::from_millis(9)), "at least 10 ms");
    refused(engine::options().read_only().purge_expired_every(Duration::from_secs(1)), "read-only");
    assert!(!dir.path().join("refused").exists(), "nothing was made");
    let store = engine::options().purge_expired_every(Duration::from_millis(10)).open(dir.path().join("kept")).unwrap();
    Blob { id: 1, size: 1, bytes: vec![1] }.save(&store).unwrap();
}

#[test]
fn the_map_grows_by_itself() {
    if engine::not_on_slatedb("LMDB's memory map and its growth") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = engine::options().map_size(1 << 20).open(dir.path()).unwrap();
    let before = store.map_size();
    // 64 records of 64 KiB each: 4 MiB in a map of 1 MiB.
    for id in 0..64 {
        blob(id, 64 << 10).save(&store).unwrap();
    }
    store.write(|tx| (64..128).try_for_each(|id| tx.save(&blob(id, 32 << 10)))).unwrap();
    assert!(store.map_size() > before, "{} should exceed {before}", store.map_size());
    assert_eq!(Blob::count(&store).unwrap(), 128);
    assert_eq!(Blob::load(&store, &5).unwrap().unwrap(), blob(5, 64 << 10));
    assert_eq!(Blob::range_index(&store, Blob::SIZE, ..).unwrap().len(), 128);
}

#[test]
fn growth_stops_at_the_ceiling_with_a_typed_error_and_keeps_earlier_data() {
    if engine::not_on_slatedb("LMDB's memory map and its growth") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = engine::options().map_size(1 << 20).max_map_size(2 << 20).open(dir.path()).unwrap();
    let mut saved = 0;
    let err = loop {
        match blob(saved, 128 << 10).save(&store) {
            Ok(()) => saved += 1,
            Err(err) => break err,
        }
        assert!(saved < 1000, "the ceiling was never reached");
    };
    assert!(matches!(err, Error::StorageFull { .. }), "{err}");
    assert!(saved > 0);
    assert_eq!(Blob::count(&store).unwrap(), u64::from(saved));
    assert_eq!(Blob::load(&store, &0).unwrap().unwrap(), blob(0, 128 << 10));
    // Smaller writes that fit still succeed.
    Blob::delete(&store, &0).unwrap();
    blob(0, 1).save(&store).unwrap();
}

#[test]
fn threads_updating_one_record_lose_nothing() {
    #[derive(Persistent, Serialize, Deserialize)]
    struct Counter {
        #[persistent(key)]
        name: String,
        #[persistent(index)]
        value: u64,
    }
    let store = Arc::new(engine::temporary().unwrap());
    Counter { name: "hits".into(), value: 0 }.save(&store).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for _ in 0..100 {
                    Counter::update(&store, "hits", |c| c.value += 1).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(Counter::load(&store, "hits").unwrap().unwrap().value, 400);
    assert_eq!(Counter::range_index(&store, Counter::VALUE, ..).unwrap().len(), 1);
}

#[test]
fn the_map_grows_while_other_threads_hold_read_transactions() {
    if engine::not_on_slatedb("LMDB's memory map and its growth") {
        return;
    }
    let store = engine::options().map_size(1 << 20).open_temporary().unwrap();
    blob(0, 10).save(&store).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, stop) = (store.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store
                        .read(|tx| {
                            for blob in tx.iter::<Blob>()? {
                                assert_eq!(blob?.bytes.len() % 10, 0);
                            }
                            Ok(())
                        })
                        .unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for id in 1..40 {
        blob(id, 100 << 10).save(&store).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert!(store.map_size() > 1 << 20);
    assert_eq!(Blob::count(&store).unwrap(), 40);
}

#[test]
fn a_reader_that_outlasts_the_resize_wait_gives_a_typed_error_then_growth_succeeds() {
    if engine::not_on_slatedb("LMDB's memory map and its growth") {
        return;
    }
    let store = engine::options()
        .map_size(1 << 20)
        .resize_wait(std::time::Duration::from_millis(100))
        .open_temporary()
        .unwrap();
    let (holding, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.read(|tx| {
                holding.send(()).unwrap();
                released.recv().unwrap();
                tx.count::<Blob>()
            })
        })
    };
    held.recv().unwrap();
    let err = store.write(|tx| (0..40).try_for_each(|id| tx.save(&blob(id, 100 << 10)))).unwrap_err();
    assert!(matches!(err, Error::ResizeTimeout { .. }), "{err}");
    release.send(()).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), 0);
    store.write(|tx| (0..40).try_for_each(|id| tx.save(&blob(id, 100 << 10)))).unwrap();
    assert_eq!(Blob::count(&store).unwrap(), 40);
}

#[test]
fn backups_run_while_another_thread_grows_the_map() {
    if engine::not_on_slatedb("LMDB's memory map and its growth") {
        return;
    }
    let store = engine::options().map_size(1 << 20).open_temporary().unwrap();
    store.write(|tx| (0..20).try_for_each(|id| tx.save(&blob(id, 40 << 10)))).unwrap();
    let work = tempfile::tempdir().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let backups = std::thread::scope(|scope| {
        let backups = scope.spawn(|| {
            let mut taken = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let dir = work.path().join(format!("b{taken}"));
                store.backup(&dir).unwrap();
                taken += 1;
            }
            taken
        });
        for id in 20..120 {
            blob(id, 256 << 10).save(&store).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        backups.join().unwrap()
    });
    assert!(store.map_size() > 16 << 20, "the map grew several times");
    assert!(backups > 0);
    let last = engine::open(work.path().join(format!("b{}", backups - 1))).unwrap();
    assert!(last.verify().unwrap().is_clean());
    assert!(Blob::count(&last).unwrap() >= 20);
}

#[test]
fn map_size_and_stats_are_safe_while_the_map_grows() {
    if engine::not_on_slatedb("LMDB's memory map and its growth") {
        return;
    }
    for _ in 0..5 {
        let store = engine::options().map_size(64 << 10).open_temporary().unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                let mut looks = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let stats = store.stats().unwrap();
                    assert!(store.map_size() >= 64 << 10 && stats.used_bytes <= stats.map_size as u64);
                    looks += 1;
                }
                looks
            });
            for id in 0..60 {
                blob(id, 64 << 10).save(&store).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(watcher.join().unwrap() > 0);
        });
        assert!(store.map_size() > 4 << 20);
    }
}

#[test]
fn opening_never_fails_because_another_thread_just_dropped_its_handle() {
    if engine::not_on_slatedb("every open starts a runtime and reads the manifest: 80,000 opens take minutes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    engine::open(dir.path()).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20_000 {
                    let store = engine::open(dir.path()).unwrap();
                    drop(store);
                }
            });
        }
    });
}

/// The notification file is not the store's data: truncated under a
/// running writer that never watches (and under one that does), the next
/// commits go on instead of dying of SIGBUS on the mapped page.
#[test]
fn truncating_the_watch_file_crashes_no_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = engine::open(dir.path()).unwrap();
    blob(1, 8).save(&store).unwrap();
    let watch_file = dir.path().join("watch.shm");
    let truncate = || {
        std::fs::OpenOptions::new().write(true).open(&watch_file).unwrap().set_len(0).unwrap();
        // The store learns of it from a thread woken by inotify, within
        // microseconds; the test leaves it far more on a loaded machine.
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    truncate();
    blob(2, 8).save(&store).unwrap();
    let mut watch = store.watch().unwrap();
    truncate();
    blob(3, 8).save(&store).unwrap();
    let _ = watch.wait_timeout(std::time::Duration::from_millis(10));
    assert_eq!(Blob::count(&store).unwrap(), 3);
}

/// A read-only handle refuses every write even when the process already
/// has the folder open to write, and the writable handle keeps writing.
#[test]
fn a_read_only_handle_refuses_writes_beside_a_writable_one() {
    let dir = tempfile::tempdir().unwrap();
    let writer = engine::open(dir.path()).unwrap();
    blob(1, 4).save(&writer).unwrap();
    writer.map::<u32, u32>("counts").unwrap().insert(&1, &1).unwrap();
    let reader = engine::options().read_only().open(dir.path()).unwrap();
    assert!(reader.same_environment(&writer));
    assert_eq!(Blob::load(&reader, &1).unwrap(), Some(blob(1, 4)), "it reads");
    assert!(matches!(blob(2, 4).save(&reader), Err(Error::ReadOnly)));
    assert!(matches!(reader.write(|tx| tx.next_sequence("s")), Err(Error::ReadOnly)));
    assert!(matches!(Blob::lock(&reader, &1), Err(Error::ReadOnly)));
    let counts = reader.map::<u32, u32>("counts").unwrap();
    assert_eq!(counts.get(&1).unwrap(), Some(1));
    assert!(matches!(counts.insert(&2, &2), Err(Error::ReadOnly)));
    assert!(matches!(reader.map::<u32, u32>("never_made"), Err(Error::ReadOnly)), "a read-only handle makes no map");
    blob(3, 4).save(&writer).unwrap();
    assert_eq!(Blob::count(&reader).unwrap(), 2, "only the writable handle wrote");
}

/// An open whose options the environment already open in this process
/// cannot honour fails, naming the option, instead of ignoring them.
#[test]
fn an_open_that_cannot_be_honoured_next_to_the_open_environment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reader_first = {
        drop(engine::open(dir.path()).unwrap());
        engine::options().read_only().open(dir.path()).unwrap()
    };
    let writable = engine::open(dir.path());
    assert!(matches!(writable, Err(Error::OptionConflict { option: "read_only", .. })), "{writable:?}");
    drop(reader_first);

    let store =
        engine::options().durability(Durability::MayLoseLastCommits).map_size(32 << 20).open(dir.path()).unwrap();
    let full = engine::open(dir.path());
    assert!(matches!(&full, Err(Error::OptionConflict { option: "durability", .. })), "{full:?}");
    let message = full.unwrap_err().to_string();
    assert!(message.contains("durability") && message.contains("MayLoseLastCommits"), "{message}");
    let same = engine::options().durability(Durability::MayLoseLastCommits);
    assert!(same.clone().open(dir.path()).unwrap().same_environment(&store), "unset options take the environment's");
    let bigger = same.clone().map_size(64 << 20).open(dir.path());
    assert!(matches!(bigger, Err(Error::OptionConflict { option: "map_size", .. })));
    assert!(same.clone().map_size(32 << 20).open(dir.path()).is_ok(), "the same value is honoured");
    let lock_wait = same.lock_wait(std::time::Duration::from_secs(1)).open(dir.path());
    assert!(matches!(lock_wait, Err(Error::OptionConflict { option: "lock_wait", .. })));
}
