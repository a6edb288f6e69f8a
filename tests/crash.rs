//! Crash trials with real processes: a child writes sequenced records and
//! reports every acknowledged commit over its stdout pipe; the parent kills
//! it with SIGKILL at a random moment, reopens the store, and checks that
//! every acknowledged record is there with all its index entries, that
//! unacknowledged ones are whole or absent, and that `verify` is clean.
//!
//! Seeded and replayable: the seed is printed; set `SKYSHELVE_CRASH_SEED`
//! to replay it. `SKYSHELVE_CRASH_TRIALS` sets the number of trials of the
//! ignored soak test (`cargo test --test crash -- --ignored`).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Persistent, Store};

#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Entry {
    #[persistent(key)]
    seq: u64,
    #[persistent(index)]
    bucket: u32,
    #[persistent(index, unique)]
    token: String,
    #[persistent(index(with = Entry::words))]
    text: String,
}

impl Entry {
    fn words(&self) -> Vec<String> {
        self.text.split(' ').take(2).map(str::to_owned).collect()
    }

    fn new(seq: u64) -> Entry {
        // Lengths vary so that pages split and the map grows at odd moments.
        let filler = "x".repeat((seq % 13) as usize * 150);
        Entry {
            seq,
            bucket: (seq % 7) as u32,
            token: format!("tok-{seq}"),
            text: format!("w{} w{} {filler}", seq % 5, seq % 11),
        }
    }
}

const ROLE: &str = "SKYSHELVE_CRASH_ROLE";
const STORE: &str = "SKYSHELVE_CRASH_STORE";
const FULL_DURABILITY: &str = "SKYSHELVE_CRASH_FULL";

/// splitmix64: a small seeded generator, so that trials replay exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn open(path: &Path, full: bool) -> Store {
    let durability = if full { Durability::Full } else { Durability::MayCorruptOnPowerLoss };
    Store::options().map_size(64 << 10).durability(durability).open(path).expect("reopening never fails")
}

/// The child: writes records from the next free sequence number on,
/// acknowledging each commit, until it is killed.
fn write_until_killed(path: &Path, full: bool) {
    use std::io::Write;
    let store = open(path, full);
    let next = store.read(|tx| tx.iter::<Entry>()?.last().transpose()).unwrap().map_or(0, |e| e.seq + 1);
    let mut out = std::io::stdout().lock();
    for seq in next..next + 1_000_000 {
        if seq % 4 == 0 {
            // Several records in one transaction now and then.
            store.write(|tx| (seq..seq + 3).try_for_each(|s| tx.save(&Entry::new(s)))).unwrap();
            writeln!(out, "@ack {}", seq + 2).unwrap();
        } else if seq % 4 == 1 || seq % 4 == 2 {
            continue; // written with the multiple of 4 before
        } else {
            Entry::new(seq).insert(&store).unwrap();
            writeln!(out, "@ack {seq}").unwrap();
        }
        out.flush().unwrap();
    }
}

/// Starts this test binary running only `test` (the trial test that is
/// running), as a child with `role`.
fn spawn(test: &str, role: &str, path: &Path, full: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--include-ignored", "--nocapture", "--test-threads=1", "--quiet"])
        .env(ROLE, role)
        .env(STORE, path)
        .env(FULL_DURABILITY, if full { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The child's acknowledgements, read from one buffered pipe.
struct Acks(BufReader<std::process::ChildStdout>);

impl Acks {
    fn of(child: &mut Child) -> Acks {
        Acks(BufReader::new(child.stdout.take().unwrap()))
    }

    /// Waits until the child acknowledges its first commit.
    fn first(&mut self) -> Option<u64> {
        let mut line = String::new();
        while self.0.read_line(&mut line).unwrap() > 0 {
            if let Some(seq) = line.trim_end().strip_prefix("@ack ") {
                return seq.parse().ok();
            }
            line.clear();
        }
        None
    }

    /// The highest acknowledgement after `first`, once the child is dead.
    fn last(mut self, first: Option<u64>) -> Option<u64> {
        let mut rest = String::new();
        self.0.read_to_string(&mut rest).unwrap();
        rest.lines().filter_map(|l| l.strip_prefix("@ack ")).filter_map(|n| n.parse().ok()).chain(first).max()
    }
}

fn check(path: &Path, acked: Option<u64>) {
    let store = Store::open(path).expect("reopening after a crash never fails");
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report}");
    let stored = Entry::all(&store).unwrap();
    for (i, entry) in stored.iter().enumerate() {
        assert_eq!(entry, &Entry::new(entry.seq), "records are whole");
        assert_eq!(entry.seq, i as u64, "no gaps: records are written in order");
    }
    if let Some(acked) = acked {
        assert!(stored.len() as u64 > acked, "acknowledged record {acked} lost ({} stored)", stored.len());
        let last = Entry::new(acked);
        assert_eq!(Entry::load_by(&store, Entry::TOKEN, &last.token).unwrap().as_ref(), Some(&last));
        assert!(Entry::scan_index(&store, Entry::BUCKET, &last.bucket).unwrap().contains(&last));
    }
}

fn run_trials(test: &str, trials: u64) {
    let seed = std::env::var("SKYSHELVE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("crash trials: seed {seed} (replay with SKYSHELVE_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let mut dir = tempfile::tempdir().unwrap();
    let mut acknowledged = 0;
    for trial in 0..trials {
        if trial % 4 == 0 {
            // A fresh, tiny store: kills land during early map growth.
            dir = tempfile::tempdir().unwrap();
        }
        let full = rng.below(10) == 0;
        let mut writer = spawn(test, "writer", dir.path(), full);
        let mut acks = Acks::of(&mut writer);
        let first = acks.first();
        std::thread::sleep(Duration::from_micros(rng.below(40_000)));
        assert!(writer.try_wait().unwrap().is_none(), "the writer died before it was killed (seed {seed})");
        writer.kill().unwrap();
        writer.wait().unwrap();
        let acked = acks.last(first);
        let before = Store::open(dir.path()).map(|s| Entry::count(&s).unwrap_or(0)).unwrap_or(0);
        if rng.below(3) == 0 {
            // Kill a process while it opens the store right after the crash.
            let mut opener = spawn(test, "opener", dir.path(), full);
            std::thread::sleep(Duration::from_micros(rng.below(20_000)));
            opener.kill().unwrap();
            opener.wait().unwrap();
        }
        check(dir.path(), acked);
        acknowledged += before;
    }
    println!("crash trials: {trials} kills; {acknowledged} records checked after them in all");
    assert!(acknowledged > trials * 10, "the writers must have written before being killed");
}

/// In a child: does the child's part and returns `true`.
fn run_as_child() -> bool {
    let Ok(role) = std::env::var(ROLE) else { return false };
    let path = std::path::PathBuf::from(std::env::var(STORE).unwrap());
    let full = std::env::var(FULL_DURABILITY).as_deref() == Ok("1");
    match role.as_str() {
        "writer" => write_until_killed(&path, full),
        "opener" => {
            let store = open(&path, full);
            assert!(store.verify().unwrap().is_clean());
        }
        other => panic!("unknown role {other}"),
    }
    true
}

#[test]
fn a_hundred_crash_trials() {
    if !run_as_child() {
        run_trials("a_hundred_crash_trials", 100);
    }
}

#[test]
#[ignore = "soak test: cargo test --test crash -- --ignored"]
fn soak_crash_trials() {
    if !run_as_child() {
        let trials = std::env::var("SKYSHELVE_CRASH_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
        run_trials("soak_crash_trials", trials);
    }
}
