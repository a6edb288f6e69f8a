//! An event store on skyshelve, with the interface of the Go event store
//! skyshelve descends from — store, load since a version, load by
//! aggregate since a version, latest version, clean-up — shared by many
//! processes instead of one.
//!
//! ```text
//! cargo run --example event_store                     # 2 writer processes, 1 reader process, checked
//! cargo run --example event_store -- --events 500    # events per writer
//! ```
//!
//! The parent starts a reader process that follows new events through a
//! `Watch`, then two writer processes that store events for the same
//! aggregates at once. It checks what the reader printed — every event
//! once, in version order, each aggregate's events in order — and what
//! the store answers, then cleans up the older half.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use skyshelve::{Persistent, Store, WriteTx};

/// One event. `version` is the store's version, from a sequence shared by
/// every process; `aggregate_version` counts the aggregate's own events.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(index(name = "by_aggregate", fields(aggregate_id, aggregate_version), unique))]
struct Event {
    #[persistent(key, sequence = "event_store.version")]
    version: u64,
    aggregate_id: String,
    aggregate_version: u64,
    kind: String,
    payload: String,
    /// Milliseconds since the Unix epoch.
    recorded_at: u64,
}

/// The Go event store's interface.
struct EventStore {
    store: Store,
}

/// How many events one clean-up transaction deletes.
const CLEAN_UP_BATCH: usize = 500;

impl EventStore {
    fn open(dir: &Path) -> skyshelve::Result<EventStore> {
        Ok(EventStore { store: Store::open(dir)? })
    }

    /// Stores an event: the next store version, and the next version of
    /// its aggregate, both in the transaction that writes it, so that two
    /// processes storing events for one aggregate never share a number.
    fn store(&self, aggregate_id: &str, kind: &str, payload: &str) -> skyshelve::Result<Event> {
        self.store.write(|tx| {
            let aggregate_version = latest_of(tx, aggregate_id)? + 1;
            let mut event = Event {
                version: 0,
                aggregate_id: aggregate_id.to_owned(),
                aggregate_version,
                kind: kind.to_owned(),
                payload: payload.to_owned(),
                recorded_at: now_ms(),
            };
            tx.append(&mut event)?;
            Ok(event)
        })
    }

    /// Up to `limit` events after store version `since`, in order.
    fn load(&self, since: u64, limit: usize) -> skyshelve::Result<Vec<Event>> {
        Ok(Event::query().range(since + 1..).limit(limit).fetch(&self.store)?.records)
    }

    /// The events of one aggregate after its version `since`, in order.
    fn load_by_aggregate(&self, aggregate_id: &str, since: u64) -> skyshelve::Result<Vec<Event>> {
        let query =
            Event::query_by(Event::BY_AGGREGATE).prefix(&(aggregate_id,)).range((aggregate_id.to_owned(), since + 1)..);
        Ok(query.fetch(&self.store)?.records)
    }

    /// The last store version issued, `None` before the first event.
    fn latest_version(&self) -> skyshelve::Result<Option<u64>> {
        self.store.read(|tx| tx.last_sequence("event_store.version"))
    }

    /// Deletes the events up to store version `through`, a batch per
    /// transaction; returns how many. Versions are never issued again.
    fn clean_up(&self, through: u64) -> skyshelve::Result<u64> {
        let mut deleted = 0;
        loop {
            let batch = Event::query().range(..=through).limit(CLEAN_UP_BATCH).fetch(&self.store)?;
            if batch.records.is_empty() {
                return Ok(deleted);
            }
            self.store.write(|tx| {
                for event in &batch.records {
                    Event::delete_in(tx, &event.version)?;
                }
                Ok(())
            })?;
            deleted += batch.records.len() as u64;
        }
    }
}

/// The aggregate's latest version inside `tx` (0 before its first event).
fn latest_of(tx: &WriteTx<'_>, aggregate_id: &str) -> skyshelve::Result<u64> {
    let latest = Event::query_by(Event::BY_AGGREGATE).prefix(&(aggregate_id,)).reverse().limit(1).fetch_in(tx)?;
    Ok(latest.records.first().map_or(0, |event| event.aggregate_version))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

const AGGREGATES: [&str; 3] = ["order-1", "order-2", "order-3"];
const WRITERS: u64 = 2;

/// A writer process: `events` events, spread over the aggregates.
fn writer(dir: &Path, writer: u64, events: u64) -> skyshelve::Result<()> {
    let store = EventStore::open(dir)?;
    for n in 0..events {
        let aggregate = AGGREGATES[((n + writer) % 3) as usize];
        store.store(aggregate, "item-added", &format!("writer {writer}, item {n}"))?;
    }
    Ok(())
}

/// The reader process: follows the store from version 0 until it has seen
/// `total` events, printing one line per event.
fn reader(dir: &Path, total: u64) -> skyshelve::Result<()> {
    let store = EventStore::open(dir)?;
    // Watch first, then read: a commit in between still ends the next wait.
    let mut watch = Event::watch(&store.store)?;
    println!("ready");
    let mut position = 0;
    let mut out = std::io::stdout().lock();
    while position < total {
        for event in store.load(position, 100)? {
            writeln!(out, "{} {} {}", event.version, event.aggregate_id, event.aggregate_version)?;
            position = event.version;
        }
        out.flush()?;
        if position < total && !watch.wait_timeout(Duration::from_secs(30)) {
            return Err(skyshelve::Error::Io(std::io::Error::other("no event for 30 s")));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("--writer") => run_child(|| writer(Path::new(&args[1]), number(&args[2]), number(&args[3]))),
        Some("--reader") => run_child(|| reader(Path::new(&args[1]), number(&args[2]))),
        Some("--events") => run(args.get(1).map_or(300, |n| number(n))),
        None => run(300),
        Some(other) => Err(format!("unknown argument {other}; try --events N")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("event_store: {err}");
            ExitCode::FAILURE
        }
    }
}

fn number(text: &str) -> u64 {
    text.parse().unwrap_or_else(|_| panic!("{text:?} is not a number"))
}

fn run_child(child: impl FnOnce() -> skyshelve::Result<()>) -> Result<(), String> {
    child().map_err(|e| e.to_string())
}

fn spawn(args: &[String]) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe).args(args).stdout(Stdio::piped()).spawn().map_err(|e| e.to_string())
}

