//! Header names and the headers every response carries.

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderName};

use crate::types::Meta;

pub const NEXT_OFFSET: &str = "stream-next-offset";
pub const UP_TO_DATE: &str = "stream-up-to-date";
pub const CURSOR: &str = "stream-cursor";
pub const CLOSED: &str = "stream-closed";
pub const TTL: &str = "stream-ttl";
pub const EXPIRES_AT: &str = "stream-expires-at";
pub const SEQ: &str = "stream-seq";
pub const FORKED_FROM: &str = "stream-forked-from";
pub const FORK_OFFSET: &str = "stream-fork-offset";
pub const FORK_SUB_OFFSET: &str = "stream-fork-sub-offset";
pub const SSE_ENCODING: &str = "stream-sse-data-encoding";
pub const PRODUCER_ID: &str = "producer-id";
pub const PRODUCER_EPOCH: &str = "producer-epoch";
pub const PRODUCER_SEQ: &str = "producer-seq";
pub const PRODUCER_EXPECTED_SEQ: &str = "producer-expected-seq";
pub const PRODUCER_RECEIVED_SEQ: &str = "producer-received-seq";

/// Headers a browser may read from a cross-origin response.
pub(crate) const EXPOSED: &str = "Stream-Next-Offset, Stream-Up-To-Date, Stream-Cursor, Stream-Closed, Stream-TTL, \
                       Stream-Expires-At, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, \
                       Producer-Received-Seq, Stream-SSE-Data-Encoding, ETag, Location, Content-Type";

/// Sets `name` to `value` (a value that is not a valid header is left out).
pub fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Some(value) = super::value(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// What every response carries: the browser security headers of the
/// protocol's section 10.7. `nosniff` and a sandboxing content security
/// policy keep a stream that a client created as `text/html` (or as
/// anything a browser would run) from running as a page of the server's
/// origin: a browser shows it, but it has no origin, scripts or forms.
/// CORS headers are added by the router, and only for the origins the
/// operator named.
pub fn common(headers: &mut HeaderMap) {
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "content-security-policy", "sandbox; default-src 'none'");
    set(headers, "cross-origin-resource-policy", "cross-origin");
}

/// `Stream-TTL` (the configured seconds) and `Stream-Expires-At`.
pub fn expiry(headers: &mut HeaderMap, meta: &Meta) {
    if let Some(ttl) = meta.ttl_secs {
        set(headers, TTL, &ttl.to_string());
    }
    if let Some(text) = &meta.expires_at_text {
        set(headers, EXPIRES_AT, text);
    } else if let (None, Some(at)) = (meta.ttl_secs, meta.expires) {
        set(headers, EXPIRES_AT, &rfc3339(at));
    }
}

/// A time in RFC 3339.
pub fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
