//! The LMDB engine, through heed: environments, transactions, map growth
//! and the conversion of LMDB's errors.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions, MdbError, WithoutTls};

use super::counters::Counters;
use super::files::{DATA_FILE, Empty, WRITER_LOCK_FILE, check_data_file};
use super::folder::FolderWatch;
use super::fork;
use super::gate::{Gate, GatePass};
use super::notify::Notifier;
use super::preallocate::Preallocation;
use super::writers::{WriterLock, WritingHere};
use super::{Durability, EngineConfig, GroupJob, GroupJobs, Reader, Writer};
use crate::error::{Error, Result};

/// Below this much free disk space, a failed write is taken for a full disk.
const DISK_NEARLY_FULL: u64 = 16 << 20;

/// LMDB reports a short write (what a full disk gives) as `EIO`.
fn is_short_write(io: &std::io::Error) -> bool {
    matches!(io.raw_os_error(), Some(libc::EIO | libc::ENOSPC | libc::EDQUOT))
}

/// A named LMDB database: the engine's tables.
#[derive(Clone, Copy)]
pub(crate) struct Table(heed::Database<'static, Bytes, Bytes>);

impl Table {
    /// The LMDB database behind a table handle.
    #[inline]
    fn of(table: super::Table) -> Result<heed::Database<'static, Bytes, Bytes>> {
        match table {
            super::Table::Lmdb(table) => Ok(table.0),
            other => Err(other.not_usable()),
        }
    }
}

/// Tables opened or created in a transaction, by name; they become usable
/// for the environment's whole life once it commits.
struct NewTables<'e>(Vec<(String, heed::Database<'e, Bytes, Bytes>)>);

impl heed::OnCommit for NewTables<'_> {
    type Committed = HashMap<String, super::Table>;

    fn on_commit(self, token: &heed::CommitToken) -> HashMap<String, super::Table> {
        self.0.into_iter().map(|(name, table)| (name, super::Table::Lmdb(Table(table.on_commit(token))))).collect()
    }
}

