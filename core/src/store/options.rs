//! [`StoreOptions`]: how a store is opened, and the opening itself — the
//! engine, the model tables, the catalog's take-over and the history
//! setting at open, and the registry that gives every `Store::open` of one
//! folder in a process the same shared state.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ENVIRONMENT_CLOSED, FolderId, Opened, Registration, Store, open_environments};
use crate::engine::{Durability, Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::fs::create_private_dir;
use crate::group::Group;
use crate::locks::Locks;
use crate::model::{ModelInfo, models};
use crate::progress::Progress;
use crate::tables::{ModelTables, Shared, referrers_of};

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
    /// Room for maps beyond the models' tables, unless `max_tables` is set.
    map_room: u32,
    /// The options the caller set, by method name: an open that finds the
    /// folder already open checks these against the environment's.
    chosen: Vec<&'static str>,
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
                #[cfg(feature = "slatedb")]
                slatedb: None,
            },
            take_over_indexes: false,
            lock_wait: Duration::from_secs(30),
            group_commit: true,
            models: None,
            build_progress: BuildProgress::default(),
            purge_every: None,
            map_room: MAP_ROOM,
            chosen: Vec::new(),
        }
    }

    /// Notes that the caller set `option`.
    fn chose(mut self, option: &'static str) -> Self {
        if !self.chosen.contains(&option) {
            self.chosen.push(option);
        }
        self
    }

    /// Purges expired records ([`Store::purge_expired`]) on a background
    /// thread every `interval`, for as long as the store is open in this
    /// process (one thread per store, whichever open asked first). Expired
    /// records are invisible to reads either way; purging frees space.
    /// Each round takes the writer lock, so an interval under 10 ms is
    /// refused at open, and so is this option on a read-only handle.
    ///
    /// ```
    /// let store = skyshelve::Store::options().purge_expired_every(std::time::Duration::from_secs(60)).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn purge_expired_every(mut self, interval: Duration) -> Self {
        self.purge_every = Some(interval);
        self.chose("purge_expired_every")
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
        self.chose("on_index_build")
    }

    /// Keeps the store on SlateDB (feature `slatedb`) at the object-store
    /// `url` instead of in LMDB: `file:///path` for a local folder, or
    /// `s3://bucket/prefix` for S3 and S3-compatible servers (credentials
    /// and endpoint from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`). The folder given to
    /// `open` stays the store's local folder: it holds the watch file and
    /// the record-lock files of this machine's processes.
    ///
    /// One process writes; a second process opening the same `url` to
    /// write fences the first, whose next write fails with
    /// [`Error::Fenced`]. Other processes, here or on other machines, open
    /// it with [`read_only`](Self::read_only) and follow the writer's
    /// commits (see [`slatedb_poll_interval`](Self::slatedb_poll_interval)).
    /// Models, indexes, queries, transactions, maps, history and watches
    /// work as on LMDB; the guarantees table of [`guide::processes`](crate::guide::processes) says what differs.
    ///
    /// The engine is the program's choice alone: no environment variable
    /// changes it.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_store_slatedb")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// let objects = tempfile::tempdir()?;
    /// let local = tempfile::tempdir()?;
    /// let url = format!("file://{}", objects.path().display());
    /// let store = Store::options().slatedb(&url).open(local.path())?;
    /// Item { id: 1 }.save(&store)?;
    /// assert_eq!(Item::count(&store)?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "slatedb")]
    #[must_use]
    pub fn slatedb(mut self, url: impl Into<String>) -> Self {
        self.config.slatedb = Some(crate::engine::SlateConfig::new(url.into()));
        self.chose("slatedb")
    }

    /// Keeps the store on SlateDB with its objects under `base`, at the
    /// store folder's path: `s3://bucket` and the folder `/srv/app/store`
    /// give `s3://bucket/srv/app/store`. An empty `base` keeps the objects
    /// in the folder `objects` inside the store's folder. For a program
    /// that opens many stores and names its object store once (the test
    /// suite runs every test file on SlateDB this way).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_store_slatedb_under")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// let local = tempfile::tempdir()?;
    /// let store = Store::options().slatedb_under("").open(local.path())?;
    /// Item { id: 1 }.save(&store)?;
    /// assert!(local.path().join("objects").is_dir());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "slatedb")]
    #[must_use]
    pub fn slatedb_under(mut self, base: impl Into<String>) -> Self {
        let mut slatedb = crate::engine::SlateConfig::new(String::new());
        slatedb.under = Some(base.into());
        self.config.slatedb = Some(slatedb);
        self.chose("slatedb")
    }

    /// On SlateDB, how often a read-only store looks for the writer's new
    /// commits (default 100 ms): its reads and watches see a commit that
    /// long after it reached object storage. Also how often the writer
    /// flushes commits that did not wait for object storage
    /// ([`Durability::MayLoseLastCommits`]). Ignored on LMDB.
    #[cfg(feature = "slatedb")]
    #[must_use]
    pub fn slatedb_poll_interval(mut self, every: Duration) -> Self {
        let slatedb = self.config.slatedb.get_or_insert_with(|| crate::engine::SlateConfig::new(String::new()));
        slatedb.poll_interval = every;
        slatedb.flush_interval = every;
        self.chose("slatedb_poll_interval")
    }

    /// Opens the store for reading only: nothing is written, not even the
    /// index catalog, and every write fails with [`Error::ReadOnly`]. The
    /// folder must hold a store already. Models whose tables the store does
    /// not have (never opened by a writer) are left out, and so are their
    /// methods on this store. An index the program declares that no writer
    /// has built yet is not read as empty: its queries fail with
    /// [`Error::IndexNotBuilt`], `verify` reports it and
    /// [`stats`](crate::Store::stats) lists it. For reports and tools that
    /// must never disturb the programs that write.
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
    /// [`guide::schema`](crate::guide::schema). The admin command line's `reindex` opens with it.
    ///
    /// ```
    /// let store = skyshelve::Store::options().take_over_indexes(true).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn take_over_indexes(mut self, take_over: bool) -> Self {
        self.take_over_indexes = take_over;
        self.chose("take_over_indexes")
    }

    /// Lets concurrent durable writes of this process share one commit
    /// (default on; `group_commit(false)` turns it off). With
    /// [`Durability::Full`], a commit costs two fsyncs whatever it holds
    /// (one with [`Durability::MayLoseLastCommits`]);
    /// with group commit, writers that arrive while a commit is under way
    /// are committed together in the next one, and each returns once its
    /// commit is durable. One writer's failure undoes only its own changes:
    /// the group's closures then run again, each in a nested transaction of
    /// its own (so a closure may run twice). A writer that finds no
    /// other waiting commits alone, in a plain transaction, so a single
    /// writer pays nothing measurable for it (see `docs/performance.md`).
    ///
    /// What it changes: a write closure may run on another writer's thread
    /// (closures are `Send` for that reason), and a panic in a closure is
    /// caught on the leader's thread and resumed on its own.
    /// [`Durability::MayCorruptOnPowerLoss`] does not sync at commit, so
    /// it never groups; nor does SlateDB with any durability but `Full`
    /// (those commits return without waiting for object storage).
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
        self.chose("group_commit")
    }

    /// How long a write of a record that another holder has locked (see
    /// [`Persistent::lock`](crate::Persistent::lock)) waits before failing with [`Error::Locked`].
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().lock_wait(std::time::Duration::from_millis(500)).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self.chose("lock_wait")
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
        self.chose("map_size")
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
        self.chose("max_map_size")
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
        self.chose("durability")
    }

    /// The number of concurrent read transactions across all processes; at
    /// least 1 (0 is refused at open).
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().max_readers(256).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn max_readers(mut self, readers: u32) -> Self {
        self.config.max_readers = readers;
        self.chose("max_readers")
    }

    /// The number of tables this process can use: by default one per model
    /// and per index of the program, the lock table, and room for
    /// [`map_room`](Self::map_room) maps. LMDB sets up every read
    /// transaction in proportion to this number, so it is kept small; more
    /// than 32,768 is refused at open.
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().max_tables(512).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn max_tables(mut self, tables: u32) -> Self {
        self.config.max_tables = tables;
        self.chose("max_tables")
    }

    /// How many maps ([`Store::map`]) the store can open beyond the tables
    /// of the program's models; [`MAP_ROOM`] by default. Ignored when
    /// [`max_tables`](Self::max_tables) is set. A store that opens fewer
    /// maps reads faster with less room, since LMDB sets up every read
    /// transaction in proportion to the tables a store may open: in the
    /// benchmark's lookups, room for 4 maps instead of 64 made `load`
    /// 6–24% faster. One map too many fails with
    /// [`Error::TooManyTables`](crate::Error::TooManyTables).
    ///
    /// ```
    /// let store = skyshelve::StoreOptions::new().map_room(1).open_temporary()?;
    /// let settings = store.map::<String, u32>("settings")?;
    /// assert!(store.map::<String, u32>("another").is_err(), "no room left");
    /// # drop(settings);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn map_room(mut self, maps: u32) -> Self {
        self.map_room = maps;
        self.chose("map_room")
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
        self.chose("resize_wait")
    }

    /// Opens (creating if needed) the store in folder `path`.
    ///
    /// If this process already has the folder open, the handle shares that
    /// environment, and every option keeps its promise or the open fails
    /// with [`Error::OptionConflict`] naming the option, opening nothing:
    ///
    /// - [`read_only`](Self::read_only) is the handle's own: a read-only
    ///   handle refuses every write whatever else the process holds. A
    ///   writable open of a folder open read-only is refused.
    /// - [`durability`](Self::durability) must be the environment's, even
    ///   when left at its default (`Full`): it is a promise about every
    ///   commit, and the environment makes them.
    /// - [`models`](Self::models) must all be open in the environment.
    /// - Every other option, when set, must equal the environment's:
    ///   `map_size`, `max_map_size`, `max_readers`, `max_tables`,
    ///   `map_room`, `resize_wait`, `lock_wait`, `group_commit`,
    ///   `purge_expired_every`, `take_over_indexes`, the SlateDB options;
    ///   `on_index_build` is refused, since the environment's indexes were
    ///   reconciled when it opened. Options left unset take the
    ///   environment's values.
    ///
    /// ```
    /// use skyshelve::{Error, Store, StoreOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = StoreOptions::new().open(dir.path())?;
    /// let same = Store::open(dir.path())?; // nothing set: shares it
    /// assert!(store.same_environment(&same));
    /// let smaller = StoreOptions::new().map_size(1 << 20).open(dir.path());
    /// assert!(matches!(smaller, Err(Error::OptionConflict { option: "map_size", .. })));
    /// store.map::<u32, u32>("m")?.insert(&1, &1)?;
    /// let reader = StoreOptions::new().read_only().open(dir.path())?; // a read-only handle
    /// assert!(matches!(reader.map::<u32, u32>("m")?.insert(&1, &2), Err(Error::ReadOnly)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        crate::diagnostics::reported(self.check().and_then(|()| self.open_folder(path.as_ref())))
    }

    /// Refuses options this handle could not honour, before anything is
    /// opened.
    fn check(&self) -> Result<()> {
        let refused = |message: &str| Err(Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, message)));
        match self.purge_every {
            Some(_) if self.config.read_only => refused(
                "StoreOptions::purge_expired_every purges with writes, which a read-only handle does not make; purge \
                 from a handle that writes",
            ),
            Some(interval) if interval < MIN_PURGE_INTERVAL => refused(
                "StoreOptions::purge_expired_every takes at least 10 ms: each round takes the writer lock, and a \
                 shorter interval would keep every other writer waiting",
            ),
            _ => Ok(()),
        }
    }

    fn open_folder(self, dir: &Path) -> Result<Store> {
        if !self.config.read_only {
            create_private_dir(dir)?;
        }
        let id = FolderId::of(dir)?;
        let mut open = open_environments();
        while let Some((_, weak)) = open.iter().find(|(known, _)| *known == id) {
            match weak.upgrade() {
                Some(opened) => {
                    self.check_shares(&opened)?;
                    return Ok(self.started(Store::with(opened, self.config.read_only)));
                }
                // Its last handle is being dropped: wait until it is closed.
                None => open = crate::sync::wait(&ENVIRONMENT_CLOSED, open),
            }
        }
        let opened = Arc::new(self.opened(open_shared(&dir.canonicalize()?, &self)?, None));
        let _ = opened.registration.0.set(id);
        open.push((id, Arc::downgrade(&opened)));
        Ok(self.started(Store::with(opened, self.config.read_only)))
    }

    /// Whether a handle with these options can share `shared`, the
    /// environment another open of the folder made in this process: every
    /// option the caller set must be what the environment has, except
    /// `read_only`, which is the handle's own; durability, which is a
    /// promise, must match even when left at its default.
    fn check_shares(&self, environment: &Opened) -> Result<()> {
        let (shared, opened) = (&environment.shared, &environment.opened_with);
        let conflict = |option: &'static str, reason: String| {
            Err(Error::OptionConflict { path: shared.engine.dir().display().to_string(), option, reason })
        };
        if !self.config.read_only && opened.config.read_only {
            let reason = "it is open read-only; drop its read-only handles before opening it to write".to_owned();
            return conflict("read_only", reason);
        }
        if self.config.durability != opened.config.durability {
            let reason = format!("it is open with {:?}, not {:?}", opened.config.durability, self.config.durability);
            return conflict("durability", reason);
        }
        if let Some(model) = self.models.iter().flatten().find(|info| shared.tables_of(info).is_err()) {
            return conflict("models", format!("it was opened without model {:?}", model.name));
        }
        for &option in &self.chosen {
            if let Some(reason) = self.differs(opened, option) {
                return conflict(option, reason);
            }
        }
        Ok(())
    }

    /// How `option` differs from its value in `opened`, if it does.
    fn differs(&self, opened: &StoreOptions, option: &'static str) -> Option<String> {
        let (mine, theirs) = (&self.config, &opened.config);
        let pair = |ours: String, open: String| (ours != open).then(|| format!("it is open with {open}, not {ours}"));
        match option {
            "map_size" => pair(mine.map_size.to_string(), theirs.map_size.to_string()),
            "max_map_size" => pair(mine.max_map_size.to_string(), theirs.max_map_size.to_string()),
            "max_readers" => pair(mine.max_readers.to_string(), theirs.max_readers.to_string()),
            "max_tables" => pair(mine.max_tables.to_string(), theirs.max_tables.to_string()),
            "map_room" => pair(self.map_room.to_string(), opened.map_room.to_string()),
            "resize_wait" => pair(format!("{:?}", mine.resize_wait), format!("{:?}", theirs.resize_wait)),
            "lock_wait" => pair(format!("{:?}", self.lock_wait), format!("{:?}", opened.lock_wait)),
            "group_commit" => pair(self.group_commit.to_string(), opened.group_commit.to_string()),
            "purge_expired_every" => pair(format!("{:?}", self.purge_every), format!("{:?}", opened.purge_every)),
            "take_over_indexes" => pair(self.take_over_indexes.to_string(), opened.take_over_indexes.to_string()),
            #[cfg(feature = "slatedb")]
            "slatedb" | "slatedb_poll_interval" => pair(format!("{:?}", mine.slatedb), format!("{:?}", theirs.slatedb)),
            // The environment's indexes were built when it opened.
            "on_index_build" => {
                Some("its indexes were reconciled when it opened, so a progress hook would never run".to_owned())
            }
            // `durability` is checked by the caller, set or not.
            _ => None,
        }
    }

    /// `store`, with the background work these options ask for running
    /// (a read-only handle starts none: it writes nothing).
    fn started(&self, store: Store) -> Store {
        if store.read_only {
            return store;
        }
        if let Some(interval) = self.purge_every {
            store.opened.purger.get_or_init(|| super::purge::start_purger(&store.opened, interval));
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
        self.check()?;
        let temp = tempfile::Builder::new().prefix("skyshelve-").tempdir()?;
        let dir: PathBuf = temp.path().canonicalize()?;
        let shared = open_shared(&dir, &self)?;
        Ok(self.started(Store::with(Arc::new(self.opened(shared, Some(temp))), self.config.read_only)))
    }

    /// The environment these options opened, as the process keeps it.
    fn opened(&self, shared: Shared, temporary: Option<tempfile::TempDir>) -> Opened {
        Opened {
            shared,
            registration: Registration::default(),
            opened_with: self.clone(),
            purger: std::sync::OnceLock::new(),
            _temporary: temporary,
        }
    }
}

