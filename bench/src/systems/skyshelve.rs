//! skyshelve, through its public API only.

use std::path::Path;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Persistent, Store};

use super::{Batch, Db, Result, Sync};
use crate::model::UserData;

#[derive(Persistent, Serialize, Deserialize, Debug, Clone)]
#[persistent(name = "users")]
pub struct User {
    #[persistent(key)]
    id: u64,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: u32,
    score: i64,
    bio: String,
}

/// The same record keeping its ten previous versions, for `--history`.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone)]
#[persistent(name = "users_with_history", history = 10)]
pub struct UserWithHistory {
    #[persistent(key)]
    id: u64,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: u32,
    score: i64,
    bio: String,
}

/// What the workloads need of a benchmark model: its fields and its two
/// indexes, so that both models share one implementation of `Db`.
pub trait BenchUser: Persistent<Key = u64> + Send + std::marker::Sync + 'static {
    const EMAIL: skyshelve::UniqueIndex<Self, String>;
    const TEAM: skyshelve::Index<Self, u32>;
    fn from_data(user: &UserData) -> Self;
    fn into_data(self) -> UserData;
    fn team(&self) -> u32;
    fn add_score(&mut self, by: i64);
}

macro_rules! bench_user {
    ($model:ident) => {
        impl BenchUser for $model {
            const EMAIL: skyshelve::UniqueIndex<Self, String> = $model::EMAIL;
            const TEAM: skyshelve::Index<Self, u32> = $model::TEAM;
            fn from_data(u: &UserData) -> Self {
                $model { id: u.id, email: u.email.clone(), team: u.team, score: u.score, bio: u.bio.clone() }
            }
            fn into_data(self) -> UserData {
                UserData { id: self.id, email: self.email, team: self.team, score: self.score, bio: self.bio }
            }
            fn team(&self) -> u32 {
                self.team
            }
            fn add_score(&mut self, by: i64) {
                self.score += by;
            }
        }
    };
}

bench_user!(User);
bench_user!(UserWithHistory);

pub struct Skyshelve<M> {
    store: Store,
    model: std::marker::PhantomData<fn() -> M>,
}

impl<M: BenchUser> Skyshelve<M> {
    pub fn open(dir: &Path, sync: Sync) -> Result<Self> {
        let durability = match sync {
            Sync::Durable => Durability::Full,
            Sync::Relaxed => Durability::MayCorruptOnPowerLoss,
        };
        // Default options otherwise (group commit is on by default). The
        // store is opened for the benchmark's model only: this binary also
        // holds the two releases of `--schema`'s model, which share a name.
        let options = Store::options().models([M::INFO]).map_size(1 << 30).durability(durability);
        Ok(Skyshelve { store: options.open(dir)?, model: std::marker::PhantomData })
    }

    /// The same on SlateDB: objects in `SKYSHELVE_SLATEDB_URL` (an S3
    /// server) under the folder's name, or in a folder inside `dir`.
    #[cfg(feature = "slatedb")]
    pub fn open_on_slatedb(dir: &Path, sync: Sync) -> Result<Self> {
        let durability = match sync {
            Sync::Durable => Durability::Full,
            Sync::Relaxed => Durability::MayLoseLastCommits,
        };
        let url = match std::env::var("SKYSHELVE_SLATEDB_URL") {
            Ok(base) => {
                format!("{}/bench/{}", base.trim_end_matches('/'), dir.display().to_string().trim_start_matches('/'))
            }
            Err(_) => format!("file://{}/objects", dir.display()),
        };
        let options = Store::options().models([M::INFO]).slatedb(url).durability(durability);
        Ok(Skyshelve { store: options.open(dir)?, model: std::marker::PhantomData })
    }

    #[cfg(not(feature = "slatedb"))]
    pub fn open_on_slatedb(_dir: &Path, _sync: Sync) -> Result<Self> {
        Err("skyshelve_slatedb needs the benchmark built with --features slatedb".into())
    }
}

impl<M: BenchUser> Db for Skyshelve<M> {
    fn insert_batch(&self, users: &[UserData]) -> Result<()> {
        self.batch(users)()
    }

    fn batch<'a>(&'a self, users: &'a [UserData]) -> Batch<'a> {
        let records: Vec<M> = users.iter().map(M::from_data).collect();
        Box::new(move || {
            self.store.write(|tx| records.iter().try_for_each(|record| tx.insert(record)))?;
            Ok(())
        })
    }

    fn insert_one(&self, user: &UserData) -> Result<()> {
        M::from_data(user).insert(&self.store)?;
        Ok(())
    }

    fn get(&self, id: u64) -> Result<Option<UserData>> {
        Ok(M::load(&self.store, &id)?.map(M::into_data))
    }

    fn get_by_email(&self, email: &str) -> Result<Option<UserData>> {
        Ok(M::load_by(&self.store, M::EMAIL, email)?.map(M::into_data))
    }

    fn scan_team(&self, team: u32) -> Result<usize> {
        let count = self.store.read(|tx| {
            let mut count = 0;
            for user in tx.scan_index(M::TEAM, &team)? {
                count += usize::from(user?.team() == team);
            }
            Ok(count)
        })?;
        Ok(count)
    }

    fn range_teams(&self, teams: std::ops::Range<u32>) -> Result<usize> {
        let count = self.store.read(|tx| {
            let mut count = 0;
            for user in tx.range_index(M::TEAM, teams.clone())? {
                count += usize::from(teams.contains(&user?.team()));
            }
            Ok(count)
        })?;
        Ok(count)
    }

    fn increment(&self, id: u64) -> Result<()> {
        M::update(&self.store, &id, |u| u.add_score(1))?;
        Ok(())
    }

    fn stream_all(&self, visit: &mut dyn FnMut(&UserData)) -> Result<u64> {
        let count = self.store.read(|tx| {
            let mut count = 0;
            for user in tx.iter::<M>()? {
                visit(&user?.into_data());
                count += 1;
            }
            Ok(count)
        })?;
        Ok(count)
    }

    fn index_sizes(&self) -> Result<(u64, u64)> {
        let report = M::verify(&self.store)?;
        if !report.is_clean() {
            return Err(format!("skyshelve store is inconsistent: {report}").into());
        }
        Ok((report.index_entries[0], report.index_entries[1]))
    }
}
