//! `Store`: an open folder, shared by every clone and by every `Store::open`
//! of the same folder in this process.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use crate::admin::Progress;
use crate::engine::Writer;
use crate::engine::{Durability, Engine, EngineConfig, Table};
use crate::error::{Error, Result};
use crate::fs::create_private_dir;
use crate::group::Group;
use crate::lock::{Backoff, Locks, Owner};
use crate::map::Map;
use crate::model::{ModelInfo, Persistent, models};
use crate::txn::{ReadTx, WriteTx};
use crate::verify::VerifyReport;

/// The tables of one model.
pub(crate) struct ModelTables {
    pub info: &'static ModelInfo,
    pub main: Table,
    pub indexes: Vec<Table>,
    /// The record history, for a model that keeps one (see `history`).
    pub history: Option<Table>,
    /// The position of the model's expiry index, if it has one (see
    /// `expiry`), found once at open.
    pub expiry: Option<usize>,
    /// The model's catalog entry when this program's indexes are complete,
    /// encoded: checks compare stored bytes against it.
    pub catalog_entry: Vec<u8>,
    /// The parent indexes of this store's models that point at this model
    /// and ask for something when a record of it is deleted.
    pub referrers: Vec<Referrer>,
    /// The model's watch topic, as a bit (see `engine::topic_of`).
    pub topic: u64,
}

/// A parent index pointing at a model, with an `on_delete` action.
pub(crate) struct Referrer {
    pub child: &'static ModelInfo,
    pub position: usize,
    pub on_delete: crate::OnDelete,
}

/// The parent indexes among `models` that point at `parent` and act when
/// a record of it is deleted.
fn referrers_of(parent: &ModelInfo, models: &[&'static ModelInfo]) -> Vec<Referrer> {
    let mut referrers = Vec::new();
    for &child in models {
        for (position, index) in child.indexes.iter().enumerate() {
            let points_here = index.parent().is_some_and(|info| info.name == parent.name);
            if points_here && index.on_delete != crate::OnDelete::Leave {
                referrers.push(Referrer { child, position, on_delete: index.on_delete });
            }
        }
    }
    referrers
}

/// What every clone of a `Store` shares.
pub(crate) struct Shared {
    // Field order is drop order: the environment closes before a temporary
    // folder is removed.
    pub(crate) engine: Engine,
    /// Removes the store from `OPEN_ENVIRONMENTS` once the environment above is closed.
    registration: Registration,
    /// By `ModelInfo::slot` index; `None` for numbers of no model here.
    models: Vec<Option<ModelTables>>,
    maps: Mutex<HashMap<String, Table>>,
    pub(crate) lock_table: Table,
    /// The index catalog; see `catalog`.
    pub(crate) catalog: Table,
    /// Sequence counters; see `sequence`. Absent only from a store opened
    /// read-only that no program with sequences has written.
    pub(crate) sequences: Option<Table>,
    /// Set when concurrent durable writes share commits.
    group: Option<Group>,
    pub(crate) locks: Locks,
    /// How long a write waits for a record lock held elsewhere.
    pub(crate) lock_wait: Duration,
    /// Set once the background purger runs (see `expiry`).
    pub(crate) purger: std::sync::OnceLock<()>,
    _temporary: Option<tempfile::TempDir>,
}

impl Shared {
    /// The tables of every model of this program.
    pub(crate) fn all_tables(&self) -> impl Iterator<Item = &ModelTables> {
        self.models.iter().flatten()
    }

    /// The tables of the model named `name`.
    #[cfg(feature = "json")]
    pub(crate) fn tables_named(&self, name: &str) -> Result<&ModelTables> {
        self.all_tables()
            .find(|tables| tables.info.name == name)
            .ok_or_else(|| Error::UnknownModel { name: name.to_owned() })
    }

    /// The tables of model `M`, created when the store opened.
    pub(crate) fn tables<M: Persistent>(&self) -> Result<&ModelTables> {
        self.tables_of(M::INFO)
    }

    /// The tables of the model `info` describes.
    pub(crate) fn tables_of(&self, info: &ModelInfo) -> Result<&ModelTables> {
        self.models.get(info.slot.index()).and_then(Option::as_ref).ok_or(Error::ModelNotOpened { model: info.name })
    }
}

/// A handle on a skyshelve store: an LMDB environment in one folder.
///
/// Cheap to clone; every clone, and every `Store::open` of the same folder
/// in this process, shares one environment. Any number of processes may
/// open the same folder at once.
///
/// ```
/// use skyshelve::Store;
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let again = Store::open(dir.path().join("."))?;
/// assert!(store.same_environment(&again));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path()).finish_non_exhaustive()
    }
}

