//! The remap gate: LMDB must not remap its memory map while a transaction
//! of this process is open, so every transaction (and every call that reads
//! the map) passes the gate, and a remap closes it first.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Lets transactions in, or holds them back while the map is remapped.
///
/// Entering and leaving are one atomic add each while no remap is pending.
/// Closing raises `closing`, then waits for the open transactions to end;
/// new ones step back out and wait meanwhile, so a stream of short readers
/// cannot starve a remap. A thread that already has a transaction open
/// passes even while the gate closes: making it wait would deadlock it
/// against itself.
#[derive(Default)]
pub(super) struct Gate {
    open_transactions: AtomicUsize,
    closing: AtomicBool,
    /// Held by the thread remapping, so that remaps run one at a time.
    remapping: Mutex<()>,
    /// Pairs with `changed` for the (rare) waits.
    waiting: Mutex<()>,
    changed: Condvar,
}

thread_local! {
    /// Per gate (by address), how many transactions this thread has open.
    static DEPTH: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// How long a waiter sleeps before looking again, in case a wake-up is missed.
const RECHECK: Duration = Duration::from_millis(10);

impl Gate {
    fn id(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    pub(super) fn depth_here(&self) -> usize {
        DEPTH.with(|depth| depth.borrow().iter().find(|(id, _)| *id == self.id()).map_or(0, |(_, n)| *n))
    }

    fn add_depth_here(&self, delta: isize) {
        DEPTH.with(|depth| {
            let mut depth = depth.borrow_mut();
            match depth.iter_mut().find(|(id, _)| *id == self.id()) {
                Some((_, n)) => *n = n.saturating_add_signed(delta),
                None => depth.push((self.id(), delta.max(0).unsigned_abs())),
            }
            depth.retain(|(_, n)| *n > 0);
        });
    }

    fn lock_waiting(&self) -> MutexGuard<'_, ()> {
        crate::sync::lock(&self.waiting)
    }

    /// Lets one transaction in, waiting while a remap is pending (unless
    /// this thread is already inside).
    pub(super) fn enter(&self) -> GatePass<'_> {
        let nested = self.depth_here() > 0;
        loop {
            self.open_transactions.fetch_add(1, Ordering::SeqCst);
            if nested || !self.closing.load(Ordering::SeqCst) {
                break;
            }
            self.leave();
            let mut waiting = self.lock_waiting();
            while self.closing.load(Ordering::SeqCst) {
                waiting = crate::sync::wait_timeout(&self.changed, waiting, RECHECK).0;
            }
        }
        self.add_depth_here(1);
        GatePass { gate: self }
    }

    fn leave(&self) {
        let before = self.open_transactions.fetch_sub(1, Ordering::SeqCst);
        if before == 1 && self.closing.load(Ordering::SeqCst) {
            let _waiting = self.lock_waiting();
            self.changed.notify_all();
        }
    }

    /// Closes the gate once every open transaction has ended, waiting at
    /// most `wait`; it reopens when the returned value is dropped.
    pub(super) fn close(&self, wait: Duration) -> Result<GateClosed<'_>> {
        let start = Instant::now();
        let timeout =
            || Error::ResizeTimeout { waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX) };
        if self.depth_here() > 0 {
            // This thread's own transaction would never end while it waits.
            return Err(Error::OwnTransactionOpen);
        }
        let remapping = crate::sync::lock(&self.remapping);
        self.closing.store(true, Ordering::SeqCst);
        let mut waiting = self.lock_waiting();
        while self.open_transactions.load(Ordering::SeqCst) > 0 {
            let Some(left) = wait.checked_sub(start.elapsed()) else {
                drop(waiting);
                self.reopen();
                return Err(timeout());
            };
            waiting = crate::sync::wait_timeout(&self.changed, waiting, left.min(RECHECK)).0;
        }
        drop(waiting);
        Ok(GateClosed { gate: self, _remapping: remapping, waited: start.elapsed() })
    }

    fn reopen(&self) {
        self.closing.store(false, Ordering::SeqCst);
        let _waiting = self.lock_waiting();
        self.changed.notify_all();
    }
}

/// One transaction's passage through the gate.
pub(super) struct GatePass<'g> {
    gate: &'g Gate,
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.gate.add_depth_here(-1);
        self.gate.leave();
    }
}

/// The gate closed for a remap; reopens on drop.
pub(super) struct GateClosed<'g> {
    gate: &'g Gate,
    _remapping: MutexGuard<'g, ()>,
    /// How long closing waited for open transactions.
    waited: Duration,
}

impl GateClosed<'_> {
    /// How long closing the gate waited for this process's transactions.
    pub(super) fn waited(&self) -> Duration {
        self.waited
    }
}

impl Drop for GateClosed<'_> {
    fn drop(&mut self) {
        self.gate.reopen();
    }
}
