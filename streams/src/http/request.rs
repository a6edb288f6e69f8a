//! Request headers, parsed and checked as the protocol says: every
//! malformed value is a 400 before anything is written.

use std::time::SystemTime;

use axum::http::HeaderMap;

use super::headers as h;
use crate::Offset;
use crate::StreamError;
use crate::types::{Append, Create, Fork, Producer};

/// The largest integer the protocol accepts (JavaScript's safe integers).
const MAX_SAFE: u64 = (1 << 53) - 1;

/// The longest `Producer-Id`, in bytes: it is part of a record's key, and
/// keys have a bounded length.
pub const MAX_PRODUCER_ID_BYTES: usize = 256;

fn bad(message: impl Into<String>) -> StreamError {
    StreamError::BadRequest(message.into())
}

/// A header as text; a value that is not visible ASCII is a 400.
fn text<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, StreamError> {
    headers.get(name).map(|value| value.to_str().map_err(|_| bad(format!("{name} is not text")))).transpose()
}

/// `Stream-Closed: true` (any case); other values mean not closed.
fn closed(headers: &HeaderMap) -> Result<bool, StreamError> {
    Ok(text(headers, h::CLOSED)?.is_some_and(|value| value.trim().eq_ignore_ascii_case("true")))
}

/// A non-negative decimal integer without sign, leading zeros, point or
/// exponent.
fn integer(name: &str, value: &str) -> Result<u64, StreamError> {
    let valid =
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) && (value == "0" || !value.starts_with('0'));
    let number = if valid { value.parse::<u64>().ok() } else { None };
    number.filter(|&n| n <= MAX_SAFE).ok_or_else(|| {
        bad(format!("{name} must be a non-negative integer of at most 2^53-1 ({MAX_SAFE}), not {value:?}"))
    })
}

/// The headers of a PUT.
pub fn create(headers: &HeaderMap) -> Result<Create, StreamError> {
    let content_type = text(headers, "content-type")?.map(str::trim).filter(|t| !t.is_empty());
    let ttl = text(headers, h::TTL)?.map(|value| integer("Stream-TTL", value.trim())).transpose()?;
    let expires_at = text(headers, h::EXPIRES_AT)?.map(|value| expiry(value.trim())).transpose()?;
    if ttl.is_some() && expires_at.is_some() {
        return Err(bad("give Stream-TTL or Stream-Expires-At, not both"));
    }
    Ok(Create {
        content_type: content_type.map(str::to_owned),
        ttl_secs: ttl,
        expires_at,
        closed: closed(headers)?,
        body: Vec::new(),
        fork: fork(headers)?,
    })
}

/// `Stream-Forked-From`, `Stream-Fork-Offset` and `Stream-Fork-Sub-Offset`.
fn fork(headers: &HeaderMap) -> Result<Option<Fork>, StreamError> {
    let source = text(headers, h::FORKED_FROM)?.map(str::trim);
    let offset = text(headers, h::FORK_OFFSET)?.map(str::trim);
    let sub_offset =
        text(headers, h::FORK_SUB_OFFSET)?.map(|value| integer("Stream-Fork-Sub-Offset", value.trim())).transpose()?;
    let Some(source) = source else {
        if offset.is_some() || sub_offset.is_some() {
            return Err(bad("Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From"));
        }
        return Ok(None);
    };
    let offset = offset
        .map(|text| Offset::parse(text).ok_or_else(|| bad(format!("malformed Stream-Fork-Offset {text:?}"))))
        .transpose()?;
    let sub_offset = sub_offset.unwrap_or(0);
    if sub_offset > 0 && offset.is_none() {
        return Err(bad("a fork sub-offset needs Stream-Fork-Offset"));
    }
    // A full URL names the same stream as its path.
    let source = match source.find("://") {
        Some(scheme_end) => source[scheme_end + 3..].find('/').map_or("/", |at| &source[scheme_end + 3 + at..]),
        None => source,
    };
    if !source.starts_with('/') {
        return Err(bad(format!("Stream-Forked-From must be the source's path or URL, not {source:?}")));
    }
    Ok(Some(Fork { source: source.to_owned(), offset, sub_offset }))
}

/// `Stream-Expires-At`: an RFC 3339 time.
fn expiry(value: &str) -> Result<(SystemTime, String), StreamError> {
    let parsed = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad(format!("Stream-Expires-At must be an RFC 3339 time, not {value:?}")))?;
    if parsed < time::OffsetDateTime::UNIX_EPOCH {
        return Err(bad(format!("Stream-Expires-At must not be before 1970, not {value:?}")));
    }
    Ok((SystemTime::from(parsed), value.to_owned()))
}

/// The headers of a POST.
pub fn append(headers: &HeaderMap) -> Result<Append, StreamError> {
    let content_type = text(headers, "content-type")?.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    let stream_seq = text(headers, h::SEQ)?.map(str::to_owned);
    Ok(Append { content_type, body: Vec::new(), stream_seq, producer: producer(headers)?, close: closed(headers)? })
}

/// `Producer-Id`, `Producer-Epoch` and `Producer-Seq`: all or none.
fn producer(headers: &HeaderMap) -> Result<Option<Producer>, StreamError> {
    let id = text(headers, h::PRODUCER_ID)?;
    let epoch = text(headers, h::PRODUCER_EPOCH)?;
    let seq = text(headers, h::PRODUCER_SEQ)?;
    match (id, epoch, seq) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) => {
            if id.trim().is_empty() {
                return Err(bad("Producer-Id must not be empty"));
            }
            if id.len() > MAX_PRODUCER_ID_BYTES {
                return Err(bad(format!("Producer-Id is {} bytes; the limit is {MAX_PRODUCER_ID_BYTES}", id.len())));
            }
            Ok(Some(Producer {
                id: id.to_owned(),
                epoch: integer("Producer-Epoch", epoch.trim())?,
                seq: integer("Producer-Seq", seq.trim())?,
            }))
        }
        _ => Err(bad("Producer-Id, Producer-Epoch and Producer-Seq go together")),
    }
}
