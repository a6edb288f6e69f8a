//! `Persistent`: what users call on a model. Implemented for every type
//! that implements `Model` (the derive's contract, `model.rs`): each
//! method runs in a transaction of its own through `Store` and `txn/`.

use std::borrow::Borrow;
use std::time::Duration;

use crate::codec::key::{EncodeKey, Key, KeyPrefix, encode_to_vec};
use crate::error::Result;
use crate::index::{IndexHandle, ParentIndex, UniqueIndex};
use crate::lock::RecordLock;
use crate::model::Model;
use crate::store::Store;
use crate::verify::ModelReport;

/// A record type stored by skyshelve: `#[derive(Persistent)]` implements
/// [`Model`](crate::Model) for the type, and every `Model` has these
/// methods. Each runs in a transaction of its own (use [`Store::read`] /
/// [`Store::write`] to group several).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use skyshelve::{Persistent, Store};
///
/// #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
/// # #[persistent(name = "doc_model_2")]
/// struct User {
///     #[persistent(key)]
///     name: String,
///     #[persistent(index, unique)]
///     email: String,
/// }
///
/// let store = Store::temporary()?;
/// User { name: "ada".into(), email: "ada@example.com".into() }.save(&store)?;
/// let ada = User::load_by(&store, User::EMAIL, "ada@example.com")?.unwrap();
/// assert_eq!(ada.name, "ada");
/// # Ok::<(), skyshelve::Error>(())
/// ```
pub trait Persistent: Model {
    /// The record's key.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::Persistent;
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_persistent_key")]
    /// struct Item { #[persistent(key)] id: u32 }
    ///
    /// assert_eq!(Item { id: 7 }.key(), &7);
    /// ```
    fn key(&self) -> &Self::Key {
        self.record_key()
    }

