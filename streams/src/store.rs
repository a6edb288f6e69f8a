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

use crate::error::{Result, StreamError};
use crate::model::{Bytes, Chunk, ProducerRecord, StreamRecord};
use crate::offset::{Offset, Start};
use crate::types::{Append, Appended, Create, Created, Fork, Limits, Meta, Producer, Read, is_json, media_type};

/// The store's first map size (it grows from there).
const FIRST_MAP_SIZE: usize = 16 << 20;

/// The longest chain of forks (a fork of a fork of …): reads walk the
/// chain, so its length bounds their work.
pub const MAX_FORK_DEPTH: usize = 400;

/// The stream store: every stream of one skyshelve store.
#[derive(Clone)]
pub struct Streams {
    store: Store,
    limits: Limits,
    /// A replica of object storage that follows the writer node: it
    /// writes nothing, not even a TTL's renewal.
    read_only: bool,
}

/// Streams on object storage (feature `slatedb`): the store, and this
/// node's part in serving it. One writer node takes every write; any
/// number of reader nodes follow its commits.
#[cfg(feature = "slatedb")]
#[derive(Debug, Clone)]
pub struct ObjectStore {
    /// `s3://bucket/prefix` (credentials and endpoint from the `AWS_*`
    /// environment variables) or `file:///path` (a local object folder).
    pub url: String,
    /// This node's own folder: the watch file that wakes its live reads,
    /// created if missing. Never shared between machines.
    pub local_dir: std::path::PathBuf,
    /// A reader node: serves reads from a replica that follows the
    /// writer's commits, and refuses writes with `Error::ReadOnly`.
    pub read_only: bool,
    /// How often a reader node looks for the writer's new commits (and
    /// how often the writer flushes commits that did not wait for object
    /// storage).
    pub poll_interval: Duration,
}

