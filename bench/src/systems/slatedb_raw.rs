//! Raw SlateDB, the anchor for skyshelve on SlateDB as raw heed is for
//! skyshelve on LMDB: SlateDB's own API, the record and its two indexes
//! kept by hand in one key space, each write one `WriteBatch`.
//!
//! Keys: `u` + id (big-endian) → the encoded user; `e` + email → id;
//! `t` + team (big-endian) + id → nothing. A durable write flushes the
//! write-ahead log before it returns (`Db::flush`, as skyshelve does for
//! `Durability::Full`); a relaxed one returns once the batch is in memory,
//! flushed every `flush_interval`. Writes of one process run one at a
//! time (a mutex), so that read-modify-write and the unique check hold, as
//! a careful user of a single-writer store would write them.

use std::path::Path;
use std::sync::{Arc, Mutex};

use slatedb::object_store::ObjectStore;
use slatedb::object_store::path::Path as ObjectPath;
use slatedb::{Db as Slate, WriteBatch};

use super::{Db, Result, Sync};
use crate::model::UserData;

/// What `scan` calls with each key and value.
type Visit<'v> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'v;

pub struct SlatedbRaw {
    db: Slate,
    runtime: tokio::runtime::Runtime,
    durable: bool,
    /// One writer at a time in this process.
    writing: Mutex<()>,
}

impl SlatedbRaw {
    /// Objects in `SKYSHELVE_SLATEDB_URL` (an S3 server) under the
    /// folder's name, or in a folder inside `dir`: where skyshelve on
    /// SlateDB keeps them in the same run.
    pub fn open(dir: &Path, sync: Sync) -> Result<Self> {
        let durable = sync == Sync::Durable;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let (objects, path) = object_store(dir, durable)?;
        let db = runtime.block_on(Slate::builder(path, objects).build())?;
        Ok(SlatedbRaw { db, runtime, durable, writing: Mutex::new(()) })
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.runtime.block_on(async {
            self.db.write(batch).await?;
            if self.durable {
                self.db.flush().await?;
            }
            Ok::<_, slatedb::Error>(())
        })?;
        Ok(())
    }

    fn get_raw(&self, key: &[u8]) -> Result<Option<slatedb::bytes::Bytes>> {
        Ok(self.runtime.block_on(self.db.get(key))?)
    }

    /// Adds `user` and its index entries to `batch`, refusing a taken email.
    fn put(&self, batch: &mut WriteBatch, user: &UserData) -> Result<()> {
        if self.get_raw(&email_key(&user.email))?.is_some() {
            return Err(format!("email {} is taken", user.email).into());
        }
        batch.put(user_key(user.id), encode(user)?);
        batch.put(email_key(&user.email), user.id.to_be_bytes());
        batch.put(team_key(user.team, user.id), []);
        Ok(())
    }

    /// Every entry under `prefix`, in key order, visited in this thread.
    fn scan(&self, prefix: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        let mut iter = self.runtime.block_on(self.db.scan_prefix(prefix, ..))?;
        while let Some(entry) = self.runtime.block_on(iter.next())? {
            visit(&entry.key, &entry.value)?;
        }
        Ok(())
    }

    fn count(&self, prefix: &[u8]) -> Result<u64> {
        let mut count = 0;
        self.scan(prefix, &mut |_, _| {
            count += 1;
            Ok(())
        })?;
        Ok(count)
    }
}

impl Db for SlatedbRaw {
    fn insert_batch(&self, users: &[UserData]) -> Result<()> {
        let _writing = self.writing.lock().map_err(|_| "a writer panicked")?;
        let mut batch = WriteBatch::new();
        for user in users {
            self.put(&mut batch, user)?;
        }
        self.write(batch)
    }

    fn insert_one(&self, user: &UserData) -> Result<()> {
        let _writing = self.writing.lock().map_err(|_| "a writer panicked")?;
        let mut batch = WriteBatch::new();
        self.put(&mut batch, user)?;
        self.write(batch)
    }

