//! What this process has done with a store since it opened it, counted as
//! it happens (relaxed atomics: one add per commit, not per write) and
//! reported by `Store::stats`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The running counts; see [`Activity`] for their meaning.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    bytes_written: AtomicU64,
    map_growths: AtomicU64,
    reruns: AtomicU64,
    group_commits: AtomicU64,
    group_writers: AtomicU64,
    lock_waits: AtomicU64,
    lock_wait_micros: AtomicU64,
}

/// What this process did with a store since it opened it, as
/// [`Store::stats`](crate::Store::stats) reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Activity {
    /// Write transactions committed that changed something.
    pub commits: u64,
    /// Bytes of keys and values those commits wrote (before LMDB's pages).
    pub bytes_written: u64,
    /// Times this process grew the map.
    pub map_growths: u64,
    /// Write closures run again (after map growth, or a record lock held
    /// elsewhere).
    pub reruns: u64,
    /// Group commits of more than one writer, and the writers they held.
    pub group_commits: u64,
    /// Writers committed by those group commits.
    pub group_writers: u64,
    /// Writes and lock takers that had to wait for a record lock, and how
    /// long they waited in all.
    pub lock_waits: u64,
    /// Total time of those waits, in milliseconds.
    pub lock_wait_ms: u64,
}

impl Counters {
    pub(crate) fn committed(&self, bytes: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn grew(&self) {
        self.map_growths.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reran(&self) {
        self.reruns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn grouped(&self, writers: usize) {
        self.group_commits.fetch_add(1, Ordering::Relaxed);
        self.group_writers.fetch_add(writers as u64, Ordering::Relaxed);
    }

    pub(crate) fn waited_for_lock(&self, waited: Duration) {
        self.lock_waits.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.lock_wait_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Activity {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Activity {
            commits: get(&self.commits),
            bytes_written: get(&self.bytes_written),
            map_growths: get(&self.map_growths),
            reruns: get(&self.reruns),
            group_commits: get(&self.group_commits),
            group_writers: get(&self.group_writers),
            lock_waits: get(&self.lock_waits),
            lock_wait_ms: get(&self.lock_wait_micros) / 1000,
        }
    }
}
