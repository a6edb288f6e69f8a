//! The SlateDB engine (feature `slatedb`): an LSM tree on object storage —
//! a local folder or an S3-compatible bucket — run on a tokio runtime the
//! store owns, behind the same synchronous seam as LMDB.
//!
//! How the seam maps onto SlateDB:
//! - **tables** are key prefixes: a 4-byte table number before every key.
//!   Number 0 holds the table names (name → number) and the commit count;
//! - **a write transaction** is one writer's draft: its changes are kept in
//!   memory over a snapshot taken when it began, read through by its own
//!   reads, and written as one `WriteBatch` at commit — atomic, and
//!   serialisable because write transactions of a process run one at a time
//!   and SlateDB has one writer process per store (a second one fences the
//!   first, whose next commit fails with `Error::Fenced`);
//! - **a read transaction** is a SlateDB snapshot on the writer; on a
//!   read-only store it reads the `DbReader`, which follows the writer's
//!   commits (see `SlateConfig::poll_interval`);
//! - **values read** are `Bytes` kept by the transaction until it ends, so
//!   that reads can lend them out as LMDB's do: a transaction holds what it
//!   read, which bounds what one transaction should scan;
//! - **durability**: `Full` flushes SlateDB's write-ahead log to object
//!   storage before the commit returns (a local folder syncs each file);
//!   the other modes return once the batch is in the log buffer, which is
//!   flushed every `flush_interval`.

use std::collections::{BTreeMap, HashMap, VecDeque};

mod known;
mod txn;
use known::Known;
use std::future::Future;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use txn::View;
pub(crate) use txn::{Draft, RangeIter, Snapshot};

use slatedb::bytes::Bytes;
use slatedb::config::{DbReaderOptions, ScanOptions, Settings};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::path::Path as ObjectPath;
use slatedb::{CloseReason, Db, DbIterator, DbReader, DbReaderMode, DbSnapshot, ErrorKind, IterationOrder, WriteBatch};
use typed_arena::Arena;

use super::counters::Counters;
use super::notify::Notifier;
use super::writers::WritingHere;
use super::{Durability, EngineConfig, GroupJobs, Reader, Writer};
use crate::error::{Error, Result};

/// Where a SlateDB store keeps its data and how it follows the writer.
#[derive(Debug, Clone)]
pub(crate) struct SlateConfig {
    /// `file:///path` or `s3://bucket/prefix` (also `memory:///` in tests).
    pub url: String,
    /// How often SlateDB flushes the write-ahead log of commits that did
    /// not wait for it (durability other than `Full`).
    pub flush_interval: Duration,
    /// How often a read-only store looks for the writer's new commits.
    pub poll_interval: Duration,
    /// Set by `StoreOptions::slatedb_under`: the objects go under this
    /// base, at the store folder's path (`url` is then made at open).
    pub under: Option<String>,
}

impl SlateConfig {
    pub(crate) fn new(url: String) -> SlateConfig {
        let every = Duration::from_millis(100);
        SlateConfig { url, flush_interval: every, poll_interval: every, under: None }
    }

    /// The configuration a store in `dir` opens with, as the program chose
    /// it: a URL, or a base under which the folder's path is the URL (an
    /// empty base: the folder `objects` inside the store's folder). An
    /// interval set without either keeps LMDB. Nothing outside the
    /// program (no environment variable) changes the engine.
    pub(crate) fn resolve(config: &mut Option<SlateConfig>, dir: &Path) {
        let Some(slate) = config.as_mut() else { return };
        if !slate.url.is_empty() {
            return;
        }
        slate.url = match slate.under.as_deref() {
            None => {
                *config = None;
                return;
            }
            Some("") => format!("file://{}", dir.join("objects").display()),
            Some(base) => {
                format!("{}/{}", base.trim_end_matches('/'), dir.display().to_string().trim_start_matches('/'))
            }
        };
    }
}

