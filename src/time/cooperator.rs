//! [`Cooperator`], [`cooperate`] and [`coiterate`]: long-running iterators
//! run in time slices, round-robin, so that none blocks the runtime
//! (Twisted's `task.Cooperator`, `task.cooperate` and `task.coiterate`).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tokio_deferred::{coiterate, cooperate};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let log = Arc::new(Mutex::new(Vec::new()));
//!     let (a, b) = (log.clone(), log.clone());
//!     // Two long jobs, one unit of work per step: they take turns.
//!     let first = coiterate((0..3).map(move |i| a.lock().unwrap().push(format!("a{i}"))));
//!     let second = cooperate((0..3).map(move |i| b.lock().unwrap().push(format!("b{i}"))));
//!     first.await.unwrap();
//!     second.when_done().await.unwrap();
//!     assert_eq!(*log.lock().unwrap(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
//! }
//! ```
//!
//! # How it runs
//!
//! A cooperator runs *ticks*, scheduled one at a time. A tick takes the
//! running tasks in turn (round-robin, carrying on where the previous tick
//! stopped) and gives each one step, `next()` on its iterator, until the
//! *termination predicate* says the slice is over (by default after 10 ms
//! of wall-clock time, Twisted's `_Timer`) or no task is running; then it
//! schedules the next tick if a task is left. Ticks are timers, as in
//! Twisted (`reactor.callLater(_EPSILON, tick)`): [`Cooperator::new`] (and
//! the default cooperator of [`cooperate`]) runs each one
//! [`Cooperator::TICK_DELAY`] after it is asked for on Tokio's timer, whose
//! resolution is 1 ms (so a tick waits for the next millisecond, and a
//! paused test clock moves on between ticks); a [`CooperatorBuilder::clock`]
//! schedules them on that [`Clock`], so a [`ManualClock`](crate::ManualClock)
//! runs one tick per `advance(TICK_DELAY)`.
//!
//! # What an iterator yields
//!
//! Any [`IntoCooperativeStep`]: `()` for a unit of work done, a
//! [`Deferred`] to pause the task until it fires (a failed one fails the
//! task), a `Result` of those whose `Err` fails the task. A panic in
//! `next()` fails the task too. So a plain iterator of work works as it is,
//! and `Iterator<Item = Result<Deferred<T>, E>>` is the Rust form of a
//! Twisted generator that yields Deferreds and may raise.
//!
//! Iterators run on the runtime's threads (or in `advance` for a clock), so
//! they must be `Send + 'static`, like a spawned task.

use std::fmt;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::runtime::{Handle, Id};
use tokio::task::AbortHandle;

use crate::deferred::resolver::OwnedResolver;
use crate::error::{RuntimeRequiredError, TaskFinished};
use crate::loom::{Mutex, MutexGuard};
use crate::time::clock::{Clock, DelayedCall};
use crate::time::per_runtime::PerRuntime;
use crate::{Deferred, Failure};

mod step;
mod task;

pub use step::{CooperativeStep, IntoCooperativeStep};
pub use task::CooperativeTask;
use task::{TaskInner, TaskState};

/// A task's iterator, its items already converted.
type TaskIter = Box<dyn Iterator<Item = CooperativeStep> + Send>;

/// An iterator with its items converted (a `map` would need `'static`
/// items, not only a `'static` iterator).
struct Steps<I>(I);

impl<I: Iterator<Item: IntoCooperativeStep>> Iterator for Steps<I> {
    type Item = CooperativeStep;
    fn next(&mut self) -> Option<CooperativeStep> {
        self.0.next().map(IntoCooperativeStep::into_step)
    }
}

/// Twisted's `terminationPredicateFactory`.
type Termination = Arc<dyn Fn() -> Box<dyn FnMut() -> bool + Send> + Send + Sync>;

/// Twisted's `_Timer.MAX_SLICE`: the default time slice of one tick.
const MAX_SLICE: Duration = Duration::from_millis(10);

