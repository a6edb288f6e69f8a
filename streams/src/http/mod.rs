//! The Durable Streams protocol over HTTP: every path is a stream URL;
//! PUT creates, POST appends (or closes), GET reads (catch-up, long-poll,
//! SSE), HEAD gives metadata, DELETE deletes. Built on axum (hyper
//! underneath) on a tokio runtime: the ecosystem's standard HTTP stack,
//! whose streaming bodies carry SSE and whose timers carry long-polls.
//! Store calls are synchronous and may wait for a disk flush, so they run
//! on tokio's blocking pool; live reads wait on skyshelve's `Watch`, which
//! any process's commit wakes.

mod error;
mod forward;
mod headers;
mod live;
mod metrics;
mod replica;
mod request;
mod serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::Start;
use crate::StreamError;
use crate::store::Streams;
use crate::types::{Appended, Created};
pub use forward::check_writer_url;
use headers as h;
use metrics::Metrics;
pub use serve::{MAX_HEADER_BYTES, SteppedDown, bind_shared, serve};

/// The longest stream path, in bytes: paths are keys of a unique index,
/// and index keys have a bounded length. A longer one is answered 414.
pub const MAX_PATH_BYTES: usize = 400;

/// Settings of a server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a long-poll waits for data before answering 204.
    pub long_poll_timeout: Duration,
    /// How long an SSE response stays open before the server closes it
    /// (the client reconnects from its last offset).
    pub sse_lifetime: Duration,
    /// How long a client may take to send a request's headers, and how
    /// long an idle connection stays open waiting for the next request
    /// (Node and nginx close both after 60 s).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body (Node's whole
    /// request timeout is 300 s); a slower one is answered 408.
    pub body_read_timeout: Duration,
    /// Connections served at once by this process; one more is answered
    /// 503 and closed (nginx's default is 512 per worker).
    pub max_connections: usize,
    /// Origins whose web pages may call the server (CORS); `*` allows
    /// every origin. Empty, the default: no CORS headers, so a browser
    /// keeps other sites' pages from reading or writing streams.
    pub cors_origins: Vec<String>,
    /// On a reader node, the writer node's base URL (`http://writer:4437`):
    /// writes are forwarded there and its answers passed back (see
    /// `forward.rs`). Without it a reader answers writes 405.
    pub writer: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            long_poll_timeout: Duration::from_secs(30),
            sse_lifetime: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(300),
            max_connections: 512,
            cors_origins: Vec::new(),
            writer: None,
        }
    }
}

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) streams: Streams,
    pub(crate) settings: Settings,
    pub(crate) metrics: Arc<Metrics>,
    /// Where a reader node forwards writes (`None`: no writer named; an
    /// error: a writer URL that cannot be used, said to every write).
    pub(crate) writer: Option<Result<forward::Writer, String>>,
    /// TTL renewals a reader node asked of the writer lately.
    pub(crate) renewals: forward::Renewals,
    /// Told when this node can no longer use its store (another writer
    /// fenced it, or object storage failed for longer than SlateDB
    /// retries): the server then stops (see `serve.rs`).
    pub(crate) step_down: Arc<tokio::sync::Notify>,
}

/// The protocol's router: one handler for every path, behind the access
/// log and (when origins are given) CORS.
pub fn router(streams: Streams, settings: Settings) -> axum::Router {
    let metrics = Arc::new(Metrics::new(streams.store().path().to_owned()));
    router_with(streams, settings, metrics, Arc::default())
}

