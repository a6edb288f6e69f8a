//! Purging expired records: `Store::purge_expired`, and the background
//! thread of `StoreOptions::purge_expired_every`. When a record has
//! expired is `expiry.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::{Opened, Store};
use crate::error::{Error, Result};
use crate::expiry::{expired_keys, now_millis};

/// How many expired records one transaction of `purge_expired` removes.
const PURGE_BATCH: usize = 1000;

impl Store {
    /// Removes every expired record of every model with an expiry field,
    /// with its index entries, in transactions of at most 1000 records (so
    /// that other writers are not held up); returns how many. Expired
    /// records are invisible to reads already; purging frees their space.
    /// A record kept by `on_delete = restrict` children stays, invisible.
    /// [`StoreOptions::purge_expired_every`](crate::StoreOptions::purge_expired_every)
    /// runs this on a background thread.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::{Persistent, Store};
    /// use std::time::{Duration, SystemTime};
    ///
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_expiry_session")]
    /// struct Session {
    ///     #[persistent(key)]
    ///     token: String,
    ///     #[persistent(expires)]
    ///     expires_at: SystemTime,
    /// }
    ///
    /// let store = Store::temporary()?;
    /// Session { token: "new".into(), expires_at: SystemTime::now() + Duration::from_secs(3600) }.save(&store)?;
    /// let past = SystemTime::now() - Duration::from_secs(1);
    /// Session { token: "old".into(), expires_at: past }.save(&store)?;
    /// assert!(Session::load(&store, "old")?.is_none(), "invisible before any purge");
    /// assert_eq!(Session::count(&store)?, 1);
    /// assert_eq!(store.purge_expired()?, 1);
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn purge_expired(&self) -> Result<u64> {
        let mut purged = 0;
        for tables in self.shared().all_tables() {
            let Some(position) = tables.expiry else { continue };
            loop {
                let (found, removed) = self.write(|tx| {
                    let keys = expired_keys(tx.raw_writer(), tables, position, now_millis(), PURGE_BATCH)?;
                    let mut removed = 0;
                    for key in &keys {
                        match tx.delete_encoded(tables, key) {
                            Ok(true) => removed += 1,
                            Ok(false) | Err(Error::Restricted { .. }) => {}
                            Err(err) => return Err(err),
                        }
                    }
                    Ok((keys.len(), removed))
                })?;
                purged += removed;
                // A short batch was the last; a batch of kept records ends it too.
                if found < PURGE_BATCH || removed == 0 {
                    break;
                }
            }
        }
        Ok(purged)
    }
}

/// Runs `Store::purge_expired` every `interval` while the store is open
/// in this process; the thread holds no handle between rounds, so it does
/// not keep the store open, and ends within one interval of its close.
pub(super) fn start_purger(opened: &Arc<Opened>, interval: Duration) {
    let weak = Arc::downgrade(opened);
    let spawned = std::thread::Builder::new().name("skyshelve-purge".into()).spawn(move || {
        loop {
            std::thread::sleep(interval);
            let Some(opened) = weak.upgrade() else { return };
            // A failed round (a full disk, a lock held elsewhere) is tried
            // again at the next interval.
            let _ = Store::with(opened, false).purge_expired();
        }
    });
    // Without a thread, purging is left to explicit calls.
    drop(spawned);
}