/// Runs a long-running iterator as a task of the runtime's default
/// [`Cooperator`] (Twisted's `task.cooperate`): one step at a time, sharing
/// the runtime with every other task of that cooperator.
///
/// The default cooperator is one per Tokio runtime, made on first use; it
/// goes when the runtime shuts down. Called with no runtime, the task
/// fails at once with [`RuntimeRequiredError`] (its `when_done` has it).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tokio_deferred::{cooperate, succeed};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let fetched = Arc::new(Mutex::new(Vec::new()));
///     let f = fetched.clone();
///     // Each step waits for a (here already fired) Deferred.
///     let task = cooperate((1..=3).map(move |n| {
///         let f = f.clone();
///         succeed(n * 10).add_callback(move |v| {
///             f.lock().unwrap().push(v);
///             Ok(())
///         })
///     }));
///     task.when_done().await.unwrap();
///     assert_eq!(*fetched.lock().unwrap(), [10, 20, 30]);
/// }
/// ```
pub fn cooperate<I>(iterator: I) -> CooperativeTask
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: IntoCooperativeStep,
{
    default_cooperator().cooperate(iterator)
}

/// Runs a long-running iterator on the runtime's default [`Cooperator`]
/// and returns a Deferred that fires when it is done (Twisted's
/// `task.coiterate`): [`cooperate`]`(iterator).when_done()`.
///
/// ```
/// use tokio_deferred::{coiterate, Failure};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let steps = (0..5).map(|i| if i < 4 { Ok(()) } else { Err(Failure::msg("step 4 failed")) });
///     let failure = coiterate(steps).await.unwrap_err();
///     assert_eq!(failure.to_string(), "step 4 failed");
/// }
/// ```
#[track_caller]
pub fn coiterate<I>(iterator: I) -> Deferred<()>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: IntoCooperativeStep,
{
    cooperate(iterator).when_done()
}

/// Runs long-running iterators step by step in time slices, round-robin,
/// so that they share the runtime (Twisted's `task.Cooperator`).
///
/// See the [module docs](crate::cooperator) for how ticks run. A
/// `Cooperator` is a cheap handle (clones are the same cooperator); its
/// tasks keep running while any handle, task handle or scheduled tick
/// holds it. Several cooperators do not share time with each other: most
/// programs use the default one, through [`cooperate`] and [`coiterate`].
///
/// Where Twisted differs: its `stop()` skips every other running task
/// (it removes them from the list it iterates), whose `whenDone` then never
/// fires; here every task is stopped. A task finishes once: a failure of a
/// yielded Deferred after `stop()` is ignored (Twisted fires the finished
/// `whenDone` Deferreds again, an `AlreadyCalledError`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio_deferred::{Cooperator, TaskFinished};
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let coop = Cooperator::new();
///     let forever = coop.cooperate(std::iter::repeat(()));
///     let done = forever.when_done();
///     tokio::time::sleep(Duration::from_millis(50)).await; // it runs meanwhile
///     coop.stop();
///     let failure = done.await.unwrap_err();
///     assert_eq!(failure.downcast_ref(), Some(&TaskFinished::SchedulerStopped));
///     assert!(!coop.is_running());
/// }
/// ```
#[derive(Clone)]
pub struct Cooperator {
    inner: Arc<CoopInner>,
}

/// Builds a [`Cooperator`] with Twisted's constructor arguments; made by
/// [`Cooperator::builder`].
///
/// ```
/// use tokio_deferred::{Cooperator, ManualClock};
///
/// let clock = ManualClock::new();
/// let coop = Cooperator::builder()
///     .clock(clock.clone())        // Twisted's scheduler
///     .termination(|| || true)     // terminationPredicateFactory: one step per tick
///     .started(false)              // started=False
///     .build();
/// assert!(!coop.is_running());
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct CooperatorBuilder {
    clock: Option<Arc<dyn Clock>>,
    termination: Option<Termination>,
    started: bool,
}

impl CooperatorBuilder {
    /// Schedules ticks on `clock`, each [`Cooperator::TICK_DELAY`] after it
    /// is asked for (Twisted's `scheduler` argument, as
    /// `lambda f: clock.callLater(_EPSILON, f)`). Without it, ticks are
    /// tasks on the Tokio runtime.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Sets how long one tick runs (Twisted's
    /// `terminationPredicateFactory`): `factory` is called at the start of
    /// each tick, and the predicate it returns is asked after every step;
    /// `true` ends the tick. The default ends it after 10 ms.
    pub fn termination<F, P>(mut self, factory: F) -> Self
    where
        F: Fn() -> P + Send + Sync + 'static,
        P: FnMut() -> bool + Send + 'static,
    {
        self.termination = Some(Arc::new(move || -> Box<dyn FnMut() -> bool + Send> {
            Box::new(factory())
        }));
        self
    }