/// The names of the tables in `env` (the keys of LMDB's unnamed table),
/// in name order, read in `rtxn`.
fn table_names_in(env: &heed::Env<WithoutTls>, rtxn: heed::RoTxn<'_, WithoutTls>) -> heed::Result<Vec<Vec<u8>>> {
    let listed = env.open_databases_and_commit(rtxn, |opener, rtxn| {
        // LMDB keeps the named tables as the keys of its unnamed one.
        let mut names = Vec::new();
        if let Some(main) = opener.open_database::<Bytes, Bytes>(rtxn, None)? {
            for entry in main.iter(rtxn)? {
                let (name, _) = entry?;
                names.push(name.to_vec());
            }
        }
        Ok::<_, heed::Error>(CommitOrAbort::<NewTables<'_>, _>::Abort(names))
    })?;
    match listed {
        CommitOrAbort::Abort(names) => Ok(names),
        CommitOrAbort::Commit(_) => unreachable!("the listing never commits"),
    }
}

/// Refuses an environment another program made: one that holds tables
/// (or plain entries in LMDB's unnamed table), none of them a name that
/// skyshelve reserves (`~locks`, `~catalog`, ...: every store has them
/// from its first open, made in the transaction that makes its first
/// model tables). Checked before anything is written to the folder, so
/// that skyshelve never puts its tables, or records, into another
/// program's environment.
fn refuse_foreign(env: &heed::Env<WithoutTls>, dir: &Path) -> Result<()> {
    let names = env.read_txn().and_then(|rtxn| table_names_in(env, rtxn)).map_err(storage_error)?;
    if names.is_empty() || names.iter().any(|name| name.starts_with(super::RESERVED_PREFIX.as_bytes())) {
        return Ok(());
    }
    const SHOWN: usize = 5;
    let shown = names.iter().take(SHOWN).map(|name| format!("{:?}", String::from_utf8_lossy(name)));
    let mut found = shown.collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        found.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    Err(Error::NotAStore { path: dir.to_owned(), found })
}

/// One open LMDB environment, shared by every `Store` of this process that
/// names the same folder.
pub(crate) struct Engine {
    env: heed::Env<WithoutTls>,
    config: EngineConfig,
    /// Every transaction of this process passes the gate; changing the map
    /// size closes it, because LMDB must not remap while a transaction of
    /// this process is open.
    gate: Gate,
    /// The process that opened the environment, and the fork generation
    /// then: LMDB's lock table must not be used from a forked child.
    opened_in: u32,
    forks_at_open: u64,
    dir: PathBuf,
    /// Serialises writers across threads and processes before LMDB does.
    writer_lock: WriterLock,
    /// Written zeros ahead of the pages in use, for syncing stores.
    preallocation: Option<Preallocation>,
    /// LMDB's page size.
    page_size: u64,
    /// Commit notifications for watchers in every process; `None` where
    /// the folder cannot hold the notification file (read-only folders).
    notifier: Option<Arc<Notifier>>,
    /// Whether the folder is still where it was opened, checked at each
    /// write transaction's start and each watch's creation.
    folder: FolderWatch,
    /// What this process did with the store.
    pub(crate) counters: Counters,
}

impl Engine {
    /// Opens (creating if needed) the environment in `dir`.
    pub fn open(dir: &Path, config: EngineConfig) -> Result<Engine> {
        check_limits(&config)?;
        check_data_file(dir, if config.read_only { Empty::NoStore } else { Empty::NewStore })?;
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(round_to_page(config.map_size)).max_readers(config.max_readers).max_dbs(config.max_tables);
        // SAFETY: heed marks NO_SYNC and NO_META_SYNC unsafe because after an
        // OS crash or a power loss they may leave a data file that LMDB then
        // reads as valid though it is not, and reading a damaged file is not
        // memory-safe. Nothing changes for the running processes, nor after a
        // process crash. The user chooses that risk by name
        // (`Durability::MayLoseLastCommits` loses recent commits but keeps the
        // file consistent; `MayCorruptOnPowerLoss` may damage it); the check at
        // open (`files::check_data_file`) catches a file cut short, not every
        // damage. `Durability::Full` sets neither flag.
        let access = if config.read_only { EnvFlags::READ_ONLY } else { EnvFlags::empty() };
        unsafe { options.flags(durability_flags(config.durability) | access) };
        // SAFETY: LMDB's memory map is only unsafe if the files are modified
        // by something other than LMDB or used through a broken lock file.
        // skyshelve opens each folder once per process (the registry in
        // `store.rs`), never touches data.mdb/lock.mdb itself (record locks
        // use files of their own), and refuses use after fork().
        let env = unsafe { options.open(dir) }.map_err(storage_error)?;
        refuse_foreign(&env, dir)?;
        // Watches are optional: a folder that cannot hold the file has none.
        let notifier = Notifier::open(dir, !config.read_only).ok().map(Arc::new);
        let syncs = !config.read_only && config.durability != Durability::MayCorruptOnPowerLoss;
        let engine = Engine {
            preallocation: syncs.then(|| Preallocation::new(dir.join(DATA_FILE))),
            page_size: env.unnamed_database_stat().page_size.into(),
            env,
            config,
            gate: Gate::default(),
            opened_in: std::process::id(),
            forks_at_open: fork::generation(),
            dir: dir.to_owned(),
            writer_lock: WriterLock::new(dir.join(WRITER_LOCK_FILE)),
            notifier,
            folder: FolderWatch::start(dir)?,
            counters: Counters::default(),
        };
        // Slots of readers killed since the last run would otherwise stay
        // taken until the lock file is rebuilt.
        let cleared = engine.env.clear_stale_readers().map_err(storage_error)?;
        if cleared > 0 {
            tracing::info!(target: "skyshelve::readers", cleared, "stale reader slots cleared at open");
        }
        engine.adopt_recorded_map_size()?;
        Ok(engine)
    }

    /// The commit notifications of this store, for watchers.
    pub fn notifier(&self) -> Result<Arc<Notifier>> {
        self.folder.check()?;
        Notifier::of(self.notifier.as_ref(), &self.dir)
    }

    /// The folder the environment lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current size of the memory map in this process.
    pub fn map_size(&self) -> usize {
        // LMDB reads the size from the map itself: not while it is remapped.
        let _pass = self.gate.enter();
        self.map_size_inside_gate()
    }

    /// `map_size` for a caller that holds a gate pass or has closed the gate.
    fn map_size_inside_gate(&self) -> usize {
        self.env.info().map_size
    }

    /// Whether the environment was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.config.read_only
    }

    /// Whether this thread has a transaction open on the environment.
    pub fn in_transaction_here(&self) -> bool {
        self.gate.depth_here() > 0
    }

    /// Opens the named tables, creating missing ones. The handles stay
    /// valid for the environment's lifetime. Existing tables are opened in
    /// a read transaction, so opening a store does not wait for a writer.
    pub fn open_tables(&self, names: &[String]) -> Result<HashMap<String, super::Table>> {
        let existing = self.open_tables_that_exist(names)?;
        if existing.len() == names.len() { Ok(existing) } else { self.create_tables(names) }
    }

    /// The names of every table in the environment, in name order.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let rtxn = self.read_txn()?;
        let names = table_names_in(&self.env, rtxn.txn).map_err(|err| self.error(err))?;
        Ok(names.into_iter().filter_map(|name| String::from_utf8(name).ok()).collect())
    }

    /// See `Engine::damaged_pages`. The read transaction held meanwhile
    /// keeps every page of the commits walked from being reused.
    pub fn damaged_pages(&self, names: &[&str]) -> Result<Vec<(String, Vec<super::Damage>)>> {
        let _snapshot = self.read_txn()?;
        let file = super::pages::PageFile::open(self.folder.data_file().try_clone()?, &self.dir)?;
        let roots = match file.table_roots() {
            Ok(roots) => roots,
            Err(damage) => return Ok(vec![("(LMDB's tree of table names)".to_owned(), damage)]),
        };
        let walked = names.iter().filter_map(|&name| {
            let root = *roots.get(name.as_bytes())?;
            let damage = file.walk(root, false, &mut |_, _, _| {});
            (!damage.is_empty()).then(|| (name.to_owned(), damage))
        });
        Ok(walked.collect())
    }

    /// See `Engine::salvage`.
    #[cfg(feature = "json")]
    pub fn salvage(&self, name: &str, entry: &mut dyn FnMut(&[u8], &[u8])) -> Result<Vec<super::Damage>> {
        let _snapshot = self.read_txn()?;
        let file = super::pages::PageFile::open(self.folder.data_file().try_clone()?, &self.dir)?;
        match file.table_roots() {
            Ok(roots) => Ok(roots
                .get(name.as_bytes())
                .map(|&root| file.walk(root, false, &mut |key, value, _| entry(key, value)))
                .unwrap_or_default()),
            Err(damage) => Ok(damage),
        }
    }

    /// Opens those of the named tables that exist, in a read transaction.
    pub fn open_tables_that_exist(&self, names: &[String]) -> Result<HashMap<String, super::Table>> {
        let rtxn = self.read_txn()?;
        let opened = self.env.open_databases_and_commit(rtxn.txn, |opener, rtxn| {
            let mut tables = Vec::with_capacity(names.len());
            for name in names {
                if let Some(table) = opener.open_database::<Bytes, Bytes>(rtxn, Some(name))? {
                    tables.push((name.clone(), table));
                }
            }
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(NewTables(tables)))
        });
        match opened.map_err(|err| self.error(err))? {
            CommitOrAbort::Commit(tables) => Ok(tables),
            CommitOrAbort::Abort(()) => unreachable!("the opener never aborts"),
        }
    }

    fn create_tables(&self, names: &[String]) -> Result<HashMap<String, super::Table>> {
        self.write(|txn| {
            let wtxn = txn.txn.take().expect("a fresh transaction");
            let created = self.env.create_databases_and_commit(wtxn, |opener, wtxn| {
                let mut tables = Vec::with_capacity(names.len());
                for name in names {
                    tables.push((name.clone(), opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?));
                }
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(NewTables(tables)))
            });
            match created {
                Ok(CommitOrAbort::Commit(tables)) => Ok(tables),
                Ok(CommitOrAbort::Abort(())) => unreachable!("the opener never aborts"),
                Err(err) => Err(txn.note(err)),
            }
        })
    }

    /// Runs `f` in a write transaction and commits it if `f` succeeds.
    ///
    /// `f` runs again from the start when the map had to grow or adopt a
    /// size grown by another process, so it must not have effects outside
    /// the transaction.
    pub fn write<R, E, F>(&self, mut f: F) -> Result<R, E>
    where
        F: FnMut(&mut Draft<'_>) -> Result<R, E>,
        E: From<Error>,
    {
        if self.is_read_only() {
            return Err(Error::ReadOnly.into());
        }
        let _writing = WritingHere::enter(self)?;
        loop {
            self.check_process()?;
            self.folder.check()?;
            // Dropped in reverse order: the transaction ends, then the
            // writer lock, then the gate pass.
            let gate = self.gate.enter();
            let writer = self.writer_lock.acquire()?;
            self.preallocate();
            let mut txn = match self.env.write_txn() {
                Ok(txn) => Draft::new(txn, self),
                Err(err) => {
                    drop(writer);
                    drop(gate);
                    self.recover_or_fail(err)?;
                    continue;
                }
            };
            let seen_size = self.map_size_inside_gate();
            let outcome = f(&mut txn);
            if txn.map_full {
                drop(txn);
                drop(writer);
                drop(gate);
                self.grow(seen_size)?;
                tracing::debug!(target: "skyshelve::write", "write transaction runs again after map growth");
                self.counters.reran();
                continue;
            }
            if txn.doomed {
                // Dropping the transaction aborts it, whatever `f` returned.
                return outcome;
            }
            let value = outcome?;
            let (topics, bytes) = (txn.published_topics(), txn.bytes);
            match txn.txn.take().map(heed::RwTxn::commit) {
                None | Some(Ok(())) => {
                    if topics != 0 {
                        self.counters.committed(bytes);
                    }
                    if let Some(notifier) = &self.notifier {
                        notifier.published(topics);
                    }
                    return Ok(value);
                }
                Some(Err(heed::Error::Mdb(MdbError::MapFull))) => {
                    drop(writer);
                    drop(gate);
                    self.grow(seen_size)?;
                }
                Some(Err(err)) => return Err(self.error(err).into()),
            }
        }
    }

    /// Runs every job in one write transaction and commits once: group
    /// commit. A job returning `false` (or dooming its transaction) is
    /// rolled back alone; the others stay. Jobs run again from the start
    /// when the map has to grow.
    ///
    /// The jobs first run straight in the transaction, which is all a
    /// group of kept jobs needs. Only when one is not kept does the group
    /// run again, each job in a nested transaction that can be rolled back
    /// alone: LMDB sets up every nested transaction with a dirty-page list
    /// of its own and merges it into the parent at commit, which cost more
    /// than the job itself (a group of eight inserts spent 120 µs in them).
    pub fn write_group(&self, jobs: &mut dyn GroupJobs) -> Result<()> {
        let straight = self.write(|txn| {
            let mut ran = 0;
            loop {
                while let Some(job) = jobs.job(ran) {
                    if !job(txn) || txn.doomed {
                        return Err(Unkept::Discarded);
                    }
                    ran += 1;
                }
                if !jobs.take_more() {
                    return Ok(());
                }
            }
        });
        match straight {
            Ok(()) => Ok(()),
            Err(Unkept::Failed(err)) => Err(err),
            // A job alone was rolled back with the transaction.
            Err(Unkept::Discarded) if jobs.job(1).is_none() => Ok(()),
            Err(Unkept::Discarded) => self.write(|outer| {
                let mut ran = 0;
                while let Some(job) = jobs.job(ran) {
                    self.run_nested(outer, job)?;
                    ran += 1;
                }
                Ok::<_, Error>(())
            }),
        }
    }

    fn run_nested(&self, outer: &mut Draft<'_>, job: &mut GroupJob<'_>) -> Result<()> {
        let (committed, map_full) = {
            let parent = outer.txn.as_mut().expect("write transaction used after commit");
            match self.env.nested_write_txn(parent) {
                Err(err) => (Err(err), false),
                Ok(nested) => {
                    let mut inner = Draft::new(nested, self);
                    let keep = job(&mut inner) && !inner.doomed && !inner.map_full;
                    let committed = match inner.txn.take() {
                        Some(nested) if keep => nested.commit(),
                        _ => Ok(()), // dropping it rolls back only this job's changes
                    };
                    if keep {
                        outer.topics |= inner.published_topics();
                        outer.bytes += inner.bytes;
                    }
                    (committed, inner.map_full)
                }
            }
        };
        if map_full {
            outer.map_full = true;
            let map_size = self.map_size_inside_gate();
            return Err(Error::StorageFull { map_size, reason: "the map is growing".into() });
        }
        committed.map_err(|err| outer.note(err))
    }

    /// Opens a read transaction, adopting a grown map or clearing stale
    /// reader slots first when LMDB asks for it.
    pub fn read_txn(&self) -> Result<Snapshot<'_>> {
        loop {
            self.check_process()?;
            let gate = self.gate.enter();
            match self.env.read_txn() {
                Ok(txn) => return Ok(Snapshot { txn, _gate: gate }),
                Err(err) => {
                    drop(gate);
                    self.recover_or_fail(err)?;
                }
            }
        }
    }

    fn check_process(&self) -> Result<()> {
        if fork::generation() == self.forks_at_open {
            Ok(())
        } else {
            Err(Error::ForkedProcess { opened_in: self.opened_in })
        }
    }

    /// Handles the begin-transaction errors that have a cure; returns the
    /// others.
    fn recover_or_fail(&self, err: heed::Error) -> Result<()> {
        match err {
            heed::Error::Mdb(MdbError::MapResized) => self.adopt_grown_map(),
            heed::Error::Mdb(MdbError::ReadersFull) => {
                let cleared = self.env.clear_stale_readers().map_err(storage_error)?;
                tracing::info!(target: "skyshelve::readers", cleared, "reader table full: stale slots cleared");
                if cleared > 0 { Ok(()) } else { Err(storage_error(err)) }
            }
            other => Err(storage_error(other)),
        }
    }

    /// LMDB maps a newly opened environment at the configured size even when
    /// other processes have grown the map beyond it; take the larger.
    fn adopt_recorded_map_size(&self) -> Result<()> {
        let configured = self.map_size_inside_gate();
        // SAFETY: called from `open`, before any transaction of this process.
        unsafe { self.env.resize(0) }.map_err(storage_error)?;
        if self.map_size_inside_gate() < configured {
            // SAFETY: as above.
            unsafe { self.env.resize(configured) }.map_err(storage_error)?;
        }
        Ok(())
    }

    /// Another process grew the map: map the file at its new size.
    fn adopt_grown_map(&self) -> Result<()> {
        let _closed = self.gate.close(self.config.resize_wait)?;
        // SAFETY: the gate is closed, so no transaction of this process
        // is open while LMDB remaps.
        unsafe { self.env.resize(0) }.map_err(storage_error)
    }

    /// The map was full at `seen_size`: grow it geometrically, within the
    /// ceiling and the free disk space, unless another thread already did.
    fn grow(&self, seen_size: usize) -> Result<()> {
        let closed = self.gate.close(self.config.resize_wait)?;
        let before = self.map_size_inside_gate();
        if before > seen_size {
            return Ok(());
        }
        // First adopt any size another process already set; that may be room enough.
        // SAFETY: as in `adopt_grown_map`.
        unsafe { self.env.resize(0) }.map_err(storage_error)?;
        let current = self.map_size_inside_gate().max(before);
        let target = self.growth_target(current)?;
        // SAFETY: as in `adopt_grown_map`.
        unsafe { self.env.resize(target) }.map_err(storage_error)?;
        self.counters.grew();
        tracing::info!(
            target: "skyshelve::map",
            from = current,
            to = target,
            readers_waited_ms = u64::try_from(closed.waited().as_millis()).unwrap_or(u64::MAX),
            "map grown"
        );
        Ok(())
    }

    fn growth_target(&self, current: usize) -> Result<usize> {
        let file_len = std::fs::metadata(self.dir.join(DATA_FILE)).map(|m| m.len()).unwrap_or(0);
        let free = fs4::available_space(&self.dir).unwrap_or(u64::MAX);
        let disk_room = usize::try_from(file_len.saturating_add(free)).unwrap_or(usize::MAX);
        let wanted = current.saturating_mul(2).max(current + (1 << 20));
        let target = round_to_page(wanted.min(self.config.max_map_size).min(disk_room));
        if target <= current {
            let reason = if disk_room <= current {
                format!("only {free} bytes free on disk")
            } else {
                format!("ceiling of {} bytes reached", self.config.max_map_size)
            };
            return Err(Error::StorageFull { map_size: current, reason });
        }
        Ok(target)
    }

    /// Map size, bytes in use, reader slots in use and available.
    pub fn usage(&self) -> (usize, u64, u32, u32) {
        // LMDB reads these from the map itself: not while it is remapped.
        let _pass = self.gate.enter();
        let info = self.env.info();
        let page_size = u64::from(self.env.unnamed_database_stat().page_size);
        let used = (info.last_page_number as u64 + 1) * page_size;
        (info.map_size, used, info.number_of_readers, info.maximum_number_of_readers)
    }

    /// Writes a compacted copy of the environment (a consistent snapshot,
    /// taken while writers carry on) into the folder `dir`, whole or not at
    /// all: a copy interrupted by a crash leaves no store behind.
    ///
    /// The copy reads the map, so it holds a gate pass: growth in this
    /// process waits for it (up to `resize_wait`).
    pub fn backup(&self, dir: &Path) -> Result<()> {
        crate::fs::write_whole(&dir.join(DATA_FILE), |file| {
            loop {
                self.check_process()?;
                let pass = self.gate.enter();
                match self.env.copy_to_file(file, heed::CompactionOption::Enabled) {
                    Ok(()) => return Ok(()),
                    Err(heed::Error::Mdb(MdbError::MapResized)) => {
                        // Another process grew the map past ours: adopt it and start again.
                        drop(pass);
                        self.adopt_grown_map()?;
                        file.set_len(0)?;
                        std::io::Seek::rewind(file)?;
                    }
                    Err(err) => return Err(self.error(err)),
                }
            }
        })
    }

    /// Extends the data file with zeros ahead of LMDB (see `preallocate`).
    /// Call only with the writer lock held and no write transaction open.
    fn preallocate(&self) {
        let Some(preallocation) = &self.preallocation else { return };
        let info = self.env.info();
        let used = (info.last_page_number as u64 + 1).saturating_mul(self.page_size);
        if let Err(err) = preallocation.ensure_room(used, info.map_size as u64) {
            tracing::debug!(target: "skyshelve::write", error = %err, "the data file was not extended ahead");
        }
    }

    /// Flushes every commit to disk, whatever the durability mode.
    pub fn sync(&self) -> Result<()> {
        let _pass = self.gate.enter();
        self.env.force_sync().map_err(|err| self.error(err))
    }

    /// Converts an LMDB error, naming the setting or the resource behind
    /// the ones a caller can act on.
    fn error(&self, err: heed::Error) -> Error {
        match err {
            heed::Error::Mdb(MdbError::DbsFull) => Error::TooManyTables { max_tables: self.config.max_tables },
            // Seen inside a transaction, which grows the map and runs again.
            heed::Error::Mdb(MdbError::MapFull) => {
                Error::StorageFull { map_size: self.map_size_inside_gate(), reason: "the map is full".into() }
            }
            heed::Error::Io(io) if is_short_write(&io) => match fs4::available_space(&self.dir) {
                Ok(free) if free < DISK_NEARLY_FULL => {
                    let map_size = self.map_size_inside_gate();
                    Error::StorageFull { map_size, reason: format!("the disk is full ({free} bytes free)") }
                }
                _ => Error::Io(io),
            },
            other => storage_error(other),
        }
    }
}

