//! What the server tests share: a server process on a port it picks,
//! and a small HTTP/1.1 client over plain sockets (so that a test can also
//! send what no well-behaved client would).
#![allow(dead_code)] // Each test file uses its own part of this.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    /// Every line the server wrote to standard error so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on a port the system picks, and waits until it
    /// listens. A port picked here and handed over could be picked by a
    /// parallel test too, and servers share ports (`SO_REUSEPORT`): the
    /// two tests would then talk to each other's servers.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(Server::command(dir, extra))
    }

    /// The command `start` runs: `serve --dir DIR` on a free port, then
    /// `extra`.
    pub fn command(dir: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skyshelve-streams"));
        command.args(["serve", "--dir"]).arg(dir).args(["--port", "0", "--long-poll-timeout", "10"]).args(extra);
        command
    }

    /// Starts the protocol's Node reference server (file-backed, from
    /// `conformance/node_modules`, which `conformance/run.sh` installs)
    /// with its data in `dir`.
    pub fn reference(dir: &Path) -> Server {
        let conformance = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
        assert!(
            conformance.join("node_modules/@durable-streams/server").exists(),
            "the Node reference server is not installed: run `npm install` in {}",
            conformance.display()
        );
        let mut command = Command::new("node");
        command.arg("reference-server.mjs").arg(dir).current_dir(conformance);
        Server::spawn(command)
    }

    /// Starts `command`, which prints "… http://HOST:PORT" on standard
    /// error once it listens.
    pub fn spawn(command: Command) -> Server {
        match Server::try_spawn(command) {
            Ok(server) => server,
            Err(code) => panic!("the server ended with {code:?} before it listened (see its messages)"),
        }
    }

    /// `spawn`, or the exit code of a server that ended before it listened.
    pub fn try_spawn(mut command: Command) -> Result<Server, Option<i32>> {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("the server starts");
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let (listening, port) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        std::thread::spawn(move || pass_on_messages(stderr, listening, &kept));
        // Made before the wait, so that a server that never listens is
        // killed when the test fails.
        let mut server = Server { child, port: 0, log };
        server.port = match port.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(RecvTimeoutError::Timeout) => panic!("the server did not listen within 20 s"),
            Err(RecvTimeoutError::Disconnected) => return Err(server.child.wait().unwrap().code()),
        };
        Ok(server)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's exit code once it ends by itself within `limit`
    /// (`None`: still running, or ended by a signal).
    pub fn exit_code_within(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Passes the server's messages on to the test's output (a failing test
/// shows them), sending the port of its "serving … on http://HOST:PORT"
/// line to `listening`, and keeps reading until the server ends, so that
/// it never blocks on a full pipe.
fn pass_on_messages(stderr: impl BufRead, listening: Sender<u16>, log: &Mutex<Vec<String>>) {
    for line in stderr.lines().map_while(Result::ok) {
        let port = line.rsplit_once("http://").and_then(|(_, address)| address.rsplit_once(':'));
        if let Some(port) = port.and_then(|(_, port)| port.trim().parse().ok()) {
            let _ = listening.send(port);
        }
        eprintln!("server: {line}");
        log.lock().unwrap().push(line);
    }
}

impl Server {
    /// The id of the server's process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log lines so far that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|line| line.contains(needle)).cloned().collect()
    }
}

/// A response: status, headers (lower-case names), body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse(&raw, method == "HEAD")
}

pub fn parse(raw: &[u8], head_only: bool) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Response { status, headers, body }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[end + 2..end + 2 + size]);
        rest = &rest[end + 2 + size + 2..];
    }
    body
}

pub const TEXT: (&str, &str) = ("Content-Type", "text/plain");

pub fn read_all(port: u16, path: &str) -> Response {
    request(port, "GET", &format!("{path}?offset=-1"), &[], b"")
}