    /// Whether tasks run as soon as they are added (`true`, the default) or
    /// wait for [`Cooperator::start`] (Twisted's `started`).
    pub fn started(mut self, started: bool) -> Self {
        self.started = started;
        self
    }

    /// The cooperator.
    pub fn build(self) -> Cooperator {
        let scheduler = match self.clock {
            Some(clock) => Scheduler::Clock(clock),
            None => Scheduler::Tokio {
                fallback: Handle::try_current().ok(),
                no_timer: Arc::new(AtomicBool::new(false)),
            },
        };
        let termination = self.termination.unwrap_or_else(|| {
            Arc::new(|| -> Box<dyn FnMut() -> bool + Send> {
                let end = Instant::now() + MAX_SLICE;
                Box::new(move || Instant::now() >= end)
            })
        });
        Cooperator {
            inner: Arc::new(CoopInner {
                state: Mutex::new(CoopState {
                    running: Vec::new(),
                    cursor: None,
                    tick: Tick::Idle,
                    generation: 0,
                    ticking: false,
                    stopped: false,
                    started: self.started,
                    must_schedule_on_start: false,
                }),
                scheduler,
                termination,
            }),
        }
    }
}

impl fmt::Debug for CooperatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CooperatorBuilder")
            .field("clock", &self.clock.is_some())
            .field("termination", &self.termination.is_some())
            .field("started", &self.started)
            .finish()
    }
}

impl Cooperator {
    /// How long after it is asked for a tick runs on a
    /// [`CooperatorBuilder::clock`]: Twisted's `_EPSILON` (10 ns). On a
    /// [`ManualClock`](crate::ManualClock), `advance(TICK_DELAY)` runs the
    /// tick that is due and no later one.
    pub const TICK_DELAY: Duration = Duration::from_nanos(10);

    /// A cooperator with Twisted's defaults: started, 10 ms slices, ticks
    /// as tasks on the Tokio runtime current now (or, if none is, on the
    /// one current when a tick is scheduled; with none then either, the
    /// running tasks fail with [`RuntimeRequiredError`]).
    pub fn new() -> Self {
        Cooperator::builder().build()
    }

    /// A builder for Twisted's other constructor arguments: a clock to
    /// schedule on, the termination predicate, `started`.
    pub fn builder() -> CooperatorBuilder {
        CooperatorBuilder {
            clock: None,
            termination: None,
            started: true,
        }
    }

    /// Adds `iterator` as a task (Twisted's `cooperate`): it gets its first
    /// step in the next tick, not in this call. On a stopped cooperator the
    /// task finishes at once with [`TaskFinished::SchedulerStopped`].
    ///
    /// `iterator` is anything iterable whose items are
    /// [`IntoCooperativeStep`] (see the [module docs](crate::cooperator)).
    pub fn cooperate<I>(&self, iterator: I) -> CooperativeTask
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: IntoCooperativeStep,
    {
        let iterator: TaskIter = Box::new(Steps(iterator.into_iter()));
        let task = TaskInner::new(iterator);
        let mut fx = Effects::default();
        {
            let mut st = self.inner.lock();
            let mut ts = task.lock();
            CoopInner::add(&mut st, &task, &mut ts, &mut fx);
        }
        fx.run(&self.inner);
        CooperativeTask {
            task,
            coop: self.inner.clone(),
        }
    }

    /// [`cooperate`](Self::cooperate)`(iterator).when_done()` (Twisted's
    /// `coiterate`).
    #[track_caller]
    pub fn coiterate<I>(&self, iterator: I) -> Deferred<()>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: IntoCooperativeStep,
    {
        self.cooperate(iterator).when_done()
    }

