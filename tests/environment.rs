//! Faults of the environment: a full disk, a read-only folder, a folder
//! without permission, a path that is a file, and file permissions under
//! any umask. Each gives a typed error, writes nothing half-way, and the
//! store works again once the cause is gone.
//!
//! The disk tests mount small tmpfs filesystems and need root; elsewhere
//! they print why they are skipped.

use std::path::Path;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Error, Persistent, Store};

#[path = "common/children.rs"]
mod children;
#[path = "common/engine.rs"]
mod engine;
#[path = "common/tmpfs.rs"]
mod tmpfs;
use tmpfs::{Tmpfs, is_root};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Page {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    size: u32,
    text: String,
}

fn page(id: u32) -> Page {
    Page { id, size: 4096, text: "p".repeat(4096) }
}

fn is_disk_full(err: &Error) -> bool {
    match err {
        Error::StorageFull { .. } => true,
        Error::Io(io) => io.raw_os_error() == Some(libc::ENOSPC),
        _ => false,
    }
}

#[test]
fn a_full_disk_is_a_typed_error_and_the_store_recovers_when_room_returns() {
    if engine::not_on_slatedb("LMDB's files on a full or read-only disk") {
        return;
    }
    let Some(fs) = Tmpfs::mount("size=4m") else { return };
    let store_path = fs.path().join("store");
    let mut saved = 0;
    let err = {
        let store = engine::options().map_size(256 << 10).open(&store_path).unwrap();
        loop {
            match page(saved).save(&store) {
                Ok(()) => saved += 1,
                Err(err) => break err,
            }
            assert!(saved < 10_000, "a 4 MiB disk never filled");
        }
    };
    assert!(is_disk_full(&err), "unexpected error {err}");
    assert!(saved > 100, "only {saved} pages fitted");

    // Everything acknowledged before is intact, and the store is consistent.
    let store = engine::open(&store_path).unwrap();
    assert_eq!(Page::count(&store).unwrap(), u64::from(saved));
    assert_eq!(Page::load(&store, &0).unwrap().unwrap(), page(0));
    assert!(store.verify().unwrap().is_clean());

    // Room returns: writes succeed again.
    fs.remount("size=64m");
    for id in saved..saved + 200 {
        page(id).save(&store).unwrap();
    }
    assert_eq!(Page::count(&store).unwrap(), u64::from(saved + 200));
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn a_read_only_folder_is_a_typed_error_until_it_is_writable_again() {
    if engine::objects_elsewhere() {
        eprintln!("not with objects in an object store: the folder made read-only does not hold them");
        return;
    }
    let Some(fs) = Tmpfs::mount("size=16m") else { return };
    let store_path = fs.path().join("store");
    {
        let store = engine::open(&store_path).unwrap();
        page(1).save(&store).unwrap();
    }
    fs.remount("ro");
    let err = engine::open(&store_path).unwrap_err();
    assert!(matches!(&err, Error::Io(_) | Error::Storage(_)), "unexpected error {err}");
    fs.remount("rw");
    let store = engine::open(&store_path).unwrap();
    assert_eq!(Page::load(&store, &1).unwrap().unwrap(), page(1));
    page(2).save(&store).unwrap();
}

#[test]
fn a_folder_without_permission_is_an_io_error() {
    if is_root() {
        println!("skipped: root ignores folder permissions");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    assert!(matches!(engine::open(locked.join("store")), Err(Error::Io(_))));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    engine::open(locked.join("store")).unwrap();
}

#[test]
fn a_path_inside_a_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(engine::open(file.join("store")), Err(Error::Io(_))));
}

#[test]
fn files_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask has no preconditions; the old mask is restored below.
    let old = unsafe { libc::umask(0) };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = engine::open(&path).unwrap();
    drop(Page::lock(&store, &1).unwrap()); // creates the record-lock files
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    if engine::on_slatedb() {
        // SlateDB's own files follow the umask, inside a folder only the
        // owner can open (when they are kept in the store's folder at all).
        if !engine::objects_elsewhere() {
            assert_eq!(mode(&path.join("objects")), 0o700);
        }
    } else {
        assert_eq!(mode(&path.join("data.mdb")), 0o600);
        assert_eq!(mode(&path.join("lock.mdb")), 0o600);
    }
    assert_eq!(mode(&path.join("locks")), 0o700);
    for owner_file in std::fs::read_dir(path.join("locks")).unwrap() {
        assert_eq!(mode(&owner_file.unwrap().path()), 0o600);
    }
}

/// Saves pages until a save fails; returns how many succeeded and the error.
fn fill(store: &Store) -> (u32, Error) {
    let mut saved = 0;
    loop {
        match page(saved).save(store) {
            Ok(()) => saved += 1,
            Err(err) => return (saved, err),
        }
        assert!(saved < 100_000, "the disk never filled");
    }
}

