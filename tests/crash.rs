//! Crash trials with real processes: a child writes sequenced records and
//! reports every acknowledged commit over its stdout pipe; the parent kills
//! it with SIGKILL at a random moment, reopens the store, and checks that
//! every acknowledged record is there with all its index entries, that
//! unacknowledged ones are whole or absent, and that `verify` is clean.
//!
//! Killed-waiter trials: three processes increment counters of their own;
//! one is killed at a random moment (perhaps while it waits for the writer
//! lock), and each survivor must keep committing within a bounded wait.
//!
//! Seeded and replayable: the seed is printed; set `SKYSHELVE_CRASH_SEED`
//! to replay it. `SKYSHELVE_CRASH_TRIALS` sets the number of trials of the
//! ignored soak tests (`cargo test --test crash -- --ignored`).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Persistent, Store};

#[path = "common/engine.rs"]
mod engine;

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

/// One counter per process of the killed-waiter trials.
#[derive(Persistent, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Tally {
    #[persistent(key)]
    process: u32,
    #[persistent(index)]
    value: u64,
}

const ROLE: &str = "SKYSHELVE_CRASH_ROLE";
const PROCESS: &str = "SKYSHELVE_CRASH_PROCESS";
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
    engine::options().map_size(64 << 10).durability(durability).open(path).expect("reopening never fails")
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

/// The child: increments its own counter until killed, acknowledging each
/// commit.
fn count_until_killed(path: &Path, process: u32) {
    use std::io::Write;
    let store = engine::options().durability(Durability::MayCorruptOnPowerLoss).open(path).unwrap();
    let mut out = std::io::stdout().lock();
    loop {
        let tally = Tally::upsert(&store, || Tally { process, value: 0 }, |t| t.value += 1).unwrap();
        writeln!(out, "@ack {}", tally.value).unwrap();
        out.flush().unwrap();
    }
}

/// Starts this test binary running only `test` (the trial test that is
/// running), as a child with `role`.
fn spawn(test: &str, role: &str, path: &Path, full: bool) -> Child {
    spawn_numbered(test, role, path, full, 0)
}

fn spawn_numbered(test: &str, role: &str, path: &Path, full: bool, process: u32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--include-ignored", "--nocapture", "--test-threads=1", "--quiet"])
        .env(ROLE, role)
        .env(STORE, path)
        .env(FULL_DURABILITY, if full { "1" } else { "0" })
        .env(PROCESS, process.to_string())
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
    let store = engine::open(path).expect("reopening after a crash never fails");
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

/// The seed of a run of trials: `SKYSHELVE_CRASH_SEED`, or the clock;
/// printed so that a failing run can be replayed.
fn seed(trials: &str) -> u64 {
    let seed = std::env::var("SKYSHELVE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("{trials}: seed {seed} (replay with SKYSHELVE_CRASH_SEED={seed})");
    seed
}

fn run_trials(test: &str, trials: u64) {
    let seed = seed("crash trials");
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
        let before = engine::open(dir.path()).map(|s| Entry::count(&s).unwrap_or(0)).unwrap_or(0);
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
        "backup" => {
            engine::open(&path).unwrap().backup(path.with_file_name("backup")).unwrap();
        }
        "counter" => count_until_killed(&path, std::env::var(PROCESS).unwrap().parse().unwrap()),
        "opener" => {
            let store = open(&path, full);
            assert!(store.verify().unwrap().is_clean());
        }
        other => panic!("unknown role {other}"),
    }
    true
}

/// How long a survivor may go without a commit after another process was
/// killed. Generous for a loaded 2-core machine; a lost wake-up is forever.
const SURVIVOR_WAIT: Duration = Duration::from_secs(20);

/// A counter process and the acknowledgements its pipe delivers.
struct Counting {
    child: Child,
    acks: std::sync::mpsc::Receiver<u64>,
}

impl Counting {
    fn start(test: &str, path: &Path, process: u32) -> Counting {
        let mut child = spawn_numbered(test, "counter", path, false, process);
        let out = BufReader::new(child.stdout.take().unwrap());
        let (send, acks) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("@ack ").and_then(|n| n.parse().ok())
                    && send.send(n).is_err()
                {
                    return;
                }
            }
        });
        Counting { child, acks }
    }

    /// Waits up to `wait` for an acknowledgement newer than those already
    /// delivered; `None` if none came.
    fn next_ack(&self, wait: Duration) -> Option<u64> {
        self.acks.try_iter().for_each(drop);
        self.acks.recv_timeout(wait).ok()
    }

    fn kill(mut self) -> Option<u64> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(20)); // let the reader thread drain the pipe
        self.acks.try_iter().last()
    }
}

