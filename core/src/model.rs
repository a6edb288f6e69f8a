//! The schema: what `#[derive(Persistent)]` knows about a model and gives
//! the runtime. The `Model` trait (the derive's contract), the static
//! descriptions of models and their indexes (`ModelInfo`, `IndexInfo`),
//! the index values of one record (`IndexEntries`), the low operations
//! (`ModelOps`) and the registry of every model in the program. What users
//! call on a model is `persistent.rs`.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::key::{EncodeKey, Key};
use crate::error::Result;

/// What the derive knows about a model.
#[derive(Debug)]
pub struct ModelInfo {
    /// The model's name, used for its table: `#[persistent(name = "..")]`
    /// or the snake_case type name.
    pub name: &'static str,
    /// The schema version written in every record's header.
    pub version: u16,
    /// The Rust type of the key.
    pub key_type: &'static str,
    /// The secondary indexes, in declaration order.
    pub indexes: &'static [IndexInfo],
    /// How many previous versions of each record are kept
    /// (`#[persistent(history = N)]`); 0: no history.
    pub history: u32,
    /// Where the model's tables sit in every store of this process.
    #[doc(hidden)]
    pub slot: &'static ModelSlot,
    /// The model's operations for the layers that know it only by this
    /// description: the write path below the typed edge, index builds,
    /// checks. (Whole-store work registers its own: `tools.rs`.)
    #[doc(hidden)]
    pub ops: ModelOps,
}

/// The type-erased operations of one model that the layers below the
/// typed edge need, built once by the derive with `ModelOps::of` (in
/// `record.rs`). Their fields are the runtime's own.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ModelOps {
    /// The serde shape of the model's records, recorded in the catalog so
    /// that a program with another shape under the same name is refused.
    pub(crate) layout: fn() -> crate::layout::Layout,
    /// A key, encoded, as errors name it.
    pub(crate) describe_key: fn(&[u8]) -> String,
    /// The index values of a stored record, for the write path below the
    /// typed edge; `None` when an older model version wrote it (its entries
    /// came from older code).
    pub(crate) entries_of_stored: fn(&[u8]) -> Result<Option<IndexEntries>>,
    /// A stored record of any version, read as far as index builds and
    /// checks need it.
    pub(crate) read_stored: fn(&[u8]) -> Result<StoredRecord>,
}

/// What index builds and checks need of a stored record.
pub(crate) struct StoredRecord {
    /// Its key, encoded.
    pub key: Vec<u8>,
    /// Its index values, as this program computes them.
    pub entries: IndexEntries,
}

/// How an index gets its values from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexKind {
    /// The value of a field.
    Field,
    /// The value inside an `Option` field; `None` is not indexed.
    Optional,
    /// Values returned by a function of the record (zero or more).
    Computed,
    /// A field holding the key of a record of another model (see
    /// [`IndexInfo::parent`]).
    Parent,
    /// The tuple of several fields (`#[persistent(index(fields(a, b)))]`
    /// on the struct), queried by any leading part of the tuple.
    Composite,
    /// The record's expiry time (`#[persistent(expires)]`), in
    /// milliseconds since the Unix epoch.
    Expiry,
}

/// What deleting a parent record does to the records whose parent index
/// points at it (`#[persistent(parent = Model, on_delete = ...)]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnDelete {
    /// Nothing: the children keep pointing at a key that no longer exists.
    #[default]
    Leave,
    /// The delete fails with [`Error::Restricted`](crate::Error::Restricted)
    /// while any child points at the parent.
    Restrict,
    /// The children are deleted in the same transaction (and theirs, by
    /// their own rules).
    Cascade,
}

/// What the derive knows about one index of a model.
#[derive(Clone, Copy)]
pub struct IndexInfo {
    /// The index's name (the field name).
    pub name: &'static str,
    /// Where its values come from.
    pub kind: IndexKind,
    /// At most one record per value.
    pub unique: bool,
    /// The Rust type of the index values.
    pub value_type: &'static str,
    /// Where computed values come from: the `with` function of a computed
    /// index, the parent model of a parent index, the fields of a
    /// composite index (`"aggregate, version"`), empty otherwise.
    pub source: &'static str,
    /// Renders an encoded value for error messages.
    #[doc(hidden)]
    pub describe: fn(&[u8]) -> String,
    /// The parent model of a parent index. A function, so that a model can
    /// be its own parent without a cycle between constants.
    #[doc(hidden)]
    pub parent_info: Option<fn() -> &'static ModelInfo>,
    /// A parent index whose values must be keys of stored parents
    /// (`must_exist`): a write naming a missing parent fails with
    /// [`Error::ParentMissing`](crate::Error::ParentMissing).
    pub must_exist: bool,
    /// What deleting a parent does to the records pointing at it.
    pub on_delete: OnDelete,
}

