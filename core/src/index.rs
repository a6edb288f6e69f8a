//! Secondary indexes: their static description and the typed handles the
//! derive generates (`User::EMAIL`, `Post::AUTHOR`, ...).

use std::fmt;
use std::marker::PhantomData;

use crate::codec::key::{EncodeKey, Key, decode_exact};
use crate::model::{ModelInfo, Persistent};

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

/// The static description of model `M`, as a function pointer target.
#[doc(hidden)]
#[must_use]
pub fn info_of<M: Persistent>() -> &'static ModelInfo {
    M::INFO
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

/// Decodes an encoded index value and prints it with `Debug`.
#[doc(hidden)]
pub fn describe_encoded<V: Key>(bytes: &[u8]) -> String {
    match decode_exact::<V>(bytes) {
        Ok(value) => format!("{value:?}"),
        Err(_) => format!("<undecodable {bytes:?}>"),
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

    /// Every (index position, encoded value) pair, duplicates removed.
    pub(crate) fn entries(&self) -> Vec<(usize, &[u8])> {
        let mut entries: Vec<(usize, &[u8])> =
            self.spans.iter().map(|&(pos, start, end)| (pos, &self.bytes[start..end])).collect();
        entries.sort_unstable();
        entries.dedup();
        entries
    }
}

/// A typed handle on one index of model `M` whose values have type `V`;
/// accepted by every index query.
pub trait IndexHandle: Copy {
    /// The model the index belongs to.
    type Model: Persistent;
    /// The type of the index values.
    type Value: Key;
    /// The index's position in the model's `INFO.indexes`.
    fn position(&self) -> usize;
}

macro_rules! handle_type {
    ($(#[$doc:meta])* $name:ident, $value:ident => $value_ty:ty) => {
        $(#[$doc])*
        pub struct $name<M, $value> {
            position: usize,
            _types: PhantomData<fn() -> (M, $value)>,
        }

        impl<M, $value> $name<M, $value> {
            #[doc(hidden)]
            #[must_use]
            pub const fn new(position: usize) -> Self {
                Self { position, _types: PhantomData }
            }
        }

        impl<M, $value> Clone for $name<M, $value> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<M, $value> Copy for $name<M, $value> {}

        impl<M: Persistent, $value> fmt::Debug for $name<M, $value> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let info = &M::INFO.indexes[self.position];
                write!(f, "{}::{}({})", M::INFO.name, info.name, info.value_type)
            }
        }
    };
}

handle_type!(
    /// A plain, optional or computed index: many records per value.
    Index, V => V
);
handle_type!(
    /// A unique index: at most one record per value, so [`Persistent::load_by`]
    /// accepts it.
    UniqueIndex, V => V
);
handle_type!(
    /// An index whose values are keys of the model `P`, queried with
    /// [`Persistent::children`].
    ParentIndex, P => P::Key
);

impl<M: Persistent, V: Key> IndexHandle for Index<M, V> {
    type Model = M;
    type Value = V;
    fn position(&self) -> usize {
        self.position
    }
}

impl<M: Persistent, V: Key> IndexHandle for UniqueIndex<M, V> {
    type Model = M;
    type Value = V;
    fn position(&self) -> usize {
        self.position
    }
}

impl<M: Persistent, P: Persistent> IndexHandle for ParentIndex<M, P> {
    type Model = M;
    type Value = P::Key;
    fn position(&self) -> usize {
        self.position
    }
}