/// A read-only snapshot.
pub(crate) struct Snapshot<'e> {
    txn: heed::RoTxn<'e, WithoutTls>,
    _gate: GatePass<'e>,
}

/// A write transaction. Dropping it without commit aborts it.
pub(crate) struct Draft<'e> {
    txn: Option<heed::RwTxn<'e>>,
    engine: &'e Engine,
    /// LMDB reported MDB_MAP_FULL: the transaction is dead and
    /// `Engine::write` grows the map and runs the closure again.
    map_full: bool,
    /// The model layer found the transaction cannot go on (a record lock
    /// is held elsewhere): it is aborted even if the closure returns `Ok`.
    doomed: bool,
    /// The watch topics the transaction touched (see `notify`); bit 0 is
    /// set by any change at all.
    topics: u64,
    /// Bytes of keys and values put, for `Counters`.
    bytes: u64,
}

/// The LMDB read view of a transaction of either kind; `Reader` is written
/// once over it.
trait ReadView {
    fn ro(&self) -> &heed::RoTxn<'_>;

    /// Whether the view is a committed snapshot (a read transaction).
    const COMMITTED: bool;
}

impl ReadView for Snapshot<'_> {
    fn ro(&self) -> &heed::RoTxn<'_> {
        &self.txn
    }

    const COMMITTED: bool = true;
}

