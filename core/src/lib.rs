//! # skyshelve
//!
//! Typed, ORM-style persistence on LMDB. Put `#[derive(Persistent)]` on a
//! serde struct, mark a key and some indexes, and get records that live in
//! an LMDB environment on disk, shared safely by every thread and every OS
//! process that opens the same folder.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use skyshelve::{Persistent, Store};
//!
//! #[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! #[persistent(name = "users")]
//! struct User {
//!     #[persistent(key)]
//!     username: String,
//!     #[persistent(index, unique)]
//!     email: String,
//!     #[persistent(index)]
//!     team: Option<String>,
//!     logins: u64,
//! }
//!
//! #[derive(Persistent, Serialize, Deserialize, Debug, Clone)]
//! # #[persistent(name = "doc_lib_22")]
//! struct Post {
//!     #[persistent(key)]
//!     id: u64,
//!     #[persistent(parent = User)]
//!     author: String,
//!     #[persistent(index(with = Post::tag_values))]
//!     tags: Vec<String>,
//! }
//!
//! impl Post {
//!     fn tag_values(&self) -> Vec<String> {
//!         self.tags.iter().map(|t| t.to_lowercase()).collect()
//!     }
//! }
//!
//! let store = Store::temporary()?;
//! let ada = User { username: "ada".into(), email: "ada@example.com".into(), team: Some("core".into()), logins: 0 };
//! ada.insert(&store)?;
//! Post { id: 1, author: "ada".into(), tags: vec!["Rust".into(), "LMDB".into()] }.save(&store)?;
//!
//! User::update(&store, "ada", |u| u.logins += 1)?;
//! assert_eq!(User::load_by(&store, User::EMAIL, "ada@example.com")?.unwrap().logins, 1);
//! assert_eq!(User::scan_index(&store, User::TEAM, "core")?.len(), 1);
//! assert_eq!(Post::children(&store, Post::AUTHOR, "ada")?.len(), 1);
//! assert_eq!(Post::scan_index(&store, Post::TAGS, "rust")?.len(), 1);
//! # Ok::<(), skyshelve::Error>(())
//! ```
//!
//! The [`guide`] is the manual: models and indexes, logs, history, schema
//! changes, many processes and the guarantees, admin work, SlateDB.
//!
//! Features: `json` (default) adds JSON-lines export and import of any
//! model; `cli` adds `skyshelve::cli`, a ready admin command line.

mod admin;
mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
mod codec;
mod diagnostics;
mod engine;
mod error;
mod expiry;
mod fs;
mod group;
pub mod guide;
mod history;
mod index;
mod indexing;
mod layout;
mod lock;
mod locks;
mod map;
mod model;
mod persistent;
mod progress;
mod query;
mod record;
mod sequence;
mod store;
mod sync;
mod tables;
mod tools;
mod txn;
mod verify;
mod watch;

