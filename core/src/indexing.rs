//! Index maintenance: the one home of the rules every index entry follows,
//! used by writes (`txn`), index builds (`catalog`) and `verify`.
//!
//! Index layout, one table per index:
//! - unique:      key = value                 data = primary key
//! - other kinds: key = value ++ primary key  data = primary key
//!
//! Key encodings are prefix-free, so `value ++ primary key` sorts by value
//! and then by key, and the records of one value are one key prefix.
//!
//! Only `entries_of` knows the model's type; the rules work from its
//! description (`ModelInfo`), so they are compiled once for every model.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Bound;

use crate::engine::check_key_len;
use crate::engine::{Reader, Writer};
use crate::error::{Error, Result};
use crate::model::IndexEntries;
use crate::model::{Model, ModelInfo};
use crate::tables::ModelTables;

/// The index values of `record`, as its model's derive computes them.
#[inline]
pub(crate) fn entries_of<M: Model>(record: &M) -> IndexEntries {
    let mut entries = IndexEntries::with_capacity(M::INFO.indexes.len());
    record.index_entries(&mut entries);
    entries
}

/// The key of an index entry in its table (see the layout above).
#[inline]
pub(crate) fn index_key(info: &ModelInfo, position: usize, value: &[u8], primary: &[u8]) -> Vec<u8> {
    entry_key(info, position, value, primary).into_owned()
}

/// `index_key`, borrowing `value` where it is the whole key (a unique
/// index's), so that a write does not copy it.
#[inline]
fn entry_key<'v>(info: &ModelInfo, position: usize, value: &'v [u8], primary: &[u8]) -> Cow<'v, [u8]> {
    if info.indexes[position].unique { Cow::Borrowed(value) } else { Cow::Owned([value, primary].concat()) }
}

/// The value of an index entry whose key in its table is `entry_key` and
/// whose record's primary key is `primary` (see the layout above).
#[inline]
pub(crate) fn index_value<'e>(info: &ModelInfo, position: usize, entry_key: &'e [u8], primary: &[u8]) -> &'e [u8] {
    if info.indexes[position].unique { entry_key } else { entry_key.strip_suffix(primary).unwrap_or(entry_key) }
}

/// The key of the entry for `value` of the record under `primary`, if it
/// fits the engine's key limit.
#[inline]
pub(crate) fn checked_key<'v>(
    info: &ModelInfo,
    position: usize,
    value: &'v [u8],
    primary: &[u8],
) -> Result<Cow<'v, [u8]>> {
    let index_key = entry_key(info, position, value, primary);
    let name = info.indexes[position].name;
    check_key_len(|| format!("index {}.{name} entry", info.name), index_key.len())?;
    Ok(index_key)
}

/// Checks that the record under `primary` may have the entry for `value`
/// (it fits, and no other record holds a unique value; the record leaving
/// `moving_from` may hand its own over) and returns the entry's key.
pub(crate) fn check_entry<'v>(
    txn: &(impl Reader + ?Sized),
    tables: &ModelTables,
    position: usize,
    value: &'v [u8],
    primary: &[u8],
    moving_from: Option<&[u8]>,
) -> Result<Cow<'v, [u8]>> {
    let index_key = checked_key(tables.info, position, value, primary)?;
    let index = &tables.info.indexes[position];
    if index.unique {
        let holder = txn.get(tables.indexes[position], value)?;
        if holder.is_some_and(|holder| holder != primary && Some(holder) != moving_from) {
            let value = (index.describe)(value);
            return Err(Error::UniqueViolation { model: tables.info.name, index: index.name, value });
        }
    }
    Ok(index_key)
}

/// Adds the entry for `value` of the record under `primary`, checked as a
/// write checks it: for index builds, whose entries were never checked.
pub(crate) fn add_entry(
    txn: &mut dyn Writer,
    tables: &ModelTables,
    position: usize,
    value: &[u8],
    primary: &[u8],
) -> Result<()> {
    let index_key = check_entry(&*txn, tables, position, value, primary, None)?;
    txn.put(tables.indexes[position], &index_key, primary)
}

/// Removes the entry of the record under `primary` for `value`. A unique
/// entry is removed only if it is that record's: while an index is being
/// built, the value may still be held by another record.
pub(crate) fn remove_entry(
    txn: &mut dyn Writer,
    tables: &ModelTables,
    position: usize,
    value: &[u8],
    primary: &[u8],
) -> Result<()> {
    let table = tables.indexes[position];
    if tables.info.indexes[position].unique {
        if txn.get(table, value)? == Some(primary) {
            txn.delete(table, value)?;
        }
    } else {
        txn.delete(table, &index_key(tables.info, position, value, primary))?;
    }
    Ok(())
}

/// Every index entry of the model whose primary key is `primary`, found by
/// a scan of each index: for a record whose entries cannot be computed
/// (undecodable, or written by older code).
pub(crate) fn entries_pointing_at(
    txn: &(impl Reader + ?Sized),
    tables: &ModelTables,
    primary: &[u8],
) -> Result<IndexEntries> {
    let mut entries = IndexEntries::default();
    for (position, &table) in tables.indexes.iter().enumerate() {
        for entry in txn.range(table, Bound::Unbounded, Bound::Unbounded)? {
            let (entry_key, holder) = entry?;
            if holder == primary {
                entries.add_encoded(position, index_value(tables.info, position, entry_key, primary));
            }
        }
    }
    Ok(entries)
}

/// Removes every index entry of the model whose primary key is one of
/// `keys`, in one pass over each index: for records whose entries cannot
/// be computed (undecodable, or written by older code).
pub(crate) fn remove_entries_of(txn: &mut dyn Writer, tables: &ModelTables, keys: &HashSet<&[u8]>) -> Result<()> {
    for &table in &tables.indexes {
        let stale: Vec<Vec<u8>> = txn
            .range(table, Bound::Unbounded, Bound::Unbounded)?
            .filter_map(|entry| match entry {
                Ok((entry_key, primary)) if keys.contains(primary) => Some(Ok(entry_key.to_vec())),
                Ok(_) => None,
                Err(err) => Some(Err(err)),
            })
            .collect::<Result<_>>()?;
        for entry_key in stale {
            txn.delete(table, &entry_key)?;
        }
    }
    Ok(())
}
