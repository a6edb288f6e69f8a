//! Streams on object storage (`serve --store`), as a deployment sees them:
//! a writer node and reader nodes, each a real server process with its own
//! local folder, on one object store — a local object folder (`file://`),
//! or an S3 server on loopback for the test that stops the object store
//! (`SKYSHELVE_TEST_S3_SERVER`, which CI sets). Faults are real: processes
//! killed with SIGKILL, a second writer fencing the first.

mod common;
#[path = "../../tests/common/s3_server.rs"]
mod s3_server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Response, Server, TEXT, read_all, request};
use s3_server::S3Server;

/// The exit status of a node that stepped down (`main.rs`).
const STEPPED_DOWN: i32 = 3;

/// An object store in a local folder, and a local folder for each node
/// started on it; all removed when the test ends.
struct Objects {
    store: tempfile::TempDir,
    folders: std::cell::RefCell<Vec<tempfile::TempDir>>,
}

impl Objects {
    fn new() -> Objects {
        Objects { store: tempfile::tempdir().unwrap(), folders: std::cell::RefCell::default() }
    }

    fn url(&self) -> String {
        format!("file://{}", self.store.path().display())
    }

    /// A fresh local folder for a node.
    fn folder(&self) -> PathBuf {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().to_owned();
        self.folders.borrow_mut().push(folder);
        path
    }

    /// The command that starts a node (a writer, unless `extra` says
    /// `--read-only`) in a folder of its own.
    fn command(&self, extra: &[&str]) -> std::process::Command {
        let url = self.url();
        let mut args = vec!["--store", url.as_str()];
        args.extend_from_slice(extra);
        Server::command(&self.folder(), &args)
    }

    fn node(&self, extra: &[&str]) -> Server {
        Server::spawn(self.command(extra))
    }

    /// A reader node following `writer`, looking for its commits every
    /// `poll_ms` milliseconds, forwarding writes to it.
    fn reader(&self, writer: &Server, poll_ms: u64, extra: &[&str]) -> Server {
        let writer_url = format!("http://127.0.0.1:{}", writer.port);
        let poll = poll_ms.to_string();
        let mut args = vec!["--read-only", "--writer", &writer_url, "--poll-interval-ms", &poll];
        args.extend_from_slice(extra);
        self.node(&args)
    }
}

fn next_offset(response: &Response) -> String {
    response.header("stream-next-offset").expect("a Stream-Next-Offset").to_owned()
}

