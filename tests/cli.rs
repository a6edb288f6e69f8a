//! The admin command line, driven as a user drives it: this test binary is
//! a program with one model and `skyshelve::cli::main()` (its own `main`
//! runs the CLI when started with arguments), and the checks below start
//! it with arguments and read its exit status and output.
//!
//! The store is the golden store of tests/data/users_v1, written by
//! version 1 of the model: `verify` finds the index entries version 1 wrote,
//! `migrate` rewrites the records, and `verify` is clean afterwards.

use std::path::Path;
use std::process::{Command, ExitCode, Output};

#[path = "common/golden_users.rs"]
mod golden_users;

#[path = "common/engine.rs"]
mod engine;
#[path = "common/raw.rs"]
mod raw;

const AS_CLI: &str = "SKYSHELVE_TEST_AS_CLI";

skyshelve::map_type!("settings", String, u32);

/// A second model of this program, which the golden store never held.
#[derive(skyshelve::Persistent, serde::Serialize, serde::Deserialize)]
#[persistent(name = "cli_event")]
struct Event {
    #[persistent(key)]
    id: u64,
    #[persistent(index)]
    kind: String,
}

fn main() -> ExitCode {
    if std::env::var_os(AS_CLI).is_some() {
        return skyshelve::cli::main();
    }
    if engine::not_on_slatedb("the CLI checks work on a golden store written by LMDB") {
        return ExitCode::SUCCESS;
    }
    let checks: [(&str, fn()); 11] = [
        (
            "a_damaged_page_is_named_by_verify_and_read_around_by_the_salvage",
            a_damaged_page_is_named_by_verify_and_read_around_by_the_salvage,
        ),
        ("read_commands_change_nothing_in_the_store", read_commands_change_nothing_in_the_store),
        ("models_and_stats_list_the_program_models_and_their_counts", models_and_stats_list_the_program_models),
        ("verify_fails_until_migrate_rewrites_the_older_records", verify_fails_until_migrate_rewrites),
        ("export_and_import_round_trip_through_json_lines", export_and_import_round_trip),
        ("backup_and_restore_give_a_clean_copy", backup_and_restore_give_a_clean_copy),
        ("mistakes_are_reported_with_exit_status_2", mistakes_are_reported_with_exit_status_2),
        ("reindex_makes_the_program_definitions_the_store_s", reindex_makes_the_program_definitions_the_stores),
        ("a_reader_that_stops_early_ends_the_export_quietly", a_reader_that_stops_early_ends_the_export_quietly),
        ("models_and_stats_list_the_maps_too", models_and_stats_list_the_maps_too),
        (
            "export_all_carries_maps_and_salvage_skips_damaged_records",
            export_all_carries_maps_and_salvage_skips_damaged_records,
        ),
    ];
    for (name, check) in checks {
        check();
        println!("test {name} ... ok");
    }
    println!("\ntest result: ok. {} passed", checks.len());
    ExitCode::SUCCESS
}

/// Runs this program as the admin CLI with `args`.
fn cli(args: &[&str]) -> Output {
    Command::new(std::env::current_exe().unwrap()).args(args).env(AS_CLI, "1").output().expect("the CLI starts")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Runs the CLI and expects exit status `status`; returns standard output.
fn expect(args: &[&str], status: i32) -> String {
    let output = cli(args);
    assert_eq!(output.status.code(), Some(status), "{args:?}: {}{}", stdout(&output), stderr(&output));
    stdout(&output)
}

/// A writable copy of the golden store, in `folder/store`.
fn golden_store(folder: &Path) -> String {
    let store = folder.join("store");
    std::fs::create_dir(&store).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/users_v1/data.mdb");
    std::fs::copy(golden, store.join("data.mdb")).unwrap();
    store.to_str().unwrap().to_owned()
}

fn models_and_stats_list_the_program_models() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    // Version 1 had no `active` index: the read commands say so and leave
    // it unbuilt; a writable open (here `reindex`) builds it.
    let models = expect(&["models", &store], 0);
    assert!(models.starts_with("golden_users  version 2  key u32  3 records\n"), "{models}");
    for index in ["field unique email: String", "field team: String", "field active: bool  (not built yet)"] {
        assert!(models.contains(&format!("\n  {index}\n")), "{index} missing from:\n{models}");
    }
    let stats = expect(&["stats", &store], 0);
    let counts = "golden_users: 3 records; index entries: email 3, team 3, active not built yet\n";
    assert!(stats.contains(counts), "{stats}");
    assert!(stats.contains("readers  "), "{stats}");
    expect(&["reindex", &store], 0);
    let stats = expect(&["stats", &store], 0);
    assert!(stats.contains("golden_users: 3 records; index entries: email 3, team 3, active 3\n"), "{stats}");
}

