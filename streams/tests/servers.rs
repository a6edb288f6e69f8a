//! The server as a client sees it, over real sockets on loopback: two
//! server processes on one store folder serve the same streams; faults
//! (a client gone mid-append, a body over the limit, a server killed
//! mid-append) leave acknowledged appends whole and nothing half-written.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts a server on a port the system picks, and waits until it
    /// listens. A port picked here and handed over could be picked by a
    /// parallel test too, and servers share ports (`SO_REUSEPORT`): the
    /// two tests would then talk to each other's servers.
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skyshelve-streams"))
            .args(["serve", "--dir"])
            .arg(dir)
            .args(["--port", "0", "--long-poll-timeout", "10"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let (listening, port) = std::sync::mpsc::channel();
        std::thread::spawn(move || pass_on_messages(stderr, listening));
        // Made before the wait, so that a server that never listens is
        // killed when the test fails.
        let mut server = Server { child, port: 0 };
        server.port = match port.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(RecvTimeoutError::Timeout) => panic!("the server did not listen within 20 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("the server ended before it listened (see its messages)"),
        };
        server
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
fn pass_on_messages(stderr: impl BufRead, listening: Sender<u16>) {
    for line in stderr.lines().map_while(Result::ok) {
        let port = line.rsplit_once("http://").and_then(|(_, address)| address.rsplit_once(':'));
        if let Some(port) = port.and_then(|(_, port)| port.trim().parse().ok()) {
            let _ = listening.send(port);
        }
        eprintln!("server: {line}");
    }
}

/// A response: status, headers (lower-case names), body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
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

fn parse(raw: &[u8], head_only: bool) -> Response {
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

const TEXT: (&str, &str) = ("Content-Type", "text/plain");

fn read_all(port: u16, path: &str) -> Response {
    request(port, "GET", &format!("{path}?offset=-1"), &[], b"")
}

#[test]
fn an_append_through_one_process_wakes_a_long_poll_held_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Server::start(dir.path(), &[]), Server::start(dir.path(), &[]));
    let created = request(a.port, "PUT", "/s/live", &[TEXT], b"first ");
    assert_eq!(created.status, 201);
    let tail = created.header("stream-next-offset").unwrap().to_owned();
    let port_b = b.port;
    let poll = std::thread::spawn(move || {
        let started = Instant::now();
        let response = request(port_b, "GET", &format!("/s/live?offset={tail}&live=long-poll"), &[], b"");
        (response, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let appended_at = Instant::now();
    assert_eq!(request(a.port, "POST", "/s/live", &[TEXT], b"second").status, 204);
    let (response, waited) = poll.join().unwrap();
    assert_eq!(response.status, 200, "woken with data, not timed out");
    assert_eq!(response.body, b"second");
    assert!(waited < Duration::from_secs(10), "the poll ended before its timeout");
    eprintln!("long-poll in another process answered {:?} after the append", appended_at.elapsed());
    assert_eq!(read_all(b.port, "/s/live").body, b"first second");
}

#[test]
fn producer_fencing_and_stream_seq_hold_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Server::start(dir.path(), &[]), Server::start(dir.path(), &[]));
    assert_eq!(request(a.port, "PUT", "/s/p", &[TEXT], b"").status, 201);
    let produce = |port: u16, epoch: &str, seq: &str, body: &[u8]| {
        let headers = [TEXT, ("Producer-Id", "writer"), ("Producer-Epoch", epoch), ("Producer-Seq", seq)];
        request(port, "POST", "/s/p", &headers, body)
    };
    assert_eq!(produce(a.port, "0", "0", b"a").status, 200);
    assert_eq!(produce(b.port, "0", "0", b"a").status, 204, "a retry through the other process is a duplicate");
    assert_eq!(produce(b.port, "0", "1", b"b").status, 200);
    let gap = produce(a.port, "0", "3", b"d");
    assert_eq!((gap.status, gap.header("producer-expected-seq")), (409, Some("2")));
    assert_eq!(produce(a.port, "1", "0", b"c").status, 200, "a new epoch through the first process");
    let zombie = produce(b.port, "0", "2", b"z");
    assert_eq!((zombie.status, zombie.header("producer-epoch")), (403, Some("1")));
    assert_eq!(read_all(a.port, "/s/p").body, b"abc");

    assert_eq!(request(a.port, "POST", "/s/p", &[TEXT, ("Stream-Seq", "002")], b"x").status, 204);
    assert_eq!(request(b.port, "POST", "/s/p", &[TEXT, ("Stream-Seq", "001")], b"y").status, 409);
    assert_eq!(request(b.port, "POST", "/s/p", &[TEXT, ("Stream-Seq", "003")], b"z").status, 204);
    assert_eq!(read_all(b.port, "/s/p").body, b"abcxz");
}

#[test]
fn an_expired_stream_is_gone_from_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Server::start(dir.path(), &[]), Server::start(dir.path(), &[]));
    assert_eq!(request(a.port, "PUT", "/s/ttl", &[TEXT, ("Stream-TTL", "1")], b"x").status, 201);
    assert_eq!(request(b.port, "HEAD", "/s/ttl", &[], b"").status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(request(b.port, "HEAD", "/s/ttl", &[], b"").status, 404);
    assert_eq!(request(a.port, "GET", "/s/ttl", &[], b"").status, 404);
}

#[test]
fn a_body_over_the_limit_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-message-size", "1024"]);
    assert_eq!(request(server.port, "PUT", "/s/limit", &[TEXT], b"ok").status, 201);
    assert_eq!(request(server.port, "POST", "/s/limit", &[TEXT], &[b'x'; 1025]).status, 413);
    assert_eq!(request(server.port, "POST", "/s/limit", &[TEXT], &[b'y'; 1024]).status, 204);
    assert_eq!(read_all(server.port, "/s/limit").body.len(), 2 + 1024);
}

