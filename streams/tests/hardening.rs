//! The server against a hostile or careless client, over real sockets on
//! loopback: forks never show more than their source held, JSON offsets
//! fall between messages, one request's work is bounded, slow clients are
//! cut off, the connection count is capped with a clear refusal, caller
//! mistakes are 4xx without engine internals, and what an operator needs
//! (logs, health, metrics, opt-in CORS) is there.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Response, Server, TEXT, read_all, request};

const BYTES: (&str, &str) = ("Content-Type", "application/octet-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn offset(position: u64) -> String {
    format!("0000000000000000_{position:016}")
}

fn fork(port: u16, path: &str, source: &str, at: u64, sub: u64) -> Response {
    let (at, sub) = (offset(at), sub.to_string());
    let headers =
        [("Stream-Forked-From", source), ("Stream-Fork-Offset", at.as_str()), ("Stream-Fork-Sub-Offset", &sub)];
    request(port, "PUT", path, &headers, b"")
}

fn body_text(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

#[test]
fn a_fork_of_a_fork_never_copies_bytes_past_the_middle_forks_offset() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port;
    assert_eq!(request(port, "PUT", "/f/a", &[BYTES], b"ABC").status, 201);
    assert_eq!(request(port, "POST", "/f/a", &[BYTES], b"DEF").status, 204);
    // b holds a only up to offset 4 ("ABCD"), then its own "xyz".
    let b = request(port, "PUT", "/f/b", &[("Stream-Forked-From", "/f/a"), ("Stream-Fork-Offset", &offset(4))], b"");
    assert_eq!(b.status, 201);
    assert_eq!(request(port, "POST", "/f/b", &[BYTES], b"xyz").status, 204);
    assert_eq!(read_all(port, "/f/b").body, b"ABCDxyz");
    // The append at 3 is "DEF" in a, but only "D" of it is b's.
    let past = fork(port, "/f/c", "/f/b", 3, 3);
    assert_eq!(past.status, 400, "{}", body_text(&past));
    assert_eq!(request(port, "GET", "/f/c?offset=-1", &[], b"").status, 404, "nothing was created");
    assert_eq!(fork(port, "/f/c", "/f/b", 3, 1).status, 201);
    assert_eq!(read_all(port, "/f/c").body, b"ABCD");
}

