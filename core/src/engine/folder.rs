//! Whether the store's folder is still where this process opened it. LMDB
//! goes on writing into a data file that was deleted (or moved away) and
//! acknowledges every commit, which no later open then sees; a process
//! started meanwhile makes a new empty store at the path.
//!
//! Looking the data file up by its path at every write transaction costs a
//! `statx` through every folder of the path: about 0.6 µs in a loop of
//! small unsynced writes, 18% of each (measured against the same loop
//! without the check). Two cheaper ways tell that nothing changed:
//!
//! - **The folder's change time.** Deleting, moving away or replacing the
//!   data file changes its folder, and moving or deleting the folder
//!   changes the folder itself; either sets the folder's change time
//!   (`ctime`). So once a lookup by path has found the file in place, a
//!   write only asks the folder, held open, for that time (one `fstat`, no
//!   path to walk) and looks the file up again when the time moved. File
//!   systems stamp that time from a clock that advances in ticks, so a
//!   change made within the tick of the time on record could carry the
//!   same time: a time is trusted only once the clock has moved two ticks
//!   past it, a second more for a time in whole seconds (until then each
//!   write looks the file up). Only file systems known to keep the time
//!   are trusted: ext4, xfs, btrfs and tmpfs.
//! - **A thread asleep on inotify**, once the store has made some thousands
//!   of checks (see `inotify.rs`), watching the folder (deleted or moved)
//!   and the data file's name in it (deleted, moved away, replaced), which
//!   raises a flag; a write reads the flag (one atomic load) and, when it
//!   is up, checks the file itself to say what happened. The event is
//!   queued by the kernel as the folder changes and the thread wakes within
//!   microseconds; a write that starts within that moment can still go
//!   through.
//!
//! Both watch the folder and its entries, not the folders above it: a
//! parent folder moved with the store in it is only seen by the lookup by
//! path, which is what runs where neither can be had (another file
//! system, inotify's limits reached, another operating system).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::files::DATA_FILE;
use super::inotify::{Changes, Watched};
use crate::error::{Error, Result};

/// The data file as this process opened it, and the watches on its folder.
pub(super) struct FolderWatch {
    file: std::fs::File,
    /// The device and inode of `file`, which never change.
    identity: (u64, u64),
    path: PathBuf,
    /// The folder, held open to ask for its change time; `None` on a file
    /// system not known to keep it.
    folder: Option<std::fs::File>,
    /// The folder's change time (nanoseconds since the epoch) when a
    /// lookup by path last found the data file in place, once the clock
    /// has moved far enough past it to tell any later change apart; 0 for
    /// none yet.
    settled: AtomicU64,
    /// When the change time last read, too recent then, can be trusted:
    /// until that time writes look the file up without asking the folder.
    trusted_from: AtomicU64,
    watched: Watched,
}

impl FolderWatch {
    pub(super) fn start(dir: &Path) -> Result<FolderWatch> {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join(DATA_FILE);
        let file = std::fs::File::open(&path)?;
        let held = file.metadata()?;
        let folder = std::fs::File::open(dir).ok().filter(change_time::is_kept);
        let watched = Watched::start(dir, Changes::FolderOrEntry(DATA_FILE));
        let identity = (held.dev(), held.ino());
        let (settled, trusted_from) = (AtomicU64::new(0), AtomicU64::new(0));
        Ok(FolderWatch { file, identity, path, folder, settled, trusted_from, watched })
    }

    /// The data file as this process opened it.
    pub(super) fn data_file(&self) -> &std::fs::File {
        &self.file
    }

    /// Fails when the data file this process opened is no longer the one
    /// at the store's path. Inlined: once the inotify watch runs, a write
    /// pays one load; before, one `fstat` of the folder while its change
    /// time is on record, a lookup by path otherwise.
    #[inline]
    pub(super) fn check(&self) -> Result<()> {
        if !self.watched.suspect() || self.unchanged_since_settled() {
            return Ok(());
        }
        self.check_path_and_settle()
    }

    /// Whether the folder still carries the change time on record.
    fn unchanged_since_settled(&self) -> bool {
        let settled = self.settled.load(Ordering::Relaxed);
        settled != 0 && self.folder.as_ref().and_then(change_time::of) == Some(settled)
    }

    /// Looks the data file up by path and, if it is in place, puts the
    /// folder's change time on record once it can be trusted. The time is
    /// read before the lookup: a change made after it gives another time.
    #[cold]
    fn check_path_and_settle(&self) -> Result<()> {
        let Some(folder) = &self.folder else { return self.check_file() };
        let now = change_time::now();
        if now < self.trusted_from.load(Ordering::Relaxed) {
            return self.check_file();
        }
        let changed_at = change_time::of(folder);
        self.check_file()?;
        match changed_at.map(|time| (time, change_time::trusted_from(time))) {
            Some((time, from)) if now >= from => self.settled.store(time, Ordering::Relaxed),
            Some((_, from)) => {
                self.settled.store(0, Ordering::Relaxed);
                self.trusted_from.store(from, Ordering::Relaxed);
            }
            None => self.settled.store(0, Ordering::Relaxed),
        }
        Ok(())
    }