/// Starts an append of `total` declared bytes and sends only `sent`.
fn partial_append(port: u16, path: &str, total: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![b'!'; sent]).unwrap();
    stream
}

#[test]
fn a_client_gone_mid_append_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(request(server.port, "PUT", "/s/half", &[TEXT], b"kept").status, 201);
    drop(partial_append(server.port, "/s/half", 100_000, 50_000));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(request(server.port, "POST", "/s/half", &[TEXT], b"+next").status, 204);
    assert_eq!(read_all(server.port, "/s/half").body, b"kept+next");
}

#[test]
fn a_server_killed_mid_append_leaves_the_other_serving_every_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, b) = (Server::start(dir.path(), &[]), Server::start(dir.path(), &[]));
    assert_eq!(request(a.port, "PUT", "/s/kill", &[TEXT], b"").status, 201);
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let piece = format!("<{n}>");
        assert_eq!(request(a.port, "POST", "/s/kill", &[TEXT], piece.as_bytes()).status, 204);
        acknowledged.extend_from_slice(piece.as_bytes());
    }
    let _half = partial_append(a.port, "/s/kill", 1_000_000, 400_000);
    std::thread::sleep(Duration::from_millis(100));
    a.kill();
    let after = read_all(b.port, "/s/kill");
    assert_eq!(after.status, 200);
    assert_eq!(after.body, acknowledged, "every acknowledged append, and nothing of the cut one");
    assert_eq!(request(b.port, "POST", "/s/kill", &[TEXT], b"<after>").status, 204);
}

#[test]
fn sse_in_one_process_follows_appends_made_through_another() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Server::start(dir.path(), &[]), Server::start(dir.path(), &[]));
    assert_eq!(request(a.port, "PUT", "/s/sse", &[TEXT], b"one").status, 201);
    let mut stream = TcpStream::connect(("127.0.0.1", b.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"GET /s/sse?offset=-1&live=sse HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    let read_until = |stream: &mut TcpStream, seen: &mut Vec<u8>, buffer: &mut [u8], needle: &str| {
        while !String::from_utf8_lossy(seen).contains(needle) {
            let n = stream.read(buffer).expect("SSE events arrive");
            assert!(n > 0, "the SSE response ended early");
            seen.extend_from_slice(&buffer[..n]);
        }
    };
    read_until(&mut stream, &mut seen, &mut buffer, "data:one");
    assert_eq!(request(a.port, "POST", "/s/sse", &[TEXT], b"two").status, 204);
    read_until(&mut stream, &mut seen, &mut buffer, "data:two");
}

/// A thousand idle long-polls held at once: the server still answers
/// other requests, and one append wakes every one of them with its data.
#[test]
fn a_thousand_idle_long_polls_are_all_woken_by_one_append() {
    const POLLS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let created = request(server.port, "PUT", "/s/many", &[TEXT], b"");
    let tail = created.header("stream-next-offset").unwrap().to_owned();
    let mut polls: Vec<TcpStream> = (0..POLLS)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            let get =
                format!("GET /s/many?offset={tail}&live=long-poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(get.as_bytes()).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(request(server.port, "HEAD", "/s/many", &[], b"").status, 200, "still answering");
    assert_eq!(request(server.port, "POST", "/s/many", &[TEXT], b"wake").status, 204);
    for stream in &mut polls {
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let response = parse(&raw, false);
        assert_eq!((response.status, response.body.as_slice()), (200, &b"wake"[..]));
    }
}