/// Retries of an object-store request before the operation fails (SlateDB
/// would retry forever): with its backoff (0.1 s doubling to 1 s) a store
/// that keeps refusing fails a write after about 8 s, with `Error::Io` (an S3
/// server retries each request too: `S3_REQUEST_RETRIES`).
const OBJECT_STORE_RETRIES: u32 = 11;

/// Entries per round trip to the runtime when a range is read.
const SCAN_CHUNK: usize = 256;

/// Table number 0: the table names and the commit count.
const DIRECTORY: super::Table = super::Table::Slate(Table(0));

/// The commit count, bumped by every commit (a name is UTF-8, which never
/// holds the byte 0xFF): readers watch it to see that the writer moved on.
const COMMITS_KEY: [u8; 5] = [0, 0, 0, 0, 0xFF];

/// A range in engine keys (table number and key).
type EngineBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// A draft's changes inside a range, in the range's order.
type Changes<'t> = std::iter::Peekable<Box<dyn Iterator<Item = (&'t Vec<u8>, &'t Option<Vec<u8>>)> + 't>>;

/// An engine key and its value, `None` where a draft deleted it.
type MergedEntry<'t> = (&'t [u8], Option<&'t [u8]>);

/// A table: its number, the prefix of its keys.
#[derive(Clone, Copy)]
pub(crate) struct Table(u32);

impl Table {
    #[inline]
    fn of(table: super::Table) -> Result<Table> {
        match table {
            super::Table::Slate(table) => Ok(table),
            other => Err(other.not_usable()),
        }
    }

    /// The engine's key of `key` in this table.
    fn key(self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(4 + key.len());
        full.extend_from_slice(&self.0.to_be_bytes());
        full.extend_from_slice(key);
        full
    }

