//! SlateDB's transactions: a read transaction is a snapshot (or the
//! reader of a read-only store), a write transaction a draft of changes
//! over a snapshot, written as one batch at commit; ranges merge the two.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use slatedb::bytes::Bytes;

use super::*;
use crate::engine::{Reader, Writer};
use crate::error::Result;

/// What a transaction reads: a snapshot of the writer, the writer itself
/// (a write transaction, during which no other commit can happen), or the
/// reader.
pub(super) enum View {
    Snapshot(Arc<DbSnapshot>),
    Writer(Db),
    Reader(Arc<DbReader>),
}

impl View {
    pub(super) fn clone_view(&self) -> View {
        match self {
            View::Snapshot(snapshot) => View::Snapshot(Arc::clone(snapshot)),
            View::Writer(db) => View::Writer(db.clone()),
            View::Reader(reader) => View::Reader(Arc::clone(reader)),
        }
    }
}

/// A read transaction.
pub(crate) struct Snapshot<'e> {
    engine: &'e Engine,
    view: View,
    /// The commit attempts this process had made when it was taken, where
    /// that is known (see `Engine::read_txn`): what its table versions are
    /// as of.
    as_of: Option<u64>,
    /// The values read, kept so that they can be lent out until the end.
    kept: Arena<Bytes>,
}

/// A write transaction: changes over a snapshot, written at commit.
pub(crate) struct Draft<'e> {
    base: Snapshot<'e>,
    /// Engine keys to their new values (`None`: deleted).
    pub(super) changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub(super) doomed: bool,
    pub(super) topics: u64,
    pub(super) bytes: u64,
}

impl<'e> Snapshot<'e> {
    pub(super) fn new(engine: &'e Engine, view: View, as_of: Option<u64>) -> Snapshot<'e> {
        Snapshot { engine, view, as_of, kept: Arena::new() }
    }
}

impl<'e> Draft<'e> {
    /// A draft over the writer `db`, read directly rather than through a
    /// snapshot (which would cost a registration per transaction): the
    /// caller holds `Engine::writing`, so no commit lands while it lives,
    /// and `as_of` is the commit attempts made.
    pub(super) fn new(engine: &'e Engine, db: Db, as_of: u64) -> Draft<'e> {
        let base = Snapshot::new(engine, View::Writer(db), Some(as_of));
        Draft { base, changes: BTreeMap::new(), doomed: false, topics: 0, bytes: 0 }
    }

    pub(super) fn published_topics(&self) -> u64 {
        if self.topics & 1 == 0 { 0 } else { self.topics }
    }

    /// Every key of `table`, as the draft sees it.
    fn keys_of(&self, table: crate::engine::Table) -> Result<Vec<Vec<u8>>> {
        self.range(table, Bound::Unbounded, Bound::Unbounded)?.map(|entry| entry.map(|(key, _)| key.to_vec())).collect()
    }
}

impl Snapshot<'_> {
    fn get_stored(&self, key: Vec<u8>) -> Result<Option<&[u8]>> {
        let view = self.view.clone_view();
        let value = self
            .engine
            .run(async move {
                match view {
                    View::Snapshot(snapshot) => snapshot.get(key).await,
                    View::Writer(db) => db.get(key).await,
                    View::Reader(reader) => reader.get(key).await,
                }
            })
            .map_err(|err| self.engine.failure(err))?;
        Ok(value.map(|value| &**self.kept.alloc(value)))
    }

    /// The greatest engine key of `table`, `None` if it holds none.
    fn greatest_stored_key(&self, table: Table) -> Result<Option<Vec<u8>>> {
        let Some(bounds) = table.bounds(Bound::Unbounded, Bound::Unbounded) else { return Ok(None) };
        let view = self.view.clone_view();
        self.engine
            .run(async move {
                let options = ScanOptions { order: IterationOrder::Descending, ..ScanOptions::default() };
                let mut iter = match view {
                    View::Snapshot(snapshot) => snapshot.scan_with_options(bounds, &options).await?,
                    View::Writer(db) => db.scan_with_options(bounds, &options).await?,
                    View::Reader(reader) => reader.scan_with_options(bounds, &options).await?,
                };
                Ok(iter.next().await?.map(|entry| entry.key.to_vec()))
            })
            .map_err(|err| self.engine.failure(err))
    }

    /// `table`'s version in this snapshot, where known.
    fn version_of(&self, table: Table) -> Option<u64> {
        self.engine.known.version_as_of(table.0, self.as_of?)
    }

    fn stored_range(&self, table: Table, lower: Bound<&[u8]>, upper: Bound<&[u8]>, reverse: bool) -> Stored<'_> {
        let bounds = table.bounds(lower, upper);
        Stored { snapshot: self, bounds, reverse, iter: None, buffered: VecDeque::new(), done: false }
    }
}

