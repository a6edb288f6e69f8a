//! Paged queries: a range or prefix of a model's keys or of one index's
//! values, in either direction, a page at a time, resumed after the last
//! entry seen with a [`Cursor`].

use std::fmt;
use std::marker::PhantomData;
use std::ops::Bound;

use crate::codec::key::{KeyPrefix, KeyRange, prefix_successor};
use crate::engine::Reader;
use crate::error::{Error, Result};
use crate::index::IndexHandle;
use crate::model::Model;
use crate::tables::Shared;

/// A query over the keys of model `M` (from [`Persistent::query`](crate::Persistent::query)) or over
/// the values `V` of one of its indexes (from [`Persistent::query_by`](crate::Persistent::query_by)):
/// a prefix and/or a range, a direction, a page size, and where the last
/// page ended. Run it with [`fetch`](Query::fetch) (its own read
/// transaction) or [`fetch_in`](Query::fetch_in) (inside yours).
///
/// A page resumed with [`after`](Query::after) starts right after the
/// last entry of the page before, in the store as it is now: entries
/// written since then behind the cursor are not seen, those ahead of it
/// are, and none is returned twice.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use skyshelve::{Persistent, Store};
/// #[derive(Persistent, Serialize, Deserialize)]
/// # #[persistent(name = "doc_query_events")]
/// #[persistent(index(name = "by_aggregate", fields(aggregate, version), unique))]
/// struct Event {
///     #[persistent(key, sequence)]
///     id: u64,
///     aggregate: String,
///     version: u32,
/// }
///
/// let store = Store::temporary()?;
/// for version in 1..=5 {
///     Event { id: 0, aggregate: "order-7".into(), version }.append(&store)?;
///     Event { id: 0, aggregate: "order-8".into(), version }.append(&store)?;
/// }
/// // Events of order-7 after version 2, two at a time.
/// let query = Event::query_by(Event::BY_AGGREGATE)
///     .prefix(&("order-7",))
///     .range(("order-7".to_string(), 3)..)
///     .limit(2);
/// let first = query.fetch(&store)?;
/// let versions: Vec<u32> = first.records.iter().map(|e| e.version).collect();
/// assert_eq!(versions, [3, 4]);
/// assert!(first.more);
/// let second = query.after(first.last.as_ref().unwrap()).fetch(&store)?;
/// assert_eq!(second.records.iter().map(|e| e.version).collect::<Vec<_>>(), [5]);
/// assert!(!second.more, "nothing more, for now");
///
/// // The latest event of order-8.
/// let latest = Event::query_by(Event::BY_AGGREGATE).prefix(&("order-8",)).reverse().limit(1).fetch(&store)?;
/// assert_eq!(latest.records[0].version, 5);
/// # Ok::<(), skyshelve::Error>(())
/// ```
pub struct Query<M, V> {
    /// The index queried, by position; `None` for the model's keys.
    index: Option<usize>,
    /// Bounds on the encoded values (keys or index values).
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// Every value starts with these bytes.
    prefix: Option<Vec<u8>>,
    after: Option<Cursor>,
    reverse: bool,
    limit: Option<usize>,
    _types: PhantomData<fn() -> (M, V)>,
}

/// One page of a [`Query`]: the records, where the last of them sits, and
/// whether more entries followed it when the page was read.
#[derive(Debug)]
pub struct Page<M> {
    /// The records, in the query's order.
    pub records: Vec<M>,
    /// The position of the last record: pass it to [`Query::after`] for
    /// the next page, now or later (to follow a log as it grows). `None`
    /// when the page is empty; keep the cursor you had.
    pub last: Option<Cursor>,
    /// Whether the query had more entries after this page.
    pub more: bool,
}

/// Where a page of a [`Query`] ended: the position of its last entry. It
/// belongs to the query that produced it. It prints as hexadecimal and
/// parses back ([`str::parse`]), so that it can travel in a URL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cursor(Vec<u8>);

