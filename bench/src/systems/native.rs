//! native_db on redb: the closest typed peer. It has no relaxed-durability
//! mode, and one process at a time.

use std::path::Path;
use std::sync::LazyLock;

use native_db::{Builder, Database, Models, ToKey, native_db};
use native_model::{Model, native_model};
use serde::{Deserialize, Serialize};

use super::{Batch, Db, Result, Sync};
use crate::model::UserData;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[native_model(id = 1, version = 1)]
#[native_db]
pub struct NUser {
    #[primary_key]
    id: u64,
    #[secondary_key(unique)]
    email: String,
    #[secondary_key]
    team: u32,
    score: i64,
    bio: String,
}

impl From<&UserData> for NUser {
    fn from(u: &UserData) -> Self {
        NUser { id: u.id, email: u.email.clone(), team: u.team, score: u.score, bio: u.bio.clone() }
    }
}

impl From<NUser> for UserData {
    fn from(u: NUser) -> Self {
        UserData { id: u.id, email: u.email, team: u.team, score: u.score, bio: u.bio }
    }
}

static MODELS: LazyLock<Models> = LazyLock::new(|| {
    let mut models = Models::new();
    models.define::<NUser>().expect("the model defines");
    models
});

pub struct NativeDb {
    db: Database<'static>,
}

impl NativeDb {
    pub fn open(dir: &Path, _sync: Sync) -> Result<Self> {
        Ok(NativeDb { db: Builder::new().create(&MODELS, dir.join("native.redb"))? })
    }
}

impl Db for NativeDb {
    fn insert_batch(&self, users: &[UserData]) -> Result<()> {
        self.batch(users)()
    }

    fn batch<'a>(&'a self, users: &'a [UserData]) -> Batch<'a> {
        let records: Vec<NUser> = users.iter().map(NUser::from).collect();
        Box::new(move || {
            let rw = self.db.rw_transaction()?;
            for record in records {
                rw.insert(record)?;
            }
            rw.commit()?;
            Ok(())
        })
    }

    fn insert_one(&self, user: &UserData) -> Result<()> {
        let rw = self.db.rw_transaction()?;
        rw.insert(NUser::from(user))?;
        rw.commit()?;
        Ok(())
    }

    fn get(&self, id: u64) -> Result<Option<UserData>> {
        let r = self.db.r_transaction()?;
        Ok(r.get().primary::<NUser>(id)?.map(Into::into))
    }

    fn get_by_email(&self, email: &str) -> Result<Option<UserData>> {
        let r = self.db.r_transaction()?;
        Ok(r.get().secondary::<NUser>(NUserKey::email, email.to_string())?.map(Into::into))
    }

    fn scan_team(&self, team: u32) -> Result<usize> {
        let r = self.db.r_transaction()?;
        let mut count = 0;
        for user in r.scan().secondary::<NUser>(NUserKey::team)?.range(team..=team)? {
            count += usize::from(user?.team == team);
        }
        Ok(count)
    }

    fn range_teams(&self, teams: std::ops::Range<u32>) -> Result<usize> {
        let r = self.db.r_transaction()?;
        let mut count = 0;
        for user in r.scan().secondary::<NUser>(NUserKey::team)?.range(teams.clone())? {
            count += usize::from(teams.contains(&user?.team));
        }
        Ok(count)
    }

    fn increment(&self, id: u64) -> Result<()> {
        let rw = self.db.rw_transaction()?;
        let old: NUser = rw.get().primary(id)?.ok_or("no such user")?;
        let mut new = old.clone();
        new.score += 1;
        rw.update(old, new)?;
        rw.commit()?;
        Ok(())
    }

    fn stream_all(&self, visit: &mut dyn FnMut(&UserData)) -> Result<u64> {
        let r = self.db.r_transaction()?;
        let mut count = 0;
        for user in r.scan().primary::<NUser>()?.all()? {
            visit(&user?.into());
            count += 1;
        }
        Ok(count)
    }

    fn index_sizes(&self) -> Result<(u64, u64)> {
        let r = self.db.r_transaction()?;
        let emails = r.len().secondary::<NUser>(NUserKey::email)?;
        let teams = r.len().secondary::<NUser>(NUserKey::team)?;
        Ok((emails, teams))
    }
}
