//! Watch latency across processes (`--watch`): this process appends
//! records stamped with the wall-clock time of the append; a watcher
//! process blocked in `Watch::wait` reads each new record when woken and
//! records how long after its stamp it saw it. Reported as p50, p99 and
//! max, with a watcher thread of the writing process beside it as the
//! baseline for the same machine and run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Persistent, Store};

#[derive(Persistent, Serialize, Deserialize)]
#[persistent(name = "bench_tick")]
struct Tick {
    #[persistent(key, sequence)]
    id: u64,
    sent_ns: u64,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn relaxed(dir: &Path) -> skyshelve::Result<Store> {
    // Only this model: the schema benchmark's models share names on purpose.
    Store::options().models([Tick::INFO]).durability(Durability::MayLoseLastCommits).open(dir)
}

/// Follows `total` ticks, returning the latency of each in microseconds.
fn follow(store: &Store, total: u64, ready: impl FnOnce()) -> skyshelve::Result<Vec<f64>> {
    let mut watch = Tick::watch(store)?;
    ready();
    let (mut last, mut latencies) = (0, Vec::new());
    while last < total {
        for tick in Tick::query().range(last + 1..).fetch(store)?.records {
            latencies.push(now_ns().saturating_sub(tick.sent_ns) as f64 / 1000.0);
            last = tick.id;
        }
        if last < total {
            watch.wait();
        }
    }
    Ok(latencies)
}

/// The child: follows the ticks and prints one latency per line.
pub fn child(dir: &Path, total: u64) -> Result<(), String> {
    let store = relaxed(dir).map_err(|e| e.to_string())?;
    let latencies = follow(&store, total, || println!("ready")).map_err(|e| e.to_string())?;
    for latency in latencies {
        println!("{latency}");
    }
    Ok(())
}

fn append_ticks(store: &Store, total: u64) -> skyshelve::Result<()> {
    for _ in 0..total {
        Tick { id: 0, sent_ns: now_ns() }.append(store)?;
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// p50, p99 and max of `values`.
fn summary(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), at(1.0))
}

pub fn run(total: u64) -> Result<String, String> {
    let dir = tempfile::Builder::new().prefix("skyshelve-watch-").tempdir().map_err(|e| e.to_string())?;
    let store = relaxed(dir.path()).map_err(|e| e.to_string())?;
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["--child-watcher"])
        .arg(dir.path())
        .arg(total.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no child stdout")?).lines();
    if lines.next().transpose().map_err(|e| e.to_string())?.as_deref() != Some("ready") {
        return Err("the watcher process did not start".into());
    }
    append_ticks(&store, total).map_err(|e| e.to_string())?;
    let other_process: Vec<f64> = lines.map_while(Result::ok).filter_map(|l| l.parse().ok()).collect();
    if !child.wait().map_err(|e| e.to_string())?.success() || other_process.len() as u64 != total {
        return Err(format!("the watcher saw {} of {total} ticks", other_process.len()));
    }

    // Baseline: a watcher thread in the writing process, same store kind.
    let dir = tempfile::Builder::new().prefix("skyshelve-watch-").tempdir().map_err(|e| e.to_string())?;
    let store = relaxed(dir.path()).map_err(|e| e.to_string())?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let follower = {
        let store = store.clone();
        std::thread::spawn(move || follow(&store, total, move || ready_tx.send(()).unwrap_or_default()))
    };
    ready_rx.recv().map_err(|e| e.to_string())?;
    append_ticks(&store, total).map_err(|e| e.to_string())?;
    let same_process = follower.join().map_err(|_| "the watcher thread panicked")?.map_err(|e| e.to_string())?;

    let (p50, p99, max) = summary(other_process);
    let (t50, t99, tmax) = summary(same_process);
    Ok(format!(
        "| watch latency, {total} appends 2 ms apart | p50 | p99 | max |\n|---|---:|---:|---:|\n\
         | watcher in another process | {p50:.0} µs | {p99:.0} µs | {max:.0} µs |\n\
         | watcher thread, same process (baseline) | {t50:.0} µs | {t99:.0} µs | {tmax:.0} µs |"
    ))
}