impl ReadView for Draft<'_> {
    fn ro(&self) -> &heed::RoTxn<'_> {
        self.txn.as_ref().expect("write transaction used after commit")
    }

    const COMMITTED: bool = false;
}

impl<T: ReadView> Reader for T {
    fn get(&self, table: super::Table, key: &[u8]) -> Result<Option<&[u8]>> {
        Table::of(table)?.get(self.ro(), key).map_err(storage_error)
    }

    fn scan<'t>(
        &'t self,
        table: super::Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<super::RangeIter<'t>> {
        // LMDB rejects empty keys, and every key is >= the empty one.
        let lower = if lower == Bound::Included(&[][..]) { Bound::Unbounded } else { lower };
        let (table, bounds) = (Table::of(table)?, (lower, upper));
        let inner = if reverse {
            Direction::Reverse(table.rev_range(self.ro(), &bounds).map_err(storage_error)?)
        } else {
            Direction::Forward(table.range(self.ro(), &bounds).map_err(storage_error)?)
        };
        Ok(super::RangeIter::Lmdb(RangeIter { inner }))
    }

    fn len(&self, table: super::Table) -> Result<u64> {
        Table::of(table)?.len(self.ro()).map_err(storage_error)
    }

    /// LMDB's transaction id: a read transaction's is that of the last
    /// commit it sees, numbered across every process of the environment.
    fn snapshot_id(&self) -> Option<u64> {
        T::COMMITTED.then(|| self.ro().id() as u64)
    }
}

