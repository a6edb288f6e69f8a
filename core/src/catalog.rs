//! The index catalog: which indexes each model has in this store, and how
//! each is computed (its fingerprint, see [`IndexInfo::fingerprint`]).
//!
//! The catalog holds one entry per model. When a store opens, every model
//! whose entry differs from the program's definitions is reconciled:
//!
//! - A program whose model version is higher than the entry's takes the
//!   model over (at an equal version only when opened with
//!   [`StoreOptions::take_over_indexes`](crate::StoreOptions::take_over_indexes),
//!   so that a program which merely lacks an index, such as a report
//!   reading the records, never drops it or stops the writers that keep
//!   it): indexes that are new, changed, or were left half built are
//!   cleared and built again from the records, in batches of [`BATCH`]
//!   records per transaction so that other processes keep writing in
//!   between; indexes the program no longer has are cleared. Every process
//!   opening with the same definitions joins a build under way, so an open
//!   returns only once its indexes are complete.
//! - A program with an older model version, or an equal one and other
//!   definitions, leaves the entry alone and writes nothing.
//!
//! When the stored records break a new index's rules (two records with one
//! value of a unique index, an entry too long for LMDB), the build stops
//! and says why in the entry; the open succeeds, queries of that index
//! report the reason, writes carry on so that the records can be
//! corrected, and the next open resumes the build.
//!
//! A process whose definitions are not (or no longer) the catalog's may
//! still read the model's records and query the indexes whose fingerprint
//! the catalog shares; its writes of the model fail with
//! [`Error::SchemaMismatch`], because it would not maintain the other
//! definitions' indexes. Nothing it has written before is lost.

use std::collections::HashMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::admin::Progress;
use crate::codec::value;
use crate::engine::{Reader, Table, Writer};
use crate::error::{Error, Result};
use crate::index::IndexInfo;
use crate::indexing::entries_of;
use crate::model::{ModelInfo, Persistent, decode_record};
use crate::store::{ModelTables, Shared};
use crate::txn::WriteTx;

/// Records per backfill transaction.
pub(crate) const BATCH: usize = 1000;

/// The version of the entry format, in the entry's value header.
const ENTRY_FORMAT: u16 = 1;

/// Reports the progress of an index build of the named model.
pub(crate) type ProgressFn<'a> = dyn FnMut(&'static str, Progress) + 'a;

/// What the store knows about one model's indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The model version of the program that wrote the entry.
    version: u16,
    /// Every index, as (name, fingerprint).
    indexes: Vec<(String, String)>,
    /// Indexes whose entries are still being built.
    building: Vec<String>,
    /// The last record key that has its entries in `building`.
    built_through: Option<Vec<u8>>,
    /// Why the build stopped, when the records break an index's rules (two
    /// records with one unique value, an entry too long); the next open
    /// tries again.
    failed: Option<String>,
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

    fn decode(bytes: &[u8]) -> Result<Entry> {
        value::decode(bytes, crate::tables::CATALOG).map(|(_, entry)| entry)
    }

    fn defines(&self, info: &ModelInfo) -> bool {
        self.indexes == definitions(info)
    }

    /// Whether `index` is in the catalog with the same definition.
    fn has_same(&self, index: &IndexInfo) -> bool {
        self.indexes.iter().any(|(name, print)| name == index.name && *print == index.fingerprint())
    }

    fn is_building(&self, index: &IndexInfo) -> bool {
        self.building.iter().any(|name| name == index.name)
    }

    /// Whether `index` is in the catalog, with the same definition, and complete.
    fn has_complete(&self, index: &IndexInfo) -> bool {
        self.has_same(index) && !self.is_building(index)
    }
}

fn definitions(info: &ModelInfo) -> Vec<(String, String)> {
    info.indexes.iter().map(|index| (index.name.to_owned(), index.fingerprint())).collect()
}

fn read_entry(txn: &(impl Reader + ?Sized), catalog: Table, info: &ModelInfo) -> Result<Option<Entry>> {
    txn.get(catalog, info.name.as_bytes())?.map(Entry::decode).transpose()
}

