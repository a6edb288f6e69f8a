//! The standard benchmark of shared/BENCH.md: every workload on skyshelve,
//! raw heed, native_db and SQLite in one run, each result checked, figures
//! reported as medians and as ratios measured in the same run.
//!
//! ```text
//! cargo run --release -p skyshelve-bench -- [--quick] [--runs N] [--only WORKLOAD]
//!                                           [--system NAME] [--history] [--slatedb] [--sqlite-serial]
//!                                           [--flat-index]
//!                                           [--processes N] [--increments N]
//!                                           [--chart FILE.svg] [--markdown FILE.md]
//! cargo run --release -p skyshelve-bench -- --schema [--quick] [--runs N]
//! ```
//!
//! `--system` runs one system instead of the standard four; any system
//! may be named, and one that only a flag adds (`heed_raw_flat`,
//! `skyshelve_history`, ...) gets a table of its own figures.
//! `--history` adds skyshelve with a model keeping ten previous versions of
//! each record, and a table comparing it with the plain model. `--slatedb`
//! (built with `--features slatedb`) adds skyshelve on SlateDB and raw
//! SlateDB (its own API, indexes kept by hand), objects in a local folder
//! or in `SKYSHELVE_SLATEDB_URL`, with a table beside LMDB and one beside
//! raw SlateDB; multiproc_counter is left out there (one writer process).
//! `--processes` and `--increments` change multiproc_counter's shape (4
//! processes of 2,500 increments each): one process shows what a write
//! costs without contention.
//! `--sqlite-serial` adds SQLite with the writers of one process taking turns
//! behind a mutex, so none of them sleeps in SQLite's busy handler, and its
//! table beside skyshelve.
//! `--flat-index` adds raw heed keeping its team index as skyshelve keeps a
//! non-unique index (one entry per record, key = team ++ id, no LMDB
//! duplicates), with tables of skyshelve beside it and of it beside raw
//! heed: what the layout costs LMDB, apart from what skyshelve adds.
//! `--schema` measures index builds and migration instead (see `schema.rs`);
//! `--watch [N]` the latency of a watch across processes (see `watch.rs`);
//! `--streams [--quick] [--anchors] [--chart FILE.svg]` the Durable Streams servers (see
//! `streams/mod.rs`).
//! `--streams-scale [--quick]` (feature `slatedb`) skyshelve-streams with 1-3 reader
//! processes, on LMDB and on object storage (see `streams/scale.rs`).

mod alloc;
mod model;
mod report;
mod schema;
mod streams;
mod systems;
mod watch;
mod workloads;

use std::path::PathBuf;

use report::Results;
use systems::System;
use workloads::{Figure, Sizes};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// A workload measured on its own.
type Workload = fn(System, &Sizes) -> systems::Result<Figure>;

struct Options {
    sizes: Sizes,
    runs: usize,
    only: Option<String>,
    system: Option<System>,
    chart: Option<PathBuf>,
    markdown: Option<PathBuf>,
    schema: bool,
    history: bool,
    /// Also skyshelve on SlateDB (needs the feature `slatedb`).
    slatedb: bool,
    /// Also SQLite with its writers serialised in the process.
    sqlite_serial: bool,
    /// Also raw heed with skyshelve's layout of a non-unique index.
    flat_index: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        sizes: Sizes::full(),
        runs: 1,
        only: None,
        system: None,
        chart: None,
        markdown: None,
        schema: false,
        history: false,
        slatedb: false,
        sqlite_serial: false,
        flat_index: false,
    };
    let (mut processes, mut increments) = (None, None);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => options.sizes = Sizes::quick(),
            "--schema" => options.schema = true,
            "--history" => options.history = true,
            "--slatedb" => options.slatedb = true,
            "--sqlite-serial" => options.sqlite_serial = true,
            "--flat-index" => options.flat_index = true,
            "--runs" => options.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--only" => options.only = Some(value()?),
            "--system" => {
                let name = value()?;
                options.system = Some(System::from_name(&name).ok_or(format!("unknown system {name}"))?);
            }
            "--chart" => options.chart = Some(value()?.into()),
            "--markdown" => options.markdown = Some(value()?.into()),
            "--processes" => processes = Some(positive(flag, &value()?)?),
            "--increments" => increments = Some(positive(flag, &value()?)?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    // Applied last, so that `--quick` given after them does not undo them.
    options.sizes.processes = processes.unwrap_or(options.sizes.processes);
    options.sizes.increments_per_process = increments.unwrap_or(options.sizes.increments_per_process);
    Ok(options)
}

