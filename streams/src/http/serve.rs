//! The connection loop: accepts connections up to a limit (refusing the
//! rest with a 503 at once, instead of leaving them to wait in the
//! kernel's queue), serves each with hyper's HTTP/1.1 server and a timer,
//! so that a client that sends its headers slowly — or, idle between
//! requests, none at all — is cut off after the header-read timeout, and
//! stops at SIGINT or SIGTERM after the open requests are answered.
//!
//! This is axum's `serve` with the limits it leaves out; the handlers are
//! axum's as before.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::metrics::{Metrics, Open};
use super::{Settings, router_with};
use crate::Streams;

/// How long open requests may take to finish once the server is told to
/// stop (a long-poll or an SSE response would otherwise hold it).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The largest request head (request line and headers); a larger one is
/// answered 431.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// A listener on `address` that other processes may bind too
/// (SO_REUSEPORT): the kernel spreads connections over them.
pub fn bind_shared(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Serves the protocol on `listener` until the process is stopped, and
/// (on a node that writes) removes streams that only their deleted forks
/// kept, every second. Returns an error when this node stepped down
/// because its store handle is done for good — another writer took the
/// store over (`Error::Fenced`), or object storage failed past SlateDB's
/// retries (`Error::Stopped`): it cannot acknowledge anything any more,
/// and its supervisor starting it again is what recovers (or, fenced,
/// decides what it becomes).
pub async fn serve(listener: TcpListener, streams: Streams, settings: Settings) -> std::io::Result<()> {
    if !streams.is_read_only() {
        spawn_collector(streams.clone());
    }
    let metrics = Arc::new(Metrics::new(streams.store().path().to_owned()));
    let step_down = Arc::new(tokio::sync::Notify::new());
    let router = router_with(streams, settings.clone(), Arc::clone(&metrics), Arc::clone(&step_down));
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout).max_header_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stopped());
    let mut stepped_down = false;
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(err) => {
                    // Out of file descriptors, most often: wait for some to
                    // close rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
            () = step_down.notified() => {
                stepped_down = true;
                break;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics.refused_connections.inc();
            tokio::spawn(refuse(socket));
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(socket), service));
        let open = Open::new(&metrics.connections);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a connection ended with an error");
            }
            drop((permit, open));
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::info!("stopping with requests still open after {SHUTDOWN_GRACE:?}");
    }
    if stepped_down {
        return Err(std::io::Error::other(SteppedDown));
    }
    Ok(())
}

/// Why [`serve`] returned on its own: this node's store handle is done for
/// good (fenced by another writer node, or stopped after object storage
/// failed). Carried inside the `io::Error` that `serve` returns.
#[derive(Debug, thiserror::Error)]
#[error(
    "the store can no longer be used by this process (fenced by another writer node, or stopped after object \
     storage failed): stepping down; start it again to recover"
)]
pub struct SteppedDown;

impl SteppedDown {
    /// Whether `err` is a step-down.
    #[must_use]
    pub fn is(err: &std::io::Error) -> bool {
        err.get_ref().is_some_and(|inner| inner.is::<SteppedDown>())
    }
}

/// Answers a connection over the limit with a 503 and closes it.
async fn refuse(mut socket: TcpStream) {
    const BODY: &str = "the server has as many connections open as it takes; try again later\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    // A client that does not read is not waited for. What it sent is read
    // and dropped before closing: closing a socket with unread data resets
    // the connection, and the client would lose the answer.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await?;
        let mut sink = [0; 4096];
        while socket.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// Every second, removes what only forks kept once no fork needs it.
fn spawn_collector(streams: Streams) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let streams = streams.clone();
            // A failed round is tried again at the next tick.
            if let Ok(Err(err)) = tokio::task::spawn_blocking(move || streams.collect_garbage()).await {
                tracing::warn!(error = %err, "collecting deleted streams failed");
            }
        }
    });
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
