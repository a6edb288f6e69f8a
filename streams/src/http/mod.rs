//! The Durable Streams protocol over HTTP: every path is a stream URL;
//! PUT creates, POST appends (or closes), GET reads (catch-up, long-poll,
//! SSE), HEAD gives metadata, DELETE deletes. Built on axum (hyper
//! underneath) on a tokio runtime: the ecosystem's standard HTTP stack,
//! whose streaming bodies carry SSE and whose timers carry long-polls.
//! Store calls are synchronous and may wait for a disk flush, so they run
//! on tokio's blocking pool; live reads wait on skyshelve's `Watch`, which
//! any process's commit wakes.

mod headers;
mod live;
mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::Start;
use crate::store::{Appended, Created, StreamError, Streams};
use headers as h;

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a long-poll waits for data before answering 204.
    pub long_poll_timeout: Duration,
    /// How long an SSE response stays open before the server closes it
    /// (the client reconnects from its last offset).
    pub sse_lifetime: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { long_poll_timeout: Duration::from_secs(30), sse_lifetime: Duration::from_secs(60) }
    }
}

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) streams: Streams,
    pub(crate) settings: Settings,
}

/// The protocol's router: one handler for every path.
pub fn router(streams: Streams, settings: Settings) -> axum::Router {
    let app = Arc::new(App { streams, settings });
    axum::Router::new().fallback(handle).with_state(app)
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let outcome = match parts.method {
        Method::PUT => create(&app, path, &parts.headers, body).await,
        Method::POST => append(&app, path, &parts.headers, body).await,
        Method::GET => live::get(&app, path, &query, &parts.headers).await,
        Method::HEAD => head(&app, path).await,
        Method::DELETE => delete(&app, path).await,
        Method::OPTIONS => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Ok(StatusCode::METHOD_NOT_ALLOWED.into_response()),
    };
    let mut response = outcome.unwrap_or_else(error_response);
    h::common(response.headers_mut());
    response
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T, F>(app: &Arc<App>, f: F) -> Result<T, StreamError>
where
    T: Send + 'static,
    F: FnOnce(&Streams) -> Result<T, StreamError> + Send + 'static,
{
    let streams = app.streams.clone();
    tokio::task::spawn_blocking(move || f(&streams))
        .await
        .unwrap_or_else(|_| Err(StreamError::BadRequest("the request's task failed".into())))
}

/// Reads the body, refusing one over the append limit.
async fn read_body(app: &App, body: Body) -> Result<Bytes, StreamError> {
    let limit = app.streams.limits().max_append;
    axum::body::to_bytes(body, limit.saturating_add(1))
        .await
        .map_err(|_| StreamError::TooLarge { size: limit + 1, limit })
}

async fn create(app: &Arc<App>, path: String, headers: &HeaderMap, body: Body) -> Result<Response, StreamError> {
    let mut create = request::create(headers)?;
    create.body = read_body(app, body).await?.to_vec();
    let created = blocking(app, move |s| s.create(&path, create)).await?;
    let (status, meta) = match &created {
        Created::New(meta) => (StatusCode::CREATED, meta),
        Created::Existing(meta) => (StatusCode::OK, meta),
    };
    let mut response = status.into_response();
    let out = response.headers_mut();
    h::set(out, "content-type", &meta.content_type);
    h::set(out, h::NEXT_OFFSET, &meta.tail.to_string());
    if status == StatusCode::CREATED {
        h::set(out, "location", &location(headers, &meta.path));
    }
    if meta.closed {
        h::set(out, h::CLOSED, "true");
    }
    Ok(response)
}

async fn append(app: &Arc<App>, path: String, headers: &HeaderMap, body: Body) -> Result<Response, StreamError> {
    let mut append = request::append(headers)?;
    append.body = read_body(app, body).await?.to_vec();
    let close_only = append.close && append.body.is_empty();
    let appended = blocking(app, move |s| s.append(&path, append)).await?;
    // 200 tells a producer its data was written; a plain append, a close
    // without data and a producer's duplicate are 204.
    let (status, meta, producer) = match &appended {
        Appended::Written { meta, producer: Some(state) } if !close_only => (StatusCode::OK, meta, Some(*state)),
        Appended::Written { meta, producer } => (StatusCode::NO_CONTENT, meta, *producer),
        Appended::Duplicate { meta, producer } => (StatusCode::NO_CONTENT, meta, Some(*producer)),
    };
    let mut response = status.into_response();
    let out = response.headers_mut();
    h::set(out, h::NEXT_OFFSET, &meta.tail.to_string());
    if let Some((epoch, seq)) = producer {
        h::set(out, h::PRODUCER_EPOCH, &epoch.to_string());
        h::set(out, h::PRODUCER_SEQ, &seq.to_string());
    }
    if meta.closed {
        h::set(out, h::CLOSED, "true");
    }
    Ok(response)
}

async fn head(app: &Arc<App>, path: String) -> Result<Response, StreamError> {
    let meta = blocking(app, move |s| s.head(&path)).await?;
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    h::set(out, "content-type", &meta.content_type);
    h::set(out, h::NEXT_OFFSET, &meta.tail.to_string());
    h::set(out, "cache-control", "no-store");
    h::expiry(out, &meta);
    if meta.closed {
        h::set(out, h::CLOSED, "true");
    }
    Ok(response)
}

async fn delete(app: &Arc<App>, path: String) -> Result<Response, StreamError> {
    blocking(app, move |s| s.delete(&path)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The stream's absolute URL, from the request's `Host`.
fn location(headers: &HeaderMap, path: &str) -> String {
    match headers.get("host").and_then(|host| host.to_str().ok()) {
        Some(host) => format!("http://{host}{path}"),
        None => path.to_owned(),
    }
}

/// The status (and headers) the protocol names for each failure.
fn error_response(err: StreamError) -> Response {
    let status = match &err {
        StreamError::NotFound => StatusCode::NOT_FOUND,
        StreamError::Gone => StatusCode::GONE,
        StreamError::ConfigConflict
        | StreamError::ContentTypeMismatch { .. }
        | StreamError::SeqRegression { .. }
        | StreamError::Closed { .. }
        | StreamError::SeqGap { .. } => StatusCode::CONFLICT,
        StreamError::StaleEpoch { .. } => StatusCode::FORBIDDEN,
        StreamError::BadRequest(_) => StatusCode::BAD_REQUEST,
        StreamError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = (status, err.to_string()).into_response();
    let out = response.headers_mut();
    match err {
        StreamError::Closed { tail } => {
            h::set(out, h::CLOSED, "true");
            h::set(out, h::NEXT_OFFSET, &tail.to_string());
        }
        StreamError::StaleEpoch { current } => h::set(out, h::PRODUCER_EPOCH, &current.to_string()),
        StreamError::SeqGap { expected, received } => {
            h::set(out, h::PRODUCER_EXPECTED_SEQ, &expected.to_string());
            h::set(out, h::PRODUCER_RECEIVED_SEQ, &received.to_string());
        }
        _ => {}
    }
    response
}

/// Header values we build are ASCII; anything else is left out.
pub(crate) fn value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// The offset a read starts from, or a 400.
pub(crate) fn start_of(text: Option<&str>) -> Result<Start, StreamError> {
    Start::parse(text).ok_or_else(|| StreamError::BadRequest("malformed offset".into()))
}

/// A listener on `address` that other processes may bind too
/// (SO_REUSEPORT): the kernel spreads connections over them.
pub fn bind_shared(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// Serves the protocol on `listener` until the process is stopped, and
/// removes streams that only their deleted forks kept, every second.
pub async fn serve(listener: tokio::net::TcpListener, streams: Streams, settings: Settings) -> std::io::Result<()> {
    let collector = streams.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let streams = collector.clone();
            // A failed round is tried again at the next tick.
            let _ = tokio::task::spawn_blocking(move || streams.collect_garbage()).await;
        }
    });
    axum::serve(listener, router(streams, settings)).with_graceful_shutdown(stopped()).await
}

/// Resolves at SIGINT or SIGTERM: the server then stops taking connections
/// and returns, so that its caller can stop its workers.
async fn stopped() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
