//! The storage engine seam. Everything that knows an engine lives in this
//! folder; nothing above it names LMDB, heed, SlateDB or their files.
//!
//! What the rest of skyshelve uses:
//! - [`Engine`]: opens a store, runs read transactions and write
//!   transactions (`read`, `write`, `write_group`), backs up, and reports
//!   usage; an enum over the engines, each call handed to the open one;
//! - [`Reader`] and [`Writer`]: tables of byte keys and byte values, with
//!   get / range / len and put / insert-if-absent / delete / clear, inside
//!   one transaction ([`Snapshot`] for reads; a write closure gets the
//!   engine's own write transaction as `&mut dyn Writer`);
//! - the limits ([`MAX_KEY_LEN`], [`MAX_VALUE_LEN`]) and [`Durability`].
//!
//! LMDB (`lmdb.rs`, always built): the environment and its transactions,
//! with `gate.rs` (no remap while a transaction of this process is open),
//! `writers.rs` (one writer at a time across threads and processes, before
//! LMDB's own mutex), `fork.rs` (a handle is refused in a forked child),
//! `files.rs` (LMDB's files, whole-or-nothing copies, the cut-short check).
//!
//! SlateDB (`slate.rs`, feature `slatedb`): an LSM tree on object storage
//! with one writer that a second one fences. Its differences fit the seam
//! this way: write closures are `FnMut` and serialised per store; values
//! are lent from the transaction, which holds the bytes it read instead of
//! a memory map; its async calls run on a runtime the store owns, behind
//! the synchronous seam; it has no insert-if-absent (a read, then a write
//! in the one writer's draft) and no nested transactions (a group commit's
//! job that is not kept has the draft put back as it was).
//!
//! Shared by both: `notify.rs` (commit notifications to watchers in every
//! process of a machine, through a shared-memory file and a futex) and
//! `counters.rs` (what this process did: commits, bytes, growths, waits).
//!
//! The names are the seam's own: a [`Snapshot`] is a read transaction, a
//! `Draft` (each engine's) a write transaction, the next commit being
//! written, and a [`Table`] an opaque handle.

mod counters;
mod files;
mod folder;
mod fork;
mod gate;
mod inotify;
mod lmdb;
mod notify;
mod pages;

pub(crate) use pages::Damage;
mod preallocate;
#[cfg(feature = "slatedb")]
mod slate;
mod writers;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use counters::Activity;
pub(crate) use counters::Counters;
pub(crate) use files::{holds_store, restore};
pub(crate) use notify::{Notifier, topic_of};
#[cfg(feature = "slatedb")]
pub(crate) use slate::SlateConfig;

use crate::error::{Error, Result};

/// What the names of the tables the store reserves for itself start with
/// (see `tables.rs`). Every store has such tables from its first open, so
/// the engine tells a store from another program's environment by them.
pub(crate) const RESERVED_PREFIX: &str = "~";

/// LMDB's compiled-in key size limit (`mdb_env_get_maxkeysize`).
pub const MAX_KEY_LEN: usize = 511;

/// LMDB's value size limit: a value's length is stored in 32 bits.
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;

/// How commits reach the disk.
///
/// LMDB is crash-safe against process crashes in every mode; the modes
/// differ in what an operating-system crash or power loss may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is flushed to disk before it returns (the default).
    #[default]
    Full,
    /// The final meta-page flush is skipped: an OS crash or power loss may
    /// lose the last commits, but never corrupts the store.
    MayLoseLastCommits,
    /// Nothing is flushed at commit: an OS crash or power loss may lose
    /// recent commits or corrupt the store. Process crashes lose nothing.
    MayCorruptOnPowerLoss,
}

/// Settings the engine needs to open an environment.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub map_size: usize,
    pub max_map_size: usize,
    pub max_readers: u32,
    pub max_tables: u32,
    pub durability: Durability,
    pub resize_wait: Duration,
    /// Opened with LMDB's read-only flag (or as a SlateDB reader): writes
    /// are refused up front.
    pub read_only: bool,
    /// Where the SlateDB engine keeps the store; `None`: LMDB.
    #[cfg(feature = "slatedb")]
    pub slatedb: Option<SlateConfig>,
}

