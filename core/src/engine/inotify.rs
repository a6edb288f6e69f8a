//! A file or folder watched for changes by a thread asleep on inotify, so
//! that a check made on every commit costs one atomic load instead of a
//! system call: the thread raises a flag at the first change that
//! concerns the store, and the callers check the file itself from then
//! on. The kernel queues the event as the change is made and the thread
//! wakes within microseconds; a commit within that moment is not covered.
//! Where inotify cannot be had (its limits reached, another system), the
//! flag counts as always raised.
//!
//! The watch starts only after `CHECKS_BEFORE_WATCHING` checks: until
//! then every check is made on the file itself. A process that holds an
//! inotify watch takes one kernel grace period longer to close it or to
//! exit (about 16 ms, measured: the watch's marks are freed after one).
//! Opening a store and exiting took 28.6 ms against raw LMDB's 1.2 ms, and
//! a short-lived process (a CLI command, a child doing a few thousand
//! writes) paid that at every run. A check on the file costs a system call
//! or two (about 1 µs), so the watch starts once the checks made without
//! it would have cost about as much as its close.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// How many checks are made on the file itself before the watch starts.
const CHECKS_BEFORE_WATCHING: u32 = 16_384;

/// Which changes raise the flag.
#[derive(Debug, Clone, Copy)]
pub(super) enum Changes {
    /// A folder deleted or moved, or its entry of this name deleted,
    /// moved away or replaced.
    FolderOrEntry(&'static str),
    /// A file written through its descriptor (a mapped file's truncation
    /// or growth: writes through a mapping raise no event), its mode
    /// changed, deleted or moved.
    File,
}

/// A watch, ended when dropped.
pub(super) struct Watched {
    path: PathBuf,
    changes: Changes,
    /// Checks made before the watch started.
    checks: AtomicU32,
    /// Set once the watch is started: the flag the thread raises, or
    /// `None` when no thread could be had (always suspect).
    changed: OnceLock<Option<Arc<AtomicBool>>>,
    stop: Arc<AtomicBool>,
}

impl Watched {
    pub(super) fn start(path: &Path, changes: Changes) -> Watched {
        let stop = Arc::new(AtomicBool::new(false));
        Watched { path: path.to_owned(), changes, checks: AtomicU32::new(0), changed: OnceLock::new(), stop }
    }

    /// Whether a change may have been made since the watch started (or,
    /// before it starts, always: the caller checks the file itself).
    #[inline]
    pub(super) fn suspect(&self) -> bool {
        match self.changed.get() {
            Some(changed) => changed.as_ref().is_none_or(|changed| changed.load(Ordering::Relaxed)),
            None => {
                self.start_when_due();
                true
            }
        }
    }

    /// Starts the watch once enough checks were made without it. The
    /// caller then checks the file after the watch is in place, so no
    /// change falls between the last check made on the file and the first
    /// event.
    #[cold]
    fn start_when_due(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) >= CHECKS_BEFORE_WATCHING {
            self.changed.get_or_init(|| thread::start(&self.path, self.changes, Arc::clone(&self.stop)));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(target_os = "linux")]
mod thread {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::Changes;

    /// How often the thread looks whether it should end.
    const POLL_MS: i32 = 500;

    /// Starts the watching thread; `None` where inotify is unavailable.
    pub(super) fn start(path: &Path, changes: Changes, stop: Arc<AtomicBool>) -> Option<Arc<AtomicBool>> {
        // SAFETY: inotify_init1 takes flags only; a non-negative result is
        // a descriptor we now own.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a fresh descriptor no one else holds.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mask = match changes {
            Changes::FolderOrEntry(_) => {
                libc::IN_DELETE_SELF
                    | libc::IN_MOVE_SELF
                    | libc::IN_DELETE
                    | libc::IN_MOVED_FROM
                    | libc::IN_MOVED_TO
                    | libc::IN_ONLYDIR
            }
            Changes::File => libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF,
        };
        // SAFETY: a valid inotify descriptor and a NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
            return None;
        }
        let changed = Arc::new(AtomicBool::new(false));
        let raised = Arc::clone(&changed);
        let spawned = std::thread::Builder::new().name("skyshelve-inotify".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if wait_for_change(&fd, changes) {
                    raised.store(true, Ordering::Relaxed);
                    return;
                }
            }
        });
        spawned.ok().map(|_| changed)
    }

    /// Waits up to `POLL_MS` for events; whether one concerns the store.
    fn wait_for_change(fd: &OwnedFd, changes: Changes) -> bool {
        let mut poll = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, counted as one.
        if unsafe { libc::poll(&raw mut poll, 1, POLL_MS) } <= 0 {
            return false;
        }
        // Aligned for the event headers the kernel writes into it.
        let mut buffer = vec![0u64; 512];
        // SAFETY: reads at most the buffer's length in bytes into it.
        let read = unsafe { libc::read(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len() * 8) };
        let Ok(read) = usize::try_from(read) else { return false };
        // SAFETY: the kernel wrote `read` bytes of whole events into the buffer.
        let bytes = unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), read) };
        events(bytes).any(|(mask, name)| concerns(changes, mask, name))
    }

    /// The (mask, name) of each event in `bytes`.
    fn events(mut bytes: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
        const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
        std::iter::from_fn(move || {
            let header = bytes.get(..HEADER)?;
            let mask = u32::from_ne_bytes(header[4..8].try_into().ok()?);
            let len = usize::try_from(u32::from_ne_bytes(header[12..16].try_into().ok()?)).ok()?;
            let name = bytes.get(HEADER..HEADER + len)?;
            bytes = &bytes[HEADER + len..];
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            Some((mask, &name[..end]))
        })
    }

    fn concerns(changes: Changes, mask: u32, name: &[u8]) -> bool {
        let gone = libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED;
        match changes {
            Changes::FolderOrEntry(entry) => mask & gone != 0 || name == entry.as_bytes(),
            Changes::File => true,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod thread {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::Changes;

    /// No inotify: always suspect.
    pub(super) fn start(_path: &Path, _changes: Changes, _stop: Arc<AtomicBool>) -> Option<Arc<AtomicBool>> {
        None
    }
}
