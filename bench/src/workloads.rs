//! The workloads of BENCH.md, written once against `Db`. Each checks its
//! result and returns a figure only for a correct run.

use std::path::Path;
use std::time::Instant;

use crate::alloc;
use crate::model::{Rng, TEAMS, email, user};
use crate::systems::{Db, Result, Sync, System};

/// Sizes of the workloads; `quick` shrinks them so the benchmark runs in CI.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub insert_batch: u64,
    pub insert_durable: u64,
    pub durable_threads: u64,
    pub durable_per_thread: u64,
    pub preload: u64,
    pub lookups: u64,
    pub team_scans: u64,
    pub updates: u64,
    pub processes: u64,
    pub increments_per_process: u64,
    pub stream: u64,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            insert_batch: 100_000,
            insert_durable: 1_000,
            durable_threads: 8,
            durable_per_thread: 250,
            preload: 100_000,
            lookups: 100_000,
            team_scans: 1_000,
            updates: 20_000,
            processes: 4,
            increments_per_process: 2_500,
            stream: 1_000_000,
        }
    }

    pub fn quick() -> Sizes {
        Sizes {
            insert_batch: 2_000,
            insert_durable: 20,
            durable_threads: 4,
            durable_per_thread: 5,
            preload: 5_000,
            lookups: 2_000,
            team_scans: 50,
            updates: 500,
            processes: 2,
            increments_per_process: 100,
            stream: 20_000,
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, Copy)]
pub enum Figure {
    OpsPerSec(f64),
    /// Records per second and peak heap bytes.
    Stream {
        per_sec: f64,
        peak_heap: usize,
    },
    /// The system cannot run the workload (it says why).
    Unsupported(&'static str),
}

pub const WORKLOADS: [&str; 11] = [
    "insert_batch",
    "insert_durable",
    "insert_durable_pool",
    "durable_concurrent",
    "get_pk",
    "get_unique",
    "scan_team",
    "range_teams",
    "update_nosync",
    "multiproc_counter",
    "stream_scan",
];

fn rate(ops: u64, start: Instant) -> f64 {
    ops as f64 / start.elapsed().as_secs_f64()
}

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<()> {
    if condition { Ok(()) } else { Err(what().into()) }
}

fn check_indexes(db: &dyn Db, n: u64) -> Result<()> {
    let sizes = db.index_sizes()?;
    check(sizes == (n, n), || format!("index sizes {sizes:?}, expected ({n}, {n})"))
}

fn fresh(system: System, sync: Sync) -> Result<(tempfile::TempDir, Box<dyn Db>)> {
    let dir = tempfile::Builder::new().prefix("skyshelve-bench-").tempdir()?;
    let db = system.open(dir.path(), sync)?;
    Ok((dir, db))
}

fn preload(db: &dyn Db, n: u64) -> Result<()> {
    const CHUNK: u64 = 50_000;
    for start in (0..n).step_by(CHUNK as usize) {
        let users: Vec<_> = (start..n.min(start + CHUNK)).map(user).collect();
        db.insert_batch(&users)?;
    }
    Ok(())
}

pub fn insert_batch(system: System, sizes: &Sizes) -> Result<Figure> {
    let (_dir, db) = fresh(system, Sync::Durable)?;
    let users: Vec<_> = (0..sizes.insert_batch).map(user).collect();
    let batch = db.batch(&users);
    let start = Instant::now();
    batch()?;
    let figure = rate(sizes.insert_batch, start);
    check_indexes(db.as_ref(), sizes.insert_batch)?;
    Ok(Figure::OpsPerSec(figure))
}

pub fn insert_durable(system: System, sizes: &Sizes) -> Result<Figure> {
    let (_dir, db) = fresh(system, Sync::Durable)?;
    let start = Instant::now();
    for id in 0..sizes.insert_durable {
        db.insert_one(&user(id))?;
    }
    let figure = rate(sizes.insert_durable, start);
    check_indexes(db.as_ref(), sizes.insert_durable)?;
    Ok(Figure::OpsPerSec(figure))
}

/// `insert_durable`, each insert made by the next of `durable_threads`
/// pool threads, one at a time (as a blocking pool, a rayon pool or a web
/// server's workers hand out work): a lone writer that hops threads.
pub fn insert_durable_pool(system: System, sizes: &Sizes) -> Result<Figure> {
    let (_dir, db) = fresh(system, Sync::Durable)?;
    let db = db.as_ref();
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let (done_tx, done) = std::sync::mpsc::channel::<Result<()>>();
        let pool: Vec<std::sync::mpsc::Sender<u64>> = (0..sizes.durable_threads)
            .map(|_| {
                let (work_tx, work) = std::sync::mpsc::channel::<u64>();
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    for id in work {
                        let _ = done_tx.send(db.insert_one(&user(id)));
                    }
                });
                work_tx
            })
            .collect();
        for id in 0..sizes.insert_durable {
            let worker = &pool[usize::try_from(id).unwrap_or(0) % pool.len()];
            worker.send(id).map_err(|_| "a pool thread ended")?;
            done.recv().map_err(|_| "a pool thread ended")??;
        }
        Ok(())
    })?;
    let figure = rate(sizes.insert_durable, start);
    check_indexes(db, sizes.insert_durable)?;
    Ok(Figure::OpsPerSec(figure))
}