#[test]
fn a_json_message_left_out_of_a_fork_is_never_readable_through_a_fork_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port;
    assert_eq!(request(port, "PUT", "/j/a", &[JSON], br#"["ok","SECRET"]"#).status, 201);
    // "ok" is 4 bytes: b forks a between the two messages.
    let b = request(port, "PUT", "/j/b", &[("Stream-Forked-From", "/j/a"), ("Stream-Fork-Offset", &offset(4))], b"");
    assert_eq!(b.status, 201);
    assert_eq!(read_all(port, "/j/b").body, br#"["ok"]"#);
    assert_eq!(fork(port, "/j/c", "/j/b", 0, 2).status, 400);
    assert_eq!(fork(port, "/j/c", "/j/b", 0, 1).status, 201);
    let c = read_all(port, "/j/c");
    assert_eq!(c.body, br#"["ok"]"#);
    assert!(!body_text(&c).contains("SECRET"));
}

#[test]
fn a_json_offset_inside_a_message_is_refused_for_reads_and_forks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port;
    assert_eq!(request(port, "PUT", "/j/s", &[JSON], br#"[{"a":"xxxxxxxx"},{"b":2}]"#).status, 201);
    let inside = request(port, "GET", &format!("/j/s?offset={}", offset(5)), &[], b"");
    assert_eq!(inside.status, 400, "{}", body_text(&inside));
    let between = request(port, "GET", &format!("/j/s?offset={}", offset(16)), &[], b"");
    assert_eq!((between.status, between.body.as_slice()), (200, &br#"[{"b":2}]"#[..]));
    let forked =
        request(port, "PUT", "/j/f", &[("Stream-Forked-From", "/j/s"), ("Stream-Fork-Offset", &offset(5))], b"");
    assert_eq!(forked.status, 400);
    assert_eq!(request(port, "HEAD", "/j/f", &[], b"").status, 404, "no fork was made");
    // A byte stream has no messages: any offset up to the tail reads.
    assert_eq!(request(port, "PUT", "/b/s", &[BYTES], b"0123456789").status, 201);
    assert_eq!(request(port, "GET", &format!("/b/s?offset={}", offset(5)), &[], b"").body, b"56789");
}

#[test]
fn an_append_of_more_json_messages_than_the_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-messages-per-append", "100"]);
    let port = server.port;
    let array = |n: usize| format!("[{}]", vec!["1"; n].join(","));
    assert_eq!(request(port, "PUT", "/j/many", &[JSON], array(101).as_bytes()).status, 413);
    assert_eq!(request(port, "PUT", "/j/many", &[JSON], b"").status, 201);
    let refused = request(port, "POST", "/j/many", &[JSON], array(101).as_bytes());
    assert_eq!(refused.status, 413);
    assert!(body_text(&refused).contains("limit is 100"), "{}", body_text(&refused));
    assert_eq!(read_all(port, "/j/many").body, b"[]", "nothing of it was written");
    assert_eq!(request(port, "POST", "/j/many", &[JSON], array(100).as_bytes()).status, 204);
    assert_eq!(read_all(port, "/j/many").body, array(100).as_bytes());
}

#[test]
fn a_client_sending_its_headers_slowly_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--header-timeout", "1"]);
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /s/x?offset=-1 HT").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let _ = slow.write_all(b"T");
    let mut rest = Vec::new();
    let ended = slow.read_to_end(&mut rest).map(|_| ()).or_else(|e| match e.kind() {
        std::io::ErrorKind::ConnectionReset => Ok(()),
        _ => Err(e),
    });
    assert!(ended.is_ok(), "the server closed the connection rather than wait: {ended:?}");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "closed after the header timeout, not the test's read timeout");
    assert_eq!(request(server.port, "PUT", "/s/x", &[TEXT], b"fine").status, 201, "others are served");
}

#[test]
fn a_client_sending_its_body_slowly_is_answered_408_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--body-timeout", "1"]);
    assert_eq!(request(server.port, "PUT", "/s/slow", &[TEXT], b"kept").status, 201);
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    slow.write_all(b"POST /s/slow HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    assert_eq!(common::parse(&raw, false).status, 408);
    assert_eq!(read_all(server.port, "/s/slow").body, b"kept");
}

#[test]
fn connections_over_the_limit_are_refused_with_503_and_served_again_once_others_close() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-connections", "4"]);
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            stream.write_all(b"GET /s HT").unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = request(server.port, "PUT", "/s/over", &[TEXT], b"x");
    assert_eq!(refused.status, 503);
    assert!(refused.header("retry-after").is_some());
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(request(server.port, "PUT", "/s/over", &[TEXT], b"x").status, 201);
}

#[test]
fn a_fork_chain_is_bounded_at_creation_and_its_deepest_fork_reads_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--durability", "relaxed"]);
    let port = server.port;
    assert_eq!(request(port, "PUT", "/c/0", &[BYTES], b"root;").status, 201);
    let mut expected = b"root;".to_vec();
    for depth in 1..=400 {
        let made =
            request(port, "PUT", &format!("/c/{depth}"), &[("Stream-Forked-From", &format!("/c/{}", depth - 1))], b"");
        assert_eq!(made.status, 201, "depth {depth}: {}", body_text(&made));
        if depth % 100 == 0 {
            let piece = format!("{depth};");
            assert_eq!(request(port, "POST", &format!("/c/{depth}"), &[BYTES], piece.as_bytes()).status, 204);
            expected.extend_from_slice(piece.as_bytes());
        }
    }
    let too_deep = request(port, "PUT", "/c/401", &[("Stream-Forked-From", "/c/400")], b"");
    assert_eq!(too_deep.status, 400);
    assert!(body_text(&too_deep).contains("400 deep"), "{}", body_text(&too_deep));
    assert_eq!(read_all(port, "/c/400").body, expected);
}

/// No response body names the engine or its files.
fn assert_no_internals(response: &Response) {
    let body = body_text(response).to_lowercase();
    for word in ["lmdb", "mdb", "heed", "engine", "panicked"] {
        assert!(!body.contains(word), "the body names {word:?}: {body}");
    }
}

#[test]
fn caller_mistakes_are_answered_4xx_without_engine_internals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port;
    let long_path = format!("/s/{}", "p".repeat(600));
    let too_long = request(port, "PUT", &long_path, &[TEXT], b"x");
    assert_eq!(too_long.status, 414);
    assert_no_internals(&too_long);
    let at_limit = format!("/{}", "p".repeat(399));
    assert_eq!(request(port, "PUT", &at_limit, &[TEXT], b"x").status, 201, "400 bytes is within the limit");

    assert_eq!(request(port, "PUT", "/s/p", &[TEXT], b"").status, 201);
    let id = "i".repeat(600);
    let producer = [TEXT, ("Producer-Id", id.as_str()), ("Producer-Epoch", "0"), ("Producer-Seq", "0")];
    let long_id = request(port, "POST", "/s/p", &producer, b"x");
    assert_eq!(long_id.status, 400);
    assert!(body_text(&long_id).contains("256"), "{}", body_text(&long_id));
    assert_no_internals(&long_id);

    let before_1970 = request(port, "PUT", "/s/old", &[TEXT, ("Stream-Expires-At", "1969-12-31T00:00:00Z")], b"");
    assert_eq!(before_1970.status, 400);
    let huge_headers = request(port, "GET", "/s/p", &[("X-Padding", &"h".repeat(70_000))], b"");
    assert_eq!(huge_headers.status, 431);

    let epoch = [TEXT, ("Producer-Id", "w"), ("Producer-Epoch", "9007199254740992"), ("Producer-Seq", "0")];
    let big_epoch = request(port, "POST", "/s/p", &epoch, b"x");
    assert_eq!(big_epoch.status, 400);
    assert!(body_text(&big_epoch).contains("2^53-1"), "{}", body_text(&big_epoch));

    let bare = request(port, "PUT", "/s/f", &[("Stream-Forked-From", "p")], b"");
    assert_eq!(bare.status, 400);
    assert!(body_text(&bare).contains("Stream-Forked-From"), "{}", body_text(&bare));
    let missing = request(port, "PUT", "/s/f", &[("Stream-Forked-From", "/s/none")], b"");
    assert_eq!(missing.status, 404);
    assert!(body_text(&missing).contains("/s/none"), "names the source: {}", body_text(&missing));
}