#[test]
fn a_full_disk_with_default_options_is_storage_full() {
    if engine::not_on_slatedb("LMDB's files on a full or read-only disk") {
        return;
    }
    let Some(fs) = Tmpfs::mount("size=8m") else { return };
    let store = engine::open(fs.path().join("store")).unwrap();
    let (saved, err) = fill(&store);
    assert!(matches!(err, Error::StorageFull { .. }), "a full disk gave {err:?}");
    assert!(err.to_string().contains("disk"), "{err}");
    assert!(saved > 100);
    drop(store);
    let store = engine::open(fs.path().join("store")).unwrap();
    assert_eq!(Page::count(&store).unwrap(), u64::from(saved));
}

#[test]
fn a_restore_onto_a_full_disk_leaves_no_store_and_can_be_run_again() {
    if engine::not_on_slatedb("backup and restore copy LMDB's files (SlateDB keeps its copies in object storage)") {
        return;
    }
    let Some(fs) = Tmpfs::mount("size=4m") else { return };
    let work = tempfile::tempdir().unwrap();
    let store = engine::open(work.path().join("store")).unwrap();
    store.write(|tx| (0..1500).try_for_each(|id| tx.save(&page(id)))).unwrap();
    store.backup(work.path().join("backup")).unwrap();
    let target = fs.path().join("restored");
    let err = Store::restore(work.path().join("backup"), &target).unwrap_err();
    assert!(matches!(&err, Error::Io(io) if io.raw_os_error() == Some(libc::ENOSPC)), "{err:?}");
    assert!(std::fs::read_dir(&target).unwrap().next().is_none(), "nothing is left in the target");
    fs.remount("size=64m");
    Store::restore(work.path().join("backup"), &target).unwrap();
    assert_eq!(Page::count(&engine::open(&target).unwrap()).unwrap(), 1500);
}

/// The child of the removed-folder test: a running writer that keeps its
/// store open while the parent removes (or replaces) the folder, then
/// tries to write and to watch.
fn writer_whose_folder_goes() {
    // A writer that has written for a while watches its folder through
    // inotify; one just started looks its data file up by path at each
    // write, and one whose folder has not changed for a few clock ticks
    // asks the folder for its change time (see the engine's folder.rs):
    // all must refuse.
    let role = children::role();
    let warmed = role.as_deref() == Some("warmed writer");
    let durability = if warmed { Durability::MayCorruptOnPowerLoss } else { Durability::Full };
    let store = engine::options().durability(durability).open(children::env_path()).unwrap();
    let writes = if warmed { 20_000 } else { 3 };
    for written in 0..writes {
        if written == 1 && role.as_deref() == Some("settled writer") {
            // The first write made the writer lock's file in the folder.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        page(1).save(&store).unwrap();
    }
    children::say("saved");
    children::wait_for_parent();
    let outcome = |result: skyshelve::Result<()>| match result {
        Err(Error::StoreRemoved { reason, .. }) => format!("refused: {reason}"),
        other => format!("{other:?}"),
    };
    children::say(&format!("save {}", outcome(page(2).save(&store))));
    children::say(&format!("watch {}", outcome(store.watch().map(drop))));
}

/// A store folder removed (or moved away and made anew) under a running
/// process: its next write and its next watch fail with a typed error
/// instead of being acknowledged into a file no later open sees.
#[test]
fn a_folder_removed_or_replaced_under_a_running_writer_refuses_its_writes() {
    if children::role().is_some() {
        return writer_whose_folder_goes();
    }
    if engine::not_on_slatedb("SlateDB keeps the store's data in its object store, not in the folder's files") {
        return;
    }
    let roles = ["writer", "settled writer", "warmed writer"];
    for (replaced, role) in roles.into_iter().flat_map(|role| [(false, role), (true, role)]) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("store");
        let test = "a_folder_removed_or_replaced_under_a_running_writer_refuses_its_writes";
        let mut child = children::spawn_child(test, role, &dir, 0, 1);
        children::wait_for_line(&mut child, "saved");
        if replaced {
            std::fs::rename(&dir, root.path().join("moved")).unwrap();
            drop(engine::open(&dir).unwrap()); // another process would make a new store there
        } else {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        // A warmed writer learns of it from a thread woken by inotify,
        // within microseconds; the test leaves it far more on a loaded machine.
        std::thread::sleep(std::time::Duration::from_millis(100));
        children::tell_child(&mut child);
        let lines = children::finish(child);
        let expected = if replaced { "its path now holds another data file" } else { "its data file was deleted" };
        assert_eq!(
            lines,
            [format!("save refused: {expected}"), format!("watch refused: {expected}")],
            "replaced: {replaced}, {role}"
        );
    }
}
