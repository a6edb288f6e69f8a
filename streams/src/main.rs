//! `skyshelve-streams serve`: the Durable Streams server.

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use skyshelve_streams::http::Settings;
use skyshelve_streams::{Limits, Streams};

/// A Durable Streams server on skyshelve: any number of processes may
/// serve one store folder at once.
#[derive(Parser, Debug)]
#[command(version, about, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the streams stored in a folder over HTTP.
    Serve(Serve),
}

#[derive(clap::Args, Debug)]
struct Serve {
    /// The store folder (created if missing); other server processes may
    /// serve the same folder at the same time. With `--store`, this
    /// node's own folder (its watch file), which no other machine shares;
    /// a temporary one if left out.
    #[arg(long, required_unless_present = "store")]
    dir: Option<PathBuf>,
    /// Serve streams kept on object storage instead of in `--dir`:
    /// `s3://bucket/prefix` (credentials and endpoint from the `AWS_*`
    /// environment variables) or `file:///path`. One writer node serves
    /// it; starting another fences the first, which then exits. Needs the
    /// feature `slatedb`.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// A reader node of `--store`: serves reads, long-polls and SSE from a
    /// replica that follows the writer node's commits; writes are
    /// forwarded to `--writer`.
    #[arg(long, requires = "store")]
    read_only: bool,
    /// The writer node's base URL (`http://writer:4437`), to which a
    /// reader node forwards writes, passing its answers back; without it
    /// a reader answers writes 405.
    #[arg(long, value_name = "URL", requires = "read_only", value_parser = writer_url)]
    writer: Option<String>,
    /// Milliseconds between a reader node's looks for the writer's new
    /// commits: each costs object-store requests, and bounds how far a
    /// reader lags.
    #[arg(long, default_value_t = 100)]
    poll_interval_ms: u64,
    /// The TCP port (4437 is the protocol's default); 0 lets the system
    /// pick a free one, which the server prints when it listens.
    #[arg(long, default_value_t = 4437)]
    port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Seconds a long-poll waits for new data before answering 204 (0 to
    /// a year, as the other timeouts).
    #[arg(long, default_value = "30", value_parser = seconds)]
    long_poll_timeout: Duration,
    /// When an append is acknowledged: `full` after it is flushed to disk,
    /// `relaxed` before the final flush (an OS crash or power loss may
    /// lose the last appends; a process crash loses nothing).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
    /// The largest append body, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 16 << 20)]
    max_message_size: usize,
    /// The most JSON messages one append may carry (more get 413): each
    /// is stored on its own, so this bounds how long one append holds the
    /// store's writer.
    #[arg(long, default_value_t = Limits::default().max_messages)]
    max_messages_per_append: usize,
    /// The most bytes the store's data file may grow to (default: as far
    /// as the disk allows); writes past it get 507 until streams are
    /// deleted. Every process serving the folder must give the same value.
    #[arg(long)]
    max_store_size: Option<usize>,
    /// Seconds a client may take to send a request's headers; also how
    /// long an idle connection is kept open.
    #[arg(long, default_value = "60", value_parser = seconds)]
    header_timeout: Duration,
    /// Seconds a client may take to send a request's body (then 408).
    #[arg(long, default_value = "300", value_parser = seconds)]
    body_timeout: Duration,
    /// Connections served at once by each process; more are answered 503.
    /// Keep it below the process's open-file limit (`ulimit -n`).
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// An origin whose web pages may call the server (CORS), e.g.
    /// `https://app.example.com`; repeatable; `*` allows every origin.
    /// Without it no CORS headers are sent, so other sites' pages cannot
    /// read, write or delete streams through a visitor's browser.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// How log lines are written to standard error: `text` for people,
    /// `json` (one object a line) for log collectors. `RUST_LOG` picks
    /// what is logged (default `info`: one line per request).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Server processes sharing the port (SO_REUSEPORT) and the store:
    /// this one and N-1 more it starts.
    #[arg(long, default_value_t = 1)]
    workers: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DurabilityArg {
    Full,
    Relaxed,
}

/// A `--writer` URL the server can forward to.
fn writer_url(url: &str) -> Result<String, String> {
    skyshelve_streams::http::check_writer_url(url).map(|()| url.to_owned())
}

/// The longest wait a flag may set: a year, far past any use, and far
/// from the end of what a deadline (now + the wait) can hold.
const MAX_WAIT_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// A wait given in seconds (fractions allowed), from 0 to a year.
fn seconds(value: &str) -> Result<Duration, String> {
    let parsed: f64 = value.parse().map_err(|err| format!("{value:?} is not a number of seconds: {err}"))?;
    if !(0.0..=MAX_WAIT_SECONDS).contains(&parsed) {
        return Err(format!("{value} is not between 0 and {MAX_WAIT_SECONDS} seconds (a year)"));
    }
    Ok(Duration::from_secs_f64(parsed))
}

/// Set in the environment of the worker processes a server starts.
const WORKER: &str = "SKYSHELVE_STREAMS_WORKER";

/// Asks the kernel to end this process when its parent ends, so that no
/// worker outlives the server that started it, however that one ended.
fn end_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and touches
    // no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
fn start_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn main() -> ExitCode {
    let Cli { command: Command::Serve(serve) } = Cli::parse();
    start_logging(serve.log_format);
    match run(&serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("skyshelve-streams: {err}");
            // Fenced while it opened: another writer node started at the same time and won.
            let fenced = matches!(
                err.downcast_ref::<skyshelve_streams::StreamError>(),
                Some(skyshelve_streams::StreamError::Store(skyshelve::Error::Fenced { .. }))
            );
            if fenced { ExitCode::from(STEPPED_DOWN) } else { ExitCode::FAILURE }
        }
    }
}

fn run(serve: &Serve) -> Result<(), Box<dyn Error>> {
    if serve.port == 0 && serve.workers > 1 {
        // Each process would get a port of its own.
        return Err("--workers shares one port between processes: give it with --port".into());
    }
    let durability = match serve.durability {
        DurabilityArg::Full => skyshelve::Durability::Full,
        DurabilityArg::Relaxed => skyshelve::Durability::MayLoseLastCommits,
    };
    let limits = Limits {
        max_append: serve.max_message_size,
        max_messages: serve.max_messages_per_append,
        max_store: serve.max_store_size,
        ..Limits::default()
    };
    let opened = open_streams(serve, durability, limits)?;
    let streams = opened.streams.clone();
    let settings = Settings {
        long_poll_timeout: serve.long_poll_timeout,
        header_read_timeout: serve.header_timeout,
        body_read_timeout: serve.body_timeout,
        max_connections: serve.max_connections.max(1),
        cors_origins: serve.cors_origins.clone(),
        writer: serve.writer.clone(),
        ..Settings::default()
    };
    let address = SocketAddr::new(serve.host, serve.port);
    // Workers started by a server start none of their own, and end with it.
    let is_worker = std::env::var_os(WORKER).is_some();
    if is_worker {
        end_with_parent();
    }
    let mut workers = Vec::new();
    for _ in 1..if is_worker { 1 } else { serve.workers } {
        let args: Vec<String> = std::env::args().skip(1).collect();
        workers.push(std::process::Command::new(std::env::current_exe()?).args(&args).env(WORKER, "1").spawn()?);
    }
    let role = if is_worker { "worker" } else { "server" };
    let started: Vec<u32> = workers.iter().map(std::process::Child::id).collect();
    tracing::info!(pid = std::process::id(), role, workers = ?started, "starting");
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async move {
        let listener = skyshelve_streams::http::bind_shared(address)?;
        let bound = listener.local_addr()?;
        eprintln!("skyshelve-streams: {role} {} serving {} on http://{bound}", std::process::id(), opened.what);
        skyshelve_streams::http::serve(listener, streams, settings).await
    });
    for mut worker in workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    match outcome {
        Err(err) if skyshelve_streams::http::SteppedDown::is(&err) => {
            // Closing a handle that is done for good would only retry an
            // object store that refuses it: end now.
            eprintln!("skyshelve-streams: {err}");
            std::process::exit(STEPPED_DOWN.into());
        }
        outcome => Ok(outcome?),
    }
}