    /// The engine's bounds of a range of this table, `None` if it holds no
    /// key at all (LMDB answers such a range with nothing, SlateDB with an
    /// error).
    fn bounds(self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Option<EngineBounds> {
        if let (Bound::Included(low) | Bound::Excluded(low), Bound::Included(high) | Bound::Excluded(high)) =
            (lower, upper)
        {
            let both_included = matches!((lower, upper), (Bound::Included(_), Bound::Included(_)));
            if low > high || (low == high && !both_included) {
                return None;
            }
        }
        let lower = match lower {
            Bound::Included(key) => Bound::Included(self.key(key)),
            Bound::Excluded(key) => Bound::Excluded(self.key(key)),
            Bound::Unbounded => Bound::Included(self.key(&[])),
        };
        let upper = match upper {
            Bound::Included(key) => Bound::Included(self.key(key)),
            Bound::Excluded(key) => Bound::Excluded(self.key(key)),
            Bound::Unbounded => match self.0.checked_add(1) {
                Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
                None => Bound::Unbounded,
            },
        };
        Some((lower, upper))
    }
}

/// The SlateDB handle: the writer, or a reader following one.
#[derive(Clone)]
enum Handle {
    Writer(Db),
    Reader(Arc<DbReader>),
}

/// One open SlateDB store, shared by every `Store` of this process that
/// names the same local folder.
pub(crate) struct Engine {
    handle: Handle,
    config: EngineConfig,
    dir: PathBuf,
    /// Write transactions of this process, one at a time.
    writing: Mutex<()>,
    /// The commit count as of this process's last commit.
    commits: AtomicU64,
    /// What is known of the tables as of the last commit, which lets a
    /// write skip lookups (see `known`).
    known: Known,
    /// Twice the commits this process attempted, plus one while one is
    /// being written: a read snapshot taken while it stays even and
    /// unchanged sees exactly those commits (see `read_txn`).
    writing_clock: AtomicU64,
    /// The sequence numbers of the commits acknowledged before they were
    /// durable (a durability other than `Full`) and not yet known to be:
    /// what a writer fenced now loses, counted in `Error::Fenced`.
    unflushed: Mutex<VecDeque<u64>>,
    /// The writer's status, whose `durable_seq` says how far object
    /// storage holds its commits (`None` on a reader).
    status: Option<tokio::sync::watch::Receiver<slatedb::DbStatus>>,
    notifier: Option<Arc<Notifier>>,
    /// A read-only store's follower thread, stopped when the store closes.
    follower: Option<Follower>,
    pub(crate) counters: Counters,
    /// The runtime SlateDB's tasks run on; last, so that it outlives the
    /// handle when the engine is dropped.
    runtime: Runtime,
}

/// The store's own tokio runtime, shut down without waiting when dropped:
/// that is allowed anywhere, also inside another runtime, where dropping a
/// runtime the usual way would panic (a store opened or closed from a
/// `#[tokio::main]` program).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Engine {
    /// Opens the store at `slate.url`, with `dir` as its local folder (the
    /// watch file and the record-lock files of the processes of this
    /// machine).
    pub fn open(dir: &Path, config: EngineConfig, slate: SlateConfig) -> Result<Engine> {
        let runtime = Runtime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("skyshelve-slatedb")
                .enable_all()
                .build()?,
        ));
        let on = runtime.0.as_ref().expect("just built");
        let (objects, path) = object_store(&slate.url, config.durability == Durability::Full)?;
        let handle = if config.read_only {
            let options = DbReaderOptions {
                manifest_poll_interval: slate.poll_interval,
                object_store_max_retries: Some(OBJECT_STORE_RETRIES),
                ..DbReaderOptions::default()
            };
            let reader = block_on(on, async move {
                DbReader::builder(path, objects)
                    .with_options(options)
                    .with_reader_mode(DbReaderMode::FollowLatest)
                    .build()
                    .await
            })
            .map_err(slate_error)?;
            Handle::Reader(Arc::new(reader))
        } else {
            let settings = Settings {
                flush_interval: Some(slate.flush_interval),
                object_store_max_retries: Some(OBJECT_STORE_RETRIES),
                ..Settings::default()
            };
            Handle::Writer(open_writer(on, &path, &objects, &settings)?)
        };
        let notifier = Notifier::open(dir, true).ok().map(Arc::new);
        let status = match &handle {
            Handle::Writer(db) => Some(db.subscribe()),
            Handle::Reader(_) => None,
        };
        let mut engine = Engine {
            handle,
            config,
            dir: dir.to_owned(),
            writing: Mutex::new(()),
            commits: AtomicU64::new(0),
            known: Known::new(),
            writing_clock: AtomicU64::new(0),
            unflushed: Mutex::new(VecDeque::new()),
            status,
            notifier,
            follower: None,
            counters: Counters::default(),
            runtime,
        };
        let commits = engine.commit_count()?;
        engine.commits.store(commits, Ordering::SeqCst);
        if engine.config.read_only {
            // SlateDB's reader refreshes from object storage once per poll
            // interval; looking at its commit count four times as often
            // (a read of what it replayed, held in memory or its block
            // cache) wakes watchers within about one interval of a commit
            // instead of two.
            engine.follower = engine.follow(commits, slate.poll_interval / 4);
        }
        Ok(engine)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.0.as_ref().expect("the runtime lives until the engine is dropped")
    }

    /// Runs a future on the store's runtime and waits for it, also when
    /// called from inside another tokio runtime (where blocking on it
    /// directly would panic): the future then runs on the store's threads
    /// while this thread waits.
    fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        block_on(self.runtime(), future)
    }

    /// The commit count the store holds.
    fn commit_count(&self) -> Result<u64> {
        let stored = self.get_latest(COMMITS_KEY.to_vec())?;
        Ok(stored.as_deref().and_then(|bytes| bytes.try_into().ok()).map_or(0, u64::from_be_bytes))
    }

    /// Reads `key` outside any transaction, at the newest state.
    fn get_latest(&self, key: Vec<u8>) -> Result<Option<Bytes>> {
        let handle = self.handle.clone();
        self.run(async move {
            match handle {
                Handle::Writer(db) => db.get(key).await,
                Handle::Reader(reader) => reader.get(key).await,
            }
        })
        .map_err(|err| self.failure(err))
    }

    /// A read-only store's follower: a thread that checks the writer's
    /// commit count every poll and wakes this machine's watchers when it
    /// moved (every topic: a reader cannot tell which models changed).
    fn follow(&self, mut seen: u64, every: Duration) -> Option<Follower> {
        let notifier = self.notifier.clone()?;
        let Handle::Reader(reader) = self.handle.clone() else { return None };
        let runtime = self.runtime().handle().clone();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new().name("skyshelve-slatedb-follow".into()).spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let Ok(stored) = runtime.block_on(reader.get(COMMITS_KEY)) else { continue };
                let now = stored.as_deref().and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
                if now != seen {
                    seen = now;
                    notifier.published(u64::MAX);
                }
            }
        });
        spawned.ok().map(|thread| Follower { stop, thread })
    }

    pub fn notifier(&self) -> Result<Arc<Notifier>> {
        Notifier::of(self.notifier.as_ref(), &self.dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_read_only(&self) -> bool {
        self.config.read_only
    }

    /// Whether this thread has a write transaction open (read
    /// transactions block nothing on SlateDB): group commit steps aside
    /// for it, so that a nested write fails instead of waiting for itself.
    pub fn in_transaction_here(&self) -> bool {
        WritingHere::is_open_on(self)
    }

    /// Every table name and its number.
    fn directory(&self) -> Result<Vec<(String, Table)>> {
        let txn = self.read_txn()?;
        let mut tables = Vec::new();
        for entry in txn.range(DIRECTORY, Bound::Unbounded, Bound::Unbounded)? {
            let (name, number) = entry?;
            let (Ok(name), Ok(number)) = (std::str::from_utf8(name), <[u8; 4]>::try_from(number)) else { continue };
            tables.push((name.to_owned(), Table(u32::from_be_bytes(number))));
        }
        Ok(tables)
    }

    pub fn table_names(&self) -> Result<Vec<String>> {
        Ok(self.directory()?.into_iter().map(|(name, _)| name).collect())
    }

    pub fn open_tables_that_exist(&self, names: &[String]) -> Result<HashMap<String, super::Table>> {
        let directory = self.directory()?;
        let found = directory.into_iter().filter(|(name, _)| names.contains(name));
        Ok(found.map(|(name, table)| (name, super::Table::Slate(table))).collect())
    }

    pub fn open_tables(&self, names: &[String]) -> Result<HashMap<String, super::Table>> {
        let existing = self.open_tables_that_exist(names)?;
        if existing.len() == names.len() {
            return Ok(existing);
        }
        self.write(|txn| {
            let mut last = 0u32;
            let mut known = HashMap::new();
            for entry in txn.range(DIRECTORY, Bound::Unbounded, Bound::Unbounded)? {
                let (name, number) = entry?;
                let (Ok(name), Ok(number)) = (std::str::from_utf8(name), <[u8; 4]>::try_from(number)) else {
                    continue;
                };
                let number = u32::from_be_bytes(number);
                last = last.max(number);
                known.insert(name.to_owned(), number);
            }
            let mut opened = HashMap::new();
            for name in names {
                let number = match known.get(name) {
                    Some(number) => *number,
                    None => {
                        // The same limit as LMDB's, so that a program behaves alike on both.
                        let max_tables = self.config.max_tables;
                        if known.len() >= max_tables as usize {
                            return Err(Error::TooManyTables { max_tables });
                        }
                        last = last.checked_add(1).ok_or(Error::TooManyTables { max_tables })?;
                        known.insert(name.clone(), last);
                        txn.put(DIRECTORY, name.as_bytes(), &last.to_be_bytes())?;
                        last
                    }
                };
                opened.insert(name.clone(), super::Table::Slate(Table(number)));
            }
            Ok(opened)
        })
    }

    fn writer(&self) -> Result<&Db> {
        match &self.handle {
            Handle::Writer(db) => Ok(db),
            Handle::Reader(_) => Err(Error::ReadOnly),
        }
    }

    /// Runs `f` in a write transaction and commits it if `f` succeeds.
    pub fn write<R, E, F>(&self, mut f: F) -> Result<R, E>
    where
        F: FnMut(&mut Draft<'_>) -> Result<R, E>,
        E: From<Error>,
    {
        let db = self.writer()?;
        let _writing = WritingHere::enter(self)?;
        let _one_at_a_time = crate::sync::lock(&self.writing);
        // No commit is under way while this thread holds `writing`: the
        // draft reads the last one.
        let mut draft = Draft::new(self, db.clone(), self.known.attempts());
        let outcome = f(&mut draft);
        if draft.doomed {
            return outcome;
        }
        let value = outcome?;
        let topics = draft.published_topics();
        if !draft.changes.is_empty() {
            self.commit(db, std::mem::take(&mut draft.changes))?;
            self.counters.committed(draft.bytes);
        }
        if let Some(notifier) = &self.notifier {
            notifier.published(topics);
        }
        Ok(value)
    }

    /// Writes a draft's changes and the next commit count as one batch,
    /// waiting for object storage when the durability asks for it.
    fn commit(&self, db: &Db, mut changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Result<()> {
        let commits = self.commits.load(Ordering::SeqCst) + 1;
        // Among the changes, so that what is known of the directory's keys
        // counts it too.
        changes.insert(COMMITS_KEY.to_vec(), Some(commits.to_be_bytes().to_vec()));
        let touched = known::summarise(&changes);
        let mut batch = WriteBatch::new();
        for (key, value) in changes {
            match value {
                Some(value) => batch.put_bytes(key.into(), value.into()),
                None => batch.delete(key),
            }
        }
        let db = db.clone();
        let durable = self.config.durability == Durability::Full;
        let _writing = WritingClock::enter(&self.writing_clock);
        let written = self.run(async move {
            let written = db.write(batch).await?;
            if durable { db.flush().await.map(|()| None) } else { Ok(Some(written.seqnum())) }
        });
        let written = match written {
            Ok(written) => written,
            Err(err) => {
                // The batch may or may not have landed.
                self.known.failed();
                return Err(self.failure(err));
            }
        };
        if let Some(seqnum) = written {
            self.note_unflushed(seqnum);
        }
        self.commits.store(commits, Ordering::SeqCst);
        self.known.committed(touched);
        Ok(())
    }

    /// How far object storage holds this writer's commits.
    fn durable_seq(&self) -> u64 {
        self.status.as_ref().map_or(0, |status| status.borrow().durable_seq)
    }

    /// Keeps `seqnum`, a commit acknowledged before it was durable, until
    /// object storage holds it.
    fn note_unflushed(&self, seqnum: u64) {
        let durable = self.durable_seq();
        let mut unflushed = self.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while unflushed.front().is_some_and(|&oldest| oldest <= durable) {
            unflushed.pop_front();
        }
        unflushed.push_back(seqnum);
    }

    /// SlateDB's error as ours; when this writer was fenced, with the
    /// acknowledged commits that object storage never got; when SlateDB
    /// closed the handle for good after a failure, `Stopped`.
    fn failure(&self, err: slatedb::Error) -> Error {
        let closed = self.status.as_ref().and_then(|status| status.borrow().close_reason);
        if matches!(closed, Some(reason) if reason != CloseReason::Fenced && reason != CloseReason::Clean) {
            return Error::Stopped { reason: err.to_string() };
        }
        match slate_error(err) {
            Error::Fenced { .. } => {
                let durable = self.durable_seq();
                let unflushed = self.unflushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let lost = unflushed.iter().filter(|&&seqnum| seqnum > durable).count();
                Error::Fenced { lost: u64::try_from(lost).unwrap_or(u64::MAX) }
            }
            other => other,
        }
    }

    /// Group commit: every job in one draft and one commit (one flush to
    /// object storage for the group). SlateDB has no nested transactions,
    /// so a job works on the draft directly and a job that is not kept
    /// has the draft put back as it was before it.
    pub fn write_group(&self, jobs: &mut dyn GroupJobs) -> Result<()> {
        self.write(|draft| {
            let mut ran = 0;
            loop {
                while let Some(job) = jobs.job(ran) {
                    let before = (draft.changes.clone(), draft.topics, draft.bytes);
                    if !job(draft) || draft.doomed {
                        (draft.changes, draft.topics, draft.bytes) = before;
                        draft.doomed = false;
                    }
                    ran += 1;
                }
                if !jobs.take_more() {
                    return Ok::<_, Error>(());
                }
            }
        })
    }

    pub fn read_txn(&self) -> Result<Snapshot<'_>> {
        match &self.handle {
            Handle::Writer(db) => {
                // The store has one writer, this process: a snapshot taken
                // while no commit of its was under way sees the commits
                // attempted so far, which its table versions are as of.
                let before = self.writing_clock.load(Ordering::Acquire);
                let snapshot = db.snapshot().map_err(|err| self.failure(err))?;
                let attempts = self.known.attempts();
                let after = self.writing_clock.load(Ordering::Acquire);
                let as_of = (before == after && before.is_multiple_of(2)).then_some(attempts);
                Ok(Snapshot::new(self, View::Snapshot(snapshot), as_of))
            }
            // A reader follows another process's commits: no versions.
            Handle::Reader(reader) => Ok(Snapshot::new(self, View::Reader(Arc::clone(reader)), None)),
        }
    }

    /// SlateDB keeps its own copies in object storage; a folder copy of
    /// the store is not offered (export the models instead).
    pub fn backup(&self, _dir: &Path) -> Result<()> {
        Err(Error::Unsupported {
            what: "backup",
            engine: "SlateDB",
            instead: "export the models with export_json_lines, or use the object store's own copies",
        })
    }

    /// Flushes SlateDB's write-ahead log to object storage.
    pub fn sync(&self) -> Result<()> {
        let db = self.writer()?.clone();
        self.run(async move { db.flush().await }).map_err(|err| self.failure(err))
    }
}

/// The follower thread of a read-only store and the way to stop it.
struct Follower {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(Follower { stop, thread }) = self.follower.take() {
            drop(stop);
            let _ = thread.join();
        }
        let handle = self.handle.clone();
        // Close cleanly, flushing the log; a close that fails loses nothing
        // acknowledged with `Full`. The runtime shuts down after this.
        let _ = self.run(async move {
            match handle {
                Handle::Writer(db) => db.close().await,
                Handle::Reader(reader) => reader.close().await,
            }
        });
    }
}

/// Runs `future` on `runtime` and waits for it; from inside a tokio
/// runtime the future is spawned onto `runtime` and this thread waits for
/// its answer, as blocking on it directly would panic there.
fn block_on<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(future);
    }
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = answer.send(future.await);
    });
    answered.recv().expect("the store's runtime runs until the store is dropped")
}

