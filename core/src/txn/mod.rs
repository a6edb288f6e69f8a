//! Read and write transactions over models and maps. Every write keeps
//! every index in step with its record through `indexing`, checking before
//! it changes anything.

mod erased;
mod migrate;
mod query;
mod write;

pub(crate) use query::{decode_visible, prefix_bounds};

use std::borrow::Borrow;
use std::ops::Bound;

use crate::codec::key::EncodeKey;
use crate::engine::{Reader, Writer};
use crate::error::{Error, Result};
use crate::locks::Owner;
use crate::model::{Model, ModelInfo};
use crate::tables::{ModelTables, Shared};

/// A read transaction: a consistent snapshot of the whole store, given to
/// the closure of [`Store::read`](crate::Store::read).
pub struct ReadTx<'t> {
    shared: &'t Shared,
    txn: &'t crate::engine::Snapshot<'t>,
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
    /// The last history position used by this transaction, per model slot
    /// with a history table, written back by `finish`.
    history_positions: Vec<(usize, crate::engine::Table, u64)>,
}

impl<'t> ReadTx<'t> {
    pub(crate) fn new(shared: &'t Shared, txn: &'t crate::engine::Snapshot<'t>) -> Self {
        ReadTx { shared, txn }
    }

    /// The engine's snapshot that every read of this transaction goes
    /// through (also for admin work over stored bytes).
    pub(crate) fn reads(&self) -> &crate::engine::Snapshot<'t> {
        self.txn
    }

    /// How many records of `M` an older model version wrote.
    pub(crate) fn count_older<M: Model>(&self) -> Result<u64> {
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

    /// The damaged pages of `M`'s tables (see `Engine::damaged_pages`),
    /// each with its table's name.
    pub(crate) fn damaged_pages_of(&self, tables: &ModelTables) -> Result<Vec<(String, crate::engine::Damage)>> {
        let info = tables.info;
        let mut names = vec![info.name.to_owned()];
        names.extend(info.indexes.iter().map(|index| crate::tables::index_table(info, index.name)));
        if tables.history.is_some() {
            names.push(crate::tables::history_table(info));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let found = self.shared.engine.damaged_pages(&names)?;
        Ok(found.into_iter().flat_map(|(table, damage)| damage.into_iter().map(move |d| (table.clone(), d))).collect())
    }

    /// The raw reader, for checks over raw entries.
    pub(crate) fn raw_reader(&self) -> &dyn Reader {
        self.txn
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
        WriteTx { shared, txn, owner, caller, blocked, writable: 0, poisoned: None, history_positions: Vec::new() }
    }

    /// The engine's transaction as seen by reads: what the queries go
    /// through, including this transaction's own writes.
    fn reads(&self) -> &dyn Reader {
        &*self.txn
    }

    /// The raw writer, for maps.
    pub(crate) fn raw_writer(&mut self) -> &mut dyn Writer {
        &mut *self.txn
    }

    /// Fails if this program's indexes of `M` are not the store's (see
    /// `catalog`): its writes would leave the store's indexes behind.
    #[inline]
    fn check_writable(&mut self, tables: &ModelTables) -> Result<()> {
        self.txn.touch(tables.topic);
        let slot = tables.info.slot.index();
        let bit = u32::try_from(slot).ok().and_then(|slot| 1u128.checked_shl(slot)).unwrap_or(0);
        if self.writable & bit != 0 {
            return Ok(());
        }
        crate::catalog::check_writable(self.reads(), self.shared.catalog, tables)?;
        self.writable |= bit;
        Ok(())
    }
}

/// A read or write transaction, for the model methods that work inside
/// either ([`Persistent::load_in`](crate::Persistent::load_in), [`Persistent::exists_in`](crate::Persistent::exists_in)). Sealed.
pub trait Transaction: sealed::Sealed {
    #[doc(hidden)]
    fn load_record<M, Q>(&self, key: &Q) -> Result<Option<M>>
    where
        M: Model,
        M::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized;

    #[doc(hidden)]
    fn record_exists<M, Q>(&self, key: &Q) -> Result<bool>
    where
        M: Model,
        M::Key: Borrow<Q>,
        Q: EncodeKey + ?Sized;

    /// What the transaction reads through, for the queries and maps
    /// above `txn/` that take any transaction.
    #[doc(hidden)]
    fn reading(&self) -> sealed::Reading<'_>;
}

mod sealed {
    use crate::engine::Reader;
    use crate::tables::Shared;

    pub trait Sealed {}
    impl Sealed for super::ReadTx<'_> {}
    impl Sealed for super::WriteTx<'_> {}

    /// See `Transaction::reading`.
    pub struct Reading<'t> {
        pub(crate) shared: &'t Shared,
        pub(crate) reads: &'t dyn Reader,
    }

    impl Reading<'_> {
        /// Whether the transaction belongs to the environment of `shared`.
        pub(crate) fn is_on(&self, shared: &Shared) -> bool {
            std::ptr::eq(self.shared, shared)
        }
    }
}

macro_rules! transaction {
    ($tx:ident) => {
        impl Transaction for $tx<'_> {
            fn load_record<M, Q>(&self, key: &Q) -> Result<Option<M>>
            where
                M: Model,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                self.load::<M, Q>(key)
            }

            fn record_exists<M, Q>(&self, key: &Q) -> Result<bool>
            where
                M: Model,
                M::Key: Borrow<Q>,
                Q: EncodeKey + ?Sized,
            {
                self.exists::<M, Q>(key)
            }

            fn reading(&self) -> sealed::Reading<'_> {
                sealed::Reading { shared: self.shared, reads: self.reads() }
            }
        }
    };
}

transaction!(ReadTx);
transaction!(WriteTx);
