//! Read and write transactions over models and maps. Every write keeps
//! every index in step with its record through `indexing`, checking before
//! it changes anything.

use std::borrow::Borrow;
use std::ops::{Bound, RangeBounds};

use crate::codec::key::{EncodeKey, KeyPrefix, encode_to_vec, prefix_successor};
use crate::codec::value;
use crate::engine::{RangeIter, Reader, Table, Writer};
use crate::error::{Error, Result};
use crate::index::{IndexEntries, IndexHandle, ParentIndex, UniqueIndex, describe_encoded};
use crate::indexing::{self, entries_of, index_value};
use crate::lock::{Owner, marker_key};
use crate::model::{ModelInfo, Persistent, check_key_len, check_value_len, describe_key};
use crate::store::{ModelTables, Shared};

/// A read transaction: a consistent snapshot of the whole store, given to
/// the closure of [`Store::read`](crate::Store::read).
pub struct ReadTx<'t> {
    shared: &'t Shared,
    txn: &'t crate::engine::ReadTxn<'t>,
}

/// A write transaction, given to the closure of
/// [`Store::write`](crate::Store::write): everything done through it is
/// committed together when the closure returns `Ok`, or not at all.
pub struct WriteTx<'t> {
    shared: &'t Shared,
    txn: &'t mut dyn Writer,
    /// The record-lock guard this transaction writes for, if any.
    owner: Option<Owner>,
    /// The thread that asked for the transaction (with group commit the
    /// closure may run on another writer's thread).
    caller: std::thread::ThreadId,
    /// Set when a record is locked by someone else: `Store::write` then
    /// waits and runs the transaction again.
    blocked: &'t mut Option<Error>,
    /// Models (by slot, below 128) whose catalog entry this transaction
    /// has found writable, so that a batch of writes checks it once.
    writable: u128,
    /// Set when an operation failed after changing the transaction: it
    /// can then only be rolled back (see `finish`).
    poisoned: Option<String>,
}

impl<'t> ReadTx<'t> {
    pub(crate) fn new(shared: &'t Shared, txn: &'t crate::engine::ReadTxn<'t>) -> Self {
        ReadTx { shared, txn }
    }

    fn reader(&self) -> &crate::engine::ReadTxn<'t> {
        self.txn
    }

    /// The raw reader, for admin work over stored bytes.
    pub(crate) fn raw(&self) -> &dyn Reader {
        self.txn
    }

    /// How many records of `M` an older model version wrote.
    pub(crate) fn count_older<M: Persistent>(&self) -> Result<u64> {
        let mut older = 0;
        for entry in self.txn.range(self.shared.tables::<M>()?.main, Bound::Unbounded, Bound::Unbounded)? {
            let (_, bytes) = entry?;
            if crate::codec::value::version_of(bytes, M::INFO.name)? < M::INFO.version {
                older += 1;
            }
        }
        Ok(older)
    }

    /// The tables of the model `info` describes, for checks across models.
    pub(crate) fn tables_of(&self, info: &ModelInfo) -> Result<&ModelTables> {
        self.shared.tables_of(info)
    }

    /// The tables of `M` and the raw reader, for checks over raw entries.
    pub(crate) fn parts<M: Persistent>(&self) -> Result<(&ModelTables, &dyn Reader)> {
        Ok((self.shared.tables::<M>()?, self.txn))
    }
}

impl<'t> WriteTx<'t> {
    pub(crate) fn new(
        shared: &'t Shared,
        txn: &'t mut dyn Writer,
        owner: Option<Owner>,
        caller: std::thread::ThreadId,
        blocked: &'t mut Option<Error>,
    ) -> Self {
        WriteTx { shared, txn, owner, caller, blocked, writable: 0, poisoned: None }
    }

    fn reader(&self) -> &dyn Writer {
        &*self.txn
    }

    /// Whether the transaction belongs to `store`'s environment.
    pub(crate) fn is_on(&self, store: &crate::Store) -> bool {
        std::ptr::eq(self.shared, store.shared())
    }

    /// The raw writer, for maps.
    pub(crate) fn raw_writer(&mut self) -> &mut dyn Writer {
        &mut *self.txn
    }

    /// The tables of `M` and the raw writer, for index builds.
    pub(crate) fn tables_and_writer<M: Persistent>(&mut self) -> Result<(&'t ModelTables, &mut dyn Writer)> {
        Ok((self.shared.tables::<M>()?, &mut *self.txn))
    }

    /// Fails if this program's indexes of `M` are not the store's (see
    /// `catalog`): its writes would leave the store's indexes behind.
    fn check_writable<M: Persistent>(&mut self, tables: &ModelTables) -> Result<()> {
        let slot = M::INFO.slot.index();
        let bit = u32::try_from(slot).ok().and_then(|slot| 1u128.checked_shl(slot)).unwrap_or(0);
        if self.writable & bit != 0 {
            return Ok(());
        }
        crate::catalog::check_writable(self.reader(), self.shared.catalog, tables)?;
        self.writable |= bit;
        Ok(())
    }
}