/// Makes `Engine::writing_clock` odd while a commit is written, and even
/// again afterwards, whether the commit succeeded or not.
struct WritingClock<'c>(&'c AtomicU64);

impl<'c> WritingClock<'c> {
    fn enter(clock: &'c AtomicU64) -> WritingClock<'c> {
        clock.fetch_add(1, Ordering::AcqRel);
        WritingClock(clock)
    }
}

impl Drop for WritingClock<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Resolves an object-store URL into the store and the path inside it.
/// `s3://` reads the usual AWS variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for S3-compatible
/// servers, `AWS_ALLOW_HTTP=true` for plain HTTP).
/// A local folder syncs each file it writes (and its folder) when `fsync`:
/// `Durability::Full` then survives an OS crash or power loss, as on LMDB.
fn object_store(url: &str, fsync: bool) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let invalid = |reason: String| Error::InvalidName { name: url.to_owned(), reason: leak(reason) };
    let parsed = url::Url::parse(url).map_err(|err| invalid(format!("not an object-store URL: {err}")))?;
    if parsed.scheme() == "file" {
        // The local file system needs its folder to exist; owner-only, as
        // an LMDB store's, since SlateDB's files follow the umask.
        crate::fs::create_private_dir(Path::new(parsed.path()))?;
        let local = slatedb::object_store::local::LocalFileSystem::new_with_prefix(parsed.path())
            .map_err(|err| invalid(err.to_string()))?
            .with_fsync(fsync);
        return Ok((Arc::new(local), ObjectPath::from("")));
    }
    let (scheme, path) =
        slatedb::object_store::ObjectStoreScheme::parse(&parsed).map_err(|err| invalid(err.to_string()))?;
    if scheme != slatedb::object_store::ObjectStoreScheme::AmazonS3 {
        return Err(invalid("not an S3 or file URL (the engine is built with S3 support only)".into()));
    }
    let path = ObjectPath::parse(path).map_err(|err| invalid(err.to_string()))?;
    let s3 = slatedb::object_store::aws::AmazonS3Builder::from_env()
        .with_url(url)
        .with_retry(S3_REQUEST_RETRIES)
        .build()
        .map_err(|err| invalid(err.to_string()))?;
    Ok((Arc::new(s3), path))
}