    /// Inserts the record or replaces the one with the same key.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_3")]
    /// # struct Item { #[persistent(key)] id: u32, name: String }
    /// # let store = Store::temporary()?;
    /// Item { id: 1, name: "a".into() }.save(&store)?;
    /// Item { id: 1, name: "b".into() }.save(&store)?;
    /// assert_eq!(Item::load(&store, &1)?.unwrap().name, "b");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn save(&self, store: &Store) -> Result<()> {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "save");
        store.write(|tx| tx.save(self))
    }

    /// Inserts the record; fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists) if its key is taken.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Error, Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_4")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// # let store = Store::temporary()?;
    /// Item { id: 1 }.insert(&store)?;
    /// assert!(matches!(Item { id: 1 }.insert(&store), Err(Error::AlreadyExists { .. })));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn insert(&self, store: &Store) -> Result<()> {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "insert");
        store.write(|tx| tx.insert(self))
    }

    /// A paged query over the model's keys, in key order: add a prefix, a
    /// range, `reverse`, a `limit`, and resume `after` a page's cursor
    /// (see [`Query`](crate::Query)).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_query")]
    /// struct Message { #[persistent(key)] at: (String, u64), text: String }
    ///
    /// let store = Store::temporary()?;
    /// for offset in 0..10 {
    ///     Message { at: ("chat".into(), offset), text: format!("m{offset}") }.save(&store)?;
    /// }
    /// let page = Message::query().prefix(&("chat",)).range(("chat".to_string(), 4)..).limit(3).fetch(&store)?;
    /// assert_eq!(page.records.iter().map(|m| m.at.1).collect::<Vec<_>>(), [4, 5, 6]);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    fn query() -> crate::Query<Self, Self::Key> {
        crate::query::over_keys()
    }

    /// A paged query over the values of one index, in value order (records
    /// with equal values by key); see [`Query`](crate::Query).
    #[must_use]
    fn query_by<H>(index: H) -> crate::Query<Self, H::Value>
    where
        H: IndexHandle<Model = Self>,
    {
        crate::query::over_index(index)
    }

    /// A handle that waits for commits that wrote records of this model,
    /// made by any thread of any process (see [`Watch`](crate::Watch)).
    /// A few models share each wake-up counter, so a wait may also end for
    /// another model's commit; never does one miss a commit of this model.
    fn watch(store: &Store) -> Result<crate::Watch> {
        let topic = crate::engine::topic_of(Self::INFO.name);
        Ok(crate::Watch::new(store.shared().engine.notifier()?, Some(topic)))
    }

    /// Inserts the record after giving each of its `#[persistent(sequence)]`
    /// fields the next number of its sequence, and returns the key (the
    /// record keeps the numbers too). Numbers come from the store, in the
    /// same transaction as the insert: strictly increasing across every
    /// thread and process, never issued twice, not even after a delete or
    /// a crash. A model with no sequence field is simply inserted.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_append")]
    /// struct Event {
    ///     #[persistent(key, sequence)]
    ///     id: u64,
    ///     body: String,
    /// }
    ///
    /// let store = Store::temporary()?;
    /// let first = Event { id: 0, body: "created".into() }.append(&store)?;
    /// let mut second = Event { id: 0, body: "renamed".into() };
    /// assert_eq!((first, second.append(&store)?, second.id), (1, 2, 2));
    /// Event::delete(&store, &2)?;
    /// assert_eq!(Event { id: 0, body: "again".into() }.append(&store)?, 3);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn append(&mut self, store: &Store) -> Result<Self::Key>
    where
        Self::Key: Clone,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "append");
        store.write(|tx| tx.append(&mut *self).map(drop))?;
        Ok(self.key().clone())
    }

    /// The kept versions of the record with this key, newest first, for a
    /// model declared with `#[persistent(history = N)]`: the current
    /// version (or the tombstone of a deletion) and up to N before it,
    /// each with its position, its time and the change that wrote it.
    /// Empty for a key no kept change touched; fails with
    /// [`Error::HistoryNotKept`](crate::Error::HistoryNotKept) for a model without history. Inside a
    /// transaction, [`ReadTx::history`](crate::ReadTx::history) streams.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// use skyshelve::{Change, Persistent, Store};
    ///
    /// #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
    /// #[persistent(history = 10)]
    /// # #[persistent(name = "doc_model_history")]
    /// struct Price {
    ///     #[persistent(key)]
    ///     item: String,
    ///     cents: u32,
    /// }
    ///
    /// let store = Store::temporary()?;
    /// Price { item: "tea".into(), cents: 300 }.save(&store)?;
    /// Price::update(&store, "tea", |p| p.cents = 350)?;
    /// Price::delete(&store, "tea")?;
    ///
    /// let history = Price::history(&store, "tea")?;
    /// let changes: Vec<Change> = history.iter().map(|v| v.change).collect();
    /// assert_eq!(changes, [Change::Deleted, Change::Updated, Change::Created]);
    /// assert_eq!(history[1].record.as_ref().map(|p| p.cents), Some(350));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn history<Q>(store: &Store, key: &Q) -> Result<Vec<crate::Version<Self>>>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "history");
        store.read(|tx| tx.history::<Self, Q>(key)?.collect())
    }

    /// The record with this key as it was at `moment` — a time
    /// (`SystemTime`, by the writers' clocks) or an
    /// [`AsOf::Position`](crate::AsOf) — from the kept history: `None`
    /// if it did not exist then. Fails with [`Error::BeforeHistory`](crate::Error::BeforeHistory) when
    /// the kept versions do not reach back to `moment`.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # use std::time::{Duration, SystemTime};
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// #[persistent(history = 10)]
    /// # #[persistent(name = "doc_model_as_of")]
    /// struct Price {
    ///     #[persistent(key)]
    ///     item: String,
    ///     cents: u32,
    /// }
    ///
    /// let store = Store::temporary()?;
    /// let before = SystemTime::now() - Duration::from_secs(1);
    /// Price { item: "tea".into(), cents: 300 }.save(&store)?;
    /// let first = Price::history(&store, "tea")?[0].position;
    /// Price::update(&store, "tea", |p| p.cents = 350)?;
    ///
    /// assert!(Price::as_of(&store, "tea", before)?.is_none());
    /// let then = Price::as_of(&store, "tea", skyshelve::AsOf::Position(first))?;
    /// assert_eq!(then.map(|p| p.cents), Some(300));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn as_of<Q>(store: &Store, key: &Q, moment: impl Into<crate::AsOf>) -> Result<Option<Self>>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "as_of");
        let moment = moment.into();
        store.read(|tx| tx.as_of::<Self, Q>(key, moment))
    }

    /// Removes the versions `trim` names from every record's history —
    /// beyond a count, older than a moment, or both — in transactions of
    /// about a thousand versions, so other writers are never held up for
    /// long. A live record's current version always stays. Returns how
    /// many versions were removed.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store, Trim};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_trim_history", history = 10)]
    /// # struct Price { #[persistent(key)] item: String, cents: u32 }
    /// let store = Store::temporary()?;
    /// for cents in [300, 320, 350] {
    ///     Price { item: "tea".into(), cents }.save(&store)?;
    /// }
    /// assert_eq!(Price::trim_history(&store, Trim::default().keep(1))?, 2);
    /// assert_eq!(Price::history(&store, "tea")?.len(), 1);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn trim_history(store: &Store, trim: crate::Trim) -> Result<u64> {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "trim_history");
        match crate::history::table_of::<Self>(store.shared())? {
            Some(table) => crate::history::trim_model(store.shared(), table, trim),
            None => Ok(0),
        }
    }

    /// The record with this key, if any.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_5")]
    /// # struct Item { #[persistent(key)] name: String }
    /// # let store = Store::temporary()?;
    /// Item { name: "a".into() }.save(&store)?;
    /// assert!(Item::load(&store, "a")?.is_some());
    /// assert!(Item::load(&store, "b")?.is_none());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn load<Q>(store: &Store, key: &Q) -> Result<Option<Self>>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "load");
        store.read(|tx| tx.load::<Self, Q>(key))
    }

    /// Whether a record with this key exists (without decoding it).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_6")]
    /// # struct Item { #[persistent(key)] id: u64 }
    /// # let store = Store::temporary()?;
    /// Item { id: 3 }.save(&store)?;
    /// assert!(Item::exists(&store, &3)?);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn exists<Q>(store: &Store, key: &Q) -> Result<bool>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "exists");
        store.read(|tx| tx.exists::<Self, Q>(key))
    }

    /// [`load`](Persistent::load) inside a transaction, read or write: a
    /// write transaction sees its own writes. With `exists_in`,
    /// `update_in` and `delete_in`, the forms of the model methods that
    /// name the model, so a transaction needs no type annotation.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize, Debug)]
    /// # #[persistent(name = "doc_model_in")]
    /// # struct User { #[persistent(key)] name: String, logins: u32 }
    /// # let store = Store::temporary()?;
    /// # User { name: "ada".into(), logins: 0 }.save(&store)?;
    /// # User { name: "bob".into(), logins: 0 }.save(&store)?;
    /// store.write(|tx| {
    ///     User::update_in(tx, "ada", |u| u.logins += 1)?;
    ///     User::delete_in(tx, "bob")?;
    ///     assert!(!User::exists_in(tx, "bob")?);
    ///     assert_eq!(User::load_in(tx, "ada")?.unwrap().logins, 1);
    ///     Ok(())
    /// })?;
    /// let ada = store.read(|tx| User::load_in(tx, "ada"))?;
    /// assert_eq!(ada.unwrap().logins, 1);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn load_in<T, Q>(tx: &T, key: &Q) -> Result<Option<Self>>
    where
        T: crate::Transaction,
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        tx.load_record::<Self, Q>(key)
    }

    /// [`exists`](Persistent::exists) inside a transaction; see
    /// [`load_in`](Persistent::load_in).
    fn exists_in<T, Q>(tx: &T, key: &Q) -> Result<bool>
    where
        T: crate::Transaction,
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        tx.record_exists::<Self, Q>(key)
    }

    /// [`delete`](Persistent::delete) inside a write transaction; see
    /// [`load_in`](Persistent::load_in).
    fn delete_in<Q>(tx: &mut crate::WriteTx<'_>, key: &Q) -> Result<bool>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        tx.delete::<Self, Q>(key)
    }

    /// [`update`](Persistent::update) inside a write transaction; see
    /// [`load_in`](Persistent::load_in).
    fn update_in<Q, F>(tx: &mut crate::WriteTx<'_>, key: &Q, change: F) -> Result<Self>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
        F: FnOnce(&mut Self),
    {
        tx.update::<Self, Q, F>(key, change)
    }

    /// Deletes the record with this key and its index entries; returns
    /// whether it existed.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_7")]
    /// # struct Item { #[persistent(key)] id: u64 }
    /// # let store = Store::temporary()?;
    /// Item { id: 3 }.save(&store)?;
    /// assert!(Item::delete(&store, &3)?);
    /// assert!(!Item::delete(&store, &3)?);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn delete<Q>(store: &Store, key: &Q) -> Result<bool>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + Sync + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "delete");
        store.write(|tx| tx.delete::<Self, Q>(key))
    }

    /// Atomically reads the record, lets `change` modify it and saves it,
    /// all in one write transaction; fails with [`Error::NotFound`](crate::Error::NotFound) if
    /// there is no such record. Returns the saved record.
    ///
    /// `change` may run more than once if the transaction has to be
    /// retried (map growth); each run starts from the stored record.
    ///
    /// If `change` changes the key field, the record moves to the new key:
    /// the old key is left empty, or, when the new key is taken, nothing
    /// changes and the update fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Error, Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_8")]
    /// # struct Counter { #[persistent(key)] name: String, hits: u64 }
    /// # let store = Store::temporary()?;
    /// Counter { name: "home".into(), hits: 0 }.save(&store)?;
    /// let after = Counter::update(&store, "home", |c| c.hits += 1)?;
    /// assert_eq!(after.hits, 1);
    ///
    /// Counter::update(&store, "home", |c| c.name = "start".into())?; // moves the record
    /// assert!(!Counter::exists(&store, "home")? && Counter::exists(&store, "start")?);
    /// Counter { name: "about".into(), hits: 0 }.save(&store)?;
    /// let taken = Counter::update(&store, "start", |c| c.name = "about".into());
    /// assert!(matches!(taken, Err(Error::AlreadyExists { .. })));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn update<Q, F>(store: &Store, key: &Q, mut change: F) -> Result<Self>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + Sync + ?Sized,
        F: FnMut(&mut Self) + Send,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "update");
        store.write(|tx| tx.update::<Self, Q, _>(key, &mut change))
    }

    /// Like [`update`](Persistent::update), but starts from `default()`
    /// when no record has the default's key: the way to count things that
    /// may not exist yet.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_9")]
    /// # struct Counter { #[persistent(key)] name: String, hits: u64 }
    /// # let store = Store::temporary()?;
    /// let new = || Counter { name: "home".into(), hits: 0 };
    /// Counter::upsert(&store, new, |c| c.hits += 1)?;
    /// let after = Counter::upsert(&store, new, |c| c.hits += 1)?;
    /// assert_eq!(after.hits, 2);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn upsert<D, F>(store: &Store, mut default: D, mut change: F) -> Result<Self>
    where
        D: FnMut() -> Self + Send,
        F: FnMut(&mut Self) + Send,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "upsert");
        store.write(|tx| tx.upsert(&mut default, &mut change))
    }

    /// The record whose unique index `index` holds `value`, if any.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_10")]
    /// # struct User { #[persistent(key)] id: u32, #[persistent(index, unique)] email: String }
    /// # let store = Store::temporary()?;
    /// User { id: 1, email: "a@x".into() }.save(&store)?;
    /// assert_eq!(User::load_by(&store, User::EMAIL, "a@x")?.map(|u| u.id), Some(1));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn load_by<V, Q>(store: &Store, index: UniqueIndex<Self, V>, value: &Q) -> Result<Option<Self>>
    where
        V: Key + Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "load_by");
        store.read(|tx| tx.load_by(index, value))
    }

    /// Every record whose index `index` holds `value`, in key order.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_11")]
    /// # struct User { #[persistent(key)] id: u32, #[persistent(index)] team: Option<String> }
    /// # let store = Store::temporary()?;
    /// User { id: 1, team: Some("red".into()) }.save(&store)?;
    /// User { id: 2, team: None }.save(&store)?;
    /// let red = User::scan_index(&store, User::TEAM, "red")?;
    /// assert_eq!(red.iter().map(|u| u.id).collect::<Vec<_>>(), [1]);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn scan_index<H, Q>(store: &Store, index: H, value: &Q) -> Result<Vec<Self>>
    where
        H: IndexHandle<Model = Self>,
        H::Value: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "scan_index");
        store.read(|tx| tx.scan_index(index, value)?.collect())
    }

    /// Every record whose parent index `index` points at `parent_key`.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_12")]
    /// # struct User { #[persistent(key)] name: String }
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_13")]
    /// # struct Post { #[persistent(key)] id: u64, #[persistent(parent = User)] author: String }
    /// # let store = Store::temporary()?;
    /// Post { id: 1, author: "ada".into() }.save(&store)?;
    /// Post { id: 2, author: "bob".into() }.save(&store)?;
    /// assert_eq!(Post::children(&store, Post::AUTHOR, "ada")?.len(), 1);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn children<P, Q>(store: &Store, index: ParentIndex<Self, P>, parent_key: &Q) -> Result<Vec<Self>>
    where
        P: Persistent,
        P::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "children");
        store.read(|tx| tx.scan_index(index, parent_key)?.collect())
    }

    /// Records whose index values fall in `range`, in index order.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_14")]
    /// # struct Reading { #[persistent(key)] id: u32, #[persistent(index)] celsius: i16 }
    /// # let store = Store::temporary()?;
    /// for (id, celsius) in [(1, -5), (2, 3), (3, 12)] {
    ///     Reading { id, celsius }.save(&store)?;
    /// }
    /// let mild = Reading::range_index(&store, Reading::CELSIUS, -1..=10)?;
    /// assert_eq!(mild.iter().map(|r| r.id).collect::<Vec<_>>(), [2]);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn range_index<H, R>(store: &Store, index: H, range: R) -> Result<Vec<Self>>
    where
        H: IndexHandle<Model = Self>,
        R: crate::KeyRange<H::Value>,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "range_index");
        store.read(|tx| tx.range_index(index, range)?.collect())
    }

    /// Every record, in key order. Use [`ReadTx::iter`](crate::ReadTx::iter)
    /// to stream instead of collecting.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_15")]
    /// # struct Item { #[persistent(key)] id: i32 }
    /// # let store = Store::temporary()?;
    /// for id in [3, -1, 2] { Item { id }.save(&store)?; }
    /// let ids: Vec<i32> = Item::all(&store)?.iter().map(|i| i.id).collect();
    /// assert_eq!(ids, [-1, 2, 3]);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn all(store: &Store) -> Result<Vec<Self>> {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "all");
        store.read(|tx| tx.iter::<Self>()?.collect())
    }

    /// Records whose keys fall in `range`, in key order.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_16")]
    /// # struct Item { #[persistent(key)] id: u64 }
    /// # let store = Store::temporary()?;
    /// for id in 0..10 { Item { id }.save(&store)?; }
    /// assert_eq!(Item::range(&store, 3..6)?.len(), 3);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn range<R>(store: &Store, range: R) -> Result<Vec<Self>>
    where
        R: crate::KeyRange<Self::Key>,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "range");
        store.read(|tx| tx.range::<Self, R>(range)?.collect())
    }

    /// Records whose keys start with `prefix` (a string prefix of a
    /// `String` key, or the leading elements of a tuple key).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_17")]
    /// # struct Item { #[persistent(key)] path: String }
    /// # let store = Store::temporary()?;
    /// for path in ["a/1", "a/2", "b/1"] { Item { path: path.into() }.save(&store)?; }
    /// assert_eq!(Item::prefix(&store, "a/")?.len(), 2);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn prefix<P>(store: &Store, prefix: &P) -> Result<Vec<Self>>
    where
        P: KeyPrefix<Self::Key> + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "prefix");
        store.read(|tx| tx.prefix::<Self, P>(prefix)?.collect())
    }

    /// Locks the record with this key for a longer piece of work, waiting
    /// as long as another thread or process holds it. The guard holds the
    /// record (or `None` if it does not exist yet); see [`RecordLock`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_lock")]
    /// # struct Stock { #[persistent(key)] sku: String, count: u32 }
    /// # let store = Store::temporary()?;
    /// let mut stock = Stock::lock(&store, "apple")?;
    /// if stock.get().is_none() {
    ///     stock.set(Stock { sku: "apple".into(), count: 0 });
    /// }
    /// stock.update(|s| s.count += 10)?;
    /// drop(stock);
    /// assert_eq!(Stock::load(&store, "apple")?.unwrap().count, 10);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn lock<Q>(store: &Store, key: &Q) -> Result<RecordLock<Self>>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "lock");
        RecordLock::acquire(store, encode_to_vec(key), None)
    }

    /// Like [`lock`](Persistent::lock), but fails at once with
    /// [`Error::Locked`](crate::Error::Locked) if someone else holds the lock.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Error, Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_try_lock")]
    /// # struct Stock { #[persistent(key)] sku: String }
    /// # let store = Store::temporary()?;
    /// let held = Stock::lock(&store, "apple")?;
    /// assert!(matches!(Stock::try_lock(&store, "apple"), Err(Error::Locked { .. })));
    /// drop(held);
    /// assert!(Stock::try_lock(&store, "apple").is_ok());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn try_lock<Q>(store: &Store, key: &Q) -> Result<RecordLock<Self>>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "try_lock");
        RecordLock::acquire(store, encode_to_vec(key), Some(Duration::ZERO))
    }

    /// Like [`lock`](Persistent::lock), but gives up with [`Error::Locked`](crate::Error::Locked)
    /// after `wait`.
    fn lock_timeout<Q>(store: &Store, key: &Q, wait: Duration) -> Result<RecordLock<Self>>
    where
        Self::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "lock_timeout");
        RecordLock::acquire(store, encode_to_vec(key), Some(wait))
    }

    /// Checks that every record of this model decodes and that its indexes
    /// hold exactly the entries the records call for; see [`Store::verify`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_verify")]
    /// # struct User { #[persistent(key)] id: u32, #[persistent(index)] team: u8 }
    /// # let store = Store::temporary()?;
    /// User { id: 1, team: 7 }.save(&store)?;
    /// let report = User::verify(&store)?;
    /// assert!(report.is_clean());
    /// assert_eq!((report.records, report.index_entries.as_slice()), (1, &[1][..]));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn verify(store: &Store) -> Result<ModelReport> {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "verify");
        store.read(|tx| crate::verify::verify_model(tx, tx.tables_of(Self::INFO)?))
    }

    /// Rewrites every record written by an older version of this model
    /// (see `#[persistent(version = N, from(...))]`) in the current format,
    /// with index entries rebuilt; returns how many. The work is done in
    /// batches, each a transaction of its own (at least 1,000 records, and
    /// at most 16 batches), so that other writers get their turn;
    /// `progress` hears after each. Reading does not need it — older
    /// records are upgraded as they are read — but it makes them cheap to
    /// read and to write again.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_migrate")]
    /// # struct Item { #[persistent(key)] id: u32 }
    /// # let store = Store::temporary()?;
    /// let rewritten = Item::migrate(&store, &mut |progress| println!("{progress:?}"))?;
    /// assert_eq!(rewritten, 0, "nothing older was stored");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn migrate(store: &Store, progress: &mut (dyn FnMut(crate::Progress) + Send)) -> Result<u64> {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "migrate");
        let total = store.read(|tx| tx.count_older::<Self>())?;
        let batch = usize::try_from(total / MIGRATE_BATCHES).unwrap_or(usize::MAX).max(MIN_MIGRATE_BATCH);
        let (mut done, mut after) = (0, None);
        loop {
            let (rewritten, last) = store.write(|tx| tx.migrate_batch::<Self>(after.as_deref(), batch))?;
            done += rewritten;
            progress(crate::Progress { done, total: Some(total.max(done)) });
            match last {
                Some(key) => after = Some(key),
                None => {
                    tracing::info!(target: "skyshelve::migrate", model = Self::INFO.name, rewritten = done, "migration finished");
                    return Ok(done);
                }
            }
        }
    }

    /// The number of records.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_model_18")]
    /// # struct Item { #[persistent(key)] id: u64 }
    /// # let store = Store::temporary()?;
    /// for id in 0..4 { Item { id }.save(&store)?; }
    /// assert_eq!(Item::count(&store)?, 4);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    fn count(store: &Store) -> Result<u64> {
        let _span = crate::diagnostics::operation_span(Self::INFO.name, "count");
        store.read(|tx| tx.count::<Self>())
    }
}

impl<M: Model> Persistent for M {}

/// At most this many batches for a migration: each batch scans the
/// model's indexes once for the entries older code wrote.
const MIGRATE_BATCHES: u64 = 16;

/// The smallest batch `migrate` rewrites per transaction: below it, the
/// per-transaction cost outweighs letting other writers in sooner.
const MIN_MIGRATE_BATCH: usize = 1000;
