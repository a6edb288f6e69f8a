//! GET: catch-up reads, long-polls and SSE. Live reads create a watch
//! before their first read, then wait on it between reads: an append by
//! any process wakes them, and none is missed.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::headers as h;
use super::metrics::Open;
use super::{App, blocking, forward, replica, start_of};
use crate::StreamError;
use crate::types::{Meta, Read};
use crate::{Offset, Start};

/// The query parameters of a GET.
#[derive(Debug, Default)]
struct Params {
    offset: Option<String>,
    live: Option<String>,
    cursor: Option<String>,
}

fn params(query: &str) -> Params {
    let mut params = Params::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match name {
            "offset" => params.offset = Some(value),
            "live" => params.live = Some(value),
            "cursor" => params.cursor = Some(value),
            _ => {}
        }
    }
    params
}

/// `%XX` escapes and `+`, as a query string may carry them.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(byte) => {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) async fn get(
    app: &Arc<App>,
    path: String,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, StreamError> {
    let params = params(query);
    let start = match params.offset.as_deref() {
        Some("") => Err(StreamError::BadRequest("empty offset".into())),
        offset => start_of(offset),
    };
    let start = match start {
        Ok(start) => start,
        // A missing stream is the first thing to tell, as for any read.
        Err(malformed) => {
            let path = path.clone();
            blocking(app, move |s| s.head(&path)).await?;
            return Err(malformed);
        }
    };
    if let (Start::At(offset), true) = (start, app.streams.is_read_only()) {
        let held = path.clone();
        if !replica::caught_up(app, move |s| s.holds(&held, offset)).await? {
            return Err(StreamError::ReplicaBehind);
        }
    }
    match params.live.as_deref() {
        None => catch_up(app, path, start, headers).await,
        Some("long-poll") => {
            if params.offset.is_none() {
                return Err(StreamError::BadRequest("a long-poll needs an offset".into()));
            }
            long_poll(app, path, start, params.cursor.as_deref()).await
        }
        Some("sse") => {
            if params.offset.is_none() {
                return Err(StreamError::BadRequest("SSE needs an offset".into()));
            }
            sse(app, path, start, params.cursor).await
        }
        Some(other) => Err(StreamError::BadRequest(format!("unknown live mode {other:?}"))),
    }
}

/// The body of a read: the bytes, or in JSON mode an array of messages.
fn body_of(read: &Read) -> Vec<u8> {
    if read.meta.is_json() { crate::json_array(&read.chunks) } else { read.chunks.concat() }
}

/// The headers every 200 read carries.
fn read_headers(out: &mut HeaderMap, read: &Read, start: u64) {
    h::set(out, "content-type", &read.meta.content_type);
    h::set(out, h::NEXT_OFFSET, &read.next.to_string());
    if read.up_to_date {
        h::set(out, h::UP_TO_DATE, "true");
        if read.meta.closed {
            h::set(out, h::CLOSED, "true");
        }
    }
    h::set(out, "etag", &etag(&read.meta, start, read.next));
}

fn etag(meta: &Meta, start: u64, end: Offset) -> String {
    let closed = if meta.closed { ":c" } else { "" };
    format!("\"{}:{}:{}{closed}\"", meta.id, start, end.position)
}

/// Reads from `start`; on a reader node, also asks the writer to renew
/// the stream's TTL when due (a read on the writer renews it itself).
async fn read(app: &Arc<App>, path: &str, start: Start) -> Result<Read, StreamError> {
    let owned = path.to_owned();
    let read = blocking(app, move |s| s.read(&owned, start)).await?;
    if app.streams.is_read_only() {
        forward::renew(app, path, &read.meta);
    }
    Ok(read)
}

async fn catch_up(app: &Arc<App>, path: String, start: Start, headers: &HeaderMap) -> Result<Response, StreamError> {
    let read = read(app, &path, start).await?;
    let from = match start {
        Start::Beginning => 0,
        Start::Now => read.next.position,
        Start::At(offset) => offset.position,
    };
    if start == Start::Now {
        let mut response = (StatusCode::OK, body_of(&Read { chunks: Vec::new(), ..read.clone() })).into_response();
        let out = response.headers_mut();
        read_headers(out, &read, from);
        out.remove("etag");
        h::set(out, "cache-control", "no-store");
        return Ok(response);
    }
    let tag = etag(&read.meta, from, read.next);
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()).is_some_and(|given| given == tag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        h::set(response.headers_mut(), "etag", &tag);
        return Ok(response);
    }
    let mut response = (StatusCode::OK, body_of(&read)).into_response();
    let out = response.headers_mut();
    read_headers(out, &read, from);
    h::set(
        out,
        "cache-control",
        if read.up_to_date { "no-store" } else { "public, max-age=60, stale-while-revalidate=300" },
    );
    Ok(response)
}

