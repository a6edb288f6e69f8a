//! The scaling benchmark of skyshelve-streams across processes
//! (`--streams-scale`, feature `slatedb`): one writer and 1, 2 and 3
//! reader processes, on each deployment in one run —
//!
//! - **LMDB folder**: processes sharing one store folder on one machine;
//!   the first takes the writes, the others serve the reads;
//! - **objects, local folder**: a writer node and reader nodes
//!   (`--read-only`) on a `file://` object store;
//! - **objects, S3**: the same on the S3 server named by
//!   `STREAMS_SCALE_S3_URL` (`s3://bucket/prefix`, with the `AWS_*`
//!   variables), when it is set.
//!
//! ```text
//! cargo run --release -p skyshelve-bench --features slatedb -- --streams-scale [--quick]
//! ```
//!
//! Measured: appends per second on the writer (1 and 16 producers,
//! durable); a catch-up read of the whole stream from every reader process
//! at once (messages per second, all readers together); and long-poll
//! fan-out, four long-polls per reader process woken by each append on the
//! writer (p50 and p99 from the append's send to each wake-up: for
//! object-store readers, the replica's lag). Every figure is checked: the
//! stream's length after the appends, every message read, every poll woken.

use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use super::client::Client;
use super::servers::{self, Kind, Running};
use super::workloads;
use crate::systems::Result;

/// Long-polls per reader process in the fan-out workload.
const POLLERS_PER_READER: usize = 4;

/// How often a reader node looks for the writer's commits here (the
/// server's default).
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Opens a node of the object store at `url` (for `serve_child`).
pub fn open_node(
    url: &str,
    local_dir: &std::path::Path,
    read_only: bool,
    durability: skyshelve::Durability,
    limits: skyshelve_streams::Limits,
) -> Result<skyshelve_streams::Streams> {
    let node = skyshelve_streams::ObjectStore {
        url: url.to_owned(),
        local_dir: local_dir.to_owned(),
        read_only,
        poll_interval: POLL_INTERVAL,
    };
    Ok(skyshelve_streams::Streams::open_objects(&node, durability, limits)?)
}

struct Sizes {
    seconds: f64,
    messages: usize,
    rounds: usize,
}

/// A deployment measured: a name, and how to start a writer with `readers`
/// reader processes (the writer's port first).
struct Deployment {
    name: String,
    /// `None`: the LMDB folder; otherwise the object store's base URL.
    objects: Option<String>,
}

impl Deployment {
    fn start(&self, readers: usize, run: &mut usize) -> Result<Running> {
        let Some(base) = &self.objects else { return servers::start(Kind::Skyshelve, true, 1 + readers) };
        // A fresh store per start: earlier runs' streams would be in the way.
        *run += 1;
        let url = format!("{}/scale-{}-{run}", base.trim_end_matches('/'), std::process::id());
        let mut nodes = vec![[url.as_str(), "writer"]];
        nodes.extend(std::iter::repeat_n([url.as_str(), "reader"], readers));
        servers::start_nodes(&nodes)
    }
}

pub fn run(quick: bool) -> Result<String> {
    let sizes = if quick {
        Sizes { seconds: 0.5, messages: 5_000, rounds: 20 }
    } else {
        Sizes { seconds: 3.0, messages: 200_000, rounds: 200 }
    };
    let objects = tempfile::Builder::new().prefix("streams-scale-objects-").tempdir()?;
    let mut deployments = vec![
        Deployment { name: "LMDB folder".into(), objects: None },
        Deployment {
            name: "objects: local folder".into(),
            objects: Some(format!("file://{}", objects.path().display())),
        },
    ];
    if let Ok(url) = std::env::var("STREAMS_SCALE_S3_URL") {
        deployments.push(Deployment { name: "objects: S3".into(), objects: Some(url) });
    }
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut put = |label: String, column: usize, value: String| {
        if let Some((_, cells)) = rows.iter_mut().find(|(l, _)| *l == label) {
            cells[column] = value;
        } else {
            let mut cells = vec!["–".to_owned(); deployments.len()];
            cells[column] = value;
            rows.push((label, cells));
        }
    };
    let mut run = 0;
    for (column, deployment) in deployments.iter().enumerate() {
        for producers in [1, 16] {
            eprintln!("  {}: appends, {producers} producer(s)", deployment.name);
            let nodes = deployment.start(0, &mut run)?;
            let rate = workloads::appends(nodes.ports[0], producers, sizes.seconds)?;
            put(format!("appends/s on the writer, {producers} producer(s), durable"), column, format!("{rate:.0}"));
        }
        for readers in 1..=3 {
            eprintln!("  {}: {readers} reader process(es)", deployment.name);
            let nodes = deployment.start(readers, &mut run)?;
            let rate = catch_up(&nodes.ports, sizes.messages)?;
            let label = format!("catch-up read of {} messages, {readers} reader(s): messages/s", sizes.messages);
            put(label, column, format!("{rate:.0}"));
            let (p50, p99) = fan_out(&nodes.ports, sizes.rounds)?;
            let pollers = readers * POLLERS_PER_READER;
            put(
                format!("append → {pollers} long-polls on {readers} reader(s) woken: p50"),
                column,
                format!("{p50:.1} ms"),
            );
            put(
                format!("append → {pollers} long-polls on {readers} reader(s) woken: p99"),
                column,
                format!("{p99:.1} ms"),
            );
        }
    }
    let mut table = String::from("| workload |");
    for deployment in &deployments {
        table.push_str(&format!(" {} |", deployment.name));
    }
    table.push_str("\n|---|");
    table.push_str(&"---:|".repeat(deployments.len()));
    for (label, cells) in rows {
        table.push_str(&format!("\n| {label} | {} |", cells.join(" | ")));
    }
    Ok(table)
}

