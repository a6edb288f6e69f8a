//! A model's catalog entry and the checks every write and query makes
//! against it. This sits below the transactions: a write asks whether the
//! store's indexes are its own, a query whether its index is complete.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::codec::value;
use crate::engine::{Reader, Table};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::model::{IndexInfo, ModelInfo};
use crate::tables::ModelTables;

/// The version of the entry format, in the entry's value header: 2 added
/// the layout; entries of format 1 are read as having none.
const ENTRY_FORMAT: u16 = 2;

/// What the store knows about one model: its indexes and its layout.
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
    /// The records' layout at `version` (`None` in an entry written before
    /// layouts were recorded).
    pub(crate) layout: Option<Layout>,
}

/// An entry of format 1: the same, without the layout.
#[derive(Deserialize)]
struct EntryV1 {
    version: u16,
    indexes: Vec<(String, String)>,
    building: Vec<String>,
    built_through: Option<Vec<u8>>,
    failed: Option<String>,
}

impl Entry {
    /// The entry of a model whose indexes are all complete.
    pub(crate) fn complete(info: &ModelInfo) -> Entry {
        let indexes = definitions(info);
        let layout = Some((info.ops.layout)());
        Entry { version: info.version, indexes, building: Vec::new(), built_through: None, failed: None, layout }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        value::encode_into(self, ENTRY_FORMAT, crate::tables::CATALOG, &mut bytes)?;
        Ok(bytes)
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Entry> {
        let what = crate::tables::CATALOG;
        if value::version_of(bytes, what)? == 1 {
            let (_, old): (_, EntryV1) = value::decode(bytes, what)?;
            let EntryV1 { version, indexes, building, built_through, failed } = old;
            return Ok(Entry { version, indexes, building, built_through, failed, layout: None });
        }
        value::decode(bytes, what).map(|(_, entry)| entry)
    }

    pub(super) fn defines(&self, info: &ModelInfo) -> bool {
        self.indexes == definitions(info)
    }

    /// Fails when the entry records another layout for the model than
    /// this program's (traced once, at open: `ModelTables::layout`) at this
    /// program's model version. (At another version, the version tells the
    /// two apart and a migration reads the older one.)
    pub(crate) fn check_layout(&self, tables: &ModelTables) -> Result<()> {
        let info = tables.info;
        let Some(stored) = self.layout.as_ref().filter(|_| self.version == info.version) else { return Ok(()) };
        if *stored == tables.layout {
            return Ok(());
        }
        let differences = crate::layout::differences(stored, &tables.layout);
        Err(Error::LayoutMismatch { model: info.name, version: info.version, differences })
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

/// Fails when the store records, for one of `models`, another layout at
/// this program's model version: run at every open, read-only included,
/// before anything is written or read. (A damaged entry is left to
/// `reconcile`, which rebuilds it.)
pub(crate) fn check_layouts<'m>(
    txn: &(impl Reader + ?Sized),
    catalog: Table,
    models: impl Iterator<Item = &'m ModelTables>,
) -> Result<()> {
    for tables in models {
        let Some(bytes) = txn.get(catalog, tables.info.name.as_bytes())? else { continue };
        if bytes == tables.catalog_entry {
            continue;
        }
        if let Ok(entry) = Entry::decode(bytes) {
            entry.check_layout(tables)?;
        }
    }
    Ok(())
}

/// The model's stored catalog entry, unless there is none or it is this
/// program's complete entry (the usual case, compared without decoding).
/// The catalog changes only in a commit: a version of it (a numbered
/// snapshot, or SlateDB's writer's own count) in which the entry was found
/// as defined still has it so, and is not asked again.
fn stored_if_not_as_defined<'t>(
    txn: &'t (impl Reader + ?Sized),
    catalog: Table,
    tables: &ModelTables,
) -> Result<Option<&'t [u8]>> {
    let version = txn.table_version(catalog);
    if version == Some(tables.catalog_seen_in.load(Ordering::Relaxed)) {
        return Ok(None);
    }
    let Some(bytes) = txn.get(catalog, tables.info.name.as_bytes())? else { return Ok(None) };
    if bytes != tables.catalog_entry {
        return Ok(Some(bytes));
    }
    if let Some(version) = version {
        tables.catalog_seen_in.store(version, Ordering::Relaxed);
    }
    Ok(None)
}

/// Fails unless this program may write records of the model: the
/// catalog's indexes are this program's, so its writes keep them all.
pub(crate) fn check_writable(txn: &(impl Reader + ?Sized), catalog: Table, tables: &ModelTables) -> Result<()> {
    let Some(bytes) = stored_if_not_as_defined(txn, catalog, tables)? else { return Ok(()) };
    let entry = Entry::decode(bytes)?;
    entry.check_layout(tables)?;
    if entry.defines(tables.info) {
        Ok(()) // a build under way, an older program's version number, an older entry format
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
    let Some(bytes) = stored_if_not_as_defined(txn, catalog, tables)? else { return Ok(()) };
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