/// Reads `path` on `port` until the body is `expected` (a replica follows
/// within a few polls), failing after 20 s.
fn read_until(port: u16, path: &str, expected: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = read_all(port, path).body;
        if body == expected {
            return;
        }
        assert!(Instant::now() < deadline, "still {:?}, not {:?}", String::from_utf8_lossy(&body), expected);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reader_node_serves_the_writers_streams_and_forwards_writes_to_it() {
    let objects = Objects::new();
    let writer = objects.node(&[]);
    let reader = objects.reader(&writer, 20, &[]);

    // Every write through the reader: the writer's answer comes back.
    let created = request(reader.port, "PUT", "/s/chat", &[TEXT], b"hello ");
    assert_eq!(created.status, 201);
    let location = format!("http://127.0.0.1:{}/s/chat", reader.port);
    assert_eq!(created.header("location"), Some(location.as_str()), "the node the client asked");
    let created_at = next_offset(&created);
    let produced = [TEXT, ("Producer-Id", "p"), ("Producer-Epoch", "0"), ("Producer-Seq", "0")];
    let appended = request(reader.port, "POST", "/s/chat", &produced, &[0xff, b'w', b'o', b'r', b'l', b'd']);
    assert_eq!(appended.status, 400, "the writer's refusal of bytes that are not UTF-8 in text/plain");
    let appended = request(reader.port, "POST", "/s/chat", &produced, b"world");
    assert_eq!((appended.status, appended.header("producer-seq")), (200, Some("0")), "the writer's own headers");
    assert_eq!(request(reader.port, "POST", "/s/chat", &produced, b"world").status, 204, "a duplicate, through it too");
    let refused = request(reader.port, "POST", "/s/chat", &[("Content-Type", "application/json")], b"[]");
    assert_eq!(refused.status, 409, "the writer's conflict");
    assert_eq!(read_all(writer.port, "/s/chat").body, b"hello world", "written by the writer");

    // The writer's offset, read on the reader: answered once the replica holds it.
    let at = next_offset(&appended);
    let read = request(reader.port, "GET", &format!("/s/chat?offset={created_at}"), &[], b"");
    assert_eq!((read.status, read.body.as_slice()), (200, &b"world"[..]));
    assert_eq!(next_offset(&read), at);
    assert_eq!(read.header("stream-up-to-date"), Some("true"));
    let head = request(reader.port, "HEAD", "/s/chat", &[], b"");
    assert_eq!((head.status, next_offset(&head)), (200, at));
    assert_eq!(read_all(reader.port, "/s/chat").body, b"hello world");
    assert_eq!(read_all(reader.port, "/s/missing").status, 404);

    assert_eq!(request(reader.port, "DELETE", "/s/chat", &[], b"").status, 204);
    assert_eq!(read_all(writer.port, "/s/chat").status, 404, "deleted at the writer");
}

#[test]
fn a_reader_answers_503_while_its_writer_is_unreachable_and_holds_bodies_to_its_limits() {
    let objects = Objects::new();
    let mut writer = objects.node(&[]);
    assert_eq!(request(writer.port, "PUT", "/s/a", &[TEXT], b"x").status, 201);
    let reader = objects.reader(&writer, 20, &["--max-message-size", "8"]);
    let too_large = request(reader.port, "POST", "/s/a", &[TEXT], b"0123456789");
    assert_eq!(too_large.status, 413, "refused before it is sent on");
    writer.kill();
    let unreachable = request(reader.port, "POST", "/s/a", &[TEXT], b"y");
    assert_eq!((unreachable.status, unreachable.header("retry-after")), (503, Some("1")));
    assert_eq!(read_all(reader.port, "/s/a").body, b"x", "reads go on");
}

#[test]
fn a_reader_whose_writer_url_names_a_reader_refuses_writes_instead_of_looping() {
    let objects = Objects::new();
    let writer = objects.node(&[]);
    assert_eq!(request(writer.port, "PUT", "/s/a", &[TEXT], b"x").status, 201);
    let reader = objects.reader(&writer, 20, &[]);
    // A reader told that the first reader is its writer.
    let misled = objects.reader(&reader, 20, &[]);
    assert_eq!(request(misled.port, "POST", "/s/a", &[TEXT], b"y").status, 508);
    assert_eq!(read_all(writer.port, "/s/a").body, b"x", "nothing was written");
}

#[test]
fn a_node_given_a_store_url_or_writer_url_it_cannot_use_refuses_to_start_and_says_why() {
    let objects = Objects::new();
    let local = objects.folder();
    let starts = |args: &[&str]| {
        let mut command = Server::command(&local, args);
        command.stdout(std::process::Stdio::null());
        let output = command.output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    for url in ["not a url", "ftp://host/bucket", "s3://"] {
        let (code, said) = starts(&["--store", url]);
        assert_eq!(code, Some(1), "{url}: {said}");
        assert!(!said.contains("panicked"), "{url}: {said}");
    }
    let store = objects.url();
    for writer in ["ftp://writer:4437", "http://writer:4437/path", "not a url", "https://writer"] {
        let (code, said) = starts(&["--store", &store, "--read-only", "--writer", writer]);
        assert_eq!(code, Some(2), "the flag is refused before anything opens: {writer}: {said}");
        assert!(said.contains("--writer"), "{writer}: {said}");
    }
}

#[test]
fn a_reader_without_a_writer_url_refuses_writes() {
    let objects = Objects::new();
    let writer = objects.node(&[]);
    assert_eq!(request(writer.port, "PUT", "/s/a", &[TEXT], b"x").status, 201);
    let reader = objects.node(&["--read-only"]);
    let refused = request(reader.port, "POST", "/s/a", &[TEXT], b"y");
    assert_eq!((refused.status, refused.header("allow")), (405, Some("GET, HEAD, OPTIONS")));
    assert_eq!(read_all(writer.port, "/s/a").body, b"x", "nothing was written");
}

#[test]
fn a_read_at_an_offset_the_replica_has_not_reached_waits_and_is_never_answered_short_of_it() {
    let objects = Objects::new();
    let writer = objects.node(&[]);
    assert_eq!(request(writer.port, "PUT", "/s/log", &[TEXT], b"a").status, 201);
    // Both readers open after the create, so both hold the stream at "a".
    let slow = objects.reader(&writer, 700, &[]);
    let stuck = objects.reader(&writer, 60_000, &["--long-poll-timeout", "0.3"]);
    read_until(slow.port, "/s/log", b"a");
    read_until(stuck.port, "/s/log", b"a");

    let appended = request(writer.port, "POST", "/s/log", &[TEXT], b"b");
    let at = next_offset(&appended);
    // A stream made after the replica's last look, at an offset naming it.
    let made = request(writer.port, "PUT", "/s/new", &[TEXT], b"n");
    let new_at = next_offset(&made);

    // The slow reader looks again within its poll: the read waits for it.
    let read = request(slow.port, "GET", &format!("/s/log?offset={at}"), &[], b"");
    assert_eq!((read.status, next_offset(&read)), (200, at.clone()), "answered at the writer's offset");
    assert_eq!(read.header("stream-up-to-date"), Some("true"));
    let fresh = request(slow.port, "GET", &format!("/s/new?offset={new_at}"), &[], b"");
    assert_eq!(fresh.status, 200, "not 404: the offset proves the stream exists");

    // The stuck reader does not look again before its long-poll timeout:
    // 503 to retry, never an answer short of the offset, nor a 404.
    for path in
        [format!("/s/log?offset={at}"), format!("/s/log?offset={at}&live=long-poll"), format!("/s/new?offset={new_at}")]
    {
        let behind = request(stuck.port, "GET", &path, &[], b"");
        assert_eq!((behind.status, behind.header("retry-after")), (503, Some("1")), "{path}");
        assert_eq!(behind.header("stream-up-to-date"), None, "{path}");
    }
    // Without an offset it serves what it holds.
    assert_eq!(read_all(stuck.port, "/s/log").body, b"a");
}

#[test]
fn a_long_poll_on_a_reader_wakes_when_the_writers_append_reaches_the_replica() {
    let objects = Objects::new();
    let writer = objects.node(&[]);
    let tail = next_offset(&request(writer.port, "PUT", "/s/live", &[TEXT], b"first "));
    let reader = objects.reader(&writer, 20, &[]);
    let port = reader.port;
    let poll =
        std::thread::spawn(move || request(port, "GET", &format!("/s/live?offset={tail}&live=long-poll"), &[], b""));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(request(writer.port, "POST", "/s/live", &[TEXT], b"second").status, 204);
    let woken = poll.join().unwrap();
    assert_eq!((woken.status, woken.body.as_slice()), (200, &b"second"[..]), "woken with the data, not timed out");
}

#[test]
fn a_second_writer_fences_the_first_which_steps_down_without_acknowledging_its_write() {
    let objects = Objects::new();
    // Started at once: whichever opens last fences the other, during its
    // start (it then never listens) or at its first write.
    let (first_node, second_node) = (objects.command(&[]), objects.command(&[]));
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| Server::try_spawn(first_node));
        let second = s.spawn(|| Server::try_spawn(second_node));
        (first.join().unwrap(), second.join().unwrap())
    });
    let mut nodes = match (first, second) {
        (Ok(first), Ok(second)) => [first, second],
        (Ok(node), Err(code)) | (Err(code), Ok(node)) => {
            assert_eq!(code, Some(STEPPED_DOWN), "the writer fenced while it started steps down");
            assert_eq!(request(node.port, "PUT", "/s/one", &[TEXT], b"x").status, 201);
            assert_eq!(read_all(node.port, "/s/one").body, b"x");
            return;
        }
        (Err(a), Err(b)) => panic!("neither writer started: {a:?}, {b:?}"),
    };
    let statuses: Vec<u16> = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| request(node.port, "PUT", &format!("/s/from-{n}"), &[TEXT], b"x").status)
        .collect();
    let won: Vec<usize> = (0..2).filter(|&n| statuses[n] == 201).collect();
    assert_eq!(won.len(), 1, "exactly one writer took the write: {statuses:?}");
    let (winner, loser) = (won[0], 1 - won[0]);
    assert_eq!(statuses[loser], 503, "the fenced writer answers 503, acknowledging nothing");
    assert_eq!(nodes[loser].exit_code_within(Duration::from_secs(20)), Some(STEPPED_DOWN), "it steps down");
    let port = nodes[winner].port;
    assert_eq!(read_all(port, &format!("/s/from-{loser}")).status, 404, "its refused write is nowhere");
    assert_eq!(read_all(port, &format!("/s/from-{winner}")).body, b"x");
    assert_eq!(request(port, "POST", &format!("/s/from-{winner}"), &[TEXT], b"y").status, 204);
    nodes[winner].kill();
}

