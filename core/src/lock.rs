//! `RecordLock`: a lock on one record that holds across a longer piece of
//! work, between threads and between processes (the markers and owners
//! are `locks.rs`).

use std::time::Duration;

use crate::codec::key::describe_encoded;
use crate::engine::check_key_len;
use crate::error::{Error, Result};
use crate::locks::{Backoff, Owner, marker_key};
use crate::model::Model;
use crate::store::Store;

/// A lock on one record, held until it is dropped (or its process dies).
///
/// It holds the record as it was when the lock was taken; change it with
/// [`get_mut`](RecordLock::get_mut) or [`set`](RecordLock::set) and write
/// it with [`save`](RecordLock::save). Writers of other records carry on;
/// every other write of this record, from any thread or process, waits
/// until the lock is released.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use skyshelve::{Persistent, Store};
/// #[derive(Persistent, Serialize, Deserialize)]
/// # #[persistent(name = "doc_lock_job")]
/// struct Job { #[persistent(key)] id: u32, state: String }
///
/// # let store = Store::temporary()?;
/// Job { id: 1, state: "new".into() }.save(&store)?;
/// let mut job = Job::lock(&store, &1)?;
/// // ... a longer piece of work; nobody else can write job 1 meanwhile ...
/// job.get_mut().unwrap().state = "done".into();
/// job.save()?;
/// drop(job);
/// assert_eq!(Job::load(&store, &1)?.unwrap().state, "done");
/// # Ok::<(), skyshelve::Error>(())
/// ```
pub struct RecordLock<M: Model> {
    store: Store,
    key: Vec<u8>,
    owner: Owner,
    record: Option<M>,
}

impl<M: Model> std::fmt::Debug for RecordLock<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordLock").field("model", &M::INFO.name).field("key", &self.describe_key()).finish()
    }
}

impl<M: Model> RecordLock<M> {
    /// Takes the lock on the record with key `key`, waiting up to `wait`
    /// (forever if `None`) while someone else holds it.
    pub(crate) fn acquire(store: &Store, key: Vec<u8>, wait: Option<Duration>) -> Result<RecordLock<M>> {
        let shared = store.shared();
        let marker = marker_key(M::INFO.name, &key);
        check_key_len(|| format!("lock on {} key", M::INFO.name), marker.len())?;
        store.writable()?; // before the owner file is created
        let owner = shared.locks.new_owner()?;
        let mut backoff = Backoff::until(wait, shared.engine.counters());
        loop {
            match Self::try_take(store, &marker, &key, owner) {
                Ok(Some(record)) => return Ok(RecordLock { store: store.clone(), key, owner, record }),
                Ok(None) if backoff.wait() => {}
                Ok(None) => {
                    shared.locks.release_owner(owner);
                    return Err(Error::Locked { model: M::INFO.name, key: describe_encoded::<M::Key>(&key) });
                }
                Err(err) => {
                    shared.locks.release_owner(owner);
                    return Err(err);
                }
            }
        }
    }

    /// One attempt: `Some(record)` when the lock was free (or its holder
    /// dead) and is now ours.
    fn try_take(store: &Store, marker: &[u8], key: &[u8], owner: Owner) -> Result<Option<Option<M>>> {
        let shared = store.shared();
        shared.engine.write(|txn| {
            let holder = txn.get(shared.lock_table, marker)?.and_then(Owner::from_bytes);
            if holder.is_some_and(|holder| holder != owner && shared.locks.is_alive(holder)) {
                return Ok(None);
            }
            txn.put(shared.lock_table, marker, &owner.to_bytes())?;
            let tables = shared.tables::<M>()?;
            let record = match txn.get(tables.main, key)? {
                Some(bytes) => Some(crate::record::decode_record::<M>(bytes)?.1),
                None => None,
            };
            Ok(Some(record))
        })
    }