impl Reader for Snapshot<'_> {
    fn get(&self, table: crate::engine::Table, key: &[u8]) -> Result<Option<&[u8]>> {
        self.get_stored(Table::of(table)?.key(key))
    }

    fn scan<'t>(
        &'t self,
        table: crate::engine::Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<crate::engine::RangeIter<'t>> {
        let stored = self.stored_range(Table::of(table)?, lower, upper, reverse);
        Ok(crate::engine::RangeIter::Slate(Box::new(RangeIter { stored, changes: None, reverse })))
    }

    fn len(&self, table: crate::engine::Table) -> Result<u64> {
        count_entries(self.range(table, Bound::Unbounded, Bound::Unbounded)?)
    }

    /// Telling would take a scan, which costs more than the lookup it saves.
    fn may_hold_entries(&self, _table: crate::engine::Table) -> Result<bool> {
        Ok(true)
    }

    fn table_version(&self, table: crate::engine::Table) -> Option<u64> {
        self.version_of(Table::of(table).ok()?)
    }
}

impl Reader for Draft<'_> {
    fn get(&self, table: crate::engine::Table, key: &[u8]) -> Result<Option<&[u8]>> {
        let slate_table = Table::of(table)?;
        let key = slate_table.key(key);
        match self.changes.get(&key) {
            Some(changed) => Ok(changed.as_deref()),
            None if self.ruled_out(slate_table, &key)? => Ok(None),
            None => self.base.get_stored(key),
        }
    }

    fn scan<'t>(
        &'t self,
        table: crate::engine::Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<crate::engine::RangeIter<'t>> {
        self.merged(table, lower, upper, reverse)
    }

    fn len(&self, table: crate::engine::Table) -> Result<u64> {
        count_entries(self.range(table, Bound::Unbounded, Bound::Unbounded)?)
    }

    /// From the draft's own puts, else from what the engine knows of the
    /// last commit (learnt with one lookup when not known).
    fn may_hold_entries(&self, table: crate::engine::Table) -> Result<bool> {
        let slate_table = Table::of(table)?;
        let Some(bounds) = slate_table.bounds(Bound::Unbounded, Bound::Unbounded) else { return Ok(false) };
        if self.changes.range::<Vec<u8>, _>(bounds).any(|(_, value)| value.is_some()) {
            return Ok(true);
        }
        let known = &self.base.engine.known;
        if let Some(holds) = known.holds_entries(slate_table.0) {
            return Ok(holds);
        }
        let greatest = self.base.greatest_stored_key(slate_table)?;
        let holds = greatest.is_some();
        known.learn(slate_table.0, greatest);
        Ok(holds)
    }

    /// The base's, unless the draft changed the table.
    fn table_version(&self, table: crate::engine::Table) -> Option<u64> {
        let slate_table = Table::of(table).ok()?;
        let bounds = slate_table.bounds(Bound::Unbounded, Bound::Unbounded)?;
        if self.changes.range::<Vec<u8>, _>(bounds).next().is_some() {
            return None;
        }
        self.base.version_of(slate_table)
    }
}

impl Draft<'_> {
    /// Whether the base surely holds nothing at `key` (an engine key of
    /// `table`), by what the engine knows of the table's extent, learnt
    /// with one lookup when not known. The base is the last commit: the
    /// draft holds `Engine::writing`.
    fn ruled_out(&self, table: Table, key: &[u8]) -> Result<bool> {
        let known = &self.base.engine.known;
        if let Some(ruled_out) = known.rules_out(table.0, key) {
            return Ok(ruled_out);
        }
        known.learn(table.0, self.base.greatest_stored_key(table)?);
        Ok(known.rules_out(table.0, key).unwrap_or(false))
    }

    /// The stored entries of a range with the draft's changes laid over.
    fn merged<'t>(
        &'t self,
        table: crate::engine::Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<crate::engine::RangeIter<'t>> {
        let slate_table = Table::of(table)?;
        let stored = self.base.stored_range(slate_table, lower, upper, reverse);
        let changes: Changes<'t> = match slate_table.bounds(lower, upper) {
            None => (Box::new(std::iter::empty()) as Box<dyn Iterator<Item = _>>).peekable(),
            Some(bounds) => {
                let range = self.changes.range::<Vec<u8>, _>(bounds);
                let ordered: Box<dyn Iterator<Item = _>> =
                    if reverse { Box::new(range.rev()) } else { Box::new(range) };
                ordered.peekable()
            }
        };
        Ok(crate::engine::RangeIter::Slate(Box::new(RangeIter { stored, changes: Some(changes), reverse })))
    }
}

impl Writer for Draft<'_> {
    fn put(&mut self, table: crate::engine::Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.topics |= 1;
        self.bytes += (key.len() + value.len()) as u64;
        self.changes.insert(Table::of(table)?.key(key), Some(value.to_vec()));
        Ok(())
    }

    fn put_new(&mut self, table: crate::engine::Table, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(taken) = self.get(table, key)? {
            return Ok(Some(taken.to_vec()));
        }
        self.put(table, key, value)?;
        Ok(None)
    }

    fn delete(&mut self, table: crate::engine::Table, key: &[u8]) -> Result<bool> {
        self.topics |= 1;
        let present = self.get(table, key)?.is_some();
        if present {
            self.changes.insert(Table::of(table)?.key(key), None);
        }
        Ok(present)
    }

    fn clear(&mut self, table: crate::engine::Table) -> Result<()> {
        self.topics |= 1;
        let slate_table = Table::of(table)?;
        for key in self.keys_of(table)? {
            self.changes.insert(slate_table.key(&key), None);
        }
        Ok(())
    }

    fn doom(&mut self) {
        self.doomed = true;
    }

    fn touch(&mut self, topics: u64) {
        self.topics |= topics;
    }
}