/// One caller's work in a group commit; `true` keeps its changes.
pub(crate) type GroupJob<'a> = dyn FnMut(&mut dyn Writer) -> bool + Send + 'a;

/// The jobs of one group commit: those taken so far, and more taken while
/// the transaction is open, so that writers still on their way join it.
pub(crate) trait GroupJobs {
    /// The job taken `index`th, if that many have been taken.
    fn job(&mut self, index: usize) -> Option<&mut GroupJob<'_>>;

    /// Takes the jobs that joined since (perhaps waiting a while for some);
    /// `false` when none did and the group is complete.
    fn take_more(&mut self) -> bool;
}

/// A table of byte keys and byte values: a handle, valid for the engine's
/// life, that only the engine that made it looks inside.
#[derive(Clone, Copy)]
pub(crate) enum Table {
    Lmdb(lmdb::Table),
    #[cfg(feature = "slatedb")]
    Slate(slate::Table),
    /// An index table a read-only handle found missing (a writer builds it
    /// at its next open): every use of it is `Error::IndexNotBuilt`, so
    /// that nothing reads an unbuilt index as an empty one.
    Missing {
        /// The model.
        model: &'static str,
        /// The index.
        index: &'static str,
    },
}

impl Table {
    /// Whether the table exists in the store (see [`Table::Missing`]).
    pub(crate) fn exists(self) -> bool {
        !matches!(self, Table::Missing { .. })
    }

    /// The error for a use of a table that is not the engine's own: an
    /// index not built, or (a bug in skyshelve, reported rather than
    /// panicking) a handle of another engine.
    fn not_usable(self) -> Error {
        match self {
            Table::Missing { model, index } => Error::IndexNotBuilt { model, index },
            _ => Error::Storage("a table handle of another engine".into()),
        }
    }
}

/// Read access shared by both transaction kinds.
pub(crate) trait Reader {
    /// The value stored under `key`, if any.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>>;

    /// Entries with keys inside the bounds, in key order, or in reverse
    /// key order when `reverse`.
    fn scan<'t>(
        &'t self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<RangeIter<'t>>;

    /// Entries with keys inside the bounds, in key order.
    #[inline]
    fn range<'t>(&'t self, table: Table, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<RangeIter<'t>> {
        self.scan(table, lower, upper, false)
    }

    /// Entries with keys inside the bounds, in reverse key order.
    #[inline]
    fn rev_range<'t>(&'t self, table: Table, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<RangeIter<'t>> {
        self.scan(table, lower, upper, true)
    }

    /// The number of entries in `table`.
    fn len(&self, table: Table) -> Result<u64>;

    /// Whether `table` may hold entries: `false` only where the engine can
    /// tell cheaply that it is empty (LMDB keeps a count), so that a
    /// caller may skip building a key to look up. An engine that would
    /// have to scan says `true`.
    fn may_hold_entries(&self, table: Table) -> Result<bool> {
        self.len(table).map(|entries| entries > 0)
    }

    /// For a read transaction, the number of the commit it sees: two read
    /// transactions with the same number see the same data, in any
    /// process. `None` for a write transaction and on engines that do not
    /// number their snapshots.
    fn snapshot_id(&self) -> Option<u64> {
        None
    }

    /// A number that two transactions have in common only if they see
    /// the same entries in `table`, in any process; `None` if the engine
    /// cannot tell. By default the snapshot's number; SlateDB's writer,
    /// the store's only one, numbers its own changes to each table.
    fn table_version(&self, _table: Table) -> Option<u64> {
        self.snapshot_id()
    }
}

/// Write access; a trait so that the model layer can hold a write
/// transaction without naming the engine or its lifetime.
pub(crate) trait Writer: Reader {
    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()>;

