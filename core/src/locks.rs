//! The low half of record locks: owners, the markers in the `~locks`
//! table, and the back-off of a write that meets a marker. `lock.rs` holds
//! the user's guard, `RecordLock`.
//!
//! A lock is a marker in the `~locks` table: (model, key) → owner. Every
//! write path looks the marker up inside its own write transaction and, if
//! someone else holds it, aborts and waits *outside* the transaction, so
//! nobody ever waits for a record lock while holding the engine's writer lock.
//!
//! An owner is a process (identified by an owner file it holds an OS file
//! lock on for its whole life) plus a guard number. A marker whose owner
//! file is no longer locked belongs to a dead process and is cleared by
//! whoever meets it: locks die with their process. The engine's own files are
//! never locked or opened by this module.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::fs::{create_private_dir, private_file_options};

/// Who holds a record lock: a process's owner file and a guard number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pid: u32,
    nonce: u64,
    guard: u64,
}

const OWNER_LEN: usize = 20;

impl Owner {
    pub fn to_bytes(self) -> [u8; OWNER_LEN] {
        let mut bytes = [0; OWNER_LEN];
        bytes[..4].copy_from_slice(&self.pid.to_be_bytes());
        bytes[4..12].copy_from_slice(&self.nonce.to_be_bytes());
        bytes[12..].copy_from_slice(&self.guard.to_be_bytes());
        bytes
    }

    /// `None` for bytes that are no owner: such a marker is treated as stale.
    pub fn from_bytes(bytes: &[u8]) -> Option<Owner> {
        let bytes: &[u8; OWNER_LEN] = bytes.try_into().ok()?;
        Some(Owner {
            pid: u32::from_be_bytes(bytes[..4].try_into().ok()?),
            nonce: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
            guard: u64::from_be_bytes(bytes[12..].try_into().ok()?),
        })
    }

    fn file_name(pid: u32, nonce: u64) -> String {
        format!("owner-{pid}-{nonce:016x}.lock")
    }
}

/// This process's side of record locking for one store.
pub(crate) struct Locks {
    dir: PathBuf,
    owner: Mutex<OwnerState>,
    next_guard: AtomicU64,
}

/// This process as a lock owner. One mutex keeps the file and the guards
/// in step: the file exists exactly while a guard is live, so a new guard
/// never gets the nonce of a file that is being removed.
#[derive(Default)]
struct OwnerState {
    /// The nonce, and the file whose OS lock says "this process is alive".
    file: Option<(u64, File)>,
    /// Guards of this process not yet released, with the thread that took each.
    live: HashMap<u64, ThreadId>,
}

impl Locks {
    pub fn new(store_dir: &Path) -> Locks {
        Locks { dir: store_dir.join("locks"), owner: Mutex::default(), next_guard: AtomicU64::new(1) }
    }

    /// A new owner identity for a guard of this process.
    pub fn new_owner(&self) -> Result<Owner> {
        let mut state = crate::sync::lock(&self.owner);
        let nonce = match &state.file {
            Some((nonce, _)) => *nonce,
            None => {
                let (nonce, file) = self.create_owner_file()?;
                state.file.insert((nonce, file)).0
            }
        };
        let guard = self.next_guard.fetch_add(1, Ordering::Relaxed);
        state.live.insert(guard, std::thread::current().id());
        Ok(Owner { pid: std::process::id(), nonce, guard })
    }

    /// Forgets a guard of this process; its marker, if still stored, is
    /// stale. The last guard takes the owner file with it. Dropping a guard
    /// twice is impossible, so this runs once per owner.
    pub fn release_owner(&self, owner: Owner) {
        let mut state = crate::sync::lock(&self.owner);
        state.live.remove(&owner.guard);
        if state.live.is_empty()
            && let Some((nonce, file)) = state.file.take()
        {
            let _ = std::fs::remove_file(self.dir.join(Owner::file_name(std::process::id(), nonce)));
            drop(file); // releases the OS lock after the name is gone
        }
    }

    /// Whether the holder of a marker still holds it.
    pub fn is_alive(&self, owner: Owner) -> bool {
        {
            let state = crate::sync::lock(&self.owner);
            let mine = state.file.as_ref().map(|(nonce, _)| *nonce);
            if owner.pid == std::process::id() && Some(owner.nonce) == mine {
                return state.live.contains_key(&owner.guard);
            }
        }
        self.process_alive(owner.pid, owner.nonce)
    }