/// `read_entry` for taking a model over: an entry that does not decode
/// (damaged) counts as absent, so the model's indexes are all rebuilt.
fn read_entry_or_none(txn: &(impl Reader + ?Sized), catalog: Table, info: &ModelInfo) -> Result<Option<Entry>> {
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
    let Some(bytes) = txn.get(catalog, tables.info.name.as_bytes())? else { return Ok(()) };
    if bytes == tables.catalog_entry {
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

fn mismatch(info: &ModelInfo, entry: &Entry) -> Error {
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

fn describe(entry: &Entry) -> String {
    let prints: Vec<&str> = entry.indexes.iter().map(|(_, print)| print.as_str()).collect();
    format!("[{}] (model version {})", prints.join(", "), entry.version)
}

/// Brings the catalog in line with this program's models (see the module
/// documentation). Runs when a store opens; `at_equal_version` lets this
/// program's definitions replace others' of the same model version.
pub(crate) fn reconcile(shared: &Shared, at_equal_version: bool, progress: &mut ProgressFn<'_>) -> Result<()> {
    let stale: Vec<&ModelTables> = shared.engine.read(|txn| {
        let mut stale = Vec::new();
        for tables in shared.all_tables() {
            let stored = txn.get(shared.catalog, tables.info.name.as_bytes())?;
            if stored == Some(tables.catalog_entry.as_slice()) {
                continue;
            }
            let entry = read_entry_or_none(txn, shared.catalog, tables.info)?;
            if may_take_over(entry.as_ref(), tables.info, at_equal_version) {
                stale.push(tables);
            }
        }
        Ok::<_, Error>(stale)
    })?;
    if stale.is_empty() {
        return Ok(()); // the usual open: no write transaction at all
    }
    let to_build = take_over(shared, &stale, at_equal_version)?;
    for tables in to_build {
        build(shared, tables, progress)?;
    }
    Ok(())
}

/// Rewrites the entries of the `stale` models this program may take over,
/// clearing the indexes to build and those removed, in one transaction;
/// returns the models with indexes to build.
fn take_over<'s>(
    shared: &'s Shared,
    stale: &[&'s ModelTables],
    at_equal_version: bool,
) -> Result<Vec<&'s ModelTables>> {
    loop {
        // Tables of removed indexes are opened first: opening takes a transaction of its own.
        let removed = removed_index_tables(shared, stale)?;
        let outcome = shared.engine.write(|txn| {
            let mut to_build = Vec::new();
            for &tables in stale {
                match take_over_model(txn, shared.catalog, tables, &removed, at_equal_version)? {
                    TakeOver::Build => to_build.push(tables),
                    TakeOver::Nothing => {}
                    TakeOver::Retry => return Ok::<_, Error>(None),
                }
            }
            Ok(Some(to_build))
        })?;
        if let Some(to_build) = outcome {
            return Ok(to_build);
        }
    }
}

enum TakeOver {
    /// The entry is written; indexes are left to build.
    Build,
    /// Complete already, or defined by a program this one may not overrule.
    Nothing,
    /// A removed index's table was not opened: the catalog changed meanwhile.
    Retry,
}

fn take_over_model(
    txn: &mut dyn Writer,
    catalog: Table,
    tables: &ModelTables,
    removed: &HashMap<String, Table>,
    at_equal_version: bool,
) -> Result<TakeOver> {
    let info = tables.info;
    let stored = read_entry_or_none(&*txn, catalog, info)?;
    match &stored {
        Some(entry) if entry.defines(info) => {
            return Ok(if entry.building.is_empty() { TakeOver::Nothing } else { TakeOver::Build });
        }
        stored if !may_take_over(stored.as_ref(), info, at_equal_version) => return Ok(TakeOver::Nothing),
        _ => {}
    }
    if let Some(entry) = &stored {
        for (name, _) in entry.indexes.iter().filter(|(name, _)| !info.indexes.iter().any(|i| i.name == name)) {
            let Some(&table) = removed.get(&crate::tables::index_table(info, name)) else { return Ok(TakeOver::Retry) };
            txn.clear(table)?;
        }
    }
    let has_records = txn.len(tables.main)? > 0;
    let mut building = Vec::new();
    for (index, &table) in info.indexes.iter().zip(&tables.indexes) {
        if !stored.as_ref().is_some_and(|entry| entry.has_complete(index)) {
            // New, changed, or left half built: start from nothing.
            txn.clear(table)?;
            if has_records {
                building.push(index.name.to_owned());
            }
        }
    }
    let entry = Entry { building, ..Entry::complete(info) };
    txn.put(catalog, info.name.as_bytes(), &entry.encode()?)?;
    Ok(if entry.building.is_empty() { TakeOver::Nothing } else { TakeOver::Build })
}

/// Whether this program may make its definitions of `info` the store's,
/// given the stored entry: when there is none (or it is damaged), when it
/// has the same definitions (to join a build), when this program's model
/// version is higher, or at an equal version when asked to.
fn may_take_over(stored: Option<&Entry>, info: &ModelInfo, at_equal_version: bool) -> bool {
    match stored {
        None => true,
        Some(entry) if entry.defines(info) => true,
        Some(entry) => entry.version < info.version || (at_equal_version && entry.version == info.version),
    }
}

/// Opens the tables of indexes that the catalog lists for the `stale`
/// models and this program does not have.
fn removed_index_tables(shared: &Shared, stale: &[&ModelTables]) -> Result<HashMap<String, Table>> {
    let names = shared.engine.read(|txn| {
        let mut names = Vec::new();
        for tables in stale {
            let Some(entry) = read_entry_or_none(txn, shared.catalog, tables.info)? else { continue };
            for (name, _) in &entry.indexes {
                if !tables.info.indexes.iter().any(|index| index.name == name) {
                    names.push(crate::tables::index_table(tables.info, name));
                }
            }
        }
        Ok::<_, Error>(names)
    })?;
    if names.is_empty() { Ok(HashMap::new()) } else { shared.engine.open_tables(&names) }
}

/// Builds the model's pending indexes batch by batch, each batch in a
/// transaction of its own, until they are complete, another program's
/// definitions take over, or the records break an index's rules: then the
/// failure is recorded in the entry, the open goes on, and queries of the
/// index say why it cannot answer while writes carry on, so that the
/// records can be corrected.
fn build(shared: &Shared, tables: &ModelTables, progress: &mut ProgressFn<'_>) -> Result<()> {
    let info = tables.info;
    let total = shared.engine.read(|txn| txn.len(tables.main))?;
    let mut done = 0;
    loop {
        let step = shared.engine.write(|txn| {
            let Some(entry) = read_entry(&*txn, shared.catalog, info)? else { return Ok::<_, Error>(Step::Stop) };
            if !entry.defines(info) || entry.building.is_empty() {
                return Ok(Step::Stop);
            }
            let positions: Vec<usize> = info
                .indexes
                .iter()
                .enumerate()
                .filter(|(_, index)| entry.building.iter().any(|name| name == index.name))
                .map(|(position, _)| position)
                .collect();
            let mut blocked = None;
            let mut tx = WriteTx::new(shared, txn, None, std::thread::current().id(), &mut blocked);
            let (next, step) = match (info.backfill)(&mut tx, &positions, entry.built_through.as_deref(), BATCH) {
                Ok(Some(key)) => (Entry { built_through: Some(key), failed: None, ..entry }, Step::More),
                Ok(None) => (Entry { building: Vec::new(), built_through: None, failed: None, ..entry }, Step::Done),
                // The entries added before the failure are right, and kept:
                // the next attempt starts again from `built_through`.
                Err(err @ (Error::UniqueViolation { .. } | Error::KeyTooLong { .. })) => {
                    (Entry { failed: Some(err.to_string()), ..entry }, Step::Stop)
                }
                Err(other) => return Err(other),
            };
            txn.put(shared.catalog, info.name.as_bytes(), &next.encode()?)?;
            Ok(step)
        })?;
        match step {
            Step::More => done = (done + BATCH as u64).min(total),
            Step::Done => done = total,
            Step::Stop => return Ok(()),
        }
        progress(info.name, Progress { done, total: Some(total) });
        if matches!(step, Step::Done) {
            return Ok(());
        }
    }
}

/// What one batch of a build left to do.
enum Step {
    /// Records remain.
    More,
    /// The indexes are complete.
    Done,
    /// Nothing to do here: another program's definitions, or a failure.
    Stop,
}

/// One batch of a build: adds the entries of the indexes at `positions`
/// for up to `limit` records after key `after`. Returns the last key done,
/// or `None` when the records ran out.
#[doc(hidden)]
pub fn backfill_batch<M: Persistent>(
    tx: &mut WriteTx<'_>,
    positions: &[usize],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Option<Vec<u8>>> {
    let (tables, txn) = tx.tables_and_writer::<M>()?;
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut batch = Vec::with_capacity(limit.min(BATCH));
    for entry in txn.range(tables.main, lower, Bound::Unbounded)?.take(limit) {
        let (key, bytes) = entry?;
        // Records this code cannot read get no entries; verify reports them.
        let entries = match decode_record::<M>(bytes) {
            Ok((_, record)) => Some(entries_of(&record)),
            Err(Error::Decode { .. } | Error::NewerVersion { .. }) => None,
            Err(other) => return Err(other),
        };
        batch.push((key.to_vec(), entries));
    }
    for (key, entries) in &batch {
        let Some(entries) = entries else { continue };
        for (position, value) in entries.entries() {
            if positions.contains(&position) {
                crate::indexing::add_entry::<M>(txn, tables, position, value, key)?;
            }
        }
    }
    Ok(if batch.len() < limit { None } else { batch.pop().map(|(key, _)| key) })
}