    /// Deleted (its link count is 0), gone from its path, or the path now
    /// names another file. The usual answer, the file still at its path,
    /// costs one `stat`; the held file is asked only to say what happened.
    #[cold]
    fn check_file(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let at_path = match std::fs::metadata(&self.path) {
            Ok(now) if (now.dev(), now.ino()) == self.identity => return Ok(()),
            Ok(_) => Some(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err.into()),
        };
        let removed = |reason: &str| Err(Error::StoreRemoved { path: self.path.clone(), reason: reason.to_owned() });
        if self.file.metadata()?.nlink() == 0 {
            return removed("its data file was deleted");
        }
        match at_path {
            Some(()) => removed("its path now holds another data file"),
            None => removed("its data file is gone from its path"),
        }
    }
}

/// A folder's change time, and whether its file system keeps it.
#[cfg(target_os = "linux")]
mod change_time {
    use std::os::fd::AsRawFd;

    /// ext4, xfs, btrfs and tmpfs set a folder's change time when an entry
    /// is added, removed or renamed in it, and when it is itself renamed.
    /// Others are not assumed to (network and overlay file systems, FAT).
    // The magic numbers' type differs between targets (all are 32 bits).
    #[allow(clippy::unnecessary_cast)]
    pub(super) fn is_kept(folder: &std::fs::File) -> bool {
        // SAFETY: an all-zero statfs is a valid value to be overwritten.
        let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid descriptor and a pointer to a statfs we own.
        if unsafe { libc::fstatfs(folder.as_raw_fd(), &raw mut stat) } != 0 {
            return false;
        }
        let kind = stat.f_type as u32;
        let kept = [
            libc::EXT4_SUPER_MAGIC as u32,
            libc::XFS_SUPER_MAGIC as u32,
            libc::BTRFS_SUPER_MAGIC as u32,
            libc::TMPFS_MAGIC as u32,
        ];
        kept.contains(&kind)
    }

    /// The folder's change time in nanoseconds since the epoch; `None` if
    /// it cannot be read or the folder was deleted.
    pub(super) fn of(folder: &std::fs::File) -> Option<u64> {
        let stat = crate::fs::fstat(folder).ok().filter(|stat| stat.st_nlink != 0)?;
        nanos(stat.st_ctime, stat.st_ctime_nsec).filter(|&time| time != 0)
    }

    /// The time from which a folder change time `time` can be trusted:
    /// once the file systems' clock has moved two of its ticks past it,
    /// and a second more for a time in whole seconds (ext4 with small
    /// inodes keeps no fraction), any change made later is stamped later.
    pub(super) fn trusted_from(time: u64) -> u64 {
        const SECOND: u64 = 1_000_000_000;
        static TICK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let tick = *TICK.get_or_init(|| read(libc::clock_getres).unwrap_or(SECOND));
        let whole_second = if time.is_multiple_of(SECOND) { SECOND } else { 0 };
        time.saturating_add(tick.saturating_mul(2)).saturating_add(whole_second).saturating_add(1)
    }

    /// The file systems' clock now (0 if it cannot be read, which trusts
    /// no time).
    pub(super) fn now() -> u64 {
        read(libc::clock_gettime).unwrap_or(0)
    }

    /// The coarse real-time clock (the one file times are stamped from)
    /// or its resolution, through `clock_gettime` or `clock_getres`.
    fn read(call: unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int) -> Option<u64> {
        let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid clock id and a pointer to a timespec we own.
        if unsafe { call(libc::CLOCK_REALTIME_COARSE, &raw mut time) } != 0 {
            return None;
        }
        nanos(time.tv_sec, time.tv_nsec)
    }

    /// Seconds and nanoseconds (32 or 64 bits wide, by target) as
    /// nanoseconds; `None` before the epoch.
    fn nanos(seconds: impl Into<i64>, nanoseconds: impl Into<i64>) -> Option<u64> {
        let seconds = u64::try_from(seconds.into()).ok()?;
        seconds.checked_mul(1_000_000_000)?.checked_add(u64::try_from(nanoseconds.into()).ok()?)
    }
}

/// Elsewhere every write looks the data file up by path.
#[cfg(not(target_os = "linux"))]
mod change_time {
    pub(super) fn is_kept(_folder: &std::fs::File) -> bool {
        false
    }

    pub(super) fn of(_folder: &std::fs::File) -> Option<u64> {
        None
    }

    pub(super) fn trusted_from(_time: u64) -> u64 {
        u64::MAX
    }