    /// Starts (or restarts, after [`stop`](Self::stop)) scheduling ticks
    /// (Twisted's `start()`).
    pub fn start(&self) {
        let schedule = {
            let mut st = self.inner.lock();
            st.stopped = false;
            st.started = true;
            mem::take(&mut st.must_schedule_on_start)
        };
        if schedule {
            self.inner.reschedule();
        }
    }

    /// Stops the cooperator (Twisted's `stop()`): every running task
    /// finishes with [`TaskFinished::SchedulerStopped`] (its `when_done`
    /// Deferreds fail with it), the pending tick is cancelled, and a task
    /// added or resumed afterwards finishes the same way until
    /// [`start`](Self::start).
    pub fn stop(&self) {
        let mut fx = Effects::default();
        {
            let mut st = self.inner.lock();
            st.stopped = true;
            let running = mem::take(&mut st.running);
            st.cursor = None;
            if let Tick::Scheduled(handle) = mem::replace(&mut st.tick, Tick::Idle) {
                fx.cancel = Some(handle);
            }
            for task in &running {
                let mut ts = task.lock();
                let failure = Failure::new(TaskFinished::SchedulerStopped);
                CoopInner::complete(
                    &mut st,
                    task,
                    &mut ts,
                    TaskFinished::SchedulerStopped,
                    Err(failure),
                    &mut fx,
                );
            }
        }
        fx.run(&self.inner);
    }

    /// Whether the cooperator is started and not stopped (Twisted's
    /// `running`).
    pub fn is_running(&self) -> bool {
        let st = self.inner.lock();
        st.started && !st.stopped
    }
}

impl Default for Cooperator {
    fn default() -> Self {
        Cooperator::new()
    }
}

impl fmt::Debug for Cooperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Cooperator")
            .field("running_tasks", &st.running.len())
            .field("started", &st.started)
            .field("stopped", &st.stopped)
            .field("tick_scheduled", &!matches!(st.tick, Tick::Idle))
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The state and its transitions
// ---------------------------------------------------------------------------

/// Where ticks are scheduled (Twisted's `scheduler`).
enum Scheduler {
    /// A task that sleeps [`Cooperator::TICK_DELAY`] on Tokio's timer, on
    /// the runtime current when scheduling, else on `fallback`.
    Tokio {
        fallback: Option<Handle>,
        /// Set once a runtime turned out to have no timer: the task then
        /// only yields before the tick.
        no_timer: Arc<AtomicBool>,
    },
    /// `clock.call_later(TICK_DELAY, tick)`.
    Clock(Arc<dyn Clock>),
}

impl Scheduler {
    /// Schedules `tick`; with no runtime to schedule it on, drops it.
    fn schedule(&self, tick: TickCall) -> Result<TickHandle, RuntimeRequiredError> {
        match self {
            Scheduler::Tokio { fallback, no_timer } => {
                let Some(handle) = Handle::try_current().ok().or_else(|| fallback.clone()) else {
                    return Err(RuntimeRequiredError { what: "Cooperator" });
                };
                let no_timer = no_timer.clone();
                let task = handle.spawn(async move {
                    // A timer, as Twisted's callLater: other timers due
                    // first run first, and a paused clock moves on. Tokio
                    // tells that a runtime has no timer only by panicking
                    // (its hook prints that once per cooperator); the tick
                    // then waits for the tasks already queued.
                    let mut slept = false;
                    if !no_timer.load(Ordering::Relaxed) {
                        let sleep = async { tokio::time::sleep(Cooperator::TICK_DELAY).await };
                        slept = AssertUnwindSafe(sleep).catch_unwind().await.is_ok();
                        no_timer.store(!slept, Ordering::Relaxed);
                    }
                    if !slept {
                        tokio::task::yield_now().await;
                    }
                    tick.run();
                });
                Ok(TickHandle::Tokio(task.abort_handle()))
            }
            Scheduler::Clock(clock) => Ok(TickHandle::Clock(
                clock.call_later_boxed(Cooperator::TICK_DELAY, Box::new(move || tick.run())),
            )),
        }
    }
}

/// A scheduled tick, to cancel it (Twisted's `_delayedCall`).
enum TickHandle {
    Clock(DelayedCall),
    Tokio(AbortHandle),
}