/// Environments open in this process, by the folder's device and inode so
/// that symlinks and other spellings of a path find the same one. LMDB must
/// not be opened twice in one process. An entry stays until its environment
/// is closed, so that an open racing the last drop of a store waits for the
/// close instead of failing (see `Registration`).
static OPEN_ENVIRONMENTS: Mutex<Vec<(FolderId, Weak<Shared>)>> = Mutex::new(Vec::new());

/// Signalled whenever an entry leaves `OPEN_ENVIRONMENTS`.
static ENVIRONMENT_CLOSED: Condvar = Condvar::new();

fn open_environments() -> MutexGuard<'static, Vec<(FolderId, Weak<Shared>)>> {
    crate::sync::lock(&OPEN_ENVIRONMENTS)
}

/// A store's entry in `OPEN_ENVIRONMENTS`, set once the store is opened;
/// dropped after the environment (field order), it removes the entry.
#[derive(Default)]
struct Registration(OnceLock<FolderId>);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(id) = self.0.get() {
            open_environments().retain(|(known, weak)| known != id || weak.strong_count() > 0);
            ENVIRONMENT_CLOSED.notify_all();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FolderId {
    device: u64,
    inode: u64,
}

impl FolderId {
    fn of(path: &Path) -> Result<FolderId> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)?;
        Ok(FolderId { device: meta.dev(), inode: meta.ino() })
    }
}

