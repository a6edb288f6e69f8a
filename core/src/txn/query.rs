//! The queries, on both transaction kinds: load, exists, index scans,
//! ranges, prefixes, counts. Each streams inside its transaction.

use std::borrow::Borrow;
use std::ops::Bound;

use super::{ReadTx, WriteTx};
use crate::codec::key::{EncodeKey, KeyPrefix, KeyRange, encode_to_vec, prefix_successor};
use crate::engine::{RangeIter, Reader};
use crate::error::{Error, Result};
use crate::index::{IndexHandle, ParentIndex, UniqueIndex};
use crate::indexing::index_value;
use crate::model::Model;
use crate::tables::{ModelTables, Shared};

/// The query methods, identical on both transaction kinds.
/// A query method's example, on `ReadTx` only: `WriteTx` has the same
/// methods, and running each example twice would test nothing more.
macro_rules! example {
    (ReadTx, $example:literal) => {
        $example
    };
    (WriteTx, $example:literal) => {
        "The same as `ReadTx`'s method of this name (see its example)."
    };
}

macro_rules! read_methods {
    ($tx:ident) => {
        impl $tx<'_> {
            /// The record with this key, if any.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_txn_19_ReadTx")]
# struct Item { #[persistent(key)] id: u32 }
# let store = Store::temporary()?;
# Item { id: 1 }.save(&store)?;
let found = store.read(|tx| tx.load::<Item, _>(&1))?;
assert!(found.is_some());
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn load<M, Q>(&self, key: &Q) -> Result<Option<M>>
            where
                M: Model,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                super::query::load(self.shared, self.reads(), key)
            }

            /// Whether a record with this key exists.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_exists_ReadTx")]
# struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
# let store = Store::temporary()?;
# for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
assert!(store.read(|tx| tx.exists::<Item, _>(&3))?);
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn exists<M, Q>(&self, key: &Q) -> Result<bool>
            where
                M: Model,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                let tables = self.shared.tables::<M>()?;
                let key = encode_to_vec(key);
                if M::EXPIRY.is_some() {
                    // Only a decoded record says whether it has expired.
                    return Ok(super::query::load_encoded::<M>(self.reads(), tables, &key)?.is_some());
                }
                Ok(self.reads().get(tables.main, &key)?.is_some())
            }

            /// The record whose unique index holds `value`, if any.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_load_by_ReadTx")]
# struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
# let store = Store::temporary()?;
# for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
let item = store.read(|tx| tx.load_by(Item::CODE, &104))?;
assert_eq!(item.map(|i| i.id), Some(4));
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn load_by<M, V, Q>(&self, index: UniqueIndex<M, V>, value: &Q) -> Result<Option<M>>
            where
                M: Model,
                V: crate::Key + Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                let tables = self.shared.tables::<M>()?;
                crate::catalog::check_queryable(self.reads(), self.shared.catalog, tables, index.position())?;
                let table = tables.indexes[index.position()];
                match self.reads().get(table, &encode_to_vec(value))? {
                    Some(pk) => super::query::load_encoded(self.reads(), tables, pk),
                    None => Ok(None),
                }
            }

            /// Streams the records whose index holds `value`, in key order.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_txn_20_ReadTx")]
# struct User { #[persistent(key)] id: u32, #[persistent(index)] team: u8 }
# let store = Store::temporary()?;
# for id in 0..10 { User { id, team: (id % 2) as u8 }.save(&store)?; }
let odd = store.read(|tx| {
    let mut n = 0;
    for user in tx.scan_index(User::TEAM, &1)? {
        assert_eq!(user?.team, 1);
        n += 1;
    }
    Ok(n)
})?;
assert_eq!(odd, 5);
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn scan_index<H, Q>(&self, index: H, value: &Q) -> Result<impl Iterator<Item = Result<H::Model>> + '_>
            where
                H: IndexHandle,
                H::Value: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                let prefix = encode_to_vec(value);
                let upper = prefix_successor(&prefix);
                let exact = Some(prefix.clone());
                super::query::index_records::<H::Model, _>(
                    self.shared,
                    self.reads(),
                    index.position(),
                    prefix,
                    upper,
                    exact,
                )
            }

            /// Streams the records whose parent index points at `parent_key`.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_children_user_ReadTx")]
