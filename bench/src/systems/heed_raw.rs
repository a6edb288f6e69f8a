//! The physical limit of our design: the same records with heed directly,
//! indexes maintained by hand in the same write transaction (BENCH.md).

use std::path::Path;

use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U32, U64};
use heed::{CommitOrAbort, Database, DatabaseFlags, EnvFlags, EnvOpenOptions, PutFlags, WithoutTls};

use super::{Db, Result, Sync};
use crate::model::UserData;

type Users = Database<'static, U64<BigEndian>, Bytes>;
type Emails = Database<'static, Str, U64<BigEndian>>;
type Teams = Database<'static, U32<BigEndian>, U64<BigEndian>>;

pub struct HeedRaw {
    env: heed::Env<WithoutTls>,
    users: Users,
    emails: Emails,
    teams: Teams,
}

fn encode(user: &UserData) -> Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(user, bincode::config::standard())?)
}

fn decode(bytes: &[u8]) -> Result<UserData> {
    Ok(bincode::serde::decode_from_slice(bytes, bincode::config::standard())?.0)
}

impl HeedRaw {
    pub fn open(dir: &Path, sync: Sync) -> Result<Self> {
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(8 << 30).max_dbs(8);
        if sync == Sync::Relaxed {
            // SAFETY: NO_SYNC only relaxes fsync.
            unsafe { options.flags(EnvFlags::NO_SYNC) };
        }
        // SAFETY: the benchmark is the only user of this folder's LMDB files.
        let env = unsafe { options.open(dir)? };
        let wtxn = env.write_txn()?;
        let (users, emails, teams) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let users = opener.create_database(wtxn, Some("users"))?;
                let emails = opener.create_database(wtxn, Some("email"))?;
                let teams = opener
                    .database_options()
                    .types::<U32<BigEndian>, U64<BigEndian>>()
                    .name("team")
                    .flags(DatabaseFlags::DUP_SORT | DatabaseFlags::DUP_FIXED)
                    .create(wtxn)?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((users, emails, teams)))
            })?
            .unwrap_commit();
        Ok(HeedRaw { env, users, emails, teams })
    }

    fn put(&self, wtxn: &mut heed::RwTxn, user: &UserData) -> Result<()> {
        self.users.put(wtxn, &user.id, &encode(user)?)?;
        self.emails.put_with_flags(wtxn, PutFlags::NO_OVERWRITE, &user.email, &user.id)?;
        self.teams.put(wtxn, &user.team, &user.id)?;
        Ok(())
    }
}

impl Db for HeedRaw {
    fn insert_batch(&self, users: &[UserData]) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for user in users {
            self.put(&mut wtxn, user)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn insert_one(&self, user: &UserData) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.put(&mut wtxn, user)?;
        wtxn.commit()?;
        Ok(())
    }

    fn get(&self, id: u64) -> Result<Option<UserData>> {
        let rtxn = self.env.read_txn()?;
        self.users.get(&rtxn, &id)?.map(decode).transpose()
    }

    fn get_by_email(&self, email: &str) -> Result<Option<UserData>> {
        let rtxn = self.env.read_txn()?;
        let Some(id) = self.emails.get(&rtxn, email)? else { return Ok(None) };
        self.users.get(&rtxn, &id)?.map(decode).transpose()
    }

    fn scan_team(&self, team: u32) -> Result<usize> {
        let rtxn = self.env.read_txn()?;
        let mut count = 0;
        if let Some(ids) = self.teams.get_duplicates(&rtxn, &team)? {
            for entry in ids {
                let (_, id) = entry?;
                let user = decode(self.users.get(&rtxn, &id)?.ok_or("dangling team entry")?)?;
                count += usize::from(user.team == team);
            }
        }
        Ok(count)
    }

    fn range_teams(&self, teams: std::ops::Range<u32>) -> Result<usize> {
        let rtxn = self.env.read_txn()?;
        let mut count = 0;
        for entry in self.teams.range(&rtxn, &teams)? {
            let (team, id) = entry?;
            let user = decode(self.users.get(&rtxn, &id)?.ok_or("dangling team entry")?)?;
            count += usize::from(user.team == team);
        }
        Ok(count)
    }

    fn increment(&self, id: u64) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        let mut user = decode(self.users.get(&wtxn, &id)?.ok_or("no such user")?)?;
        user.score += 1;
        // The score is not indexed: no index entry changes.
        self.users.put(&mut wtxn, &id, &encode(&user)?)?;
        wtxn.commit()?;
        Ok(())
    }

    fn stream_all(&self, visit: &mut dyn FnMut(&UserData)) -> Result<u64> {
        let rtxn = self.env.read_txn()?;
        let mut count = 0;
        for entry in self.users.iter(&rtxn)? {
            visit(&decode(entry?.1)?);
            count += 1;
        }
        Ok(count)
    }

    fn index_sizes(&self) -> Result<(u64, u64)> {
        let rtxn = self.env.read_txn()?;
        Ok((self.emails.len(&rtxn)?, self.teams.len(&rtxn)?))
    }
}