impl Writer for Draft<'_> {
    fn put(&mut self, table: super::Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.topics |= 1;
        self.bytes += (key.len() + value.len()) as u64;
        let result = Table::of(table)?.put(self.rw(), key, value);
        result.map_err(|e| self.note(e))
    }

    fn put_new(&mut self, table: super::Table, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        self.topics |= 1;
        self.bytes += (key.len() + value.len()) as u64;
        let result = Table::of(table)?.get_or_put(self.rw(), key, value).map(|taken| taken.map(<[u8]>::to_vec));
        result.map_err(|e| self.note(e))
    }

    fn delete(&mut self, table: super::Table, key: &[u8]) -> Result<bool> {
        self.topics |= 1;
        let result = Table::of(table)?.delete(self.rw(), key);
        result.map_err(|e| self.note(e))
    }

    fn clear(&mut self, table: super::Table) -> Result<()> {
        self.topics |= 1;
        let result = Table::of(table)?.clear(self.rw());
        result.map_err(|e| self.note(e))
    }

    fn doom(&mut self) {
        self.doomed = true;
    }

    fn touch(&mut self, topics: u64) {
        self.topics |= topics;
    }
}

impl<'e> Draft<'e> {
    fn new(txn: heed::RwTxn<'e>, engine: &'e Engine) -> Self {
        Draft { txn: Some(txn), engine, map_full: false, doomed: false, topics: 0, bytes: 0 }
    }

