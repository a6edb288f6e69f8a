//! Record history: the past versions of each record of a model declared
//! with `#[persistent(history = N)]`, kept in the table `<model>/~history`
//! and written in the same transaction as the change they record.
//!
//! Every change of a record — created, updated, deleted (a tombstone) —
//! adds one entry holding the record as it was written, so the newest
//! entry of a live record is its current version and the N entries before
//! it are the N previous versions. Each entry's key is the record's key,
//! length first, then the change's position (big-endian), so one record's
//! entries sit together in order; the position comes from a counter kept
//! in the same table under a key no record key can have (length 0xFFFF is
//! longer than any key). Each entry's value is the kind of change, the
//! writer's time in microseconds since the Unix epoch, and the record's
//! stored bytes (with their model-version header) or, for a tombstone, the
//! model version that deleted it. Past versions stay in the format they
//! were written in and are upgraded when read, like any stored record.

use std::ops::Bound;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::key::prefix_successor;
use crate::engine::{Reader, Table, Writer};
use crate::error::{Error, Result};
use crate::model::{Model, ModelInfo};
use crate::tables::{ModelTables, Shared};

/// What a change did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The record was written where no record had that key.
    Created,
    /// The record replaced a stored record with the same key.
    Updated,
    /// The record was deleted (by a delete, a cascade, a key move, or the
    /// purge of an expired record): the version is a tombstone.
    Deleted,
}

/// One kept version of a record; see [`Persistent::history`](crate::Persistent::history).
#[derive(Debug, Clone, PartialEq)]
pub struct Version<M> {
    /// Where the change sits among all changes of the model's records:
    /// positions increase with every change, across threads and processes,
    /// so one position is one moment for every record of the model.
    pub position: u64,
    /// When the change was written, by the writer's clock (to the
    /// microsecond).
    pub at: SystemTime,
    /// What the change did.
    pub change: Change,
    /// The model version that wrote this version.
    pub model_version: u16,
    /// The record as written; `None` for a deletion.
    pub record: Option<M>,
}

/// A moment in a model's history, for [`Persistent::as_of`](crate::Persistent::as_of): a time (by
/// the writers' clocks) or a position (see [`Version::position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Right after the last change written at or before this time.
    Time(SystemTime),
    /// Right after the change at this position, or the last one before it.
    Position(u64),
}

impl From<SystemTime> for AsOf {
    fn from(at: SystemTime) -> Self {
        AsOf::Time(at)
    }
}

/// Which versions [`Persistent::trim_history`](crate::Persistent::trim_history) removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trim {
    keep: Option<usize>,
    older_than: Option<SystemTime>,
}

impl Trim {
    /// Keeps at most the newest `versions` of each record (at least one:
    /// a live record's current version is never removed).
    #[must_use]
    pub fn keep(mut self, versions: usize) -> Trim {
        self.keep = Some(versions.max(1));
        self
    }

    /// Removes the versions written before `moment`, except each live
    /// record's current version. A deleted record whose tombstone is older
    /// leaves no trace.
    #[must_use]
    pub fn older_than(mut self, moment: SystemTime) -> Trim {
        self.older_than = Some(moment);
        self
    }

    /// [`Trim::older_than`] the moment `age` ago.
    #[must_use]
    pub fn older_than_age(self, age: Duration) -> Trim {
        self.older_than(SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH))
    }
}

/// Entries looked at per transaction when trimming a whole model.
const TRIM_BATCH: usize = 1_000;

/// Trims the history of the model `tables` describe as `trim` says, in
/// transactions of about a thousand entries; returns how many versions
/// were removed.
pub(crate) fn trim_model(shared: &Shared, table: Table, trim: Trim) -> Result<u64> {
    let (mut removed, mut after) = (0, None);
    loop {
        let (batch, last) = shared.engine.write(|txn| trim_batch(txn, table, trim, after.as_deref(), TRIM_BATCH))?;
        removed += batch;
        match last {
            Some(last) => after = Some(last),
            None => return Ok(removed),
        }
    }
}

