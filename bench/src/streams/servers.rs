//! The servers measured, each started as its own process on loopback with
//! a fresh data folder: skyshelve-streams (this repository), and the two
//! anchors — the Node reference server `@durable-streams/server` in its
//! file-backed mode (installed with npm) and the Rust
//! `durable-streams-server` crate in its `acid` (redb) mode (installed with
//! cargo) — under `target/streams-anchors/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::systems::Result;

/// A server implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Skyshelve,
    Node,
    RustCrate,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Skyshelve, Kind::Node, Kind::RustCrate];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Skyshelve => "skyshelve-streams",
            Kind::Node => "Node reference (file)",
            Kind::RustCrate => "durable-streams-server (acid)",
        }
    }
}

/// Server processes serving one data folder; stopped when dropped.
pub struct Running {
    children: Vec<Child>,
    /// One port per process.
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn anchors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/streams-anchors")
}

/// Installs the anchors (npm and cargo; a few minutes the first time).
pub fn install_anchors() -> Result<()> {
    let node = anchors_dir().join("node");
    if !node.join("node_modules/@durable-streams/server").exists() {
        std::fs::create_dir_all(&node)?;
        std::fs::write(node.join("package.json"), r#"{"private":true,"type":"module"}"#)?;
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "@durable-streams/server@0.3.7"])
            .current_dir(&node))?;
    }
    let rust = anchors_dir().join("rust");
    if !rust.join("bin/durable-streams-server").exists() {
        run(Command::new("cargo")
            .args(["install", "--locked", "--version", "0.3.0", "--root"])
            .arg(&rust)
            .arg("durable-streams-server"))?;
    }
    Ok(())
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status()?;
    if status.success() { Ok(()) } else { Err(format!("{command:?} failed: {status}").into()) }
}

/// Starts `processes` processes of `kind` on one fresh folder (more than
/// one only for skyshelve: the anchors are single-process).
pub fn start(kind: Kind, durable: bool, processes: usize) -> Result<Running> {
    let dir = tempfile::Builder::new().prefix("streams-bench-").tempdir()?;
    let data = dir.path().join("data");
    let mut running = Running { children: Vec::new(), ports: Vec::new(), _dir: dir };
    for _ in 0..processes {
        let port = free_port()?;
        let child = spawn(kind, durable, &data, port)?;
        running.children.push(child);
        running.ports.push(port);
        wait_listening(port)?;
    }
    Ok(running)
}

/// Starts one skyshelve-streams process per entry of `nodes`, each with a
/// folder of its own and the entry's arguments after `DIR PORT full`
/// (object-store nodes: `URL writer|reader`), one after the other.
#[cfg(feature = "slatedb")]
pub fn start_nodes(nodes: &[[&str; 2]]) -> Result<Running> {
    let dir = tempfile::Builder::new().prefix("streams-bench-").tempdir()?;
    let mut running = Running { children: Vec::new(), ports: Vec::new(), _dir: dir };
    for (n, [url, role]) in nodes.iter().enumerate() {
        let port = free_port()?;
        let local = running._dir.path().join(format!("node-{n}"));
        let child = Command::new(std::env::current_exe()?)
            .arg("--child-streams-server")
            .arg(&local)
            .args([port.to_string().as_str(), "full", url, role])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        running.children.push(child);
        running.ports.push(port);
        wait_listening(port)?;
    }
    Ok(running)
}

fn spawn(kind: Kind, durable: bool, data: &Path, port: u16) -> Result<Child> {
    let quiet = |command: &mut Command| command.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    Ok(match kind {
        Kind::Skyshelve => quiet(
            Command::new(std::env::current_exe()?)
                .arg("--child-streams-server")
                .arg(data)
                .args([port.to_string().as_str(), if durable { "full" } else { "relaxed" }]),
        )?,
        Kind::Node => {
            let script = format!(
                "import {{ DurableStreamTestServer }} from '@durable-streams/server';\
                 await new DurableStreamTestServer({{ port: {port}, host: '127.0.0.1', dataDir: {data:?}, longPollTimeout: 10000 }}).start();"
            );
            quiet(
                Command::new("node")
                    .args(["--input-type=module", "-e", &script])
                    .current_dir(anchors_dir().join("node")),
            )?
        }
        Kind::RustCrate => quiet(
            Command::new(anchors_dir().join("rust/bin/durable-streams-server"))
                .env("DS_SERVER__BIND_ADDRESS", format!("127.0.0.1:{port}"))
                .env("DS_STORAGE__MODE", "acid")
                .env("DS_STORAGE__DATA_DIR", data)
                .env("DS_LIMITS__MAX_STREAM_BYTES", "1073741824")
                .env("DS_LIMITS__MAX_MEMORY_BYTES", "4294967296")
                .env("DS_TRANSPORT__CONNECTION__LONG_POLL_TIMEOUT_SECS", "10"),
        )?,
    })
}

fn wait_listening(port: u16) -> Result<()> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("no server listening on port {port} after 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The child side of a skyshelve-streams server: serves `dir` on `port`;
/// with `URL writer|reader` after them, a node of the object store at URL
/// with `dir` as its local folder (see `scale.rs`).
pub fn serve_child(args: &[String]) -> Result<()> {
    let (dir, port, durability, node) = match args {
        [dir, port, durability] => (dir, port, durability, None),
        [dir, port, durability, url, role] => (dir, port, durability, Some((url, role == "reader"))),
        _ => return Err("--child-streams-server DIR PORT full|relaxed [URL writer|reader]".into()),
    };
    let durability =
        if durability == "full" { skyshelve::Durability::Full } else { skyshelve::Durability::MayLoseLastCommits };
    let limits = skyshelve_streams::Limits::default();
    let streams = match node {
        None => skyshelve_streams::Streams::open(Path::new(dir), durability, limits)?,
        #[cfg(feature = "slatedb")]
        Some((url, read_only)) => super::scale::open_node(url, Path::new(dir), read_only, durability, limits)?,
        #[cfg(not(feature = "slatedb"))]
        Some(_) => return Err("object-store nodes need the feature slatedb".into()),
    };
    let settings =
        skyshelve_streams::http::Settings { long_poll_timeout: Duration::from_secs(10), ..Default::default() };
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>()?));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = skyshelve_streams::http::bind_shared(address)?;
        skyshelve_streams::http::serve(listener, streams, settings).await
    })?;
    Ok(())
}