/// `models`, `stats`, `verify` and `export` open the store read-only: the
/// data file is the same bytes afterwards, a model this program declares
/// and the store never held is neither listed nor registered, and an index
/// no writer has built stays unbuilt (reported by `verify`).
fn read_commands_change_nothing_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    let data = Path::new(&store).join("data.mdb");
    let before = std::fs::read(&data).unwrap();
    let models = expect(&["models", &store], 0);
    let stats = expect(&["stats", &store], 0);
    let report = expect(&["verify", &store], 1);
    assert!(report.contains("active: not built yet"), "{report}");
    expect(&["export", &store, "golden_users"], 0);
    let dump = dir.path().join("dump");
    expect(&["export", &store, "--all", "-o", dump.to_str().unwrap()], 0);
    assert!(std::fs::read(&data).unwrap() == before, "a read command changed data.mdb");
    for listing in [&models, &stats] {
        assert!(!listing.contains("cli_event"), "a model the store never held is listed:\n{listing}");
    }
    assert!(!dump.join("cli_event.jsonl").exists());
    // The store still does not know the model: a writable open registers it.
    expect(&["reindex", &store], 0);
    assert!(expect(&["models", &store], 0).contains("cli_event  version 1  key u64  0 records"));
}

fn verify_fails_until_migrate_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    // Version 1 wrote team entries in its own case ("Red"); version 2 computes "red".
    let report = expect(&["verify", &store], 1);
    assert!(report.contains("golden_users: 3 records"), "{report}");
    assert!(report.lines().last().unwrap().ends_with(" problems"), "{report}");
    let migrated = expect(&["migrate", &store], 0);
    assert_eq!(migrated, "cli_event: 0 records rewritten\ngolden_users: 3 records rewritten\n");
    assert!(expect(&["verify", &store], 0).ends_with("0 problems\nclean\n"));
    assert_eq!(expect(&["migrate", &store, "golden_users"], 0), "golden_users: 0 records rewritten\n");
}

fn export_and_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    let lines = expect(&["export", &store, "golden_users"], 0);
    let ids: Vec<u64> = lines
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert!(lines.contains(r#""team":"red""#), "exported as the current version: {lines}");

    let file = dir.path().join("users.jsonl");
    let file = file.to_str().unwrap();
    assert_eq!(
        expect(&["export", &store, "golden_users", "-o", file], 0),
        format!("exported 3 golden_users records to {file}\n")
    );
    let copy = dir.path().join("copy");
    let copy = copy.to_str().unwrap();
    assert_eq!(expect(&["import", copy, "golden_users", "-i", file], 0), "imported 3 golden_users records\n");
    assert_eq!(expect(&["export", copy, "golden_users"], 0), lines);
    assert!(expect(&["verify", copy], 0).ends_with("clean\n"));

    let dump = dir.path().join("dump");
    let dump = dump.to_str().unwrap();
    expect(&["export", &store, "--all", "-o", dump], 0);
    assert_eq!(std::fs::read_to_string(Path::new(dump).join("golden_users.jsonl")).unwrap(), lines);
    let again = dir.path().join("again");
    let again = again.to_str().unwrap();
    assert!(expect(&["import", again, "--all", "-i", dump], 0).starts_with("imported 3 golden_users records from "));
}

fn backup_and_restore_give_a_clean_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    let backup = dir.path().join("backup");
    let backup = backup.to_str().unwrap();
    expect(&["backup", &store, backup], 0);
    let restored = dir.path().join("restored");
    let restored = restored.to_str().unwrap();
    expect(&["restore", backup, restored], 0);
    assert_eq!(expect(&["export", restored, "golden_users"], 0), expect(&["export", &store, "golden_users"], 0));
    let again = expect(&["restore", backup, restored], 2);
    assert!(again.is_empty(), "nothing restored over an existing store");
}

