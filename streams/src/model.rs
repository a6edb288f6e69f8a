//! The stream store's records: all of it is three skyshelve models in one
//! store, so that every append — its bytes, the stream's tail, its
//! `Stream-Seq` and the producer's state — commits in one transaction.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use skyshelve::Persistent;

/// A stream: its configuration and where its tail is.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "ds_stream")]
pub struct StreamRecord {
    /// This incarnation of the path: a stream deleted and created again
    /// gets a new id, so that nothing of the old one is ever read as new.
    #[persistent(key, sequence)]
    pub id: u64,
    /// The stream's URL path.
    #[persistent(index, unique)]
    pub path: String,
    /// The content type given at creation.
    pub content_type: String,
    /// `Stream-TTL` in seconds: the stream expires this long after its
    /// last read or write.
    pub ttl_secs: Option<u64>,
    /// `Stream-Expires-At`, as given (an absolute expiry is not renewed).
    pub expires_at_text: Option<String>,
    /// When the stream expires (the TTL's or the absolute expiry).
    pub expiry: Option<SystemTime>,
    /// When the store removes the stream: its expiry, unless forks hold
    /// it (then `None`, and `held`: a stream whose forks read its data is
    /// kept, answering 410, until the last fork goes).
    #[persistent(expires)]
    pub expires: Option<SystemTime>,
    /// Kept only for its forks (deleted, or its expiry moved to `expiry`);
    /// the garbage collection looks at these.
    #[persistent(index)]
    pub held: bool,
    /// Deleted while forks still read it: answers 410.
    pub deleted: bool,
    /// The stream this one was forked from, if any.
    #[persistent(parent = StreamRecord)]
    pub fork_of: Option<u64>,
    /// Offsets below this are the source's (and the sub-offset prefix,
    /// copied, starts here).
    pub fork_offset: u64,
    /// How the fork was asked for (source path, offset, sub-offset), so
    /// that creating it again is recognised.
    pub fork_spec: Option<(String, u64, u64)>,
    /// The tail offset: bytes (or JSON message bytes) appended so far.
    pub tail: u64,
    /// The last `Stream-Seq` accepted.
    pub last_seq: Option<String>,
    /// Closed streams take no more appends.
    pub closed: bool,
}

/// One append's bytes (or, in JSON mode, one message), keyed by the
/// stream's id and the offset it starts at.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "ds_chunk")]
pub struct Chunk {
    /// (stream id, start offset).
    #[persistent(key)]
    pub at: (u64, u64),
    /// The stream id again, as a parent index: deleting (or purging) a
    /// stream deletes its chunks in the same transaction.
    #[persistent(parent = StreamRecord, on_delete = cascade)]
    pub stream: u64,
    /// The bytes, as a string of bytes for a compact encoding.
    pub data: Bytes,
    /// How many messages (chunks) the append that wrote this one wrote,
    /// on its first chunk; 0 on the others. A fork's sub-offset counts
    /// into one append.
    pub batch: u32,
}

/// An idempotent producer's state on one stream.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "ds_producer")]
pub struct ProducerRecord {
    /// (stream id, producer id).
    #[persistent(key)]
    pub at: (u64, String),
    /// The stream id again, so that the stream's deletion takes its
    /// producers with it.
    #[persistent(parent = StreamRecord, on_delete = cascade)]
    pub stream: u64,
    /// The producer's current epoch.
    pub epoch: u64,
    /// The highest sequence number accepted in that epoch.
    pub last_seq: u64,
}

/// Bytes that serde writes as one byte string rather than one element at
/// a time (`Vec<u8>` goes element by element).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(bytes.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}
