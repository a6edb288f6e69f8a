//! Who may start a write transaction: one thread of one process at a time,
//! and never a thread that already has one open on the same store.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

thread_local! {
    /// The engines (by address) this thread has a write transaction open on.
    static WRITING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Serialises write transactions across the threads of this process (the
/// mutex) and across processes (an OS lock on a file of its own, which the
/// kernel releases when its holder dies), before LMDB's writer mutex is
/// taken. LMDB's mutex is then never waited on by two processes at once:
/// a process killed while waiting on that process-shared robust mutex can
/// swallow the wake-up meant for the next waiter, which then sleeps forever
/// although the mutex is free. A kernel-managed lock has no such window.
pub(super) struct WriterLock {
    path: PathBuf,
    /// Opened at the first write: a store that is only read needs no file.
    file: Mutex<Option<std::fs::File>>,
}

impl WriterLock {
    pub(super) fn new(path: PathBuf) -> WriterLock {
        WriterLock { path, file: Mutex::new(None) }
    }

    pub(super) fn acquire(&self) -> Result<WriterHeld<'_>> {
        let mut slot = crate::sync::lock(&self.file);
        if slot.is_none() {
            let mut options = crate::fs::private_file_options();
            let opened = options.read(true).write(true).create(true).truncate(false).open(&self.path);
            *slot = Some(opened.map_err(|err| {
                let message = format!("cannot open the writer lock file {:?}: {err}", self.path);
                Error::Io(std::io::Error::new(err.kind(), message))
            })?);
        }
        slot.as_ref().map_or(Ok(()), std::fs::File::lock)?;
        Ok(WriterHeld { slot })
    }
}

/// The writer lock, held; released on drop.
pub(super) struct WriterHeld<'l> {
    slot: MutexGuard<'l, Option<std::fs::File>>,
}

impl Drop for WriterHeld<'_> {
    fn drop(&mut self) {
        if let Some(file) = &*self.slot {
            // Unlocking a held lock cannot fail for a valid descriptor.
            let _ = file.unlock();
        }
    }
}

/// Marks this thread as writing to an engine, refusing a second write
/// transaction that LMDB's writer mutex would make wait for itself.
pub(super) struct WritingHere(usize);

impl WritingHere {
    pub(super) fn enter<E>(engine: &E) -> Result<WritingHere> {
        let id = std::ptr::from_ref(engine).addr();
        WRITING.with(|writing| {
            let mut writing = writing.borrow_mut();
            if writing.contains(&id) {
                return Err(Error::NestedWrite);
            }
            writing.push(id);
            Ok(WritingHere(id))
        })
    }
}

impl WritingHere {
    /// Whether this thread has a write transaction open on `engine`.
    #[cfg(feature = "slatedb")]
    pub(super) fn is_open_on<E>(engine: &E) -> bool {
        let id = std::ptr::from_ref(engine).addr();
        WRITING.with(|writing| writing.borrow().contains(&id))
    }
}

impl Drop for WritingHere {
    fn drop(&mut self) {
        WRITING.with(|writing| writing.borrow_mut().retain(|id| *id != self.0));
    }
}