/// Loads a JSON stream of `messages` on the writer (`ports[0]`), waits
/// until every reader holds its tail, then reads it whole from every
/// reader at once; returns messages per second, all readers together.
fn catch_up(ports: &[u16], messages: usize) -> Result<f64> {
    let path = "/v1/stream/scale-catch-up";
    let json = [("Content-Type", "application/json")];
    let mut writer = Client::connect(ports[0])?;
    check(writer.send("PUT", path, &json, b"")?.status == 201, || "create failed".into())?;
    let mut tail = String::new();
    for start in (0..messages).step_by(1000) {
        let batch: Vec<String> = (start..messages.min(start + 1000)).map(|i| format!("{{\"i\":{i}}}")).collect();
        let reply = writer.send("POST", path, &json, format!("[{}]", batch.join(",")).as_bytes())?;
        check(reply.status == 204, || format!("load append answered {}", reply.status))?;
        tail = reply.header("stream-next-offset").ok_or("no Stream-Next-Offset")?.to_owned();
    }
    let readers = &ports[1..];
    for &port in readers {
        // A read at the writer's tail is answered once the replica holds it.
        let reply = Client::connect(port)?.send("GET", &format!("{path}?offset={tail}"), &[], b"")?;
        check(reply.status == 200, || format!("a reader answered {} at the writer's tail", reply.status))?;
    }
    let start = Instant::now();
    let threads: Vec<_> = readers
        .iter()
        .map(|&port| {
            std::thread::spawn(move || -> Result<usize> {
                let mut client = Client::connect(port)?;
                let (mut offset, mut seen) = ("-1".to_owned(), 0);
                loop {
                    let reply = client.send("GET", &format!("{path}?offset={offset}"), &[], b"")?;
                    check(reply.status == 200, || format!("read answered {}", reply.status))?;
                    seen += reply.body.iter().filter(|&&b| b == b'{').count();
                    offset = reply.header("stream-next-offset").ok_or("no Stream-Next-Offset")?.to_owned();
                    if reply.header("stream-up-to-date") == Some("true") {
                        return Ok(seen);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let seen = thread.join().map_err(|_| "a reader panicked")??;
        check(seen == messages, || format!("a reader read {seen} messages of {messages}"))?;
    }
    Ok((messages * readers.len()) as f64 / start.elapsed().as_secs_f64())
}

/// `POLLERS_PER_READER` long-polls on each reader (`ports[1..]`), woken by
/// `rounds` appends on the writer, one at a time once every poll waits;
/// returns the wake-up latencies from each append's send (p50, p99, ms).
fn fan_out(ports: &[u16], rounds: usize) -> Result<(f64, f64)> {
    let path = "/v1/stream/scale-live";
    let text = [("Content-Type", "text/plain")];
    let mut writer = Client::connect(ports[0])?;
    let created = writer.send("PUT", path, &text, b"")?;
    check(created.status == 201, || format!("create answered {}", created.status))?;
    let first = created.header("stream-next-offset").ok_or("no offset")?.to_owned();
    let pollers = (ports.len() - 1) * POLLERS_PER_READER;
    // Every poller and the writer meet at the barrier before each append.
    let ready = Arc::new(Barrier::new(pollers + 1));
    let (woken_tx, woken_rx) = mpsc::channel::<Instant>();
    let threads: Vec<_> = (0..pollers)
        .map(|n| {
            let (port, ready, woken, mut offset) =
                (ports[1 + n / POLLERS_PER_READER], Arc::clone(&ready), woken_tx.clone(), first.clone());
            std::thread::spawn(move || -> Result<()> {
                let mut client = Client::connect(port)?;
                for _ in 0..rounds {
                    ready.wait();
                    loop {
                        let reply = client.send("GET", &format!("{path}?offset={offset}&live=long-poll"), &[], b"")?;
                        if reply.status == 200 {
                            woken.send(Instant::now()).map_err(|_| "the writer stopped")?;
                            offset = reply.header("stream-next-offset").ok_or("no offset")?.to_owned();
                            break;
                        }
                        check(reply.status == 204, || format!("long-poll answered {}", reply.status))?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(rounds * pollers);
    for _ in 0..rounds {
        ready.wait();
        // Let the polls reach their servers and start waiting.
        std::thread::sleep(Duration::from_millis(5));
        let sent = Instant::now();
        let reply = writer.send("POST", path, &text, b"tick")?;
        check(reply.status == 204, || format!("append answered {}", reply.status))?;
        for _ in 0..pollers {
            let woken = woken_rx.recv_timeout(Duration::from_secs(20)).map_err(|_| "a long-poll was not woken")?;
            latencies.push(woken.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        }
    }
    for thread in threads {
        thread.join().map_err(|_| "a poller panicked")??;
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(what().into()) }
}