#[test]
fn smaller_answers_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-message-size", "1024"]);
    let port = server.port;
    assert_eq!(request(port, "PUT", "/s/t", &[TEXT], b"").status, 201);
    let over = request(port, "POST", "/s/t", &[TEXT], &[b'x'; 2000]);
    assert_eq!(over.status, 413);
    assert!(body_text(&over).contains("exceeds the limit of 1024"), "{}", body_text(&over));
    let latin1 = request(port, "POST", "/s/t", &[TEXT], b"caf\xe9");
    assert_eq!(latin1.status, 400, "a text stream takes UTF-8 only");
    assert_eq!(read_all(port, "/s/t").body, b"");

    // A closed stream answers a long-poll at its tail at once.
    assert_eq!(request(port, "PUT", "/s/closed", &[TEXT, ("Stream-Closed", "true")], b"").status, 201);
    let (tail, max) = (offset(0), u64::MAX.to_string());
    let poll = request(port, "GET", &format!("/s/closed?offset={tail}&live=long-poll&cursor={max}"), &[], b"");
    let cursor: u128 = poll.header("stream-cursor").unwrap().parse().unwrap();
    assert!(cursor > u128::from(u64::MAX), "the next cursor is greater than the one echoed");

    assert_eq!(request(port, "PUT", "/s/src", &[TEXT], b"x").status, 201);
    assert_eq!(request(port, "PUT", "/s/fork", &[("Stream-Forked-From", "/s/src")], b"").status, 201);
    assert_eq!(request(port, "DELETE", "/s/src", &[], b"").status, 204);
    let held = request(port, "PUT", "/s/src", &[TEXT], b"");
    assert_eq!(held.status, 409);
    assert!(body_text(&held).contains("forks"), "{}", body_text(&held));
}