    /// Stores `value` under `key` unless the key is taken: then nothing is
    /// written and the stored value is returned.
    fn put_new(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Removes `key`; returns whether it was present.
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool>;

    /// Removes every entry of `table`.
    fn clear(&mut self, table: Table) -> Result<()>;

    /// Makes sure the transaction is aborted, whatever the closure returns.
    fn doom(&mut self);

    /// Adds watch topics (a bit per topic) for the commit to publish.
    fn touch(&mut self, topics: u64);
}

/// An open store's engine: LMDB, or SlateDB with the `slatedb` feature.
pub(crate) enum Engine {
    Lmdb(lmdb::Engine),
    #[cfg(feature = "slatedb")]
    Slate(slate::Engine),
}

/// Calls the same method on whichever engine's read transaction it is.
macro_rules! each_engine_txn {
    ($txn:expr, $inner:ident => $call:expr) => {
        match $txn {
            Snapshot::Lmdb($inner) => $call,
            #[cfg(feature = "slatedb")]
            Snapshot::Slate($inner) => $call,
        }
    };
}

/// Calls the same method on whichever engine is open.
macro_rules! each_engine {
    ($engine:expr, $inner:ident => $call:expr) => {
        match $engine {
            Engine::Lmdb($inner) => $call,
            #[cfg(feature = "slatedb")]
            Engine::Slate($inner) => $call,
        }
    };
}

impl Engine {
    /// Opens (creating if needed) the store in `dir` with the engine the
    /// configuration names.
    pub fn open(dir: &Path, config: EngineConfig) -> Result<Engine> {
        #[cfg(feature = "slatedb")]
        if let Some(slatedb) = config.slatedb.clone() {
            return slate::Engine::open(dir, config, slatedb).map(Engine::Slate);
        }
        lmdb::Engine::open(dir, config).map(Engine::Lmdb)
    }

    /// The engine's name, as users know it.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Lmdb(_) => "LMDB",
            #[cfg(feature = "slatedb")]
            Engine::Slate(_) => "SlateDB",
        }
    }

    /// What this process did with the store.
    pub fn counters(&self) -> &Counters {
        each_engine!(self, engine => &engine.counters)
    }

    /// The commit notifications of this store, for watchers.
    pub fn notifier(&self) -> Result<Arc<Notifier>> {
        each_engine!(self, engine => engine.notifier())
    }

    /// The folder the store lives in (on SlateDB: its local folder).
    pub fn dir(&self) -> &Path {
        each_engine!(self, engine => engine.dir())
    }

    /// Whether a commit waits for storage (a disk sync, an object-store
    /// write) before it returns under `durability`: what group commit
    /// shares among writers, and all it gains them.
    pub fn commit_waits(&self, durability: Durability) -> bool {
        match self {
            // MayLoseLastCommits syncs the data, not the meta page.
            Engine::Lmdb(_) => durability != Durability::MayCorruptOnPowerLoss,
            // The others return once the batch is in SlateDB's log buffer.
            #[cfg(feature = "slatedb")]
            Engine::Slate(_) => durability == Durability::Full,
        }
    }

    /// The size of LMDB's memory map in this process; 0 on SlateDB.
    pub fn map_size(&self) -> usize {
        match self {
            Engine::Lmdb(engine) => engine.map_size(),
            #[cfg(feature = "slatedb")]
            Engine::Slate(_) => 0,
        }
    }

    /// Whether the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        each_engine!(self, engine => engine.is_read_only())
    }

    /// Whether this thread has a transaction open on the store.
    pub fn in_transaction_here(&self) -> bool {
        each_engine!(self, engine => engine.in_transaction_here())
    }

    /// Opens the named tables, creating missing ones.
    pub fn open_tables(&self, names: &[String]) -> Result<std::collections::HashMap<String, Table>> {
        each_engine!(self, engine => engine.open_tables(names))
    }

    /// Opens those of the named tables that exist.
    pub fn open_tables_that_exist(&self, names: &[String]) -> Result<std::collections::HashMap<String, Table>> {
        each_engine!(self, engine => engine.open_tables_that_exist(names))
    }

    /// The damaged pages of the tables `names`, and of the tree that names
    /// them, read from the file without LMDB (see `pages.rs`): each table
    /// with damage, with what was found. LMDB keeps no checksums, so this
    /// is what stands between a damaged file and a crash; SlateDB checks
    /// its own files' checksums, and nothing is found here.
    pub fn damaged_pages(&self, names: &[&str]) -> Result<Vec<(String, Vec<Damage>)>> {
        match self {
            Engine::Lmdb(engine) => engine.damaged_pages(names),
            #[cfg(feature = "slatedb")]
            Engine::Slate(_) => Ok(Vec::new()),
        }
    }

    /// The entries of table `name` that lie on intact pages, in key order,
    /// handed to `entry`; returns the damaged pages left out (nothing on
    /// SlateDB, whose tables are read as they are).
    #[cfg(feature = "json")]
    pub fn salvage(&self, name: &str, entry: &mut dyn FnMut(&[u8], &[u8])) -> Result<Vec<Damage>> {
        match self {
            Engine::Lmdb(engine) => engine.salvage(name, entry),
            #[cfg(feature = "slatedb")]
            Engine::Slate(_) => Ok(Vec::new()),
        }
    }

    /// The names of every table, in name order.
    pub fn table_names(&self) -> Result<Vec<String>> {
        each_engine!(self, engine => engine.table_names())
    }

    /// Runs `f` in a write transaction and commits it if `f` succeeds; `f`
    /// may run again from the start (see the engines' `write`).
    #[inline]
    pub fn write<R, E, F>(&self, mut f: F) -> Result<R, E>
    where
        F: FnMut(&mut dyn Writer) -> Result<R, E>,
        E: From<Error>,
    {
        each_engine!(self, engine => engine.write(|txn| f(txn)))
    }

    /// Group commit: each job in a transaction of its own kept or rolled
    /// back alone, committed together where the engine can.
    pub fn write_group(&self, jobs: &mut dyn GroupJobs) -> Result<()> {
        each_engine!(self, engine => engine.write_group(jobs))
    }

    /// Runs `f` in a read transaction.
    #[inline]
    pub fn read<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Snapshot<'_>) -> Result<R, E>,
        E: From<Error>,
    {
        let txn = self.read_txn()?;
        f(&txn)
    }

    /// Opens a read transaction.
    #[inline]
    pub fn read_txn(&self) -> Result<Snapshot<'_>> {
        match self {
            Engine::Lmdb(engine) => engine.read_txn().map(Snapshot::Lmdb),
            #[cfg(feature = "slatedb")]
            Engine::Slate(engine) => engine.read_txn().map(Snapshot::Slate),
        }
    }

    /// Map size, bytes in use, reader slots in use and available.
    pub fn usage(&self) -> (usize, u64, u32, u32) {
        match self {
            Engine::Lmdb(engine) => engine.usage(),
            #[cfg(feature = "slatedb")]
            Engine::Slate(_) => (0, 0, 0, 0),
        }
    }

    /// Writes a consistent copy of the store into the folder `dir`.
    pub fn backup(&self, dir: &Path) -> Result<()> {
        each_engine!(self, engine => engine.backup(dir))
    }

    /// Makes every commit durable, whatever the durability mode.
    pub fn sync(&self) -> Result<()> {
        each_engine!(self, engine => engine.sync())
    }
}