/// How the S3 client retries one request. Its default backs off up to 15 s
/// per try for three minutes, and SlateDB retries each operation again on
/// top of that (`OBJECT_STORE_RETRIES`): with the default, a write to a
/// server that had stopped failed after about 50 s. Here one request gives
/// up within a second, and a write after 15 to 20 s.
const S3_REQUEST_RETRIES: slatedb::object_store::RetryConfig = slatedb::object_store::RetryConfig {
    backoff: slatedb::object_store::BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        base: 2.0,
    },
    max_retries: 3,
    retry_timeout: Duration::from_secs(10),
};

/// `Error::InvalidName` holds a static reason; URL errors are rare and
/// end the open, so leaking their text is bounded.
fn leak(reason: String) -> &'static str {
    Box::leak(reason.into_boxed_str())
}

/// How many times a writer's open is tried (see `open_writer`).
const WRITER_OPEN_ATTEMPTS: u32 = 3;

/// Opens the store as its writer. Two writers opening at once race to
/// write the same manifest version, and SlateDB fails the loser's open
/// with a data error ("version already exists"): opened again, it reads
/// the winner's manifest and fences it, as any later writer would. Data
/// that is really damaged fails every attempt the same way.
fn open_writer(
    on: &tokio::runtime::Runtime,
    path: &ObjectPath,
    objects: &Arc<dyn ObjectStore>,
    settings: &Settings,
) -> Result<Db> {
    let mut attempt = 1;
    loop {
        let (path, objects, settings) = (path.clone(), Arc::clone(objects), settings.clone());
        match block_on(on, async move { Db::builder(path, objects).with_settings(settings).build().await }) {
            Ok(db) => return Ok(db),
            Err(err) if err.kind() == ErrorKind::Data && attempt < WRITER_OPEN_ATTEMPTS => attempt += 1,
            Err(err) => return Err(slate_error(err)),
        }
    }
}

/// Converts SlateDB's errors, naming the one a caller acts on: fenced by a
/// newer writer.
fn slate_error(err: slatedb::Error) -> Error {
    match err.kind() {
        ErrorKind::Closed(CloseReason::Fenced) => Error::Fenced { lost: 0 },
        ErrorKind::Unavailable => Error::Io(std::io::Error::other(err.to_string())),
        _ => Error::Storage(err.to_string()),
    }
}
