//! The stream store as a typed, synchronous Rust API: create, append,
//! read from an offset, head, delete, close, and watch, on skyshelve
//! models in one store. Every operation is one transaction; an append
//! checks the stream's content type, its `Stream-Seq` and the producer's
//! epoch and sequence, and writes the bytes, the new tail and the
//! producer's state, all in that one transaction — from any number of
//! threads and processes at once.

use std::path::Path;
use std::time::{Duration, SystemTime};

use skyshelve::{Durability, Persistent, Store, WriteTx};

use crate::model::{Bytes, Chunk, ProducerRecord, StreamRecord};
use crate::offset::{Offset, Start};

/// What can go wrong, each named for the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No such stream (or it expired).
    #[error("no stream at this path")]
    NotFound,
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
    /// A body over the server's limit.
    #[error("the body is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] skyshelve::Error),
}

/// The result type of the stream store.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;

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
    fn of(record: &StreamRecord) -> Meta {
        Meta {
            path: record.path.clone(),
            id: record.id,
            content_type: record.content_type.clone(),
            tail: Offset(record.tail),
            ttl_secs: record.ttl_secs,
            expires_at_text: record.expires_at_text.clone(),
            expires: record.expires,
            closed: record.closed,
        }
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
    /// Its content type.
    pub content_type: String,
    /// `Stream-TTL` in seconds.
    pub ttl_secs: Option<u64>,
    /// `Stream-Expires-At`: the time and its text.
    pub expires_at: Option<(SystemTime, String)>,
    /// Create it closed.
    pub closed: bool,
    /// Initial content.
    pub body: Vec<u8>,
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
    /// About how many bytes one read returns (at least one whole append).
    pub max_read: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_append: 16 << 20, max_read: 1 << 20 }
    }
}

/// A TTL is renewed by a read only when this much of it has passed since
/// the last renewal, so that a burst of reads is not a burst of writes.
const RENEW_AFTER: Duration = Duration::from_millis(100);

/// The stream store: every stream of one skyshelve store.
#[derive(Clone)]
pub struct Streams {
    store: Store,
    limits: Limits,
}

impl Streams {
    /// Opens (creating) the stream store in folder `dir`.
    ///
    /// ```
    /// use skyshelve_streams::{Append, Create, Start, Streams};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let streams = Streams::open(dir.path(), skyshelve::Durability::Full, Default::default())?;
    /// streams.create("/chat", Create { content_type: "text/plain".into(), ..Create::default() })?;
    /// streams.append("/chat", Append { content_type: Some("text/plain".into()), body: b"hello".to_vec(), ..Append::default() })?;
    /// let read = streams.read("/chat", Start::Beginning)?;
    /// assert_eq!(read.chunks.concat(), b"hello");
    /// assert!(read.up_to_date);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: &Path, durability: Durability, limits: Limits) -> Result<Streams> {
        let store = Store::options()
            .models([StreamRecord::INFO, Chunk::INFO, ProducerRecord::INFO])
            .durability(durability)
            .purge_expired_every(Duration::from_secs(1))
            .open(dir)?;
        Ok(Streams { store, limits })
    }

    /// The underlying skyshelve store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The limits requests are held to.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A watch that wakes at every append, close or delete of any stream,
    /// in any process.
    pub fn watch(&self) -> Result<skyshelve::Watch> {
        Ok(self.store.watch()?)
    }

    /// Creates a stream, or finds it with the same configuration.
    pub fn create(&self, path: &str, create: Create) -> Result<Created> {
        check_size(&create.body, self.limits)?;
        let messages = if is_json(&create.content_type) {
            crate::json::messages(&create.body, crate::json::Empty::Allowed)?
        } else if create.body.is_empty() {
            Vec::new()
        } else {
            vec![create.body.clone()]
        };
        let now = SystemTime::now();
        self.store.write_with_error(|tx| {
            if let Some(existing) = tx.load_by(StreamRecord::PATH, path)? {
                return if same_config(&existing, &create) {
                    Ok(Created::Existing(Meta::of(&existing)))
                } else {
                    Err(StreamError::ConfigConflict)
                };
            }
            let mut record = StreamRecord {
                id: 0,
                path: path.to_owned(),
                content_type: create.content_type.clone(),
                ttl_secs: create.ttl_secs,
                expires_at_text: create.expires_at.as_ref().map(|(_, text)| text.clone()),
                expires: create.expires_at.as_ref().map(|(at, _)| *at),
                tail: 0,
                last_seq: None,
                closed: create.closed,
            };
            renew(&mut record, now);
            tx.append(&mut record)?;
            write_messages(tx, &mut record, &messages)?;
            tx.save(&record)?;
            Ok(Created::New(Meta::of(&record)))
        })
    }

    /// Appends to a stream (or closes it).
    pub fn append(&self, path: &str, append: Append) -> Result<Appended> {
        check_size(&append.body, self.limits)?;
        let now = SystemTime::now();
        self.store.write_with_error(|tx| {
            let mut record = tx.load_by(StreamRecord::PATH, path)?.ok_or(StreamError::NotFound)?;
            append_in(tx, &mut record, &append, now)
        })
    }

    /// Stream metadata, without renewing its TTL.
    pub fn head(&self, path: &str) -> Result<Meta> {
        let record = self.store.read(|tx| tx.load_by(StreamRecord::PATH, path))?;
        record.map(|record| Meta::of(&record)).ok_or(StreamError::NotFound)
    }

    /// Deletes a stream and everything in it.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.store.write_with_error(|tx| {
            let record = tx.load_by(StreamRecord::PATH, path)?.ok_or(StreamError::NotFound)?;
            StreamRecord::delete_in(tx, &record.id)?;
            Ok(())
        })
    }

    /// Reads from `start`, about `Limits::max_read` bytes at most, and
    /// renews the stream's TTL.
    pub fn read(&self, path: &str, start: Start) -> Result<Read> {
        let read = self.store.read_with_error(|tx| {
            let record = tx.load_by(StreamRecord::PATH, path)?.ok_or(StreamError::NotFound)?;
            read_in(tx, &record, start, self.limits.max_read)
        })?;
        self.renew_after_read(&read.meta)?;
        Ok(read)
    }

    /// A read renews a TTL: a write, done only once the last renewal is
    /// `RENEW_AFTER` old.
    fn renew_after_read(&self, meta: &Meta) -> Result<()> {
        let (Some(ttl), Some(expires)) = (meta.ttl_secs, meta.expires) else { return Ok(()) };
        let now = SystemTime::now();
        let renewed = now + Duration::from_secs(ttl);
        if renewed.duration_since(expires).unwrap_or_default() < RENEW_AFTER {
            return Ok(());
        }
        self.store.write_with_error(|tx| {
            if let Some(mut record) = StreamRecord::load_in(tx, &meta.id)? {
                renew(&mut record, now);
                tx.save(&record)?;
            }
            Ok(())
        })
    }
}