impl<M: Model, V> Query<M, V> {
    pub(crate) fn new(index: Option<usize>) -> Self {
        Query {
            index,
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            prefix: None,
            after: None,
            reverse: false,
            limit: None,
            _types: PhantomData,
        }
    }

    /// Only values that start with `prefix`: a leading part of a tuple
    /// (`("order-7",)` of a `(String, u32)`), or the start of a string.
    #[must_use]
    pub fn prefix<P>(mut self, prefix: &P) -> Self
    where
        V: crate::Key,
        P: KeyPrefix<V> + ?Sized,
    {
        let mut bytes = Vec::new();
        prefix.encode_prefix(&mut bytes);
        self.prefix = Some(bytes);
        self
    }

    /// Only values inside `range` (any std range form; see [`KeyRange`]).
    /// With [`prefix`](Query::prefix), values must satisfy both.
    #[must_use]
    pub fn range<R: KeyRange<V>>(mut self, range: R) -> Self {
        (self.lower, self.upper) = range.encoded_bounds();
        self
    }

    /// From the greatest value down instead of from the least up.
    #[must_use]
    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    /// At most `records` records per page.
    #[must_use]
    pub fn limit(mut self, records: usize) -> Self {
        self.limit = Some(records);
        self
    }

    /// Starts right after the entry where a page of this query ended.
    #[must_use]
    pub fn after(mut self, cursor: &Cursor) -> Self {
        self.after = Some(cursor.clone());
        self
    }

    /// Runs the query in a read transaction of its own.
    pub fn fetch(&self, store: &crate::Store) -> Result<Page<M>> {
        store.read(|tx| self.fetch_in(tx))
    }

    /// Runs the query inside a read or write transaction.
    pub fn fetch_in<T: crate::Transaction>(&self, tx: &T) -> Result<Page<M>> {
        let reading = tx.reading();
        self.run(reading.shared, reading.reads)
    }

    /// The page, read through `txn`.
    pub(crate) fn run(&self, shared: &Shared, txn: &(impl Reader + ?Sized)) -> Result<Page<M>> {
        let tables = shared.tables::<M>()?;
        let table = match self.index {
            None => tables.main,
            Some(position) => {
                crate::catalog::check_queryable(txn, shared.catalog, tables, position)?;
                tables.indexes[position]
            }
        };
        let (lower, upper) = self.table_bounds();
        let (lower, upper) = (lower.as_ref().map(Vec::as_slice), upper.as_ref().map(Vec::as_slice));
        let mut entries =
            if self.reverse { txn.rev_range(table, lower, upper)? } else { txn.range(table, lower, upper)? };
        let mut records = Vec::new();
        let mut last = None;
        let wanted = self.limit.unwrap_or(usize::MAX);
        let now = crate::expiry::now_millis();
        while records.len() < wanted {
            let Some(entry) = entries.next() else {
                return Ok(Page { records, last: last.map(Cursor::at), more: false });
            };
            let (entry_key, value) = entry?;
            let bytes = match self.index {
                None => value,
                Some(_) => txn.get(tables.main, value)?.ok_or_else(missing_record::<M>)?,
            };
            // An expired record is skipped as if it were gone.
            if let Some(record) = crate::txn::decode_visible::<M>(bytes, now)? {
                records.push(record);
                last = Some(entry_key);
            }
        }
        let more = entries.next().transpose()?.is_some();
        Ok(Page { records, last: last.map(Cursor::at), more })
    }

    /// The bounds on the table's keys: the value range (widened, for an
    /// index, to every primary key after a value), the prefix, and the
    /// cursor, intersected.
    fn table_bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let (mut lower, mut upper) = match self.index {
            None => (self.lower.clone(), self.upper.clone()),
            Some(_) => {
                let (lower, upper) = crate::txn::prefix_bounds((self.lower.clone(), self.upper.clone()));
                (Bound::Included(lower), upper)
            }
        };
        if let Some(prefix) = &self.prefix {
            lower = tighter_lower(lower, Bound::Included(prefix.clone()));
            upper = tighter_upper(upper, prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded));
        }
        if let Some(Cursor(position)) = &self.after {
            if self.reverse {
                upper = tighter_upper(upper, Bound::Excluded(position.clone()));
            } else {
                lower = tighter_lower(lower, Bound::Excluded(position.clone()));
            }
        }
        (lower, upper)
    }
}