#[test]
fn an_offset_of_a_deleted_stream_is_gone_for_the_stream_made_again_at_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port;
    let next = |response: &Response| response.header("stream-next-offset").unwrap().to_owned();
    assert_eq!(request(port, "PUT", "/o/s", &[TEXT], b"hello ").status, 201);
    let old = next(&request(port, "POST", "/o/s", &[TEXT], b"world"));
    assert_eq!(request(port, "DELETE", "/o/s", &[], b"").status, 204);
    assert_eq!(request(port, "PUT", "/o/s", &[TEXT], b"a longer stream made again").status, 201);
    let stale = request(port, "GET", &format!("/o/s?offset={old}"), &[], b"");
    assert_eq!(stale.status, 410, "resumed in the middle of another stream: {}", body_text(&stale));
    assert!(body_text(&stale).contains("-1"), "says how to start again: {}", body_text(&stale));
    let poll = request(port, "GET", &format!("/o/s?offset={old}&live=long-poll"), &[], b"");
    assert_eq!(poll.status, 410);
    let fork = request(port, "PUT", "/o/f", &[("Stream-Forked-From", "/o/s"), ("Stream-Fork-Offset", &old)], b"");
    assert_eq!(fork.status, 410);

    // Another stream's offset is no offset of this one.
    let other = next(&request(port, "PUT", "/o/other", &[TEXT], b"x"));
    assert_eq!(request(port, "GET", &format!("/o/s?offset={other}"), &[], b"").status, 400);

    // A source's offset is a fork's too, up to the fork point, and a
    // fork's offsets sort in the order of their positions.
    let source = next(&request(port, "PUT", "/o/src", &[TEXT], b"abc"));
    assert_eq!(request(port, "POST", "/o/src", &[TEXT], b"def").status, 204);
    let fork = request(port, "PUT", "/o/f", &[("Stream-Forked-From", "/o/src"), ("Stream-Fork-Offset", &source)], b"");
    assert_eq!(fork.status, 201);
    let tail = next(&request(port, "POST", "/o/f", &[TEXT], b"XYZ"));
    let from_source = request(port, "GET", &format!("/o/f?offset={source}"), &[], b"");
    assert_eq!((from_source.status, from_source.body.as_slice()), (200, &b"XYZ"[..]));
    assert_eq!(next(&from_source), tail);
    assert!(source < tail, "{source} sorts before {tail}");
    assert_eq!(request(port, "GET", &format!("/o/src?offset={tail}"), &[], b"").status, 400, "not the source's");
    // The zero offset names no stream: it is every stream's beginning.
    let zero = request(port, "GET", &format!("/o/s?offset={}", offset(0)), &[], b"");
    assert_eq!((zero.status, zero.body.as_slice()), (200, &b"a longer stream made again"[..]));
}

#[test]
fn a_full_store_answers_507_and_a_delete_still_frees_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-store-size", "4194304"]);
    let port = server.port;
    let block = vec![b'x'; 256 << 10];
    assert_eq!(request(port, "PUT", "/full/a", &[BYTES], b"").status, 201);
    let mut appended = 0;
    let full = loop {
        let response = request(port, "POST", "/full/a", &[BYTES], &block);
        if response.status != 204 || appended > 64 {
            break response;
        }
        appended += 1;
    };
    assert_eq!(full.status, 507, "after {appended} appends of 256 KiB: {}", body_text(&full));
    assert_no_internals(&full);
    assert!(appended >= 4, "the store took {appended} appends before it was full");
    assert_eq!(request(port, "DELETE", "/full/a", &[], b"").status, 204, "a delete works on a full store");
    assert_eq!(request(port, "PUT", "/full/b", &[BYTES], b"").status, 201);
    for n in 0..appended.min(4) {
        assert_eq!(request(port, "POST", "/full/b", &[BYTES], &block).status, 204, "append {n} after the delete");
    }
}