    /// The topics to publish at commit: none if nothing was written (a
    /// model topic alone means only checks ran).
    fn published_topics(&self) -> u64 {
        if self.topics & 1 == 0 { 0 } else { self.topics }
    }

    fn rw(&mut self) -> &mut heed::RwTxn<'e> {
        self.txn.as_mut().expect("write transaction used after commit")
    }

    /// Converts an LMDB error, remembering a full map so the transaction is
    /// retried after growth instead of failing.
    fn note(&mut self, err: heed::Error) -> Error {
        if matches!(err, heed::Error::Mdb(MdbError::MapFull)) {
            self.map_full = true;
        }
        self.engine.error(err)
    }
}

/// Why a group's transaction was not committed.
enum Unkept {
    /// A job asked for its changes to be dropped.
    Discarded,
    Failed(Error),
}

impl From<Error> for Unkept {
    fn from(err: Error) -> Self {
        Unkept::Failed(err)
    }
}

/// Entries of a table in key order, or in reverse.
pub(crate) struct RangeIter<'t> {
    inner: Direction<'t>,
}

enum Direction<'t> {
    Forward(heed::RoRange<'t, Bytes, Bytes>),
    Reverse(heed::RoRevRange<'t, Bytes, Bytes>),
}

impl<'t> Iterator for RangeIter<'t> {
    type Item = Result<(&'t [u8], &'t [u8])>;

    // Inlined, as `super::RangeIter::next` is, into other crates.
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let entry = match &mut self.inner {
            Direction::Forward(range) => range.next(),
            Direction::Reverse(range) => range.next(),
        };
        entry.map(|entry| entry.map_err(storage_error))
    }
}

