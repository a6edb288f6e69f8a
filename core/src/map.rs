//! A typed key-value map for data without a model: the dict-like mapping
//! the Python library began as.

use std::any::Any;
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::key::{EncodeKey, Key, KeyPrefix, decode_exact, encode_to_vec, prefix_successor};
use crate::codec::value;
use crate::engine::{Reader, Table, Writer};
use crate::error::{Error, Result};
use crate::model::check_key_len;
use crate::store::Store;

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
        let key = encode_to_vec(key);
        check_key_len(|| format!("map {} key", self.name), key.len())?;
        let bytes = self.encode_value(value)?;
        self.store.shared().engine.write(|txn| {
            let existed = txn.get(self.table, &key)?.is_some();
            txn.put(self.table, &key, &bytes)?;
            Ok(!existed)
        })
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
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> Result<Vec<(K, V)>> {
        let lower = range.start_bound().map(encode_to_vec);
        let upper = range.end_bound().map(encode_to_vec);
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
        decode_exact(bytes).map_err(|err| match err {
            Error::Decode { reason, .. } => Error::Decode { what: format!("map {} key", self.name), reason },
            other => other,
        })
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
        crate::model::check_value_len(|| format!("value of map {}", self.name), out.len())?;
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