fn mistakes_are_reported_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let output = cli(&["stats", missing]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("holds no skyshelve store"), "{}", stderr(&output));
    assert!(!Path::new(missing).exists(), "a mistyped path is not created");

    // A FIFO where the data file should be: the open says what is wrong,
    // and does not wait for a writer of the FIFO.
    let fifo = dir.path().join("fifo");
    std::fs::create_dir(&fifo).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(fifo.join("data.mdb")).status().unwrap().success());
    let output = cli(&["stats", fifo.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("its data file is not a regular file"), "{}", stderr(&output));

    let store = golden_store(dir.path());
    let output = cli(&["export", &store, "nosuch"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no model of this program is named \"nosuch\""), "{}", stderr(&output));

    let output = cli(&["export", &store, "--all"]);
    assert_eq!(output.status.code(), Some(2), "clap refuses --all without --output");
    assert!(stderr(&output).contains("--output"), "{}", stderr(&output));
}

fn reindex_makes_the_program_definitions_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    let reindexed = cli(&["-v", "reindex", &store]);
    assert_eq!(reindexed.status.code(), Some(0), "{}", stderr(&reindexed));
    let models = stdout(&reindexed);
    assert!(models.contains("\ngolden_users  version 2  key u32  3 records\n"), "{models}");
    let said = stderr(&reindexed);
    assert!(
        said.contains("index build started") && said.contains("index build finished"),
        "-v reports the build: {said}"
    );
    let quiet = cli(&["-q", "reindex", &store]);
    assert_eq!((quiet.status.code(), stderr(&quiet).as_str()), (Some(0), ""), "-q says nothing");
    let stats = expect(&["stats", &store], 0);
    assert!(stats.contains("index entries: email 3, team 3, active 3\n"), "{stats}");
}

fn a_reader_that_stops_early_ends_the_export_quietly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = engine::open(&path).unwrap();
        let user = |id| golden_users::User { id, email: format!("u{id}@x"), team: "red".into(), active: true };
        store.write(|tx| (0..20_000).try_for_each(|id| tx.save(&user(id)))).unwrap();
    }
    let mut export = Command::new(std::env::current_exe().unwrap())
        .args(["export", path.to_str().unwrap(), "golden_users"])
        .env(AS_CLI, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(export.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"id\":0"), "{first}"); // the reader is dropped here, as `head -1` would
    let output = export.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "nothing said about the closed pipe");
}

fn models_and_stats_list_the_maps_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    {
        let opened = engine::open(&store).unwrap();
        let settings = opened.map::<String, u32>("settings").unwrap();
        settings.insert(&"retries".to_string(), &3).unwrap();
        settings.insert(&"timeout".to_string(), &30).unwrap();
    }
    assert!(expect(&["stats", &store], 0).contains("map settings: 2 entries\n"));
    assert!(expect(&["models", &store], 0).contains("map settings  2 entries\n"));
    let exported = expect(&["export", &store, "settings"], 0);
    assert_eq!(exported, "{\"key\":\"retries\",\"value\":3}\n{\"key\":\"timeout\",\"value\":30}\n");
    let file = dir.path().join("settings.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let copy = dir.path().join("copy");
    expect(&["import", copy.to_str().unwrap(), "settings", "-i", file.to_str().unwrap()], 0);
    assert_eq!(expect(&["export", copy.to_str().unwrap(), "settings"], 0), exported);
}

