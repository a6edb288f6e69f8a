//! The write path below the typed edge: each write checks before it
//! changes anything, so a failed one leaves the transaction as it was;
//! index entries are kept through `indexing`, history through `history`.
//! Nothing here is generic over a model: it works from the model's
//! description (`ModelTables::info`) and its `Encoded` record, and is
//! compiled once for all models.

use std::borrow::Cow;
use std::ops::Bound;

use super::WriteTx;
use crate::codec::key::prefix_successor;
use crate::engine::Table;
use crate::error::{Error, Result};
use crate::history::Change;
use crate::indexing;
use crate::locks::{Owner, marker_key};
use crate::model::IndexEntries;
use crate::model::ModelInfo;
use crate::tables::ModelTables;

impl<'t> WriteTx<'t> {
    /// `save` below the typed edge.
    pub(super) fn save_encoded(&mut self, tables: &ModelTables, key: &[u8], new: &Encoded) -> Result<()> {
        if tables.info.indexes.is_empty() {
            self.refuse_newer(tables, key)?;
            return self.store_record(tables, key, new, OldEntries::NotLooked);
        }
        let stored = self.stored_entries(tables, key)?;
        self.store_record(tables, key, new, stored.as_ref().map_or(OldEntries::Absent, OldEntries::Known))
    }
    /// Fails if the record under `key` was written by a newer model version:
    /// older code never overwrites it.
    pub(super) fn refuse_newer(&self, tables: &ModelTables, key: &[u8]) -> Result<()> {
        let Some(bytes) = self.reads().get(tables.main, key)? else { return Ok(()) };
        let (model, known) = (tables.info.name, tables.info.version);
        let stored = crate::codec::value::version_of(bytes, model)?;
        if stored > known { Err(Error::NewerVersion { model, stored, known }) } else { Ok(()) }
    }
    /// `insert` below the typed edge.
    pub(super) fn insert_encoded(&mut self, tables: &ModelTables, key: &[u8], new: &Encoded) -> Result<()> {
        let write = self.prepare(tables, key, new, OldEntries::Absent, UniqueCheck::OnPut)?;
        // One descent of the tree finds a taken key, or writes the record.
        if self.txn.put_new(tables.main, key, write.bytes)?.is_some() {
            return Err(Error::AlreadyExists { model: tables.info.name, key: (tables.info.ops.describe_key)(key) });
        }
        match self.add_new_entries(tables, key, write.added) {
            Ok(()) => {}
            Err(Undone::Clean(clash)) => return Err(clash),
            Err(Undone::Failed(err)) => return self.poison_if_err(Err(err)),
        }
        let kept = self.keep_history(tables, key, Change::Created, Some(write.bytes));
        self.poison_if_err(kept)
    }
    /// Records a change of the record under `key` in its model's history,
    /// when the model keeps one: `stored` is the record's new stored bytes,
    /// `None` for a deletion.
    #[inline]
    pub(super) fn keep_history(
        &mut self,
        tables: &ModelTables,
        key: &[u8],
        change: Change,
        stored: Option<&[u8]>,
    ) -> Result<()> {
        let Some(table) = tables.history else { return Ok(()) };
        let info = tables.info;
        let position = self.next_history_position(info, table)?;
        crate::history::record(&mut *self.txn, table, key, position, change, stored, info)
    }
    /// The next position of the history in `table` (of the model in slot
    /// `slot`). The counter is read once per transaction and written back
    /// when the transaction's closure succeeds (`finish`), so a batch of
    /// changes pays for it once.
    pub(super) fn next_history_position(&mut self, info: &ModelInfo, table: Table) -> Result<u64> {
        let slot = info.slot.index();
        let cached = self.history_positions.iter_mut().find(|(cached, ..)| *cached == slot);
        let last = match cached {
            Some((_, _, last)) => last,
            None => {
                let last = crate::history::last_position(self.reads(), table)?;
                self.history_positions.push((slot, table, last));
                &mut self.history_positions.last_mut().expect("just pushed").2
            }
        };
        // Imports refuse positions near the top, so this is reached only
        // after 2^63 changes; a wrapped counter would sort new versions
        // below old ones.
        *last = last
            .checked_add(1)
            .ok_or_else(|| Error::SequenceExhausted { name: format!("{}{}", info.name, crate::history::SUFFIX) })?;
        Ok(*last)
    }
    pub(super) fn rewind_sequence(&mut self, name: &str, last: u64) -> Result<()> {
        let table = self.shared.sequences.ok_or(Error::ReadOnly)?;
        crate::sequence::rewind(&mut *self.txn, table, name, last)
    }
    /// Adds the entries of a record just inserted under `key`, unique ones
    /// first with insert-if-absent puts (a clash is found in the same
    /// descent that would write); on a clash the record and the entries
    /// added so far are removed again, leaving the transaction as it was.
    pub(super) fn add_new_entries(
        &mut self,
        tables: &ModelTables,
        key: &[u8],
        mut added: Vec<(usize, Cow<'_, [u8]>)>,
    ) -> std::result::Result<(), Undone> {
        let indexes = tables.info.indexes;
        added.sort_by_key(|(position, _)| !indexes[*position].unique);
        let mut unique_added = Vec::new();
        for (position, index_key) in &added {
            let (info, table) = (&indexes[*position], tables.indexes[*position]);
            if !info.unique {
                self.txn.put(table, index_key, key).map_err(Undone::Failed)?;
                continue;
            }
            match self.txn.put_new(table, index_key, key).map_err(Undone::Failed)? {
                Some(holder) if holder != key => {
                    let clash = Error::UniqueViolation {
                        model: tables.info.name,
                        index: info.name,
                        value: (info.describe)(index_key),
                    };
                    return self
                        .undo_insert(tables.main, key, &unique_added)
                        .map_or_else(|err| Err(Undone::Failed(err)), |()| Err(Undone::Clean(clash)));
                }
                Some(_) => {}
                None => unique_added.push((table, &**index_key)),
            }
        }
        Ok(())
    }
    /// Removes a record just inserted and the unique entries added for it.
    pub(super) fn undo_insert(&mut self, main: Table, key: &[u8], unique_added: &[(Table, &[u8])]) -> Result<()> {
        for &(table, index_key) in unique_added {
            self.txn.delete(table, index_key)?;
        }
        self.txn.delete(main, key).map(drop)
    }
    /// The tables of the model `info` describes, for a write: a model with
    /// an expiry first loses its expired records, so that the write never
    /// meets one (their keys and unique values are free again).
    #[inline]
    pub(super) fn tables_for_write(&mut self, info: &ModelInfo) -> Result<&'t ModelTables> {
        let tables = self.shared.tables_of(info)?;
        if let Some(position) = tables.expiry {
            let now = crate::expiry::now_millis();
            for key in crate::expiry::expired_keys(self.reads(), tables, position, now, usize::MAX)? {
                match self.delete_encoded(tables, &key) {
                    // Kept while children point at it: invisible to reads all the same.
                    Ok(_) | Err(Error::Restricted { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(tables)
    }
    /// Passes on the result of a step that may fail after changing the
    /// transaction; a failure poisons the transaction, so that it is rolled
    /// back whatever the caller does with the error (see `finish`).
    pub(super) fn poison_if_err<R>(&mut self, result: Result<R>) -> Result<R> {
        if let Err(err) = &result {
            self.poisoned.get_or_insert_with(|| err.to_string());
        }
        result
    }
    /// The transaction's outcome once the caller's closure has returned
    /// `outcome`: a poisoned transaction is aborted and fails even when the
    /// closure went on past the error that poisoned it.
    pub(crate) fn finish<R, E: From<Error>>(self, outcome: Result<R, E>) -> Result<R, E> {
        if self.poisoned.is_none() && outcome.is_ok() {
            for &(_, table, last) in &self.history_positions {
                crate::history::save_last_position(&mut *self.txn, table, last)?;
            }
        }
        match (self.poisoned, outcome) {
            (Some(reason), Ok(_)) => {
                self.txn.doom();
                Err(E::from(Error::RolledBack { reason }))
            }
            (_, outcome) => outcome,
        }
    }
    /// `delete` by encoded key: below the typed edge, and for record-lock
    /// guards, cascades and the purge of expired records.
    pub(crate) fn delete_encoded(&mut self, tables: &ModelTables, key: &[u8]) -> Result<bool> {
        if self.reads().get(tables.main, key)?.is_none() {
            return Ok(false);
        }
        let entries = self.stored_entries(tables, key)?.unwrap_or_default();
        self.refuse_if_restricted(tables, key)?;
        self.remove_record(tables, key, &entries)?;
        // The record is gone first, so that a cycle of cascades ends.
        let cascaded = self.cascade_delete(tables, key);
        self.poison_if_err(cascaded)?;
        Ok(true)
    }
    /// Fails, changing nothing, if a child points at the record under
    /// `key` through a parent index marked `on_delete = restrict`.
    pub(super) fn refuse_if_restricted(&self, tables: &ModelTables, key: &[u8]) -> Result<()> {
        for referrer in tables.referrers.iter().filter(|r| r.on_delete == crate::OnDelete::Restrict) {
            if !self.children_of(referrer, key)?.is_empty() {
                let (model, child) = (tables.info.name, referrer.child.name);
                return Err(Error::Restricted { model, key: (tables.info.ops.describe_key)(key), child });
            }
        }
        Ok(())
    }
    /// Deletes the children of the record under `key` whose parent index
    /// is marked `on_delete = cascade`, each by its own model's rules.
    pub(super) fn cascade_delete(&mut self, tables: &ModelTables, key: &[u8]) -> Result<()> {
        for referrer in tables.referrers.iter().filter(|r| r.on_delete == crate::OnDelete::Cascade) {
            let child_tables = self.shared.tables_of(referrer.child)?;
            for child in self.children_of(referrer, key)? {
                self.delete_encoded(child_tables, &child)?;
            }
        }
        Ok(())
    }
    /// The keys of the records whose parent index `referrer` holds `parent`.
    pub(super) fn children_of(&self, referrer: &crate::tables::Referrer, parent: &[u8]) -> Result<Vec<Vec<u8>>> {
        let child_tables = self.shared.tables_of(referrer.child)?;
        let table = child_tables.indexes[referrer.position];
        let upper = prefix_successor(parent);
        let upper = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let unique = referrer.child.indexes[referrer.position].unique;
        let mut children = Vec::new();
        for entry in self.reads().range(table, Bound::Included(parent), upper)? {
            let (entry_key, child) = entry?;
            // Only entries whose value is exactly `parent` (see `indexing`).
            let value = if unique { entry_key } else { entry_key.strip_suffix(child).unwrap_or(entry_key) };
            if value == parent {
                children.push(child.to_vec());
            }
        }
        Ok(children)
    }
    /// Fails if a parent index marked `must_exist` names a parent that is
    /// not stored.
    pub(super) fn check_parents_exist(
        &self,
        tables: &ModelTables,
        added: &[(usize, Cow<'_, [u8]>)],
        key: &[u8],
    ) -> Result<()> {
        for (position, index_key) in added {
            let info = &tables.info.indexes[*position];
            let Some(parent) = info.parent().filter(|_| info.must_exist) else { continue };
            let value = indexing::index_value(tables.info, *position, index_key, key);
            if self.reads().get(self.shared.tables_of(parent)?.main, value)?.is_none() {
                let (model, index) = (tables.info.name, info.name);
                return Err(Error::ParentMissing { model, index, parent: parent.name, key: (info.describe)(value) });
            }
        }
        Ok(())
    }
    /// The index entries of the record stored under `key`, if any. A record
    /// written by an older version, or one that no longer decodes, cannot
    /// say which entries it has: those are found by scanning the model's
    /// indexes, so that such a record can still be replaced or deleted.
    /// Nothing is changed here: a write that fails later leaves them.
    pub(super) fn stored_entries(&self, tables: &ModelTables, key: &[u8]) -> Result<Option<IndexEntries>> {
        let Some(bytes) = self.reads().get(tables.main, key)? else { return Ok(None) };
        match (tables.info.ops.entries_of_stored)(bytes) {
            Ok(Some(entries)) => Ok(Some(entries)),
            Ok(None) | Err(Error::Decode { .. }) => self.entries_pointing_at(tables, key).map(Some),
            Err(other) => Err(other),
        }
    }
    /// Every index entry of the model pointing at `key`; see `indexing`.
    pub(super) fn entries_pointing_at(&self, tables: &ModelTables, key: &[u8]) -> Result<IndexEntries> {
        indexing::entries_pointing_at(self.reads(), tables, key)
    }
    /// Removes every index entry pointing at one of `keys`; see `indexing`.
    pub(super) fn remove_entries_of(
        &mut self,
        tables: &ModelTables,
        keys: &std::collections::HashSet<&[u8]>,
    ) -> Result<()> {
        indexing::remove_entries_of(&mut *self.txn, tables, keys)
    }
    /// Moves the record stored under `old_key` to `new_key`. Every check of
    /// the moved record runs before the old one is removed, so a refused
    /// move leaves both keys as they were.
    pub(super) fn move_record(
        &mut self,
        tables: &ModelTables,
        old_key: &[u8],
        old_entries: &IndexEntries,
        new_key: &[u8],
        new: &Encoded,
    ) -> Result<()> {
        if self.reads().get(tables.main, new_key)?.is_some() {
            return Err(Error::AlreadyExists { model: tables.info.name, key: (tables.info.ops.describe_key)(new_key) });
        }
        self.check_unlocked(tables.info, old_key)?;
        let moving = UniqueCheck::LookUp { moving_from: Some(old_key) };
        let write = self.prepare(tables, new_key, new, OldEntries::Absent, moving)?;
        self.remove_record(tables, old_key, old_entries)?;
        self.apply(tables, new_key, &write)?;
        let kept = self.keep_history(tables, new_key, Change::Created, Some(write.bytes));
        self.poison_if_err(kept)
    }
    /// Writes `record` under `key`, moving its index entries from
    /// `old_entries` to its own. Every check runs before the first write,
    /// so a failure leaves the transaction untouched.
    pub(super) fn store_record(
        &mut self,
        tables: &ModelTables,
        key: &[u8],
        new: &Encoded,
        old_entries: OldEntries<'_>,
    ) -> Result<()> {
        let write = self.prepare(tables, key, new, old_entries, UniqueCheck::LookUp { moving_from: None })?;
        let change = match (tables.history, old_entries) {
            (None, _) => None,
            (Some(_), OldEntries::Known(_)) => Some(Change::Updated),
            (Some(_), OldEntries::Absent) => Some(Change::Created),
            (Some(_), OldEntries::Cleared | OldEntries::NotLooked) => {
                let stored = self.reads().get(tables.main, key)?.is_some();
                Some(if stored { Change::Updated } else { Change::Created })
            }
        };
        self.apply(tables, key, &write)?;
        let Some(change) = change else { return Ok(()) };
        let kept = self.keep_history(tables, key, change, Some(write.bytes));
        self.poison_if_err(kept)
    }
    /// Runs every check of writing `record` under `key` and computes what
    /// the write changes, without changing anything (unique values are
    /// checked as `unique` says).
    pub(super) fn prepare<'n, 'o>(
        &mut self,
        tables: &ModelTables,
        key: &[u8],
        new: &'n Encoded,
        old_entries: OldEntries<'o>,
        unique: UniqueCheck<'_>,
    ) -> Result<PreparedWrite<'n, 'o>> {
        self.check_writable(tables)?;
        self.check_unlocked(tables.info, key)?;
        let bytes = new.bytes.as_slice();
        let known = match old_entries {
            OldEntries::Known(old) => Some(old),
            OldEntries::Absent | OldEntries::Cleared | OldEntries::NotLooked => None,
        };
        if known.is_some_and(|old| old.same_as(&new.entries)) {
            // The usual update: no indexed value changed, nothing to diff.
            return Ok(PreparedWrite { bytes, added: Vec::new(), removed: Vec::new() });
        }
        let Some(old) = known.map(IndexEntries::entries) else {
            // With nothing to move from, every entry is added, unsorted: a
            // value given twice is put twice, which writes nothing more.
            let added = self.check_added(tables, key, new.entries.iter(), unique)?;
            self.check_parents_exist(tables, &added, key)?;
            return Ok(PreparedWrite { bytes, added, removed: Vec::new() });
        };
        let entries = new.entries.entries();
        let removed = old.iter().filter(|e| entries.binary_search(e).is_err()).copied().collect();
        let added = entries.iter().copied().filter(|e| old.binary_search(e).is_err());
        let added = self.check_added(tables, key, added, unique)?;
        self.check_parents_exist(tables, &added, key)?;
        Ok(PreparedWrite { bytes, added, removed })
    }
    /// Carries out a write that `prepare` checked.
    pub(super) fn apply(&mut self, tables: &ModelTables, key: &[u8], write: &PreparedWrite<'_, '_>) -> Result<()> {
        for &(position, value) in &write.removed {
            indexing::remove_entry(&mut *self.txn, tables, position, value, key)?;
        }
        for (position, index_key) in &write.added {
            self.txn.put(tables.indexes[*position], index_key, key)?;
        }
        self.txn.put(tables.main, key, write.bytes)
    }
    /// Checks lengths and unique constraints of new index entries and
    /// returns their index keys.
    pub(super) fn check_added<'n>(
        &self,
        tables: &ModelTables,
        key: &[u8],
        added: impl Iterator<Item = (usize, &'n [u8])>,
        unique: UniqueCheck<'_>,
    ) -> Result<Vec<(usize, Cow<'n, [u8]>)>> {
        let mut keys = Vec::with_capacity(added.size_hint().1.unwrap_or(0));
        for (position, value) in added {
            let index_key = match unique {
                UniqueCheck::LookUp { moving_from } => {
                    indexing::check_entry(self.reads(), tables, position, value, key, moving_from)?
                }
                UniqueCheck::OnPut => indexing::checked_key(tables.info, position, value, key)?,
            };
            keys.push((position, index_key));
        }
        Ok(keys)
    }
    /// Fails (and dooms the transaction) if a record lock on `key` is held
    /// by anyone but this transaction's guard; clears locks of dead holders.
    pub(super) fn check_unlocked(&mut self, info: &ModelInfo, key: &[u8]) -> Result<()> {
        if !self.txn.may_hold_entries(self.shared.lock_table)? {
            return Ok(()); // the usual case, without building the marker key
        }
        let marker = marker_key(info.name, key);
        if marker.len() > crate::engine::MAX_KEY_LEN {
            return Ok(()); // too long to have been locked
        }
        let Some(holder) = self.txn.get(self.shared.lock_table, &marker)? else {
            return Ok(());
        };
        let holder = Owner::from_bytes(holder);
        if holder.is_some() && holder == self.owner {
            return Ok(());
        }
        if holder.is_some_and(|holder| self.shared.locks.taken_by(holder, self.caller)) {
            // Waiting would be waiting for ourselves: refuse at once.
            return Err(Error::LockedByThisThread { model: info.name, key: (info.ops.describe_key)(key) });
        }
        if holder.is_some_and(|holder| self.shared.locks.is_alive(holder)) {
            let locked = || Error::Locked { model: info.name, key: (info.ops.describe_key)(key) };
            *self.blocked = Some(locked());
            self.txn.doom();
            return Err(locked());
        }
        self.txn.delete(self.shared.lock_table, &marker)?;
        Ok(())
    }
    /// Deletes the record under `key` and its index entries.
    pub(super) fn remove_record(&mut self, tables: &ModelTables, key: &[u8], entries: &IndexEntries) -> Result<()> {
        self.check_writable(tables)?;
        self.check_unlocked(tables.info, key)?;
        for (position, value) in entries.entries() {
            indexing::remove_entry(&mut *self.txn, tables, position, value, key)?;
        }
        self.txn.delete(tables.main, key)?;
        let kept = self.keep_history(tables, key, Change::Deleted, None);
        self.poison_if_err(kept)
    }
}

/// What a write knows of the index entries of the record it replaces.
#[derive(Clone, Copy)]
pub(super) enum OldEntries<'o> {
    /// No record is stored under the key.
    Absent,
    /// The stored record's entries.
    Known(&'o IndexEntries),
    /// Removed already: a migration removes older code's entries first.
    Cleared,
    /// Not looked at: the model has no indexes (a record may be stored).
    NotLooked,
}

/// How `prepare` checks the unique values a write adds.
#[derive(Clone, Copy)]
pub(super) enum UniqueCheck<'k> {
    /// Look each one up; a record moving away from `moving_from` (a key
    /// move) may take its own values with it.
    LookUp { moving_from: Option<&'k [u8]> },
    /// Leave it to the insert-if-absent puts of `add_new_entries`.
    OnPut,
}

/// Why `add_new_entries` gave up.
pub(super) enum Undone {
    /// A unique clash; the insert was undone, the transaction is as it was.
    Clean(Error),
    /// The engine failed part-way: the transaction cannot be trusted.
    Failed(Error),
}

/// A checked write of one record: everything it changes, computed before
/// anything is changed.
pub(super) struct PreparedWrite<'n, 'o> {
    /// The stored value.
    bytes: &'n [u8],
    /// Index keys to add, by index position (a unique index's borrowed
    /// from the new record's values).
    added: Vec<(usize, Cow<'n, [u8]>)>,
    /// Values of the old record's entries that the new record drops.
    removed: Vec<(usize, &'o [u8])>,
}

/// A record at the typed edge: its stored bytes, checked (length, read
/// back, expiry), and its index values, as `Encoded::of` (`write.rs`) makes
/// it. Everything here works on this.
pub(super) struct Encoded {
    pub(super) bytes: Vec<u8>,
    pub(super) entries: IndexEntries,
}
