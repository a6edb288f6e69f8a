//! Commit notifications across processes: a small shared-memory file in
//! the store's folder that every process maps. A writer that commits
//! bumps counters in it and wakes the waiters with a futex, but only when
//! the file says someone is watching, so that a store nobody watches pays
//! one atomic load per commit.
//!
//! Layout (little-endian `u32`s, the file is one 4 KiB page):
//! - `commits` (offset 4): bumped after every commit that changed
//!   something, while anyone watches; the futex word waiters sleep on;
//! - `watchers` (offset 8): how many `Watch` handles exist in all
//!   processes (a handle of a killed process stays counted: writers then
//!   go on waking nobody, which costs a system call per commit and
//!   nothing else);
//! - `topics` (offset 64, 64 counters): bumped for each topic a commit
//!   touched (a model's topic is a hash of its name; topic 0 is everything
//!   that is not a model record: maps, sequences).
//!
//! The file is not the store's data, and someone may truncate or replace
//! it under running processes. Touching a mapped page past the end of its
//! file kills the process (SIGBUS), so once the file has been changed
//! through a descriptor (which this process's own use never does: it
//! writes through the mapping), every access first checks the file's size
//! (one `fstat`); a file found short is made whole again, with its
//! counters at zero: watchers of the moment then wait until their timeout,
//! and nothing crashes. A thread asleep on inotify tells when (see
//! `inotify.rs`), so that the usual commit pays one atomic load, not a
//! system call.
//!
//! Why nothing is missed: a watcher registers (`watchers` + 1), then reads
//! the counters, then reads the store. A writer commits, then reads
//! `watchers`. If the writer read 0, its commit came before the
//! registration, so the watcher's first read of the store sees it; if not,
//! the writer bumps the counters after its commit, and a watcher asleep on
//! the old `commits` value is woken (or does not sleep: the futex refuses
//! to wait on a value that changed).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::inotify::{Changes, Watched};
use crate::error::{Error, Result};

/// The notification file's name, beside the data file.
const WATCH_FILE: &str = "watch.shm";

const FILE_LEN: usize = 4096;
const COMMITS: usize = 4;
const WATCHERS: usize = 8;
const TOPICS: usize = 64;
/// How many topic counters there are.
pub(crate) const TOPIC_COUNT: usize = 64;

/// One process's mapping of a store's notification file.
pub(crate) struct Notifier {
    base: *mut u8,
    /// The file mapped, kept open to check its size.
    file: std::fs::File,
    /// Raised once the file is changed other than through the mapping.
    watched: Watched,
    /// The wakers of async watchers in this process (see `crate::watch`).
    pub(crate) wakers: std::sync::Mutex<Wakers>,
}

/// Async watchers waiting for a commit, and whether a thread is waiting
/// on the futex for them.
#[derive(Default)]
pub(crate) struct Wakers {
    /// Each pending `Changed` future's waker, under the future's number:
    /// a future dropped before a commit takes its own entry out.
    pub(crate) waiting: Vec<(u64, std::task::Waker)>,
    /// The number the next `Changed` future gets.
    pub(crate) next_id: u64,
    pub(crate) helper_running: bool,
}

// SAFETY: the mapping is only ever accessed through atomics, which are
// safe to share between threads (and, the mapping being MAP_SHARED,
// between processes).
unsafe impl Send for Notifier {}
// SAFETY: as above.
unsafe impl Sync for Notifier {}

