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
use crate::model::{Model, ModelInfo};
use crate::tables::ModelTables;

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
pub(crate) fn check<M: Model>(record: &M) -> Result<()> {
    match record.expires_at() {
        Some(at) => millis(M::INFO.name, at).map(drop),
        None => Ok(()),
    }
}

/// Whether `record` has expired at `now` (milliseconds).
pub(crate) fn is_expired<M: Model>(record: &M, now: u64) -> bool {
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
