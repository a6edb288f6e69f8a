//! `skyshelve-streams serve`: the Durable Streams server.

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
#[command(version, about)]
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
    /// serve the same folder at the same time.
    #[arg(long)]
    dir: PathBuf,
    /// The TCP port (4437 is the protocol's default); 0 lets the system
    /// pick a free one, which the server prints when it listens.
    #[arg(long, default_value_t = 4437)]
    port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Seconds a long-poll waits for new data before answering 204.
    #[arg(long, default_value_t = 30.0)]
    long_poll_timeout: f64,
    /// When an append is acknowledged: `full` after it is flushed to disk,
    /// `relaxed` before the final flush (an OS crash or power loss may
    /// lose the last appends; a process crash loses nothing).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
    /// The largest append body, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 16 << 20)]
    max_message_size: usize,
    /// Server processes sharing the port (SO_REUSEPORT) and the store:
    /// this one and N-1 more it starts.
    #[arg(long, default_value_t = 1)]
    workers: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DurabilityArg {
    Full,
    Relaxed,
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

fn main() -> ExitCode {
    let Cli { command: Command::Serve(serve) } = Cli::parse();
    match run(&serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("skyshelve-streams: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(serve: &Serve) -> Result<(), Box<dyn std::error::Error>> {
    if serve.port == 0 && serve.workers > 1 {
        // Each process would get a port of its own.
        return Err("--workers shares one port between processes: give it with --port".into());
    }
    let durability = match serve.durability {
        DurabilityArg::Full => skyshelve::Durability::Full,
        DurabilityArg::Relaxed => skyshelve::Durability::MayLoseLastCommits,
    };
    let limits = Limits { max_append: serve.max_message_size, ..Limits::default() };
    let streams = Streams::open(&serve.dir, durability, limits)?;
    let settings = Settings {
        long_poll_timeout: Duration::from_secs_f64(serve.long_poll_timeout.max(0.0)),
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
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async move {
        let listener = skyshelve_streams::http::bind_shared(address)?;
        let bound = listener.local_addr()?;
        eprintln!("skyshelve-streams: serving {} on http://{bound}", serve.dir.display());
        skyshelve_streams::http::serve(listener, streams, settings).await
    });
    for mut worker in workers {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    Ok(outcome?)
}
