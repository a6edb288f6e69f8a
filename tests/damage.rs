//! A damaged data file: pages of `data.mdb` overwritten with random bytes,
//! as a bad sector or a stray write would leave them. LMDB keeps no
//! checksums and follows whatever a page says, so before this check the
//! salvage tools died of SIGSEGV or an assertion in most trials. Each trial
//! damages a copy of one 20,000-record store with a seed of its own and
//! runs what an operator runs on it — a read-only open, `verify` and the
//! salvage export — in a child process, which must end normally: a typed
//! error or a report, never a signal. What the salvage exports must be
//! records that were stored, unchanged.
//!
//! CI runs a few seeds; a soak runs more by hand:
//!
//! ```sh
//! DAMAGE_SEEDS=300 cargo test -p skyshelve --test damage -- --nocapture
//! ```

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use skyshelve::{Persistent, Store};

#[path = "common/children.rs"]
mod children;
#[path = "common/engine.rs"]
mod engine;
use children::{child_command, env_path, role, say};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[persistent(name = "damage_reading")]
struct Reading {
    #[persistent(key)]
    id: u32,
    #[persistent(index)]
    sensor: String,
    value: u64,
    note: String,
}

const RECORDS: u32 = 20_000;
const DAMAGED_PAGES: usize = 8;
const TEST: &str = "a_damaged_data_file_never_crashes_verify_or_the_salvage_export";

fn reading(id: u32) -> Reading {
    Reading {
        id,
        sensor: format!("sensor-{}", id % 37),
        value: u64::from(id) * 7,
        note: "n".repeat((id % 50) as usize),
    }
}

/// The seeded generator of the damage (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Overwrites `DAMAGED_PAGES` pages of the data file in `dir` with random
/// bytes; returns their numbers.
fn damage(dir: &Path, seed: u64) -> Vec<u64> {
    const PAGE: u64 = 4096;
    let path = dir.join("data.mdb");
    let bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() as u64 / PAGE;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut damaged = bytes;
    let mut chosen = Vec::new();
    for _ in 0..DAMAGED_PAGES {
        let page = rng.next() % pages;
        chosen.push(page);
        let start = usize::try_from(page * PAGE).unwrap();
        for byte in &mut damaged[start..start + PAGE as usize] {
            *byte = rng.next().to_le_bytes()[0];
        }
    }
    std::fs::write(&path, damaged).unwrap();
    chosen
}

/// The child: a read-only open, `verify`, and the salvage export, each
/// saying how it ended.
fn salvage() {
    let store = match Store::options().read_only().open(env_path()) {
        Ok(store) => store,
        Err(err) => {
            say(&format!("open refused: {err}"));
            return;
        }
    };
    match store.verify() {
        Ok(report) => say(&format!("verify problems {}", report.models.iter().map(|m| m.problem_count).sum::<u64>())),
        Err(err) => say(&format!("verify refused: {err}")),
    }
    let (mut out, mut skipped) = (Vec::new(), 0);
    match store.export_json_lines_skipping_damaged("damage_reading", &mut out, &mut |_| {}, &mut |_, _| skipped += 1) {
        Ok(written) => {
            say(&format!("exported {written} skipped {skipped}"));
            for line in String::from_utf8(out).unwrap().lines() {
                say(&format!("record {line}"));
            }
        }
        Err(err) => say(&format!("export refused: {err}")),
    }
}

#[test]
fn a_damaged_data_file_never_crashes_verify_or_the_salvage_export() {
    if role().is_some() {
        salvage();
        return;
    }
    if engine::not_on_slatedb("damages LMDB's data file") {
        return;
    }
    let template = tempfile::tempdir().unwrap();
    {
        let store = engine::open(template.path()).unwrap();
        store.write(|tx| (0..RECORDS).try_for_each(|id| tx.save(&reading(id)))).unwrap();
        assert!(store.verify().unwrap().is_clean());
    }
    let stored: HashMap<u32, Reading> = (0..RECORDS).map(|id| (id, reading(id))).collect();
    let seeds: u64 = std::env::var("DAMAGE_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(6);
    let (mut whole, mut salvaged, mut refused) = (0, 0, 0);
    for seed in 1..=seeds {
        let trial = tempfile::tempdir().unwrap();
        std::fs::copy(template.path().join("data.mdb"), trial.path().join("data.mdb")).unwrap();
        let pages = damage(trial.path(), seed);
        let output = child_command(TEST, "salvage", trial.path(), 0, 1).output().unwrap();
        assert_eq!(
            output.status.signal(),
            None,
            "seed {seed} (pages {pages:?}) killed the process: {:?}",
            output.status
        );
        assert!(output.status.success(), "seed {seed} (pages {pages:?}): {:?}", output.status);
        let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix('@').map(str::to_owned))
            .collect();
        let records: Vec<&str> = lines.iter().filter_map(|line| line.strip_prefix("record ")).collect();
        for line in &records {
            let record: Reading = serde_json::from_str(line).unwrap();
            assert_eq!(Some(&record), stored.get(&record.id), "seed {seed}: an exported record was never stored");
        }
        if records.len() == RECORDS as usize {
            whole += 1;
        } else if !records.is_empty() {
            salvaged += 1;
        }
        let summary: Vec<&String> = lines.iter().filter(|line| !line.starts_with("record ")).collect();
        refused += usize::from(summary.iter().any(|line| line.starts_with("open refused")));
        println!("seed {seed}: pages {pages:?}: {summary:?}, {} records out", records.len());
    }
    println!("{seeds} trials: {whole} exported whole, {salvaged} in part, {refused} refused at open, none crashed");
}