impl<M, V> Clone for Query<M, V> {
    fn clone(&self) -> Self {
        Query {
            index: self.index,
            lower: self.lower.clone(),
            upper: self.upper.clone(),
            prefix: self.prefix.clone(),
            after: self.after.clone(),
            reverse: self.reverse,
            limit: self.limit,
            _types: PhantomData,
        }
    }
}

impl<M: Model, V> fmt::Debug for Query<M, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let over = self.index.map_or("key", |position| M::INFO.indexes[position].name);
        f.debug_struct("Query")
            .field("model", &M::INFO.name)
            .field("over", &over)
            .field("reverse", &self.reverse)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

fn missing_record<M: Model>() -> Error {
    Error::Decode {
        what: format!("index of {}", M::INFO.name),
        reason: "index entry points at a missing record".into(),
    }
}

/// The greater of two lower bounds.
fn tighter_lower(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (&a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x > y || (x == y && matches!(a, Bound::Excluded(_))) { a } else { b }
        }
    }
}

/// The lesser of two upper bounds.
fn tighter_upper(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (&a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x < y || (x == y && matches!(a, Bound::Excluded(_))) { a } else { b }
        }
    }
}

impl Cursor {
    fn at(entry_key: &[u8]) -> Cursor {
        Cursor(entry_key.to_vec())
    }

    /// The cursor's bytes (an encoded key or index entry).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({self})")
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::codec::to_hex(&self.0))
    }
}

impl std::str::FromStr for Cursor {
    type Err = Error;

    /// ```
    /// # use skyshelve::Cursor;
    /// let cursor: Cursor = "00ff10".parse()?;
    /// assert_eq!(cursor.to_string(), "00ff10");
    /// assert!("0g".parse::<Cursor>().is_err());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn from_str(text: &str) -> Result<Self> {
        crate::codec::from_hex(text).map(Cursor).ok_or_else(|| Error::Decode {
            what: "cursor".into(),
            reason: format!("{text:?} is not an even run of hex digits"),
        })
    }
}

/// The query constructors on [`Persistent`].
pub(crate) fn over_keys<M: Model>() -> Query<M, M::Key> {
    Query::new(None)
}

pub(crate) fn over_index<H: IndexHandle>(index: H) -> Query<H::Model, H::Value> {
    Query::new(Some(index.position()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(bytes: &[u8]) -> Bound<Vec<u8>> {
        Bound::Included(bytes.to_vec())
    }
    fn exc(bytes: &[u8]) -> Bound<Vec<u8>> {
        Bound::Excluded(bytes.to_vec())
    }

    #[test]
    fn bounds_intersect_to_the_tighter_one() {
        assert_eq!(tighter_lower(inc(b"a"), inc(b"b")), inc(b"b"));
        assert_eq!(tighter_lower(exc(b"b"), inc(b"b")), exc(b"b"));
        assert_eq!(tighter_lower(Bound::Unbounded, exc(b"a")), exc(b"a"));
        assert_eq!(tighter_upper(inc(b"a"), exc(b"b")), inc(b"a"));
        assert_eq!(tighter_upper(inc(b"b"), exc(b"b")), exc(b"b"));
        assert_eq!(tighter_upper(exc(b"c"), Bound::Unbounded), exc(b"c"));
    }

    #[test]
    fn a_cursor_survives_its_text_form() {
        let cursor = Cursor(vec![0, 1, 0xab, 0xff]);
        assert_eq!(cursor.to_string().parse::<Cursor>().unwrap(), cursor);
        assert!("abc".parse::<Cursor>().is_err());
        assert!("é0".parse::<Cursor>().is_err());
    }
}