fn check_size(body: &[u8], limits: Limits) -> Result<()> {
    if body.len() > limits.max_append {
        return Err(StreamError::TooLarge { size: body.len(), limit: limits.max_append });
    }
    Ok(())
}

/// Whether a create asks for the configuration `existing` has.
fn same_config(existing: &StreamRecord, create: &Create) -> bool {
    media_type(&existing.content_type) == media_type(&create.content_type)
        && existing.ttl_secs == create.ttl_secs
        && existing.expires_at_text.as_deref() == create.expires_at.as_ref().map(|(_, text)| text.as_str())
        && existing.closed == create.closed
}

/// A sliding TTL starts again at `now`; an absolute expiry stays.
fn renew(record: &mut StreamRecord, now: SystemTime) {
    if let Some(ttl) = record.ttl_secs {
        record.expires = Some(now + Duration::from_secs(ttl));
    }
}

/// Writes `messages` at the stream's tail, moving it.
fn write_messages(tx: &mut WriteTx<'_>, record: &mut StreamRecord, messages: &[Vec<u8>]) -> Result<()> {
    for message in messages {
        tx.insert(&Chunk { at: (record.id, record.tail), stream: record.id, data: Bytes(message.clone()) })?;
        record.tail += message.len() as u64;
    }
    Ok(())
}

