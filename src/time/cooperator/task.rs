//! [`CooperativeTask`]: one iterator run by a [`Cooperator`], which can be
//! paused, resumed, stopped and waited on (Twisted's `CooperativeTask`).

use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::loom::{Mutex, MutexGuard};

use super::{CoopInner, CoopState, Effects, TaskIter};
use crate::deferred::resolver::OwnedResolver;
use crate::error::{NotPaused, TaskFinished};
use crate::{Deferred, Failure};

/// A task's state, guarded by its own mutex. Lock order: the cooperator's
/// lock first, then a task's; no user code runs under either.
pub(super) struct TaskState {
    /// The iterator; `None` while a step runs (out of the lock) and once
    /// the task has finished (then dropped).
    pub(super) iterator: Option<TaskIter>,
    /// Twisted's `_pauseCount`: the task is in the cooperator's running
    /// list exactly when this is 0 and it has not finished.
    pub(super) pauses: u32,
    /// Twisted's `_completionState`: set once, never cleared.
    pub(super) finished: Option<TaskFinished>,
    /// Twisted's `_completionResult`: what `when_done` fires with, set with
    /// `finished`.
    pub(super) outcome: Option<Result<(), Failure>>,
    /// The `when_done` Deferreds still to fire (Twisted's `_deferreds`).
    pub(super) when_done: Vec<OwnedResolver<()>>,
}

/// The shared part of a task: its state. The cooperator's running list and
/// every [`CooperativeTask`] handle hold it.
pub(super) struct TaskInner {
    state: Mutex<TaskState>,
}

