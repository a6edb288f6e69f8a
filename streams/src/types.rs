//! The stream store's requests and answers: what a create, an append or a
//! read asks for and what it returns, and the limits requests are held to.
//! `store.rs` holds the rules that turn one into the other.

use std::time::{Duration, SystemTime};

use crate::model::StreamRecord;
use crate::offset::Offset;

/// A TTL is renewed by a read only when this much of it has passed since
/// the last renewal.
pub(crate) const RENEW_AFTER: Duration = Duration::from_millis(100);

/// A stream's configuration and tail.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// The stream's path.
    pub path: String,
    /// The id of this incarnation of the path.
    pub id: u64,
    /// The content type given at creation.
    pub content_type: String,
    /// The tail offset.
    pub tail: Offset,
    /// `Stream-TTL`, if set.
    pub ttl_secs: Option<u64>,
    /// `Stream-Expires-At`, as given, if set.
    pub expires_at_text: Option<String>,
    /// When the stream expires, if it does.
    pub expires: Option<SystemTime>,
    /// Whether the stream takes no more appends.
    pub closed: bool,
}

impl Meta {
    pub(crate) fn of(record: &StreamRecord) -> Meta {
        Meta {
            path: record.path.clone(),
            id: record.id,
            content_type: record.content_type.clone(),
            tail: Offset::new(record.id, record.tail),
            ttl_secs: record.ttl_secs,
            expires_at_text: record.expires_at_text.clone(),
            expires: record.expiry,
            closed: record.closed,
        }
    }

    /// Whether a read at `now` renews this stream's TTL: it has one, and
    /// `RENEW_AFTER` of it has passed since the last renewal (so that a
    /// burst of reads is not a burst of writes).
    #[must_use]
    pub fn renewal_due(&self, now: SystemTime) -> bool {
        let (Some(ttl), Some(expires)) = (self.ttl_secs, self.expires) else { return false };
        let renewed = now + Duration::from_secs(ttl);
        renewed.duration_since(expires).unwrap_or_default() >= RENEW_AFTER
    }

    /// Whether the stream is in JSON mode (`application/json`).
    #[must_use]
    pub fn is_json(&self) -> bool {
        is_json(&self.content_type)
    }
}

/// Whether a content type is JSON mode's (parameters and case ignored).
#[must_use]
pub fn is_json(content_type: &str) -> bool {
    media_type(content_type) == "application/json"
}

/// The media type of a content type, lower-case, without parameters.
#[must_use]
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// A stream to create.
#[derive(Debug, Clone, Default)]
pub struct Create {
    /// Its content type (a fork's is the source's when `None`; otherwise
    /// `application/octet-stream`).
    pub content_type: Option<String>,
    /// `Stream-TTL` in seconds.
    pub ttl_secs: Option<u64>,
    /// `Stream-Expires-At`: the time and its text.
    pub expires_at: Option<(SystemTime, String)>,
    /// Create it closed.
    pub closed: bool,
    /// Initial content.
    pub body: Vec<u8>,
    /// Fork another stream: its path, the offset (its tail when `None`)
    /// and the sub-offset into the append at that offset.
    pub fork: Option<Fork>,
}

/// Where a fork starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fork {
    /// The source stream's path.
    pub source: String,
    /// Inherit the source up to here (its tail when `None`).
    pub offset: Option<Offset>,
    /// Then this many bytes (or, in JSON mode, messages) of the append
    /// that starts at `offset`.
    pub sub_offset: u64,
}

/// Whether a create made the stream or found it.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Made now.
    New(Meta),
    /// Already there with the same configuration.
    Existing(Meta),
}

/// An idempotent producer's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producer {
    /// `Producer-Id`.
    pub id: String,
    /// `Producer-Epoch`.
    pub epoch: u64,
    /// `Producer-Seq`.
    pub seq: u64,
}

/// An append.
#[derive(Debug, Clone, Default)]
pub struct Append {
    /// The request's content type, if it gave one.
    pub content_type: Option<String>,
    /// The bytes (may be empty only to close).
    pub body: Vec<u8>,
    /// `Stream-Seq`.
    pub stream_seq: Option<String>,
    /// Producer headers.
    pub producer: Option<Producer>,
    /// `Stream-Closed: true`: close the stream (after this body, if any).
    pub close: bool,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// The bytes were written (or the stream closed).
    Written {
        /// The stream after the append.
        meta: Meta,
        /// The producer's (epoch, highest accepted seq), if one was named.
        producer: Option<(u64, u64)>,
    },
    /// A producer's retry of an append already written: nothing changed.
    Duplicate {
        /// The stream as it is.
        meta: Meta,
        /// The producer's (epoch, highest accepted seq).
        producer: (u64, u64),
    },
}

impl Appended {
    /// The stream as the append left it (or found it, for a duplicate).
    #[must_use]
    pub fn meta(&self) -> &Meta {
        match self {
            Appended::Written { meta, .. } | Appended::Duplicate { meta, .. } => meta,
        }
    }
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// The stream as the read saw it.
    pub meta: Meta,
    /// The bytes read; in JSON mode, one entry per message.
    pub chunks: Vec<Vec<u8>>,
    /// Where the next read starts.
    pub next: Offset,
    /// Whether the read reached the tail.
    pub up_to_date: bool,
}

/// Limits on requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest append body, in bytes.
    pub max_append: usize,
    /// The most JSON messages one request may append (each is a record of
    /// its own, so this bounds how long one append holds the writer).
    pub max_messages: usize,
    /// About how many bytes one read returns (at least one whole append).
    pub max_read: usize,
    /// The most bytes the store's data file may grow to; a write that
    /// needs more fails with `Store(StorageFull)` (HTTP 507) and deleting
    /// streams makes room again. `None`: as far as the disk allows.
    pub max_store: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_append: 16 << 20, max_messages: 10_000, max_read: 1 << 20, max_store: None }
    }
}