/// A read transaction: a consistent view of the store.
pub(crate) enum Snapshot<'e> {
    Lmdb(lmdb::Snapshot<'e>),
    #[cfg(feature = "slatedb")]
    Slate(slate::Snapshot<'e>),
}

impl Reader for Snapshot<'_> {
    #[inline]
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>> {
        each_engine_txn!(self, txn => txn.get(table, key))
    }

    #[inline]
    fn scan<'t>(
        &'t self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<RangeIter<'t>> {
        each_engine_txn!(self, txn => txn.scan(table, lower, upper, reverse))
    }

    #[inline]
    fn len(&self, table: Table) -> Result<u64> {
        each_engine_txn!(self, txn => txn.len(table))
    }

    #[inline]
    fn may_hold_entries(&self, table: Table) -> Result<bool> {
        each_engine_txn!(self, txn => txn.may_hold_entries(table))
    }

    #[inline]
    fn snapshot_id(&self) -> Option<u64> {
        each_engine_txn!(self, txn => txn.snapshot_id())
    }

    #[inline]
    fn table_version(&self, table: Table) -> Option<u64> {
        each_engine_txn!(self, txn => txn.table_version(table))
    }
}

/// Entries of a table in key order, or in reverse.
pub(crate) enum RangeIter<'t> {
    Lmdb(lmdb::RangeIter<'t>),
    /// Boxed: it carries a buffer and the draft's changes.
    #[cfg(feature = "slatedb")]
    Slate(Box<slate::RangeIter<'t>>),
}

impl<'t> Iterator for RangeIter<'t> {
    type Item = Result<(&'t [u8], &'t [u8])>;

    // Inlined into the streaming queries of other crates: a non-generic
    // function is otherwise called, not inlined, across crates.
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RangeIter::Lmdb(range) => range.next(),
            #[cfg(feature = "slatedb")]
            RangeIter::Slate(range) => range.next(),
        }
    }
}