/// `export --all` carries every registered map beside the models, and
/// names the maps it cannot read (exit 1); one undecodable record makes a
/// plain export fail (exit 2), while `--skip-damaged` writes the others,
/// names the damaged one and exits 1.
fn export_all_carries_maps_and_salvage_skips_damaged_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    {
        let opened = engine::open(&store).unwrap();
        opened.map::<String, u32>("settings").unwrap().insert(&"retries".to_string(), &3).unwrap();
        opened.map::<u8, u8>("unregistered").unwrap().insert(&1, &1).unwrap();
    }
    let dump = dir.path().join("dump");
    let output = cli(&["export", &store, "--all", "-o", dump.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "a map it cannot carry makes the dump incomplete");
    assert!(stderr(&output).contains("not exported: map unregistered (1 entries)"), "{}", stderr(&output));
    assert!(stdout(&output).contains("exported 1 entries of map settings"), "{}", stdout(&output));
    let copy = dir.path().join("copy");
    expect(&["import", copy.to_str().unwrap(), "--all", "-i", dump.to_str().unwrap()], 0);
    assert_eq!(expect(&["export", copy.to_str().unwrap(), "settings"], 0), "{\"key\":\"retries\",\"value\":3}\n");

    damage_one_record(Path::new(&store));
    let plain = cli(&["export", &store, "golden_users"]);
    assert_eq!(plain.status.code(), Some(2), "{}", stderr(&plain));
    // Said once, as plain text: standard error is a pipe here.
    let said = stderr(&plain);
    assert_eq!(said.lines().count(), 1, "the error once: {said}");
    assert!(said.starts_with("error: ") && !said.contains('\x1b'), "no colour codes: {said:?}");
    let salvaged = cli(&["export", &store, "golden_users", "--skip-damaged"]);
    assert_eq!(salvaged.status.code(), Some(1));
    assert_eq!(stdout(&salvaged).lines().count(), 2, "the two readable records: {}", stdout(&salvaged));
    let said = stderr(&salvaged);
    assert_eq!(said.lines().filter(|l| l.starts_with("skipped golden_users record ")).count(), 1, "{said}");
}

/// A page of the data file overwritten (LMDB keeps no checksums): `verify`
/// names it without reading through it, exit 1; `export --skip-damaged`
/// writes the records of the intact pages, names the damaged one, exit 1.
fn a_damaged_page_is_named_by_verify_and_read_around_by_the_salvage() {
    let dir = tempfile::tempdir().unwrap();
    let store = golden_store(dir.path());
    let data = Path::new(&store).join("data.mdb");
    let mut bytes = std::fs::read(&data).unwrap();
    // Every page holding the second user's email: its record's leaf and its
    // index entry's.
    let needle = b"u2@example.com";
    let pages: std::collections::BTreeSet<usize> =
        bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(at, _)| at / 4096).collect();
    assert!(!pages.is_empty());
    for page in &pages {
        bytes[page * 4096..(page + 1) * 4096].fill(0xA5);
    }
    std::fs::write(&data, bytes).unwrap();
    let report = expect(&["verify", &store], 1);
    assert!(report.contains("is damaged"), "{report}");
    let salvaged = cli(&["export", &store, "golden_users", "--skip-damaged"]);
    assert_eq!(salvaged.status.code(), Some(1), "{}", stderr(&salvaged));
    assert!(stderr(&salvaged).contains("skipped golden_users page "), "{}", stderr(&salvaged));
    for line in stdout(&salvaged).lines() {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "a whole record: {line}");
    }
}

/// Cuts the last byte off the first record's value, through LMDB directly.
fn damage_one_record(store: &Path) {
    let (env, table) = raw::raw_table(store, "golden_users");
    let mut wtxn = env.write_txn().unwrap();
    let (key, mut value) = {
        let (key, value) = table.first(&wtxn).unwrap().unwrap();
        (key.to_vec(), value.to_vec())
    };
    value.pop();
    table.put(&mut wtxn, &key, &value).unwrap();
    wtxn.commit().unwrap();
    env.prepare_for_closing().wait();
}
