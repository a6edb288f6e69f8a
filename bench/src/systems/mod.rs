//! The systems under test, each behind the same small interface so that
//! every workload is written once.

use std::path::Path;

use crate::model::UserData;

pub mod heed_raw;
pub mod native;
pub mod skyshelve;
#[cfg(feature = "slatedb")]
pub mod slatedb_raw;
pub mod sqlite;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + std::marker::Sync>>;

/// Whether commits are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    Durable,
    Relaxed,
}

/// insert_batch's timed part: the inserts and the commit.
pub type Batch<'a> = Box<dyn FnOnce() -> Result<()> + 'a>;

/// One open database of one system.
pub trait Db: Send + std::marker::Sync {
    /// Inserts all users in one transaction.
    fn insert_batch(&self, users: &[UserData]) -> Result<()>;
    /// `insert_batch` in two steps: `users` made into the system's own
    /// records now, the inserts when the batch is called. BENCH.md times
    /// the inserts and the commit, so a system whose model is not
    /// `UserData` makes its records before the clock starts.
    fn batch<'a>(&'a self, users: &'a [UserData]) -> Batch<'a> {
        Box::new(move || self.insert_batch(users))
    }
    /// Inserts one user in a transaction of its own.
    fn insert_one(&self, user: &UserData) -> Result<()>;
    /// Loads a user by id, in a read transaction of its own.
    fn get(&self, id: u64) -> Result<Option<UserData>>;
    /// Loads a user through the unique email index.
    fn get_by_email(&self, email: &str) -> Result<Option<UserData>>;
    /// How many users a team has, reading every one of them.
    fn scan_team(&self, team: u32) -> Result<usize>;
    /// How many users the teams in `teams` have, reading every one of
    /// them in index order (a range query on the team index).
    fn range_teams(&self, teams: std::ops::Range<u32>) -> Result<usize>;
    /// `score += 1` of one user, read-modify-write in one write transaction.
    fn increment(&self, id: u64) -> Result<()>;
    /// Visits every user once, streaming; returns how many.
    fn stream_all(&self, visit: &mut dyn FnMut(&UserData)) -> Result<u64>;
    /// The number of entries in the email and team indexes.
    fn index_sizes(&self) -> Result<(u64, u64)>;
}

/// A system: how to open it in a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Skyshelve,
    /// skyshelve with a model that keeps ten previous versions of each
    /// record (`--history`): not among `ALL`, so not in the main table.
    SkyshelveHistory,
    /// skyshelve on SlateDB (`--slatedb`, feature `slatedb`): not among
    /// `ALL` either.
    SkyshelveSlatedb,
    /// Raw SlateDB, the anchor for skyshelve on SlateDB (`--slatedb`): not
    /// among `ALL` either.
    SlatedbRaw,
    HeedRaw,
    /// Raw heed with skyshelve's layout of a non-unique index
    /// (`--flat-index`): not among `ALL`.
    HeedRawFlat,
    NativeDb,
    Sqlite,
    /// SQLite with the writers of one process taking turns behind a mutex
    /// (`--sqlite-serial`): not among `ALL`.
    SqliteSerial,
}

impl System {
    pub const ALL: [System; 4] = [System::Skyshelve, System::HeedRaw, System::NativeDb, System::Sqlite];

    pub fn name(self) -> &'static str {
        match self {
            System::Skyshelve => "skyshelve",
            System::SkyshelveHistory => "skyshelve_history",
            System::SkyshelveSlatedb => "skyshelve_slatedb",
            System::SlatedbRaw => "slatedb_raw",
            System::HeedRaw => "heed_raw",
            System::HeedRawFlat => "heed_raw_flat",
            System::NativeDb => "native_db",
            System::Sqlite => "sqlite",
            System::SqliteSerial => "sqlite_serial",
        }
    }

    pub fn from_name(name: &str) -> Option<System> {
        System::ALL
            .into_iter()
            .chain([
                System::SkyshelveHistory,
                System::SkyshelveSlatedb,
                System::SlatedbRaw,
                System::HeedRawFlat,
                System::SqliteSerial,
            ])
            .find(|s| s.name() == name)
    }

    pub fn open(self, dir: &Path, sync: Sync) -> Result<Box<dyn Db>> {
        Ok(match self {
            System::Skyshelve => Box::new(skyshelve::Skyshelve::<skyshelve::User>::open(dir, sync)?),
            System::SkyshelveHistory => Box::new(skyshelve::Skyshelve::<skyshelve::UserWithHistory>::open(dir, sync)?),
            System::SkyshelveSlatedb => Box::new(skyshelve::Skyshelve::<skyshelve::User>::open_on_slatedb(dir, sync)?),
            #[cfg(feature = "slatedb")]
            System::SlatedbRaw => Box::new(slatedb_raw::SlatedbRaw::open(dir, sync)?),
            #[cfg(not(feature = "slatedb"))]
            System::SlatedbRaw => return Err("slatedb_raw needs the benchmark built with --features slatedb".into()),
            System::HeedRaw => Box::new(heed_raw::HeedRaw::open(dir, sync, heed_raw::TeamLayout::Duplicates)?),
            System::HeedRawFlat => Box::new(heed_raw::HeedRaw::open(dir, sync, heed_raw::TeamLayout::Flat)?),
            System::NativeDb => Box::new(native::NativeDb::open(dir, sync)?),
            System::Sqlite => Box::new(sqlite::Sqlite::open(dir, sync, sqlite::Writers::Concurrent)?),
            System::SqliteSerial => Box::new(sqlite::Sqlite::open(dir, sync, sqlite::Writers::Serialised)?),
        })
    }

    /// Whether several OS processes can open one database at once (and
    /// write: SlateDB has one writer, a second one fences the first).
    pub fn multi_process(self) -> bool {
        !matches!(self, System::NativeDb | System::SkyshelveSlatedb | System::SlatedbRaw)
    }

    /// Whether the system has a mode without fsync on commit.
    pub fn has_relaxed_mode(self) -> bool {
        self != System::NativeDb
    }
}
