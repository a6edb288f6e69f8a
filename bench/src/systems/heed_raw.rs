//! The physical limit of our design: the same records with heed directly,
//! indexes maintained by hand in the same write transaction (BENCH.md).
//!
//! The team index is kept as LMDB duplicates (one key per team, its users'
//! ids packed under it), or, for `heed_raw_flat`, as skyshelve keeps a
//! non-unique index on every engine: one entry per user, the key the team
//! followed by the id, the value the id. The second shows what that layout
//! costs LMDB itself, apart from anything skyshelve adds.

use std::path::Path;

use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U32, U64};
use heed::{CommitOrAbort, Database, DatabaseFlags, EnvFlags, EnvOpenOptions, PutFlags, WithoutTls};

use super::{Db, Result, Sync};
use crate::model::UserData;

type Users = Database<'static, U64<BigEndian>, Bytes>;
type Emails = Database<'static, Str, U64<BigEndian>>;
type Teams = Database<'static, U32<BigEndian>, U64<BigEndian>>;
type FlatTeams = Database<'static, Bytes, U64<BigEndian>>;

/// How the team index is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamLayout {
    /// A key per team, its users' ids as packed LMDB duplicates.
    Duplicates,
    /// skyshelve's layout: key = team ++ id, value = id.
    Flat,
}

enum TeamIndex {
    Duplicates(Teams),
    Flat(FlatTeams),
}

pub struct HeedRaw {
    env: heed::Env<WithoutTls>,
    users: Users,
    emails: Emails,
    teams: TeamIndex,
}

/// The flat team index's key: the team, then the id, both big-endian so
/// that the entries sort by team and then by id.
fn flat_key(team: u32, id: u64) -> [u8; 12] {
    let mut key = [0; 12];
    key[..4].copy_from_slice(&team.to_be_bytes());
    key[4..].copy_from_slice(&id.to_be_bytes());
    key
}

fn encode(user: &UserData) -> Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(user, bincode::config::standard())?)
}

fn decode(bytes: &[u8]) -> Result<UserData> {
    Ok(bincode::serde::decode_from_slice(bytes, bincode::config::standard())?.0)
}

impl HeedRaw {
    pub fn open(dir: &Path, sync: Sync, layout: TeamLayout) -> Result<Self> {
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(8 << 30).max_dbs(8);
        if sync == Sync::Relaxed {
            // SAFETY: NO_SYNC only relaxes fsync.
            unsafe { options.flags(EnvFlags::NO_SYNC) };
        }
        // SAFETY: the benchmark is the only user of this folder's LMDB files.
        let env = unsafe { options.open(dir)? };
        let wtxn = env.write_txn()?;
        let (users, emails, duplicates, flat) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let users = opener.create_database(wtxn, Some("users"))?;
                let emails = opener.create_database(wtxn, Some("email"))?;
                // heed carries databases created here over the commit only
                // as types it knows (`OnCommit`): each layout's database
                // travels as an `Option`, and the enum is made after.
                let duplicates = (layout == TeamLayout::Duplicates)
                    .then(|| {
                        opener
                            .database_options()
                            .types::<U32<BigEndian>, U64<BigEndian>>()
                            .name("team")
                            .flags(DatabaseFlags::DUP_SORT | DatabaseFlags::DUP_FIXED)
                            .create(wtxn)
                    })
                    .transpose()?;
                let flat =
                    (layout == TeamLayout::Flat).then(|| opener.create_database(wtxn, Some("team"))).transpose()?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((users, emails, duplicates, flat)))
            })?
            .unwrap_commit();
        let teams = match (duplicates, flat) {
            (Some(index), _) => TeamIndex::Duplicates(index),
            (None, Some(index)) => TeamIndex::Flat(index),
            (None, None) => unreachable!("one layout is always chosen"),
        };
        Ok(HeedRaw { env, users, emails, teams })
    }

    fn put(&self, wtxn: &mut heed::RwTxn, user: &UserData) -> Result<()> {
        self.users.put(wtxn, &user.id, &encode(user)?)?;
        self.emails.put_with_flags(wtxn, PutFlags::NO_OVERWRITE, &user.email, &user.id)?;
        match &self.teams {
            TeamIndex::Duplicates(teams) => teams.put(wtxn, &user.team, &user.id)?,
            TeamIndex::Flat(teams) => teams.put(wtxn, &flat_key(user.team, user.id), &user.id)?,
        }
        Ok(())
    }

    /// Calls `visit` with (team, id) of each entry of the team index whose
    /// team is in `teams`, in index order.
    fn team_entries(
        &self,
        rtxn: &heed::RoTxn<WithoutTls>,
        teams: std::ops::Range<u32>,
        visit: &mut dyn FnMut(u32, u64) -> Result<()>,
    ) -> Result<()> {
        match &self.teams {
            TeamIndex::Duplicates(index) => {
                for entry in index.range(rtxn, &teams)? {
                    let (team, id) = entry?;
                    visit(team, id)?;
                }
            }
            TeamIndex::Flat(index) => {
                let bounds = (
                    std::ops::Bound::Included(&flat_key(teams.start, 0)[..]),
                    std::ops::Bound::Excluded(&flat_key(teams.end, 0)[..]),
                );
                for entry in index.range(rtxn, &bounds)? {
                    let (key, id) = entry?;
                    let team = u32::from_be_bytes(key[..4].try_into()?);
                    visit(team, id)?;
                }
            }
        }
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
        if let TeamIndex::Duplicates(index) = &self.teams {
            if let Some(ids) = index.get_duplicates(&rtxn, &team)? {
                for entry in ids {
                    let (_, id) = entry?;
                    let user = decode(self.users.get(&rtxn, &id)?.ok_or("dangling team entry")?)?;
                    count += usize::from(user.team == team);
                }
            }
            return Ok(count);
        }
        let next = team.checked_add(1).ok_or("no team after u32::MAX")?;
        self.team_entries(&rtxn, team..next, &mut |_, id| {
            let user = decode(self.users.get(&rtxn, &id)?.ok_or("dangling team entry")?)?;
            count += usize::from(user.team == team);
            Ok(())
        })?;
        Ok(count)
    }

    fn range_teams(&self, teams: std::ops::Range<u32>) -> Result<usize> {
        let rtxn = self.env.read_txn()?;
        let mut count = 0;
        self.team_entries(&rtxn, teams, &mut |team, id| {
            let user = decode(self.users.get(&rtxn, &id)?.ok_or("dangling team entry")?)?;
            count += usize::from(user.team == team);
            Ok(())
        })?;
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
        let teams = match &self.teams {
            TeamIndex::Duplicates(index) => index.len(&rtxn)?,
            TeamIndex::Flat(index) => index.len(&rtxn)?,
        };
        Ok((self.emails.len(&rtxn)?, teams))
    }
}
