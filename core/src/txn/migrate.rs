//! Migration: rewriting the records an older model version wrote in the
//! current format, with the index entries this code computes.

use std::ops::Bound;

use super::erased::{Encoded, OldEntries, UniqueCheck};
use super::{WriteTx, query};
use crate::error::Result;
use crate::model::Model;
use crate::tables::ModelTables;

impl WriteTx<'_> {
    /// Rewrites every record of `M` written by an older model version in
    /// the current format, rebuilding its index entries, in this one
    /// transaction; see [`Persistent::migrate`](crate::Persistent::migrate) for the batched form.
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
    pub fn migrate<M: Model>(&mut self, progress: &mut dyn FnMut(crate::Progress)) -> Result<u64> {
        // One transaction sees every older record, so what it rewrote is the total.
        let rewritten = self.migrate_batch::<M>(None, usize::MAX)?.0;
        progress(crate::Progress { done: rewritten, total: Some(rewritten) });
        Ok(rewritten)
    }

    /// Rewrites up to `limit` records of `M` written by an older version,
    /// among those after key `after`. Returns how many, and the last key
    /// looked at when the limit was reached (`None`: no records remain).
    pub(crate) fn migrate_batch<M: Model>(
        &mut self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(u64, Option<Vec<u8>>)> {
        let tables = self.shared.tables::<M>()?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut older = Vec::new();
        for entry in self.reads().range(tables.main, lower, Bound::Unbounded)? {
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
    fn rewrite_older<M: Model>(&mut self, tables: &ModelTables, keys: &[Vec<u8>]) -> Result<()> {
        self.remove_entries_of(tables, &keys.iter().map(Vec::as_slice).collect())?;
        for key in keys {
            let Some((_, record)) = query::load_stored::<M>(self.reads(), tables, key)? else { continue };
            // The record's content is unchanged: its history gains no version.
            let new = Encoded::of(&record)?;
            let write =
                self.prepare(tables, key, &new, OldEntries::Cleared, UniqueCheck::LookUp { moving_from: None })?;
            self.apply(tables, key, &write)?;
        }
        Ok(())
    }
}
