//! Bringing the catalog in line with a program's models when a store
//! opens: taking models over and building their new indexes, in batches.
//! This sits above the transactions and uses them.

use std::collections::HashMap;
use std::ops::Bound;

use super::entry::{Entry, read_entry, read_entry_or_none};
use crate::engine::{Reader, Table, Writer};
use crate::error::{Error, Result};
use crate::model::ModelInfo;
use crate::progress::Progress;
use crate::tables::{ModelTables, Shared};

/// Records per backfill transaction.
pub(crate) const BATCH: usize = 1000;

/// Reports the progress of an index build of the named model.
pub(crate) type ProgressFn<'a> = dyn FnMut(&'static str, Progress) + 'a;

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
            // Written at an older model version (its layout is that
            // version's), or before layouts were recorded: this program's
            // version and layout are the store's from now on.
            if entry.version < info.version || (entry.layout.is_none() && entry.version == info.version) {
                let upgraded = Entry { version: info.version, layout: Entry::complete(info).layout, ..entry.clone() };
                txn.put(catalog, info.name.as_bytes(), &upgraded.encode()?)?;
            }
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
    tracing::info!(target: "skyshelve::catalog", model = info.name, records = total, "index build started");
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
            let (next, step) = match backfill_batch(tables, &mut *txn, &positions, entry.built_through.as_deref(), BATCH) {
                Ok(Some(key)) => (Entry { built_through: Some(key), failed: None, ..entry }, Step::More),
                Ok(None) => (Entry { building: Vec::new(), built_through: None, failed: None, ..entry }, Step::Done),
                // The entries added before the failure are right, and kept:
                // the next attempt starts again from `built_through`.
                Err(err @ (Error::UniqueViolation { .. } | Error::KeyTooLong { .. })) => {
                    tracing::warn!(target: "skyshelve::catalog", model = info.name, error = %err, "index build stopped");
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
        tracing::debug!(target: "skyshelve::catalog", model = info.name, done, total, "index build progress");
        if matches!(step, Step::Done) {
            tracing::info!(target: "skyshelve::catalog", model = info.name, records = total, "index build finished");
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
fn backfill_batch(
    tables: &ModelTables,
    txn: &mut dyn Writer,
    positions: &[usize],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Option<Vec<u8>>> {
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut batch = Vec::with_capacity(limit.min(BATCH));
    for entry in txn.range(tables.main, lower, Bound::Unbounded)?.take(limit) {
        let (key, bytes) = entry?;
        // Records this code cannot read get no entries; verify reports them.
        let entries = match (tables.info.ops.read_stored)(bytes) {
            Ok(stored) => Some(stored.entries),
            Err(Error::Decode { .. } | Error::NewerVersion { .. }) => None,
            Err(other) => return Err(other),
        };
        batch.push((key.to_vec(), entries));
    }
    for (key, entries) in &batch {
        let Some(entries) = entries else { continue };
        for (position, value) in entries.entries() {
            if positions.contains(&position) {
                crate::indexing::add_entry(txn, tables, position, value, key)?;
            }
        }
    }
    Ok(if batch.len() < limit { None } else { batch.pop().map(|(key, _)| key) })
}
