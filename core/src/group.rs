//! Group commit: concurrent durable writes of one process share one engine
//! commit, and so one pair of fsyncs.
//!
//! Writers queue their closures. One of them becomes the leader: it opens
//! one write transaction, runs the queued closures in it, commits once,
//! puts each writer's own outcome in its slot and wakes them all with one
//! call. A closure that fails is rolled
//! back alone (see `Engine::write_group`). Writers arriving during the
//! commit form the next batch. Each writer returns only after the commit
//! that holds its changes is durable.
//!
//! A leader gathers: when writers were in flight together at the last
//! commit (its batch, and those that queued while it committed), it waits
//! (at most half a commit) until as many have joined, running the
//! closures of those that have while it waits. Without that, writers split
//! into two halves that take turns, each committing while the other
//! queues, and a group holds half of them. A lone writer never waits,
//! whichever thread it runs on: what counts is how many writers were
//! waiting at once, not which threads wrote lately (on a thread pool, one
//! stream of writes hops from thread to thread, and counting threads made
//! each write wait for writers that never came).
//!
//! While it gathers, the leader first polls the queue, yielding its core
//! between looks, and sleeps only once `GATHER_SPIN` has passed. Writers
//! come back within a few hundred microseconds of a commit, and sleeping
//! for each of them cost a wake-up per writer: a system call for the
//! writer, and for the leader a wait for its core, often idle and halted
//! by then. A sleeping leader is woken by the next writer to queue.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::{Engine, GroupJob, GroupJobs};
use crate::error::{Error, Result};

/// The queue of writers waiting for a commit.
#[derive(Default)]
pub(crate) struct Group {
    state: Mutex<State>,
    /// A writer queued while the gathering leader slept.
    joined: Condvar,
    /// How many writers queued since the leader last took the queue: what
    /// a polling leader looks at without taking the lock. Written only
    /// with the lock held.
    newly_queued: AtomicUsize,
    /// Writers waiting for news sleep on `told`, holding `telling` while
    /// they look at their slot: a leader that has put the news of a
    /// commit in its writers' slots takes it and wakes them all at once.
    telling: Mutex<()>,
    told: Condvar,
}

#[derive(Default)]
struct State {
    queue: Vec<Queued>,
    leading: bool,
    /// The gathering leader sleeps on `joined` (it polls otherwise).
    leader_asleep: bool,
    /// How many writers were in flight when the last commit ended: its
    /// batch and those queued meanwhile. A leader expects as many (the
    /// last group's writers are back by then unless they stopped).
    in_flight: usize,
    /// How long the last commit took.
    last_commit: Duration,
}

/// How long a gathering leader polls the queue before it sleeps: longer
/// than writers usually take to come back, short beside a slow disk's
/// commit (the leader never waits past half a commit in any case).
const GATHER_SPIN: Duration = Duration::from_micros(250);

/// A queued job. The pointer erases the job's lifetime: its owner blocks
/// in `Group::run` until its slot holds an outcome, and the leader never
/// touches the job after handing the outcome out.
struct Queued {
    job: JobPtr,
    slot: Arc<Slot>,
}

#[derive(Clone, Copy)]
struct JobPtr(*mut GroupJob<'static>);

impl JobPtr {
    /// The job. A method rather than a field access, so that closures
    /// capture the whole (`Send`) pointer wrapper.
    ///
    /// # Safety
    /// The job's owner must still be waiting for its outcome.
    unsafe fn job<'a>(self) -> &'a mut GroupJob<'static> {
        // SAFETY: the caller guarantees the job is alive and used by this
        // thread alone.
        unsafe { &mut *self.0 }
    }
}

// SAFETY: the job behind the pointer is `Send`, and only one thread (the
// leader) uses it while its owner waits.
unsafe impl Send for JobPtr {}

/// Where the leader puts one queued writer's news. Each writer has its
/// own, and looks at it under a lock that nothing else holds for long
/// (`Group::telling`), so that writers woken together do not queue again
/// for the queue's lock.
#[derive(Default)]
struct Slot {
    news: Mutex<Option<News>>,
}

enum News {
    /// The commit that held the writer's job is done.
    Done(Outcome),
    /// The writer leads the next group: its job is still queued.
    Lead,
}

enum Outcome {
    Committed(Result<()>),
    Panicked(Box<dyn Any + Send>),
}