/// An LMDB engine in `dir`, for unit tests.
#[cfg(test)]
pub(crate) fn test_engine(dir: &Path) -> Engine {
    let config = EngineConfig {
        map_size: 1 << 20,
        max_map_size: 1 << 30,
        max_readers: 16,
        max_tables: 4,
        durability: Durability::Full,
        resize_wait: Duration::from_secs(5),
        read_only: false,
        #[cfg(feature = "slatedb")]
        slatedb: None,
    };
    Engine::open(dir, config).unwrap()
}

/// Fails if a value is larger than the engine stores: refused up front, before
/// the engine spends time copying it.
pub(crate) fn check_value_len(what: impl FnOnce() -> String, len: usize) -> Result<()> {
    if len > MAX_VALUE_LEN { Err(Error::ValueTooLarge { what: what(), len, max: MAX_VALUE_LEN }) } else { Ok(()) }
}

/// Makes sure an encoded key fits the engine's limit.
pub(crate) fn check_key_len(what: impl FnOnce() -> String, len: usize) -> Result<()> {
    if len > MAX_KEY_LEN { Err(Error::KeyTooLong { what: what(), len, max: MAX_KEY_LEN }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs three jobs in one group, the middle one kept or not; returns
    /// how often each ran and which of their keys the store holds after.
    fn group_of_three(keep_middle: bool) -> ([u32; 3], Vec<bool>) {
        let dir = tempfile::tempdir().unwrap();
        let engine = test_engine(dir.path());
        let table = engine.open_tables(&["t".to_string()]).unwrap()["t"];
        let mut runs = [0u32; 3];
        {
            let [first, middle, last] = &mut runs;
            let mut a = job(first, table, b"a", true);
            let mut b = job(middle, table, b"b", keep_middle);
            let mut c = job(last, table, b"c", true);
            engine.write_group(&mut [&mut a as &mut GroupJob<'_>, &mut b, &mut c]).unwrap();
        }
        let held = engine.read(|txn| {
            [b"a", b"b", b"c"].iter().map(|key| Ok(txn.get(table, *key)?.is_some())).collect::<Result<_>>()
        });
        (runs, held.unwrap())
    }

    /// A group of jobs taken all at once.
    impl GroupJobs for [&mut GroupJob<'_>; 3] {
        fn job(&mut self, index: usize) -> Option<&mut GroupJob<'_>> {
            self.get_mut(index).map(|job| &mut **job as &mut GroupJob<'_>)
        }

        fn take_more(&mut self) -> bool {
            false
        }
    }

    /// A job that counts its runs, puts `key` and asks to be kept or not.
    fn job<'a>(
        runs: &'a mut u32,
        table: Table,
        key: &'static [u8],
        keep: bool,
    ) -> impl FnMut(&mut dyn Writer) -> bool + Send + 'a {
        move |txn| {
            *runs += 1;
            txn.put(table, key, b"v").unwrap();
            keep
        }
    }

    #[test]
    fn a_group_whose_jobs_are_all_kept_runs_each_job_once() {
        assert_eq!(group_of_three(true), ([1, 1, 1], vec![true, true, true]));
    }

    #[test]
    fn a_job_not_kept_is_rolled_back_alone_and_the_group_runs_again() {
        // First straight in one transaction, which the middle job spoils
        // (the last one does not run); then each job nested, where the
        // middle one is rolled back alone.
        assert_eq!(group_of_three(false), ([2, 2, 1], vec![true, false, true]));
    }

    #[test]
    fn a_value_over_the_engine_limit_is_refused_by_name_before_any_write() {
        let max = MAX_VALUE_LEN;
        assert!(check_value_len(|| unreachable!("not asked for a fitting value"), max).is_ok());
        let err = check_value_len(|| "users record 7".into(), max + 1).unwrap_err();
        assert!(matches!(&err, Error::ValueTooLarge { len, .. } if *len == max + 1), "{err}");
        assert!(err.to_string().starts_with("users record 7 is 4294967296 bytes"), "{err}");
    }
}
