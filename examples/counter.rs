//! Several OS processes increment one counter in one store at once; the
//! final count is exact. Run with `cargo run --example counter`.
//!
//! ```text
//! cargo run --release --example counter -- [--processes N] [--increments M]
//!                                          [--durability full|relaxed] [--engine skyshelve|heed]
//! ```
//!
//! `--engine heed` does the same read-modify-write with heed directly (one
//! u64 in one database), the baseline for what skyshelve adds.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug)]
struct Counter {
    #[persistent(key)]
    name: String,
    #[persistent(index)]
    value: u64,
}

#[derive(Debug, Clone)]
struct Settings {
    processes: u32,
    increments: u32,
    relaxed: bool,
    raw_heed: bool,
}

fn parse(args: &[String]) -> Result<Settings, String> {
    let mut settings = Settings { processes: 4, increments: 500, relaxed: false, raw_heed: false };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--processes" => settings.processes = value()?.parse().map_err(|e| format!("--processes: {e}"))?,
            "--increments" => settings.increments = value()?.parse().map_err(|e| format!("--increments: {e}"))?,
            "--durability" => {
                settings.relaxed = match value()?.as_str() {
                    "full" => false,
                    "relaxed" => true,
                    other => return Err(format!("--durability is full or relaxed, not {other}")),
                }
            }
            "--engine" => {
                settings.raw_heed = match value()?.as_str() {
                    "skyshelve" => false,
                    "heed" => true,
                    other => return Err(format!("--engine is skyshelve or heed, not {other}")),
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(settings)
}

fn durability(settings: &Settings) -> Durability {
    if settings.relaxed { Durability::MayCorruptOnPowerLoss } else { Durability::Full }
}

/// A child process: `increments` atomic increments.
fn increment(path: &Path, settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    if settings.raw_heed {
        return raw_heed::increment(path, settings);
    }
    let store = Store::options().durability(durability(settings)).open(path)?;
    for _ in 0..settings.increments {
        Counter::upsert(&store, || Counter { name: "hits".into(), value: 0 }, |c| c.value += 1)?;
    }
    Ok(())
}

fn final_count(path: &Path, settings: &Settings) -> Result<u64, Box<dyn std::error::Error>> {
    if settings.raw_heed {
        return raw_heed::read(path);
    }
    let store = Store::open(path)?;
    let counter = Counter::load(&store, "hits")?.ok_or("no counter was written")?;
    let index_entries = Counter::range_index(&store, Counter::VALUE, ..)?.len();
    assert_eq!(index_entries, 1, "the value index holds exactly the final value");
    Ok(counter.value)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result =
        if args.first().map(String::as_str) == Some("--child") { run_child(&args[1..]) } else { run_parent(&args) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("counter: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run_child(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let (path, rest) = args.split_first().ok_or("--child needs a path")?;
    increment(Path::new(path), &parse(rest)?)
}

fn run_parent(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let settings = parse(args)?;
    let dir = tempfile::tempdir()?;
    let engine = if settings.raw_heed { "raw heed" } else { "skyshelve" };
    let mode = if settings.relaxed { "relaxed" } else { "full" };
    println!(
        "{engine}: {} processes x {} increments of one counter, {mode} durability",
        settings.processes, settings.increments
    );
    let start = Instant::now();
    let children = (0..settings.processes)
        .map(|_| Command::new(std::env::current_exe()?).arg("--child").arg(dir.path()).args(args).spawn())
        .collect::<Result<Vec<_>, _>>()?;
    for mut child in children {
        if !child.wait()?.success() {
            return Err("a child process failed".into());
        }
    }
    let elapsed = start.elapsed();
    let count = final_count(dir.path(), &settings)?;
    let expected = u64::from(settings.processes) * u64::from(settings.increments);
    println!("final count: {count} (expected {expected})");
    println!("rate: {:.0} increments/s over {:.2} s", expected as f64 / elapsed.as_secs_f64(), elapsed.as_secs_f64());
    if count != expected {
        return Err(format!("lost updates: {count} != {expected}").into());
    }
    Ok(())
}

/// The baseline: the same increments written with heed directly.
mod raw_heed {
    use std::path::Path;

    use heed::byteorder::BigEndian;
    use heed::types::{Str, U64};
    use heed::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions};

    use super::Settings;

    type Counters = Database<'static, Str, U64<BigEndian>>;

    fn open(path: &Path, relaxed: bool) -> Result<(heed::Env, Counters), Box<dyn std::error::Error>> {
        let mut options = EnvOpenOptions::new();
        options.map_size(16 << 20).max_dbs(4);
        if relaxed {
            // SAFETY: NO_SYNC only relaxes fsync.
            unsafe { options.flags(EnvFlags::NO_SYNC) };
        }
        // SAFETY: this example is the only user of the folder's LMDB files.
        let env = unsafe { options.open(path)? };
        let wtxn = env.write_txn()?;
        let db = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener.create_database(wtxn, Some("counters")).map(CommitOrAbort::<_, ()>::Commit)
            })?
            .unwrap_commit();
        Ok((env, db))
    }

    pub fn increment(path: &Path, settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
        let (env, db) = open(path, settings.relaxed)?;
        for _ in 0..settings.increments {
            let mut wtxn = env.write_txn()?;
            let value = db.get(&wtxn, "hits")?.unwrap_or(0);
            db.put(&mut wtxn, "hits", &(value + 1))?;
            wtxn.commit()?;
        }
        Ok(())
    }

    pub fn read(path: &Path) -> Result<u64, Box<dyn std::error::Error>> {
        let (env, db) = open(path, false)?;
        let rtxn = env.read_txn()?;
        Ok(db.get(&rtxn, "hits")?.unwrap_or(0))
    }
}
