//! Watching commits: a handle that waits until a commit that may concern
//! it is made by any thread of any process that has the store open. The
//! mechanism (a shared-memory file and a futex) is the engine's; see
//! `engine/notify.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::engine::Notifier;

/// Waits for commits to a store, made by any thread of any process.
///
/// Made by [`Store::watch`](crate::Store::watch) (every commit) or
/// [`Persistent::watch`](crate::Persistent::watch) (commits that wrote
/// records of one model). The promise: a commit made after the watch was
/// created is never missed. Several commits may end one wait, and a wait
/// may end for a commit that did not concern the watch (a model's commits
/// share a counter with a few others); so after each wait, read from your
/// own position (a cursor, the last key seen), as in the example.
///
/// Create the watch *before* the first read: a commit between that read
/// and the first wait then still ends the wait.
///
/// A watch does not keep the store open: it waits on the store's
/// notification file, and goes on seeing the commits of other processes
/// after this process has dropped its last `Store`. Creating one fails
/// (`Error::Io`) only where that file cannot be made: a folder this
/// process may not write.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use skyshelve::{Persistent, Store};
/// #[derive(Persistent, Serialize, Deserialize)]
/// # #[persistent(name = "doc_watch_line")]
/// struct Line { #[persistent(key, sequence)] id: u64, text: String }
///
/// let store = Store::temporary()?;
/// let mut watch = Line::watch(&store)?;
/// let writer = {
///     let store = store.clone();
///     std::thread::spawn(move || Line { id: 0, text: "hello".into() }.append(&store))
/// };
/// let mut seen = 0;
/// while seen == 0 {
///     seen = Line::query().range(seen + 1..).fetch(&store)?.records.len() as u64;
///     if seen == 0 {
///         watch.wait();
///     }
/// }
/// writer.join().unwrap()?;
/// # Ok::<(), skyshelve::Error>(())
/// ```
pub struct Watch {
    notifier: Arc<Notifier>,
    /// The model topic watched; `None` for every commit.
    topic: Option<usize>,
    /// The topic's counter as this watch last saw it.
    seen: u32,
}

impl Watch {
    pub(crate) fn new(notifier: Arc<Notifier>, topic: Option<usize>) -> Watch {
        notifier.register();
        let seen = notifier.position(topic);
        Watch { notifier, topic, seen }
    }

    /// Blocks until a commit made since the watch was created or since the
    /// last wait ended.
    pub fn wait(&mut self) {
        while !self.wait_timeout(Duration::from_secs(3600)) {}
    }

    /// As [`wait`](Watch::wait), for at most `timeout`; returns whether a
    /// commit ended the wait.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        match self.notifier.wait_past(self.topic, self.seen, deadline) {
            Some(position) => {
                self.seen = position;
                true
            }
            None => false,
        }
    }

    /// Whether a commit was made since the watch was created or since the
    /// last wait ended, without waiting; a `true` counts as a wait.
    pub fn has_changed(&mut self) -> bool {
        let position = self.notifier.position(self.topic);
        let changed = position != self.seen;
        self.seen = position;
        changed
    }

    /// The async form of [`wait`](Watch::wait): a future that completes at
    /// the next commit. It needs no particular runtime: one thread per
    /// store and process sleeps on the futex for every async watcher and
    /// wakes their tasks.
    ///
    /// ```
    /// # let store = skyshelve::Store::temporary()?;
    /// let mut watch = store.watch()?;
    /// store.write(|tx| tx.next_sequence("ticks").map(drop))?;
    /// // Any executor will do; this one is the simplest there is.
    /// let waker = std::task::Waker::noop();
    /// let mut changed = std::pin::pin!(watch.changed());
    /// assert!(changed.as_mut().poll(&mut std::task::Context::from_waker(&waker)).is_ready());
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn changed(&mut self) -> Changed<'_> {
        Changed { watch: self, id: None }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.notifier.unregister();
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("topic", &self.topic).field("seen", &self.seen).finish_non_exhaustive()
    }
}

