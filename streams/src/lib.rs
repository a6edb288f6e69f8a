//! # skyshelve-streams
//!
//! A [Durable Streams](https://github.com/durable-streams/durable-streams)
//! server and stream store on skyshelve: append-only byte streams addressed
//! by URL, created with a content type and an optional TTL or expiry,
//! appended to (with `Stream-Seq` and idempotent producers), read from an
//! offset, and tailed live — by any number of server processes sharing one
//! store folder, or (feature `slatedb`) by a writer node and any number of
//! reader nodes on object storage (`Streams::open_objects`).
//!
//! [`Streams`] is the store as a typed Rust API; [`http`] serves it.

mod error;
pub mod http;
mod json;
mod model;
mod offset;
mod store;
mod types;

pub use error::{Result, StreamError};
pub use json::array as json_array;
pub use offset::{Offset, Start};
#[cfg(feature = "slatedb")]
pub use store::ObjectStore;
pub use store::{MAX_FORK_DEPTH, Streams};
pub use types::{Append, Appended, Create, Created, Fork, Limits, Meta, Producer, Read, is_json, media_type};