/// How many entries a range holds: SlateDB keeps no count, so it reads them.
fn count_entries(range: crate::engine::RangeIter<'_>) -> Result<u64> {
    let mut count = 0;
    for entry in range {
        entry?;
        count += 1;
    }
    Ok(count)
}

/// The stored entries of a range, read from SlateDB a chunk at a time.
struct Stored<'t> {
    snapshot: &'t Snapshot<'t>,
    /// `None`: the range holds no key.
    bounds: Option<EngineBounds>,
    reverse: bool,
    iter: Option<DbIterator>,
    buffered: VecDeque<(Bytes, Bytes)>,
    done: bool,
}

impl<'t> Stored<'t> {
    /// The next stored entry, engine key and value, kept by the snapshot.
    fn next_entry(&mut self) -> Result<Option<(&'t [u8], &'t [u8])>> {
        if self.buffered.is_empty() && !self.done {
            self.fill()?;
        }
        Ok(self.buffered.pop_front().map(|(key, value)| {
            let kept = &self.snapshot.kept;
            (&**kept.alloc(key), &**kept.alloc(value))
        }))
    }

    fn fill(&mut self) -> Result<()> {
        let Some(bounds) = self.bounds.clone() else {
            self.done = true;
            return Ok(());
        };
        let view = self.snapshot.view.clone_view();
        let order = if self.reverse { IterationOrder::Descending } else { IterationOrder::Ascending };
        let started = self.iter.take();
        let (iter, chunk) = self
            .snapshot
            .engine
            .run(async move {
                let mut iter = match started {
                    Some(iter) => iter,
                    None => {
                        let options = ScanOptions { order, ..ScanOptions::default() };
                        match view {
                            View::Snapshot(snapshot) => snapshot.scan_with_options(bounds, &options).await?,
                            View::Writer(db) => db.scan_with_options(bounds, &options).await?,
                            View::Reader(reader) => reader.scan_with_options(bounds, &options).await?,
                        }
                    }
                };
                let mut chunk = Vec::with_capacity(SCAN_CHUNK);
                while chunk.len() < SCAN_CHUNK {
                    match iter.next().await? {
                        Some(entry) => chunk.push((entry.key, entry.value)),
                        None => break,
                    }
                }
                Ok::<_, slatedb::Error>((iter, chunk))
            })
            .map_err(|err| self.snapshot.engine.failure(err))?;
        self.done = chunk.len() < SCAN_CHUNK;
        self.iter = Some(iter);
        self.buffered.extend(chunk);
        Ok(())
    }
}

/// Entries of a range: the stored ones, and in a write transaction the
/// draft's changes laid over them.
pub(crate) struct RangeIter<'t> {
    stored: Stored<'t>,
    changes: Option<Changes<'t>>,
    reverse: bool,
}

impl<'t> RangeIter<'t> {
    /// The next entry by engine key, the draft's change winning a tie;
    /// `Some(None)` for a key the draft deleted.
    fn next_merged(&mut self) -> Result<Option<MergedEntry<'t>>> {
        let Some(changes) = &mut self.changes else {
            return Ok(self.stored.next_entry()?.map(|(key, value)| (key, Some(value))));
        };
        // Peek the stored side without losing it: keep it buffered.
        let stored = match self.stored.buffered.front() {
            Some(_) => self.stored.buffered.front().map(|(key, _)| key.clone()),
            None => {
                if !self.stored.done {
                    self.stored.fill()?;
                }
                self.stored.buffered.front().map(|(key, _)| key.clone())
            }
        };
        let change_first = match (changes.peek(), &stored) {
            (None, None) => return Ok(None),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((change, _)), Some(stored)) => {
                let order = change.as_slice().cmp(stored.as_ref());
                if order == std::cmp::Ordering::Equal {
                    // The stored entry is replaced by the change.
                    self.stored.buffered.pop_front();
                    true
                } else {
                    (order == std::cmp::Ordering::Less) != self.reverse
                }
            }
        };
        if change_first {
            Ok(changes.next().map(|(key, value)| (key.as_slice(), value.as_deref())))
        } else {
            Ok(self.stored.next_entry()?.map(|(key, value)| (key, Some(value))))
        }
    }
}

impl<'t> Iterator for RangeIter<'t> {
    type Item = Result<(&'t [u8], &'t [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_merged() {
                Err(err) => return Some(Err(err)),
                Ok(None) => return None,
                Ok(Some((_, None))) => {}
                // The table number is not part of the key the seam shows.
                Ok(Some((key, Some(value)))) => return Some(Ok((&key[4..], value))),
            }
        }
    }
}
