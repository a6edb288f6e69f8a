//! The one error type of skyshelve.

use std::io;

/// What went wrong in a skyshelve operation.
///
/// Every variant leaves the store as it was before the failed operation:
/// writes happen inside an LMDB transaction that is aborted on error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record an operation needed does not exist.
    #[error("no {model} record with key {key}")]
    NotFound {
        /// The model's name.
        model: &'static str,
        /// The key, as `Debug` prints it.
        key: String,
    },

    /// `insert` found a record with the same key already stored.
    #[error("a {model} record with key {key} already exists")]
    AlreadyExists {
        /// The model's name.
        model: &'static str,
        /// The key, as `Debug` prints it.
        key: String,
    },

    /// A write would give a unique index two records for one value.
    #[error("unique index {model}.{index} already holds the value {value}")]
    UniqueViolation {
        /// The model's name.
        model: &'static str,
        /// The index's name.
        index: &'static str,
        /// The clashing value, as `Debug` prints it.
        value: String,
    },

    /// Stored bytes could not be turned back into a value.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded (a model, a map, a key).
        what: String,
        /// Why it failed.
        reason: String,
    },

    /// A value was refused before it was written because it would not read
    /// back: skyshelve stores values with bincode, which reads fields by
    /// position and cannot read serde's self-describing forms. See "What a
    /// stored value may contain" in [`guide::models`](crate::guide::models).
    #[error(
        "cannot store {what}: it would not read back ({reason}); stored values cannot use skip_serializing_if, \
         flatten, untagged or internally/adjacently tagged enums, or 'any' types such as serde_json::Value"
    )]
    UnreadableValue {
        /// What was being written.
        what: String,
        /// What reading it back found.
        reason: String,
    },

    /// A value could not be serialized.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Why it failed.
        reason: String,
    },

    /// A record was written by a newer version of the model than this
    /// program knows. It is left as it is: older code never overwrites it.
    #[error("a {model} record was written by model version {stored}; this program knows up to version {known}")]
    NewerVersion {
        /// The model's name.
        model: &'static str,
        /// The version that wrote the record.
        stored: u16,
        /// The newest version this program knows.
        known: u16,
    },

    /// This program's indexes of a model are not the ones the store keeps:
    /// another program (an older or newer build) opened the store last and
    /// set them; see [`guide::schema`](crate::guide::schema). The program may read
    /// records and query the indexes both share, but not write the model.
    #[error("model {model} does not match the store: {reason}")]
    SchemaMismatch {
        /// The model's name.
        model: &'static str,
        /// What differs.
        reason: String,
    },

    /// An encoded key is longer than LMDB accepts.
    #[error("{what} is {len} bytes once encoded; LMDB keys hold at most {max}")]
    KeyTooLong {
        /// Which key: the primary key or an index entry.
        what: String,
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A value is larger than the storage engine can hold in one entry.
    #[error("{what} is {len} bytes once encoded; a stored value holds at most {max}")]
    ValueTooLarge {
        /// Which value.
        what: String,
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// An operation inside a write transaction failed after it had already
    /// changed the transaction, and the caller went on: the transaction
    /// cannot be committed as the caller saw it, so it was rolled back as a
    /// whole. Nothing of it was written.
    #[error("the transaction was rolled back: an operation in it failed part-way ({reason})")]
    RolledBack {
        /// The error of the operation that failed part-way.
        reason: String,
    },

    /// A line of a JSON-lines import could not be imported; nothing of the
    /// import was written.
    #[error("line {line} of the import: {source}")]
    Import {
        /// The line's number, from 1.
        line: usize,
        /// Why it could not be imported.
        source: Box<Error>,
    },

    /// No model of this program has this name (admin work names models by
    /// their `#[persistent(name = ...)]`).
    #[error("no model of this program is named {name:?}; `skyshelve::models()` lists them")]
    UnknownModel {
        /// The name asked for.
        name: String,
    },

    /// The model was left out when this store was opened
    /// ([`StoreOptions::models`](crate::StoreOptions::models), or a
    /// read-only open of a store that has no tables for it yet).
    #[error("model {model} was not among the models of this store when it was opened")]
    ModelNotOpened {
        /// The model's name.
        model: &'static str,
    },

    /// Something of one store was used with a transaction of another.
    #[error("{what} belongs to another store than this transaction")]
    OtherStore {
        /// What was used.
        what: String,
    },

    /// A model or map name cannot be used as a database name.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The store cannot grow any further: the configured ceiling or the
    /// disk's free space is reached. Data written before is intact.
    #[error("store is full: map size {map_size} bytes cannot grow ({reason})")]
    StorageFull {
        /// The map size when growth was refused.
        map_size: usize,
        /// Why it cannot grow.
        reason: String,
    },

    /// The map had to grow, but transactions of this process stayed open
    /// longer than the configured wait.
    #[error("map growth waited {waited_ms} ms for open transactions of this process to end")]
    ResizeTimeout {
        /// How long it waited.
        waited_ms: u64,
    },

    /// The map had to be remapped (it grew), which waits for every
    /// transaction of this process to end, but the calling thread holds
    /// one open itself: a write started inside [`Store::read`](crate::Store::read),
    /// or a read transaction held across the call. End it first, or write
    /// through the transaction you have.
    #[error(
        "the store's map must grow, but this thread holds a transaction open on it; end that transaction first (a write inside Store::read cannot grow the map)"
    )]
    OwnTransactionOpen,

    /// The store was opened read-only
    /// ([`StoreOptions::read_only`](crate::StoreOptions::read_only)): it
    /// refuses every write.
    #[error("the store was opened read-only; open it without StoreOptions::read_only to write")]
    ReadOnly,

    /// The store holds this model's records in another layout at the same
    /// model version: another program (or another release) declares a
    /// type of that name with other fields, field types or key type.
    /// Nothing was written; reading would have decoded garbage.
    #[error(
        "model {model} is stored in another layout at model version {version}: {differences}; give this type a name of its own (#[persistent(name = \"...\")]), or raise its #[persistent(version = ...)] and migrate"
    )]
    LayoutMismatch {
        /// The model's name.
        model: &'static str,
        /// The model version both layouts claim.
        version: u16,
        /// What differs, field by field.
        differences: String,
    },

    /// A typed map was opened with other key or value types than it was
    /// made with ([`Store::map`](crate::Store::map)).
    #[error("map {name:?} was made with other types: {differences}")]
    MapTypeMismatch {
        /// The map's name.
        name: String,
        /// What differs.
        differences: String,
    },

    /// The store's folder was removed, or its data file replaced, while
    /// this process had it open: a write now would be acknowledged into a
    /// file no later open sees. Nothing was written.
    #[error("the store at {} was removed or replaced while open ({reason}); nothing was written", path.display())]
    StoreRemoved {
        /// The data file's path.
        path: std::path::PathBuf,
        /// What was found.
        reason: String,
    },

    /// An open asked for an option that the folder's environment, already
    /// open in this process with other options, cannot honour (see
    /// [`StoreOptions::open`](crate::StoreOptions::open)); nothing was
    /// opened.
    #[error("{path} is already open in this process with another `{option}`: {reason}")]
    OptionConflict {
        /// The store's folder.
        path: String,
        /// The option, as its `StoreOptions` method is named.
        option: &'static str,
        /// What the open environment has, and what to do.
        reason: String,
    },

    /// The program uses more tables (models, indexes and maps) than the
    /// store was opened for.
    #[error(
        "this store was opened with room for {max_tables} tables (models, indexes, maps); raise StoreOptions::map_room or StoreOptions::max_tables"
    )]
    TooManyTables {
        /// The configured number of tables.
        max_tables: u32,
    },

    /// The store's files are damaged: opening them would crash the process.
    #[error("the store in {path:?} is damaged: {reason}")]
    DamagedStore {
        /// The store's folder.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The folder holds an LMDB environment that another program made, not
    /// a skyshelve store: it was opened without writing anything to it.
    #[error(
        "{path:?} holds an LMDB environment that is not a skyshelve store (its tables: {found}); nothing was written"
    )]
    NotAStore {
        /// The folder.
        path: std::path::PathBuf,
        /// The first few of the tables (or entries) found in it.
        found: String,
    },

    /// The store was opened before a `fork()`; the child must open it again.
    #[error(
        "this store handle was opened in process {opened_in}, not in this process; open the store again after fork()"
    )]
    ForkedProcess {
        /// The process that opened the handle.
        opened_in: u32,
    },

    /// On SlateDB: another process opened the store as its writer, which
    /// fenced this one out. Nothing of the failed write was kept, and this
    /// handle is done: drop it, and open the store again to become the
    /// writer once more (fencing the other in turn). One writer process per
    /// store: see [`guide::slatedb`](crate::guide::slatedb).
    ///
    /// With [`Durability::Full`](crate::Durability) every acknowledged
    /// commit was in object storage before it was acknowledged, and `lost`
    /// is 0. With another durability a commit is acknowledged before
    /// SlateDB's next flush; those this writer acknowledged and object
    /// storage never got are lost, and `lost` counts them (at most that
    /// many: a flush that landed just before the fence may have kept some).
    #[error(
        "another process opened this SlateDB store as its writer and fenced this one out; reopen to write again{}",
        lost_commits(*lost)
    )]
    Fenced {
        /// Commits this handle acknowledged that object storage does not
        /// hold: lost with the fence.
        lost: u64,
    },

    /// On SlateDB: this process's handle on the store stopped after a
    /// failure of object storage that outlasted SlateDB's retries (a
    /// flush it could not make). SlateDB keeps the handle stopped: every
    /// later call fails the same way, also once object storage is back.
    /// What was acknowledged is in object storage (with
    /// [`Durability::Full`](crate::Durability)); drop every handle and
    /// open the store again to carry on (a server exits and lets its
    /// supervisor start it again).
    #[error("the store stopped after object storage failed ({reason}); open it again once object storage is back")]
    Stopped {
        /// What failed, as SlateDB said it.
        reason: String,
    },

    /// A read-only handle was asked to read an index that has no table in
    /// the store yet: the program declares it, but no writer has opened
    /// the store since it was added, so it was never built. A writable
    /// open builds it (the program itself, or `admin reindex`).
    #[error(
        "index {index} of model {model} is not built in this store yet; a read-only handle cannot build it: open the \
         store writable once (the program, or the admin CLI's reindex)"
    )]
    IndexNotBuilt {
        /// The model.
        model: &'static str,
        /// The index.
        index: &'static str,
    },

    /// The engine the store runs on does not offer this operation.
    #[error("{what} is not offered on {engine}; {instead}")]
    Unsupported {
        /// The operation asked for.
        what: &'static str,
        /// The engine the store runs on.
        engine: &'static str,
        /// What to do instead.
        instead: &'static str,
    },

    /// A write transaction was started by a thread that already has one open
    /// on this store (e.g. a model method called inside `Store::write`);
    /// LMDB would wait for itself. Use the transaction you have instead.
    #[error("this thread already has a write transaction open on this store; use its `tx` instead of starting another")]
    NestedWrite,

    /// A write names a parent that is not stored, on a parent index marked
    /// `must_exist`.
    #[error("{model}.{index} names {parent} record {key}, which does not exist")]
    ParentMissing {
        /// The child model's name.
        model: &'static str,
        /// The parent index.
        index: &'static str,
        /// The parent model's name.
        parent: &'static str,
        /// The missing parent key, as `Debug` prints it.
        key: String,
    },

    /// A delete was refused: records of another model point at this one
    /// through a parent index marked `on_delete = restrict`.
    #[error("the {model} record with key {key} still has {child} records pointing at it (on_delete = restrict)")]
    Restricted {
        /// The parent model's name.
        model: &'static str,
        /// The parent key, as `Debug` prints it.
        key: String,
        /// The child model's name.
        child: &'static str,
    },

    /// A record lock is held by someone else (`try_lock`, or a timed wait ran out).
    #[error("the {model} record with key {key} is locked by another holder")]
    Locked {
        /// The model's name.
        model: &'static str,
        /// The key, as `Debug` prints it.
        key: String,
    },

    /// The record is locked by a [`RecordLock`](crate::RecordLock) that
    /// this very thread took: waiting for it would be waiting for itself.
    /// Write the record through the guard instead.
    #[error("the {model} record with key {key} is locked by a guard this thread holds; write it through the guard")]
    LockedByThisThread {
        /// The model's name.
        model: &'static str,
        /// The key, as `Debug` prints it.
        key: String,
    },

    /// A record lock guard was given a record with another key than the
    /// one it locked.
    #[error("the guard locks the {model} record with key {locked}, not {given}")]
    WrongKey {
        /// The model's name.
        model: &'static str,
        /// The locked key, as `Debug` prints it.
        locked: String,
        /// The key of the record given, as `Debug` prints it.
        given: String,
    },

    /// A record's expiry time cannot be stored: it is before the Unix
    /// epoch, or too far ahead for the index (64 bits of milliseconds).
    #[error("{model} record has an expiry skyshelve cannot store: {reason}")]
    BadExpiry {
        /// The model's name.
        model: &'static str,
        /// What is wrong with the time.
        reason: String,
    },

    /// A sequence has issued its last number (`u64::MAX`); nothing was
    /// written.
    #[error("sequence {name:?} has issued its last number")]
    SequenceExhausted {
        /// The sequence's name.
        name: String,
    },

    /// History was asked of a model that keeps none: declare it with
    /// `#[persistent(history = N)]`.
    #[error("{model} keeps no history; declare it with #[persistent(history = N)]")]
    HistoryNotKept {
        /// The model's name.
        model: &'static str,
    },

    /// A record's history was asked for a moment before the oldest version
    /// kept: what the record was then is no longer known (trimmed, or
    /// written before the model kept history).
    #[error("the kept history of {model} record {key} does not reach back that far")]
    BeforeHistory {
        /// The model's name.
        model: &'static str,
        /// The record's key, as `Debug` prints it.
        key: String,
    },

    /// The folder or its files could not be used.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    /// Any other error reported by the storage engine.
    #[error("storage engine error: {0}")]
    Storage(String),
}