impl Store {
    /// Opens the store in folder `path`, creating the folder if needed, with
    /// default options (see [`StoreOptions`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = skyshelve::Store::open(dir.path().join("shelf"))?;
    /// assert!(store.path().ends_with("shelf"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        StoreOptions::new().open(path)
    }

    /// Options for opening a store.
    ///
    /// ```
    /// use skyshelve::{Durability, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::options()
    ///     .map_size(64 << 20)
    ///     .durability(Durability::MayLoseLastCommits)
    ///     .open(dir.path())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn options() -> StoreOptions {
        StoreOptions::new()
    }

    /// Opens a store in a fresh temporary folder, removed when the last
    /// clone of the store is dropped.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let path = store.path().to_owned();
    /// assert!(path.exists());
    /// drop(store);
    /// assert!(!path.exists());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn temporary() -> Result<Store> {
        StoreOptions::new().open_temporary()
    }

    /// A handle on an open store's shared state.
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Store {
        Store { shared }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The store's folder.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// assert!(store.path().join("data.mdb").exists());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn path(&self) -> &Path {
        self.shared.engine.dir()
    }

    /// Whether two handles share one environment.
    ///
    /// ```
    /// let (a, b) = (skyshelve::Store::temporary()?, skyshelve::Store::temporary()?);
    /// assert!(a.same_environment(&a.clone()));
    /// assert!(!a.same_environment(&b));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn same_environment(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The current size of the memory map in bytes. It grows by itself.
    ///
    /// ```
    /// let store = skyshelve::Store::options().map_size(4 << 20).open_temporary()?;
    /// assert!(store.map_size() >= 4 << 20);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn map_size(&self) -> usize {
        self.shared.engine.map_size()
    }

    /// Flushes all commits to disk, whatever the durability mode.
    ///
    /// ```
    /// let store = skyshelve::Store::options().durability(skyshelve::Durability::MayCorruptOnPowerLoss).open_temporary()?;
    /// store.sync()?; // everything committed so far is now on disk
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn sync(&self) -> Result<()> {
        self.shared.engine.sync()
    }

    /// Runs `f` with a read transaction: a consistent snapshot that other
    /// writers do not disturb. Streaming queries live on [`ReadTx`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_store_23")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// # let store = Store::temporary()?;
    /// # Item { id: 1 }.save(&store)?;
    /// let (count, first) = store.read(|tx| {
    ///     Ok((tx.count::<Item>()?, Item::load_in(tx, &1)?))
    /// })?;
    /// assert_eq!(count, 1);
    /// assert!(first.is_some());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn read<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&ReadTx<'_>) -> Result<R>,
    {
        crate::diagnostics::reported(self.read_with_error(f))
    }

    /// [`read`](Store::read) for a closure with an error type of its own,
    /// which skyshelve's errors convert into.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_store_read_with_error")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// # let store = Store::temporary()?;
    /// #[derive(Debug)]
    /// enum AppError { Store(skyshelve::Error), Missing }
    /// impl From<skyshelve::Error> for AppError {
    ///     fn from(err: skyshelve::Error) -> Self { AppError::Store(err) }
    /// }
    /// let found = store.read_with_error(|tx| Item::load_in(tx, &1)?.ok_or(AppError::Missing));
    /// assert!(matches!(found, Err(AppError::Missing)));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn read_with_error<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&ReadTx<'_>) -> Result<R, E>,
        E: From<Error>,
    {
        let txn = self.shared.engine.read_txn()?;
        f(&ReadTx::new(&self.shared, &txn))
    }

    /// Runs `f` in a write transaction: everything it writes is committed
    /// together when it returns `Ok`, and nothing is when it returns `Err`.
    ///
    /// Write transactions are serialized across threads and processes.
    /// `f` may run more than once when the store has to grow first; each
    /// run starts from a clean transaction, so keep side effects out of it.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Error, Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_store_24")]
    /// # struct Account { #[persistent(key)] id: u32, balance: i64 }
    /// # let store = Store::temporary()?;
    /// # Account { id: 1, balance: 10 }.save(&store)?;
    /// # Account { id: 2, balance: 0 }.save(&store)?;
    /// store.write(|tx| {
    ///     Account::update_in(tx, &1, |a| a.balance -= 5)?;
    ///     Account::update_in(tx, &2, |a| a.balance += 5)?;
    ///     Ok(())
    /// })?;
    /// // A failing closure leaves nothing behind.
    /// let failed = store.write(|tx| {
    ///     Account::update_in(tx, &1, |a| a.balance -= 5)?;
    ///     Account::update_in(tx, &99, |a| a.balance += 5)
    /// });
    /// assert!(matches!(failed, Err(Error::NotFound { .. })));
    /// assert_eq!(Account::load(&store, &1)?.unwrap().balance, 5);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn write<R, F>(&self, f: F) -> Result<R>
    where
        F: FnMut(&mut WriteTx<'_>) -> Result<R> + Send,
        R: Send,
    {
        crate::diagnostics::reported(self.write_as(None, f))
    }

    /// [`write`](Store::write) for a closure with an error type of its
    /// own, which skyshelve's errors convert into: the transaction commits
    /// when the closure returns `Ok`, and nothing is written when it
    /// returns `Err`, whatever the error type.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_store_write_with_error")]
    /// # struct Account { #[persistent(key)] id: u32, balance: i64 }
    /// # let store = Store::temporary()?;
    /// # Account { id: 1, balance: 10 }.save(&store)?;
    /// #[derive(Debug)]
    /// enum AppError { Store(skyshelve::Error), Overdrawn }
    /// impl From<skyshelve::Error> for AppError {
    ///     fn from(err: skyshelve::Error) -> Self { AppError::Store(err) }
    /// }
    /// let withdrawn = store.write_with_error(|tx| {
    ///     let account = Account::update_in(tx, &1, |a| a.balance -= 50)?;
    ///     if account.balance < 0 { Err(AppError::Overdrawn) } else { Ok(account.balance) }
    /// });
    /// assert!(matches!(withdrawn, Err(AppError::Overdrawn)));
    /// assert_eq!(Account::load(&store, &1)?.unwrap().balance, 10, "rolled back");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn write_with_error<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnMut(&mut WriteTx<'_>) -> Result<R, E> + Send,
        R: Send,
        E: From<Error> + Send,
    {
        self.write_as(None, f)
    }

    /// `write` on behalf of a record-lock guard (`owner`), whose own record
    /// it may write. A transaction that meets a record locked by someone
    /// else is aborted, and run again once the lock is gone.
    pub(crate) fn write_as<R, E, F>(&self, owner: Option<Owner>, mut f: F) -> Result<R, E>
    where
        F: FnMut(&mut WriteTx<'_>) -> Result<R, E> + Send,
        R: Send,
        E: From<Error> + Send,
    {
        let mut backoff = Backoff::until(Some(self.shared.lock_wait), &self.shared.engine.counters);
        let caller = std::thread::current().id();
        loop {
            let mut blocked = None;
            let result = match &self.shared.group {
                // A writer with a transaction of its own open on this thread
                // writes alone: a group it led could not grow the map while
                // that transaction stays open, and other writers would wait
                // for it.
                Some(group) if !self.shared.engine.in_transaction_here() => {
                    self.write_in_group(group, owner, caller, &mut f, &mut blocked)
                }
                _ => self.shared.engine.write(|txn| {
                    let mut tx = WriteTx::new(&self.shared, txn, owner, caller, &mut blocked);
                    let outcome = f(&mut tx);
                    tx.finish(outcome)
                }),
            };
            match blocked {
                None => return result,
                Some(locked) if !backoff.wait() => return Err(E::from(locked)),
                Some(_) => self.shared.engine.counters.reran(),
            }
        }
    }

    /// A handle that waits for the next commit to this store by any thread
    /// of any process (see [`Watch`](crate::Watch)); for one model's
    /// commits, [`Persistent::watch`].
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let mut watch = store.watch()?;
    /// assert!(!watch.has_changed());
    /// store.write(|tx| tx.next_sequence("ticks").map(drop))?;
    /// assert!(watch.wait_timeout(std::time::Duration::from_secs(5)));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn watch(&self) -> Result<crate::Watch> {
        Ok(crate::Watch::new(self.shared.engine.notifier()?, None))
    }

    /// Checks every model of this program in one snapshot: every record
    /// decodes, every index entry points at a record that calls for it,
    /// every record has all its index entries, and unique indexes hold one
    /// record per value.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let report = store.verify()?;
    /// assert!(report.is_clean(), "{report}");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        self.read(|tx| {
            let mut report = VerifyReport::default();
            for tables in self.shared.all_tables() {
                report.models.push((tables.info.ops.verify)(tx)?);
            }
            report.models.sort_by_key(|m| m.model);
            Ok(report)
        })
    }

    /// One attempt of `write_as` through group commit: `f` runs, perhaps on
    /// another writer's thread, in a nested transaction of a shared commit.
    fn write_in_group<R, E, F>(
        &self,
        group: &Group,
        owner: Option<Owner>,
        caller: std::thread::ThreadId,
        f: &mut F,
        blocked: &mut Option<Error>,
    ) -> Result<R, E>
    where
        F: FnMut(&mut WriteTx<'_>) -> Result<R, E> + Send,
        R: Send,
        E: From<Error> + Send,
    {
        let shared = &*self.shared;
        let mut result = None;
        let mut job = |txn: &mut dyn Writer| {
            let mut tx = WriteTx::new(shared, txn, owner, caller, blocked);
            let outcome = f(&mut tx);
            let outcome = tx.finish(outcome);
            let keep = outcome.is_ok();
            result = Some(outcome);
            keep
        };
        match group.run(&shared.engine, &mut job) {
            // The commit failed: nothing of this writer is durable, whatever its closure said.
            Err(err) => Err(E::from(err)),
            Ok(()) => result.unwrap_or_else(|| Err(E::from(Error::Storage("group commit skipped a writer".into())))),
        }
    }

    /// A typed key-value map named `name`, for data without a model.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let settings = store.map::<String, u32>("settings")?;
    /// settings.insert(&"retries".to_string(), &3)?;
    /// assert_eq!(settings.get("retries")?, Some(3));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn map<K, V>(&self, name: &str) -> Result<Map<K, V>>
    where
        K: crate::Key,
        V: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        validate_name(name)?;
        // `~` cannot start a model name (the derive allows identifier
        // characters only), so maps never meet model tables.
        let table_name = crate::tables::map_table(name);
        let mut maps = crate::sync::lock(&self.shared.maps);
        let table = match maps.get(&table_name) {
            Some(table) => *table,
            None => {
                let created = self.shared.engine.open_tables(std::slice::from_ref(&table_name))?;
                let table = created[&table_name];
                maps.insert(table_name, table);
                table
            }
        };
        Ok(Map::new(self.clone(), name.to_owned(), table))
    }
}

