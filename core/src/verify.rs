//! Consistency check: every record decodes and every index holds exactly
//! the entries its records call for.

use std::fmt;

use crate::engine::{Reader, Table};
use crate::error::Result;
use crate::indexing::{index_key, index_value};
use crate::tables::ModelTables;
use crate::txn::ReadTx;

/// How many problems a report lists per model; all of them are counted.
const LISTED_PROBLEMS: usize = 20;

/// The result of [`Store::verify`](crate::Store::verify).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// One entry per model, by name.
    pub models: Vec<ModelReport>,
}

impl VerifyReport {
    /// Whether no model has any problem.
    ///
    /// ```
    /// let report = skyshelve::Store::temporary()?.verify()?;
    /// assert!(report.is_clean());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.models.iter().all(ModelReport::is_clean)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for model in &self.models {
            writeln!(f, "{model}")?;
        }
        Ok(())
    }
}

/// What [`VerifyReport`] found for one model.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ModelReport {
    /// The model's name.
    pub model: &'static str,
    /// Records stored.
    pub records: u64,
    /// Entries stored in each index, in the model's index order.
    pub index_entries: Vec<u64>,
    /// How many problems were found.
    pub problem_count: u64,
    /// The first problems found.
    pub problems: Vec<Problem>,
}

impl ModelReport {
    /// Whether the model has no problem.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_verify_model")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// # let store = Store::temporary()?;
    /// assert!(Item::verify(&store)?.is_clean());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    fn found(&mut self, problem: Problem) {
        self.problem_count += 1;
        if self.problems.len() < LISTED_PROBLEMS {
            self.problems.push(problem);
        }
    }
}

impl fmt::Display for ModelReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} records, index entries {:?}, {} problems",
            self.model, self.records, self.index_entries, self.problem_count
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A stored record cannot be decoded.
    Undecodable {
        /// The record's encoded key.
        key: Vec<u8>,
        /// The decoder's complaint.
        reason: String,
    },
    /// A record lacks an entry its index values call for (or, for a unique
    /// index, the entry belongs to another record holding the same value).
    MissingEntry {
        /// The index.
        index: &'static str,
        /// The record's encoded key.
        key: Vec<u8>,
    },
    /// An index entry that no record calls for.
    ExtraEntry {
        /// The index.
        index: &'static str,
        /// The entry's key in the index table.
        entry: Vec<u8>,
    },
    /// A record whose parent index asks for integrity (`must_exist`, or an
    /// `on_delete` action) points at a parent that is not stored.
    DanglingChild {
        /// The parent index.
        index: &'static str,
        /// The record's encoded key.
        key: Vec<u8>,
        /// The encoded key of the missing parent.
        parent: Vec<u8>,
    },
    /// A kept version of a record (see [`Persistent::history`](crate::Persistent::history)) cannot be
    /// decoded.
    BadHistory {
        /// The record's encoded key.
        key: Vec<u8>,
        /// The decoder's complaint.
        reason: String,
    },
    /// One stored value's encoding is a prefix of another's: the key or
    /// index type's encoding is not self-delimiting (see
    /// [`EncodeKey`](crate::EncodeKey)), so range and prefix queries cannot
    /// tell the two apart.
    NotSelfDelimiting {
        /// The index, or `"key"` for the model's keys.
        index: &'static str,
        /// The shorter encoding.
        value: Vec<u8>,
        /// An encoding that starts with it.
        longer: Vec<u8>,
    },
    /// A page of one of the model's tables is damaged (LMDB keeps no
    /// checksums; the pages are checked before anything reads them). The
    /// model's records and indexes are not checked further: reading them
    /// through the damage could crash the process. `export --skip-damaged`
    /// (`Store::export_json_lines_skipping_damaged`) reads around it.
    DamagedPage {
        /// The table (the model's name, or an index's or history's table).
        table: String,
        /// The page number in the data file.
        page: u64,
        /// What is wrong with it.
        what: String,
    },
    /// An index the program declares has no table in the store: no writer
    /// has opened the store since the index was added (a read-only handle
    /// cannot build it). Its entries are not checked.
    IndexNotBuilt {
        /// The index.
        index: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Undecodable { key, reason } => write!(f, "record {key:?} does not decode: {reason}"),
            Problem::MissingEntry { index, key } => write!(f, "record {key:?} is missing from index {index}"),
            Problem::ExtraEntry { index, entry } => {
                write!(f, "index {index} holds {entry:?}, which no record calls for")
            }
            Problem::DanglingChild { index, key, parent } => {
                write!(f, "record {key:?} points through {index} at parent {parent:?}, which does not exist")
            }
            Problem::BadHistory { key, reason } => {
                write!(f, "a kept version of record {key:?} does not decode: {reason}")
            }
            Problem::DamagedPage { table, page, what } => write!(f, "table {table}, page {page} is damaged: {what}"),
            Problem::IndexNotBuilt { index } => {
                write!(f, "{index}: not built yet (no writer has opened the store since it was added)")
            }
            Problem::NotSelfDelimiting { index, value, longer } => write!(
                f,
                "{index}: the encoding {value:?} is a prefix of {longer:?}; the type's key encoding must be \
                 self-delimiting (see skyshelve::EncodeKey)"
            ),
        }
    }
}