impl Error {
    /// A decode error said of `what` instead (the reason kept); any other
    /// error as it is. For decoders that do not know what they decode.
    pub(crate) fn decoding(self, what: impl FnOnce() -> String) -> Error {
        match self {
            Error::Decode { reason, .. } => Error::Decode { what: what(), reason },
            other => other,
        }
    }

    /// A copy of the error for each writer of a group commit that failed
    /// as a whole. I/O errors keep their kind; the rest keep their variant
    /// where it carries plain data, and their message otherwise.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io(err) => Error::Io(io::Error::new(err.kind(), err.to_string())),
            Error::StorageFull { map_size, reason } => {
                Error::StorageFull { map_size: *map_size, reason: reason.clone() }
            }
            Error::ResizeTimeout { waited_ms } => Error::ResizeTimeout { waited_ms: *waited_ms },
            Error::ForkedProcess { opened_in } => Error::ForkedProcess { opened_in: *opened_in },
            Error::NestedWrite => Error::NestedWrite,
            Error::OwnTransactionOpen => Error::OwnTransactionOpen,
            Error::ReadOnly => Error::ReadOnly,
            Error::Fenced { lost } => Error::Fenced { lost: *lost },
            Error::Stopped { reason } => Error::Stopped { reason: reason.clone() },
            Error::IndexNotBuilt { model, index } => Error::IndexNotBuilt { model, index },
            Error::TooManyTables { max_tables } => Error::TooManyTables { max_tables: *max_tables },
            Error::StoreRemoved { path, reason } => Error::StoreRemoved { path: path.clone(), reason: reason.clone() },
            Error::LayoutMismatch { model, version, differences } => {
                Error::LayoutMismatch { model, version: *version, differences: differences.clone() }
            }
            Error::Storage(message) => Error::Storage(message.clone()),
            other => Error::Storage(other.to_string()),
        }
    }
}

/// The result type of skyshelve operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The end of `Error::Fenced`'s message.
fn lost_commits(lost: u64) -> String {
    match lost {
        0 => String::new(),
        lost => format!(" ({lost} acknowledged commits had not reached object storage and are lost)"),
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn error_is_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static + std::error::Error>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn a_copied_storage_error_says_the_same() {
        let err = Error::Storage("the disk said no".into());
        assert_eq!(err.duplicate().to_string(), err.to_string());
    }

    #[test]
    fn unique_violation_names_model_index_and_value() {
        let err = Error::UniqueViolation { model: "users", index: "email", value: "\"a@b\"".into() };
        assert_eq!(err.to_string(), "unique index users.email already holds the value \"a@b\"");
    }
}
