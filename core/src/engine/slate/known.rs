//! What the store's one writer knows of its tables as of its last commit,
//! so that its write transactions can skip lookups:
//!
//! - **Extents**: whether a table holds any entry, and a key no entry of
//!   it is above. SlateDB answers every lookup by building an iterator
//!   over its memtables and tables, so a lookup costs about as much as a
//!   write. A write checks keys that are mostly absent (an insert's key, a
//!   unique value, a lock), and most of those are absent because they are
//!   new: past every key the table holds (ascending ids, sequences, stream
//!   offsets) or in a table still empty.
//! - **Versions**: a number per table that changes whenever a commit
//!   changes the table, so that a check of the table's contents (the
//!   catalog's, before every write) need not be made again while the
//!   number stays.
//!
//! This holds only because the store has one writer, this process (a
//! second writer fences it): its own commits are the only ones, and each
//! updates what is known here. A failed commit may or may not have landed,
//! so it forgets the extents, to be learnt again with one scan per table,
//! and gives every table a new version.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// A table's extent as of the last commit.
struct Extent {
    /// No key of the table is greater than this engine key; `None`: the
    /// table holds no key at all.
    greatest: Option<Vec<u8>>,
    /// Whether `greatest` is a key the table holds, rather than a bound
    /// left standing after deletions (the table may even be empty then).
    exact: bool,
}

#[derive(Default)]
struct Tables {
    /// The extents known, by table number.
    extents: HashMap<u32, Extent>,
    /// Commit attempts made since the store opened.
    attempts: u64,
    /// By table number, the attempt that last changed the table.
    changed_in: HashMap<u32, u64>,
    /// The last attempt that failed: it may have changed any table.
    failed_in: u64,
}

/// What is known of the tables, by table number.
pub(super) struct Known(Mutex<Tables>);

impl Known {
    pub(super) fn new() -> Known {
        Known(Mutex::new(Tables::default()))
    }

    /// Whether the last commit surely holds nothing at `key`, an engine
    /// key of `table`; `None` if the table's extent is not known.
    pub(super) fn rules_out(&self, table: u32, key: &[u8]) -> Option<bool> {
        let known = crate::sync::lock(&self.0);
        let extent = known.extents.get(&table)?;
        Some(extent.greatest.as_deref().is_none_or(|greatest| key > greatest))
    }

    /// Whether `table` held entries in the last commit, if known.
    pub(super) fn holds_entries(&self, table: u32) -> Option<bool> {
        let known = crate::sync::lock(&self.0);
        let extent = known.extents.get(&table)?;
        match (&extent.greatest, extent.exact) {
            (None, _) => Some(false),
            (Some(_), true) => Some(true),
            (Some(_), false) => None,
        }
    }

    /// Records `table`'s greatest key, read in the last commit.
    pub(super) fn learn(&self, table: u32, greatest: Option<Vec<u8>>) {
        crate::sync::lock(&self.0).extents.insert(table, Extent { greatest, exact: true });
    }

    /// Commit attempts made so far: what a snapshot taken now is as of.
    pub(super) fn attempts(&self) -> u64 {
        crate::sync::lock(&self.0).attempts
    }

    /// `table`'s version in a snapshot taken after `attempts` commit
    /// attempts (and before the next): equal in two snapshots only if they
    /// see the same entries in it. `None` once a later attempt changed the
    /// table, as what it was is no longer known.
    pub(super) fn version_as_of(&self, table: u32, attempts: u64) -> Option<u64> {
        let known = crate::sync::lock(&self.0);
        let changed_in = known.changed_in.get(&table).copied().unwrap_or(0);
        let version = changed_in.max(known.failed_in);
        (version <= attempts).then_some(version)
    }

    /// Brings what is known up to a commit that made `changes`. A table
    /// whose extent was not known stays unknown: its other keys were not
    /// seen.
    pub(super) fn committed(&self, changes: Vec<TableChange>) {
        let mut known = crate::sync::lock(&self.0);
        known.attempts += 1;
        let attempt = known.attempts;
        for change in changes {
            known.changed_in.insert(change.table, attempt);
            let Some(extent) = known.extents.get_mut(&change.table) else { continue };
            match change.greatest_put {
                Some(put) if extent.greatest.as_ref().is_none_or(|greatest| &put > greatest) => {
                    *extent = Extent { greatest: Some(put), exact: true };
                }
                // The greatest key stays; it may be among those deleted.
                _ => extent.exact &= !change.deletes,
            }
        }
    }

    /// After a commit that failed: what it wrote is not known.
    pub(super) fn failed(&self) {
        let mut known = crate::sync::lock(&self.0);
        known.attempts += 1;
        known.failed_in = known.attempts;
        known.extents.clear();
    }
}

/// What a commit does to one table.
pub(super) struct TableChange {
    table: u32,
    greatest_put: Option<Vec<u8>>,
    deletes: bool,
}

