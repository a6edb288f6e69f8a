//! An S3 server that a test starts, kills and starts again on one port,
//! keeping what it was sent in a state folder across restarts:
//! `.ci/s3-server.sh serve` (moto from PyPI), named by
//! `SKYSHELVE_TEST_S3_SERVER`. Used by `tests/slatedb.rs` and by
//! `streams/tests/objects.rs`.
#![allow(dead_code)] // Each test file uses its own part of this.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The variable that names `.ci/s3-server.sh` (CI sets it).
pub const S3_SERVER: &str = "SKYSHELVE_TEST_S3_SERVER";

/// The script that runs the server, or `None` (said on standard error)
/// where the environment names none: the test then has nothing to run.
pub fn script() -> Option<PathBuf> {
    let script = std::env::var_os(S3_SERVER).map(PathBuf::from);
    if script.is_none() {
        eprintln!("needs {S3_SERVER}, the path of .ci/s3-server.sh (CI sets it)");
    }
    script
}

/// A server process, killed when dropped.
pub struct S3Server {
    process: Child,
}

impl S3Server {
    /// Starts the server on `port` with `bucket`, its state in `state`,
    /// and waits until it takes requests.
    pub fn start(script: &Path, port: u16, bucket: &str, state: &Path) -> S3Server {
        let mut process = Command::new(script)
            .args(["serve", "--port", &port.to_string(), "--bucket", bucket, "--state"])
            .arg(state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the S3 server starts");
        let stdout = std::io::BufReader::new(process.stdout.take().unwrap());
        let ready = stdout.lines().map_while(Result::ok).any(|line| line == "ready");
        assert!(ready, "the S3 server ended before it was ready");
        S3Server { process }
    }

    /// Kills the server at once, as a crash or a power cut would.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The environment of a process that talks to the server on `port`.
pub fn client_env(port: u16) -> [(&'static str, String); 5] {
    [
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ]
}