pub fn durable_concurrent(system: System, sizes: &Sizes) -> Result<Figure> {
    let (_dir, db) = fresh(system, Sync::Durable)?;
    let db = db.as_ref();
    let start = Instant::now();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..sizes.durable_threads)
            .map(|thread| {
                scope.spawn(move || -> Result<()> {
                    for i in 0..sizes.durable_per_thread {
                        db.insert_one(&user(thread * sizes.durable_per_thread + i))?;
                    }
                    Ok(())
                })
            })
            .collect();
        threads.into_iter().try_for_each(|t| t.join().map_err(|_| "a thread panicked")?)
    })?;
    let total = sizes.durable_threads * sizes.durable_per_thread;
    let figure = rate(total, start);
    check_indexes(db, total)?;
    Ok(Figure::OpsPerSec(figure))
}

/// get_pk, get_unique, scan_team and range_teams on one preloaded database.
/// How many consecutive teams one query of `range_teams` covers.
const RANGE_TEAMS: u32 = 10;

pub fn reads(system: System, sizes: &Sizes) -> Result<[Figure; 4]> {
    let (_dir, db) = fresh(system, Sync::Relaxed)?;
    preload(db.as_ref(), sizes.preload)?;
    let mut rng = Rng(7);

    let start = Instant::now();
    for _ in 0..sizes.lookups {
        let id = rng.below(sizes.preload);
        let found = db.get(id)?.ok_or("a preloaded user is missing")?;
        check(found.id == id, || format!("get({id}) returned {}", found.id))?;
    }
    let get_pk = rate(sizes.lookups, start);

    let start = Instant::now();
    for _ in 0..sizes.lookups {
        let id = rng.below(sizes.preload);
        let found = db.get_by_email(&email(id))?.ok_or("a preloaded email is missing")?;
        check(found.id == id, || format!("email of {id} returned {}", found.id))?;
    }
    let get_unique = rate(sizes.lookups, start);

    let per_team = sizes.preload / u64::from(TEAMS);
    let start = Instant::now();
    for _ in 0..sizes.team_scans {
        let team = rng.below(u64::from(TEAMS)) as u32;
        let count = db.scan_team(team)? as u64;
        check(count == per_team, || format!("team {team} has {count} users, expected {per_team}"))?;
    }
    let scan_team = rate(sizes.team_scans, start);

    // Ranges of RANGE_TEAMS consecutive teams, one query each.
    let queries = sizes.team_scans / u64::from(RANGE_TEAMS);
    let start = Instant::now();
    for _ in 0..queries {
        let first = rng.below(u64::from(TEAMS - RANGE_TEAMS)) as u32;
        let count = db.range_teams(first..first + RANGE_TEAMS)? as u64;
        let expected = per_team * u64::from(RANGE_TEAMS);
        check(count == expected, || format!("teams {first}.. have {count} users, expected {expected}"))?;
    }
    let range_teams = rate(queries, start);
    Ok([get_pk, get_unique, scan_team, range_teams].map(Figure::OpsPerSec))
}

pub fn update_nosync(system: System, sizes: &Sizes) -> Result<Figure> {
    let (_dir, db) = fresh(system, Sync::Relaxed)?;
    preload(db.as_ref(), sizes.preload)?;
    let mut rng = Rng(11);
    let start = Instant::now();
    for _ in 0..sizes.updates {
        db.increment(rng.below(sizes.preload))?;
    }
    let figure = rate(sizes.updates, start);
    let mut total = 0;
    db.stream_all(&mut |u| total += u.score)?;
    check(total == sizes.updates as i64, || format!("scores add up to {total}, expected {}", sizes.updates))?;
    Ok(Figure::OpsPerSec(figure))
}

/// The child side of multiproc_counter.
pub fn count_in_child(system: System, dir: &Path, increments: u64) -> Result<()> {
    let db = system.open(dir, Sync::Relaxed)?;
    for _ in 0..increments {
        db.increment(0)?;
    }
    Ok(())
}

pub fn multiproc_counter(system: System, sizes: &Sizes) -> Result<Figure> {
    if !system.multi_process() {
        return Ok(Figure::Unsupported("cannot open from 2 processes"));
    }
    let dir = tempfile::Builder::new().prefix("skyshelve-bench-").tempdir()?;
    system.open(dir.path(), Sync::Relaxed)?.insert_batch(&[user(0)])?;
    let start = Instant::now();
    let children = (0..sizes.processes)
        .map(|_| {
            std::process::Command::new(std::env::current_exe()?)
                .args(["--child-counter", system.name()])
                .arg(dir.path())
                .arg(sizes.increments_per_process.to_string())
                .spawn()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    for mut child in children {
        check(child.wait()?.success(), || "a counter process failed".into())?;
    }
    let total = sizes.processes * sizes.increments_per_process;
    let figure = rate(total, start);
    let score = system.open(dir.path(), Sync::Relaxed)?.get(0)?.ok_or("the counter is gone")?.score;
    check(score == total as i64, || format!("final count {score}, expected {total}"))?;
    Ok(Figure::OpsPerSec(figure))
}

pub fn stream_scan(system: System, sizes: &Sizes) -> Result<Figure> {
    let (_dir, db) = fresh(system, Sync::Relaxed)?;
    preload(db.as_ref(), sizes.stream)?;
    let mut checksum = 0u64;
    let baseline = alloc::reset_peak();
    let start = Instant::now();
    let count = db.stream_all(&mut |u| checksum = checksum.wrapping_add(u.id))?;
    let per_sec = rate(count, start);
    let peak_heap = alloc::peak_since(baseline);
    check(count == sizes.stream, || format!("streamed {count} records, expected {}", sizes.stream))?;
    let expected: u64 = (0..sizes.stream).sum();
    check(checksum == expected, || "the streamed ids do not add up".into())?;
    Ok(Figure::Stream { per_sec, peak_heap })
}