impl IndexInfo {
    /// The model whose keys a parent index holds.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::Persistent;
    /// # #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_index_parent_user")]
    /// # struct User { #[persistent(key)] name: String }
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_index_parent_post")]
    /// struct Post { #[persistent(key)] id: u64, #[persistent(parent = User)] author: String }
    ///
    /// let author = &Post::INFO.indexes[0];
    /// assert_eq!(author.parent().unwrap().name, User::INFO.name);
    /// ```
    #[must_use]
    pub fn parent(&self) -> Option<&'static ModelInfo> {
        self.parent_info.map(|info| info())
    }

    /// How the index is computed, as the store's catalog records it: an
    /// index whose fingerprint changes is rebuilt when the store opens.
    /// A change inside a `with` function does not show here; rename the
    /// function to have the index rebuilt.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use skyshelve::Persistent;
    /// #[derive(Persistent, Serialize, Deserialize)]
    /// # #[persistent(name = "doc_index_fingerprint")]
    /// struct User {
    ///     #[persistent(key)]
    ///     id: u64,
    ///     #[persistent(index, unique)]
    ///     email: String,
    ///     #[persistent(index(with = lowercase_tags, value = String))]
    ///     tags: Vec<String>,
    /// }
    /// fn lowercase_tags(user: &User) -> Vec<String> {
    ///     user.tags.iter().map(|t| t.to_lowercase()).collect()
    /// }
    ///
    /// assert_eq!(User::INFO.indexes[0].fingerprint(), "field unique email: String");
    /// assert_eq!(User::INFO.indexes[1].fingerprint(), "computed tags: String with lowercase_tags");
    /// ```
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let kind = match self.kind {
            IndexKind::Field => "field",
            IndexKind::Optional => "optional",
            IndexKind::Computed => "computed",
            IndexKind::Parent => "parent",
            IndexKind::Composite => "composite",
            IndexKind::Expiry => "expiry",
        };
        let unique = if self.unique { " unique" } else { "" };
        let source = match self.kind {
            IndexKind::Computed => format!(" with {}", self.source),
            IndexKind::Parent => format!(" of {}", self.source),
            IndexKind::Composite => format!(" of ({})", self.source),
            IndexKind::Field | IndexKind::Optional | IndexKind::Expiry => String::new(),
        };
        format!("{kind}{unique} {}: {}{source}", self.name, self.value_type)
    }
}

impl fmt::Debug for IndexInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexInfo")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("unique", &self.unique)
            .field("value_type", &self.value_type)
            .finish_non_exhaustive()
    }
}

/// The encoded index values of one record, collected by the derive's
/// generated `index_entries` into one buffer to avoid an allocation per
/// value.
#[derive(Debug, Default)]
pub struct IndexEntries {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize, usize)>,
}

impl IndexEntries {
    /// Room for `indexes` values of a usual size, so that collecting them
    /// reallocates neither buffer (an update collects them twice: growing
    /// the buffers cost about 1,000 of the 5,000 instructions it spent
    /// beyond raw LMDB).
    pub(crate) fn with_capacity(indexes: usize) -> Self {
        IndexEntries { bytes: Vec::with_capacity(indexes * 32), spans: Vec::with_capacity(indexes) }
    }

    /// Records `value` as a value of the index at `position`.
    pub fn add<V: EncodeKey + ?Sized>(&mut self, position: usize, value: &V) {
        let start = self.bytes.len();
        value.encode_key(&mut self.bytes);
        self.spans.push((position, start, self.bytes.len()));
    }

    /// Records an already encoded value of the index at `position`.
    pub(crate) fn add_encoded(&mut self, position: usize, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.spans.push((position, start, self.bytes.len()));
    }

    /// Whether both hold the same values, added in the same order (as the
    /// generated `index_entries` of one model always adds them).
    pub(crate) fn same_as(&self, other: &IndexEntries) -> bool {
        self.bytes == other.bytes && self.spans == other.spans
    }

    /// Every (index position, encoded value) pair, in the order added; a
    /// value a record gives an index twice (a list field) comes twice.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.spans.iter().map(|&(pos, start, end)| (pos, &self.bytes[start..end]))
    }

    /// Every (index position, encoded value) pair, sorted, duplicates
    /// removed.
    pub(crate) fn entries(&self) -> Vec<(usize, &[u8])> {
        let mut entries: Vec<(usize, &[u8])> = self.iter().collect();
        entries.sort_unstable();
        entries.dedup();
        entries
    }
}

/// A process-wide number for a model, so that a store finds a model's
/// tables by index instead of hashing its name on every operation.
#[doc(hidden)]
#[derive(Debug)]
pub struct ModelSlot(AtomicUsize);

