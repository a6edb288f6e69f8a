//! Helpers for tests that re-execute their own binary as child processes:
//! a child prints `@`-prefixed lines, the parent reads them. Each test
//! file uses some of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Prints `@line` at once, for the parent to read.
pub fn say(line: &str) {
    println!("@{line}");
    std::io::stdout().flush().unwrap();
}

/// Reads the child's stdout until it prints `@line`.
pub fn wait_for_line(child: &mut Child, line: &str) {
    let mut reader = BufReader::new(child.stdout.as_mut().unwrap());
    let mut buffer = String::new();
    loop {
        buffer.clear();
        assert!(reader.read_line(&mut buffer).unwrap() > 0, "child ended before printing {line}");
        if buffer.trim_end() == format!("@{line}") {
            return;
        }
    }
}

/// Waits for a child that must succeed and returns the lines it printed
/// that start with `@` (libtest prints its own lines too).
pub fn finish(child: Child) -> Vec<String> {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "child failed: {:?}", output.status);
    String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| l.strip_prefix('@').map(str::to_owned)).collect()
}

const ROLE: &str = "SKYSHELVE_TEST_ROLE";
const STORE: &str = "SKYSHELVE_TEST_STORE";
pub const INDEX: &str = "SKYSHELVE_TEST_INDEX";
pub const COUNT: &str = "SKYSHELVE_TEST_COUNT";

/// The role this process plays, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

pub fn env_path() -> PathBuf {
    PathBuf::from(std::env::var(STORE).expect("children get a store path"))
}

pub fn env_number(name: &str) -> u32 {
    std::env::var(name).expect("children get their parameters").parse().expect("a number")
}

/// Starts this test binary running only `test`, as a child with `role`.
pub fn spawn_child(test: &str, role: &str, store: &Path, index: u32, count: u32) -> Child {
    child_command(test, role, store, index, count).spawn().expect("the test binary can start itself")
}

/// The command [`spawn_child`] runs, for a test that adds to it (its own
/// environment variables, say) before spawning it.
pub fn child_command(test: &str, role: &str, store: &Path, index: u32, count: u32) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1", "--quiet"])
        .env(ROLE, role)
        .env(STORE, store)
        .env(INDEX, index.to_string())
        .env(COUNT, count.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Blocks until the parent writes a line to this child's standard input
/// (see [`tell_child`]).
pub fn wait_for_parent() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

/// Lets a child blocked in [`wait_for_parent`] go on.
pub fn tell_child(child: &mut Child) {
    child.stdin.as_mut().expect("a child started with a piped stdin").write_all(b"go\n").unwrap();
}
