//! Helpers for tests that re-execute their own binary as child processes:
//! a child prints `@`-prefixed lines, the parent reads them.

use std::io::{BufRead, BufReader, Write};
use std::process::Child;

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