/// The future of [`Watch::changed`]. Dropped before it completes (a
/// timed-out long-poll), it takes its waker out of the store's list.
#[must_use = "futures do nothing unless awaited"]
pub struct Changed<'w> {
    watch: &'w mut Watch,
    /// Its entry among the store's wakers, once polled.
    id: Option<u64>,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Register first, then look: a commit after the look wakes the
        // waker, a commit before it is seen by the look.
        this.id = Some(register_waker(&this.watch.notifier, this.id, cx.waker()));
        if this.watch.has_changed() { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            crate::sync::lock(&self.watch.notifier.wakers).waiting.retain(|(entry, _)| *entry != id);
        }
    }
}

impl std::fmt::Debug for Changed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changed").field("watch", &self.watch).finish()
    }
}

/// Puts `waker` among the store's async waiters under `id` (a new number
/// when `None`), starting the thread that waits on the futex for them if
/// none runs; returns the number.
fn register_waker(notifier: &Arc<Notifier>, id: Option<u64>, waker: &std::task::Waker) -> u64 {
    let mut wakers = crate::sync::lock(&notifier.wakers);
    let id = id.unwrap_or_else(|| {
        wakers.next_id += 1;
        wakers.next_id
    });
    match wakers.waiting.iter_mut().find(|(entry, _)| *entry == id) {
        Some((_, registered)) if registered.will_wake(waker) => {}
        Some((_, registered)) => registered.clone_from(waker),
        None => wakers.waiting.push((id, waker.clone())),
    }
    if !wakers.helper_running {
        wakers.helper_running = true;
        let seen = notifier.position(None);
        let notifier = Arc::clone(notifier);
        let spawned =
            std::thread::Builder::new().name("skyshelve-watch".into()).spawn(move || wake_on_commits(&notifier, seen));
        if spawned.is_err() {
            // No thread: wake at once, so the task polls again (and tries again).
            wakers.helper_running = false;
            wakers.waiting.drain(..).for_each(|(_, waker)| waker.wake());
        }
    }
    id
}

/// The helper thread: wakes every registered task at each commit; ends
/// after a few idle seconds with nobody registered.
fn wake_on_commits(notifier: &Notifier, mut seen: u32) {
    const IDLE_ROUNDS: u32 = 50;
    let mut idle = 0;
    loop {
        let now = notifier.wait_commit(seen, Duration::from_millis(100));
        let mut wakers = crate::sync::lock(&notifier.wakers);
        if now != seen {
            seen = now;
            wakers.waiting.drain(..).for_each(|(_, waker)| waker.wake());
        }
        if wakers.waiting.is_empty() {
            idle += 1;
            if idle >= IDLE_ROUNDS {
                wakers.helper_running = false;
                return;
            }
        } else {
            idle = 0;
        }
    }
}

impl crate::Store {
    /// A handle that waits for the next commit to this store by any thread
    /// of any process (see [`Watch`](crate::Watch)); for one model's
    /// commits, [`Persistent::watch`](crate::Persistent::watch).
    ///
    /// ```
    /// let store = skyshelve::Store::temporary()?;
    /// let mut watch = store.watch()?;
    /// assert!(!watch.has_changed());
    /// store.write(|tx| tx.next_sequence("ticks").map(drop))?;
    /// assert!(watch.wait_timeout(std::time::Duration::from_secs(5)));
    /// # Ok::<(), skyshelve::Error>(())
    /// ```
    pub fn watch(&self) -> crate::Result<crate::Watch> {
        Ok(crate::Watch::new(self.shared().engine.notifier()?, None))
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Waker};

    #[test]
    fn a_changed_future_dropped_before_a_commit_takes_its_waker_out() {
        let store = crate::Store::temporary().unwrap();
        let mut watch = store.watch().unwrap();
        let notifier = std::sync::Arc::clone(&watch.notifier);
        for _ in 0..1000 {
            let mut changed = std::pin::pin!(watch.changed());
            assert!(changed.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
            assert!(changed.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        }
        assert_eq!(crate::sync::lock(&notifier.wakers).waiting.len(), 0, "no waker outlives its future");
        let mut changed = std::pin::pin!(watch.changed());
        assert!(changed.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(crate::sync::lock(&notifier.wakers).waiting.len(), 1, "a pending future keeps one");
    }
}