    fn get(&self, id: u64) -> Result<Option<UserData>> {
        self.get_raw(&user_key(id))?.map(|bytes| decode(&bytes)).transpose()
    }

    fn get_by_email(&self, email: &str) -> Result<Option<UserData>> {
        let Some(id) = self.get_raw(&email_key(email))? else { return Ok(None) };
        let id = u64::from_be_bytes(id.as_ref().try_into()?);
        self.get(id)
    }

    fn scan_team(&self, team: u32) -> Result<usize> {
        let mut prefix = vec![b't'];
        prefix.extend_from_slice(&team.to_be_bytes());
        let mut ids = Vec::new();
        self.scan(&prefix, &mut |key, _| {
            ids.push(u64::from_be_bytes(key[prefix.len()..].try_into()?));
            Ok(())
        })?;
        let mut count = 0;
        for id in ids {
            let user = self.get(id)?.ok_or("dangling team entry")?;
            count += usize::from(user.team == team);
        }
        Ok(count)
    }

    fn range_teams(&self, teams: std::ops::Range<u32>) -> Result<usize> {
        let (start, end) = (team_key(teams.start, 0), team_key(teams.end, 0));
        let mut ids = Vec::new();
        let mut iter = self.runtime.block_on(self.db.scan(start..end))?;
        while let Some(entry) = self.runtime.block_on(iter.next())? {
            ids.push(u64::from_be_bytes(entry.key[5..].try_into()?));
        }
        let mut count = 0;
        for id in ids {
            let user = self.get(id)?.ok_or("dangling team entry")?;
            count += usize::from(teams.contains(&user.team));
        }
        Ok(count)
    }

    fn increment(&self, id: u64) -> Result<()> {
        let _writing = self.writing.lock().map_err(|_| "a writer panicked")?;
        let mut user = self.get(id)?.ok_or("no such user")?;
        user.score += 1;
        // The score is not indexed: no index entry changes.
        let mut batch = WriteBatch::new();
        batch.put(user_key(id), encode(&user)?);
        self.write(batch)
    }

    fn stream_all(&self, visit: &mut dyn FnMut(&UserData)) -> Result<u64> {
        let mut count = 0;
        self.scan(b"u", &mut |_, value| {
            visit(&decode(value)?);
            count += 1;
            Ok(())
        })?;
        Ok(count)
    }

    fn index_sizes(&self) -> Result<(u64, u64)> {
        Ok((self.count(b"e")?, self.count(b"t")?))
    }
}

impl Drop for SlatedbRaw {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(self.db.close());
    }
}

fn user_key(id: u64) -> Vec<u8> {
    let mut key = vec![b'u'];
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn email_key(email: &str) -> Vec<u8> {
    let mut key = vec![b'e'];
    key.extend_from_slice(email.as_bytes());
    key
}

fn team_key(team: u32, id: u64) -> Vec<u8> {
    let mut key = vec![b't'];
    key.extend_from_slice(&team.to_be_bytes());
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn encode(user: &UserData) -> Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(user, bincode::config::standard())?)
}

fn decode(bytes: &[u8]) -> Result<UserData> {
    Ok(bincode::serde::decode_from_slice(bytes, bincode::config::standard())?.0)
}

fn object_store(dir: &Path, fsync: bool) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    if let Ok(base) = std::env::var("SKYSHELVE_SLATEDB_URL") {
        let url =
            format!("{}/bench-raw/{}", base.trim_end_matches('/'), dir.display().to_string().trim_start_matches('/'));
        let (_, path) = slatedb::object_store::ObjectStoreScheme::parse(&url::Url::parse(&url)?)?;
        let s3 = slatedb::object_store::aws::AmazonS3Builder::from_env().with_url(&url).build()?;
        return Ok((Arc::new(s3), path));
    }
    let folder = dir.join("raw-objects");
    std::fs::create_dir_all(&folder)?;
    let local = slatedb::object_store::local::LocalFileSystem::new_with_prefix(&folder)?.with_fsync(fsync);
    Ok((Arc::new(local), ObjectPath::from("")))
}