/// What `changes` (engine keys to their new values, `None` for a
/// deletion) do to each table: the greatest key put, and whether any is
/// deleted.
pub(super) fn summarise(changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Vec<TableChange> {
    // Per table: its number, the greatest key put, whether any is deleted.
    let mut tables: Vec<(u32, Option<&[u8]>, bool)> = Vec::new();
    for (key, value) in changes {
        let Some(table) = key.get(..4).and_then(|prefix| prefix.try_into().ok()).map(u32::from_be_bytes) else {
            continue;
        };
        // Keys come in order: a table's keys are together, a later put is
        // a greater key.
        match tables.last_mut() {
            Some(last) if last.0 == table => {}
            _ => tables.push((table, None, false)),
        }
        let last = tables.last_mut().expect("pushed above");
        match value {
            Some(_) => last.1 = Some(key),
            None => last.2 = true,
        }
    }
    let owned = |(table, put, deletes): (u32, Option<&[u8]>, bool)| TableChange {
        table,
        greatest_put: put.map(<[u8]>::to_vec),
        deletes,
    };
    tables.into_iter().map(owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(table: u32, tail: &[u8]) -> Vec<u8> {
        let mut key = table.to_be_bytes().to_vec();
        key.extend_from_slice(tail);
        key
    }

    fn commit(known: &Known, changes: &[(Vec<u8>, bool)]) {
        let changes = changes.iter().map(|(key, put)| (key.clone(), put.then(Vec::new))).collect();
        known.committed(summarise(&changes));
    }

    #[test]
    fn an_unknown_table_stays_unknown_through_commits() {
        let known = Known::new();
        commit(&known, &[(key(1, b"a"), true)]);
        assert_eq!(known.rules_out(1, &key(1, b"b")), None);
        assert_eq!(known.holds_entries(1), None);
    }

    #[test]
    fn an_empty_table_rules_out_every_key_until_a_put() {
        let known = Known::new();
        known.learn(1, None);
        assert_eq!(known.rules_out(1, &key(1, b"")), Some(true));
        assert_eq!(known.holds_entries(1), Some(false));
        commit(&known, &[(key(1, b"m"), true)]);
        assert_eq!(known.rules_out(1, &key(1, b"m")), Some(false));
        assert_eq!(known.rules_out(1, &key(1, b"a")), Some(false));
        assert_eq!(known.rules_out(1, &key(1, b"n")), Some(true));
        assert_eq!(known.holds_entries(1), Some(true));
    }

    #[test]
    fn puts_raise_the_greatest_key_and_never_lower_it() {
        let known = Known::new();
        known.learn(1, Some(key(1, b"m")));
        commit(&known, &[(key(1, b"a"), true), (key(1, b"z"), true)]);
        assert_eq!(known.rules_out(1, &key(1, b"y")), Some(false));
        assert_eq!(known.rules_out(1, &key(1, b"zz")), Some(true));
        commit(&known, &[(key(1, b"b"), true)]);
        assert_eq!(known.rules_out(1, &key(1, b"y")), Some(false));
    }

    #[test]
    fn deletions_keep_the_bound_but_not_the_emptiness() {
        let known = Known::new();
        known.learn(1, Some(key(1, b"m")));
        commit(&known, &[(key(1, b"m"), false)]);
        // Still a bound: nothing above it came.
        assert_eq!(known.rules_out(1, &key(1, b"n")), Some(true));
        assert_eq!(known.rules_out(1, &key(1, b"a")), Some(false));
        // The table may now be empty: ask the store again.
        assert_eq!(known.holds_entries(1), None);
        // A put above the bound is the greatest key again.
        commit(&known, &[(key(1, b"a"), false), (key(1, b"q"), true)]);
        assert_eq!(known.holds_entries(1), Some(true));
    }

    #[test]
    fn a_commit_touches_only_its_own_tables() {
        let known = Known::new();
        known.learn(1, None);
        known.learn(2, None);
        let before = known.attempts();
        let versions = (known.version_as_of(1, before), known.version_as_of(2, before));
        commit(&known, &[(key(2, b"a"), true)]);
        assert_eq!(known.holds_entries(1), Some(false));
        assert_eq!(known.holds_entries(2), Some(true));
        let now = known.attempts();
        assert_eq!(known.version_as_of(1, now), versions.0);
        assert_ne!(known.version_as_of(2, now), versions.1);
        // A snapshot taken before the commit still has its versions of the
        // tables the commit left alone, and none of the one it changed.
        assert_eq!(known.version_as_of(1, before), versions.0);
        assert_eq!(known.version_as_of(2, before), None);
    }

    #[test]
    fn a_failed_commit_forgets_extents_and_changes_every_version() {
        let known = Known::new();
        known.learn(1, None);
        commit(&known, &[(key(2, b"a"), true)]);
        let version = |table| known.version_as_of(table, known.attempts()).expect("as of now");
        let versions = [version(1), version(2), version(3)];
        known.failed();
        assert_eq!(known.holds_entries(1), None);
        for (table, before) in (1..).zip(versions) {
            assert_ne!(version(table), before, "table {table}");
        }
        // And a later commit gives the table it changes a version not seen.
        let after_failure = version(2);
        commit(&known, &[(key(2, b"b"), true)]);
        assert_ne!(version(2), after_failure);
    }
}
