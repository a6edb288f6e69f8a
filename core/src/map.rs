//! A typed key-value map for data without a model: the dict-like mapping
//! the Python library began as.

use std::any::Any;
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Bound;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::key::{EncodeKey, Key, KeyPrefix, decode_exact, encode_to_vec, prefix_successor};
use crate::codec::value;
use crate::engine::check_key_len;
use crate::engine::{Reader, Table, Writer};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::txn::{Transaction, WriteTx};

/// What the catalog records of a map, under its table's name: the key
/// type's Rust name (keys go through the key encoding, not serde, so their
/// name is what there is to compare) and the value's layout.
#[derive(Debug, PartialEq, serde::Deserialize, Serialize)]
struct Shape {
    key: String,
    value: crate::layout::Layout,
}

/// The format of a map's catalog entry, in its value header.
const SHAPE_FORMAT: u16 = 1;

/// Compares `K` and `V` with the shape the catalog records for the map in
/// `table` (named `name`), recording them if it records none and `store`
/// may write.
pub(crate) fn check_types<K, V: DeserializeOwned>(store: &Store, table: &str, name: &str) -> Result<()> {
    let shared = store.shared();
    let wanted = Shape { key: std::any::type_name::<K>().to_owned(), value: crate::layout::of::<V>() };
    let compare = |bytes: &[u8]| -> Result<()> {
        let (_, stored): (_, Shape) = value::decode(bytes, table)?;
        if stored == wanted {
            return Ok(());
        }
        let mut differences = Vec::new();
        if stored.key != wanted.key {
            differences.push(format!("its keys are {} in the store, {} here", stored.key, wanted.key));
        }
        if stored.value != wanted.value {
            differences.push(format!("its values: {}", crate::layout::differences(&stored.value, &wanted.value)));
        }
        Err(Error::MapTypeMismatch { name: name.to_owned(), differences: differences.join("; ") })
    };
    if let Some(bytes) =
        shared.engine.read(|txn| txn.get(shared.catalog, table.as_bytes()).map(|b| b.map(<[u8]>::to_vec)))?
    {
        return compare(&bytes);
    }
    if store.writable().is_err() {
        return Ok(()); // a reader records nothing; a map never written has nothing to misread
    }
    let mut encoded = Vec::new();
    value::encode_into(&wanted, SHAPE_FORMAT, table, &mut encoded)?;
    // Another process may record its shape first: then that one counts.
    let theirs = shared.engine.write(|txn| txn.put_new(shared.catalog, table.as_bytes(), &encoded))?;
    theirs.map_or(Ok(()), |bytes| compare(&bytes))
}

/// A persistent map from `K` to `V`, made by [`Store::map`].
///
/// Keys use the order-preserving key encoding, so iteration, ranges and
/// prefixes follow `K`'s order. Values go through the record codec, except
/// `String` and `Vec<u8>` values, which are stored as they are.
///
/// ```
/// let store = skyshelve::Store::temporary()?;
/// let visits = store.map::<(String, u32), u64>("visits")?;
/// visits.insert(&("home".into(), 1), &10)?;
/// visits.insert(&("home".into(), 2), &12)?;
/// visits.insert(&("about".into(), 1), &1)?;
/// let home: Vec<_> = visits.prefix(&("home".to_string(),))?;
/// assert_eq!(home, [(("home".into(), 1), 10), (("home".into(), 2), 12)]);
/// # Ok::<(), skyshelve::Error>(())
/// ```
pub struct Map<K, V> {
    store: Store,
    name: String,
    table: Table,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Map<K, V> {
    fn clone(&self) -> Self {
        Map { store: self.store.clone(), name: self.name.clone(), table: self.table, _types: PhantomData }
    }
}

impl<K, V> fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<K, V> Map<K, V>
where
    K: Key,
    V: Serialize + DeserializeOwned + 'static,
{
    pub(crate) fn new(store: Store, name: String, table: Table) -> Self {
        Map { store, name, table, _types: PhantomData }
    }

    /// The map's name.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// assert_eq!(map.name(), "counts");
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value under `key`, if any.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// assert_eq!(map.get("ab")?, Some(2));
    /// assert_eq!(map.get("zz")?, None);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let key = encode_to_vec(key);
        self.store
            .shared()
            .engine
            .read(|txn| txn.get(self.table, &key)?.map(|bytes| self.decode_value(bytes)).transpose())
    }

