//! skyshelve, through its public API only.

use std::path::Path;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Persistent, Store};

use super::{Db, Result, Sync};
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

impl From<&UserData> for User {
    fn from(u: &UserData) -> Self {
        User { id: u.id, email: u.email.clone(), team: u.team, score: u.score, bio: u.bio.clone() }
    }
}

impl From<User> for UserData {
    fn from(u: User) -> Self {
        UserData { id: u.id, email: u.email, team: u.team, score: u.score, bio: u.bio }
    }
}

pub struct Skyshelve {
    store: Store,
}

impl Skyshelve {
    pub fn open(dir: &Path, sync: Sync) -> Result<Self> {
        let durability = match sync {
            Sync::Durable => Durability::Full,
            Sync::Relaxed => Durability::MayCorruptOnPowerLoss,
        };
        // Default options otherwise (group commit is on by default). The
        // store is opened for the benchmark's model only: this binary also
        // holds the two releases of `--schema`'s model, which share a name.
        let options = Store::options().models([User::INFO]).map_size(1 << 30).durability(durability);
        Ok(Skyshelve { store: options.open(dir)? })
    }
}

impl Db for Skyshelve {
    fn insert_batch(&self, users: &[UserData]) -> Result<()> {
        self.store.write(|tx| users.iter().try_for_each(|u| tx.insert(&User::from(u))))?;
        Ok(())
    }

    fn insert_one(&self, user: &UserData) -> Result<()> {
        User::from(user).insert(&self.store)?;
        Ok(())
    }

    fn get(&self, id: u64) -> Result<Option<UserData>> {
        Ok(User::load(&self.store, &id)?.map(Into::into))
    }

    fn get_by_email(&self, email: &str) -> Result<Option<UserData>> {
        Ok(User::load_by(&self.store, User::EMAIL, email)?.map(Into::into))
    }

    fn scan_team(&self, team: u32) -> Result<usize> {
        let count = self.store.read(|tx| {
            let mut count = 0;
            for user in tx.scan_index(User::TEAM, &team)? {
                count += usize::from(user?.team == team);
            }
            Ok(count)
        })?;
        Ok(count)
    }

    fn increment(&self, id: u64) -> Result<()> {
        User::update(&self.store, &id, |u| u.score += 1)?;
        Ok(())
    }

    fn stream_all(&self, visit: &mut dyn FnMut(&UserData)) -> Result<u64> {
        let count = self.store.read(|tx| {
            let mut count = 0;
            for user in tx.iter::<User>()? {
                visit(&user?.into());
                count += 1;
            }
            Ok(count)
        })?;
        Ok(count)
    }

    fn index_sizes(&self) -> Result<(u64, u64)> {
        let report = User::verify(&self.store)?;
        if !report.is_clean() {
            return Err(format!("skyshelve store is inconsistent: {report}").into());
        }
        Ok((report.index_entries[0], report.index_entries[1]))
    }
}
