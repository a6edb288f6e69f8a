//! What can go wrong with a stream request: one enum for the store and the
//! HTTP layer, each variant named for the status it becomes
//! (`http/error.rs` holds that mapping).

use crate::offset::Offset;

/// What can go wrong, each named for the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No such stream (or it expired).
    #[error("no stream at this path")]
    NotFound,
    /// The stream was deleted (or expired) but its forks keep it.
    #[error("the stream is gone")]
    Gone,
    /// An offset handed out by a stream deleted since (one that was at
    /// this path before the stream there now was created): its data is
    /// not this stream's.
    #[error("the offset belongs to a stream deleted since; read this stream again from -1")]
    OffsetGone,
    /// A fork's source does not exist.
    #[error("no stream at the fork source {0:?}")]
    ForkSourceNotFound(String),
    /// A create met a stream with another configuration.
    #[error("the stream exists with another configuration")]
    ConfigConflict,
    /// An append's content type is not the stream's.
    #[error("content type {given:?} does not match the stream's {stream:?}")]
    ContentTypeMismatch {
        /// The stream's content type.
        stream: String,
        /// The request's.
        given: String,
    },
    /// `Stream-Seq` not above the last one.
    #[error("Stream-Seq {given:?} is not above the last one, {last:?}")]
    SeqRegression {
        /// The last accepted value.
        last: String,
        /// The request's.
        given: String,
    },
    /// An append to a closed stream.
    #[error("the stream is closed")]
    Closed {
        /// The stream's final tail.
        tail: Offset,
    },
    /// A producer epoch below the stream's record of it (a zombie).
    #[error("producer epoch is stale; the current one is {current}")]
    StaleEpoch {
        /// The producer's current epoch.
        current: u64,
    },
    /// A producer sequence that skips numbers.
    #[error("producer sequence {received} skips ahead of {expected}")]
    SeqGap {
        /// The sequence number expected next.
        expected: u64,
        /// The one received.
        received: u64,
    },
    /// A malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// A body over the server's byte limit (its full size is unknown:
    /// reading stopped at the limit).
    #[error("the body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A JSON append with more messages than the server takes at once.
    #[error("the body holds {count} JSON messages; the limit is {limit} per request")]
    TooManyMessages {
        /// The messages in the body.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A create at a path that a deleted stream still holds for its forks.
    #[error("the path is held by the forks of a deleted or expired stream until they are deleted")]
    HeldByForks,
    /// A stream path longer than the server takes.
    #[error("the stream path is {length} bytes; the limit is {limit}")]
    PathTooLong {
        /// The path's length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// The client took longer than the server allows to send its body.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// A reader node was asked for an offset the writer handed out and its
    /// replica did not reach it within the long-poll timeout.
    #[error("this reader node has not caught up with the writer at that offset yet; try again")]
    ReplicaBehind,
    /// A reader node could not reach the writer node to forward a write.
    #[error("the writer node could not be reached; try again")]
    WriterUnreachable,
    /// The server failed inside (a store task that panicked): not the
    /// client's doing.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] skyshelve::Error),
}

/// The result type of the stream store.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;