/// The query methods, identical on both transaction kinds; the bodies live
/// in the `query` module below.
macro_rules! read_methods {
    ($tx:ident) => {
        impl $tx<'_> {
            /// The record with this key, if any.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_txn_19_", stringify!($tx), "\")]")]
            /// # struct Item { #[persistent(key)] id: u32 }
            /// # let store = Store::temporary()?;
            /// # Item { id: 1 }.save(&store)?;
            /// let found = store.read(|tx| tx.load::<Item, _>(&1))?;
            /// assert!(found.is_some());
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn load<M, Q>(&self, key: &Q) -> Result<Option<M>>
            where
                M: Persistent,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                query::load(self.shared, self.reader(), key)
            }

            /// Whether a record with this key exists.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_q_exists_", stringify!($tx), "\")]")]
            /// # struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
            /// # let store = Store::temporary()?;
            /// # for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
            /// assert!(store.read(|tx| tx.exists::<Item, _>(&3))?);
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn exists<M, Q>(&self, key: &Q) -> Result<bool>
            where
                M: Persistent,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                let tables = self.shared.tables::<M>()?;
                Ok(self.reader().get(tables.main, &encode_to_vec(key))?.is_some())
            }

            /// The record whose unique index holds `value`, if any.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_q_load_by_", stringify!($tx), "\")]")]
            /// # struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
            /// # let store = Store::temporary()?;
            /// # for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
            /// let item = store.read(|tx| tx.load_by(Item::CODE, &104))?;
            /// assert_eq!(item.map(|i| i.id), Some(4));
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn load_by<M, V, Q>(&self, index: UniqueIndex<M, V>, value: &Q) -> Result<Option<M>>
            where
                M: Persistent,
                V: crate::Key + Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                let tables = self.shared.tables::<M>()?;
                crate::catalog::check_queryable(self.reader(), self.shared.catalog, tables, index.position())?;
                let table = tables.indexes[index.position()];
                match self.reader().get(table, &encode_to_vec(value))? {
                    Some(pk) => query::load_encoded(self.reader(), tables, pk),
                    None => Ok(None),
                }
            }

            /// Streams the records whose index holds `value`, in key order.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_txn_20_", stringify!($tx), "\")]")]
            /// # struct User { #[persistent(key)] id: u32, #[persistent(index)] team: u8 }
            /// # let store = Store::temporary()?;
            /// # for id in 0..10 { User { id, team: (id % 2) as u8 }.save(&store)?; }
            /// let odd = store.read(|tx| {
            ///     let mut n = 0;
            ///     for user in tx.scan_index(User::TEAM, &1)? {
            ///         assert_eq!(user?.team, 1);
            ///         n += 1;
            ///     }
            ///     Ok(n)
            /// })?;
            /// assert_eq!(odd, 5);
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn scan_index<H, Q>(&self, index: H, value: &Q) -> Result<impl Iterator<Item = Result<H::Model>> + '_>
            where
                H: IndexHandle,
                H::Value: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                let prefix = encode_to_vec(value);
                let upper = prefix_successor(&prefix);
                let exact = Some(prefix.clone());
                query::index_records::<H::Model, _>(self.shared, self.reader(), index.position(), prefix, upper, exact)
            }

            /// Streams the records whose parent index points at `parent_key`.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_q_children_user_", stringify!($tx), "\")]")]
            /// # struct User { #[persistent(key)] name: String }
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_q_children_post_", stringify!($tx), "\")]")]
            /// # struct Post { #[persistent(key)] id: u32, #[persistent(parent = User)] author: String }
            /// # let store = Store::temporary()?;
            /// # for id in 0..4 { Post { id, author: if id < 3 { "ada".into() } else { "bob".into() } }.save(&store)?; }
            /// let by_ada = store.read(|tx| Ok(tx.children(Post::AUTHOR, "ada")?.count()))?;
            /// assert_eq!(by_ada, 3);
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn children<M, P, Q>(
                &self,
                index: ParentIndex<M, P>,
                parent_key: &Q,
            ) -> Result<impl Iterator<Item = Result<M>> + '_>
            where
                M: Persistent,
                P: Persistent,
                P::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                self.scan_index(index, parent_key)
            }

            /// Streams the records whose index values fall in `range`, in
            /// index order.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_q_range_index_", stringify!($tx), "\")]")]
            /// # struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
            /// # let store = Store::temporary()?;
            /// # for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
            /// let ids: Vec<u32> = store.read(|tx| tx.range_index(Item::CODE, 101..103)?.map(|i| i.map(|i| i.id)).collect::<Result<_, _>>())?;
            /// assert_eq!(ids, [1, 2]);
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn range_index<H, R>(&self, index: H, range: R) -> Result<impl Iterator<Item = Result<H::Model>> + '_>
            where
                H: IndexHandle,
                R: RangeBounds<H::Value>,
            {
                let (lower, upper) = query::prefix_bounds(&range);
                let upper = match upper {
                    Bound::Unbounded => None,
                    Bound::Excluded(upper) => Some(upper),
                    Bound::Included(_) => unreachable!("prefix bounds exclude their upper end"),
                };
                query::index_records::<H::Model, _>(self.shared, self.reader(), index.position(), lower, upper, None)
            }

            /// Streams every record of model `M` in key order, in bounded memory.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_txn_21_", stringify!($tx), "\")]")]
            /// # struct Item { #[persistent(key)] id: u32 }
            /// # let store = Store::temporary()?;
            /// # for id in 0..3 { Item { id }.save(&store)?; }
            /// let total: u32 = store.read(|tx| tx.iter::<Item>()?.map(|i| Ok(i?.id)).sum())?;
            /// assert_eq!(total, 3);
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn iter<M: Persistent>(&self) -> Result<impl Iterator<Item = Result<M>> + '_> {
                self.range::<M, _>(..)
            }

            /// Streams the records whose keys fall in `range`.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_q_range_", stringify!($tx), "\")]")]
            /// # struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
            /// # let store = Store::temporary()?;
            /// # for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
            /// let ids: Vec<u32> = store.read(|tx| tx.range::<Item, _>(2..=3)?.map(|i| i.map(|i| i.id)).collect::<Result<_, _>>())?;
            /// assert_eq!(ids, [2, 3]);
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn range<M, R>(&self, range: R) -> Result<impl Iterator<Item = Result<M>> + '_>
            where
                M: Persistent,
                R: RangeBounds<M::Key>,
            {
                let tables = self.shared.tables::<M>()?;
                let lower = range.start_bound().map(encode_to_vec);
                let upper = range.end_bound().map(encode_to_vec);
                let entries = self.reader().range(tables.main, as_ref(&lower), as_ref(&upper))?;
                Ok(query::decode_records(entries))
            }

            /// Streams the records whose keys start with `prefix`.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_q_prefix_", stringify!($tx), "\")]")]
            /// # struct File { #[persistent(key)] path: String }
            /// # let store = Store::temporary()?;
            /// # for path in ["a/1", "a/2", "b/1"] { File { path: path.into() }.save(&store)?; }
            /// let in_a = store.read(|tx| Ok(tx.prefix::<File, _>("a/")?.count()))?;
            /// assert_eq!(in_a, 2);
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn prefix<M, P>(&self, prefix: &P) -> Result<impl Iterator<Item = Result<M>> + '_>
            where
                M: Persistent,
                P: KeyPrefix<M::Key> + ?Sized,
            {
                let tables = self.shared.tables::<M>()?;
                let mut lower = Vec::new();
                prefix.encode_prefix(&mut lower);
                let upper = prefix_successor(&lower);
                let upper = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                let entries = self.reader().range(tables.main, Bound::Included(&lower), upper)?;
                Ok(query::decode_records(entries))
            }

            /// The number of records of model `M`.
            ///
            /// ```
            /// # use serde::{Deserialize, Serialize};
            /// # use skyshelve::{Persistent, Store};
            /// # #[derive(Persistent, Serialize, Deserialize)]
            #[doc = concat!(" # #[persistent(name = \"doc_q_count_", stringify!($tx), "\")]")]
            /// # struct Item { #[persistent(key)] id: u32, #[persistent(index, unique)] code: u32, #[persistent(index)] tag: u8 }
            /// # let store = Store::temporary()?;
            /// # for id in 0..6 { Item { id, code: 100 + id, tag: (id % 2) as u8 }.save(&store)?; }
            /// assert_eq!(store.read(|tx| tx.count::<Item>())?, 6);
            /// # Ok::<(), skyshelve::Error>(())
            /// ```
            pub fn count<M: Persistent>(&self) -> Result<u64> {
                self.reader().len(self.shared.tables::<M>()?.main)
            }
        }
    };
}