fn router_with(
    streams: Streams,
    settings: Settings,
    metrics: Arc<Metrics>,
    step_down: Arc<tokio::sync::Notify>,
) -> axum::Router {
    let cors = cors_layer(&settings.cors_origins);
    let writer = settings.writer.as_deref().map(forward::Writer::new);
    let app = Arc::new(App { streams, settings, metrics, writer, renewals: Default::default(), step_down });
    let access_log = tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(request_span)
        .on_request(())
        .on_response(log_response);
    let router = axum::Router::new().fallback(handle).with_state(app).layer(access_log);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The span of a request in the access log: the process id (workers
/// share one log), method and path.
fn request_span(request: &Request) -> tracing::Span {
    tracing::info_span!("request", pid = std::process::id(), method = %request.method(), path = %request.uri().path())
}

/// The access log's line for each response, at INFO: status, response
/// bytes (when known before the body is sent) and time.
fn log_response(response: &Response, latency: Duration, _span: &tracing::Span) {
    let bytes = response.headers().get("content-length").and_then(|v| v.to_str().ok()).unwrap_or("-");
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    tracing::info!(status = response.status().as_u16(), bytes, micros, "served");
}

/// CORS for the given origins (`*`: any), or none.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let exposed = h::EXPOSED.split(", ").filter_map(|name| name.parse().ok()).collect::<Vec<_>>();
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::HEAD, Method::OPTIONS])
            .allow_headers(Any)
            .expose_headers(exposed),
    )
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let writes = matches!(parts.method, Method::PUT | Method::POST | Method::DELETE);
    let outcome = match (&parts.method, path.as_str()) {
        (&Method::GET, HEALTH_PATH) => health(&app).await,
        (&Method::GET, METRICS_PATH) => Ok(app.metrics.render().into_response()),
        _ if path.len() > MAX_PATH_BYTES => Err(StreamError::PathTooLong { length: path.len(), limit: MAX_PATH_BYTES }),
        _ if writes && app.streams.is_read_only() => forward::write(&app, &parts, body).await,
        (&Method::PUT, _) => create(&app, path, &parts.headers, body).await,
        (&Method::POST, _) => append(&app, path, &parts.headers, body).await,
        (&Method::GET, _) => live::get(&app, path, &query, &parts.headers).await,
        (&Method::HEAD, _) => head(&app, path).await,
        (&Method::DELETE, _) => delete(&app, path).await,
        (&Method::OPTIONS, _) => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Ok(StatusCode::METHOD_NOT_ALLOWED.into_response()),
    };
    if let Err(StreamError::Store(skyshelve::Error::Fenced { .. } | skyshelve::Error::Stopped { .. })) = &outcome {
        // `notify_one` keeps the notice until the server looks.
        app.step_down.notify_one();
    }
    let mut response = outcome.unwrap_or_else(IntoResponse::into_response);
    h::common(response.headers_mut());
    response
}

/// Answers 200 once a read of the store succeeds: for load balancers and
/// orchestrators. No stream can be served at this path.
pub const HEALTH_PATH: &str = "/healthz";

/// The Prometheus text endpoint. No stream can be served at this path.
pub const METRICS_PATH: &str = "/metrics";

async fn health(app: &Arc<App>) -> Result<Response, StreamError> {
    blocking(app, |s| Ok(s.store().read(|_| Ok(()))?)).await?;
    Ok("ok\n".into_response())
}

/// Runs a store call on the blocking pool; a call that panics is a 500.
pub(crate) async fn blocking<T, F>(app: &Arc<App>, f: F) -> Result<T, StreamError>
where
    T: Send + 'static,
    F: FnOnce(&Streams) -> Result<T, StreamError> + Send + 'static,
{
    let streams = app.streams.clone();
    tokio::task::spawn_blocking(move || f(&streams))
        .await
        .unwrap_or_else(|panicked| Err(StreamError::Internal(format!("the request's task failed: {panicked}"))))
}

/// Reads the body, refusing one over the append limit or slower than the
/// body-read timeout.
async fn read_body(app: &App, body: Body) -> Result<Bytes, StreamError> {
    let limit = app.streams.limits().max_append;
    let timeout = app.settings.body_read_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit.saturating_add(1))).await {
        Err(_) => Err(StreamError::BodyTimeout(timeout)),
        Ok(Err(_)) => Err(StreamError::TooLarge { limit }),
        Ok(Ok(bytes)) => Ok(bytes),
    }
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
    let bytes = append.body.len() as u64;
    let started = Instant::now();
    let appended = blocking(app, move |s| s.append(&path, append)).await?;
    if matches!(appended, Appended::Written { .. }) && !close_only {
        app.metrics.appends.inc();
        app.metrics.appended_bytes.inc_by(bytes);
        app.metrics.append_seconds.observe(started.elapsed().as_secs_f64());
    }
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

/// Header values we build are ASCII; anything else is left out.
pub(crate) fn value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// The offset a read starts from, or a 400.
pub(crate) fn start_of(text: Option<&str>) -> Result<Start, StreamError> {
    Start::parse(text).ok_or_else(|| StreamError::BadRequest("malformed offset".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_task_that_panics_is_answered_500_without_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let streams = Streams::open(dir.path(), skyshelve::Durability::Full, crate::Limits::default()).unwrap();
        let metrics = Arc::new(Metrics::new(dir.path().to_owned()));
        let settings = Settings::default();
        let (writer, renewals, step_down) = (None, Default::default(), Arc::default());
        let app = Arc::new(App { streams, settings, metrics, writer, renewals, step_down });
        let failed = blocking(&app, |_| -> Result<(), StreamError> { panic!("secret internals") }).await.unwrap_err();
        assert!(matches!(failed, StreamError::Internal(_)), "{failed:?}");
        let response = failed.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 10).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("secret"), "{body:?}");
    }
}