/// One trial: three counters, one killed at a random moment, the survivors
/// must go on committing.
fn killed_waiter_trial(test: &str, rng: &mut Rng, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let counters: Vec<Counting> = (0..3).map(|p| Counting::start(test, dir.path(), p)).collect();
    let mut acked = [0u64; 3];
    for (p, counter) in counters.iter().enumerate() {
        acked[p] = counter.next_ack(SURVIVOR_WAIT).expect("every counter starts committing");
    }
    std::thread::sleep(Duration::from_micros(rng.below(400_000)));
    let victim = rng.below(3) as usize;
    let mut survivors = Vec::new();
    for (p, counter) in counters.into_iter().enumerate() {
        if p == victim {
            acked[p] = acked[p].max(counter.kill().unwrap_or(0));
        } else {
            survivors.push((p, counter));
        }
    }
    for (p, counter) in survivors {
        let next = counter.next_ack(SURVIVOR_WAIT);
        let stuck = next.is_none();
        acked[p] = acked[p].max(next.unwrap_or(0)).max(counter.kill().unwrap_or(0));
        assert!(
            !stuck,
            "process {p} made no commit for {SURVIVOR_WAIT:?} after process {victim} was killed (seed {seed})"
        );
    }
    let store = engine::open(dir.path()).unwrap();
    for (p, &acked) in acked.iter().enumerate() {
        let stored = Tally::load(&store, &(p as u32)).unwrap().map_or(0, |t| t.value);
        assert!(stored >= acked, "process {p}: acknowledged {acked}, stored {stored} (seed {seed})");
    }
    assert!(Tally::verify(&store).unwrap().is_clean());
}

fn run_killed_waiter_trials(test: &str, trials: u64) {
    let seed = seed("killed-waiter trials");
    let mut rng = Rng(seed);
    for _ in 0..trials {
        killed_waiter_trial(test, &mut rng, seed);
    }
}

#[test]
fn killed_processes_never_leave_a_writer_waiting() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
    if !run_as_child() {
        run_killed_waiter_trials("killed_processes_never_leave_a_writer_waiting", 24);
    }
}

#[test]
#[ignore = "soak test: cargo test --test crash -- --ignored"]
fn soak_killed_waiter_trials() {
    if !run_as_child() {
        let trials = std::env::var("SKYSHELVE_CRASH_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
        run_killed_waiter_trials("soak_killed_waiter_trials", trials);
    }
}

#[test]
fn a_backup_killed_part_way_leaves_no_store_and_can_be_run_again() {
    if engine::not_on_slatedb("backup and restore copy LMDB's files (SlateDB keeps its copies in object storage)") {
        return;
    }
    if run_as_child() {
        return;
    }
    let test = "a_backup_killed_part_way_leaves_no_store_and_can_be_run_again";
    let dir = tempfile::tempdir().unwrap();
    let (path, backup) = (dir.path().join("store"), dir.path().join("backup"));
    let records = {
        let store = engine::open(&path).unwrap();
        store.write(|tx| (0..10_000).try_for_each(|seq| tx.save(&Entry::new(seq)))).unwrap();
        Entry::count(&store).unwrap()
    };
    let started = std::time::Instant::now();
    let mut whole = spawn(test, "backup", &path, false);
    assert!(whole.wait().unwrap().success());
    let took = started.elapsed();
    std::fs::remove_dir_all(&backup).unwrap();
    let mut rng = Rng(took.as_nanos() as u64);
    for _ in 0..8 {
        let mut child = spawn(test, "backup", &path, false);
        std::thread::sleep(Duration::from_micros(rng.below(took.as_micros() as u64)));
        child.kill().unwrap();
        child.wait().unwrap();
        if backup.join("data.mdb").exists() {
            // The kill came after the backup was complete.
            assert_eq!(Entry::count(&engine::open(&backup).unwrap()).unwrap(), records);
            std::fs::remove_dir_all(&backup).unwrap();
            continue;
        }
        let store = engine::open(&path).unwrap();
        store.backup(&backup).unwrap();
        let copy = engine::open(&backup).unwrap();
        assert_eq!(Entry::count(&copy).unwrap(), records);
        assert!(copy.verify().unwrap().is_clean());
        drop(copy);
        std::fs::remove_dir_all(&backup).unwrap();
    }
}

#[test]
fn a_hundred_crash_trials() {
    if engine::not_on_slatedb("one writer process per store: a second process that writes fences the first") {
        return;
    }
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