    pub(super) fn now() -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A folder holding a data file, watched.
    fn watched_store() -> (tempfile::TempDir, PathBuf, FolderWatch) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("store");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(DATA_FILE), b"pages").unwrap();
        let watch = FolderWatch::start(&dir).unwrap();
        (root, dir, watch)
    }

    /// A watched store whose folder's change time is on record; `None`
    /// where the file system does not keep the time (nothing to test).
    fn settled_store() -> Option<(tempfile::TempDir, PathBuf, FolderWatch)> {
        let store = watched_store();
        settle(&store.2).then_some(store)
    }

    /// Watched stores to change under their watch: one whose folder's
    /// change time is on record (where the file system keeps it), and one
    /// that, as on a file system not trusted with the time, looks the data
    /// file up at every check. Both must refuse whatever the change.
    fn stores_both_ways() -> Vec<(tempfile::TempDir, PathBuf, FolderWatch)> {
        let untrusted = {
            let (root, dir, mut watch) = watched_store();
            watch.folder = None;
            watch.check().unwrap();
            (root, dir, watch)
        };
        settled_store().into_iter().chain([untrusted]).collect()
    }

    /// Checks until the folder's change time is on record; false where
    /// the file system does not keep it.
    fn settle(watch: &FolderWatch) -> bool {
        if watch.folder.is_none() {
            return false;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while watch.settled.load(Ordering::Relaxed) == 0 {
            watch.check().unwrap();
            assert!(Instant::now() < deadline, "the folder's change time never settled");
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    fn refusal(watch: &FolderWatch) -> String {
        match watch.check() {
            Err(Error::StoreRemoved { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_settled_folder_is_asked_for_its_change_time_and_a_write_passes() {
        let Some((_root, _dir, watch)) = settled_store() else { return };
        let settled = watch.settled.load(Ordering::Relaxed);
        watch.check().unwrap();
        assert!(watch.unchanged_since_settled());
        assert_eq!(watch.settled.load(Ordering::Relaxed), settled, "no change, no new lookup");
    }

    #[test]
    fn a_data_file_deleted_moved_away_or_replaced_is_refused_settled_or_not() {
        type Change = fn(&Path);
        let changes: [(&str, Change); 3] = [
            ("its data file was deleted", |dir| std::fs::remove_file(dir.join(DATA_FILE)).unwrap()),
            ("its data file was deleted", |dir| {
                std::fs::write(dir.join("other"), b"other pages").unwrap();
                std::fs::rename(dir.join("other"), dir.join(DATA_FILE)).unwrap();
            }),
            ("its data file is gone from its path", |dir| {
                std::fs::rename(dir.join(DATA_FILE), dir.join("moved.mdb")).unwrap();
            }),
        ];
        for (expected, change) in changes {
            for (_root, dir, watch) in stores_both_ways() {
                change(&dir);
                assert_eq!(refusal(&watch), expected, "settled: {}", watch.folder.is_some());
            }
        }
    }

    #[test]
    fn a_folder_moved_removed_or_replaced_is_refused_settled_or_not() {
        for (expected, replaced, removed) in [
            ("its data file is gone from its path", false, false),
            ("its path now holds another data file", true, false),
            ("its data file was deleted", false, true),
        ] {
            for (root, dir, watch) in stores_both_ways() {
                if removed {
                    std::fs::remove_dir_all(&dir).unwrap();
                } else {
                    std::fs::rename(&dir, root.path().join("moved")).unwrap();
                }
                if replaced {
                    std::fs::create_dir(&dir).unwrap();
                    std::fs::write(dir.join(DATA_FILE), b"a new store").unwrap();
                }
                let settled = watch.folder.is_some();
                assert_eq!(refusal(&watch), expected, "replaced {replaced}, removed {removed}, settled {settled}");
            }
        }
    }

    #[test]
    fn another_file_added_to_the_folder_costs_one_lookup_and_writes_go_on() {
        let Some((_root, dir, watch)) = settled_store() else { return };
        let settled = watch.settled.load(Ordering::Relaxed);
        std::fs::write(dir.join("writer.lock"), b"").unwrap();
        assert!(!watch.unchanged_since_settled(), "the folder's change time moved");
        watch.check().unwrap();
        assert!(settle(&watch));
        assert_ne!(watch.settled.load(Ordering::Relaxed), settled, "the new time is on record");
        watch.check().unwrap();
    }

    #[test]
    fn a_change_time_is_trusted_only_once_the_clock_is_past_it() {
        const SECOND: u64 = 1_000_000_000;
        let now = change_time::now();
        assert!(change_time::trusted_from(now) > now, "a time just made");
        // A time in whole seconds waits a second more.
        let whole = now / SECOND * SECOND;
        assert!(change_time::trusted_from(whole) > whole + SECOND);
        if cfg!(target_os = "linux") {
            assert!(change_time::trusted_from(now - SECOND / 2 - 1) <= now, "half a second is many ticks");
            assert!(change_time::trusted_from((now / SECOND - 3) * SECOND) <= now);
        }
    }
}