impl TaskInner {
    pub(super) fn new(iterator: TaskIter) -> Arc<Self> {
        Arc::new(TaskInner {
            state: Mutex::new(TaskState {
                iterator: Some(iterator),
                pauses: 0,
                finished: None,
                outcome: None,
                when_done: Vec::new(),
            }),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, TaskState> {
        self.state.lock()
    }
}

/// One iterator run by a [`Cooperator`](crate::Cooperator), step by step
/// in its time slices: Twisted's `CooperativeTask`, made by
/// [`Cooperator::cooperate`](crate::Cooperator::cooperate) or
/// [`cooperate`](crate::cooperate).
///
/// It can be [paused](Self::pause) (counted: as many
/// [`resume`](Self::resume)s as pauses), [stopped](Self::stop), and waited
/// on with [`when_done`](Self::when_done). A step that yields a Deferred
/// pauses the task until the Deferred fires (a pause of its own, on top of
/// the caller's). The handle is cheap to clone; clones control the same
/// task. Dropping every handle does not stop the task.
///
/// # States
///
/// * **Running**: not paused, not finished; it gets steps in its turn.
/// * **Paused** (`pause()` more often than `resume()`, or waiting on a
///   yielded Deferred): no steps.
/// * **Finished**, for good, with a [`TaskFinished`] reason: `Done` (the
///   iterator ended; `when_done` fires with `()`), `Failed` (an `Err` item,
///   a failed Deferred, a panic; `when_done` fails with that failure),
///   `Stopped` (`stop()`) or `SchedulerStopped` (the cooperator was
///   stopped; `when_done` fails with that reason). The iterator is dropped
///   then.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tokio_deferred::{Cooperator, ManualClock, TaskFinished};
///
/// let clock = ManualClock::new();
/// // One step per tick, so the test sees each one.
/// let coop = Cooperator::builder()
///     .clock(clock.clone())
///     .termination(|| || true)
///     .build();
/// let work = Arc::new(Mutex::new(Vec::new()));
/// let w = work.clone();
/// let task = coop.cooperate((1..).map(move |i| w.lock().unwrap().push(i)));
/// let tick = || clock.advance(Cooperator::TICK_DELAY);
/// tick();
/// task.pause().unwrap();
/// tick(); // paused: no step
/// task.resume().unwrap();
/// tick();
/// assert_eq!(*work.lock().unwrap(), [1, 2]);
/// task.stop().unwrap();
/// assert_eq!(task.pause(), Err(TaskFinished::Stopped));
/// ```
#[derive(Clone)]
pub struct CooperativeTask {
    pub(super) task: Arc<TaskInner>,
    pub(super) coop: Arc<CoopInner>,
}

impl CooperativeTask {
    /// Pauses the task: it gets no step until [`resume`](Self::resume) is
    /// called as many times as `pause` was (Twisted's `pause()`).
    ///
    /// # Errors
    ///
    /// The [`TaskFinished`] reason if the task has finished.
    pub fn pause(&self) -> Result<(), TaskFinished> {
        self.update(|st, ts, fx| {
            if let Some(finished) = ts.finished {
                return Err(finished);
            }
            ts.pauses += 1;
            if ts.pauses == 1 {
                CoopInner::remove(st, &self.task, fx);
            }
            Ok(())
        })
    }

    /// Undoes one [`pause`](Self::pause); after the last one the task gets
    /// steps again, from the next tick on (not inside this call). Resuming
    /// a finished task that is paused only counts down (Twisted's
    /// `resume()`).
    ///
    /// # Errors
    ///
    /// [`NotPaused`] if the task is not paused.
    pub fn resume(&self) -> Result<(), NotPaused> {
        self.update(|st, ts, fx| {
            if ts.pauses == 0 {
                return Err(NotPaused {});
            }
            ts.pauses -= 1;
            if ts.pauses == 0 && ts.finished.is_none() {
                CoopInner::add(st, &self.task, ts, fx);
            }
            Ok(())
        })
    }

    /// Stops the task for good: it gets no more steps, its iterator is
    /// dropped, and its `when_done` Deferreds fail with
    /// [`TaskFinished::Stopped`] (Twisted's `stop()`). A Deferred it was
    /// waiting on is left alone; when it fires, nothing more happens.
    ///
    /// # Errors
    ///
    /// The [`TaskFinished`] reason if the task had already finished.
    pub fn stop(&self) -> Result<(), TaskFinished> {
        self.update(|st, ts, fx| {
            if let Some(finished) = ts.finished {
                return Err(finished);
            }
            let failure = Failure::new(TaskFinished::Stopped);
            CoopInner::complete(st, &self.task, ts, TaskFinished::Stopped, Err(failure), fx);
            Ok(())
        })
    }

    /// A new Deferred that fires when the task finishes: with `()` when
    /// its iterator is exhausted, with the iterator's failure if it failed,
    /// with [`TaskFinished::Stopped`] or [`TaskFinished::SchedulerStopped`]
    /// if it was stopped (Twisted's `whenDone()`, which fires with the
    /// iterator; here the iterator was moved into the task and is dropped
    /// when it finishes). Each call gives a Deferred of its own; on a
    /// finished task it has fired already.
    ///
    /// If the task can never finish because the runtime of the default
    /// cooperator shut down, the Deferred fails with
    /// [`ResolverDroppedError`](crate::ResolverDroppedError) (which, as a
    /// Deferred that never fired, is not reported as unhandled).
    #[track_caller]
    pub fn when_done(&self) -> Deferred<()> {
        let at = Location::caller();
        let mut ts = self.task.lock();
        if let Some(outcome) = &ts.outcome {
            return Deferred::ready(outcome.clone(), at);
        }
        let (d, resolver) = Deferred::new();
        let resolver = OwnedResolver::new(resolver, "tokio_deferred::CooperativeTask::when_done");
        if ts.finished.is_some() {
            // Finished with no outcome: its runtime went away first.
            drop(ts);
            drop(resolver);
        } else {
            ts.when_done.push(resolver);
        }
        d
    }

    /// Whether the task is paused (by [`pause`](Self::pause), or waiting on
    /// a Deferred its iterator yielded).
    pub fn is_paused(&self) -> bool {
        self.task.lock().pauses > 0
    }

    /// Why the task finished, or `None` while it has not.
    pub fn finished(&self) -> Option<TaskFinished> {
        self.task.lock().finished
    }

    /// The failure handler of a Deferred the iterator yielded (Twisted's
    /// `failLater`): the task fails with its failure.
    pub(super) fn fail_later(&self, failure: Failure) {
        self.update(|st, ts, fx| {
            CoopInner::complete(st, &self.task, ts, TaskFinished::Failed, Err(failure), fx);
        });
    }

    /// Runs `change` with the cooperator's lock and the task's, then (the
    /// locks released) what it left to do.
    fn update<R>(
        &self,
        change: impl FnOnce(&mut CoopState, &mut TaskState, &mut Effects) -> R,
    ) -> R {
        let mut fx = Effects::default();
        let result = {
            let mut st = self.coop.lock();
            let mut ts = self.task.lock();
            change(&mut st, &mut ts, &mut fx)
        };
        fx.run(&self.coop);
        result
    }
}

impl fmt::Debug for CooperativeTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ts = self.task.lock();
        f.debug_struct("CooperativeTask")
            .field("pauses", &ts.pauses)
            .field("finished", &ts.finished)
            .field("when_done", &ts.when_done.len())
            .finish()
    }
}
