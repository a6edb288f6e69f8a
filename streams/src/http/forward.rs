//! A reader node's writes: forwarded to the writer node (`--writer`), whose
//! answer goes back to the client as it is. Forwarding rather than
//! redirecting, because a redirect is only as good as the client's
//! handling of it: Node's `fetch` cannot send a binary or streamed body
//! again after a 307 (the conformance suite's binary appends failed that
//! way against a redirecting reader), and a client would have to reach
//! the writer itself. Forwarded, every client works through any node,
//! the writer may sit on a private network, and it stays the only node
//! that acknowledges a write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{App, headers as h, read_body, replica};
use crate::types::{Meta, RENEW_AFTER};
use crate::{Offset, StreamError, Streams};

/// How long a forwarded write may take at the writer (an append waits for
/// object storage, which SlateDB retries for up to about 20 s).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

/// Marks a write a reader forwarded: a reader that receives one refuses it
/// (508) instead of forwarding it on, so that a `--writer` that names a
/// reader cannot send writes round in a loop.
const FORWARDED: &str = "skyshelve-forwarded";

/// The writer node a reader forwards writes to.
pub(crate) struct Writer {
    /// `http://host:port`, without a path.
    base: String,
    client: Client<HttpConnector, Body>,
}

impl Writer {
    /// The writer at `url`, or why it cannot be one (see `check_writer_url`).
    pub(crate) fn new(url: &str) -> Result<Writer, String> {
        check_writer_url(url)?;
        let base = url.trim_end_matches('/').to_owned();
        Ok(Writer { base, client: Client::builder(TokioExecutor::new()).build_http() })
    }
}

/// Whether a reader node can forward writes to `url` (`Settings::writer`):
/// `http://HOST:PORT`, without a path.
pub fn check_writer_url(url: &str) -> Result<(), String> {
    let uri: Uri = url.trim_end_matches('/').parse().map_err(|err| format!("{url:?} is not a URL: {err}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() || uri.path() != "/" {
        return Err(format!("{url:?} is not http://HOST:PORT (TLS belongs in a proxy in front of the writer)"));
    }
    Ok(())
}

/// Headers that describe one connection, not the request: not forwarded
/// (the body is forwarded whole, so hyper sets its length again).
fn hop_by_hop(name: &HeaderName) -> bool {
    const NAMES: [HeaderName; 8] = [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::CONTENT_LENGTH,
    ];
    NAMES.contains(name) || name.as_str() == "keep-alive"
}

/// A write sent to a reader node: the writer's answer to it, or 405 when no
/// writer was named. The body is held to the same limits as on the writer
/// before it is sent on; the client's `Host` goes along, so that a new
/// stream's `Location` names the node the client asked. A write the writer
/// made is answered once this node's replica shows it (or after the
/// long-poll timeout), so that a client that writes and reads through one
/// reader node reads its own writes.
pub(super) async fn write(app: &Arc<App>, parts: &Parts, body: Body) -> Result<Response, StreamError> {
    let Some(writer) = &app.writer else {
        let mut response =
            (StatusCode::METHOD_NOT_ALLOWED, "this node serves reads only; send writes to the writer node\n")
                .into_response();
        h::set(response.headers_mut(), "allow", "GET, HEAD, OPTIONS");
        return Ok(response);
    };
    let writer = writer.as_ref().map_err(|why| StreamError::Internal(why.clone()))?;
    if parts.headers.contains_key(FORWARDED) {
        // `--writer` names a reader (this one, or one that forwards back).
        tracing::error!(writer = %writer.base, "a forwarded write reached a reader node: --writer names no writer");
        return Ok(
            (StatusCode::LOOP_DETECTED, "the writer node this node forwards to is a reader node\n").into_response()
        );
    }
    let body = read_body(app, body).await?;
    let target = parts.uri.path_and_query().map_or("/", axum::http::uri::PathAndQuery::as_str);
    let mut request =
        axum::http::Request::builder().method(parts.method.clone()).uri(format!("{}{target}", writer.base));
    for (name, value) in parts.headers.iter().filter(|(name, _)| !hop_by_hop(name)) {
        request = request.header(name, value);
    }
    request = request.header(FORWARDED, "1");
    let request = request.body(Body::from(body)).map_err(|err| StreamError::Internal(err.to_string()))?;
    let response = match tokio::time::timeout(FORWARD_TIMEOUT, writer.client.request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, writer = %writer.base, "forwarding a write to the writer node failed");
            return Err(StreamError::WriterUnreachable);
        }
        Err(_) => {
            tracing::warn!(writer = %writer.base, "the writer node did not answer a forwarded write in {FORWARD_TIMEOUT:?}");
            return Err(StreamError::WriterUnreachable);
        }
    };
    if response.status().is_success() && !shown_here(app, parts, response.headers()).await? {
        tracing::warn!(writer = %writer.base, "the writer made a forwarded write that this replica did not show in time");
    }
    Ok(response.map(Body::new))
}

/// Waits until this node's replica shows a write the writer made, as its
/// answer's headers describe it: the stream gone after a delete; else
/// holding its `Stream-Next-Offset`, and closed if the answer says so.
async fn shown_here(app: &Arc<App>, parts: &Parts, answer: &HeaderMap) -> Result<bool, StreamError> {
    let path = parts.uri.path().to_owned();
    if parts.method == Method::DELETE {
        let gone = move |s: &Streams| Ok(matches!(s.head(&path), Err(StreamError::NotFound | StreamError::Gone)));
        return replica::caught_up(app, gone).await;
    }
    let Some(offset) = answer.get(h::NEXT_OFFSET).and_then(|v| v.to_str().ok()).and_then(Offset::parse) else {
        return Ok(true);
    };
    let closed = answer.get(h::CLOSED).is_some_and(|v| v == "true");
    let holds = move |s: &Streams| Ok(s.holds(&path, offset)? && (!closed || s.head(&path).is_ok_and(|m| m.closed)));
    replica::caught_up(app, holds).await
}

/// Renewals of TTLs asked of the writer lately, by stream id, so that a
/// burst of reads on this node is not a burst of requests to the writer.
#[derive(Default)]
pub(crate) struct Renewals(Mutex<HashMap<u64, Instant>>);

/// At most this many streams are remembered (older entries are dropped).
const RENEWALS_KEPT: usize = 10_000;

/// A read on a reader node renews the stream's TTL as a read on the
/// writer does: by asking the writer to read it (`?offset=now`, no data),
/// in the background, when a renewal is due and none was asked for this
/// stream within `RENEW_AFTER` (at most ten a second, however many reads).
/// A stream read only through readers stays alive.
pub(super) fn renew(app: &Arc<App>, path: &str, meta: &Meta) {
    let (Some(Ok(writer)), now) = (&app.writer, SystemTime::now()) else { return };
    if !meta.renewal_due(now) {
        return;
    }
    {
        let mut asked = app.renewals.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if asked.get(&meta.id).is_some_and(|at| at.elapsed() < RENEW_AFTER) {
            return;
        }
        if asked.len() >= RENEWALS_KEPT {
            asked.retain(|_, at| at.elapsed() < RENEW_AFTER);
        }
        asked.insert(meta.id, Instant::now());
    }
    let uri = format!("{}{path}?offset=now", writer.base);
    let client = writer.client.clone();
    tokio::spawn(async move {
        let Ok(request) = axum::http::Request::get(uri).body(Body::empty()) else { return };
        if let Err(err) = tokio::time::timeout(FORWARD_TIMEOUT, client.request(request)).await {
            tracing::warn!(error = %err, "asking the writer node to renew a TTL failed");
        }
    });
}