/// The shortest interval `purge_expired_every` takes.
const MIN_PURGE_INTERVAL: Duration = Duration::from_millis(10);

/// How many maps a store can open beyond its models' tables, unless
/// [`StoreOptions::map_room`] or [`StoreOptions::max_tables`] says
/// otherwise.
pub const MAP_ROOM: u32 = 64;

/// Refuses a store whose tree of table names, catalog, sequences or lock
/// table has a damaged page: every open reads them through LMDB, which
/// would follow the damage wherever it points. (The models' own tables
/// are checked by `verify` and read around by the salvage export.)
fn refuse_damaged_pages(engine: &Engine, dir: &Path) -> Result<()> {
    let every_open_reads = [crate::tables::CATALOG, crate::tables::SEQUENCES, crate::tables::LOCKS];
    match engine.damaged_pages(&every_open_reads)?.into_iter().next() {
        None => Ok(()),
        Some((table, damage)) => {
            let found: Vec<String> = damage.iter().map(ToString::to_string).collect();
            let reason = format!("table {table} has damaged pages ({})", found.join("; "));
            Err(Error::DamagedStore { path: dir.to_owned(), reason })
        }
    }
}

fn open_shared(dir: &Path, options: &StoreOptions) -> Result<Shared> {
    let registered = options.models.clone().unwrap_or_else(models);
    let mut config = options.config.clone();
    if config.max_tables == 0 {
        let model_tables: usize = registered.iter().map(|m| 1 + m.indexes.len() + usize::from(m.history > 0)).sum();
        // + the lock table, the catalog and the sequences
        config.max_tables = u32::try_from(model_tables + 3).unwrap_or(u32::MAX).saturating_add(options.map_room);
    }
    #[cfg(feature = "slatedb")]
    crate::engine::SlateConfig::resolve(&mut config.slatedb, dir);
    let engine = Engine::open(dir, config)?;
    if let Some(pair) = registered.windows(2).find(|pair| pair[0].name == pair[1].name) {
        let reason = "two models of this program share this name; give one #[persistent(name = \"...\")]";
        return Err(Error::InvalidName { name: pair[0].name.to_owned(), reason });
    }
    let mut names =
        vec![crate::tables::LOCKS.to_owned(), crate::tables::CATALOG.to_owned(), crate::tables::SEQUENCES.to_owned()];
    for model in &registered {
        crate::tables::validate_name(model.name)?;
        names.push(model.name.to_owned());
        names.extend(model.indexes.iter().map(|index| crate::tables::index_table(model, index.name)));
        if model.history > 0 {
            names.push(crate::tables::history_table(model));
        }
    }
    let read_only = options.config.read_only;
    refuse_damaged_pages(&engine, dir)?;
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
        // Read-only, a model the store lacks is left out, and an index not
        // built yet is one whose every use says so.
        let Some(main) = tables.remove(info.name) else { continue };
        let indexes = info
            .indexes
            .iter()
            .map(|index| {
                tables
                    .remove(&crate::tables::index_table(info, index.name))
                    .unwrap_or(crate::engine::Table::Missing { model: info.name, index: index.name })
            })
            .collect();
        // Read-only, a store written before the model kept history has none to read.
        let history = tables.remove(&crate::tables::history_table(info));
        let slot = info.slot.index();
        if models.len() <= slot {
            models.resize_with(slot + 1, || None);
        }
        let entry = crate::catalog::Entry::complete(info);
        let catalog_entry = entry.encode()?;
        let layout = entry.layout.unwrap_or_default();
        let referrers = referrers_of(info, &opened);
        let topic = 1 << crate::engine::topic_of(info.name);
        let expiry = crate::expiry::index_position(info);
        let catalog_seen_in = AtomicU64::new(u64::MAX);
        models[slot] = Some(ModelTables {
            info,
            main,
            indexes,
            history,
            expiry,
            catalog_entry,
            layout,
            catalog_seen_in,
            referrers,
            topic,
        });
    }
    // Commits that wait for storage gain from sharing the wait; the others only pay for the gathering.
    let grouped = options.group_commit && engine.commit_waits(options.config.durability);
    let shared = Shared {
        engine,
        models,
        maps: Mutex::new(HashMap::new()),
        lock_table,
        catalog,
        sequences,
        locks: Locks::new(dir),
        lock_wait: options.lock_wait,
        group: grouped.then(Group::default),
    };
    shared.engine.read(|txn| crate::catalog::check_layouts(txn, shared.catalog, shared.all_tables()))?;
    if !read_only {
        let hook = options.build_progress.0.as_deref();
        let mut report = |model: &str, progress| hook.into_iter().for_each(|f| f(model, progress));
        crate::catalog::reconcile(&shared, options.take_over_indexes, &mut report)?;
        crate::history::reconcile(&shared)?;
    }
    Ok(shared)
}