/// At open, by the program whose indexes the store holds: records each
/// model's history setting in the catalog, and when a model keeps fewer
/// versions than before (or none), trims the history already kept.
pub(crate) fn reconcile(shared: &Shared) -> Result<()> {
    for tables in shared.all_tables() {
        let (stored, ours) = shared.engine.read(|txn| {
            let stored = txn.get(shared.catalog, &setting_key(tables.info))?.map(decode_setting).transpose()?;
            let ours = txn.get(shared.catalog, tables.info.name.as_bytes())? == Some(tables.catalog_entry.as_slice());
            Ok::<_, Error>((stored.unwrap_or(0), ours))
        })?;
        if stored == tables.info.history || !ours {
            continue;
        }
        if tables.info.history < stored {
            trim_to_setting(shared, tables)?;
        }
        shared
            .engine
            .write(|txn| txn.put(shared.catalog, &setting_key(tables.info), &tables.info.history.to_be_bytes()))?;
        tracing::info!(target: "skyshelve::history", model = tables.info.name, from = stored, to = tables.info.history, "history setting changed");
    }
    Ok(())
}

/// Trims the kept history of a model to its (lower) setting; a model that
/// no longer keeps history loses it all.
fn trim_to_setting(shared: &Shared, tables: &ModelTables) -> Result<()> {
    let keep = usize::try_from(tables.info.history).unwrap_or(usize::MAX).saturating_add(1);
    match tables.history {
        Some(table) => trim_model(shared, table, Trim::default().keep(keep)).map(drop),
        None => {
            let name = crate::tables::history_table(tables.info);
            let opened = shared.engine.open_tables_that_exist(std::slice::from_ref(&name))?;
            let Some(&table) = opened.get(&name) else { return Ok(()) };
            shared.engine.write(|txn| txn.clear(table))
        }
    }
}

/// What follows a model's name in the name of its history for export and
/// import (`price~history`), and in the catalog key of its setting: model
/// names are identifiers, so no model has such a name.
pub(crate) const SUFFIX: &str = "~history";

fn setting_key(info: &ModelInfo) -> Vec<u8> {
    format!("{}{SUFFIX}", info.name).into_bytes()
}

fn decode_setting(bytes: &[u8]) -> Result<u32> {
    bytes.try_into().map(u32::from_be_bytes).map_err(|_| Error::Decode {
        what: "history setting".to_owned(),
        reason: format!("{} bytes stored, 4 expected", bytes.len()),
    })
}

/// Where the counter of positions is kept.
const LAST_POSITION: &[u8] = &[0xFF, 0xFF];

const CREATED: u8 = 1;
const UPDATED: u8 = 2;
const DELETED: u8 = 3;

impl Change {
    /// The byte an entry stores for the change.
    fn byte(self) -> u8 {
        match self {
            Change::Created => CREATED,
            Change::Updated => UPDATED,
            Change::Deleted => DELETED,
        }
    }
}

/// Bytes of an entry's value before the record: the kind and the time.
const ENTRY_HEADER: usize = 9;

/// Records a change of the record of model `info` under `key` in `table`
/// at `position` (see `WriteTx::keep_history`: the caller keeps the
/// counter): `stored` is its new stored bytes (`None`: deleted). Then trims
/// the record's entries to the newest `info.history + 1`.
pub(crate) fn record(
    txn: &mut dyn Writer,
    table: Table,
    key: &[u8],
    position: u64,
    change: Change,
    stored: Option<&[u8]>,
    info: &ModelInfo,
) -> Result<()> {
    let at = micros_of(SystemTime::now());
    let mut value = Vec::with_capacity(ENTRY_HEADER + stored.map_or(2, <[u8]>::len));
    value.push(change.byte());
    value.extend_from_slice(&at.to_be_bytes());
    value.extend_from_slice(stored.unwrap_or(&info.version.to_be_bytes()));
    let entry = entry_key(key, position);
    txn.put(table, &entry, &value)?;
    let keep = usize::try_from(info.history).unwrap_or(usize::MAX).saturating_add(1);
    trim_below(txn, table, &entry, keep)
}