/// Options for opening a [`Store`]; see [`Store::options`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    config: EngineConfig,
    /// Whether this program's index definitions replace others' of the
    /// same model version when the store opens.
    take_over_indexes: bool,
    lock_wait: Duration,
    group_commit: bool,
    /// `None`: every model of the program.
    models: Option<Vec<&'static ModelInfo>>,
    build_progress: BuildProgress,
    /// How often a background thread purges expired records, if at all.
    purge_every: Option<Duration>,
}

/// The caller's hook for index-build progress at open.
#[derive(Clone, Default)]
struct BuildProgress(Option<Arc<BuildProgressFn>>);

type BuildProgressFn = dyn Fn(&str, Progress) + Send + Sync;

impl fmt::Debug for BuildProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreOptions {
    /// The defaults: 16 MiB initial map growing up to 1 TiB, full
    /// durability with group commit, 1022 readers, 30 s waits for map
    /// growth and record locks, read-write.
    ///
    /// ```
    /// let options = skyshelve::StoreOptions::new();
    /// let store = options.open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn new() -> Self {
        StoreOptions {
            config: EngineConfig {
                map_size: 16 << 20,
                max_map_size: 1 << 40,
                max_readers: 1022,
                // Set at open from the models of the program: see `open_shared`.
                max_tables: 0,
                durability: Durability::Full,
                resize_wait: Duration::from_secs(30),
                read_only: false,
            },
            take_over_indexes: false,
            lock_wait: Duration::from_secs(30),
            group_commit: true,
            models: None,
            build_progress: BuildProgress::default(),
            purge_every: None,
        }
    }

    /// Purges expired records ([`Store::purge_expired`]) on a background
    /// thread every `interval`, for as long as the store is open in this
    /// process (one thread per store, whichever open asked first). Expired
    /// records are invisible to reads either way; purging frees space.
    ///
    /// ```
    /// let store = skyshelve::Store::options().purge_expired_every(std::time::Duration::from_secs(60)).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn purge_expired_every(mut self, interval: Duration) -> Self {
        self.purge_every = Some(interval);
        self
    }

    /// Opens the store for these models only, instead of every model of
    /// the program: for tools that work on some models, and to keep LMDB's
    /// per-transaction work small in programs with very many models. The
    /// other models' methods then fail on this store with
    /// [`Error::ModelNotOpened`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// #[persistent(name = "doc_store_only_note")]
    /// struct Note { #[persistent(key)] id: u32 }
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// #[persistent(name = "doc_store_only_tag")]
    /// struct Tag { #[persistent(key)] id: u32 }
    ///
    /// let store = Store::options().models([Note::INFO]).open_temporary()?;
    /// Note { id: 1 }.save(&store)?;
    /// assert!(Tag { id: 1 }.save(&store).is_err());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn models(mut self, models: impl IntoIterator<Item = &'static ModelInfo>) -> Self {
        let mut models: Vec<_> = models.into_iter().collect();
        models.sort_by_key(|m| m.name);
        models.dedup_by_key(|m| std::ptr::from_ref::<ModelInfo>(m));
        self.models = Some(models);
        self
    }

    /// Calls `progress(model, progress)` while indexes are built at open:
    /// an index that is new, or whose definition changed, is built from
    /// the model's existing records before `open` returns (see
    /// [`IndexInfo::fingerprint`](crate::IndexInfo::fingerprint)).
    ///
    /// ```
    /// let store = skyshelve::Store::options()
    ///     .on_index_build(|model, progress| eprintln!("indexing {model}: {}", progress.done))
    ///     .open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn on_index_build(mut self, progress: impl Fn(&str, Progress) + Send + Sync + 'static) -> Self {
        self.build_progress = BuildProgress(Some(Arc::new(progress)));
        self
    }

    /// Opens the store for reading only: nothing is written, not even the
    /// index catalog, and every write fails with [`Error::ReadOnly`]. The
    /// folder must hold a store already. Models whose tables the store does
    /// not have (never opened by a writer) are left out, and so are their
    /// methods on this store. For reports and tools that must never disturb
    /// the programs that write.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Error, Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_store_read_only")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// let dir = tempfile::tempdir()?;
    /// Item { id: 1 }.save(&Store::open(dir.path())?)?;
    /// # // The writer's handle is dropped above, so this open is a new environment.
    /// let report = Store::options().read_only().open(dir.path())?;
    /// assert_eq!(Item::count(&report)?, 1);
    /// assert!(matches!(Item { id: 2 }.save(&report), Err(Error::ReadOnly)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.config.read_only = true;
        self
    }

    /// Makes this program's index definitions the store's when it opens,
    /// even where the store's catalog holds other definitions written at
    /// the same model version (default off). Without it, a program takes a
    /// model's indexes over only with a higher model version, so that a
    /// program that merely lacks an index (a report, an older build) never
    /// drops it or stops the writers that keep it; see "Index changes" in
    /// the README. The admin command line's `reindex` opens with it.
    ///
    /// ```
    /// let store = skyshelve::Store::options().take_over_indexes(true).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn take_over_indexes(mut self, take_over: bool) -> Self {
        self.take_over_indexes = take_over;
        self
    }

    /// Lets concurrent durable writes of this process share one commit
    /// (default on; `group_commit(false)` turns it off). With
    /// [`Durability::Full`], a commit costs two fsyncs whatever it holds
    /// (one with [`Durability::MayLoseLastCommits`]);
    /// with group commit, writers that arrive while a commit is under way
    /// are committed together in the next one, each in a nested transaction
    /// of its own so that one writer's failure undoes only its own changes,
    /// and each returns once its commit is durable. A writer that finds no
    /// other waiting commits alone, in a plain transaction, so a single
    /// writer pays nothing measurable for it (see the README's benchmark).
    ///
    /// What it changes: a write closure may run on another writer's thread
    /// (closures are `Send` for that reason), and a panic in a closure is
    /// caught on the leader's thread and resumed on its own.
    /// [`Durability::MayCorruptOnPowerLoss`] does not sync at commit, so
    /// it never groups.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_store_group")]
    /// # struct Event { #[persistent(key)] id: u64 }
    /// let store = Store::options().group_commit(true).open_temporary()?;
    /// std::thread::scope(|scope| {
    ///     for thread in 0..4u64 {
    ///         let store = &store;
    ///         scope.spawn(move || (0..10).try_for_each(|i| Event { id: thread * 10 + i }.insert(store)));
    ///     }
    /// });
    /// assert_eq!(Event::count(&store)?, 40);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn group_commit(mut self, enabled: bool) -> Self {
        self.group_commit = enabled;
        self
    }

    /// How long a write of a record that another holder has locked (see
    /// [`Persistent::lock`]) waits before failing with [`Error::Locked`].
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().lock_wait(std::time::Duration::from_millis(500)).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The initial size of the memory map; it grows by itself when full.
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().map_size(8 << 20).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn map_size(mut self, bytes: usize) -> Self {
        self.config.map_size = bytes;
        self
    }

    /// The ceiling for automatic map growth; past it writes fail with
    /// [`Error::StorageFull`].
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().max_map_size(1 << 30).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn max_map_size(mut self, bytes: usize) -> Self {
        self.config.max_map_size = bytes;
        self
    }

    /// How commits reach the disk (default [`Durability::Full`]).
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().durability(skyshelve::Durability::MayLoseLastCommits).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.config.durability = durability;
        self
    }

    /// The number of concurrent read transactions across all processes.
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().max_readers(256).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn max_readers(mut self, readers: u32) -> Self {
        self.config.max_readers = readers;
        self
    }

    /// The number of tables this process can use: by default one per model
    /// and per index of the program, the lock table, and room for
    /// [`MAP_ROOM`] maps. LMDB sets up every read transaction in proportion
    /// to this number, so it is kept small.
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().max_tables(512).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn max_tables(mut self, tables: u32) -> Self {
        self.config.max_tables = tables;
        self
    }

    /// How long map growth waits for this process's open transactions to
    /// end before failing with [`Error::ResizeTimeout`].
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().resize_wait(std::time::Duration::from_secs(5)).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn resize_wait(mut self, wait: Duration) -> Self {
        self.config.resize_wait = wait;
        self
    }

    /// Opens (creating if needed) the store in folder `path`.
    ///
    /// If this process already has the folder open, the open environment
    /// is shared and these options are ignored.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let store = skyshelve::StoreOptions::new().open(dir.path())?;
    /// let same = skyshelve::StoreOptions::new().map_size(1 << 20).open(dir.path())?; // options ignored: already open
    /// assert!(store.same_environment(&same));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        crate::diagnostics::reported(self.open_folder(path.as_ref()))
    }

    fn open_folder(self, dir: &Path) -> Result<Store> {
        if !self.config.read_only {
            create_private_dir(dir)?;
        }
        let id = FolderId::of(dir)?;
        let mut open = open_environments();
        while let Some((_, weak)) = open.iter().find(|(known, _)| *known == id) {
            match weak.upgrade() {
                Some(shared) => return Ok(self.started(Store { shared })),
                // Its last handle is being dropped: wait until it is closed.
                None => open = crate::sync::wait(&ENVIRONMENT_CLOSED, open),
            }
        }
        let shared = Arc::new(open_shared(&dir.canonicalize()?, &self, None)?);
        let _ = shared.registration.0.set(id);
        open.push((id, Arc::downgrade(&shared)));
        Ok(self.started(Store { shared }))
    }

    /// `store`, with the background work these options ask for running.
    fn started(&self, store: Store) -> Store {
        if let Some(interval) = self.purge_every {
            store.shared.purger.get_or_init(|| crate::expiry::start_purger(&store.shared, interval));
        }
        store
    }

    /// Opens a store in a fresh temporary folder; see [`Store::temporary`].
    ///
    /// ```
    /// let store = skyshelve::Store::options().max_readers(64).open_temporary()?;
    /// assert!(store.path().exists());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn open_temporary(self) -> Result<Store> {
        let temp = tempfile::Builder::new().prefix("skyshelve-").tempdir()?;
        let dir: PathBuf = temp.path().canonicalize()?;
        Ok(self.started(Store { shared: Arc::new(open_shared(&dir, &self, Some(temp))?) }))
    }
}