fn run(events_per_writer: u64) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path: PathBuf = dir.path().to_owned();
    let store = EventStore::open(&path).map_err(|e| e.to_string())?;
    let total = WRITERS * events_per_writer;
    let dir_arg = path.display().to_string();

    let mut reader = spawn(&["--reader".into(), dir_arg.clone(), total.to_string()])?;
    let mut lines = BufReader::new(reader.stdout.take().ok_or("no reader output")?).lines();
    if lines.next().transpose().map_err(|e| e.to_string())?.as_deref() != Some("ready") {
        return Err("the reader did not start".into());
    }
    let writers = (0..WRITERS)
        .map(|w| spawn(&["--writer".into(), dir_arg.clone(), w.to_string(), events_per_writer.to_string()]))
        .collect::<Result<Vec<_>, _>>()?;
    println!("2 writer processes store {events_per_writer} events each; a reader process follows them through a watch");
    for mut writer in writers {
        if !writer.wait().map_err(|e| e.to_string())?.success() {
            return Err("a writer process failed".into());
        }
    }
    let seen: Vec<(u64, String, u64)> = lines
        .map_while(Result::ok)
        .map(|line| {
            let mut parts = line.split(' ');
            let mut next = || parts.next().unwrap_or_default().to_owned();
            (number(&next()), next(), number(&next()))
        })
        .collect();
    if !reader.wait().map_err(|e| e.to_string())?.success() {
        return Err("the reader process failed".into());
    }
    check_followed(&seen, total)?;
    println!("reader saw {} events: each once, in version order, every aggregate in order", seen.len());

    let latest = store.latest_version().map_err(|e| e.to_string())?;
    check(latest == Some(total), || format!("latest version {latest:?}, expected {total}"))?;
    for aggregate in AGGREGATES {
        let events = store.load_by_aggregate(aggregate, 0).map_err(|e| e.to_string())?;
        let count = seen.iter().filter(|(_, a, _)| a == aggregate).count();
        check(events.len() == count, || format!("{aggregate}: {} events loaded, {count} seen", events.len()))?;
        let since = store.load_by_aggregate(aggregate, 10).map_err(|e| e.to_string())?;
        check(since.first().is_none_or(|e| e.aggregate_version == 11), || format!("{aggregate} since 10"))?;
        println!(
            "  {aggregate}: {} events, versions 1..={}",
            events.len(),
            events.last().map_or(0, |e| e.aggregate_version)
        );
    }

    let half = total / 2;
    let deleted = store.clean_up(half).map_err(|e| e.to_string())?;
    let rest = store.load(0, usize::MAX).map_err(|e| e.to_string())?;
    check(deleted == half && rest.first().map(|e| e.version) == Some(half + 1), || {
        format!("clean-up deleted {deleted}, first left {:?}", rest.first().map(|e| e.version))
    })?;
    let next = store.store("order-1", "item-added", "after clean-up").map_err(|e| e.to_string())?;
    check(next.version == total + 1, || format!("version after clean-up {}", next.version))?;
    println!("clean-up deleted versions 1..={half}; the next event got version {} (none reused)", next.version);
    Ok(())
}

/// Every version 1..=total exactly once, in order, and each aggregate's
/// versions 1, 2, 3, ... in order.
fn check_followed(seen: &[(u64, String, u64)], total: u64) -> Result<(), String> {
    let versions: Vec<u64> = seen.iter().map(|(v, _, _)| *v).collect();
    check(versions == (1..=total).collect::<Vec<_>>(), || "the reader did not see versions 1..=total in order".into())?;
    for aggregate in AGGREGATES {
        let own: Vec<u64> = seen.iter().filter(|(_, a, _)| a == aggregate).map(|(_, _, v)| *v).collect();
        check(own == (1..=own.len() as u64).collect::<Vec<_>>(), || format!("{aggregate} out of order: {own:?}"))?;
    }
    Ok(())
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}