/// Removes the record's entries beyond the newest `keep`, walking back
/// from its newest entry `newest`: a record with no more than that costs
/// one short walk and no allocation.
fn trim_below(txn: &mut dyn Writer, table: Table, newest: &[u8], keep: usize) -> Result<()> {
    let prefix = &newest[..newest.len() - 8];
    let mut older = Vec::new();
    for (seen, entry) in txn.rev_range(table, Bound::Included(prefix), Bound::Included(newest))?.enumerate() {
        if seen >= keep {
            older.push(entry?.0.to_vec());
        }
    }
    for entry_key in older {
        txn.delete(table, &entry_key)?;
    }
    Ok(())
}

/// Saves the model's last position (see `last_position`).
pub(crate) fn save_last_position(txn: &mut dyn Writer, table: Table, position: u64) -> Result<()> {
    txn.put(table, LAST_POSITION, &position.to_be_bytes())
}

/// Removes the entries of the record under `key` that `trim` names;
/// returns how many.
pub(crate) fn trim_record(txn: &mut dyn Writer, table: Table, key: &[u8], trim: Trim) -> Result<u64> {
    let entries = entries_of_record(txn, table, key)?;
    let cutoff = trim.older_than.map(micros_of);
    let keep = trim.keep.unwrap_or(usize::MAX);
    let newest = entries.len().saturating_sub(1);
    let mut removed = 0;
    for (index, (entry_key, at, deleted)) in entries.iter().enumerate() {
        let beyond_count = entries.len() - index > keep;
        // A live record's current version stays, however old.
        let too_old = cutoff.is_some_and(|cutoff| *at < cutoff) && (index < newest || *deleted);
        if beyond_count || too_old {
            txn.delete(table, entry_key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The entries of the record under `key`, oldest first: (entry key, time,
/// whether it is a tombstone).
fn entries_of_record(txn: &dyn Writer, table: Table, key: &[u8]) -> Result<Vec<(Vec<u8>, u64, bool)>> {
    let prefix = key_prefix(key);
    let upper = prefix_successor(&prefix);
    let upper = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut entries = Vec::new();
    for entry in txn.range(table, Bound::Included(&prefix), upper)? {
        let (entry_key, value) = entry?;
        let (kind, at, _) = split_value(value)?;
        entries.push((entry_key.to_vec(), at, kind == DELETED));
    }
    Ok(entries)
}

/// Trims every record's entries in `table` after the record key `after`,
/// stopping once about `limit` entries have been looked at. Returns how
/// many were removed and the last record key looked at, or `None` when
/// the table is done.
fn trim_batch(
    txn: &mut dyn Writer,
    table: Table,
    trim: Trim,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(u64, Option<Vec<u8>>)> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let start = after.map(key_prefix).and_then(|prefix| prefix_successor(&prefix));
    let lower = start.as_deref().map_or(Bound::Unbounded, Bound::Included);
    let mut looked_at = 0;
    for entry in txn.range(table, lower, Bound::Unbounded)? {
        let (entry_key, _) = entry?;
        let Some(key) = record_key(entry_key) else { continue }; // the position counter
        if keys.last().is_none_or(|last| last != key) {
            if looked_at >= limit {
                break;
            }
            keys.push(key.to_vec());
        }
        looked_at += 1;
    }
    let mut removed = 0;
    for key in &keys {
        removed += trim_record(txn, table, key, trim)?;
    }
    let done = looked_at < limit;
    Ok((removed, if done { None } else { keys.pop() }))
}

/// The history table of `M`: `None` when a store opened read-only has
/// none yet. Fails if `M` keeps no history.
pub(crate) fn table_of<M: Model>(shared: &Shared) -> Result<Option<Table>> {
    if M::INFO.history == 0 {
        return Err(Error::HistoryNotKept { model: M::INFO.name });
    }
    Ok(shared.tables::<M>()?.history)
}

/// The record's versions, newest first, streaming inside the transaction.
pub(crate) fn versions<'t, M: Model, R: Reader + ?Sized>(
    txn: &'t R,
    table: Option<Table>,
    key: &[u8],
) -> Result<impl Iterator<Item = Result<Version<M>>> + use<'t, M, R>> {
    let prefix = key_prefix(key);
    let upper = prefix_successor(&prefix);
    let upper = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let entries = table.map(|table| txn.rev_range(table, Bound::Included(&prefix), upper)).transpose()?;
    Ok(entries
        .into_iter()
        .flatten()
        .map(|entry| entry.and_then(|(entry_key, value)| decode_version::<M>(entry_key, value))))
}

/// The record under `key` as it was at `moment`: `None` if it did not
/// exist then. Fails with [`Error::BeforeHistory`] when the kept history
/// does not reach back to `moment`.
pub(crate) fn as_of<M: Model>(
    txn: &(impl Reader + ?Sized),
    table: Option<Table>,
    key: &[u8],
    live: bool,
    moment: AsOf,
) -> Result<Option<M>> {
    let mut oldest = None;
    for version in versions::<M, _>(txn, table, key)? {
        let version = version?;
        let reached = match moment {
            AsOf::Time(time) => version.at <= time,
            AsOf::Position(position) => version.position <= position,
        };
        if reached {
            return Ok(version.record);
        }
        oldest = Some(version.change);
    }
    match oldest {
        // The record's first version is kept: before it there was none.
        Some(Change::Created) => Ok(None),
        // Nothing kept and nothing stored: no record ever had this key since history began.
        None if !live => Ok(None),
        _ => Err(Error::BeforeHistory { model: M::INFO.name, key: crate::codec::key::describe_encoded::<M::Key>(key) }),
    }
}

/// Checks that every entry of `table` decodes as a version of the model
/// `info` describes; returns the problems as (record key, reason).
pub(crate) fn check(txn: &(impl Reader + ?Sized), table: Table, info: &ModelInfo) -> Result<Vec<(Vec<u8>, String)>> {
    let last = last_position(txn, table)?;
    let mut problems = Vec::new();
    for entry in txn.range(table, Bound::Unbounded, Bound::Unbounded)? {
        let (entry_key, value) = entry?;
        if entry_key == LAST_POSITION {
            continue;
        }
        let key = record_key(entry_key).unwrap_or(entry_key);
        if let Some(problem) = check_version(info, entry_key, key, value, last) {
            problems.push((key.to_vec(), problem));
        }
    }
    Ok(problems)
}

/// What is wrong with one kept version: it does not decode, its record
/// is another record than its key says, or its position is past the
/// model's counter (new changes would be given positions below it).
fn check_version(info: &ModelInfo, entry_key: &[u8], key: &[u8], value: &[u8], last: u64) -> Option<String> {
    let read = || -> Result<(u64, Option<Vec<u8>>)> {
        let position = position_of(entry_key, info.name)?;
        let (kind, _, body) = split_value(value)?;
        match kind {
            DELETED if body.len() == 2 => Ok((position, None)),
            DELETED => Err(damaged(info.name, "bad tombstone")),
            CREATED | UPDATED => Ok((position, Some((info.ops.read_stored)(body)?.key))),
            _ => Err(damaged(info.name, "unknown kind of change")),
        }
    };
    let (position, own) = match read() {
        Ok(read) => read,
        Err(err) => return Some(err.to_string()),
    };
    if position > last {
        return Some(format!("position {position} is past the model's last position {last}"));
    }
    own.filter(|own| own != key).map(|own| format!("it holds the record with key {}", crate::codec::to_hex(&own)))
}

/// The error of a history entry that is not what this module writes.
fn damaged(model: &str, reason: &str) -> Error {
    Error::Decode { what: format!("{model} history"), reason: reason.to_owned() }
}

/// The position a history entry's key ends with.
fn position_of(entry_key: &[u8], model: &str) -> Result<u64> {
    let bytes = entry_key.len().checked_sub(8).map(|at| &entry_key[at..]).ok_or_else(|| damaged(model, "short key"))?;
    Ok(u64::from_be_bytes(bytes.try_into().map_err(|_| damaged(model, "short key"))?))
}

fn decode_version<M: Model>(entry_key: &[u8], value: &[u8]) -> Result<Version<M>> {
    let damaged = |reason: &str| damaged(M::INFO.name, reason);
    let position = position_of(entry_key, M::INFO.name)?;
    let (kind, at, body) = split_value(value)?;
    let at = UNIX_EPOCH + Duration::from_micros(at);
    let (change, model_version, record) = match kind {
        DELETED => {
            let version = body.try_into().map(u16::from_be_bytes).map_err(|_| damaged("bad tombstone"))?;
            (Change::Deleted, version, None)
        }
        CREATED | UPDATED => {
            let (version, record) = crate::record::decode_record::<M>(body)?;
            (if kind == CREATED { Change::Created } else { Change::Updated }, version, Some(record))
        }
        _ => return Err(damaged("unknown kind of change")),
    };
    Ok(Version { position, at, change, model_version, record })
}

/// One kept version as a line of exported history: the record's encoded
/// key in hex (a tombstone has no record to take it from), the position,
/// the time in microseconds since the Unix epoch, the change, the model
/// version that wrote it, and the record.
#[cfg(feature = "json")]
#[derive(serde::Serialize, serde::Deserialize)]
struct VersionLine<M> {
    key: String,
    position: u64,
    at_micros: u64,
    change: Change,
    model_version: u16,
    record: Option<M>,
}

/// A history entry as a JSON line; `None` for the position counter.
#[cfg(feature = "json")]
pub(crate) fn version_to_json<M: Model>(entry_key: &[u8], value: &[u8]) -> Result<Option<String>> {
    let Some(key) = record_key(entry_key) else { return Ok(None) };
    let version = decode_version::<M>(entry_key, value)?;
    let line = VersionLine {
        key: crate::codec::to_hex(key),
        position: version.position,
        at_micros: split_value(value)?.1,
        change: version.change,
        model_version: version.model_version,
        record: version.record,
    };
    let json = serde_json::to_string(&line).map_err(|e| Error::Encode {
        what: format!("{} history of {}", M::INFO.name, crate::codec::key::describe_encoded::<M::Key>(key)),
        reason: e.to_string(),
    })?;
    Ok(Some(json))
}

/// Without the `json` feature the derive still registers these; they are
/// never called, since export and import do not exist then.
#[cfg(not(feature = "json"))]
pub(crate) fn version_to_json<M: Model>(_entry_key: &[u8], _value: &[u8]) -> Result<Option<String>> {
    Err(Error::Encode { what: M::INFO.name.to_owned(), reason: "built without the json feature".into() })
}

/// See the other `version_to_json`.
#[cfg(not(feature = "json"))]
pub(crate) fn import_json<M: Model>(_: &mut dyn Writer, _: Table, _: &[(usize, String)]) -> Result<u64> {
    Err(Error::Decode { what: M::INFO.name.to_owned(), reason: "built without the json feature".into() })
}

/// The highest position an import may give a version: the rest of the
/// range is left for the changes that follow it (2^63 of them).
#[cfg(feature = "json")]
const MAX_IMPORTED_POSITION: u64 = u64::MAX / 2;

/// Puts back the versions of exported history, in one transaction: each
/// record named replaces its kept versions with the lines' (records in
/// the current format), and positions go on after the highest. Returns
/// how many versions were written. Every line is checked before it is
/// written, and the first inconsistent one fails the import, naming its
/// line: a key that is not the record's or too long for the engine, a
/// position of 0, one already used, or one that leaves no room for the
/// changes after it.
#[cfg(feature = "json")]
pub(crate) fn import_json<M: Model>(txn: &mut dyn Writer, table: Table, lines: &[(usize, String)]) -> Result<u64> {
    let mut replaced = std::collections::HashSet::new();
    let mut positions = std::collections::HashSet::new();
    let (mut highest, mut written) = (last_position(txn, table)?, 0);
    for (number, line) in lines.iter().filter(|(_, line)| !line.trim().is_empty()) {
        let at_line = |source: Error| Error::Import { line: *number, source: Box::new(source) };
        let decode = |reason: String| at_line(Error::Decode { what: format!("{} history", M::INFO.name), reason });
        let parsed: VersionLine<M> = serde_json::from_str(line).map_err(|e| decode(e.to_string()))?;
        let key =
            crate::codec::from_hex(&parsed.key).ok_or_else(|| decode(format!("key {:?} is not hex", parsed.key)))?;
        check_imported::<M>(&parsed, &key, &mut positions).map_err(decode)?;
        let entry = entry_key(&key, parsed.position);
        crate::engine::check_key_len(|| format!("{} history key", M::INFO.name), entry.len()).map_err(at_line)?;
        if replaced.insert(key.clone()) {
            for (entry_key, ..) in entries_of_record(txn, table, &key)? {
                txn.delete(table, &entry_key)?;
            }
        }
        let mut value = vec![parsed.change.byte()];
        value.extend_from_slice(&parsed.at_micros.to_be_bytes());
        match (&parsed.record, parsed.change) {
            (None, Change::Deleted) => value.extend_from_slice(&parsed.model_version.to_be_bytes()),
            (Some(record), Change::Created | Change::Updated) => {
                crate::codec::value::encode_into(record, M::INFO.version, M::INFO.name, &mut value).map_err(at_line)?;
            }
            _ => return Err(decode("a deletion has no record, and every other change has one".into())),
        }
        txn.put(table, &entry, &value).map_err(at_line)?;
        highest = highest.max(parsed.position);
        written += 1;
    }
    txn.put(table, LAST_POSITION, &highest.to_be_bytes())?;
    Ok(written)
}

/// What makes one imported version inconsistent, if anything.
#[cfg(feature = "json")]
fn check_imported<M: Model>(
    line: &VersionLine<M>,
    key: &[u8],
    positions: &mut std::collections::HashSet<u64>,
) -> Result<(), String> {
    if line.position == 0 || line.position > MAX_IMPORTED_POSITION {
        return Err(format!("position {} is not between 1 and {MAX_IMPORTED_POSITION}", line.position));
    }
    if !positions.insert(line.position) {
        return Err(format!("position {} is given to two versions", line.position));
    }
    if let Some(record) = &line.record {
        let own = crate::codec::key::encode_to_vec(record.record_key());
        if own != key {
            return Err(format!("the record's key is {}, not the line's {}", crate::codec::to_hex(&own), line.key));
        }
    }
    Ok(())
}

/// An entry's kind, time in microseconds, and the rest.
fn split_value(value: &[u8]) -> Result<(u8, u64, &[u8])> {
    if value.len() < ENTRY_HEADER {
        let reason = format!("{} bytes, at least {ENTRY_HEADER} expected", value.len());
        return Err(Error::Decode { what: "history entry".to_owned(), reason });
    }
    let at = u64::from_be_bytes(value[1..ENTRY_HEADER].try_into().expect("eight bytes"));
    Ok((value[0], at, &value[ENTRY_HEADER..]))
}

/// The position of the model's last change, from the counter kept in its
/// history table (0: none yet).
pub(crate) fn last_position(txn: &(impl Reader + ?Sized), table: Table) -> Result<u64> {
    match txn.get(table, LAST_POSITION)? {
        None => Ok(0),
        Some(bytes) => bytes.try_into().map(u64::from_be_bytes).map_err(|_| Error::Decode {
            what: "history position".to_owned(),
            reason: format!("{} bytes stored, 8 expected", bytes.len()),
        }),
    }
}

/// The record key's length (two bytes) and the key: what every entry of
/// the record starts with, and no other record's.
fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(2 + key.len() + 8);
    // Keys are at most 511 bytes (the engine's limit), so two bytes hold the length.
    prefix.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_be_bytes());
    prefix.extend_from_slice(key);
    prefix
}

fn entry_key(key: &[u8], position: u64) -> Vec<u8> {
    let mut entry = key_prefix(key);
    entry.extend_from_slice(&position.to_be_bytes());
    entry
}

/// The record key inside an entry key; `None` for the position counter.
fn record_key(entry_key: &[u8]) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes(entry_key.get(..2)?.try_into().ok()?));
    entry_key.get(2..2 + len).filter(|_| entry_key.len() == 2 + len + 8)
}

fn micros_of(moment: SystemTime) -> u64 {
    u64::try_from(moment.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros()).unwrap_or(u64::MAX)
}
