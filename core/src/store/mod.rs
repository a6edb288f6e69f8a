//! `Store`: an open folder, shared by every clone and by every `Store::open`
//! of the same folder in this process. How a store is opened — the
//! options, the tables, the take-over at open — is `options.rs`.

mod options;
mod purge;

pub use options::{MAP_ROOM, StoreOptions};

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};

use crate::engine::Writer;
use crate::error::{Error, Result};
use crate::group::Group;
use crate::locks::{Backoff, Owner};
use crate::tables::Shared;
use crate::txn::{ReadTx, WriteTx};

/// An environment open in this process: the state the layers below share,
/// and what the process keeps about the open. Field order is drop order:
/// the engine closes, then the registration leaves `OPEN_ENVIRONMENTS`,
/// then a temporary folder is removed.
pub(crate) struct Opened {
    shared: Shared,
    /// Removes the store from `OPEN_ENVIRONMENTS` once the engine is closed.
    registration: Registration,
    /// The options of the open that made this environment; a later open
    /// of the folder in this process is checked against them.
    opened_with: StoreOptions,
    /// Set once the background purger runs (see `purge.rs`).
    purger: OnceLock<()>,
    _temporary: Option<tempfile::TempDir>,
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
    opened: Arc<Opened>,
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
static OPEN_ENVIRONMENTS: Mutex<Vec<(FolderId, Weak<Opened>)>> = Mutex::new(Vec::new());

/// Signalled whenever an entry leaves `OPEN_ENVIRONMENTS`.
static ENVIRONMENT_CLOSED: Condvar = Condvar::new();

fn open_environments() -> MutexGuard<'static, Vec<(FolderId, Weak<Opened>)>> {
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
        let meta = std::fs::metadata(path).map_err(|err| crate::fs::cannot_open_store_in(path, &err))?;
        if !meta.is_dir() {
            let not_a_folder = std::io::Error::from(std::io::ErrorKind::NotADirectory);
            return Err(crate::fs::cannot_open_store_in(path, &not_a_folder));
        }
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

    /// A handle on `opened`, read-only if asked (or if the environment is).
    fn with(opened: Arc<Opened>, read_only: bool) -> Store {
        let read_only = read_only || opened.shared.engine.is_read_only();
        Store { opened, read_only }
    }

    /// Whether this handle refuses writes.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// `Error::ReadOnly` for a handle opened read-only.
    pub(crate) fn writable(&self) -> Result<()> {
        if self.read_only { Err(Error::ReadOnly) } else { Ok(()) }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.opened.shared
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
        self.shared().engine.dir()
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
        self.shared().engine.name()
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
        Arc::ptr_eq(&self.opened, &other.opened)
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
        self.shared().engine.map_size()
    }

    /// Flushes all commits to disk, whatever the durability mode.
    ///
    /// ```
    /// let store = skyshelve::Store::options().durability(skyshelve::Durability::MayCorruptOnPowerLoss).open_temporary()?;
    /// store.sync()?; // everything committed so far is now on disk
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn sync(&self) -> Result<()> {
        self.shared().engine.sync()
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
        let txn = self.shared().engine.read_txn()?;
        f(&ReadTx::new(self.shared(), &txn))
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
        let mut backoff = Backoff::until(Some(self.shared().lock_wait), self.shared().engine.counters());
        let caller = std::thread::current().id();
        loop {
            let mut blocked = None;
            let result = match &self.shared().group {
                // A writer with a transaction of its own open on this thread
                // writes alone: a group it led could not grow the map while
                // that transaction stays open, and other writers would wait
                // for it.
                Some(group) if !self.shared().engine.in_transaction_here() => {
                    self.write_in_group(group, owner, caller, &mut f, &mut blocked)
                }
                _ => self.shared().engine.write(|txn| {
                    let mut tx = WriteTx::new(self.shared(), txn, owner, caller, &mut blocked);
                    let outcome = f(&mut tx);
                    tx.finish(outcome)
                }),
            };
            match blocked {
                None => return result,
                Some(locked) if !backoff.wait() => return Err(E::from(locked)),
                Some(_) => self.shared().engine.counters().reran(),
            }
        }
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
        let shared = self.shared();
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
            // A commit reported to a writer ran its job (`Group::run`): a
            // missing result is a bug in the group, not a storage failure.
            Ok(()) => result.expect("group commit reported a commit without running the writer's job"),
        }
    }
}