/// Checks the model whose tables are `tables` inside `tx`.
pub(crate) fn verify_model(tx: &ReadTx<'_>, tables: &ModelTables) -> Result<ModelReport> {
    let (info, reader) = (tables.info, tx.raw_reader());
    let mut report = ModelReport { model: info.name, ..ModelReport::default() };
    let damaged = tx.damaged_pages_of(tables)?;
    if !damaged.is_empty() {
        for (table, damage) in damaged {
            report.found(Problem::DamagedPage { table, page: damage.page, what: damage.what });
        }
        return Ok(report);
    }
    report.index_entries = tables
        .indexes
        .iter()
        .map(|&table| if table.exists() { reader.len(table) } else { Ok(0) })
        .collect::<Result<_>>()?;
    for (position, _) in tables.indexes.iter().enumerate().filter(|(_, table)| !table.exists()) {
        report.found(Problem::IndexNotBuilt { index: info.indexes[position].name });
    }
    let found = check_records(reader, tables, &mut report)?;
    for (position, (&stored, found)) in report.index_entries.clone().iter().zip(found).enumerate() {
        // Every entry found through a record is wanted; any others are extra.
        if stored > found {
            find_extra_entries(reader, tables, position, &mut report)?;
        }
    }
    check_parents(tx, tables, &mut report)?;
    if let Some(table) = tables.history {
        for (key, reason) in crate::history::check(reader, table, info)? {
            report.found(Problem::BadHistory { key, reason });
        }
    }
    check_self_delimiting(reader, tables.main, "key", &mut report, |key, _| key)?;
    for (position, &table) in tables.indexes.iter().enumerate().filter(|(_, table)| table.exists()) {
        let name = info.indexes[position].name;
        check_self_delimiting(reader, table, name, &mut report, |entry_key, primary| {
            index_value(info, position, entry_key, primary)
        })?;
    }
    Ok(report)
}

/// Reports records whose parent index asks for integrity but points at a
/// parent that is not stored.
fn check_parents(tx: &ReadTx<'_>, tables: &ModelTables, report: &mut ModelReport) -> Result<()> {
    let (info, reader) = (tables.info, tx.raw_reader());
    for (position, index) in info.indexes.iter().enumerate() {
        let Some(parent) = index.parent() else { continue };
        if !index.must_exist && index.on_delete == crate::OnDelete::Leave || !tables.indexes[position].exists() {
            continue;
        }
        let parents = tx.tables_of(parent)?.main;
        for entry in reader.range(tables.indexes[position], std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)? {
            let (entry_key, key) = entry?;
            let value = index_value(info, position, entry_key, key);
            if reader.get(parents, value)?.is_none() {
                report.found(Problem::DanglingChild { index: index.name, key: key.to_vec(), parent: value.to_vec() });
            }
        }
    }
    Ok(())
}

