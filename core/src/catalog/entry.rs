//! A model's catalog entry and the checks every write and query makes
//! against it. This sits below the transactions: a write asks whether the
//! store's indexes are its own, a query whether its index is complete.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::codec::value;
use crate::engine::{Reader, Table};
use crate::error::{Error, Result};
use crate::index::IndexInfo;
use crate::model::ModelInfo;
use crate::store::ModelTables;

/// The version of the entry format, in the entry's value header.
const ENTRY_FORMAT: u16 = 1;

/// What the store knows about one model's indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The model version of the program that wrote the entry.
    pub(super) version: u16,
    /// Every index, as (name, fingerprint).
    pub(super) indexes: Vec<(String, String)>,
    /// Indexes whose entries are still being built.
    pub(super) building: Vec<String>,
    /// The last record key that has its entries in `building`.
    pub(super) built_through: Option<Vec<u8>>,
    /// Why the build stopped, when the records break an index's rules (two
    /// records with one unique value, an entry too long); the next open
    /// tries again.
    pub(super) failed: Option<String>,
}

impl Entry {
    /// The entry of a model whose indexes are all complete.
    pub(crate) fn complete(info: &ModelInfo) -> Entry {
        let indexes = definitions(info);
        Entry { version: info.version, indexes, building: Vec::new(), built_through: None, failed: None }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        value::encode_into(self, ENTRY_FORMAT, crate::tables::CATALOG, &mut bytes)?;
        Ok(bytes)
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Entry> {
        value::decode(bytes, crate::tables::CATALOG).map(|(_, entry)| entry)
    }

    pub(super) fn defines(&self, info: &ModelInfo) -> bool {
        self.indexes == definitions(info)
    }

    /// Whether `index` is in the catalog with the same definition.
    pub(super) fn has_same(&self, index: &IndexInfo) -> bool {
        self.indexes.iter().any(|(name, print)| name == index.name && *print == index.fingerprint())
    }

    pub(super) fn is_building(&self, index: &IndexInfo) -> bool {
        self.building.iter().any(|name| name == index.name)
    }

    /// Whether `index` is in the catalog, with the same definition, and complete.
    pub(super) fn has_complete(&self, index: &IndexInfo) -> bool {
        self.has_same(index) && !self.is_building(index)
    }
}

pub(super) fn definitions(info: &ModelInfo) -> Vec<(String, String)> {
    info.indexes.iter().map(|index| (index.name.to_owned(), index.fingerprint())).collect()
}

pub(super) fn read_entry(txn: &(impl Reader + ?Sized), catalog: Table, info: &ModelInfo) -> Result<Option<Entry>> {
    txn.get(catalog, info.name.as_bytes())?.map(Entry::decode).transpose()
}

/// `read_entry` for taking a model over: an entry that does not decode
/// (damaged) counts as absent, so the model's indexes are all rebuilt.
pub(super) fn read_entry_or_none(
    txn: &(impl Reader + ?Sized),
    catalog: Table,
    info: &ModelInfo,
) -> Result<Option<Entry>> {
    match read_entry(txn, catalog, info) {
        Err(Error::Decode { .. }) => Ok(None),
        other => other,
    }
}

/// Fails unless this program may write records of the model: the
/// catalog's indexes are this program's, so its writes keep them all.
pub(crate) fn check_writable(txn: &(impl Reader + ?Sized), catalog: Table, tables: &ModelTables) -> Result<()> {
    let Some(bytes) = txn.get(catalog, tables.info.name.as_bytes())? else { return Ok(()) };
    if bytes == tables.catalog_entry {
        return Ok(()); // the usual case: compared without decoding
    }
    let entry = Entry::decode(bytes)?;
    if entry.defines(tables.info) {
        Ok(()) // a build under way, or an older program's version number
    } else {
        Err(mismatch(tables.info, &entry))
    }
}

/// Fails unless the index at `position` may be queried: the catalog has
/// it, with this program's definition, completely built.
pub(crate) fn check_queryable(
    txn: &(impl Reader + ?Sized),
    catalog: Table,
    tables: &ModelTables,
    position: usize,
) -> Result<()> {
    // The catalog changes only in a commit: a snapshot in which it was
    // found as this program defines it still has it so.
    let snapshot = txn.snapshot_id();
    if snapshot == Some(tables.catalog_seen_in.load(Ordering::Relaxed)) {
        return Ok(());
    }
    let Some(bytes) = txn.get(catalog, tables.info.name.as_bytes())? else { return Ok(()) };
    if bytes == tables.catalog_entry {
        if let Some(snapshot) = snapshot {
            tables.catalog_seen_in.store(snapshot, Ordering::Relaxed);
        }
        return Ok(());
    }
    let entry = Entry::decode(bytes)?;
    let index = &tables.info.indexes[position];
    if entry.has_complete(index) {
        return Ok(());
    }
    let reason = if !entry.has_same(index) {
        format!("index {} is defined differently in the store ({})", index.name, describe(&entry))
    } else if let Some(failure) = &entry.failed {
        format!("index {} could not be built ({failure}); correct the records, then open the store again", index.name)
    } else {
        format!("index {} is being built by another process; open the store again once it is done", index.name)
    };
    Err(Error::SchemaMismatch { model: tables.info.name, reason })
}

pub(super) fn mismatch(info: &ModelInfo, entry: &Entry) -> Error {
    let remedy = if entry.version > info.version {
        "a release with a newer model version defined them: run that release to write this model"
    } else if entry.version == info.version {
        "another program with the same model version defined them: bump the model version \
         (#[persistent(version = ...)]) or open the store with StoreOptions::take_over_indexes(true) \
         to make this program's definitions the store's"
    } else {
        "another release opened the store since: run that release, or reopen the store in this one \
         (once every handle is dropped) to make its definitions the store's"
    };
    let reason = format!(
        "the store's indexes are {} and this program's are {}, so its writes would leave them out of step; {remedy}",
        describe(entry),
        describe(&Entry::complete(info)),
    );
    Error::SchemaMismatch { model: info.name, reason }
}

pub(super) fn describe(entry: &Entry) -> String {
    let prints: Vec<&str> = entry.indexes.iter().map(|(_, print)| print.as_str()).collect();
    format!("[{}] (model version {})", prints.join(", "), entry.version)
}
