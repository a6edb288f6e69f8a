//! The index catalog: which indexes each model has in this store, and how
//! each is computed (its fingerprint, see [`IndexInfo::fingerprint`](crate::IndexInfo::fingerprint)).
//!
//! The catalog holds one entry per model. When a store opens, every model
//! whose entry differs from the program's definitions is reconciled:
//!
//! - A program whose model version is higher than the entry's takes the
//!   model over (at an equal version only when opened with
//!   [`StoreOptions::take_over_indexes`](crate::StoreOptions::take_over_indexes),
//!   so that a program which merely lacks an index, such as a report
//!   reading the records, never drops it or stops the writers that keep
//!   it): indexes that are new, changed, or were left half built are
//!   cleared and built again from the records, in batches of `build::BATCH`
//!   records per transaction so that other processes keep writing in
//!   between; indexes the program no longer has are cleared. Every process
//!   opening with the same definitions joins a build under way, so an open
//!   returns only once its indexes are complete.
//! - A program with an older model version, or an equal one and other
//!   definitions, leaves the entry alone and writes nothing.
//!
//! When the stored records break a new index's rules (two records with one
//! value of a unique index, an entry too long for the engine), the build stops
//! and says why in the entry; the open succeeds, queries of that index
//! report the reason, writes carry on so that the records can be
//! corrected, and the next open resumes the build.
//!
//! A process whose definitions are not (or no longer) the catalog's may
//! still read the model's records and query the indexes whose fingerprint
//! the catalog shares; its writes of the model fail with
//! [`Error::SchemaMismatch`](crate::Error::SchemaMismatch), because it would not maintain the other
//! definitions' indexes. Nothing it has written before is lost.

mod build;
mod entry;

pub(crate) use build::reconcile;
pub(crate) use entry::{Entry, check_layouts, check_queryable, check_writable};