read_methods!(ReadTx);
read_methods!(WriteTx);

/// A read or write transaction, for the model methods that work inside
/// either ([`Persistent::load_in`], [`Persistent::exists_in`]). Sealed.
pub trait Transaction: sealed::Sealed {
    #[doc(hidden)]
    fn load_record<M, Q>(&self, key: &Q) -> Result<Option<M>>
    where
        M: Persistent,
        M::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized;

    #[doc(hidden)]
    fn record_exists<M, Q>(&self, key: &Q) -> Result<bool>
    where
        M: Persistent,
        M::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized;

    #[doc(hidden)]
    fn map_value<K, V>(&self, map: &crate::Map<K, V>, key: &[u8]) -> Result<Option<V>>
    where
        K: crate::Key,
        V: serde::Serialize + serde::de::DeserializeOwned + 'static;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadTx<'_> {}
    impl Sealed for super::WriteTx<'_> {}
}

macro_rules! transaction {
    ($tx:ident) => {
        impl Transaction for $tx<'_> {
            fn load_record<M, Q>(&self, key: &Q) -> Result<Option<M>>
            where
                M: Persistent,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                self.load::<M, Q>(key)
            }

            fn record_exists<M, Q>(&self, key: &Q) -> Result<bool>
            where
                M: Persistent,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                self.exists::<M, Q>(key)
            }

            fn map_value<K, V>(&self, map: &crate::Map<K, V>, key: &[u8]) -> Result<Option<V>>
            where
                K: crate::Key,
                V: serde::Serialize + serde::de::DeserializeOwned + 'static,
            {
                if !std::ptr::eq(self.shared, map.store().shared()) {
                    return Err(map.other_store());
                }
                map.value_in(self.reader(), key)
            }
        }
    };
}

transaction!(ReadTx);
transaction!(WriteTx);

fn as_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    bound.as_ref().map(Vec::as_slice)
}