fn durability_flags(durability: Durability) -> EnvFlags {
    match durability {
        Durability::Full => EnvFlags::empty(),
        Durability::MayLoseLastCommits => EnvFlags::NO_META_SYNC,
        Durability::MayCorruptOnPowerLoss => EnvFlags::NO_SYNC,
    }
}

/// Map sizes must be a multiple of the OS page size; 64 KiB is a multiple
/// of every page size Linux and macOS use. A size past the last multiple
/// is that multiple (mapping it fails, and says so).
fn round_to_page(size: usize) -> usize {
    const PAGE: usize = 64 * 1024;
    size.div_ceil(PAGE).clamp(1, usize::MAX / PAGE) * PAGE
}

/// The most tables an environment is opened with room for. LMDB sets up
/// every transaction's table arrays in proportion (57 bytes a table,
/// zeroed at each begin) and computes their size in a C `int`: a number
/// near `u32::MAX` wraps around and corrupts the heap. This bound keeps a
/// transaction's set-up under 2 MB.
const MAX_TABLES: u32 = 32_768;

/// Refuses limits LMDB cannot be opened with, naming the option, before
/// LMDB sees them.
fn check_limits(config: &EngineConfig) -> Result<()> {
    let refused = |message: String| Err(Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, message)));
    if config.max_tables > MAX_TABLES {
        return refused(format!(
            "room for {} tables was asked (StoreOptions::max_tables, or the models' tables and \
             StoreOptions::map_room); a store opens at most {MAX_TABLES}",
            config.max_tables
        ));
    }
    if config.max_readers == 0 {
        return refused("StoreOptions::max_readers must be at least 1".to_owned());
    }
    Ok(())
}

pub(crate) fn storage_error(err: heed::Error) -> Error {
    match err {
        heed::Error::Io(io) => Error::Io(io),
        // Inside a transaction `Engine::error` reports it with the map's size.
        heed::Error::Mdb(MdbError::MapFull) => Error::StorageFull { map_size: 0, reason: "the map is full".into() },
        other => Error::Storage(other.to_string()),
    }
}