#[test]
fn a_writer_killed_mid_append_loses_nothing_acknowledged_and_a_new_writer_carries_on() {
    let objects = Objects::new();
    let mut writer = objects.node(&[]);
    assert_eq!(request(writer.port, "PUT", "/s/log", &[TEXT], b"").status, 201);
    let reader = objects.reader(&writer, 20, &[]);

    // Appends of 5 bytes each, from a client that stops at the first failure.
    let port = writer.port;
    let appender = std::thread::spawn(move || {
        let mut acknowledged = 0_u32;
        loop {
            let record = format!("{acknowledged:04};");
            let answered =
                std::panic::catch_unwind(|| request(port, "POST", "/s/log", &[TEXT], record.as_bytes()).status);
            if answered.ok() != Some(204) {
                return acknowledged;
            }
            acknowledged += 1;
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    writer.kill();
    let acknowledged = appender.join().unwrap();
    assert!(acknowledged > 0, "some appends were acknowledged before the kill");

    let next = objects.node(&[]);
    let body = read_all(next.port, "/s/log").body;
    assert_eq!(body.len() % 5, 0, "no append is half there: {:?}", String::from_utf8_lossy(&body));
    let records: Vec<String> = body.chunks(5).map(|r| String::from_utf8_lossy(r).into_owned()).collect();
    let expected: Vec<String> = (0..records.len()).map(|n| format!("{n:04};")).collect();
    assert_eq!(records, expected, "whole records, in order");
    assert!(records.len() >= acknowledged as usize, "{} acknowledged, {} kept", acknowledged, records.len());
    assert!(records.len() <= acknowledged as usize + 1, "at most the one unanswered append is there too");

    // The reader carries on, and follows the new writer.
    let appended = request(next.port, "POST", "/s/log", &[TEXT], b"next;");
    assert_eq!(appended.status, 204);
    let at = next_offset(&appended);
    let caught_up = request(reader.port, "GET", &format!("/s/log?offset={at}"), &[], b"");
    assert_eq!((caught_up.status, next_offset(&caught_up)), (200, at));
    let mut expected_body = body;
    expected_body.extend_from_slice(b"next;");
    read_until(reader.port, "/s/log", &expected_body);
}

#[test]
fn a_reader_killed_goes_unnoticed_by_the_writer_and_the_other_readers() {
    let objects = Objects::new();
    let writer = objects.node(&[]);
    assert_eq!(request(writer.port, "PUT", "/s/log", &[TEXT], b"a").status, 201);
    let mut one = objects.reader(&writer, 20, &[]);
    let two = objects.reader(&writer, 20, &[]);
    read_until(one.port, "/s/log", b"a");
    one.kill();
    assert_eq!(request(writer.port, "POST", "/s/log", &[TEXT], b"b").status, 204);
    read_until(two.port, "/s/log", b"ab");
    assert_eq!(read_all(writer.port, "/s/log").body, b"ab");
}

/// The bucket of the S3 server the outage test starts.
const BUCKET: &str = "streams-restarts";

/// A node on the S3 server at `port`.
fn s3_node(port: u16, local: &Path, extra: &[&str]) -> Server {
    let url = format!("s3://{BUCKET}/streams");
    let mut args = vec!["--store", url.as_str()];
    args.extend_from_slice(extra);
    let mut command = Server::command(local, &args);
    command.envs(s3_server::client_env(port));
    Server::spawn(command)
}

#[test]
fn the_object_store_stopped_fails_writes_with_503_and_once_back_a_restarted_writer_has_every_acknowledged_append() {
    let Some(script) = s3_server::script() else { return };
    let (state, writer_dir, reader_dir, next_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let port = s3_server::free_port();
    let mut s3 = S3Server::start(&script, port, BUCKET, state.path());
    let mut writer = s3_node(port, writer_dir.path(), &[]);
    assert_eq!(request(writer.port, "PUT", "/s/log", &[TEXT], b"").status, 201);
    let writer_url = format!("http://127.0.0.1:{}", writer.port);
    let reader =
        s3_node(port, reader_dir.path(), &["--read-only", "--writer", &writer_url, "--poll-interval-ms", "50"]);
    let mut acknowledged = Vec::new();
    for n in 0..10 {
        let record = format!("{n:04};");
        assert_eq!(request(writer.port, "POST", "/s/log", &[TEXT], record.as_bytes()).status, 204);
        acknowledged.extend_from_slice(record.as_bytes());
    }
    read_until(reader.port, "/s/log", &acknowledged);

    s3.kill();
    let refused = request(writer.port, "POST", "/s/log", &[TEXT], b"lost;");
    assert_eq!((refused.status, refused.header("retry-after")), (503, Some("1")), "a typed refusal, not a 500");
    assert_eq!(
        writer.exit_code_within(Duration::from_secs(60)),
        Some(STEPPED_DOWN),
        "its handle is done: it steps down"
    );
    assert_eq!(read_all(reader.port, "/s/log").body, acknowledged, "the reader serves what it holds meanwhile");

    let _s3 = S3Server::start(&script, port, BUCKET, state.path());
    // What a supervisor does: start the writer again.
    let next = s3_node(port, next_dir.path(), &[]);
    assert_eq!(read_all(next.port, "/s/log").body, acknowledged, "every acknowledged append, nothing else");
    let appended = request(next.port, "POST", "/s/log", &[TEXT], b"back;");
    assert_eq!(appended.status, 204);
    let at = next_offset(&appended);
    let followed = request(reader.port, "GET", &format!("/s/log?offset={at}"), &[], b"");
    assert_eq!((followed.status, next_offset(&followed)), (200, at), "the reader follows the new writer");
}