impl Streams {
    /// Opens (creating) the stream store in folder `dir`.
    ///
    /// ```
    /// use skyshelve_streams::{Append, Create, Start, Streams};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let streams = Streams::open(dir.path(), skyshelve::Durability::Full, Default::default())?;
    /// streams.create("/chat", Create { content_type: Some("text/plain".into()), ..Create::default() })?;
    /// streams.append("/chat", Append { content_type: Some("text/plain".into()), body: b"hello".to_vec(), ..Append::default() })?;
    /// let read = streams.read("/chat", Start::Beginning)?;
    /// assert_eq!(read.chunks.concat(), b"hello");
    /// assert!(read.up_to_date);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: &Path, durability: Durability, limits: Limits) -> Result<Streams> {
        let mut options = Store::options();
        if let Some(max) = limits.max_store {
            options = options.map_size(FIRST_MAP_SIZE.min(max)).max_map_size(max);
        }
        Streams::open_with(options, dir, durability, limits, false)
    }

    /// Opens (creating, on a writer node) the stream store on object
    /// storage. A second writer node opened on the same store fences this
    /// one: its next write fails with `Store(Error::Fenced)` and nothing it
    /// had not made durable is acknowledged (with `Durability::Full`). A
    /// reader node needs the writer to have opened the store once.
    /// `limits.max_store` is LMDB's and is not used here.
    ///
    /// ```
    /// use std::time::Duration;
    /// use skyshelve_streams::{Append, Create, ObjectStore, Start, Streams};
    ///
    /// let (objects, writer_dir, reader_dir) = (tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?);
    /// let url = format!("file://{}", objects.path().display());
    /// let node = |local_dir: &std::path::Path, read_only| ObjectStore {
    ///     url: url.clone(),
    ///     local_dir: local_dir.to_owned(),
    ///     read_only,
    ///     poll_interval: Duration::from_millis(20),
    /// };
    /// let full = skyshelve::Durability::Full;
    /// let writer = Streams::open_objects(&node(writer_dir.path(), false), full, Default::default())?;
    /// let text = || Some("text/plain".to_owned());
    /// writer.create("/chat", Create { content_type: text(), ..Create::default() })?;
    /// let tail = writer.append("/chat", Append { content_type: text(), body: b"hi".to_vec(), ..Append::default() })?;
    /// let reader = Streams::open_objects(&node(reader_dir.path(), true), full, Default::default())?;
    /// while !reader.holds("/chat", tail.meta().tail)? {
    ///     std::thread::sleep(Duration::from_millis(10)); // the replica follows within a poll
    /// }
    /// assert_eq!(reader.read("/chat", Start::Beginning)?.chunks.concat(), b"hi");
    /// assert!(reader.append("/chat", Append { content_type: text(), body: b"no".to_vec(), ..Append::default() }).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "slatedb")]
    pub fn open_objects(objects: &ObjectStore, durability: Durability, limits: Limits) -> Result<Streams> {
        // A read-only open creates nothing, and a reader's folder is its own.
        std::fs::create_dir_all(&objects.local_dir).map_err(skyshelve::Error::from)?;
        let options = Store::options().slatedb(&objects.url).slatedb_poll_interval(objects.poll_interval);
        Streams::open_with(options, &objects.local_dir, durability, limits, objects.read_only)
    }

    fn open_with(
        options: skyshelve::StoreOptions,
        dir: &Path,
        durability: Durability,
        limits: Limits,
        read_only: bool,
    ) -> Result<Streams> {
        let options = options.models([StreamRecord::INFO, Chunk::INFO, ProducerRecord::INFO]).durability(durability);
        // Expired streams are purged by the node that writes.
        let options = if read_only { options.read_only() } else { options.purge_expired_every(Duration::from_secs(1)) };
        let store = options.open(dir)?;
        Ok(Streams { store, limits, read_only })
    }

    /// Whether this is a reader node's replica (see [`Streams::open_objects`]).
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.read_only
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

    /// Creates a stream (a fork of another if `create.fork` says so), or
    /// finds it with the same configuration.
    pub fn create(&self, path: &str, create: Create) -> Result<Created> {
        check_size(&create.body, self.limits)?;
        let now = SystemTime::now();
        self.store.write_with_error(|tx| {
            if let Some(existing) = tx.load_by(StreamRecord::PATH, path)? {
                // A stream kept only for its forks cannot be made again.
                if existing.deleted || expired(&existing, now) {
                    return Err(StreamError::HeldByForks);
                }
                return if same_config(&existing, &create) {
                    Ok(Created::Existing(Meta::of(&existing)))
                } else {
                    Err(StreamError::ConfigConflict)
                };
            }
            let mut record = StreamRecord {
                id: 0,
                path: path.to_owned(),
                content_type: create.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
                ttl_secs: create.ttl_secs,
                expires_at_text: create.expires_at.as_ref().map(|(_, text)| text.clone()),
                expiry: create.expires_at.as_ref().map(|(at, _)| *at),
                expires: None,
                held: false,
                deleted: false,
                fork_of: None,
                fork_offset: 0,
                fork_spec: None,
                tail: 0,
                last_seq: None,
                closed: create.closed,
            };
            let prefix = match &create.fork {
                Some(fork) => start_fork(tx, &mut record, &create, fork)?,
                None => Vec::new(),
            };
            renew(&mut record, now);
            record.expires = record.expiry;
            tx.append(&mut record)?;
            let initial = if create.body.is_empty() && !is_json(&record.content_type) {
                Vec::new()
            } else {
                messages_of(&record.content_type, &create.body, crate::json::Empty::Allowed, self.limits)?
            };
            write_messages(tx, &mut record, &prefix)?;
            if !initial.is_empty() {
                write_messages(tx, &mut record, &[initial])?;
            }
            tx.save(&record)?;
            Ok(Created::New(Meta::of(&record)))
        })
    }

    /// Appends to a stream (or closes it).
    pub fn append(&self, path: &str, append: Append) -> Result<Appended> {
        check_size(&append.body, self.limits)?;
        let now = SystemTime::now();
        self.store.write_with_error(|tx| {
            let mut record = live(tx.load_by(StreamRecord::PATH, path)?, now)?;
            append_in(tx, &mut record, &append, now, self.limits)
        })
    }

    /// Stream metadata, without renewing its TTL.
    pub fn head(&self, path: &str) -> Result<Meta> {
        let record = self.store.read(|tx| tx.load_by(StreamRecord::PATH, path))?;
        live(record, SystemTime::now()).map(|record| Meta::of(&record))
    }

    /// Deletes a stream and everything in it; a stream that forks still
    /// read is only marked deleted (410) until the last fork goes.
    pub fn delete(&self, path: &str) -> Result<()> {
        let now = SystemTime::now();
        self.store.write_with_error(|tx| {
            let mut record = live(tx.load_by(StreamRecord::PATH, path)?, now)?;
            if has_forks(tx, record.id)? {
                record.deleted = true;
                hold(&mut record);
                tx.save(&record)?;
                return Ok(());
            }
            remove(tx, &record, now)
        })
    }

    /// Reads from `start`, about `Limits::max_read` bytes at most, and
    /// renews the stream's TTL.
    pub fn read(&self, path: &str, start: Start) -> Result<Read> {
        let now = SystemTime::now();
        let read = self.store.read_with_error(|tx| {
            let record = live(tx.load_by(StreamRecord::PATH, path)?, now)?;
            read_in(tx, &record, start, self.limits.max_read)
        })?;
        self.renew_after_read(&read.meta)?;
        Ok(read)
    }

    /// Whether this store holds `offset` of the stream at `path`: on a
    /// reader node, whether its replica has caught up with an offset the
    /// writer handed out. False while the stream is missing (unless the
    /// offset names no stream: such an offset proves nothing), older than
    /// the one the offset names, or shorter than the offset; true for
    /// anything else, which a read then answers (an error included).
    pub fn holds(&self, path: &str, offset: Offset) -> Result<bool> {
        self.store.read_with_error(|tx| {
            let Some(record) = tx.load_by(StreamRecord::PATH, path)? else { return Ok(offset.stream == 0) };
            if offset.stream > record.id {
                // Streams made later have larger ids: this one is newer.
                return Ok(false);
            }
            Ok(match position_of(tx, &record, offset) {
                Ok(position) => position <= record.tail,
                Err(_) => true,
            })
        })
    }

    /// Removes what only forks kept once no fork needs it: streams deleted
    /// or expired while forked. Returns how many went. The server runs this
    /// every second.
    pub fn collect_garbage(&self) -> Result<u64> {
        let now = SystemTime::now();
        let held: Vec<StreamRecord> = StreamRecord::scan_index(&self.store, StreamRecord::HELD, &true)?;
        let mut removed = 0;
        for record in held {
            removed += self.store.write_with_error::<u64, StreamError, _>(|tx| {
                let Some(mut record) = StreamRecord::load_in(tx, &record.id)? else { return Ok(0) };
                if !record.held || has_forks(tx, record.id)? {
                    return Ok(0);
                }
                if record.deleted || expired(&record, now) {
                    remove(tx, &record, now)?;
                    return Ok(1);
                }
                // Forks gone, stream alive: it expires by itself again.
                record.held = false;
                record.expires = record.expiry;
                tx.save(&record)?;
                Ok(0)
            })?;
        }
        Ok(removed)
    }

    /// A read renews a TTL: a write, done only when it is due.
    fn renew_after_read(&self, meta: &Meta) -> Result<()> {
        // A replica cannot write: a reader node asks its writer to renew
        // (`http/forward.rs`).
        let now = SystemTime::now();
        if self.read_only || !meta.renewal_due(now) {
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

/// A stream the request may use: not missing, not gone.
fn live(record: Option<StreamRecord>, now: SystemTime) -> Result<StreamRecord> {
    let record = record.ok_or(StreamError::NotFound)?;
    if record.deleted || expired(&record, now) {
        return Err(StreamError::Gone);
    }
    Ok(record)
}

/// Whether the stream's expiry has passed (a held stream is not removed
/// at its expiry, so reads must look).
fn expired(record: &StreamRecord, now: SystemTime) -> bool {
    record.expiry.is_some_and(|at| at <= now)
}

/// Keeps a stream for its forks: the store must not remove it at its
/// expiry while they read it.
fn hold(record: &mut StreamRecord) {
    record.held = true;
    record.expires = None;
}

fn has_forks<T: skyshelve::Transaction>(tx: &T, id: u64) -> Result<bool> {
    let forks = StreamRecord::query_by(StreamRecord::FORK_OF).range(id..=id).limit(1).fetch_in(tx)?;
    Ok(!forks.records.is_empty())
}

/// Removes a stream with its chunks and producers; then its source, if it
/// was held for this fork alone and is deleted or expired.
fn remove(tx: &mut WriteTx<'_>, record: &StreamRecord, now: SystemTime) -> Result<()> {
    StreamRecord::delete_in(tx, &record.id)?;
    let mut source = record.fork_of;
    while let Some(id) = source {
        let Some(parent) = StreamRecord::load_in(tx, &id)? else { break };
        if !parent.held || !(parent.deleted || expired(&parent, now)) || has_forks(tx, id)? {
            break;
        }
        StreamRecord::delete_in(tx, &id)?;
        source = parent.fork_of;
    }
    Ok(())
}

/// Checks a fork against its source, sets what it inherits, holds the
/// source, and returns the sub-offset prefix to copy.
fn start_fork(tx: &mut WriteTx<'_>, record: &mut StreamRecord, create: &Create, fork: &Fork) -> Result<Vec<Batch>> {
    let now = SystemTime::now();
    let mut source = match tx.load_by(StreamRecord::PATH, fork.source.as_str())? {
        None => return Err(StreamError::ForkSourceNotFound(fork.source.clone())),
        Some(source) if source.deleted || expired(&source, now) => return Err(StreamError::HeldByForks),
        Some(source) => source,
    };
    if fork_depth(tx, &source)? >= MAX_FORK_DEPTH {
        return Err(StreamError::BadRequest(format!("forks may be nested {MAX_FORK_DEPTH} deep at most")));
    }
    match &create.content_type {
        Some(given) if media_type(given) != media_type(&source.content_type) => {
            return Err(StreamError::ConfigConflict);
        }
        Some(_) => {}
        None => record.content_type.clone_from(&source.content_type),
    }
    let offset = match fork.offset {
        Some(offset) => position_of(tx, &source, offset)?,
        None => source.tail,
    };
    if offset > source.tail {
        return Err(StreamError::BadRequest("the fork offset is past the source's tail".into()));
    }
    check_boundary(tx, &source, offset)?;
    let prefix = if fork.sub_offset == 0 { Vec::new() } else { sub_prefix(tx, &source, offset, fork.sub_offset)? };
    if create.ttl_secs.is_none() && create.expires_at.is_none() {
        record.ttl_secs = source.ttl_secs;
        record.expires_at_text.clone_from(&source.expires_at_text);
        record.expiry = source.expiry;
    }
    record.fork_of = Some(source.id);
    record.fork_offset = offset;
    record.tail = offset;
    record.fork_spec = Some((fork.source.clone(), offset, fork.sub_offset));
    if !source.held {
        hold(&mut source);
        tx.save(&source)?;
    }
    Ok(prefix)
}

/// One append's messages, to copy.
type Batch = Vec<Vec<u8>>;

/// The first `count` bytes (or JSON messages) of the append at `offset`,
/// as far as `source` holds them: a source that is itself a fork holds its
/// own source's append only up to its fork offset, never beyond.
fn sub_prefix(tx: &WriteTx<'_>, source: &StreamRecord, offset: u64, count: u64) -> Result<Vec<Batch>> {
    let overshoot = || StreamError::BadRequest("the fork sub-offset is past the end of the append".into());
    let found = chunk_at(tx, source, offset)?.ok_or_else(overshoot)?;
    let wanted = usize::try_from(count).map_err(|_| overshoot())?;
    if is_json(&source.content_type) {
        if wanted > found.chunk.batch as usize {
            return Err(overshoot());
        }
        let owner = found.owner;
        let batch = Chunk::query().range((owner, offset)..(owner, found.visible_end)).limit(wanted).fetch_in(tx)?;
        if batch.records.len() < wanted {
            return Err(overshoot());
        }
        return Ok(vec![batch.records.into_iter().map(|chunk| chunk.data.0).collect()]);
    }
    let visible = usize::try_from(found.visible_end - offset).unwrap_or(usize::MAX).min(found.chunk.data.0.len());
    if wanted > visible {
        return Err(overshoot());
    }
    Ok(vec![vec![found.chunk.data.0[..wanted].to_vec()]])
}

/// A chunk found through a chain of forks.
struct Found {
    /// The id of the stream that stores it.
    owner: u64,
    chunk: Chunk,
    /// Where the content of the stream asked about stops being this
    /// owner's: the lowest fork offset on the way down, else its tail.
    visible_end: u64,
}

/// The chunk that starts exactly at `offset` in a stream, following forks
/// to the stream that holds it.
fn chunk_at<T: skyshelve::Transaction>(tx: &T, record: &StreamRecord, offset: u64) -> Result<Option<Found>> {
    let mut record = record.clone();
    let mut visible_end = record.tail;
    loop {
        if let (Some(source), true) = (record.fork_of, offset < record.fork_offset) {
            visible_end = visible_end.min(record.fork_offset);
            record = StreamRecord::load_in(tx, &source)?.ok_or(StreamError::NotFound)?;
            continue;
        }
        let chunk = Chunk::load_in(tx, &(record.id, offset))?;
        return Ok(chunk.map(|chunk| Found { owner: record.id, chunk, visible_end }));
    }
}

/// How many forks deep `record` is (0 for a stream that is no fork),
/// counted up to `MAX_FORK_DEPTH`.
fn fork_depth<T: skyshelve::Transaction>(tx: &T, record: &StreamRecord) -> Result<usize> {
    let mut depth = 0;
    let mut source = record.fork_of;
    while let Some(id) = source.filter(|_| depth < MAX_FORK_DEPTH) {
        depth += 1;
        source = StreamRecord::load_in(tx, &id)?.and_then(|parent| parent.fork_of);
    }
    Ok(depth)
}

/// In JSON mode an offset must fall between messages: one inside a
/// message would read (or fork) half of it, which is not JSON.
fn check_boundary<T: skyshelve::Transaction>(tx: &T, record: &StreamRecord, offset: u64) -> Result<()> {
    if !is_json(&record.content_type) || offset == 0 || offset == record.tail {
        return Ok(());
    }
    match chunk_at(tx, record, offset)? {
        Some(_) => Ok(()),
        None => Err(StreamError::BadRequest("the offset is not a message boundary of this JSON stream".into())),
    }
}

fn check_size(body: &[u8], limits: Limits) -> Result<()> {
    if body.len() > limits.max_append {
        return Err(StreamError::TooLarge { limit: limits.max_append });
    }
    Ok(())
}

/// A body's messages as the stream stores them: in JSON mode each message
/// of the body (at most `limits.max_messages`); otherwise the body itself,
/// which in a `text/*` stream must be UTF-8, since SSE sends it as text.
fn messages_of(content_type: &str, body: &[u8], empty: crate::json::Empty, limits: Limits) -> Result<Batch> {
    if is_json(content_type) {
        let messages = crate::json::messages(body, empty)?;
        if messages.len() > limits.max_messages {
            return Err(StreamError::TooManyMessages { count: messages.len(), limit: limits.max_messages });
        }
        return Ok(messages);
    }
    if media_type(content_type).starts_with("text/") && std::str::from_utf8(body).is_err() {
        return Err(StreamError::BadRequest("a text stream takes UTF-8 text only".into()));
    }
    Ok(vec![body.to_vec()])
}

/// Whether a create asks for the configuration `existing` has. A fork
/// asked for without an offset matches the fork at any offset, so that a
/// retry of "fork at the tail" is recognised after the source has grown.
fn same_config(existing: &StreamRecord, create: &Create) -> bool {
    let content_type_matches =
        create.content_type.as_deref().is_none_or(|given| media_type(&existing.content_type) == media_type(given))
            && (create.content_type.is_some()
                || create.fork.is_some()
                || existing.content_type == "application/octet-stream");
    let fork_matches = match (&existing.fork_spec, &create.fork) {
        (None, None) => true,
        (Some((source, offset, sub)), Some(fork)) => {
            *source == fork.source && fork.offset.is_none_or(|o| o.position == *offset) && *sub == fork.sub_offset
        }
        _ => false,
    };
    let expiry_matches = existing.fork_spec.is_some() && create.ttl_secs.is_none() && create.expires_at.is_none()
        || (existing.ttl_secs == create.ttl_secs
            && existing.expires_at_text.as_deref() == create.expires_at.as_ref().map(|(_, text)| text.as_str()));
    content_type_matches && fork_matches && expiry_matches && existing.closed == create.closed
}

/// A sliding TTL starts again at `now`; an absolute expiry stays.
fn renew(record: &mut StreamRecord, now: SystemTime) {
    if let Some(ttl) = record.ttl_secs {
        record.expiry = Some(now + Duration::from_secs(ttl));
        if !record.held {
            record.expires = record.expiry;
        }
    }
}

/// Writes each batch (one append's messages) at the stream's tail.
fn write_messages(tx: &mut WriteTx<'_>, record: &mut StreamRecord, batches: &[Batch]) -> Result<()> {
    for batch in batches {
        let count = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        for (i, message) in batch.iter().enumerate() {
            let chunk = Chunk {
                at: (record.id, record.tail),
                stream: record.id,
                data: Bytes(message.clone()),
                batch: if i == 0 { count } else { 0 },
            };
            tx.insert(&chunk)?;
            record.tail += message.len() as u64;
        }
    }
    Ok(())
}

/// The checks of an append, then the append, in the caller's transaction.
fn append_in(
    tx: &mut WriteTx<'_>,
    record: &mut StreamRecord,
    append: &Append,
    now: SystemTime,
    limits: Limits,
) -> Result<Appended> {
    let close_only = append.close && append.body.is_empty();
    if append.body.is_empty() && !append.close {
        return Err(StreamError::BadRequest("an append needs a body".into()));
    }
    // The producer first: a retry of an append already made is a success
    // whatever else has happened since (a close, a later Stream-Seq). Then
    // a closed stream, another content type, the producer's numbers, the
    // Stream-Seq and last the body itself: the order the Node reference
    // server checks in, so that a request wrong in two ways gets the same
    // answer from both.
    let checked = append.producer.as_ref().map(|producer| check_producer(tx, record.id, producer)).transpose();
    if let Ok(Some(ProducerCheck::Duplicate(state))) = checked {
        return Ok(Appended::Duplicate { meta: Meta::of(record), producer: state });
    }
    let producer = append.producer.as_ref();
    if record.closed {
        if close_only && producer.is_none() {
            return Ok(Appended::Written { meta: Meta::of(record), producer: None });
        }
        return Err(StreamError::Closed { tail: Offset::new(record.id, record.tail) });
    }
    if !close_only {
        let given =
            append.content_type.as_deref().ok_or_else(|| StreamError::BadRequest("Content-Type is required".into()))?;
        if media_type(given) != media_type(&record.content_type) {
            return Err(StreamError::ContentTypeMismatch {
                stream: record.content_type.clone(),
                given: given.to_owned(),
            });
        }
    }
    checked?;
    if let Some(seq) = &append.stream_seq {
        if let Some(last) = record.last_seq.as_ref().filter(|last| seq.as_bytes() <= last.as_bytes()) {
            return Err(StreamError::SeqRegression { last: last.clone(), given: seq.clone() });
        }
        record.last_seq = Some(seq.clone());
    }
    let messages = if close_only {
        Vec::new()
    } else {
        vec![messages_of(&record.content_type, &append.body, crate::json::Empty::Refused, limits)?]
    };
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
        Start::At(offset) => {
            let position = position_of(tx, record, offset)?;
            if position > record.tail {
                return Err(StreamError::BadRequest("the offset is past the stream's tail".into()));
            }
            check_boundary(tx, record, position)?;
            position
        }
    };
    let mut chunks = Vec::new();
    let next = read_range(tx, record, from, record.tail, max_bytes, &mut chunks)?;
    Ok(Read { meta: Meta::of(record), chunks, next: offset_at(tx, record, next)?, up_to_date: next == record.tail })
}

/// The position `offset` names in `record`, once it is known to be one of
/// this stream's: its own, one of a source's at or below the point where
/// this stream inherits from it, or one that names no stream (see
/// `offset.rs`). An offset of a stream deleted since is gone (410): the
/// stream now at the path is another one, and resuming in the middle of
/// its data would hand the client bytes it never asked for.
fn position_of<T: skyshelve::Transaction>(tx: &T, record: &StreamRecord, offset: Offset) -> Result<u64> {
    if offset.stream == 0 || offset.stream == record.id {
        return Ok(offset.position);
    }
    let (mut source, mut inherited) = (record.fork_of, record.fork_offset);
    while let Some(id) = source {
        let parent = StreamRecord::load_in(tx, &id)?.ok_or(StreamError::NotFound)?;
        if parent.id == offset.stream && offset.position <= inherited {
            return Ok(offset.position);
        }
        source = parent.fork_of;
        inherited = inherited.min(parent.fork_offset);
    }
    // Streams made earlier have smaller ids: only one of those, no longer
    // stored, can have been at this path before this one.
    let earlier_and_gone = offset.stream < record.id && StreamRecord::load_in(tx, &offset.stream)?.is_none();
    if earlier_and_gone {
        return Err(StreamError::OffsetGone);
    }
    Err(StreamError::BadRequest("the offset is not one of this stream's".into()))
}

/// The offset of `position` in `record`: it names the stream whose bytes
/// start there, a source's below the fork offset (see `offset.rs`).
fn offset_at<T: skyshelve::Transaction>(tx: &T, record: &StreamRecord, position: u64) -> Result<Offset> {
    let (mut owner, mut source, mut fork_offset) = (record.id, record.fork_of, record.fork_offset);
    while let (Some(id), true) = (source, position < fork_offset) {
        let parent = StreamRecord::load_in(tx, &id)?.ok_or(StreamError::NotFound)?;
        (owner, source, fork_offset) = (parent.id, parent.fork_of, parent.fork_offset);
    }
    Ok(Offset::new(owner, position))
}

/// Appends to `chunks` the stream's content from `from` up to `until`
/// (inherited content from its sources first), stopping once about
/// `budget` bytes are in; returns where it stopped. The chain of forks is
/// walked in a loop, not by recursion, so that no stored chain, however
/// long, can exhaust the stack.
fn read_range<T: skyshelve::Transaction>(
    tx: &T,
    record: &StreamRecord,
    from: u64,
    until: u64,
    budget: usize,
    chunks: &mut Vec<Vec<u8>>,
) -> Result<u64> {
    let mut next = from;
    for (owner, end) in sources_of(tx, record, from, until)?.into_iter().rev() {
        next = read_own(tx, owner, next, end, budget, chunks)?;
        if next < end {
            break;
        }
    }
    Ok(next)
}

/// The streams whose own chunks make up `from..until` of `record`, each
/// with where its part ends: `record` first, its deepest source last.
fn sources_of<T: skyshelve::Transaction>(
    tx: &T,
    record: &StreamRecord,
    from: u64,
    until: u64,
) -> Result<Vec<(u64, u64)>> {
    let mut parts = vec![(record.id, until)];
    let (mut source, mut end) = (record.fork_of.filter(|_| from < record.fork_offset), until.min(record.fork_offset));
    while let Some(id) = source {
        let parent = StreamRecord::load_in(tx, &id)?.ok_or(StreamError::NotFound)?;
        parts.push((parent.id, end));
        source = parent.fork_of.filter(|_| from < parent.fork_offset);
        end = end.min(parent.fork_offset);
    }
    Ok(parts)
}

/// Appends to `chunks` the chunks stream `owner` itself stores between
/// `next` and `until`, stopping once about `budget` bytes are in; returns
/// where it stopped.
fn read_own<T: skyshelve::Transaction>(
    tx: &T,
    owner: u64,
    mut next: u64,
    until: u64,
    budget: usize,
    chunks: &mut Vec<Vec<u8>>,
) -> Result<u64> {
    if next >= until {
        return Ok(next);
    }
    let mut bytes: usize = chunks.iter().map(Vec::len).sum();
    // The chunk holding `next` may start before it.
    let first = Chunk::query().range(..=(owner, next)).reverse().limit(1).fetch_in(tx)?;
    let mut position = next;
    if let Some(chunk) = first.records.into_iter().next().filter(|c| c.at.0 == owner) {
        let end = chunk.at.1 + chunk.data.0.len() as u64;
        if chunk.at.1 < next && next < end {
            let skip = usize::try_from(next - chunk.at.1).unwrap_or(usize::MAX);
            let take = usize::try_from(end.min(until) - chunk.at.1).unwrap_or(usize::MAX);
            chunks.push(chunk.data.0[skip..take].to_vec());
            bytes += take - skip;
            position = end.min(until);
        }
    }
    next = position;
    let mut query = Chunk::query().range((owner, position)..(owner, until)).limit(64);
    while next < until && (bytes < budget || chunks.is_empty()) {
        let page = query.fetch_in(tx)?;
        for chunk in page.records {
            if bytes >= budget && !chunks.is_empty() {
                return Ok(next);
            }
            let take = usize::try_from(until - chunk.at.1).unwrap_or(usize::MAX).min(chunk.data.0.len());
            next = chunk.at.1 + take as u64;
            bytes += take;
            let mut data = chunk.data.0;
            data.truncate(take);
            chunks.push(data);
        }
        match page.last {
            Some(last) if page.more => query = query.after(&last),
            _ => break,
        }
    }
    Ok(next)
}
