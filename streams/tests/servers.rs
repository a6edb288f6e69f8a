//! The server as a client sees it, over real sockets on loopback: two
//! server processes on one store folder serve the same streams; faults
//! (a client gone mid-append, a body over the limit, a server killed
//! mid-append) leave acknowledged appends whole and nothing half-written.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, TEXT, parse, read_all, request};

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
    // Above the default connection limit (512), which a test below holds.
    let server = Server::start(dir.path(), &["--max-connections", "1100"]);
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