impl WriteTx<'_> {
    /// Inserts `record` or replaces the record with the same key.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug)]
    /// # #[persistent(name = "doc_writetx_save")]
    /// # struct Item { #[persistent(key)] id: u32, n: u32 }
    /// # let store = Store::temporary()?;
    /// # Item { id: 1, n: 0 }.save(&store)?;
    /// store.write(|tx| tx.save(&Item { id: 2, n: 5 }))?;
    /// assert_eq!(Item::load(&store, &2)?.unwrap().n, 5);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn save<M: Persistent>(&mut self, record: &M) -> Result<()> {
        let tables = self.shared.tables::<M>()?;
        let key = encode_primary::<M>(record.key())?;
        let old_entries = if M::INFO.indexes.is_empty() {
            self.refuse_newer::<M>(tables, &key)?;
            None
        } else {
            self.stored_entries::<M>(tables, &key)?
        };
        self.store_record(tables, &key, record, old_entries.as_ref())
    }

    /// Fails if the record under `key` was written by a newer model version:
    /// older code never overwrites it.
    fn refuse_newer<M: Persistent>(&self, tables: &ModelTables, key: &[u8]) -> Result<()> {
        let Some(bytes) = self.reader().get(tables.main, key)? else { return Ok(()) };
        let (stored, known) = (crate::codec::value::version_of(bytes, M::INFO.name)?, M::INFO.version);
        if stored > known { Err(Error::NewerVersion { model: M::INFO.name, stored, known }) } else { Ok(()) }
    }

    /// Inserts `record`; fails with [`Error::AlreadyExists`] if its key is taken.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug)]
    /// # #[persistent(name = "doc_writetx_insert")]
    /// # struct Item { #[persistent(key)] id: u32, n: u32 }
    /// # let store = Store::temporary()?;
    /// # Item { id: 1, n: 0 }.save(&store)?;
    /// let again = store.write(|tx| tx.insert(&Item { id: 1, n: 9 }));
    /// assert!(matches!(again, Err(skyshelve::Error::AlreadyExists { .. })));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn insert<M: Persistent>(&mut self, record: &M) -> Result<()> {
        let tables = self.shared.tables::<M>()?;
        let key = encode_primary::<M>(record.key())?;
        let write = self.prepare(tables, &key, record, None, UniqueCheck::OnPut)?;
        // One descent of the tree finds a taken key, or writes the record.
        if self.txn.put_new(tables.main, &key, &write.bytes)?.is_some() {
            return Err(Error::AlreadyExists { model: M::INFO.name, key: describe_key(record.key()) });
        }
        match self.add_new_entries::<M>(tables, &key, write.added) {
            Ok(()) => Ok(()),
            Err(Undone::Clean(clash)) => Err(clash),
            Err(Undone::Failed(err)) => self.poison_if_err(Err(err)),
        }
    }

    /// Adds the entries of a record just inserted under `key`, unique ones
    /// first with insert-if-absent puts (a clash is found in the same
    /// descent that would write); on a clash the record and the entries
    /// added so far are removed again, leaving the transaction as it was.
    fn add_new_entries<M: Persistent>(
        &mut self,
        tables: &ModelTables,
        key: &[u8],
        mut added: Vec<(usize, Vec<u8>)>,
    ) -> std::result::Result<(), Undone> {
        added.sort_by_key(|(position, _)| !M::INFO.indexes[*position].unique);
        let mut unique_added = Vec::new();
        for (position, index_key) in &added {
            let (info, table) = (&M::INFO.indexes[*position], tables.indexes[*position]);
            if !info.unique {
                self.txn.put(table, index_key, key).map_err(Undone::Failed)?;
                continue;
            }
            match self.txn.put_new(table, index_key, key).map_err(Undone::Failed)? {
                Some(holder) if holder != key => {
                    let clash = Error::UniqueViolation {
                        model: M::INFO.name,
                        index: info.name,
                        value: (info.describe)(index_key),
                    };
                    return self
                        .undo_insert(tables.main, key, &unique_added)
                        .map_or_else(|err| Err(Undone::Failed(err)), |()| Err(Undone::Clean(clash)));
                }
                Some(_) => {}
                None => unique_added.push((table, index_key.as_slice())),
            }
        }
        Ok(())
    }

    /// Removes a record just inserted and the unique entries added for it.
    fn undo_insert(&mut self, main: Table, key: &[u8], unique_added: &[(Table, &[u8])]) -> Result<()> {
        for &(table, index_key) in unique_added {
            self.txn.delete(table, index_key)?;
        }
        self.txn.delete(main, key).map(drop)
    }

    /// Deletes the record with this key; returns whether it existed.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug)]
    /// # #[persistent(name = "doc_writetx_delete")]
    /// # struct Item { #[persistent(key)] id: u32, n: u32 }
    /// # let store = Store::temporary()?;
    /// # Item { id: 1, n: 0 }.save(&store)?;
    /// assert!(store.write(|tx| tx.delete::<Item, _>(&1))?);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn delete<M, Q>(&mut self, key: &Q) -> Result<bool>
    where
        M: Persistent,
        M::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        self.delete_encoded::<M>(&encode_to_vec(key))
    }

    /// Rewrites every record of `M` written by an older model version in
    /// the current format, rebuilding its index entries, in this one
    /// transaction; see [`Persistent::migrate`] for the batched form.
    /// Returns how many were rewritten.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_writetx_migrate")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// # let store = Store::temporary()?;
    /// let rewritten = store.write(|tx| tx.migrate::<Item>(&mut |_| {}))?;
    /// assert_eq!(rewritten, 0);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn migrate<M: Persistent>(&mut self, progress: &mut dyn FnMut(crate::Progress)) -> Result<u64> {
        // One transaction sees every older record, so what it rewrote is the total.
        let rewritten = self.migrate_batch::<M>(None, usize::MAX)?.0;
        progress(crate::Progress { done: rewritten, total: Some(rewritten) });
        Ok(rewritten)
    }

    /// Rewrites up to `limit` records of `M` written by an older version,
    /// among those after key `after`. Returns how many, and the last key
    /// looked at when the limit was reached (`None`: no records remain).
    pub(crate) fn migrate_batch<M: Persistent>(
        &mut self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(u64, Option<Vec<u8>>)> {
        let tables = self.shared.tables::<M>()?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut older = Vec::new();
        for entry in self.reader().range(tables.main, lower, Bound::Unbounded)? {
            let (key, bytes) = entry?;
            if crate::codec::value::version_of(bytes, M::INFO.name)? < M::INFO.version {
                older.push(key.to_vec());
                if older.len() == limit {
                    break;
                }
            }
        }
        let rewritten = self.rewrite_older::<M>(tables, &older);
        self.poison_if_err(rewritten)?;
        let last = if older.len() == limit { older.last().cloned() } else { None };
        Ok((older.len() as u64, last))
    }

    /// Rewrites the records under `keys`, written by an older version, with
    /// index entries this code computes. The entries older code wrote go
    /// first, in one pass per index, so a failure part-way cannot be undone
    /// alone: the caller poisons the transaction.
    fn rewrite_older<M: Persistent>(&mut self, tables: &ModelTables, keys: &[Vec<u8>]) -> Result<()> {
        self.remove_entries_of(tables, &keys.iter().map(Vec::as_slice).collect())?;
        for key in keys {
            let Some((_, record)) = query::load_stored::<M>(self.reader(), tables, key)? else { continue };
            self.store_record(tables, key, &record, None)?;
        }
        Ok(())
    }

    /// Passes on the result of a step that may fail after changing the
    /// transaction; a failure poisons the transaction, so that it is rolled
    /// back whatever the caller does with the error (see `finish`).
    fn poison_if_err<R>(&mut self, result: Result<R>) -> Result<R> {
        if let Err(err) = &result {
            self.poisoned.get_or_insert_with(|| err.to_string());
        }
        result
    }

    /// The transaction's outcome once the caller's closure has returned
    /// `outcome`: a poisoned transaction is aborted and fails even when the
    /// closure went on past the error that poisoned it.
    pub(crate) fn finish<R, E: From<Error>>(self, outcome: Result<R, E>) -> Result<R, E> {
        match (self.poisoned, outcome) {
            (Some(reason), Ok(_)) => {
                self.txn.doom();
                Err(E::from(Error::RolledBack { reason }))
            }
            (_, outcome) => outcome,
        }
    }

    /// `delete` by encoded key, for record-lock guards.
    pub(crate) fn delete_encoded<M: Persistent>(&mut self, key: &[u8]) -> Result<bool> {
        let tables = self.shared.tables::<M>()?;
        if self.reader().get(tables.main, key)?.is_none() {
            return Ok(false);
        }
        let entries = self.stored_entries::<M>(tables, key)?.unwrap_or_default();
        self.refuse_if_restricted::<M>(tables, key)?;
        self.remove_record::<M>(tables, key, &entries)?;
        // The record is gone first, so that a cycle of cascades ends.
        let cascaded = self.cascade_delete(tables, key);
        self.poison_if_err(cascaded)?;
        Ok(true)
    }

    /// Fails, changing nothing, if a child points at the record under
    /// `key` through a parent index marked `on_delete = restrict`.
    fn refuse_if_restricted<M: Persistent>(&self, tables: &ModelTables, key: &[u8]) -> Result<()> {
        for referrer in tables.referrers.iter().filter(|r| r.on_delete == crate::OnDelete::Restrict) {
            if !self.children_of(referrer, key)?.is_empty() {
                let (model, child) = (M::INFO.name, referrer.child.name);
                return Err(Error::Restricted { model, key: describe_encoded::<M::Key>(key), child });
            }
        }
        Ok(())
    }

    /// Deletes the children of the record under `key` whose parent index
    /// is marked `on_delete = cascade`, each by its own model's rules.
    fn cascade_delete(&mut self, tables: &ModelTables, key: &[u8]) -> Result<()> {
        for referrer in tables.referrers.iter().filter(|r| r.on_delete == crate::OnDelete::Cascade) {
            for child in self.children_of(referrer, key)? {
                (referrer.child.delete)(self, &child)?;
            }
        }
        Ok(())
    }

    /// The keys of the records whose parent index `referrer` holds `parent`.
    fn children_of(&self, referrer: &crate::store::Referrer, parent: &[u8]) -> Result<Vec<Vec<u8>>> {
        let child_tables = self.shared.tables_of(referrer.child)?;
        let table = child_tables.indexes[referrer.position];
        let upper = prefix_successor(parent);
        let upper = upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let unique = referrer.child.indexes[referrer.position].unique;
        let mut children = Vec::new();
        for entry in self.reader().range(table, Bound::Included(parent), upper)? {
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
    fn check_parents_exist<M: Persistent>(&self, added: &[(usize, Vec<u8>)], key: &[u8]) -> Result<()> {
        for (position, index_key) in added {
            let info = &M::INFO.indexes[*position];
            let Some(parent) = info.parent().filter(|_| info.must_exist) else { continue };
            let value = indexing::index_value::<M>(*position, index_key, key);
            if self.reader().get(self.shared.tables_of(parent)?.main, value)?.is_none() {
                let (model, index) = (M::INFO.name, info.name);
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
    fn stored_entries<M: Persistent>(&self, tables: &ModelTables, key: &[u8]) -> Result<Option<IndexEntries>> {
        match query::load_stored::<M>(self.reader(), tables, key) {
            Ok(Some((version, old))) if version == M::INFO.version => Ok(Some(entries_of(&old))),
            Ok(Some(_)) | Err(Error::Decode { .. }) => self.entries_pointing_at::<M>(tables, key).map(Some),
            Ok(None) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Every index entry of `M` pointing at `key`; see `indexing`.
    fn entries_pointing_at<M: Persistent>(&self, tables: &ModelTables, key: &[u8]) -> Result<IndexEntries> {
        indexing::entries_pointing_at::<M>(self.reader(), tables, key)
    }

    /// Removes every index entry pointing at one of `keys`; see `indexing`.
    fn remove_entries_of(&mut self, tables: &ModelTables, keys: &std::collections::HashSet<&[u8]>) -> Result<()> {
        indexing::remove_entries_of(&mut *self.txn, tables, keys)
    }

    /// Reads the record, applies `change` and saves it; see
    /// [`Persistent::update`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug)]
    /// # #[persistent(name = "doc_writetx_update")]
    /// # struct Item { #[persistent(key)] id: u32, n: u32 }
    /// # let store = Store::temporary()?;
    /// # Item { id: 1, n: 0 }.save(&store)?;
    /// let item = store.write(|tx| tx.update::<Item, _, _>(&1, |i| i.n += 1))?;
    /// assert_eq!(item.n, 1);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn update<M, Q, F>(&mut self, key: &Q, change: F) -> Result<M>
    where
        M: Persistent,
        M::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
        F: FnOnce(&mut M),
    {
        let tables = self.shared.tables::<M>()?;
        let encoded = encode_to_vec(key);
        let Some((version, record)) = query::load_stored::<M>(self.reader(), tables, &encoded)? else {
            return Err(Error::NotFound { model: M::INFO.name, key: describe_key(key) });
        };
        self.rewrite(tables, &encoded, record, Some(version), change)
    }

    /// Reads the record with the key of `default()` (or takes `default()`
    /// when there is none), applies `change` and saves it.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug)]
    /// # #[persistent(name = "doc_writetx_upsert")]
    /// # struct Item { #[persistent(key)] id: u32, n: u32 }
    /// # let store = Store::temporary()?;
    /// # Item { id: 1, n: 0 }.save(&store)?;
    /// let item = store.write(|tx| tx.upsert(|| Item { id: 7, n: 0 }, |i| i.n += 1))?;
    /// assert_eq!(item.n, 1);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn upsert<M, D, F>(&mut self, default: D, change: F) -> Result<M>
    where
        M: Persistent,
        D: FnOnce() -> M,
        F: FnOnce(&mut M),
    {
        let tables = self.shared.tables::<M>()?;
        let fresh = default();
        let key = encode_primary::<M>(fresh.key())?;
        match query::load_stored::<M>(self.reader(), tables, &key)? {
            Some((version, stored)) => self.rewrite(tables, &key, stored, Some(version), change),
            None => self.rewrite(tables, &key, fresh, None, change),
        }
    }

    /// Applies `change` to `record` (stored under `key` when `stored`) and
    /// writes the result. A change of key moves the record.
    fn rewrite<M, F>(
        &mut self,
        tables: &ModelTables,
        key: &[u8],
        mut record: M,
        stored_version: Option<u16>,
        change: F,
    ) -> Result<M>
    where
        M: Persistent,
        F: FnOnce(&mut M),
    {
        let old_entries = match stored_version {
            Some(version) if version == M::INFO.version => Some(entries_of(&record)),
            // Upgraded from an older version: its entries came from older code.
            Some(_) => Some(self.entries_pointing_at::<M>(tables, key)?),
            None => None,
        };
        change(&mut record);
        let new_key = encode_primary::<M>(record.key())?;
        match old_entries {
            _ if new_key == key => self.store_record(tables, key, &record, old_entries.as_ref())?,
            Some(old_entries) => self.move_record(tables, key, &old_entries, &new_key, &record)?,
            None => self.insert(&record)?,
        }
        Ok(record)
    }

    /// Moves the record stored under `old_key` to `new_key`. Every check of
    /// the moved record runs before the old one is removed, so a refused
    /// move leaves both keys as they were.
    fn move_record<M: Persistent>(
        &mut self,
        tables: &ModelTables,
        old_key: &[u8],
        old_entries: &IndexEntries,
        new_key: &[u8],
        record: &M,
    ) -> Result<()> {
        if self.reader().get(tables.main, new_key)?.is_some() {
            return Err(Error::AlreadyExists { model: M::INFO.name, key: describe_key(record.key()) });
        }
        self.check_unlocked::<M>(old_key)?;
        let write = self.prepare(tables, new_key, record, None, UniqueCheck::LookUp { moving_from: Some(old_key) })?;
        self.remove_record::<M>(tables, old_key, old_entries)?;
        self.apply::<M>(tables, new_key, write)
    }

    /// Writes `record` under `key`, moving its index entries from
    /// `old_entries` (the stored record's, if any) to its own. Every check
    /// runs before the first write, so a failure leaves the transaction
    /// untouched.
    fn store_record<M: Persistent>(
        &mut self,
        tables: &ModelTables,
        key: &[u8],
        record: &M,
        old_entries: Option<&IndexEntries>,
    ) -> Result<()> {
        let write = self.prepare(tables, key, record, old_entries, UniqueCheck::LookUp { moving_from: None })?;
        self.apply::<M>(tables, key, write)
    }

    /// Runs every check of writing `record` under `key` and computes what
    /// the write changes, without changing anything (unique values are
    /// checked as `unique` says).
    fn prepare<'o, M: Persistent>(
        &mut self,
        tables: &ModelTables,
        key: &[u8],
        record: &M,
        old_entries: Option<&'o IndexEntries>,
        unique: UniqueCheck<'_>,
    ) -> Result<PreparedWrite<'o>> {
        self.check_writable::<M>(tables)?;
        self.check_unlocked::<M>(key)?;
        // Most records fit; bincode would otherwise grow the buffer several times.
        let mut bytes = Vec::with_capacity(256);
        value::encode_into(record, M::INFO.version, M::INFO.name, &mut bytes)?;
        check_value_len(|| format!("{} record {:?}", M::INFO.name, record.key()), bytes.len())?;
        if !M::READS_BACK {
            value::check_reads_back(record, &bytes, M::INFO.name)?;
        }
        let new_entries = entries_of(record);
        if old_entries.is_some_and(|old| old.same_as(&new_entries)) {
            // The usual update: no indexed value changed, nothing to diff.
            return Ok(PreparedWrite { bytes, added: Vec::new(), removed: Vec::new() });
        }
        let old = old_entries.map(IndexEntries::entries).unwrap_or_default();
        let new = new_entries.entries();
        let added: Vec<_> = new.iter().filter(|e| old.binary_search(e).is_err()).collect();
        let removed = old.iter().filter(|e| new.binary_search(e).is_err()).copied().collect();
        let added = self.check_added::<M>(tables, key, &added, unique)?;
        self.check_parents_exist::<M>(&added, key)?;
        Ok(PreparedWrite { bytes, added, removed })
    }

    /// Carries out a write that `prepare` checked.
    fn apply<M: Persistent>(&mut self, tables: &ModelTables, key: &[u8], write: PreparedWrite<'_>) -> Result<()> {
        for (position, value) in write.removed {
            self.remove_entry::<M>(tables, position, value, key)?;
        }
        for (position, index_key) in write.added {
            self.txn.put(tables.indexes[position], &index_key, key)?;
        }
        self.txn.put(tables.main, key, &write.bytes)
    }

    /// Checks lengths and unique constraints of new index entries and
    /// returns their index keys.
    fn check_added<M: Persistent>(
        &self,
        tables: &ModelTables,
        key: &[u8],
        added: &[&(usize, &[u8])],
        unique: UniqueCheck<'_>,
    ) -> Result<Vec<(usize, Vec<u8>)>> {
        let mut keys = Vec::with_capacity(added.len());
        for &&(position, value) in added {
            let index_key = match unique {
                UniqueCheck::LookUp { moving_from } => {
                    indexing::check_entry::<M>(self.reader(), tables, position, value, key, moving_from)?
                }
                UniqueCheck::OnPut => indexing::checked_key::<M>(position, value, key)?,
            };
            keys.push((position, index_key));
        }
        Ok(keys)
    }

    /// Fails (and dooms the transaction) if a record lock on `key` is held
    /// by anyone but this transaction's guard; clears locks of dead holders.
    fn check_unlocked<M: Persistent>(&mut self, key: &[u8]) -> Result<()> {
        if self.txn.len(self.shared.lock_table)? == 0 {
            return Ok(()); // the usual case, without building the marker key
        }
        let marker = marker_key(M::INFO.name, key);
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
            return Err(Error::LockedByThisThread { model: M::INFO.name, key: describe_encoded::<M::Key>(key) });
        }
        if holder.is_some_and(|holder| self.shared.locks.is_alive(holder)) {
            let locked = || Error::Locked { model: M::INFO.name, key: describe_encoded::<M::Key>(key) };
            *self.blocked = Some(locked());
            self.txn.doom();
            return Err(locked());
        }
        self.txn.delete(self.shared.lock_table, &marker)?;
        Ok(())
    }

    /// Deletes the record under `key` and its index entries.
    fn remove_record<M: Persistent>(&mut self, tables: &ModelTables, key: &[u8], entries: &IndexEntries) -> Result<()> {
        self.check_writable::<M>(tables)?;
        self.check_unlocked::<M>(key)?;
        for (position, value) in entries.entries() {
            self.remove_entry::<M>(tables, position, value, key)?;
        }
        self.txn.delete(tables.main, key)?;
        Ok(())
    }

    /// Removes the entry of the record under `key` for `value`; see `indexing`.
    fn remove_entry<M: Persistent>(
        &mut self,
        tables: &ModelTables,
        position: usize,
        value: &[u8],
        key: &[u8],
    ) -> Result<()> {
        indexing::remove_entry::<M>(&mut *self.txn, tables, position, value, key)
    }
}

fn encode_primary<M: Persistent>(key: &M::Key) -> Result<Vec<u8>> {
    let encoded = encode_to_vec(key);
    check_key_len(|| format!("{} key {key:?}", M::INFO.name), encoded.len())?;
    Ok(encoded)
}

/// How `prepare` checks the unique values a write adds.
#[derive(Clone, Copy)]
enum UniqueCheck<'k> {
    /// Look each one up; a record moving away from `moving_from` (a key
    /// move) may take its own values with it.
    LookUp { moving_from: Option<&'k [u8]> },
    /// Leave it to the insert-if-absent puts of `add_new_entries`.
    OnPut,
}

/// Why `add_new_entries` gave up.
enum Undone {
    /// A unique clash; the insert was undone, the transaction is as it was.
    Clean(Error),
    /// The engine failed part-way: the transaction cannot be trusted.
    Failed(Error),
}

/// A checked write of one record: everything it changes, computed before
/// anything is changed.
struct PreparedWrite<'o> {
    /// The stored value.
    bytes: Vec<u8>,
    /// Index keys to add, by index position.
    added: Vec<(usize, Vec<u8>)>,
    /// Values of the old record's entries that the new record drops.
    removed: Vec<(usize, &'o [u8])>,
}

/// Query bodies shared by `ReadTx` and `WriteTx`.
mod query {
    use super::*;

    pub fn load<M, Q>(shared: &Shared, txn: &(impl Reader + ?Sized), key: &Q) -> Result<Option<M>>
    where
        M: Persistent,
        Q: EncodeKey + ?Sized,
    {
        load_encoded(txn, shared.tables::<M>()?, &encode_to_vec(key))
    }

    /// The record under `key` and the model version that wrote it.
    pub fn load_stored<M: Persistent>(
        txn: &(impl Reader + ?Sized),
        tables: &ModelTables,
        key: &[u8],
    ) -> Result<Option<(u16, M)>> {
        txn.get(tables.main, key)?.map(crate::model::decode_record::<M>).transpose()
    }

    pub fn load_encoded<M: Persistent>(
        txn: &(impl Reader + ?Sized),
        tables: &ModelTables,
        key: &[u8],
    ) -> Result<Option<M>> {
        match txn.get(tables.main, key)? {
            Some(bytes) => crate::model::decode_record::<M>(bytes).map(|(_, record)| Some(record)),
            None => Ok(None),
        }
    }

    pub fn decode_records<'a, M: Persistent>(entries: RangeIter<'a>) -> impl Iterator<Item = Result<M>> + 'a {
        entries.map(|entry| {
            let (_, bytes) = entry?;
            crate::model::decode_record::<M>(bytes).map(|(_, record)| record)
        })
    }

    /// Streams the records of the index entries from `lower` up to (not
    /// including) `upper`; with `exact`, only those whose value is exactly
    /// that encoding. The byte range alone would also hold values whose
    /// encoding merely starts with it, should a custom key encoding break
    /// the prefix-free rule.
    pub fn index_records<'a, M: Persistent, T: Reader + ?Sized>(
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
        Ok(entries.filter_map(move |entry| {
            let (entry_key, primary) = match entry {
                Ok(entry) => entry,
                Err(err) => return Some(Err(err)),
            };
            if exact.as_deref().is_some_and(|value| index_value::<M>(position, entry_key, primary) != value) {
                return None;
            }
            Some(match txn.get(main, primary) {
                Ok(Some(bytes)) => crate::model::decode_record::<M>(bytes).map(|(_, record)| record),
                Ok(None) => Err(Error::Decode {
                    what: format!("index of {}", M::INFO.name),
                    reason: "index entry points at a missing record".into(),
                }),
                Err(err) => Err(err),
            })
        }))
    }

    /// Byte bounds covering every index entry whose value lies in `range`,
    /// whatever primary key follows the value.
    pub fn prefix_bounds<V: EncodeKey, R: RangeBounds<V>>(range: &R) -> (Vec<u8>, Bound<Vec<u8>>) {
        let lower = match range.start_bound() {
            Bound::Included(v) => encode_to_vec(v),
            Bound::Excluded(v) => prefix_successor(&encode_to_vec(v)).unwrap_or_else(|| vec![0xFF; 512]),
            Bound::Unbounded => Vec::new(),
        };
        let upper = match range.end_bound() {
            Bound::Included(v) => prefix_successor(&encode_to_vec(v)).map_or(Bound::Unbounded, Bound::Excluded),
            Bound::Excluded(v) => Bound::Excluded(encode_to_vec(v)),
            Bound::Unbounded => Bound::Unbounded,
        };
        (lower, upper)
    }
}
