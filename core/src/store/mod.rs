//! `Store`: an open folder, shared by every clone and by every `Store::open`
//! of the same folder in this process. How a store is opened — the
//! options, the tables, the take-over at open — is `options.rs`.

mod options;

pub use options::{MAP_ROOM, StoreOptions};

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use crate::engine::Writer;
use crate::engine::{Engine, Table};
use crate::error::{Error, Result};
use crate::group::Group;
use crate::lock::{Backoff, Locks, Owner};
use crate::map::Map;
use crate::model::{ModelInfo, Persistent};
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
    /// The model's layout in this program, traced once at open: the writes
    /// that compare it with the catalog's (during an index build, say) must
    /// not trace it each time.
    pub layout: crate::layout::Layout,
    /// The last read snapshot (`Reader::snapshot_id`) in which the stored
    /// catalog entry was found equal to `catalog_entry`: queries in that
    /// snapshot need not look again. `u64::MAX` until one was.
    pub catalog_seen_in: AtomicU64,
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
    /// The maps opened in this process: each table, with the key and
    /// value type names its shape was checked for.
    maps: Mutex<HashMap<String, (Table, crate::map::Types)>>,
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
    /// The options of the open that made this environment; a later open
    /// of the folder in this process is checked against them.
    opened_with: StoreOptions,
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
    /// This handle refuses writes, whatever other handles of the same
    /// environment do.
    read_only: bool,
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
        let read_only = shared.engine.is_read_only();
        Store { shared, read_only }
    }

    /// A handle on `shared`, read-only if asked (or if the environment is).
    fn with(shared: Arc<Shared>, read_only: bool) -> Store {
        let read_only = read_only || shared.engine.is_read_only();
        Store { shared, read_only }
    }

    /// `Error::ReadOnly` for a handle opened read-only.
    pub(crate) fn writable(&self) -> Result<()> {
        if self.read_only { Err(Error::ReadOnly) } else { Ok(()) }
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

    /// The engine the store runs on: `"LMDB"`, or `"SlateDB"` when opened
    /// with [`StoreOptions::slatedb`](crate::StoreOptions) (feature
    /// `slatedb`).
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// assert_eq!(store.engine(), "LMDB");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn engine(&self) -> &'static str {
        self.shared.engine.name()
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
    /// `f` may run more than once: when the store has to grow first, and
    /// under group commit when another writer of the same commit failed
    /// (the group then runs again without it). Each run starts from a clean
    /// transaction, so keep side effects out of it.
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
        self.writable()?;
        let mut backoff = Backoff::until(Some(self.shared.lock_wait), self.shared.engine.counters());
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
                Some(_) => self.shared.engine.counters().reran(),
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
    /// another writer's thread, in the transaction of a shared commit.
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
            // The commit failed: nothing of this writer is durable, whatever
            // its closure said (unless the error says its leader panicked,
            // when the commit's fate is unknown).
            Err(err) => Err(E::from(err)),
            Ok(()) => result.unwrap_or_else(|| Err(E::from(Error::Storage("group commit skipped a writer".into())))),
        }
    }

    /// A typed key-value map named `name`, for data without a model.
    ///
    /// The store records the map's key type (by its Rust name) and its
    /// value's layout (its serde shape, as for models) when the map is
    /// first opened to write; opening it again, in any program, with other
    /// types fails with [`Error::MapTypeMismatch`], so that no value is
    /// read as another type and no key of another type goes in.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let settings = store.map::<String, u32>("settings")?;
    /// settings.insert(&"retries".to_string(), &3)?;
    /// assert_eq!(settings.get("retries")?, Some(3));
    /// assert!(matches!(store.map::<String, String>("settings"), Err(skyshelve::Error::MapTypeMismatch { .. })));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn map<K, V>(&self, name: &str) -> Result<Map<K, V>>
    where
        K: crate::Key,
        V: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        crate::tables::validate_name(name)?;
        // `~` cannot start a model name (the derive allows identifier
        // characters only), so maps never meet model tables.
        let table_name = crate::tables::map_table(name);
        let types = crate::map::Types::of::<K, V>();
        let mut maps = crate::sync::lock(&self.shared.maps);
        let table = match maps.get(&table_name) {
            Some((table, checked)) if *checked == types => *table,
            Some((table, _)) => {
                let table = *table;
                crate::map::check_types::<K, V>(self, &table_name, name)?;
                table
            }
            None => {
                let names = std::slice::from_ref(&table_name);
                // A read-only handle makes no table: a map never written
                // cannot be read through it.
                let created = if self.read_only {
                    self.shared.engine.open_tables_that_exist(names)?
                } else {
                    self.shared.engine.open_tables(names)?
                };
                let table = *created.get(&table_name).ok_or(Error::ReadOnly)?;
                crate::map::check_types::<K, V>(self, &table_name, name)?;
                maps.insert(table_name, (table, types));
                table
            }
        };
        Ok(Map::new(self.clone(), name.to_owned(), table))
    }
}