    /// Whether `owner` is a live guard that thread `caller` took: a write
    /// of its record from that thread would wait for itself.
    pub fn taken_by(&self, owner: Owner, caller: ThreadId) -> bool {
        let state = crate::sync::lock(&self.owner);
        let mine = state.file.as_ref().is_some_and(|(nonce, _)| *nonce == owner.nonce);
        mine && owner.pid == std::process::id() && state.live.get(&owner.guard) == Some(&caller)
    }

    /// A process is alive while it holds the OS lock on its owner file.
    fn process_alive(&self, pid: u32, nonce: u64) -> bool {
        owner_file_alive(&self.dir.join(Owner::file_name(pid, nonce)))
    }

    /// Creates and locks this process's owner file, first removing those
    /// of dead processes. The file is locked under a temporary name and
    /// renamed into place, so that an owner file under its real name is
    /// always locked while its process lives.
    fn create_owner_file(&self) -> Result<(u64, File)> {
        create_private_dir(&self.dir)?;
        self.remove_dead_owner_files();
        let nonce = random_nonce();
        let name = Owner::file_name(std::process::id(), nonce);
        let temporary = self.dir.join(format!(".{name}.new"));
        let file = private_file_options().read(true).write(true).create(true).truncate(false).open(&temporary)?;
        file.lock()?;
        std::fs::rename(&temporary, self.dir.join(name))?;
        Ok((nonce, file))
    }

    /// Removes the owner files of processes that died holding locks.
    fn remove_dead_owner_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let is_owner_file =
                entry.file_name().to_str().is_some_and(|n| n.starts_with("owner-") && n.ends_with(".lock"));
            if is_owner_file {
                owner_file_alive(&entry.path());
            }
        }
    }
}

/// Whether the owner file at `path` is locked by its living process; the
/// file of a dead one is removed.
fn owner_file_alive(path: &Path) -> bool {
    let Ok(file) = File::options().read(true).write(true).open(path) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            // Nobody holds it: the process is gone. Its file can go too.
            let _ = std::fs::remove_file(path);
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        // Cannot tell: assume alive rather than break someone's lock.
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}

/// The marker key of a record: the model's name (key-encoded, so it ends
/// unambiguously) followed by the record's encoded key.
pub(crate) fn marker_key(model: &str, key: &[u8]) -> Vec<u8> {
    let mut marker = crate::codec::key::encode_to_vec(model);
    marker.extend_from_slice(key);
    marker
}

/// How long to wait between looks at a lock that is held.
pub(crate) struct Backoff<'c> {
    deadline: Option<Instant>,
    pause: Duration,
    started: Instant,
    /// Whether the wait was reported as long (once per wait).
    reported: bool,
    /// Whether it slept at all, and where a wait is counted.
    waited: bool,
    counters: &'c crate::engine::Counters,
}

impl Drop for Backoff<'_> {
    fn drop(&mut self) {
        if self.waited {
            self.counters.waited_for_lock(self.started.elapsed());
        }
    }
}

/// A record-lock wait longer than this is reported (`tracing`, debug).
const LONG_WAIT: Duration = Duration::from_millis(100);

impl<'c> Backoff<'c> {
    pub fn until(wait: Option<Duration>, counters: &'c crate::engine::Counters) -> Backoff<'c> {
        let started = Instant::now();
        // A wait too long to be a point in time is no deadline at all.
        let deadline = wait.and_then(|wait| started.checked_add(wait));
        Backoff { deadline, pause: Duration::from_micros(200), started, reported: false, waited: false, counters }
    }

    /// Sleeps before the next try; `false` when the wait is over.
    pub fn wait(&mut self) -> bool {
        let now = Instant::now();
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            tracing::debug!(target: "skyshelve::lock", waited_ms = millis(now - self.started), "record lock wait ran out");
            return false;
        }
        if !self.reported && now - self.started >= LONG_WAIT {
            self.reported = true;
            tracing::debug!(target: "skyshelve::lock", waited_ms = millis(now - self.started), "waiting for a record lock");
        }
        self.waited = true;
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(Duration::from_millis(20));
        true
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn random_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish()
}