impl TickHandle {
    fn cancel(self) {
        match self {
            TickHandle::Clock(call) => {
                let _ = call.cancel();
            }
            TickHandle::Tokio(task) => task.abort(),
        }
    }
}

/// The cooperator's next tick.
enum Tick {
    /// None scheduled.
    Idle,
    /// Being scheduled by a thread that released the lock to do it.
    Scheduling,
    Scheduled(TickHandle),
}

/// What a scheduled tick runs. Dropped without running (cancelled, or its
/// runtime or clock went away), it marks the tick as no longer scheduled,
/// so that the next task added or resumed schedules a new one.
struct TickCall {
    coop: Arc<CoopInner>,
    generation: u64,
    ran: bool,
}

impl TickCall {
    fn run(mut self) {
        self.ran = true;
        self.coop.tick(self.generation);
    }
}

impl Drop for TickCall {
    fn drop(&mut self) {
        if self.ran {
            return;
        }
        let stale = {
            let mut st = self.coop.lock();
            if st.generation == self.generation && !matches!(st.tick, Tick::Idle) {
                mem::replace(&mut st.tick, Tick::Idle)
            } else {
                Tick::Idle
            }
        };
        drop(stale); // a handle on this very call: nothing to cancel
    }
}

/// The cooperator's state (one mutex; a task's own state has another,
/// always taken after this one).
struct CoopState {
    /// Twisted's `_tasks`: the running tasks (not paused, not finished),
    /// in the order they were added or resumed.
    running: Vec<Arc<TaskInner>>,
    /// Twisted's `_metarator`, a Python list iterator over `running`: the
    /// index of the next task, or `None` once it ran off the end. Removing
    /// a task does not move it, as in Python, so the task after a removed
    /// one may wait a turn.
    cursor: Option<usize>,
    tick: Tick,
    /// Counts scheduled ticks, so a stale one recognizes itself.
    generation: u64,
    /// A tick is running: it schedules the next one when it ends.
    ticking: bool,
    stopped: bool,
    started: bool,
    must_schedule_on_start: bool,
}

pub(crate) struct CoopInner {
    state: Mutex<CoopState>,
    scheduler: Scheduler,
    termination: Termination,
}

/// What to do once the locks are released: cancel a tick, drop finished
/// iterators (user code), fire `when_done` Deferreds (user callbacks, which
/// may call back into the cooperator), schedule a tick.
#[derive(Default)]
struct Effects {
    cancel: Option<TickHandle>,
    drop: Vec<TaskIter>,
    fire: Vec<(OwnedResolver<()>, Result<(), Failure>)>,
    reschedule: bool,
}

impl Effects {
    fn run(self, coop: &Arc<CoopInner>) {
        if let Some(tick) = self.cancel {
            tick.cancel();
        }
        drop(self.drop);
        for (resolver, outcome) in self.fire {
            let _ = resolver.resolve(outcome);
        }
        if self.reschedule {
            coop.reschedule();
        }
    }
}

