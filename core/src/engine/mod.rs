//! The storage engine seam. Everything that knows LMDB lives in this
//! folder; nothing above it names LMDB, heed or their files.
//!
//! What the rest of skyshelve uses:
//! - [`Engine`]: opens a store's folder, runs read transactions and write
//!   transactions (`read`, `write`, `write_group`), grows the map, backs
//!   up and restores, and reports usage;
//! - [`Reader`] and [`Writer`]: named tables of byte keys and byte values,
//!   with get / range / len and put / insert-if-absent / delete / clear,
//!   inside one transaction;
//! - the limits ([`MAX_KEY_LEN`], [`MAX_VALUE_LEN`]) and [`Durability`].
//!
//! Inside: `lmdb.rs` (the environment and its transactions), `gate.rs`
//! (no remap while a transaction of this process is open), `writers.rs`
//! (one writer at a time across threads and processes, before LMDB's own
//! mutex), `fork.rs` (a handle is refused in a forked child), `files.rs`
//! (LMDB's files, whole-or-nothing copies, the cut-short check),
//! `notify.rs` (commit notifications to watchers in every process, through
//! a shared-memory file and a futex), `counters.rs` (what this process did:
//! commits, bytes, growths, waits).
//!
//! A second engine — an LSM tree on object storage such as SlateDB — has
//! other properties, and the seam is drawn so that they fit:
//! - **one writer with fencing**: write transactions are already
//!   serialised per store and may be re-run from the start (closures are
//!   `FnMut`), which is what a writer that loses its fence needs;
//! - **readers elsewhere, no memory map**: values are returned borrowed
//!   from the transaction (`&[u8]` tied to it), which an engine without a
//!   map satisfies by holding the bytes it read; the gate and map growth
//!   are LMDB's alone and stay inside `lmdb.rs`;
//! - **async I/O underneath**: the seam is synchronous; such an engine
//!   would block on its own runtime inside these calls rather than make the
//!   model layer async;
//! - **no insert-if-absent or nested transactions**: `put_new` can be a
//!   read then a write inside the one writer's transaction, and group
//!   commit (`write_group`) can fall back to one job per transaction.
//!
//! The names are the seam's own: a [`Snapshot`] is a read transaction, a
//! `Draft` a write transaction (the next commit, being written), a
//! [`Table`] an opaque handle; `Reader` and `Writer` name no heed type, so
//! a second engine implements them for its own transactions, and `Table`
//! and `Engine` become enums over the engines.

mod counters;
mod files;
mod fork;
mod gate;
mod lmdb;
mod notify;
mod writers;

use std::time::Duration;

pub use counters::Activity;
pub(crate) use counters::Counters;
pub(crate) use files::{holds_store, restore};
pub(crate) use lmdb::{Engine, GroupJob, RangeIter, Reader, Snapshot, Table, Writer};
pub(crate) use notify::{Notifier, topic_of};

/// LMDB's compiled-in key size limit (`mdb_env_get_maxkeysize`).
pub const MAX_KEY_LEN: usize = 511;

/// LMDB's value size limit: a value's length is stored in 32 bits.
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;

/// How commits reach the disk.
///
/// LMDB is crash-safe against process crashes in every mode; the modes
/// differ in what an operating-system crash or power loss may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is flushed to disk before it returns (the default).
    #[default]
    Full,
    /// The final meta-page flush is skipped: an OS crash or power loss may
    /// lose the last commits, but never corrupts the store.
    MayLoseLastCommits,
    /// Nothing is flushed at commit: an OS crash or power loss may lose
    /// recent commits or corrupt the store. Process crashes lose nothing.
    MayCorruptOnPowerLoss,
}

/// Settings the engine needs to open an environment.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub map_size: usize,
    pub max_map_size: usize,
    pub max_readers: u32,
    pub max_tables: u32,
    pub durability: Durability,
    pub resize_wait: Duration,
    /// Opened with LMDB's read-only flag: writes are refused up front.
    pub read_only: bool,
}
