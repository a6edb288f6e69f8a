//! The writes at the typed edge: save, insert, append, update, upsert,
//! delete. They are generic over the model only as far as encoding the
//! key and the record, computing its index values and decoding a stored
//! record for `update` go, and hand an `Encoded` record to the write path
//! below (`erased.rs`), which works from the model's description
//! (`ModelTables::info`) and is compiled once for all models.

use std::borrow::Borrow;

use super::erased::{Encoded, OldEntries};
use super::{WriteTx, query};
use crate::codec::key::describe_key;
use crate::codec::key::{EncodeKey, encode_to_vec};
use crate::codec::value;
use crate::engine::{check_key_len, check_value_len};
use crate::error::{Error, Result};
use crate::indexing::entries_of;
use crate::model::Model;
use crate::tables::ModelTables;

impl<'t> WriteTx<'t> {
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
    pub fn save<M: Model>(&mut self, record: &M) -> Result<()> {
        self.raise_sequences(record)?;
        let tables = self.tables_for_write(M::INFO)?;
        let key = encode_primary::<M>(record.record_key())?;
        let new = Encoded::of(record)?;
        self.save_encoded(tables, &key, &new)
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
    pub fn insert<M: Model>(&mut self, record: &M) -> Result<()> {
        self.raise_sequences(record)?;
        let tables = self.tables_for_write(M::INFO)?;
        let key = encode_primary::<M>(record.record_key())?;
        self.insert_encoded(tables, &key, &Encoded::of(record)?)
    }
    /// Inserts `record` after giving each of its sequence fields the next
    /// number of its sequence (see [`Persistent::append`](crate::Persistent::append)); returns its key.
    /// If the insert fails, the sequences are as they were.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_writetx_append")]
    /// struct Line {
    ///     #[persistent(key, sequence)]
    ///     id: u64,
    ///     #[persistent(sequence = "lines_written")]
    ///     version: u64,
    /// }
    /// # let store = Store::temporary()?;
    /// let ids = store.write(|tx| {
    ///     let a = tx.append(&mut Line { id: 0, version: 0 })?;
    ///     let b = tx.append(&mut Line { id: 0, version: 0 })?;
    ///     Ok((a, b))
    /// })?;
    /// assert_eq!(ids, (1, 2));
    /// assert_eq!(store.read(|tx| tx.last_sequence("lines_written"))?, Some(2));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn append<M: Model>(&mut self, record: &mut M) -> Result<M::Key>
    where
        M::Key: Clone,
    {
        let mut issued = Vec::with_capacity(M::SEQUENCES.len());
        for (position, name) in M::SEQUENCES.iter().enumerate() {
            let number = self.next_sequence(name)?;
            issued.push((*name, number));
            record.set_sequence(position, number);
        }
        match self.insert(&*record) {
            Ok(()) => Ok(record.record_key().clone()),
            Err(err) => {
                // Give the numbers back, latest first, so that a caller
                // going on past the failure leaves no gap.
                for (name, number) in issued.into_iter().rev() {
                    self.rewind_sequence(name, number - 1)?;
                }
                Err(err)
            }
        }
    }
    /// Issues the next number of the sequence `name`: 1 on its first use,
    /// then one more than the last number issued, across every thread and
    /// process, committed with this transaction (an aborted transaction
    /// gives its numbers back). Fails with [`Error::SequenceExhausted`]
    /// after `u64::MAX`.
    ///
    /// ```
    /// # let store = skyshelve::Store::temporary()?;
    /// let (a, b) = store.write(|tx| Ok((tx.next_sequence("orders")?, tx.next_sequence("orders")?)))?;
    /// assert_eq!((a, b), (1, 2));
    /// assert_eq!(store.write(|tx| tx.next_sequence("orders"))?, 3);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn next_sequence(&mut self, name: &str) -> Result<u64> {
        let table = self.shared.sequences.ok_or(Error::ReadOnly)?;
        crate::sequence::next(&mut *self.txn, table, name)
    }
    /// Moves each sequence of `record`'s sequence fields up to the number
    /// the field holds, so that a record saved or imported with numbers of
    /// its own is never given the same number again by `append`.
    fn raise_sequences<M: Model>(&mut self, record: &M) -> Result<()> {
        for (position, name) in M::SEQUENCES.iter().enumerate() {
            let number = record.sequence_number(position);
            if self.last_sequence(name)?.is_none_or(|last| last < number) {
                self.rewind_sequence(name, number)?;
            }
        }
        Ok(())
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
        M: Model,
        M::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
    {
        let tables = self.tables_for_write(M::INFO)?;
        self.delete_encoded(tables, &encode_to_vec(key))
    }
    /// Reads the record, applies `change` and saves it; see
    /// [`Persistent::update`](crate::Persistent::update).
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
        M: Model,
        M::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized,
        F: FnOnce(&mut M),
    {
        let tables = self.tables_for_write(M::INFO)?;
        let encoded = encode_to_vec(key);
        let Some((version, record)) = query::load_stored::<M>(self.reads(), tables, &encoded)? else {
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
        M: Model,
        D: FnOnce() -> M,
        F: FnOnce(&mut M),
    {
        let tables = self.tables_for_write(M::INFO)?;
        let fresh = default();
        let key = encode_primary::<M>(fresh.record_key())?;
        match query::load_stored::<M>(self.reads(), tables, &key)? {
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
        M: Model,
        F: FnOnce(&mut M),
    {
        let old_entries = match stored_version {
            Some(version) if version == M::INFO.version => Some(entries_of(&record)),
            // Upgraded from an older version: its entries came from older code.
            Some(_) => Some(self.entries_pointing_at(tables, key)?),
            None => None,
        };
        change(&mut record);
        let new_key = encode_primary::<M>(record.record_key())?;
        let new = Encoded::of(&record)?;
        match old_entries {
            _ if new_key == key => {
                let old = old_entries.as_ref().map_or(OldEntries::Absent, OldEntries::Known);
                self.store_record(tables, key, &new, old)?;
            }
            Some(old_entries) => self.move_record(tables, key, &old_entries, &new_key, &new)?,
            None => {
                self.raise_sequences(&record)?;
                self.insert_encoded(tables, &new_key, &new)?;
            }
        }
        Ok(record)
    }
}

impl Encoded {
    pub(super) fn of<M: Model>(record: &M) -> Result<Encoded> {
        if M::EXPIRY.is_some() {
            crate::expiry::check(record)?;
        }
        // Most records fit; bincode would otherwise grow the buffer several times.
        let mut bytes = Vec::with_capacity(256);
        value::encode_into(record, M::INFO.version, M::INFO.name, &mut bytes)?;
        check_value_len(|| format!("{} record {:?}", M::INFO.name, record.record_key()), bytes.len())?;
        if !M::READS_BACK {
            value::check_reads_back(record, &bytes, M::INFO.name)?;
        }
        Ok(Encoded { bytes, entries: entries_of(record) })
    }
}

fn encode_primary<M: Model>(key: &M::Key) -> Result<Vec<u8>> {
    let encoded = encode_to_vec(key);
    check_key_len(|| format!("{} key {key:?}", M::INFO.name), encoded.len())?;
    Ok(encoded)
}
