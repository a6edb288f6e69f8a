//! Schema work on skyshelve alone (`--schema`): how fast an index added to
//! a model is built when the store opens, and how fast `migrate` rewrites
//! records of an older model version, each against the rate of saving the
//! same records in the first place, measured in the same run.
//!
//! Two releases of one model (`schema_users`) are opened in turn with
//! `StoreOptions::models`, as two builds of a program would open them.
//! Everything runs without fsync, so that the figures show skyshelve's work
//! rather than the disk's.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use skyshelve::{Durability, Persistent, Store};

use crate::model::{TEAMS, email};

/// Release 1: a unique email index.
#[derive(Persistent, Serialize, Deserialize)]
#[persistent(name = "schema_users")]
struct UserV1 {
    #[persistent(key)]
    id: u64,
    #[persistent(index, unique)]
    email: String,
    team: u32,
    bio: String,
}

/// Release 2: the team is indexed too.
#[derive(Persistent, Serialize, Deserialize)]
#[persistent(name = "schema_users", version = 2, from(UserV1 = 1))]
struct UserV2 {
    #[persistent(key)]
    id: u64,
    #[persistent(index, unique)]
    email: String,
    #[persistent(index)]
    team: u32,
    bio: String,
}

impl From<UserV1> for UserV2 {
    fn from(old: UserV1) -> Self {
        UserV2 { id: old.id, email: old.email, team: old.team, bio: old.bio }
    }
}

/// Records per save transaction when the store is filled.
const SAVE_BATCH: u64 = 10_000;

/// Rates of one run, in records per second.
pub struct Rates {
    pub save: f64,
    pub build: f64,
    pub migrate: f64,
}

fn open_as<M: Persistent>(dir: &std::path::Path) -> Result<Store, String> {
    let options = Store::options().models([M::INFO]).durability(Durability::MayCorruptOnPowerLoss);
    options.open(dir).map_err(|e| e.to_string())
}

/// Saves `n` release-1 records, opens the store as release 2 (building the
/// team index), then migrates; checks the results and times each step.
pub fn run(n: u64) -> Result<Rates, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let started = Instant::now();
    {
        let store = open_as::<UserV1>(dir.path())?;
        for first in (0..n).step_by(SAVE_BATCH as usize) {
            store
                .write(|tx| {
                    (first..n.min(first + SAVE_BATCH)).try_for_each(|id| {
                        let team = (id % u64::from(TEAMS)) as u32;
                        tx.save(&UserV1 { id, email: email(id), team, bio: format!("{id:0>100}") })
                    })
                })
                .map_err(|e| e.to_string())?;
        }
    }
    let save = rate(n, started);

    let started = Instant::now();
    let store = open_as::<UserV2>(dir.path())?;
    let build = rate(n, started);
    let team_7 = UserV2::scan_index(&store, UserV2::TEAM, &7).map_err(|e| e.to_string())?;
    let expected = n / u64::from(TEAMS) + u64::from(n % u64::from(TEAMS) > 7);
    if team_7.len() as u64 != expected {
        return Err(format!("built team index holds {} records of team 7, expected {expected}", team_7.len()));
    }

    let started = Instant::now();
    let migrated = UserV2::migrate(&store, &mut |_| {}).map_err(|e| e.to_string())?;
    let migrate = rate(n, started);
    if migrated != n {
        return Err(format!("migrate rewrote {migrated} records, expected {n}"));
    }
    let report = store.verify().map_err(|e| e.to_string())?;
    if !report.is_clean() {
        return Err(format!("verify after migrate: {report}"));
    }
    Ok(Rates { save, build, migrate })
}

fn rate(records: u64, started: Instant) -> f64 {
    records as f64 / started.elapsed().as_secs_f64()
}

/// The median rates of several runs, as a markdown table with ratios.
pub fn table(runs: &[Rates], n: u64) -> String {
    let median = |pick: fn(&Rates) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let save = median(|r| r.save);
    let mut out = format!(
        "schema work on {n} records, median of {} run(s), records/s (÷ save: ratio to saving the same records)\n\n",
        runs.len()
    );
    out.push_str("| step | records/s | ÷ save |\n|---|---:|---:|\n");
    out.push_str(&format!("| save (release 1, email index) | {save:.0} | 1.00 |\n"));
    let build = median(|r| r.build);
    out.push_str(&format!("| open as release 2: build the team index | {build:.0} | {:.2} |\n", build / save));
    let migrate = median(|r| r.migrate);
    out.push_str(&format!("| migrate to release 2 | {migrate:.0} | {:.2} |\n", migrate / save));
    out
}