#[test]
fn cors_is_off_unless_an_origin_is_named_and_reads_are_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let closed = Server::start(dir.path(), &[]);
    let origin = ("Origin", "https://evil.example");
    let made = request(closed.port, "PUT", "/s/page", &[("Content-Type", "text/html"), origin], b"<script>1</script>");
    assert_eq!(made.status, 201);
    assert_eq!(made.header("access-control-allow-origin"), None);
    let read = request(closed.port, "GET", "/s/page?offset=-1", &[origin], b"");
    assert_eq!(read.header("access-control-allow-origin"), None);
    assert_eq!(read.header("x-content-type-options"), Some("nosniff"));
    assert!(read.header("content-security-policy").is_some_and(|csp| csp.contains("sandbox")));

    let open = Server::start(dir.path(), &["--cors-origin", "https://app.example"]);
    let allowed = request(open.port, "GET", "/s/page?offset=-1", &[("Origin", "https://app.example")], b"");
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://app.example"));
    let other = request(open.port, "GET", "/s/page?offset=-1", &[origin], b"");
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn every_request_is_logged_and_health_and_metrics_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port;
    assert_eq!(request(port, "PUT", "/s/m", &[TEXT], b"").status, 201);
    assert_eq!(request(port, "POST", "/s/m", &[TEXT], b"12345").status, 204);
    assert_eq!(request(port, "GET", "/healthz", &[], b"").status, 200);
    let metrics = body_text(&request(port, "GET", "/metrics", &[], b""));
    assert!(metrics.contains("skyshelve_streams_appends_total"), "{metrics}");
    let appended = metrics.lines().find(|l| l.starts_with("skyshelve_streams_appended_bytes_total")).unwrap();
    assert!(appended.ends_with(" 5"), "{appended}");
    assert!(metrics.contains(&format!("process_id=\"{}\"", server.pid())));
    std::thread::sleep(Duration::from_millis(200));
    let lines = server.log_lines("/s/m");
    assert_eq!(lines.len(), 2, "one line per request: {lines:?}");
    let pid = format!("pid={}", server.pid());
    assert!(lines.iter().all(|l| l.contains(&pid) && l.contains("status=")), "{lines:?}");
    assert!(lines[0].contains("PUT") && lines[0].contains("status=201"), "{lines:?}");

    let json = Server::start(dir.path(), &["--log-format", "json"]);
    assert_eq!(request(json.port, "HEAD", "/s/m", &[], b"").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let lines = json.log_lines("/s/m");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON log line");
    assert_eq!(line["fields"]["status"], 200);
}

/// What the differential test against the Node reference server found in
/// ours, each answered now as the reference does.
#[test]
fn a_request_wrong_in_two_ways_is_told_the_first_thing_a_client_can_act_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port;
    assert_eq!(request(port, "GET", "/s/missing?offset=abc", &[], b"").status, 404, "missing before malformed");

    let gap = |content_type: &str| {
        let producer =
            [("Content-Type", content_type), ("Producer-Id", "p"), ("Producer-Epoch", "0"), ("Producer-Seq", "5")];
        request(port, "POST", "/s/two", &producer, b"x")
    };
    assert_eq!(request(port, "PUT", "/s/two", &[TEXT], b"").status, 201);
    let wrong_type = gap("application/json");
    assert_eq!(wrong_type.status, 409);
    assert_eq!(wrong_type.header("producer-expected-seq"), None, "the content type is what is wrong first");
    assert_eq!(request(port, "POST", "/s/two", &[TEXT, ("Stream-Closed", "true")], b"").status, 204);
    let closed = gap("text/plain");
    assert_eq!((closed.status, closed.header("stream-closed")), (409, Some("true")), "closed before the gap");

    assert_eq!(request(port, "PUT", "/j/two", &[JSON], b"").status, 201);
    assert_eq!(request(port, "POST", "/j/two", &[JSON, ("Stream-Seq", "5")], b"1").status, 204);
    let invalid_and_behind = request(port, "POST", "/j/two", &[JSON, ("Stream-Seq", "4")], b"{");
    assert_eq!(invalid_and_behind.status, 409, "the Stream-Seq regression before the body");
}