/// The checks of an append, then the append, in the caller's transaction.
fn append_in(tx: &mut WriteTx<'_>, record: &mut StreamRecord, append: &Append, now: SystemTime) -> Result<Appended> {
    let close_only = append.close && append.body.is_empty();
    if append.body.is_empty() && !append.close {
        return Err(StreamError::BadRequest("an append needs a body".into()));
    }
    // The producer first: a retry of an append already made is a success
    // whatever else has happened since (a close, a later Stream-Seq).
    let producer = match &append.producer {
        Some(producer) => match check_producer(tx, record.id, producer)? {
            ProducerCheck::Duplicate(state) => {
                return Ok(Appended::Duplicate { meta: Meta::of(record), producer: state });
            }
            ProducerCheck::Accept => Some(producer),
        },
        None => None,
    };
    if record.closed {
        if close_only && producer.is_none() {
            return Ok(Appended::Written { meta: Meta::of(record), producer: None });
        }
        return Err(StreamError::Closed { tail: Offset(record.tail) });
    }
    let messages = if close_only {
        Vec::new()
    } else {
        let given =
            append.content_type.as_deref().ok_or_else(|| StreamError::BadRequest("Content-Type is required".into()))?;
        if media_type(given) != media_type(&record.content_type) {
            return Err(StreamError::ContentTypeMismatch {
                stream: record.content_type.clone(),
                given: given.to_owned(),
            });
        }
        if is_json(&record.content_type) {
            crate::json::messages(&append.body, crate::json::Empty::Refused)?
        } else {
            vec![append.body.clone()]
        }
    };
    if let Some(seq) = &append.stream_seq {
        if let Some(last) = record.last_seq.as_ref().filter(|last| seq.as_bytes() <= last.as_bytes()) {
            return Err(StreamError::SeqRegression { last: last.clone(), given: seq.clone() });
        }
        record.last_seq = Some(seq.clone());
    }
    write_messages(tx, record, &messages)?;
    record.closed |= append.close;
    renew(record, now);
    tx.save(&*record)?;
    let producer = match producer {
        Some(producer) => {
            let state = ProducerRecord {
                at: (record.id, producer.id.clone()),
                stream: record.id,
                epoch: producer.epoch,
                last_seq: producer.seq,
            };
            tx.save(&state)?;
            Some((producer.epoch, producer.seq))
        }
        None => None,
    };
    Ok(Appended::Written { meta: Meta::of(record), producer })
}

enum ProducerCheck {
    Accept,
    /// Already written: the producer's (epoch, highest accepted seq).
    Duplicate((u64, u64)),
}

/// The protocol's producer rules: epochs never go back, a new epoch starts
/// at sequence 0, and within an epoch sequences go up by one.
fn check_producer(tx: &WriteTx<'_>, stream: u64, producer: &Producer) -> Result<ProducerCheck> {
    let key = (stream, producer.id.clone());
    let Some(state) = ProducerRecord::load_in(tx, &key)? else {
        return match producer.seq {
            0 => Ok(ProducerCheck::Accept),
            received => Err(StreamError::SeqGap { expected: 0, received }),
        };
    };
    if producer.epoch < state.epoch {
        return Err(StreamError::StaleEpoch { current: state.epoch });
    }
    if producer.epoch > state.epoch {
        return match producer.seq {
            0 => Ok(ProducerCheck::Accept),
            _ => Err(StreamError::BadRequest("a new producer epoch starts at Producer-Seq 0".into())),
        };
    }
    if producer.seq <= state.last_seq {
        return Ok(ProducerCheck::Duplicate((state.epoch, state.last_seq)));
    }
    if producer.seq == state.last_seq + 1 {
        return Ok(ProducerCheck::Accept);
    }
    Err(StreamError::SeqGap { expected: state.last_seq + 1, received: producer.seq })
}

/// The chunks from `start`, up to about `max_bytes`, inside a read.
fn read_in<T: skyshelve::Transaction>(tx: &T, record: &StreamRecord, start: Start, max_bytes: usize) -> Result<Read> {
    let from = match start {
        Start::Beginning => 0,
        Start::Now => record.tail,
        Start::At(offset) if offset.0 > record.tail => {
            return Err(StreamError::BadRequest("the offset is past the stream's tail".into()));
        }
        Start::At(offset) => offset.0,
    };
    let mut chunks = Vec::new();
    let mut next = from;
    let mut bytes = 0;
    if from < record.tail {
        // The chunk holding `from` may start before it.
        let first = Chunk::query().range(..=(record.id, from)).reverse().limit(1).fetch_in(tx)?;
        let mut position = from;
        if let Some(chunk) = first.records.into_iter().next().filter(|c| c.at.0 == record.id) {
            let end = chunk.at.1 + chunk.data.0.len() as u64;
            if chunk.at.1 < from && from < end {
                let skip = usize::try_from(from - chunk.at.1).unwrap_or(usize::MAX);
                chunks.push(chunk.data.0[skip..].to_vec());
                bytes += chunk.data.0.len() - skip;
                position = end;
            }
        }
        next = position;
        let mut after = Chunk::query().range((record.id, position)..(record.id, record.tail)).limit(64);
        while bytes < max_bytes && next < record.tail {
            let page = after.fetch_in(tx)?;
            for chunk in page.records {
                if bytes >= max_bytes && !chunks.is_empty() {
                    break;
                }
                next = chunk.at.1 + chunk.data.0.len() as u64;
                bytes += chunk.data.0.len();
                chunks.push(chunk.data.0);
            }
            match page.last {
                Some(last) if page.more => after = after.after(&last),
                _ => break,
            }
        }
    }
    Ok(Read { meta: Meta::of(record), chunks, next: Offset(next), up_to_date: next == record.tail })
}