/// How many maps a store can open beyond its models' tables, unless
/// [`StoreOptions::max_tables`] says otherwise.
pub const MAP_ROOM: u32 = 64;

fn open_shared(dir: &Path, options: &StoreOptions, temporary: Option<tempfile::TempDir>) -> Result<Shared> {
    let registered = options.models.clone().unwrap_or_else(models);
    let mut config = options.config.clone();
    if config.max_tables == 0 {
        let model_tables: usize = registered.iter().map(|m| 1 + m.indexes.len() + usize::from(m.history > 0)).sum();
        // + the lock table, the catalog and the sequences
        config.max_tables = u32::try_from(model_tables + 3).unwrap_or(u32::MAX).saturating_add(MAP_ROOM);
    }
    let engine = Engine::open(dir, config)?;
    if let Some(pair) = registered.windows(2).find(|pair| pair[0].name == pair[1].name) {
        let reason = "two models of this program share this name; give one #[persistent(name = \"...\")]";
        return Err(Error::InvalidName { name: pair[0].name.to_owned(), reason });
    }
    let mut names =
        vec![crate::tables::LOCKS.to_owned(), crate::tables::CATALOG.to_owned(), crate::tables::SEQUENCES.to_owned()];
    for model in &registered {
        validate_name(model.name)?;
        names.push(model.name.to_owned());
        names.extend(model.indexes.iter().map(|index| crate::tables::index_table(model, index.name)));
        if model.history > 0 {
            names.push(crate::tables::history_table(model));
        }
    }
    let read_only = options.config.read_only;
    let mut tables = if read_only { engine.open_tables_that_exist(&names)? } else { engine.open_tables(&names)? };
    let (Some(lock_table), Some(catalog)) =
        (tables.remove(crate::tables::LOCKS), tables.remove(crate::tables::CATALOG))
    else {
        let message = format!("{} holds no skyshelve store to open read-only", dir.display());
        return Err(Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, message)));
    };
    let sequences = tables.remove(crate::tables::SEQUENCES);
    let mut models: Vec<Option<ModelTables>> = Vec::new();
    let opened: Vec<&'static ModelInfo> = registered.clone();
    for info in registered {
        // Read-only, a model whose tables the store lacks is left out.
        let Some(main) = tables.remove(info.name) else { continue };
        let indexes =
            info.indexes.iter().map(|index| tables.remove(&crate::tables::index_table(info, index.name))).collect();
        let Some(indexes) = indexes else { continue };
        // Read-only, a store written before the model kept history has none to read.
        let history = tables.remove(&crate::tables::history_table(info));
        let slot = info.slot.index();
        if models.len() <= slot {
            models.resize_with(slot + 1, || None);
        }
        let catalog_entry = crate::catalog::Entry::complete(info).encode()?;
        let referrers = referrers_of(info, &opened);
        let topic = 1 << crate::engine::topic_of(info.name);
        let expiry = crate::expiry::index_position(info);
        models[slot] = Some(ModelTables { info, main, indexes, history, expiry, catalog_entry, referrers, topic });
    }
    let shared = Shared {
        engine,
        registration: Registration::default(),
        models,
        maps: Mutex::new(HashMap::new()),
        lock_table,
        catalog,
        sequences,
        locks: Locks::new(dir),
        lock_wait: options.lock_wait,
        purger: std::sync::OnceLock::new(),
        // Modes that sync at commit gain from sharing one; MayCorruptOnPowerLoss never syncs.
        group: (options.group_commit && options.config.durability != Durability::MayCorruptOnPowerLoss)
            .then(Group::default),
        _temporary: temporary,
    };
    if !read_only {
        let hook = options.build_progress.0.as_deref();
        let mut report = |model: &str, progress| hook.into_iter().for_each(|f| f(model, progress));
        crate::catalog::reconcile(&shared, options.take_over_indexes, &mut report)?;
        crate::history::reconcile(&shared)?;
    }
    Ok(shared)
}

/// Model and map names become LMDB database names: non-empty, no `/`
/// (it separates a model from its indexes), no NUL.
fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "names must not be empty"
    } else if name.contains('/') {
        "names must not contain '/'"
    } else if name.contains('\0') {
        "names must not contain NUL"
    } else if name.len() > 255 {
        "names are at most 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName { name: name.to_owned(), reason })
}