impl ModelSlot {
    const UNASSIGNED: usize = usize::MAX;

    #[must_use]
    pub const fn new() -> Self {
        ModelSlot(AtomicUsize::new(Self::UNASSIGNED))
    }

    /// The model's number, assigned on first use.
    pub(crate) fn index(&self) -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let current = self.0.load(Ordering::Acquire);
        if current != Self::UNASSIGNED {
            return current;
        }
        let candidate = NEXT.fetch_add(1, Ordering::Relaxed);
        match self.0.compare_exchange(Self::UNASSIGNED, candidate, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => candidate,
            Err(assigned) => assigned,
        }
    }
}

impl Default for ModelSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// Registration of a model in the program-wide registry (see [`models`]).
#[doc(hidden)]
#[derive(Debug)]
pub struct Registration(pub &'static ModelInfo);

inventory::collect!(Registration);

/// Every model compiled into this program, sorted by name. Two models may
/// not share a name: [`Store::open`](crate::Store::open) refuses such a program.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use skyshelve::Persistent;
/// #[derive(Persistent, Serialize, Deserialize)]
/// #[persistent(name = "notes")]
/// struct Note { #[persistent(key)] id: u32 }
///
/// let notes = skyshelve::models().into_iter().find(|m| m.name == "notes").unwrap();
/// assert_eq!(notes.key_type, "u32");
/// ```
#[must_use]
pub fn models() -> Vec<&'static ModelInfo> {
    let mut all: Vec<_> = inventory::iter::<Registration>.into_iter().map(|r| r.0).collect();
    all.sort_by_key(|m| m.name);
    all
}

/// The contract between `#[derive(Persistent)]` and the runtime: what the
/// derive knows about a model (its key, its description, its index values
/// and the other hidden items). Every type with the derive implements it;
/// the methods users call are [`Persistent`](crate::Persistent)'s,
/// implemented for every `Model`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use skyshelve::{Model, Persistent};
///
/// #[derive(Persistent, Serialize, Deserialize, Debug, PartialEq)]
/// # #[persistent(name = "doc_model_contract")]
/// struct User {
///     #[persistent(key)]
///     name: String,
///     #[persistent(index, unique)]
///     email: String,
/// }
///
/// fn describe<M: Model>() -> String {
///     format!("{} ({} indexes)", M::INFO.name, M::INFO.indexes.len())
/// }
/// assert_eq!(describe::<User>(), "doc_model_contract (1 indexes)");
/// assert_eq!(User::INFO.name, "doc_model_contract");
/// # Ok::<(), skyshelve::Error>(())
/// ```
pub trait Model: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The type of the key field.
    type Key: Key;

    /// The model's static description (the derive also gives the type an
    /// inherent `INFO`, so that `User::INFO` needs no import of this trait).
    const INFO: &'static ModelInfo;

    /// The record's key ([`Persistent::key`](crate::Persistent::key) for users).
    fn record_key(&self) -> &Self::Key;

    /// Adds the record's encoded index values to `entries`.
    #[doc(hidden)]
    fn index_entries(&self, entries: &mut IndexEntries);

    /// Whether the derive could see that every record of the model reads
    /// back as it was written (plain field types, no serde attribute that
    /// changes the shape): writes then skip the read-back check that
    /// otherwise refuses a record the codec could not read.
    #[doc(hidden)]
    const READS_BACK: bool = false;

    /// The position of the expiry index (`#[persistent(expires)]`), if
    /// the model has one.
    #[doc(hidden)]
    const EXPIRY: Option<usize> = None;

    /// When the record expires (`None`: never, or no expiry field).
    #[doc(hidden)]
    fn expires_at(&self) -> Option<std::time::SystemTime> {
        None
    }

    /// The sequences the record's `#[persistent(sequence)]` fields draw
    /// from, in field order (see [`Persistent::append`](crate::Persistent::append)).
    #[doc(hidden)]
    const SEQUENCES: &'static [&'static str] = &[];

    /// Gives the `position`th sequence field (in `SEQUENCES` order) its
    /// number.
    #[doc(hidden)]
    fn set_sequence(&mut self, position: usize, value: u64) {
        let _ = (position, value);
    }

    /// The number in the `position`th sequence field.
    #[doc(hidden)]
    fn sequence_number(&self, position: usize) -> u64 {
        let _ = position;
        0
    }

    /// Decodes a record written by an older `version` (generated from
    /// `#[persistent(from(...))]`); `None` when that version is unknown.
    #[doc(hidden)]
    fn upgrade(version: u16, payload: &[u8]) -> Option<Result<Self>> {
        let _ = (version, payload);
        None
    }
}