pub use admin::{MapStats, ModelStats, StoreStats};
pub use codec::key::{EncodeKey, Key, KeyBound, KeyPrefix, KeyRange, KeyRuleBroken, check_key_encoding};
pub use engine::{Activity, Durability};
pub use error::{Error, Result};
pub use expiry::ExpiryField;
pub use history::{AsOf, Change, Trim, Version};
pub use index::{Index, IndexHandle, ParentIndex, UniqueIndex};
pub use lock::RecordLock;
pub use map::{Map, MapInfo, maps};
pub use model::{IndexInfo, IndexKind, Model, ModelInfo, OnDelete, models};
pub use persistent::Persistent;
pub use progress::Progress;
pub use query::{Cursor, Page, Query};
pub use skyshelve_macros::Key;
/// Makes a serde struct a skyshelve model: `#[derive(Persistent)]` beside
/// `Serialize` and `Deserialize`, and `#[persistent(...)]` attributes on
/// the struct and its fields. Every mistake in them is a compile error
/// pointing at the attribute (`ui-tests/` holds each case).
///
/// # On the struct
///
/// - `name = "..."`: the model's name, which names its tables. Default:
///   the type's name in snake_case (`UserProfile` → `user_profile`). Two
///   programs sharing a folder and a name must agree on the layout; the
///   store refuses one that does not (`Error::LayoutMismatch`).
/// - `version = N` (default 1) and `from(Old = N, ...)` or `from = Old`:
///   the schema version written in every record, and the older types
///   records of older versions are read through (`From<Old>`).
/// - `history = N`: keep the last `N` versions of each record
///   ([`Persistent::history`], [`Persistent::as_of`]).
/// - `index(fields(a, b, ...), unique, name = "...")`: a composite index
///   whose values are the tuple of the fields (handle named after `name`,
///   or the fields joined: `A_B`).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use skyshelve::{Persistent, Store};
/// #[derive(Persistent, Serialize, Deserialize)]
/// #[persistent(name = "doc_attr_events", version = 1, history = 5,
///              index(name = "by_stream", fields(stream, position), unique))]
/// struct Event { #[persistent(key)] id: u64, stream: String, position: u32 }
///
/// let store = Store::temporary()?;
/// Event { id: 1, stream: "a".into(), position: 0 }.save(&store)?;
/// let found = Event::query_by(Event::BY_STREAM).range(("a".to_string(), 0)..).fetch(&store)?;
/// assert_eq!(found.records.len(), 1);
/// # Ok::<(), skyshelve::Error>(())
/// ```
///
/// # On a field
///
/// - `key`: the primary key; exactly one field (its type implements
///   [`Key`]: integers, strings, byte strings, tuples, `#[derive(Key)]`
///   types).
/// - `index`: a plain index (many records per value); an `Option` field's
///   `None` is not indexed. With `unique`: one record per value
///   (`Error::UniqueViolation`). The handle is the field's name in upper
///   case (`User::EMAIL`).
/// - `index(with = Model::function, name = "...")`: a computed index; the
///   function takes `&self` and returns a value or any `IntoIterator` of
///   values (or references to them), each indexed.
/// - `parent = Model`: an index whose values are keys of another model,
///   queried with [`Persistent::children`]; with `must_exist` a child must
///   name a stored parent (`Error::ParentMissing`), and `on_delete =
///   restrict | cascade | leave` (default `leave`) says what deleting the
///   parent does.
/// - `sequence` or `sequence = "name"` on a `u64` field: [`Persistent::append`]
///   gives it the next number of the sequence, gapless across processes.
///   An unnamed sequence is named `"<model>.<field>"` (for
///   [`ReadTx::last_sequence`] and [`WriteTx::next_sequence`]).
/// - `expires` on a `SystemTime` or `Option<SystemTime>` field: the record
///   is invisible from that moment and purged later
///   ([`Store::purge_expired`]).
///
/// ```
/// # use std::time::SystemTime;
/// # use serde::{Deserialize, Serialize};
/// # use skyshelve::{Persistent, Store};
/// #[derive(Persistent, Serialize, Deserialize)]
/// #[persistent(name = "doc_attr_team")]
/// struct Team { #[persistent(key)] name: String }
///
/// #[derive(Persistent, Serialize, Deserialize)]
/// #[persistent(name = "doc_attr_member")]
/// struct Member {
///     #[persistent(key, sequence)]
///     id: u64,
///     #[persistent(index, unique)]
///     email: String,
///     #[persistent(index)]
///     nickname: Option<String>,
///     #[persistent(parent = Team, must_exist, on_delete = cascade)]
///     team: String,
///     #[persistent(index(with = Member::domain_of, name = "domain"))]
///     address: String,
///     #[persistent(expires)]
///     until: Option<SystemTime>,
/// }
///
/// impl Member {
///     fn domain_of(&self) -> Option<String> {
///         self.address.split_once('@').map(|(_, domain)| domain.to_owned())
///     }
/// }
///
/// let store = Store::temporary()?;
/// Team { name: "core".into() }.save(&store)?;
/// let mut member = Member {
///     id: 0, email: "a@x.org".into(), nickname: None, team: "core".into(),
///     address: "a@x.org".into(), until: None,
/// };
/// assert_eq!(member.append(&store)?, 1);
/// assert_eq!(store.read(|tx| tx.last_sequence("doc_attr_member.id"))?, Some(1));
/// assert_eq!(Member::children(&store, Member::TEAM, &"core".to_string())?.len(), 1);
/// assert_eq!(Member::scan_index(&store, Member::DOMAIN, &"x.org".to_string())?.len(), 1);
/// # Ok::<(), skyshelve::Error>(())
/// ```
#[doc(inline)]
pub use skyshelve_macros::Persistent;
pub use store::{MAP_ROOM, Store, StoreOptions};
pub use txn::{ReadTx, Transaction, WriteTx};
pub use verify::{ModelReport, Problem, VerifyReport};
pub use watch::{Changed, Watch};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Used by the code `#[derive(Persistent)]` generates; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::admin::{export_map, import_map};
    pub use crate::codec::key::describe_encoded;
    pub use crate::expiry::index_value as expiry_index_value;
    pub use crate::index::info_of;
    pub use crate::map::MapRegistration;
    pub use crate::model::{IndexEntries, ModelOps, ModelSlot, Registration};
    pub use crate::tools::ModelTools;
    pub use inventory;

    /// Decodes the body of a record written by an older model version.
    pub fn decode_payload<T: serde::de::DeserializeOwned>(payload: &[u8], model: &str) -> crate::Result<T> {
        crate::codec::value::decode_body(payload, model)
    }

    /// The stored-value decoder, for the fuzz targets.
    pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> crate::Result<T> {
        crate::codec::value::decode(bytes, "fuzz input").map(|(_, value)| value)
    }

    /// Checks at compile time that a parent field has the parent's key type.
    pub const fn assert_parent_key<P: crate::Model<Key = K>, K>() {}

    /// The error of a derived `Key` meeting a variant number it does not have.
    #[must_use]
    pub fn unknown_variant(type_name: &str, tag: u32) -> crate::Error {
        crate::Error::Decode { what: format!("{type_name} key"), reason: format!("no variant number {tag}") }
    }

    /// A type a `#[persistent(sequence)]` field may have.
    #[diagnostic::on_unimplemented(
        message = "a #[persistent(sequence)] field must be a `u64`, not `{Self}`",
        label = "sequences issue u64 numbers"
    )]
    pub trait SequenceField {
        /// The field's value for an issued number.
        fn from_number(number: u64) -> Self;
    }
    impl SequenceField for u64 {
        fn from_number(number: u64) -> Self {
            number
        }
    }

    /// Checks at compile time that a key or index type has an ordered encoding.
    pub const fn assert_key<K: crate::Key>() {}
}