impl Slot {
    /// Puts `news` for the writer; `Group::wake_writers` then wakes it.
    fn put(&self, news: News) {
        *crate::sync::lock(&self.news) = Some(news);
    }

    fn take(&self) -> Option<News> {
        crate::sync::lock(&self.news).take()
    }
}

impl Outcome {
    fn into_result(self) -> Result<()> {
        match self {
            Outcome::Committed(result) => result,
            Outcome::Panicked(payload) => resume_unwind(payload),
        }
    }
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Waits until a leader has put news in `slot`.
    fn wait_for_news(&self, slot: &Slot) -> News {
        let mut telling = crate::sync::lock(&self.telling);
        loop {
            match slot.take() {
                Some(news) => return news,
                None => telling = crate::sync::wait(&self.told, telling),
            }
        }
    }

    /// Wakes every writer waiting for news, with one call: woken one by
    /// one, the first could take the leader's core before the others
    /// were even woken. Call it after putting the news: a writer looks at
    /// its slot only while holding `telling`.
    fn wake_writers(&self) {
        drop(crate::sync::lock(&self.telling));
        self.told.notify_all();
    }

    /// Runs `job` in the next group commit; returns once that commit is
    /// done, with the commit's result (the job's own result it keeps itself).
    pub fn run(&self, engine: &Engine, job: &mut GroupJob<'_>) -> Result<()> {
        let slot = Arc::new(Slot::default());
        // SAFETY: see `Queued`: this function does not return before the
        // slot holds an outcome, so the job outlives every use of the pointer.
        let job = JobPtr(unsafe { std::mem::transmute::<&mut GroupJob<'_>, *mut GroupJob<'static>>(job) });
        let mut state = self.lock();
        state.queue.push(Queued { job, slot: Arc::clone(&slot) });
        if state.leading {
            self.newly_queued.fetch_add(1, Ordering::Release);
            if state.leader_asleep {
                self.joined.notify_one();
            }
            drop(state);
            if let News::Done(outcome) = self.wait_for_news(&slot) {
                return outcome.into_result();
            }
            // Told to lead: `leading` stayed set for this thread.
            state = self.lock();
        }
        state.leading = true;
        self.lead(engine, state);
        match self.wait_for_news(&slot) {
            News::Done(outcome) => outcome.into_result(),
            News::Lead => unreachable!("a leader's own job is in the batch it leads"),
        }
    }

    /// Commits one batch, holding the lead (`state.leading`): takes the
    /// queue (which holds the leader's own job), commits, hands every
    /// writer its outcome and the lead on.
    fn lead(&self, engine: &Engine, state: MutexGuard<'_, State>) {
        self.lead_with(state, |batch| {
            let result = engine.write_group(batch);
            if batch.members.len() > 1 {
                engine.counters().grouped(batch.members.len());
            }
            result
        });
    }

    /// `lead`, committing with `commit`. Should `commit` panic, the lead
    /// is still handed on and every writer told, before the panic goes on
    /// in the leader's thread: otherwise they would wait forever.
    fn lead_with(&self, mut state: MutexGuard<'_, State>, commit: impl FnOnce(&mut Batch<'_>) -> Result<()>) {
        let now = Instant::now();
        let mut batch = Batch::new(self, state.in_flight, now + state.last_commit / 2);
        batch.take(&mut state);
        drop(state);
        let started = Instant::now();
        let committed = catch_unwind(AssertUnwindSafe(|| commit(&mut batch)));
        let commit_took = batch.gathered_at.unwrap_or(started).elapsed();
        tracing::trace!(target: "skyshelve::group", writers = batch.members.len(), "group commit");
        match committed {
            Ok(result) => self.finish(batch, result, commit_took),
            Err(payload) => {
                self.finish(batch, Err(Error::Storage(LEADER_PANICKED.into())), commit_took);
                resume_unwind(payload)
            }
        }
    }

    /// Ends a leader's commit: tells the writers of `batch` its result,
    /// and hands the lead on.
    fn finish(&self, batch: Batch<'_>, result: Result<()>, commit_took: Duration) {
        // The lead is let go of before the writers wake, so that one back
        // with its next job leads at once rather than waiting to be told.
        let next_leader = self.hand_on(commit_took, batch.members.len());
        batch.hand_out(result);
        if let Some(next) = next_leader {
            next.put(News::Lead);
        }
        self.wake_writers();
    }

    /// Notes how long the commit of `members` writers took and how many
    /// were in flight, and picks the next leader: returns the slot of the
    /// first writer queued since, who is to be told; with none queued,
    /// lets go of the lead for the next writer to queue.
    fn hand_on(&self, commit_took: Duration, members: usize) -> Option<Arc<Slot>> {
        let mut state = self.lock();
        state.last_commit = commit_took;
        state.in_flight = members + state.queue.len();
        let next = state.queue.first().map(|next| Arc::clone(&next.slot));
        if next.is_none() {
            state.leading = false;
        }
        next
    }
}