fn positive(flag: &str, value: &str) -> Result<u64, String> {
    match value.parse() {
        Ok(0) => Err(format!("{flag} must be at least 1")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{flag}: {e}")),
    }
}

/// One run of every wanted workload. Each workload runs on every system
/// back to back, so that the figures a ratio sets against each other are
/// taken moments apart: this machine's disk changes speed within minutes.
/// Every other run takes the systems in reverse order, so that no system
/// always follows the same one (and the write-back its run left behind).
fn run_once(results: &mut Results, options: &Options, reversed: bool) -> Result<(), String> {
    let wanted = |w: &str| options.only.as_deref().is_none_or(|only| only == w);
    let sizes = &options.sizes;
    let chosen = options.system.map_or(System::ALL.to_vec(), |only| vec![only]);
    let history = options.history.then_some(System::SkyshelveHistory);
    let slatedb = if options.slatedb { vec![System::SkyshelveSlatedb, System::SlatedbRaw] } else { Vec::new() };
    let sqlite_serial = options.sqlite_serial.then_some(System::SqliteSerial);
    let flat_index = options.flat_index.then_some(System::HeedRawFlat);
    let mut systems: Vec<System> =
        chosen.into_iter().chain(history).chain(slatedb).chain(sqlite_serial).chain(flat_index).collect();
    // `--system` may name a system that a flag adds as well.
    let mut seen = Vec::new();
    systems.retain(|system| {
        !seen.contains(system) && {
            seen.push(*system);
            true
        }
    });
    if reversed {
        systems.reverse();
    }
    let single: [(&'static str, Workload); 6] = [
        ("insert_batch", workloads::insert_batch),
        ("insert_durable", workloads::insert_durable),
        ("insert_durable_pool", workloads::insert_durable_pool),
        ("durable_concurrent", workloads::durable_concurrent),
        ("update_nosync", workloads::update_nosync),
        ("multiproc_counter", workloads::multiproc_counter),
    ];
    for (workload, run) in single.into_iter().filter(|(w, _)| wanted(w)) {
        for &system in &systems {
            // SlateDB has one writer process: a second one fences the first.
            if workload == "multiproc_counter" && matches!(system, System::SkyshelveSlatedb | System::SlatedbRaw) {
                continue;
            }
            eprintln!("  {workload} on {}", system.name());
            settle_disk();
            results.add(workload, system, labelled(workload, system, run(system, sizes))?);
        }
    }
    let reads = ["get_pk", "get_unique", "scan_team", "range_teams"];
    if reads.iter().any(|w| wanted(w)) {
        for &system in &systems {
            eprintln!("  {} on {}", reads.join(", "), system.name());
            let figures = labelled("reads", system, workloads::reads(system, sizes))?;
            for (workload, figure) in reads.into_iter().zip(figures) {
                results.add(workload, system, figure);
            }
        }
    }
    if wanted("stream_scan") {
        for &system in &systems {
            eprintln!("  stream_scan on {}", system.name());
            let figure = labelled("stream_scan", system, workloads::stream_scan(system, sizes))?;
            results.add("stream_scan", system, figure);
        }
    }
    Ok(())
}

/// Writes back every dirty page before a system's write workload, so that
/// none pays for the write-back another's run left behind: SQLite's and
/// native_db's fsync-per-commit runs leave the disk busy for a while, and
/// whichever system came next measured slower durable writes.
fn settle_disk() {
    // `sync` is in coreutils; without it the run goes on unsettled.
    let _ = std::process::Command::new("sync").status();
}

/// `result`, its error naming the workload and the system.
fn labelled<T>(workload: &str, system: System, result: systems::Result<T>) -> Result<T, String> {
    result.map_err(|err| format!("{workload} on {}: {err}", system.name()))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child-counter") {
        return child_counter(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--child-watcher") {
        let total = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
        return exit(watch::child(std::path::Path::new(args.get(1).map_or("", String::as_str)), total));
    }
    if args.first().map(String::as_str) == Some("--child-streams-server") {
        return exit(streams::serve_child(&args[1..]).map_err(|e| e.to_string()));
    }
    if args.first().map(String::as_str) == Some("--streams") {
        let quick = args.iter().any(|a| a == "--quick");
        let anchors = args.iter().any(|a| a == "--anchors");
        let chart =
            args.iter().position(|a| a == "--chart").and_then(|i| args.get(i + 1)).map(std::path::PathBuf::from);
        let outcome = streams::run(quick, anchors, chart.as_deref());
        return exit(outcome.map(|table| println!("{table}")).map_err(|e| e.to_string()));
    }
    if args.first().map(String::as_str) == Some("--streams-scale") {
        #[cfg(feature = "slatedb")]
        let outcome = streams::scale::run(args.iter().any(|a| a == "--quick"))
            .map(|table| println!("{table}"))
            .map_err(|e| e.to_string());
        #[cfg(not(feature = "slatedb"))]
        let outcome = Err("--streams-scale needs `--features slatedb`".to_owned());
        return exit(outcome);
    }
    if args.first().map(String::as_str) == Some("--watch") {
        let total = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
        return exit(watch::run(total).map(|table| println!("{table}")));
    }
    exit(run(&args))
}

fn exit(outcome: Result<(), String>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    if options.schema {
        return run_schema(&options);
    }
    let mut results = Results::default();
    for run in 1..=options.runs {
        eprintln!("run {run} of {}", options.runs);
        run_once(&mut results, &options, run % 2 == 0)?;
    }
    let mut table = results.table(options.runs);
    if options.history {
        table.push_str(&results.beside_skyshelve(System::SkyshelveHistory, "skyshelve, history = 10"));
    }
    if options.slatedb {
        table.push_str(&results.beside_skyshelve(System::SkyshelveSlatedb, "skyshelve on SlateDB"));
        table.push_str(
            &results.compared((System::SkyshelveSlatedb, "skyshelve on SlateDB"), (System::SlatedbRaw, "raw SlateDB")),
        );
    }
    if options.sqlite_serial {
        table.push_str(&results.beside_skyshelve(System::SqliteSerial, "sqlite, writers serialised"));
    }
    if options.flat_index {
        let flat = (System::HeedRawFlat, "heed_raw, flat team index");
        table.push_str(&results.compared((System::Skyshelve, "skyshelve"), flat));
        table.push_str(&results.compared(flat, (System::HeedRaw, "heed_raw")));
    }
    // A system only a flag adds has no column in the main table.
    if let Some(system) = options.system.filter(|system| !System::ALL.contains(system)) {
        table.push_str(&results.alone(system));
    }
    println!("{table}");
    if let Some(path) = &options.markdown {
        std::fs::write(path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &options.chart {
        let caption = format!("{} run(s); {}", options.runs, machine());
        report::chart(&results, path, &caption).map_err(|e| format!("chart: {e}"))?;
    }
    Ok(())
}

fn run_schema(options: &Options) -> Result<(), String> {
    let n = options.sizes.preload;
    let mut runs = Vec::new();
    for run in 1..=options.runs {
        eprintln!("schema run {run} of {}", options.runs);
        runs.push(schema::run(n)?);
    }
    println!("{}", schema::table(&runs, n));
    Ok(())
}

/// Cores, filesystem and versions, for the chart's caption.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(std::env::temp_dir())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{date}, {cores} cores, {fs}; skyshelve 0.1.0, heed 0.23.1, native_db 0.8.2, rusqlite 0.41.1 (bundled SQLite)"
    )
}

fn child_counter(args: &[String]) -> std::process::ExitCode {
    let parsed = (|| -> Option<(System, PathBuf, u64)> {
        Some((System::from_name(args.first()?)?, PathBuf::from(args.get(1)?), args.get(2)?.parse().ok()?))
    })();
    let Some((system, dir, increments)) = parsed else {
        eprintln!("bench: --child-counter SYSTEM DIR INCREMENTS");
        return std::process::ExitCode::FAILURE;
    };
    match workloads::count_in_child(system, &dir, increments) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench child: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
