//! The streams workloads, each checked after it runs.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::client::Client;
use crate::systems::Result;

const BODY: [u8; 100] = [b'x'; 100];

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(what().into()) }
}

/// Appends of 100 bytes by `producers` clients at once to one stream, for
/// `seconds`; returns appends per second.
pub fn appends(port: u16, producers: usize, seconds: f64) -> Result<f64> {
    let path = format!("/v1/stream/bench-appends-{producers}");
    let created = Client::connect(port)?.send("PUT", &path, &[("Content-Type", "text/plain")], b"")?;
    check(created.status == 201, || format!("create answered {}", created.status))?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || -> Result<u64> {
                let mut client = Client::connect(port)?;
                let mut done = 0;
                while Instant::now() < deadline {
                    let reply = client.send("POST", &path, &[("Content-Type", "text/plain")], &BODY)?;
                    check(reply.status == 204, || format!("append answered {}", reply.status))?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for thread in threads {
        total += thread.join().map_err(|_| "a producer panicked")??;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    // Offsets are opaque, so the check reads the stream back.
    let length = read_length(port, &path)?;
    check(length == total * 100, || format!("{length} bytes stored after {total} appends of 100 bytes"))?;
    Ok(rate)
}

/// The stream's length in bytes, read from the start.
fn read_length(port: u16, path: &str) -> Result<u64> {
    let mut client = Client::connect(port)?;
    let (mut offset, mut length) = ("-1".to_owned(), 0u64);
    loop {
        let reply = client.send("GET", &format!("{path}?offset={offset}"), &[], b"")?;
        check(reply.status == 200, || format!("read answered {}", reply.status))?;
        length += reply.body.len() as u64;
        offset = reply.header("stream-next-offset").ok_or("no Stream-Next-Offset")?.to_owned();
        if reply.header("stream-up-to-date") == Some("true") {
            return Ok(length);
        }
    }
}

/// Loads one JSON stream with `messages` small messages, then reads it all
/// from the start; returns (messages per second, MB per second).
pub fn catch_up(port: u16, messages: usize) -> Result<(f64, f64)> {
    let path = "/v1/stream/bench-catch-up";
    let mut client = Client::connect(port)?;
    let json = [("Content-Type", "application/json")];
    check(client.send("PUT", path, &json, b"")?.status == 201, || "create failed".into())?;
    for start in (0..messages).step_by(1000) {
        let batch: Vec<String> = (start..messages.min(start + 1000)).map(|i| format!("{{\"i\":{i}}}")).collect();
        let body = format!("[{}]", batch.join(","));
        let reply = client.send("POST", path, &json, body.as_bytes())?;
        check(reply.status == 204, || format!("load append answered {}", reply.status))?;
    }
    let start = Instant::now();
    let (mut offset, mut seen, mut bytes) = ("-1".to_owned(), 0, 0);
    loop {
        let reply = client.send("GET", &format!("{path}?offset={offset}"), &[], b"")?;
        check(reply.status == 200, || format!("read answered {}", reply.status))?;
        seen += reply.body.iter().filter(|&&b| b == b'{').count();
        bytes += reply.body.len();
        offset = reply.header("stream-next-offset").ok_or("no Stream-Next-Offset")?.to_owned();
        if reply.header("stream-up-to-date") == Some("true") {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    check(seen == messages, || format!("read {seen} messages of {messages}"))?;
    Ok((seen as f64 / seconds, bytes as f64 / seconds / 1e6))
}

/// Append → long-poll reader woken: a reader on `read_port` long-polls
/// the stream while a writer on `write_port` appends, one at a time;
/// returns the wake-up latencies (p50, p99) in milliseconds.
pub fn live_latency(read_port: u16, write_port: u16, rounds: usize) -> Result<(f64, f64)> {
    let path = "/v1/stream/bench-live";
    let text = [("Content-Type", "text/plain")];
    let created = Client::connect(write_port)?.send("PUT", path, &text, b"")?;
    check(created.status == 201, || format!("create answered {}", created.status))?;
    let mut offset = created.header("stream-next-offset").ok_or("no offset")?.to_owned();
    let (woken_tx, woken_rx) = mpsc::channel::<Instant>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || -> Result<()> {
        let mut client = Client::connect(read_port)?;
        for _ in 0..rounds {
            ready_tx.send(()).map_err(|_| "the writer stopped")?;
            loop {
                let reply = client.send("GET", &format!("{path}?offset={offset}&live=long-poll"), &[], b"")?;
                if reply.status == 200 {
                    woken_tx.send(Instant::now()).map_err(|_| "the writer stopped")?;
                    offset = reply.header("stream-next-offset").ok_or("no offset")?.to_owned();
                    break;
                }
                check(reply.status == 204, || format!("long-poll answered {}", reply.status))?;
            }
        }
        Ok(())
    });
    let mut writer = Client::connect(write_port)?;
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        ready_rx.recv().map_err(|_| "the reader stopped")?;
        // Let the reader's request reach the server and start waiting.
        std::thread::sleep(Duration::from_millis(3));
        let sent = Instant::now();
        let reply = writer.send("POST", path, &text, b"tick")?;
        check(reply.status == 204, || format!("append answered {}", reply.status))?;
        let woken = woken_rx.recv_timeout(Duration::from_secs(15)).map_err(|_| "the reader was not woken")?;
        latencies.push(woken.saturating_duration_since(sent).as_secs_f64() * 1000.0);
    }
    reader.join().map_err(|_| "the reader panicked")??;
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}