/// The exit status of a node that stepped down (see `http::SteppedDown`),
/// so that a supervisor can tell it from a failure to start.
const STEPPED_DOWN: u8 = 3;

/// The open stream store, what the start-up line calls it, and the
/// temporary folder of a node given no `--dir`.
struct Opened {
    streams: Streams,
    what: String,
    _temporary: Option<tempfile::TempDir>,
}

fn open_streams(serve: &Serve, durability: skyshelve::Durability, limits: Limits) -> Result<Opened, Box<dyn Error>> {
    let Some(url) = &serve.store else {
        let dir = serve.dir.clone().ok_or("--dir or --store is needed")?;
        let streams = Streams::open(&dir, durability, limits)?;
        return Ok(Opened { streams, what: dir.display().to_string(), _temporary: None });
    };
    if serve.workers > 1 {
        return Err("--workers shares an LMDB folder; on --store, start more reader nodes (--read-only)".into());
    }
    if serve.max_store_size.is_some() {
        return Err("--max-store-size bounds an LMDB folder; object storage has no such bound".into());
    }
    open_objects(serve, url, durability, limits)
}

#[cfg(feature = "slatedb")]
fn open_objects(
    serve: &Serve,
    url: &str,
    durability: skyshelve::Durability,
    limits: Limits,
) -> Result<Opened, Box<dyn Error>> {
    let temporary = match serve.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("skyshelve-streams-").tempdir()?),
    };
    let local_dir = serve.dir.clone().or_else(|| temporary.as_ref().map(|t| t.path().to_owned())).unwrap_or_default();
    let objects = skyshelve_streams::ObjectStore {
        url: url.to_owned(),
        local_dir,
        read_only: serve.read_only,
        poll_interval: Duration::from_millis(serve.poll_interval_ms.max(1)),
    };
    let streams = Streams::open_objects(&objects, durability, limits)?;
    let role = if serve.read_only { "a replica of" } else { "the writer of" };
    Ok(Opened { streams, what: format!("{role} {url}"), _temporary: temporary })
}

#[cfg(not(feature = "slatedb"))]
fn open_objects(_: &Serve, _: &str, _: skyshelve::Durability, _: Limits) -> Result<Opened, Box<dyn Error>> {
    Err("--store needs object storage support: build with `--features slatedb`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_flag_takes_seconds_from_zero_to_a_year_and_refuses_the_rest() {
        for (given, wanted) in [("0", 0.0), ("-0", 0.0), ("0.5", 0.5), ("30", 30.0), ("31536000", MAX_WAIT_SECONDS)] {
            assert_eq!(seconds(given), Ok(Duration::from_secs_f64(wanted)), "{given}");
        }
        // Each of these once panicked: at start (no Duration holds them),
        // or at every long-poll (now + the wait overflowed an Instant).
        for given in ["inf", "NaN", "1e30", "1e19", "-1", "-0.5", "abc", "", "31536001"] {
            assert!(seconds(given).is_err(), "{given}");
        }
    }
}