/// Reports stored values (found by `value_of` from each entry of `table`)
/// whose encoding is a proper prefix of another's. In sorted order a value
/// that prefixes any later one prefixes the next distinct one, so comparing
/// neighbours finds every case.
fn check_self_delimiting(
    reader: &dyn Reader,
    table: Table,
    index: &'static str,
    report: &mut ModelReport,
    value_of: impl for<'e> Fn(&'e [u8], &[u8]) -> &'e [u8],
) -> Result<()> {
    let mut previous: Option<Vec<u8>> = None;
    for entry in reader.range(table, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)? {
        let (entry_key, data) = entry?;
        let value = value_of(entry_key, data);
        match &previous {
            Some(shorter) if shorter.as_slice() == value => continue,
            Some(shorter) if value.starts_with(shorter) => {
                report.found(Problem::NotSelfDelimiting { index, value: shorter.clone(), longer: value.to_vec() });
            }
            _ => {}
        }
        previous = Some(value.to_vec());
    }
    Ok(())
}

/// Decodes every record and checks that each of its index entries is
/// stored; returns how many entries each index should hold.
fn check_records(reader: &dyn Reader, tables: &ModelTables, report: &mut ModelReport) -> Result<Vec<u64>> {
    let mut found = vec![0; tables.indexes.len()];
    for entry in reader.range(tables.main, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)? {
        let (key, bytes) = entry?;
        report.records += 1;
        let record = match (tables.info.ops.read_stored)(bytes) {
            Ok(record) => record,
            Err(err) => {
                report.found(Problem::Undecodable { key: key.to_vec(), reason: err.to_string() });
                continue;
            }
        };
        for (position, value) in record.entries.entries() {
            if !tables.indexes[position].exists() {
                continue;
            }
            let index_key = index_key(tables.info, position, value, key);
            if reader.get(tables.indexes[position], &index_key)? == Some(key) {
                found[position] += 1;
            } else {
                report.found(Problem::MissingEntry { index: tables.info.indexes[position].name, key: key.to_vec() });
            }
        }
    }
    Ok(found)
}

/// Lists the entries of one index that their record does not call for.
fn find_extra_entries(
    reader: &dyn Reader,
    tables: &ModelTables,
    position: usize,
    report: &mut ModelReport,
) -> Result<()> {
    let table: Table = tables.indexes[position];
    for entry in reader.range(table, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)? {
        let (stored_key, primary) = entry?;
        let wanted =
            match reader.get(tables.main, primary)? {
                Some(bytes) => match (tables.info.ops.read_stored)(bytes) {
                    Ok(record) => record.entries.entries().iter().any(|&(pos, value)| {
                        pos == position && index_key(tables.info, pos, value, primary) == stored_key
                    }),
                    Err(_) => false,
                },
                None => false,
            };
        if !wanted {
            report.found(Problem::ExtraEntry { index: tables.info.indexes[position].name, entry: stored_key.to_vec() });
        }
    }
    Ok(())
}

impl crate::Store {
    /// Checks every model of this program in one snapshot: every record
    /// decodes, every index entry points at a record that calls for it,
    /// every record has all its index entries, and unique indexes hold one
    /// record per value.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let report = store.verify()?;
    /// assert!(report.is_clean(), "{report}");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        self.read(|tx| {
            let mut report = VerifyReport::default();
            for tables in self.shared().all_tables() {
                report.models.push(verify_model(tx, tables)?);
            }
            report.models.sort_by_key(|m| m.model);
            Ok(report)
        })
    }
}