    /// Whether `key` is present.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// assert!(map.contains("a")?);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn contains<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let key = encode_to_vec(key);
        self.store.shared().engine.read(|txn| Ok(txn.get(self.table, &key)?.is_some()))
    }

    /// Stores `value` under `key`; returns whether the key was new.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let names = store.map::<u64, String>("names")?;
    /// assert!(names.insert(&1, &"one".to_string())?);
    /// assert!(!names.insert(&1, &"uno".to_string())?);
    /// assert_eq!(names.get(&1)?.as_deref(), Some("uno"));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn insert(&self, key: &K, value: &V) -> Result<bool> {
        let key = self.encode_key(key)?;
        let bytes = self.encode_value(value)?;
        self.store.writable()?;
        self.store.shared().engine.write(|txn| {
            let existed = txn.get(self.table, &key)?.is_some();
            txn.put(self.table, &key, &bytes)?;
            Ok(!existed)
        })
    }

    /// Reads the value under `key` (or takes `default()` when there is
    /// none), applies `change` and stores the result, atomically: the
    /// counter or default-dict of the Python library, exact when many
    /// threads and processes update one key. Returns the stored value.
    /// `default` and `change` may run more than once (map growth).
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let hits = store.map::<String, u64>("hits")?;
    /// hits.upsert(&"/".to_string(), || 0, |n| *n += 1)?;
    /// assert_eq!(hits.upsert(&"/".to_string(), || 0, |n| *n += 1)?, 2);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn upsert(&self, key: &K, mut default: impl FnMut() -> V, mut change: impl FnMut(&mut V)) -> Result<V> {
        self.store.writable()?;
        self.store.shared().engine.write(|txn| self.upsert_with(txn, key, &mut default, &mut change))
    }

    /// Stores `value` under `key` unless the key is present; returns
    /// whether it was stored. Atomic across threads and processes.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let owners = store.map::<String, String>("owners")?;
    /// assert!(owners.insert_if_absent(&"job-1".to_string(), &"worker-a".to_string())?);
    /// assert!(!owners.insert_if_absent(&"job-1".to_string(), &"worker-b".to_string())?);
    /// assert_eq!(owners.get("job-1")?.as_deref(), Some("worker-a"));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn insert_if_absent(&self, key: &K, value: &V) -> Result<bool> {
        let key = self.encode_key(key)?;
        let bytes = self.encode_value(value)?;
        self.store.writable()?;
        self.store.shared().engine.write(|txn| Ok(txn.put_new(self.table, &key, &bytes)?.is_none()))
    }

    /// [`get`](Map::get) inside a transaction, read or write: a write
    /// transaction sees its own writes, a read transaction its snapshot.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let stock = store.map::<String, i64>("stock")?;
    /// stock.insert(&"apples".to_string(), &3)?;
    /// store.write(|tx| {
    ///     let apples = stock.get_in(tx, "apples")?.unwrap_or(0);
    ///     stock.insert_in(tx, &"apples".to_string(), &(apples - 1))?;
    ///     stock.upsert_in(tx, &"sold".to_string(), || 0, |n| *n += 1)?;
    ///     stock.remove_in(tx, "pears")?;
    ///     Ok(())
    /// })?;
    /// assert_eq!((stock.get("apples")?, stock.get("sold")?), (Some(2), Some(1)));
    /// let sold = store.read(|tx| stock.get_in(tx, "sold"))?;
    /// assert_eq!(sold, Some(1));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn get_in<T, Q>(&self, tx: &T, key: &Q) -> Result<Option<V>>
    where
        T: crate::Transaction,
        K: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let reading = tx.reading();
        if !reading.is_on(self.store.shared()) {
            return Err(self.other_store());
        }
        self.value_in(reading.reads, &encode_to_vec(key))
    }

    /// The value under an encoded key, read through `txn`.
    pub(crate) fn value_in(&self, txn: &(impl Reader + ?Sized), key: &[u8]) -> Result<Option<V>> {
        txn.get(self.table, key)?.map(|bytes| self.decode_value(bytes)).transpose()
    }

    /// [`insert`](Map::insert) inside a write transaction; see
    /// [`get_in`](Map::get_in).
    pub fn insert_in(&self, tx: &mut WriteTx<'_>, key: &K, value: &V) -> Result<bool> {
        let key = self.encode_key(key)?;
        let bytes = self.encode_value(value)?;
        let txn = self.raw_writer(tx)?;
        let existed = txn.get(self.table, &key)?.is_some();
        txn.put(self.table, &key, &bytes)?;
        Ok(!existed)
    }

    /// [`remove`](Map::remove) inside a write transaction; see
    /// [`get_in`](Map::get_in).
    pub fn remove_in<Q>(&self, tx: &mut WriteTx<'_>, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let key = encode_to_vec(key);
        let txn = self.raw_writer(tx)?;
        let old = txn.get(self.table, &key)?.map(|bytes| self.decode_value(bytes)).transpose()?;
        txn.delete(self.table, &key)?;
        Ok(old)
    }

    /// [`upsert`](Map::upsert) inside a write transaction; see
    /// [`get_in`](Map::get_in).
    pub fn upsert_in(
        &self,
        tx: &mut WriteTx<'_>,
        key: &K,
        mut default: impl FnMut() -> V,
        mut change: impl FnMut(&mut V),
    ) -> Result<V> {
        let txn = self.raw_writer(tx)?;
        self.upsert_with(txn, key, &mut default, &mut change)
    }

    fn upsert_with(
        &self,
        txn: &mut dyn Writer,
        key: &K,
        default: &mut dyn FnMut() -> V,
        change: &mut dyn FnMut(&mut V),
    ) -> Result<V> {
        let encoded = self.encode_key(key)?;
        let mut value = match txn.get(self.table, &encoded)? {
            Some(bytes) => self.decode_value(bytes)?,
            None => default(),
        };
        change(&mut value);
        let bytes = self.encode_value(&value)?;
        txn.put(self.table, &encoded, &bytes)?;
        Ok(value)
    }

    /// The transaction's writer, if the transaction is on this map's store.
    fn raw_writer<'t>(&self, tx: &'t mut WriteTx<'_>) -> Result<&'t mut dyn Writer> {
        if Transaction::reading(&*tx).is_on(self.store.shared()) {
            Ok(tx.raw_writer())
        } else {
            Err(self.other_store())
        }
    }

    pub(crate) fn other_store(&self) -> Error {
        Error::OtherStore { what: format!("map {}", self.name) }
    }

    fn encode_key(&self, key: &K) -> Result<Vec<u8>> {
        let key = encode_to_vec(key);
        check_key_len(|| format!("map {} key", self.name), key.len())?;
        Ok(key)
    }

    /// Removes `key`; returns the value it held.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// assert_eq!(map.remove("a")?, Some(1));
    /// assert!(!map.contains("a")?);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let key = encode_to_vec(key);
        self.store.writable()?;
        self.store.shared().engine.write(|txn| {
            let old = txn.get(self.table, &key)?.map(|bytes| self.decode_value(bytes)).transpose()?;
            txn.delete(self.table, &key)?;
            Ok(old)
        })
    }

    /// The number of entries.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// assert_eq!(map.len()?, 3);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn len(&self) -> Result<u64> {
        self.store.shared().engine.read(|txn| txn.len(self.table))
    }

    /// Whether the map has no entries.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// assert!(!map.is_empty()?);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every entry in key order.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// let keys: Vec<String> = map.iter()?.into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(keys, ["a", "ab", "b"]);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn iter(&self) -> Result<Vec<(K, V)>> {
        self.collect(Bound::Unbounded, Bound::Unbounded)
    }

    /// The entries whose keys fall in `range`, in key order.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let squares = store.map::<i32, i64>("squares")?;
    /// for i in -3..=3 { squares.insert(&i, &(i64::from(i) * i64::from(i)))?; }
    /// let keys: Vec<i32> = squares.range(-1..2)?.into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(keys, [-1, 0, 1]);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn range<R: crate::KeyRange<K>>(&self, range: R) -> Result<Vec<(K, V)>> {
        let (lower, upper) = range.encoded_bounds();
        self.collect(lower, upper)
    }

    /// The entries whose keys start with `prefix`, in key order.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// assert_eq!(map.prefix("a")?.len(), 2);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn prefix<P: KeyPrefix<K> + ?Sized>(&self, prefix: &P) -> Result<Vec<(K, V)>> {
        let mut lower = Vec::new();
        prefix.encode_prefix(&mut lower);
        let upper = prefix_successor(&lower).map_or(Bound::Unbounded, Bound::Excluded);
        self.collect(Bound::Included(lower), upper)
    }

    /// Calls `visit` on each entry in key order inside one read
    /// transaction, without collecting: for maps too large for memory.
    /// Stops at the first error `visit` returns.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let map = store.map::<String, u32>("counts")?;
    /// map.insert(&"a".to_string(), &1)?;
    /// map.insert(&"ab".to_string(), &2)?;
    /// map.insert(&"b".to_string(), &3)?;
    /// let mut total = 0;
    /// map.for_each(|_, v| {
    ///     total += v;
    ///     Ok(())
    /// })?;
    /// assert_eq!(total, 6);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn for_each<F>(&self, mut visit: F) -> Result<()>
    where
        F: FnMut(K, V) -> Result<()>,
    {
        self.store.shared().engine.read(|txn| {
            for entry in txn.range(self.table, Bound::Unbounded, Bound::Unbounded)? {
                let (key, bytes) = entry?;
                visit(self.decode_key(key)?, self.decode_value(bytes)?)?;
            }
            Ok(())
        })
    }

    fn collect(&self, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Result<Vec<(K, V)>> {
        self.store.shared().engine.read(|txn| {
            let lower = lower.as_ref().map(Vec::as_slice);
            let upper = upper.as_ref().map(Vec::as_slice);
            txn.range(self.table, lower, upper)?
                .map(|entry| {
                    let (key, bytes) = entry?;
                    Ok((self.decode_key(key)?, self.decode_value(bytes)?))
                })
                .collect()
        })
    }

    fn decode_key(&self, bytes: &[u8]) -> Result<K> {
        decode_exact(bytes).map_err(|err| err.decoding(|| format!("map {} key", self.name)))
    }

    fn encode_value(&self, value: &V) -> Result<Vec<u8>> {
        let any: &dyn Any = value;
        if let Some(text) = any.downcast_ref::<String>() {
            return Ok(text.as_bytes().to_vec());
        }
        if let Some(bytes) = any.downcast_ref::<Vec<u8>>() {
            return Ok(bytes.clone());
        }
        let mut out = Vec::new();
        value::encode_into(value, 0, &self.name, &mut out)?;
        crate::engine::check_value_len(|| format!("value of map {}", self.name), out.len())?;
        value::check_reads_back(value, &out, &format!("value of map {}", self.name))?;
        Ok(out)
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V> {
        let what = || format!("map {} value", self.name);
        let raw: Option<Box<dyn Any>> = if is::<V, String>() {
            let text =
                String::from_utf8(bytes.to_vec()).map_err(|e| Error::Decode { what: what(), reason: e.to_string() })?;
            Some(Box::new(text))
        } else if is::<V, Vec<u8>>() {
            Some(Box::new(bytes.to_vec()))
        } else {
            None
        };
        match raw {
            Some(raw) => raw
                .downcast::<V>()
                .map(|boxed| *boxed)
                .map_err(|_| Error::Decode { what: what(), reason: "raw value type mismatch".into() }),
            None => value::decode::<V>(bytes, &what()).map(|(_, value)| value),
        }
    }
}

fn is<A: 'static, B: 'static>() -> bool {
    std::any::TypeId::of::<A>() == std::any::TypeId::of::<B>()
}

/// A typed map made known to admin work (JSON-lines export and import, the
/// CLI) by [`map_type!`](crate::map_type): only the program knows a map's
/// key and value types, as only it knows its models.
#[derive(Debug)]
pub struct MapInfo {
    /// The map's name, as given to [`Store::map`].
    pub name: &'static str,
    /// The Rust types of its keys and values.
    pub key_type: &'static str,
    /// See `key_type`.
    pub value_type: &'static str,
    #[doc(hidden)]
    pub export: MapExportFn,
    #[doc(hidden)]
    pub import: MapImportFn,
}

/// Writes every entry of a map as JSON lines; returns how many.
#[doc(hidden)]
pub type MapExportFn = fn(&Store, &str, &mut dyn std::io::Write) -> Result<u64>;

/// Imports JSON lines (numbered from 1) into a map in one transaction.
#[doc(hidden)]
pub type MapImportFn = fn(&Store, &str, &[(usize, String)]) -> Result<u64>;

#[doc(hidden)]
pub struct MapRegistration(pub &'static MapInfo);

inventory::collect!(MapRegistration);

/// Every typed map registered with [`map_type!`](crate::map_type), sorted
/// by name.
///
/// ```
/// skyshelve::map_type!("doc_maps_settings", String, u32);
/// assert!(skyshelve::maps().iter().any(|m| m.name == "doc_maps_settings" && m.value_type == "u32"));
/// ```
#[must_use]
pub fn maps() -> Vec<&'static MapInfo> {
    let mut all: Vec<_> = inventory::iter::<MapRegistration>.into_iter().map(|r| r.0).collect();
    all.sort_by_key(|m| m.name);
    all
}

/// Makes the typed map `name` with keys `K` and values `V` known to admin
/// work: [`Store::export_json_lines`] and [`Store::import_json_lines`]
/// (feature `json`) and the admin command line then take its name, as they
/// take a model's. Keys and values go through serde as `{"key":..,"value":..}`.
///
/// ```
/// skyshelve::map_type!("doc_map_type_hits", String, u64);
/// # #[cfg(feature = "json")] {
/// let store = skyshelve::Store::temporary()?;
/// store.map::<String, u64>("doc_map_type_hits")?.insert(&"/".to_string(), &3)?;
/// let mut out = Vec::new();
/// store.export_json_lines("doc_map_type_hits", &mut out, &mut |_| {})?;
/// assert_eq!(String::from_utf8(out).unwrap(), "{\"key\":\"/\",\"value\":3}\n");
/// # }
/// # Ok::<(), skyshelve::Error>(())
/// ```
#[macro_export]
macro_rules! map_type {
    ($name:expr, $key:ty, $value:ty) => {
        $crate::__private::inventory::submit! {
            $crate::__private::MapRegistration(&$crate::MapInfo {
                name: $name,
                key_type: ::core::stringify!($key),
                value_type: ::core::stringify!($value),
                export: $crate::__private::export_map::<$key, $value>,
                import: $crate::__private::import_map::<$key, $value>,
            })
        }
    };
}

impl crate::Store {
    /// A typed key-value map named `name`, for data without a model.
    ///
    /// The store records the map's key type (by its Rust name) and its
    /// value's layout (its serde shape, as for models) when the map is
    /// first opened to write; opening it again, in any program, with other
    /// types fails with [`Error::MapTypeMismatch`], so that no value is
    /// read as another type and no key of another type goes in.
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let settings = store.map::<String, u32>("settings")?;
    /// settings.insert(&"retries".to_string(), &3)?;
    /// assert_eq!(settings.get("retries")?, Some(3));
    /// assert!(matches!(store.map::<String, String>("settings"), Err(skyshelve::Error::MapTypeMismatch { .. })));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn map<K, V>(&self, name: &str) -> Result<Map<K, V>>
    where
        K: crate::Key,
        V: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        crate::tables::validate_name(name)?;
        // `~` cannot start a model name (the derive allows identifier
        // characters only), so maps never meet model tables.
        let table_name = crate::tables::map_table(name);
        let types = crate::tables::MapTypes::of::<K, V>();
        let mut maps = crate::sync::lock(&self.shared().maps);
        let table = match maps.get(&table_name) {
            Some((table, checked)) if *checked == types => *table,
            Some((table, _)) => {
                let table = *table;
                check_types::<K, V>(self, &table_name, name)?;
                table
            }
            None => {
                let names = std::slice::from_ref(&table_name);
                // A read-only handle makes no table: a map never written
                // cannot be read through it.
                let created = if self.is_read_only() {
                    self.shared().engine.open_tables_that_exist(names)?
                } else {
                    self.shared().engine.open_tables(names)?
                };
                let table = *created.get(&table_name).ok_or(Error::ReadOnly)?;
                check_types::<K, V>(self, &table_name, name)?;
                maps.insert(table_name, (table, types));
                table
            }
        };
        Ok(Map::new(self.clone(), name.to_owned(), table))
    }
}
