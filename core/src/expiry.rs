//! Expiring records: a model may mark one field as its expiry time
//! (`#[persistent(expires)]`, a `SystemTime` or `Option<SystemTime>`).
//! The derive makes that field an index of milliseconds since the Unix
//! epoch (`IndexKind::Expiry`). From its expiry on, a record is invisible
//! to every read (each read compares with the clock), in every process,
//! before any purge; a write transaction first removes the model's
//! expired records (so that writes never meet them: their keys and unique
//! values are free again), and `Store::purge_expired` removes them all in
//! bounded batches, by hand or from a background thread.

use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::codec::key::encode_to_vec;
use crate::engine::Reader;
use crate::error::{Error, Result};
use crate::model::{ModelInfo, Persistent};
use crate::store::ModelTables;

/// A type a `#[persistent(expires)]` field may have.
#[diagnostic::on_unimplemented(
    message = "a #[persistent(expires)] field must be a `SystemTime` or an `Option<SystemTime>`, not `{Self}`",
    label = "the record's expiry time"
)]
pub trait ExpiryField {
    /// When the record expires; `None`: never.
    fn expiry(&self) -> Option<SystemTime>;
}

impl ExpiryField for SystemTime {
    fn expiry(&self) -> Option<SystemTime> {
        Some(*self)
    }
}

impl ExpiryField for Option<SystemTime> {
    fn expiry(&self) -> Option<SystemTime> {
        *self
    }
}

/// An expiry time as the index stores it: milliseconds since the Unix
/// epoch. A time before the epoch, or too far ahead for 64 bits of
/// milliseconds, is refused.
pub(crate) fn millis(model: &'static str, at: SystemTime) -> Result<u64> {
    let since = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::BadExpiry { model, reason: format!("{at:?} is before the Unix epoch") })?;
    u64::try_from(since.as_millis())
        .map_err(|_| Error::BadExpiry { model, reason: format!("{at:?} is too far ahead (past year 584 million)") })
}

/// The index value of an expiry field, for the derive's `index_entries`
/// (which cannot fail: a bad form is refused before, by `check`).
#[doc(hidden)]
pub fn index_value<F: ExpiryField>(field: &F) -> Option<u64> {
    field.expiry().map(|at| millis("", at).unwrap_or(0))
}

/// The clock as expiry compares with it.
pub(crate) fn now_millis() -> u64 {
    millis("", SystemTime::now()).unwrap_or(0)
}

/// Refuses a record whose expiry is in a form the index cannot hold.
pub(crate) fn check<M: Persistent>(record: &M) -> Result<()> {
    match record.expires_at() {
        Some(at) => millis(M::INFO.name, at).map(drop),
        None => Ok(()),
    }
}

/// Whether `record` has expired at `now` (milliseconds).
pub(crate) fn is_expired<M: Persistent>(record: &M, now: u64) -> bool {
    M::EXPIRY.is_some() && record.expires_at().is_some_and(|at| millis("", at).is_ok_and(|at| at <= now))
}

/// The position of the expiry index of the model `info` describes.
pub(crate) fn index_position(info: &ModelInfo) -> Option<usize> {
    info.indexes.iter().position(|index| index.kind == crate::IndexKind::Expiry)
}

/// The keys of up to `limit` records of a model that expired at `now`,
/// earliest first.
pub(crate) fn expired_keys(
    txn: &(impl Reader + ?Sized),
    tables: &ModelTables,
    position: usize,
    now: u64,
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    // Index entries start with the encoded value: every entry of a value
    // up to `now` sorts before the encoding of `now + 1`.
    let end = encode_to_vec(&now.saturating_add(1));
    let entries = txn.range(tables.indexes[position], Bound::Unbounded, Bound::Excluded(&end))?;
    entries.take(limit).map(|entry| entry.map(|(_, key)| key.to_vec())).collect()
}

/// How many records of a model expired at `now`.
pub(crate) fn count_expired(
    txn: &(impl Reader + ?Sized),
    tables: &ModelTables,
    position: usize,
    now: u64,
) -> Result<u64> {
    let end = encode_to_vec(&now.saturating_add(1));
    let mut count = 0;
    for entry in txn.range(tables.indexes[position], Bound::Unbounded, Bound::Excluded(&end))? {
        entry?;
        count += 1;
    }
    Ok(count)
}

/// How many expired records one transaction of `purge_expired` removes.
const PURGE_BATCH: usize = 1000;

impl crate::Store {
    /// Removes every expired record of every model with an expiry field,
    /// with its index entries, in transactions of at most 1000 records (so
    /// that other writers are not held up); returns how many. Expired
    /// records are invisible to reads already; purging frees their space.
    /// A record kept by `on_delete = restrict` children stays, invisible.
    /// [`StoreOptions::purge_expired_every`](crate::StoreOptions::purge_expired_every)
    /// runs this on a background thread.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// use std::time::{Duration, SystemTime};
    ///
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_expiry_session")]
    /// struct Session {
    ///     #[persistent(key)]
    ///     token: String,
    ///     #[persistent(expires)]
    ///     expires_at: SystemTime,
    /// }
    ///
    /// let store = Store::temporary()?;
    /// Session { token: "new".into(), expires_at: SystemTime::now() + Duration::from_secs(3600) }.save(&store)?;
    /// let past = SystemTime::now() - Duration::from_secs(1);
    /// Session { token: "old".into(), expires_at: past }.save(&store)?;
    /// assert!(Session::load(&store, "old")?.is_none(), "invisible before any purge");
    /// assert_eq!(Session::count(&store)?, 1);
    /// assert_eq!(store.purge_expired()?, 1);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn purge_expired(&self) -> Result<u64> {
        let mut purged = 0;
        for tables in self.shared().all_tables() {
            let Some(position) = tables.expiry else { continue };
            loop {
                let (found, removed) = self.write(|tx| {
                    let keys = expired_keys(tx.raw_writer(), tables, position, now_millis(), PURGE_BATCH)?;
                    let mut removed = 0;
                    for key in &keys {
                        match tx.delete_encoded(tables, key) {
                            Ok(true) => removed += 1,
                            Ok(false) | Err(Error::Restricted { .. }) => {}
                            Err(err) => return Err(err),
                        }
                    }
                    Ok((keys.len(), removed))
                })?;
                purged += removed;
                // A short batch was the last; a batch of kept records ends it too.
                if found < PURGE_BATCH || removed == 0 {
                    break;
                }
            }
        }
        Ok(purged)
    }
}

/// Runs `Store::purge_expired` every `interval` while the store is open
/// in this process; the thread holds no handle between rounds, so it does
/// not keep the store open, and ends within one interval of its close.
pub(crate) fn start_purger(shared: &std::sync::Arc<crate::store::Shared>, interval: std::time::Duration) {
    let weak = std::sync::Arc::downgrade(shared);
    let spawned = std::thread::Builder::new().name("skyshelve-purge".into()).spawn(move || {
        loop {
            std::thread::sleep(interval);
            let Some(shared) = weak.upgrade() else { return };
            // A failed round (a full disk, a lock held elsewhere) is tried
            // again at the next interval.
            let _ = crate::Store::from_shared(shared).purge_expired();
        }
    });
    // Without a thread, purging is left to explicit calls.
    drop(spawned);
}