impl Notifier {
    /// The notifier an engine opened, or the error that says why it has
    /// none: the folder `dir` could not hold the file.
    pub(crate) fn of(opened: Option<&Arc<Notifier>>, dir: &Path) -> Result<Arc<Notifier>> {
        opened.cloned().ok_or_else(|| {
            let message = format!("{} cannot hold the watch file {WATCH_FILE}", dir.display());
            Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, message))
        })
    }

    /// Maps the notification file of the store in `dir`, creating it if
    /// `create` (a read-only store writes nothing, so it only maps a file
    /// that a writer made).
    pub(crate) fn open(dir: &Path, create: bool) -> Result<Notifier> {
        use std::os::fd::AsRawFd;
        let file = crate::fs::private_file_options()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(dir.join(WATCH_FILE))?;
        // Growing a file that is already long enough changes nothing, so
        // processes racing here agree; the new bytes are zeros.
        if file.metadata()?.len() < FILE_LEN as u64 {
            if !create {
                return Err(Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "watch file not made yet")));
            }
            file.set_len(FILE_LEN as u64)?;
        }
        // SAFETY: a fresh shared mapping of a file we hold open and that is
        // at least FILE_LEN long; the file may be closed after mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FILE_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
        let watched = Watched::start(&dir.join(WATCH_FILE), Changes::File);
        Ok(Notifier { base: base.cast(), file, watched, wakers: std::sync::Mutex::default() })
    }

    /// Whether the file is still whole, so that its mapped page may be
    /// touched. A file found short (truncated by hand) is grown back; a
    /// file that cannot be grown or checked is not touched.
    fn whole(&self) -> bool {
        if !self.watched.suspect() {
            return true;
        }
        match crate::fs::fstat(&self.file) {
            Ok(stat) if stat.st_size >= FILE_LEN as libc::off_t => true,
            Ok(_) => self.file.set_len(FILE_LEN as u64).is_ok(),
            Err(_) => false,
        }
    }

    /// A word of the file; callers check `whole()` first.
    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= FILE_LEN);
        // SAFETY: the mapping is FILE_LEN bytes, page-aligned, and lives as
        // long as `self`; `offset` is 4-aligned and inside it; the memory is
        // only accessed atomically.
        unsafe { &*self.base.add(offset).cast::<AtomicU32>() }
    }

    fn commits(&self) -> &AtomicU32 {
        self.word(COMMITS)
    }

    fn topic(&self, topic: usize) -> &AtomicU32 {
        self.word(TOPICS + 4 * (topic % TOPIC_COUNT))
    }

    /// After a commit that touched `topics` (a bit per topic): wakes the
    /// watchers, if there are any.
    pub(crate) fn published(&self, topics: u64) {
        if topics == 0 || !self.whole() || self.word(WATCHERS).load(Ordering::SeqCst) == 0 {
            return;
        }
        for topic in (0..TOPIC_COUNT).filter(|topic| topics & (1 << topic) != 0) {
            self.topic(topic).fetch_add(1, Ordering::SeqCst);
        }
        self.commits().fetch_add(1, Ordering::SeqCst);
        futex::wake_all(self.commits());
    }

    /// Counts a new watcher.
    pub(crate) fn register(&self) {
        if self.whole() {
            self.word(WATCHERS).fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn unregister(&self) {
        // Never below zero, even if the count was reset by hand.
        if self.whole() {
            let _ = self.word(WATCHERS).fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }

    /// The counter of `topic`, or of every commit for `None` (0 while the
    /// file cannot be read).
    pub(crate) fn position(&self, topic: Option<usize>) -> u32 {
        if !self.whole() {
            return 0;
        }
        match topic {
            Some(topic) => self.topic(topic).load(Ordering::SeqCst),
            None => self.commits().load(Ordering::SeqCst),
        }
    }

    /// Waits until the counter of `topic` (of every commit for `None`) is
    /// no longer `seen`, or until `deadline`; returns the new value, or
    /// `None` at the deadline.
    pub(crate) fn wait_past(&self, topic: Option<usize>, seen: u32, deadline: Option<Instant>) -> Option<u32> {
        loop {
            let commits = self.position(None);
            let now_at = self.position(topic);
            if now_at != seen {
                return Some(now_at);
            }
            let left = match deadline {
                Some(deadline) => Some(deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?),
                None => None,
            };
            if self.whole() {
                futex::wait(self.commits(), commits, left);
            } else {
                // No file to sleep on: look again a little later.
                std::thread::sleep(left.unwrap_or(Duration::MAX).min(Duration::from_millis(50)));
            }
        }
    }

    /// Waits until any commit is published after `seen` (a value of the
    /// `commits` counter), at most `timeout`; returns the counter.
    pub(crate) fn wait_commit(&self, seen: u32, timeout: Duration) -> u32 {
        if !self.whole() {
            std::thread::sleep(timeout);
            return self.position(None);
        }
        futex::wait(self.commits(), seen, Some(timeout));
        self.position(None)
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `open`; no reference into it
        // outlives `self` (every accessor borrows `self`).
        unsafe {
            libc::munmap(self.base.cast(), FILE_LEN);
        }
    }
}

/// The topic of a model: a hash of its name into 1..TOPIC_COUNT (0 is for
/// writes that are not model records).
pub(crate) fn topic_of(model: &str) -> usize {
    // FNV-1a: stable across processes and builds, unlike std's hasher.
    let hash = model
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    1 + (hash % (TOPIC_COUNT as u64 - 1)) as usize
}

#[cfg(target_os = "linux")]
mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Sleeps while `word` holds `expected`, at most `timeout`; returns at
    /// once if it does not. May return early (signals, spurious wake-ups).
    pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        // `c_long` is 32 bits on some targets, where the conversion can fail.
        #[allow(clippy::unnecessary_fallible_conversions)]
        let timespec = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::try_from(t.subsec_nanos()).unwrap_or(0),
        });
        let timeout_ptr = timespec.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
        // SAFETY: FUTEX_WAIT on a 4-aligned u32 in a shared mapping (not
        // FUTEX_PRIVATE: the word is shared between processes); the
        // timespec lives across the call. Errors (EAGAIN, EINTR, ETIMEDOUT)
        // all mean "look again", which every caller does.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, timeout_ptr);
        }
    }

    /// Wakes every process and thread sleeping on `word`.
    pub fn wake_all(word: &AtomicU32) {
        // SAFETY: FUTEX_WAKE only reads the address to find its waiters.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod futex {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    /// Without futexes (macOS and the BSDs have no public cross-process
    /// equivalent), waiters poll the word every millisecond.
    pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let start = Instant::now();
        while word.load(Ordering::SeqCst) == expected {
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn wake_all(_word: &AtomicU32) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_stable_and_never_the_catch_all() {
        assert_eq!(topic_of("users"), topic_of("users"));
        assert!((0..200).map(|n| topic_of(&format!("model{n}"))).all(|t| (1..TOPIC_COUNT).contains(&t)));
    }

    #[test]
    fn a_truncated_file_is_grown_back_instead_of_touched() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::open(dir.path(), true).unwrap();
        notifier.register();
        notifier.published(1);
        std::fs::OpenOptions::new().write(true).open(dir.path().join(WATCH_FILE)).unwrap().set_len(0).unwrap();
        // The watcher learns of it within microseconds; leave it plenty.
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Each of these would touch a page past the end of the file.
        notifier.published(1);
        assert_eq!(std::fs::metadata(dir.path().join(WATCH_FILE)).unwrap().len(), FILE_LEN as u64);
        assert_eq!(notifier.position(None), 0, "grown back with zeros: the counters start again");
        notifier.register();
        notifier.published(1);
        assert_eq!(notifier.position(None), 1);
    }

    #[test]
    fn nothing_is_published_while_nobody_watches() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::open(dir.path(), true).unwrap();
        notifier.published(1);
        assert_eq!(notifier.position(None), 0);
        notifier.register();
        notifier.published(0b11);
        assert_eq!((notifier.position(None), notifier.position(Some(1)), notifier.position(Some(2))), (1, 1, 0));
        let again = Notifier::open(dir.path(), false).unwrap();
        assert_eq!(again.position(None), 1, "a second mapping shares the counters");
        notifier.unregister();
        notifier.unregister();
        assert_eq!(notifier.word(WATCHERS).load(Ordering::SeqCst), 0);
    }
}