/// What the writers of a group hear when its leader panicked outside
/// their closures (a bug in skyshelve): the panic may have come before
/// the commit or after it.
const LEADER_PANICKED: &str =
    "the thread leading this group commit panicked (see its panic message); this write may or may not be committed";

/// The writers of one group commit, as the leader takes them.
struct Batch<'g> {
    group: &'g Group,
    members: Vec<Member>,
    /// How many writers the leader expects (see `State::in_flight`),
    /// and how long it waits for them.
    expected: usize,
    deadline: Instant,
    /// When the leader stopped waiting for writers.
    gathered_at: Option<Instant>,
}

/// A writer taken into a batch: its queued job, wrapped so that a panic
/// is kept for its owner rather than unwinding through the leader.
struct Member {
    queued: Queued,
    guarded: Box<GroupJob<'static>>,
    panic: Arc<Mutex<Option<Box<dyn Any + Send>>>>,
}

impl Member {
    fn new(queued: Queued) -> Member {
        let panic = Arc::new(Mutex::new(None));
        let job = queued.job;
        let caught = Arc::clone(&panic);
        let guarded = move |txn: &mut dyn crate::engine::Writer| {
            // SAFETY: see `Queued`: its owner waits for the outcome.
            let job = unsafe { job.job() };
            // A job may run more than once (see `Engine::write_group`): its
            // owner hears of the run whose changes stay.
            *crate::sync::lock(&caught) = None;
            match catch_unwind(AssertUnwindSafe(|| job(txn))) {
                Ok(keep) => keep,
                Err(payload) => {
                    *crate::sync::lock(&caught) = Some(payload);
                    false
                }
            }
        };
        Member { queued, guarded: Box::new(guarded), panic }
    }
}

impl<'g> Batch<'g> {
    /// An empty batch whose leader expects `expected` writers and waits
    /// for them until `deadline`.
    fn new(group: &'g Group, expected: usize, deadline: Instant) -> Batch<'g> {
        Batch { group, members: Vec::new(), expected, deadline, gathered_at: None }
    }

    /// Takes every queued writer into the batch.
    fn take(&mut self, state: &mut State) {
        self.group.newly_queued.store(0, Ordering::Relaxed);
        self.members.extend(state.queue.drain(..).map(Member::new));
    }

    /// Whether the leader still waits for writers: fewer are in the batch
    /// than it expects, and the deadline has not passed. Notes when it
    /// stopped, once it has.
    fn still_gathering(&mut self) -> bool {
        let gathering = self.members.len() < self.expected && Instant::now() < self.deadline;
        if !gathering {
            self.gathered_at.get_or_insert_with(Instant::now);
        }
        gathering
    }

    /// Puts every writer's outcome in its slot: the commit's result, or
    /// its panic (`Group::wake_writers` then wakes them).
    fn hand_out(self, result: Result<()>) {
        for member in self.members {
            let outcome = match member.panic.lock().unwrap_or_else(PoisonError::into_inner).take() {
                Some(payload) => Outcome::Panicked(payload),
                None => Outcome::Committed(result.as_ref().copied().map_err(Error::duplicate)),
            };
            member.queued.slot.put(News::Done(outcome));
        }
    }
}

impl GroupJobs for Batch<'_> {
    fn job(&mut self, index: usize) -> Option<&mut GroupJob<'_>> {
        self.members.get_mut(index).map(|member| &mut *member.guarded as &mut GroupJob<'_>)
    }