# struct User { #[persistent(key)] name: String }
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_children_post_ReadTx")]
# struct Post { #[persistent(key)] id: u32, #[persistent(parent = User)] author: String }
# let store = Store::temporary()?;
# for id in 0..4 { Post { id, author: if id < 3 { "ada".into() } else { "bob".into() } }.save(&store)?; }
let by_ada = store.read(|tx| Ok(tx.children(Post::AUTHOR, "ada")?.count()))?;
assert_eq!(by_ada, 3);
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn children<M, P, Q>(
                &self,
                index: ParentIndex<M, P>,
                parent_key: &Q,
            ) -> Result<impl Iterator<Item = Result<M>> + '_>
            where
                M: Model,
                P: Model,
                P::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                self.scan_index(index, parent_key)
            }

            /// Streams the records whose index values fall in `range`, in
            /// index order.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_range_index_ReadTx")]
# struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
# let store = Store::temporary()?;
# for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
let ids: Vec<u32> = store.read(|tx| tx.range_index(Item::CODE, 101..103)?.map(|i| i.map(|i| i.id)).collect::<Result<_, _>>())?;
assert_eq!(ids, [1, 2]);
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn range_index<H, R>(&self, index: H, range: R) -> Result<impl Iterator<Item = Result<H::Model>> + '_>
            where
                H: IndexHandle,
                R: KeyRange<H::Value>,
            {
                let (lower, upper) = super::query::prefix_bounds(range.encoded_bounds());
                let upper = match upper {
                    Bound::Unbounded => None,
                    Bound::Excluded(upper) => Some(upper),
                    Bound::Included(_) => unreachable!("prefix bounds exclude their upper end"),
                };
                super::query::index_records::<H::Model, _>(
                    self.shared,
                    self.reads(),
                    index.position(),
                    lower,
                    upper,
                    None,
                )
            }

            /// Streams every record of model `M` in key order, in bounded memory.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_txn_21_ReadTx")]
# struct Item { #[persistent(key)] id: u32 }
# let store = Store::temporary()?;
# for id in 0..3 { Item { id }.save(&store)?; }
let total: u32 = store.read(|tx| tx.iter::<Item>()?.map(|i| Ok(i?.id)).sum())?;
assert_eq!(total, 3);
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn iter<M: Model>(&self) -> Result<impl Iterator<Item = Result<M>> + '_> {
                self.range::<M, _>(..)
            }

            /// Streams the kept versions of the record with this key, newest
            /// first; see [`Persistent::history`](crate::Persistent::history).
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_history_ReadTx", history = 5)]
# struct Item { #[persistent(key)] id: u32, n: u32 }
# let store = Store::temporary()?;
# for n in 0..3 { Item { id: 1, n }.save(&store)?; }
let newest = store.read(|tx| tx.history::<Item, _>(&1)?.next().transpose())?;
assert_eq!(newest.and_then(|version| version.record).map(|item| item.n), Some(2));
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn history<M, Q>(&self, key: &Q) -> Result<impl Iterator<Item = Result<crate::Version<M>>> + '_>
            where
                M: Model,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                let table = crate::history::table_of::<M>(self.shared)?;
                crate::history::versions(self.reads(), table, &encode_to_vec(key))
            }

            /// The record with this key as it was at `moment`; see
            /// [`Persistent::as_of`](crate::Persistent::as_of).
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{AsOf, Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_as_of_ReadTx", history = 5)]
# struct Item { #[persistent(key)] id: u32, n: u32 }
# let store = Store::temporary()?;
# for n in 0..3 { Item { id: 1, n }.save(&store)?; }
let second = store.read(|tx| tx.as_of::<Item, _>(&1, AsOf::Position(2)))?;
assert_eq!(second.map(|item| item.n), Some(1));
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn as_of<M, Q>(&self, key: &Q, moment: impl Into<crate::AsOf>) -> Result<Option<M>>
            where
                M: Model,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                let table = crate::history::table_of::<M>(self.shared)?;
                let encoded = encode_to_vec(key);
                let live = self.reads().get(self.shared.tables::<M>()?.main, &encoded)?.is_some();
                crate::history::as_of::<M>(self.reads(), table, &encoded, live, moment.into())
            }

            /// Streams the records whose keys fall in `range`.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_range_ReadTx")]
# struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
# let store = Store::temporary()?;
# for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
let ids: Vec<u32> = store.read(|tx| tx.range::<Item, _>(2..=3)?.map(|i| i.map(|i| i.id)).collect::<Result<_, _>>())?;
assert_eq!(ids, [2, 3]);
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn range<M, R>(&self, range: R) -> Result<impl Iterator<Item = Result<M>> + '_>
            where
                M: Model,
                R: KeyRange<M::Key>,
            {
                let tables = self.shared.tables::<M>()?;
                let (lower, upper) = range.encoded_bounds();
                let entries = self.reads().range(tables.main, as_ref(&lower), as_ref(&upper))?;
                Ok(super::query::decode_records(entries))
            }

            /// Streams the records whose keys start with `prefix`.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_prefix_ReadTx")]
# struct File { #[persistent(key)] path: String }
# let store = Store::temporary()?;
# for path in ["a/1", "a/2", "b/1"] { File { path: path.into() }.save(&store)?; }
let in_a = store.read(|tx| Ok(tx.prefix::<File, _>("a/")?.count()))?;
assert_eq!(in_a, 2);
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn prefix<M, P>(&self, prefix: &P) -> Result<impl Iterator<Item = Result<M>> + '_>
            where
                M: Model,
                P: KeyPrefix<M::Key> + ?Sized,
            {
                let tables = self.shared.tables::<M>()?;
                let mut lower = Vec::new();
                prefix.encode_prefix(&mut lower);
                let upper = prefix_successor(&lower);
                let upper = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                let entries = self.reads().range(tables.main, Bound::Included(&lower), upper)?;
                Ok(super::query::decode_records(entries))
            }

            /// The last number issued by the sequence `name` (see
            /// [`WriteTx::next_sequence`](crate::WriteTx::next_sequence)),
            /// `None` before its first.
            ///
            #[doc = example!($tx, r#"```
# let store = skyshelve::Store::temporary()?;
assert_eq!(store.read(|tx| tx.last_sequence("doc_last_ReadTx"))?, None);
store.write(|tx| tx.next_sequence("doc_last_ReadTx"))?;
assert_eq!(store.read(|tx| tx.last_sequence("doc_last_ReadTx"))?, Some(1));
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn last_sequence(&self, name: &str) -> Result<Option<u64>> {
                crate::sequence::last(self.reads(), self.shared.sequences, name)
            }

            /// The number of records of model `M`.
            ///
            #[doc = example!($tx, r#"```