    /// The record as held: `None` if it did not exist when locked (or was deleted).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    /// # #[persistent(name = "doc_lock_get")]
    /// # struct Job { #[persistent(key)] id: u32, done: bool }
    /// # let store = Store::temporary()?;
    /// # Job { id: 1, done: false }.save(&store)?;
    /// let mut job = Job::lock(&store, &1)?;
    /// assert_eq!(job.get(), Some(&Job { id: 1, done: false }));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn get(&self) -> Option<&M> {
        self.record.as_ref()
    }

    /// The held record, to change before [`save`](RecordLock::save).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    /// # #[persistent(name = "doc_lock_get_mut")]
    /// # struct Job { #[persistent(key)] id: u32, done: bool }
    /// # let store = Store::temporary()?;
    /// # Job { id: 1, done: false }.save(&store)?;
    /// let mut job = Job::lock(&store, &1)?;
    /// job.get_mut().unwrap().done = true;
    /// job.save()?;
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> Option<&mut M> {
        self.record.as_mut()
    }

    /// Replaces the held record (for instance to create a record that did
    /// not exist); written by [`save`](RecordLock::save). The record must
    /// have the locked key: another key fails with [`Error::WrongKey`] and
    /// leaves the held record as it was.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    /// # #[persistent(name = "doc_lock_set")]
    /// # struct Job { #[persistent(key)] id: u32, done: bool }
    /// # let store = Store::temporary()?;
    /// # Job { id: 1, done: false }.save(&store)?;
    /// let mut job = Job::lock(&store, &1)?;
    /// job.set(Job { id: 1, done: true })?;
    /// job.save()?;
    /// assert!(matches!(job.set(Job { id: 2, done: true }), Err(skyshelve::Error::WrongKey { .. })));
    /// # drop(job);
    /// # assert!(Job::load(&store, &1)?.unwrap().done);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn set(&mut self, record: M) -> Result<()> {
        self.check_key(&record)?;
        self.record = Some(record);
        Ok(())
    }

    /// Fails unless `record` has the locked key: the guard writes only the
    /// record it locked.
    fn check_key(&self, record: &M) -> Result<()> {
        if crate::codec::key::encode_to_vec(record.record_key()) == self.key {
            return Ok(());
        }
        let given = format!("{:?}", record.record_key());
        Err(Error::WrongKey { model: M::INFO.name, locked: self.describe_key(), given })
    }

    /// Writes the held record, keeping its indexes in step, and keeps the
    /// lock. A record whose key was changed through
    /// [`get_mut`](RecordLock::get_mut) is refused with [`Error::WrongKey`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    /// # #[persistent(name = "doc_lock_save")]
    /// # struct Job { #[persistent(key)] id: u32, done: bool }
    /// # let store = Store::temporary()?;
    /// # Job { id: 1, done: false }.save(&store)?;
    /// let mut job = Job::lock(&store, &1)?;
    /// job.get_mut().unwrap().done = true;
    /// job.save()?;
    /// # drop(job);
    /// # assert!(Job::load(&store, &1)?.unwrap().done);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn save(&mut self) -> Result<()> {
        let Some(record) = &self.record else {
            return Err(Error::NotFound { model: M::INFO.name, key: self.describe_key() });
        };
        self.check_key(record)?;
        self.store.write_as(Some(self.owner), |tx| tx.save(record))
    }

    /// Applies `change` to the held record and saves it.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    /// # #[persistent(name = "doc_lock_update")]
    /// # struct Job { #[persistent(key)] id: u32, done: bool }
    /// # let store = Store::temporary()?;
    /// # Job { id: 1, done: false }.save(&store)?;
    /// let mut job = Job::lock(&store, &1)?;
    /// job.update(|j| j.done = true)?;
    /// # drop(job);
    /// # assert!(Job::load(&store, &1)?.unwrap().done);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn update(&mut self, change: impl FnOnce(&mut M)) -> Result<()> {
        let Some(record) = &mut self.record else {
            return Err(Error::NotFound { model: M::INFO.name, key: self.describe_key() });
        };
        change(record);
        self.save()
    }

    /// Deletes the record and keeps the lock; returns whether it existed.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    /// # #[persistent(name = "doc_lock_delete")]
    /// # struct Job { #[persistent(key)] id: u32, done: bool }
    /// # let store = Store::temporary()?;
    /// # Job { id: 1, done: false }.save(&store)?;
    /// let mut job = Job::lock(&store, &1)?;
    /// assert!(job.delete()?);
    /// # drop(job);
    /// # assert!(!Job::exists(&store, &1)?);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn delete(&mut self) -> Result<bool> {
        let key = self.key.clone();
        let tables = self.store.shared().tables::<M>()?;
        let existed = self.store.write_as(Some(self.owner), |tx| tx.delete_encoded(tables, &key))?;
        self.record = None;
        Ok(existed)
    }

    /// Releases the lock, reporting a failure to do so (dropping the guard
    /// releases it too, ignoring errors: the lock then dies with the process).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    /// # #[persistent(name = "doc_lock_unlock")]
    /// # struct Job { #[persistent(key)] id: u32, done: bool }
    /// # let store = Store::temporary()?;
    /// # Job { id: 1, done: false }.save(&store)?;
    /// let mut job = Job::lock(&store, &1)?;
    /// job.unlock()?;
    /// assert!(Job::try_lock(&store, &1).is_ok());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn unlock(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let shared = self.store.shared();
        let marker = marker_key(M::INFO.name, &self.key);
        let owner = self.owner;
        let result = shared.engine.write(|txn| {
            let holder = txn.get(shared.lock_table, &marker)?.and_then(Owner::from_bytes);
            if holder == Some(owner) {
                txn.delete(shared.lock_table, &marker)?;
            }
            Ok::<_, Error>(())
        });
        shared.locks.release_owner(owner);
        result
    }

    fn describe_key(&self) -> String {
        describe_encoded::<M::Key>(&self.key)
    }
}

impl<M: Model> Drop for RecordLock<M> {
    fn drop(&mut self) {
        // Failing to delete the marker loses nothing: it names a guard
        // this process no longer has, which every checker treats as stale.
        let _ = self.release();
    }
}