async fn long_poll(app: &Arc<App>, path: String, start: Start, cursor: Option<&str>) -> Result<Response, StreamError> {
    let _open = Open::new(&app.metrics.long_polls);
    let mut watch = app.streams.watch()?;
    // `now` means the tail as it is when the poll starts.
    let mut position = match start {
        Start::Now => Start::At(read(app, &path, Start::Now).await?.next),
        other => other,
    };
    let deadline = Instant::now() + app.settings.long_poll_timeout;
    loop {
        let read = read(app, &path, position).await?;
        if read.chunks.is_empty() && read.meta.closed && read.up_to_date {
            // Nothing will ever come: answer at once.
            let mut response = StatusCode::NO_CONTENT.into_response();
            let out = response.headers_mut();
            h::set(out, h::NEXT_OFFSET, &read.next.to_string());
            h::set(out, h::UP_TO_DATE, "true");
            h::set(out, h::CLOSED, "true");
            h::set(out, h::CURSOR, &next_cursor(cursor));
            return Ok(response);
        }
        if !read.chunks.is_empty() {
            let from = match position {
                Start::At(offset) => offset.position,
                _ => 0,
            };
            let mut response = (StatusCode::OK, body_of(&read)).into_response();
            let out = response.headers_mut();
            read_headers(out, &read, from);
            h::set(out, h::CURSOR, &next_cursor(cursor));
            h::set(out, "cache-control", "public, max-age=60, stale-while-revalidate=300");
            return Ok(response);
        }
        position = Start::At(read.next);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, watch.changed()).await.is_err() {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let out = response.headers_mut();
            h::set(out, h::NEXT_OFFSET, &read.next.to_string());
            h::set(out, h::UP_TO_DATE, "true");
            h::set(out, h::CURSOR, &next_cursor(cursor));
            h::set(out, "cache-control", "no-store");
            return Ok(response);
        }
    }
}

/// Server-Sent Events: `data` events with the stream's content, each
/// followed by a `control` event with the next offset and a cursor; the
/// response ends when the stream is closed and read to its end, or after
/// the SSE lifetime.
async fn sse(app: &Arc<App>, path: String, start: Start, cursor: Option<String>) -> Result<Response, StreamError> {
    let first = read(app, &path, start).await?;
    let media = crate::media_type(&first.meta.content_type);
    // Text and JSON go as they are; anything else as base64.
    let base64 = !(media.starts_with("text/") || media == "application/json");
    let watch = app.streams.watch()?;
    let state = SseState {
        _open: Open::new(&app.metrics.sse_clients),
        app: Arc::clone(app),
        path,
        position: if start == Start::Now { Start::At(first.next) } else { start },
        cursor,
        watch,
        ends_at: Instant::now() + app.settings.sse_lifetime,
        done: false,
        started: false,
        base64,
        first: Some(if start == Start::Now { Read { chunks: Vec::new(), ..first } } else { first }),
    };
    let events = futures_util::stream::unfold(state, |mut state| async move {
        let frame = state.next_frame().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), state))
    });
    let mut response = Response::new(Body::from_stream(events));
    let out = response.headers_mut();
    h::set(out, "content-type", "text/event-stream");
    h::set(out, "cache-control", "no-cache");
    if base64 {
        h::set(out, h::SSE_ENCODING, "base64");
    }
    Ok(response)
}

struct SseState {
    /// Counts this response among the open ones until it ends.
    _open: Open,
    app: Arc<App>,
    path: String,
    position: Start,
    cursor: Option<String>,
    watch: skyshelve::Watch,
    ends_at: Instant,
    done: bool,
    /// Whether data events carry base64 (binary streams).
    base64: bool,
    /// Whether the first control event went out (it goes out at once,
    /// data or not, so that the client learns where it stands).
    started: bool,
    /// The read made before the response started, sent first.
    first: Option<Read>,
}

impl SseState {
    /// The next events to send, waiting for data when caught up; `None`
    /// ends the response.
    async fn next_frame(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        loop {
            let read = match self.first.take() {
                Some(read) => read,
                None => read(&self.app, &self.path, self.position).await.ok()?,
            };
            let fresh = !read.chunks.is_empty();
            let finished = read.meta.closed && read.up_to_date;
            if fresh || finished || !self.started {
                self.started = true;
                self.position = Start::At(read.next);
                self.cursor = Some(next_cursor(self.cursor.as_deref()));
                self.done = finished;
                let cursor = self.cursor.as_deref().unwrap_or_default();
                return Some(frame(&read, fresh, self.base64, cursor, finished));
            }
            let left = self.ends_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            if tokio::time::timeout(left, self.watch.changed()).await.is_err() {
                return None;
            }
        }
    }
}

/// A data event (when there is data) and its control event.
fn frame(read: &Read, with_data: bool, base64: bool, cursor: &str, closed: bool) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    if with_data {
        out.push_str("event: data\n");
        let body = body_of(read);
        let text = if base64 {
            base64::engine::general_purpose::STANDARD.encode(&body)
        } else {
            String::from_utf8_lossy(&body).into_owned()
        };
        // Every line break an SSE parser knows (CR LF, CR, LF) starts a new
        // `data:` line, so that no content can end the event early.
        for line in text.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
            out.push_str("data:");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    let mut control = serde_json::json!({ "streamNextOffset": read.next.to_string() });
    if closed {
        control["streamClosed"] = true.into();
    } else {
        control["streamCursor"] = cursor.into();
        if read.up_to_date {
            control["upToDate"] = true.into();
        }
    }
    out.push_str("event: control\ndata:");
    out.push_str(&control.to_string());
    out.push_str("\n\n");
    out
}

/// The protocol's cursor: 20-second intervals since 2024-10-09 UTC, and
/// always above the one the client echoed.
fn next_cursor(echoed: Option<&str>) -> String {
    const EPOCH: u64 = 1_728_432_000;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let interval = now.as_secs().saturating_sub(EPOCH) / 20;
    // Counted in u128, so that any cursor a u64 can hold has a greater
    // one; a cursor too large to parse is treated as none.
    let interval = u128::from(interval);
    match echoed.and_then(|c| c.parse::<u128>().ok()) {
        Some(client) if client >= interval => {
            let jitter = 1 + u128::from(now.subsec_nanos()) % 180;
            client.checked_add(jitter).unwrap_or(interval).to_string()
        }
        _ => interval.to_string(),
    }
}