    /// Takes the writers queued since; when there are none, first waits
    /// (until the deadline) while fewer writers are in the batch than
    /// the leader expects: polling for `GATHER_SPIN`, then asleep.
    fn take_more(&mut self) -> bool {
        let poll_until = self.deadline.min(Instant::now() + GATHER_SPIN);
        while self.group.newly_queued.load(Ordering::Acquire) == 0 {
            if !self.still_gathering() {
                return false;
            }
            if Instant::now() >= poll_until {
                break;
            }
            // Lets a writer waiting for this core queue its job.
            std::thread::yield_now();
        }
        let mut state = self.group.lock();
        while state.queue.is_empty() {
            if !self.still_gathering() {
                return false;
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            state.leader_asleep = true;
            state = crate::sync::wait_timeout(&self.group.joined, state, left).0;
            state.leader_asleep = false;
        }
        self.take(&mut state);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Reader, Writer, test_engine};

    /// Queues `job` as `Group::run` does, for a batch made by hand.
    fn queued(job: &mut GroupJob<'_>) -> (Queued, Arc<Slot>) {
        let slot = Arc::new(Slot::default());
        // SAFETY: the test keeps every job alive until its outcome is read.
        let job = JobPtr(unsafe { std::mem::transmute::<&mut GroupJob<'_>, *mut GroupJob<'static>>(job) });
        (Queued { job, slot: Arc::clone(&slot) }, slot)
    }

    /// A lone stream of writes hopping from thread to thread (as a pool
    /// hands out work) leaves the next leader expecting no one else, so it
    /// never waits; writers in flight together are expected together.
    #[test]
    fn a_lone_writer_on_many_threads_is_expected_alone() {
        let dir = tempfile::tempdir().unwrap();
        let engine = test_engine(dir.path());
        let table = engine.open_tables(&["t".to_string()]).unwrap()["t"];
        let group = Group::default();
        for n in 0u8..8 {
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    let mut job = |txn: &mut dyn Writer| txn.put(table, &[n], b"1").is_ok();
                    group.run(&engine, &mut job).unwrap();
                });
            });
        }
        assert_eq!(group.lock().in_flight, 1, "eight threads, one at a time: one writer in flight");
        let mut writers: Vec<_> = (0..3).map(|_| |txn: &mut dyn Writer| txn.put(table, b"x", b"1").is_ok()).collect();
        let (queued, _slots): (Vec<_>, Vec<_>) = writers.iter_mut().map(|job| queued(job)).unzip();
        let mut state = group.lock();
        state.leading = true;
        state.queue.extend(queued);
        group.lead_with(state, |batch| engine.write_group(batch));
        assert_eq!(group.lock().in_flight, 3, "three in one batch: three expected next");
    }

    #[test]
    fn a_writer_whose_first_run_panicked_hears_of_the_run_that_stayed() {
        let dir = tempfile::tempdir().unwrap();
        let engine = test_engine(dir.path());
        let table = engine.open_tables(&["t".to_string()]).unwrap()["t"];
        let mut steady = |txn: &mut dyn Writer| txn.put(table, b"a", b"1").is_ok();
        let mut runs = 0;
        let mut flaky = |txn: &mut dyn Writer| {
            runs += 1;
            assert!(runs > 1, "a bug that shows only once");
            txn.put(table, b"b", b"1").is_ok()
        };
        let (first, first_slot) = queued(&mut steady);
        let (second, second_slot) = queued(&mut flaky);
        let group = Group::default();
        let mut batch = Batch::new(&group, 0, Instant::now());
        batch.members = vec![Member::new(first), Member::new(second)];
        let result = engine.write_group(&mut batch);
        batch.hand_out(result);
        for slot in [first_slot, second_slot] {
            let news = crate::sync::lock(&slot.news).take();
            assert!(
                matches!(news, Some(News::Done(Outcome::Committed(Ok(()))))),
                "every writer is told its changes stayed"
            );
        }
        let held =
            engine.read(|txn| Ok::<_, Error>((txn.get(table, b"a")?.is_some(), txn.get(table, b"b")?.is_some())));
        assert_eq!(held.unwrap(), (true, true));
    }

    /// A group whose lead is taken, as by a leader busy committing, with
    /// the engine and table its writers write to.
    struct Busy {
        _dir: tempfile::TempDir,
        engine: Arc<Engine>,
        table: crate::engine::Table,
        group: Arc<Group>,
    }

    impl Busy {
        fn new() -> Busy {
            let dir = tempfile::tempdir().unwrap();
            let engine = Arc::new(test_engine(dir.path()));
            let table = engine.open_tables(&["t".to_string()]).unwrap()["t"];
            let group = Arc::new(Group::default());
            crate::sync::lock(&group.state).leading = true;
            Busy { _dir: dir, engine, table, group }
        }

        /// Writes `key` through the group from a thread of its own, which
        /// sends its outcome to `done`. Not scoped: should the writer never
        /// be woken, the test fails rather than waiting for it.
        fn write(&self, key: &'static [u8], done: std::sync::mpsc::Sender<Result<()>>) {
            let (group, engine, table) = (Arc::clone(&self.group), Arc::clone(&self.engine), self.table);
            std::thread::spawn(move || {
                let mut put = |txn: &mut dyn Writer| txn.put(table, key, b"1").is_ok();
                done.send(group.run(&engine, &mut put)).unwrap();
            });
        }

        fn wait_until_queued(&self, writers: usize) {
            while crate::sync::lock(&self.group.state).queue.len() < writers {
                std::thread::yield_now();
            }
        }

        fn leading(&self) -> bool {
            crate::sync::lock(&self.group.state).leading
        }
    }

    #[test]
    fn a_gathering_leader_asleep_is_woken_by_the_next_writer() {
        let busy = Busy::new();
        let mut batch = Batch::new(&busy.group, 2, Instant::now() + Duration::from_secs(10));
        let (done, finished) = std::sync::mpsc::channel();
        let started = Instant::now();
        let took = std::thread::scope(|scope| {
            scope.spawn(|| {
                // Well past the polling: the leader sleeps by then.
                std::thread::sleep(GATHER_SPIN * 40);
                busy.write(b"late", done);
            });
            batch.take_more()
        });
        assert!(took, "the leader takes the writer that queued");
        assert!(started.elapsed() < Duration::from_secs(5), "woken by the writer, not by its deadline");
        assert_eq!(batch.members.len(), 1);
        assert!(!crate::sync::lock(&busy.group.state).leader_asleep);
        busy.group.finish(batch, Ok(()), Duration::ZERO);
        let told = finished.recv_timeout(Duration::from_secs(10));
        assert!(matches!(told, Ok(Ok(()))), "the writer hears its outcome: {told:?}");
    }

    #[test]
    fn a_gathering_leader_stops_waiting_at_its_deadline() {
        let group = Group::default();
        let wait = Duration::from_millis(20);
        let mut batch = Batch::new(&group, 2, Instant::now() + wait);
        let started = Instant::now();
        assert!(!batch.take_more(), "nobody joined");
        assert!(started.elapsed() >= wait, "it waited for the writer it expected");
        assert!(batch.gathered_at.is_some(), "it noted when it stopped gathering");
    }

    #[test]
    fn writers_queued_during_a_commit_are_led_by_one_of_them() {
        let busy = Busy::new();
        let (done, finished) = std::sync::mpsc::channel();
        busy.write(b"first", done.clone());
        busy.write(b"other", done);
        busy.wait_until_queued(2);
        busy.group.finish(Batch::new(&busy.group, 0, Instant::now()), Ok(()), Duration::ZERO);
        for _ in 0..2 {
            let outcome = finished.recv_timeout(Duration::from_secs(10));
            assert!(matches!(outcome, Ok(Ok(()))), "each queued writer returns, committed: {outcome:?}");
        }
        assert!(!busy.leading(), "the last leader let go of the lead");
        for key in [b"first", b"other"] {
            assert!(busy.engine.read(|txn| txn.get(busy.table, key).map(|found| found.is_some())).unwrap());
        }
    }

    #[test]
    fn a_leader_that_panics_still_tells_its_writers_and_hands_on_the_lead() {
        let busy = Busy::new();
        let (done, finished) = std::sync::mpsc::channel();
        busy.write(b"queued", done.clone());
        busy.wait_until_queued(1);
        let state = busy.group.lock();
        let leading = catch_unwind(AssertUnwindSafe(|| busy.group.lead_with(state, |_| panic!("a bug in the commit"))));
        assert!(leading.is_err(), "the panic goes on in the leader's thread");
        let told = finished.recv_timeout(Duration::from_secs(10)).expect("the queued writer is told");
        assert!(matches!(&told, Err(Error::Storage(message)) if message == LEADER_PANICKED), "{told:?}");
        assert!(!busy.leading(), "the lead is free again");
        busy.write(b"next", done);
        let next = finished.recv_timeout(Duration::from_secs(10));
        assert!(matches!(next, Ok(Ok(()))), "the next writer leads and commits: {next:?}");
    }
}