impl CoopInner {
    fn lock(&self) -> MutexGuard<'_, CoopState> {
        self.state.lock()
    }

    /// Twisted's `_addTask`: `task` (not paused, not finished) runs again.
    fn add(st: &mut CoopState, task: &Arc<TaskInner>, ts: &mut TaskState, fx: &mut Effects) {
        if st.stopped {
            let failure = Failure::new(TaskFinished::SchedulerStopped);
            Self::complete(
                st,
                task,
                ts,
                TaskFinished::SchedulerStopped,
                Err(failure),
                fx,
            );
        } else {
            st.running.push(task.clone());
            fx.reschedule = true;
        }
    }

    /// Twisted's `_removeTask`: `task` stops running; with no task left the
    /// pending tick is cancelled.
    fn remove(st: &mut CoopState, task: &Arc<TaskInner>, fx: &mut Effects) {
        if let Some(at) = st.running.iter().position(|t| Arc::ptr_eq(t, task)) {
            st.running.remove(at);
        }
        if st.running.is_empty() {
            if let Tick::Scheduled(handle) = mem::replace(&mut st.tick, Tick::Idle) {
                fx.cancel = Some(handle);
            }
        }
    }

    /// Twisted's `_completeWith`, once per task: records why it finished,
    /// takes it out of the running list (if it is in it), and queues its
    /// iterator's drop and its `when_done` Deferreds' fire.
    fn complete(
        st: &mut CoopState,
        task: &Arc<TaskInner>,
        ts: &mut TaskState,
        how: TaskFinished,
        outcome: Result<(), Failure>,
        fx: &mut Effects,
    ) {
        if ts.finished.is_some() {
            return;
        }
        ts.finished = Some(how);
        ts.outcome = Some(outcome.clone());
        if ts.pauses == 0 {
            Self::remove(st, task, fx);
        }
        fx.drop.extend(ts.iterator.take());
        for resolver in ts.when_done.drain(..) {
            fx.fire.push((resolver, outcome.clone()));
        }
    }

    /// Twisted's `_reschedule`: schedules a tick if tasks are running and
    /// none is scheduled (or running: it schedules the next when it ends).
    fn reschedule(self: &Arc<Self>) {
        let generation = {
            let mut st = self.lock();
            if !st.started {
                st.must_schedule_on_start = true;
                return;
            }
            if !matches!(st.tick, Tick::Idle) || st.ticking || st.running.is_empty() {
                return;
            }
            st.generation += 1;
            st.tick = Tick::Scheduling;
            st.generation
        };
        let call = TickCall {
            coop: self.clone(),
            generation,
            ran: false,
        };
        // Out of the lock: a clock is user code.
        match self.scheduler.schedule(call) {
            Ok(handle) => {
                let mut st = self.lock();
                if st.generation == generation && matches!(st.tick, Tick::Scheduling) {
                    st.tick = Tick::Scheduled(handle);
                } else {
                    // Not wanted any more (the last task went meanwhile).
                    drop(st);
                    handle.cancel();
                }
            }
            Err(no_runtime) => {
                // Nothing can ever run the tasks: they fail.
                let mut fx = Effects::default();
                {
                    let mut st = self.lock();
                    let running = mem::take(&mut st.running);
                    st.cursor = None;
                    for task in &running {
                        let mut ts = task.lock();
                        let failure = Failure::new(no_runtime.clone());
                        Self::complete(
                            &mut st,
                            task,
                            &mut ts,
                            TaskFinished::Failed,
                            Err(failure),
                            &mut fx,
                        );
                    }
                }
                fx.run(self);
            }
        }
    }

    /// Twisted's `_tick` with `_tasksWhileNotStopped`: steps the running
    /// tasks in turn until the termination predicate says stop or none is
    /// left, then schedules the next tick.
    fn tick(self: &Arc<Self>, generation: u64) {
        {
            let mut st = self.lock();
            if st.generation != generation || matches!(st.tick, Tick::Idle) {
                return; // cancelled after it started to run
            }
            st.tick = Tick::Idle;
            st.ticking = true;
        }
        let mut done = (self.termination)();
        // Inside the `for` over `_metarator` (else at the `while` test).
        let mut in_round = false;
        loop {
            let task = {
                let mut st = self.lock();
                Self::next_task(&mut st, &mut in_round)
            };
            let Some(task) = task else { break };
            self.step(task);
            if done() {
                break;
            }
        }
        self.lock().ticking = false;
        self.reschedule();
    }

    /// The next task of the tick, as Twisted's generator gives it:
    /// `while self._tasks: for t in self._metarator: yield t` with
    /// `self._metarator = iter(self._tasks)` after each round.
    fn next_task(st: &mut CoopState, in_round: &mut bool) -> Option<Arc<TaskInner>> {
        loop {
            if !*in_round {
                if st.running.is_empty() {
                    return None;
                }
                *in_round = true;
            }
            match st.cursor {
                Some(at) if at < st.running.len() => {
                    st.cursor = Some(at + 1);
                    return Some(st.running[at].clone());
                }
                _ => {
                    // The round ended: a new one from the first task.
                    st.cursor = Some(0);
                    *in_round = false;
                }
            }
        }
    }

    /// Twisted's `_oneWorkUnit`: one `next()` of the task's iterator, out
    /// of every lock, then what its item (or its end, or its panic) means.
    fn step(self: &Arc<Self>, task: Arc<TaskInner>) {
        let iterator = {
            let mut ts = task.lock();
            if ts.finished.is_some() {
                return;
            }
            ts.iterator.take()
        };
        let Some(mut iterator) = iterator else {
            return; // a step of it is running (it resumed itself from inside)
        };
        let item = catch_unwind(AssertUnwindSafe(|| iterator.next()));
        let mut fx = Effects::default();
        let mut wait = None;
        let mut discard = None;
        {
            let mut st = self.lock();
            let mut ts = task.lock();
            let end = match item {
                Ok(None) => Some((TaskFinished::Done, Ok(()))),
                Ok(Some(CooperativeStep::Fail(failure))) => {
                    Some((TaskFinished::Failed, Err(failure)))
                }
                Err(payload) => Some((TaskFinished::Failed, Err(Failure::from_panic(payload)))),
                Ok(Some(step)) => {
                    if ts.finished.is_some() {
                        // Stopped from inside its own step.
                        if let CooperativeStep::Wait(d) = step {
                            discard = Some(d);
                        }
                    } else if let CooperativeStep::Wait(d) = step {
                        // Twisted: self.pause(), resumed by the Deferred.
                        ts.pauses += 1;
                        if ts.pauses == 1 {
                            Self::remove(&mut st, &task, &mut fx);
                        }
                        wait = Some(d);
                    }
                    None
                }
            };
            if let Some((how, outcome)) = end {
                Self::complete(&mut st, &task, &mut ts, how, outcome, &mut fx);
            }
            if ts.finished.is_none() {
                ts.iterator = Some(iterator);
            } else {
                fx.drop.push(iterator);
            }
        }
        fx.run(self);
        if let Some(d) = discard {
            drop(d.add_both(|_| Ok(())));
        }
        if let Some(d) = wait {
            let on_ok = CooperativeTask {
                task,
                coop: self.clone(),
            };
            let on_err = on_ok.clone();
            // The Deferred's result is consumed here (Twisted's callbacks
            // return None).
            drop(d.add_callbacks(
                move |()| {
                    let _ = on_ok.resume();
                    Ok(())
                },
                move |failure| {
                    on_err.fail_later(failure);
                    Ok(())
                },
            ));
        }
    }

    /// The runtime of the default cooperator went away, and nothing can
    /// run its running tasks any more: they finish as
    /// [`TaskFinished::SchedulerStopped`], but their `when_done` Deferreds,
    /// as in Twisted, never fire: they fail with `ResolverDroppedError`,
    /// which is not reported.
    fn forget_running(&self) {
        let mut iterators = Vec::new();
        let mut resolvers = Vec::new();
        {
            let mut st = self.lock();
            st.cursor = None;
            for task in mem::take(&mut st.running) {
                let mut ts = task.lock();
                ts.finished.get_or_insert(TaskFinished::SchedulerStopped);
                iterators.extend(ts.iterator.take());
                resolvers.append(&mut ts.when_done);
            }
        }
        drop(iterators);
        drop(resolvers);
    }
}

// ---------------------------------------------------------------------------
// The default cooperator of each runtime (Twisted's `_theCooperator`)
// ---------------------------------------------------------------------------

/// Every runtime's default cooperator.
static DEFAULTS: PerRuntime<Cooperator> = PerRuntime::new();

/// The current runtime's default cooperator, made on first use; with no
/// runtime, a new one (whose tasks then fail with `RuntimeRequiredError`).
fn default_cooperator() -> Cooperator {
    let Ok(handle) = Handle::try_current() else {
        return Cooperator::new();
    };
    let id = handle.id();
    let (coop, fresh) = DEFAULTS.get_or_make(id, Cooperator::new);
    if fresh {
        // Lives as long as the runtime: dropped with its tasks at shutdown.
        let guard = DefaultGuard {
            id,
            coop: coop.clone(),
        };
        drop(handle.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
    }
    coop
}

/// Removes a runtime's default cooperator when the runtime shuts down.
struct DefaultGuard {
    id: Id,
    coop: Cooperator,
}

impl Drop for DefaultGuard {
    fn drop(&mut self) {
        if DEFAULTS.remove(self.id, |coop| Arc::ptr_eq(&coop.inner, &self.coop.inner)) {
            self.coop.inner.forget_running();
        }
    }
}