# use serde::{Deserialize, Serialize};
# use skyshelve::{Persistent, Store};
# #[derive(Persistent, Serialize, Deserialize)]
# #[persistent(name = "doc_q_count_ReadTx")]
# struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
# let store = Store::temporary()?;
# for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
assert_eq!(store.read(|tx| tx.count::<Item>())?, 6);
# Ok::<(), skyshelve::Error>(())
```"#)]
            pub fn count<M: Model>(&self) -> Result<u64> {
                let tables = self.shared.tables::<M>()?;
                let stored = self.reads().len(tables.main)?;
                let expired = match M::EXPIRY {
                    Some(position) => {
                        crate::expiry::count_expired(self.reads(), tables, position, crate::expiry::now_millis())?
                    }
                    None => 0,
                };
                Ok(stored.saturating_sub(expired))
            }
        }
    };
}

read_methods!(ReadTx);
read_methods!(WriteTx);

fn as_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    bound.as_ref().map(Vec::as_slice)
}

pub fn load<M, Q>(shared: &Shared, txn: &(impl Reader + ?Sized), key: &Q) -> Result<Option<M>>
where
    M: Model,
    Q: EncodeKey + ?Sized,
{
    load_encoded(txn, shared.tables::<M>()?, &encode_to_vec(key))
}

/// The record under `key` and the model version that wrote it.
pub fn load_stored<M: Model>(
    txn: &(impl Reader + ?Sized),
    tables: &ModelTables,
    key: &[u8],
) -> Result<Option<(u16, M)>> {
    txn.get(tables.main, key)?.map(crate::record::decode_record::<M>).transpose()
}

pub fn load_encoded<M: Model>(txn: &(impl Reader + ?Sized), tables: &ModelTables, key: &[u8]) -> Result<Option<M>> {
    match txn.get(tables.main, key)? {
        Some(bytes) => decode_visible::<M>(bytes, crate::expiry::now_millis()),
        None => Ok(None),
    }
}

/// Decodes a stored record; `None` if it has expired at `now`.
pub fn decode_visible<M: Model>(bytes: &[u8], now: u64) -> Result<Option<M>> {
    let (_, record) = crate::record::decode_record::<M>(bytes)?;
    Ok(Some(record).filter(|record| !crate::expiry::is_expired(record, now)))
}

pub fn decode_records<'a, M: Model>(entries: RangeIter<'a>) -> impl Iterator<Item = Result<M>> + 'a {
    let now = crate::expiry::now_millis();
    entries.filter_map(move |entry| match entry {
        Ok((_, bytes)) => decode_visible::<M>(bytes, now).transpose(),
        Err(err) => Some(Err(err)),
    })
}

/// Streams the records of the index entries from `lower` up to (not
/// including) `upper`; with `exact`, only those whose value is exactly
/// that encoding. The byte range alone would also hold values whose
/// encoding merely starts with it, should a custom key encoding break
/// the prefix-free rule.
pub fn index_records<'a, M: Model, T: Reader + ?Sized>(
    shared: &Shared,
    txn: &'a T,
    position: usize,
    lower: Vec<u8>,
    upper: Option<Vec<u8>>,
    exact: Option<Vec<u8>>,
) -> Result<impl Iterator<Item = Result<M>> + use<'a, M, T>> {
    let tables = shared.tables::<M>()?;
    crate::catalog::check_queryable(txn, shared.catalog, tables, position)?;
    let main = tables.main;
    let upper_bound = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let entries = txn.range(tables.indexes[position], Bound::Included(&lower), upper_bound)?;
    let now = crate::expiry::now_millis();
    Ok(entries.filter_map(move |entry| {
        let (entry_key, primary) = match entry {
            Ok(entry) => entry,
            Err(err) => return Some(Err(err)),
        };
        if exact.as_deref().is_some_and(|value| index_value(M::INFO, position, entry_key, primary) != value) {
            return None;
        }
        Some(match txn.get(main, primary) {
            Ok(Some(bytes)) => return decode_visible::<M>(bytes, now).transpose(),
            Ok(None) => Err(Error::Decode {
                what: format!("index of {}", M::INFO.name),
                reason: "index entry points at a missing record".into(),
            }),
            Err(err) => Err(err),
        })
    }))
}

/// Byte bounds covering every index entry whose value lies between the
/// encoded bounds, whatever primary key follows the value.
pub fn prefix_bounds((start, end): (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> (Vec<u8>, Bound<Vec<u8>>) {
    let lower = match start {
        Bound::Included(v) => v,
        Bound::Excluded(v) => prefix_successor(&v).unwrap_or_else(|| vec![0xFF; 512]),
        Bound::Unbounded => Vec::new(),
    };
    let upper = match end {
        Bound::Included(v) => prefix_successor(&v).map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Unbounded,
    };
    (lower, upper)
}
