//! Cooperator, cooperate, coiterate, CooperativeTask: Twisted's
//! twisted/test/test_cooperator.py, on a ManualClock (Twisted's
//! FakeScheduler: `advance(Cooperator::TICK_DELAY)` runs the tick that is
//! due, as `FakeScheduler.pump()` does) or on paused Tokio time.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio_deferred::*;

#[derive(Debug, thiserror::Error)]
#[error("runtime error")]
struct RuntimeError;

#[derive(Debug, thiserror::Error)]
#[error("unhandled exception")]
struct UnhandledException;

fn is_scheduler_stopped(f: &Failure) -> bool {
    f.downcast_ref::<TaskFinished>() == Some(&TaskFinished::SchedulerStopped)
}

// ---------------------------------------------------------------------------
// CooperatorTests
// ---------------------------------------------------------------------------

// Twisted: test_cooperator.py CooperatorTests.testStoppedRejectsNewTasks
// (its second half passes coiterate's doneDeferred, which Rust's coiterate
// does not take: chain the returned Deferred instead).
#[tokio::test(start_paused = true)]
async fn a_stopped_cooperator_rejects_new_tasks() {
    let c = Cooperator::new();
    c.stop();
    let d = c.coiterate(std::iter::empty::<()>());
    assert!(is_scheduler_stopped(&d.await.unwrap_err()));
}

// Twisted: test_cooperator.py CooperatorTests.testStopRunning
#[tokio::test(start_paused = true)]
async fn stopping_the_cooperator_stops_a_task_before_it_runs() {
    let c = Cooperator::new();
    let value = Arc::new(AtomicUsize::new(usize::MAX));
    let v = value.clone();
    let d = c.coiterate((0..3).map(move |i| v.store(i, Ordering::SeqCst)));
    c.stop();
    assert!(is_scheduler_stopped(&d.await.unwrap_err()));
    assert_eq!(value.load(Ordering::SeqCst), usize::MAX);
}

// Twisted: test_cooperator.py CooperatorTests.testStopOutstanding
#[tokio::test(start_paused = true)]
async fn stopping_while_a_task_waits_on_its_deferred_fails_its_when_done() {
    let (control, control_r) = Deferred::<()>::new();
    let (outstanding, outstanding_r) = Deferred::<&str>::new();
    let mut outstanding = Some(outstanding);
    let mut control_r = Some(control_r);
    let clock = TokioClock::new();
    let steps = std::iter::from_fn(move || {
        let r = control_r
            .take()
            .expect("the task must not go on after the stop");
        clock.call_later(Duration::ZERO, move || r.callback(()).unwrap());
        outstanding.take()
    });
    let c = Cooperator::new();
    let d = c.coiterate(steps);
    control.await.unwrap();
    c.stop();
    outstanding_r.callback("arglebargle").unwrap();
    assert!(is_scheduler_stopped(&d.await.unwrap_err()));
}

// Twisted: test_cooperator.py CooperatorTests.testUnexpectedError
#[tokio::test(start_paused = true)]
async fn an_iterator_error_fails_the_task() {
    let c = Cooperator::new();
    let d = c.coiterate(std::iter::once(Err::<(), _>(RuntimeError)));
    assert!(d.await.unwrap_err().is::<RuntimeError>());
}

// Twisted: test_cooperator.py CooperatorTests.testUnexpectedErrorActuallyLater
#[tokio::test(start_paused = true)]
async fn a_yielded_deferred_that_fails_later_fails_the_task() {
    let c = Cooperator::new();
    let clock = TokioClock::new();
    let steps = std::iter::once_with(move || {
        let (d, r) = Deferred::<()>::new();
        clock.call_later(Duration::ZERO, move || {
            r.errback(RuntimeError).unwrap();
        });
        d
    });
    let d = c.coiterate(steps);
    assert!(d.await.unwrap_err().is::<RuntimeError>());
}

// Twisted: test_cooperator.py CooperatorTests.testUnexpectedErrorNotActuallyLater
#[tokio::test(start_paused = true)]
async fn a_yielded_deferred_that_already_failed_fails_the_task() {
    let c = Cooperator::new();
    let d = c.coiterate(std::iter::once_with(|| fail::<()>(RuntimeError)));
    assert!(d.await.unwrap_err().is::<RuntimeError>());
}

// Twisted: test_cooperator.py CooperatorTests.testCooperation
#[tokio::test(start_paused = true)]
async fn tasks_take_turns_one_step_each() {
    let log = Log::<String>::new();
    let groups = [
        ["a", "b", "c"],
        ["1", "2", "3"],
        ["d", "e", "f"],
        ["4", "5", "6"],
    ];
    let c = Cooperator::new();
    let tasks: Vec<Deferred<()>> = groups
        .iter()
        .map(|group| {
            let log = log.clone();
            let group = *group;
            c.coiterate(
                group
                    .into_iter()
                    .map(move |thing| log.push(thing.to_owned())),
            )
        })
        .collect();
    gather_results(tasks).await.unwrap();
    let zipped: Vec<String> = (0..3)
        .flat_map(|i| groups.iter().map(move |g| g[i].to_owned()))
        .collect();
    assert_eq!(log.get(), zipped);
}

// Twisted: test_cooperator.py CooperatorTests.testResourceExhaustion
#[test]
fn a_tick_ends_when_the_termination_predicate_says_so() {
    let stopped = Arc::new(AtomicBool::new(false));
    let output = Log::new();
    let (o, s) = (output.clone(), stopped.clone());
    let steps = (0..100).map(move |i| {
        o.push(i);
        if i == 9 {
            s.store(true, Ordering::SeqCst);
        }
    });
    let flag = stopped.clone();
    let clock = ManualClock::new();
    let c = Cooperator::builder()
        .clock(clock.clone())
        .termination(move || {
            let flag = flag.clone();
            move || flag.load(Ordering::SeqCst)
        })
        .build();
    let d = c.coiterate(steps).add_errback(|f| {
        f.trap::<TaskFinished>()?;
        Ok(())
    });
    clock.advance(Cooperator::TICK_DELAY); // one tick
    c.stop();
    assert!(stopped.load(Ordering::SeqCst));
    assert_eq!(output.get(), (0..10).collect::<Vec<_>>());
    assert!(d.try_take().unwrap().is_ok());
}

/// A clock that checks, whenever the cooperator schedules a tick, that no
/// other tick is pending (Twisted's `sched` in testCallbackReCoiterate).
#[derive(Clone)]
struct OneTickAtATime(ManualClock, Arc<AtomicUsize>);

impl Clock for OneTickAtATime {
    fn now(&self) -> Duration {
        self.0.now()
    }
    fn call_later_boxed(&self, delay: Duration, f: Box<dyn FnOnce() + Send>) -> DelayedCall {
        assert!(
            self.0.pending_calls().is_empty(),
            "a tick is already pending"
        );
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.call_later_boxed(delay, f)
    }
}

// Twisted: test_cooperator.py CooperatorTests.testCallbackReCoiterate
#[test]
fn coiterating_again_from_a_when_done_callback_schedules_one_tick() {
    let clock = OneTickAtATime(ManualClock::new(), Arc::new(AtomicUsize::new(0)));
    let c = Cooperator::builder()
        .clock(clock.clone())
        .termination(|| || true)
        .build();
    let done = Log::<bool>::new();
    let (c2, done2) = (c.clone(), done.clone());
    let d = c
        .coiterate(std::iter::empty::<()>())
        .add_callback(move |()| {
            let done = done2.clone();
            drop(c2.coiterate(std::iter::empty::<()>()).add_both(move |r| {
                done.push(r.is_ok());
                Ok(())
            }));
            Ok(())
        });
    let mut work = 0;
    while done.len() == 0 {
        work += 1;
        clock.0.advance(Cooperator::TICK_DELAY);
        assert!(work <= 50, "Cooperator took too long");
    }
    assert_eq!(done.get(), [true]);
    assert_eq!(clock.1.load(Ordering::SeqCst), 2);
    assert!(d.try_take().unwrap().is_ok());
}

// Twisted: test_cooperator.py
// CooperatorTests.test_removingLastTaskStopsScheduledCall
#[test]
fn removing_the_last_task_cancels_the_scheduled_tick() {
    let clock = ManualClock::new();
    let coop = Cooperator::builder().clock(clock.clone()).build();
    let task1 = coop.cooperate([(), ()]);
    let task2 = coop.cooperate([(), ()]);
    let calls = clock.pending_calls();
    assert_eq!(calls.len(), 1);
    task1.stop().unwrap();
    assert!(calls[0].active());
    assert_eq!(clock.pending_calls().len(), 1);
    task2.stop().unwrap();
    assert!(calls[0].is_cancelled());
    assert!(clock.pending_calls().is_empty());
    let _task3 = coop.cooperate([(), ()]);
    assert_eq!(clock.pending_calls().len(), 1);
}

// Twisted: test_cooperator.py CooperatorTests.test_runningWhenStarted,
// test_runningWhenNotStarted, test_runningWhenRunning,
// test_runningWhenStopped
#[test]
fn is_running_follows_start_and_stop() {
    let clock = ManualClock::new();
    assert!(
        Cooperator::builder()
            .clock(clock.clone())
            .build()
            .is_running()
    );
    let c = Cooperator::builder()
        .clock(clock.clone())
        .started(false)
        .build();
    assert!(!c.is_running());
    c.start();
    assert!(c.is_running());
    c.stop();
    assert!(!c.is_running());
}

#[test]
fn a_cooperator_not_started_runs_its_tasks_after_start() {
    let clock = ManualClock::new();
    let c = Cooperator::builder()
        .clock(clock.clone())
        .started(false)
        .build();
    let d = c.coiterate([(), ()]);
    clock.advance(Duration::from_secs(1));
    assert!(clock.pending_calls().is_empty());
    assert!(!d.is_called());
    c.start();
    clock.pump(&[Cooperator::TICK_DELAY; 2]);
    success_result_of(&d);
}

// ---------------------------------------------------------------------------
// AliasTests
// ---------------------------------------------------------------------------

// Twisted: test_cooperator.py AliasTests.test_cooperate
#[tokio::test(start_paused = true)]
async fn the_default_cooperator_runs_the_iterator() {
    let (d, r) = Deferred::<&str>::new();
    let mut r = Some(r);
    let mut n = 0;
    let steps = std::iter::from_fn(move || {
        n += 1;
        if n == 4 {
            r.take().unwrap().callback("yay").unwrap();
            return None;
        }
        Some(())
    });
    let task = cooperate(steps);
    assert!(task.finished().is_none());
    assert_eq!(d.await.unwrap(), "yay");
    task.when_done().await.unwrap();
    assert_eq!(task.finished(), Some(TaskFinished::Done));
}

#[tokio::test(start_paused = true)]
async fn the_default_cooperator_shares_ticks_between_its_tasks() {
    let log = Log::<String>::new();
    let (a, b) = (log.clone(), log.clone());
    let first = coiterate((0..2).map(move |i| a.push(format!("a{i}"))));
    let second = coiterate((0..2).map(move |i| b.push(format!("b{i}"))));
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(log.get(), ["a0", "b0", "a1", "b1"]);
}

// ---------------------------------------------------------------------------
// RunStateTests
// ---------------------------------------------------------------------------

/// What the worker did at each step (Twisted's `self.work`).
#[derive(Debug)]
enum Work {
    Number(u32),
    Deferred(Resolver<()>),
}

#[derive(Default)]
struct Control {
    defer_next: bool,
    stop_next: bool,
    die_next: bool,
}

/// Twisted's RunStateTests fixture: a cooperator with a fake scheduler
/// whose ticks do one step, and a task running `worker`.
struct RunState {
    clock: ManualClock,
    cooperator: Cooperator,
    task: CooperativeTask,
    work: Arc<Mutex<Vec<Work>>>,
    control: Arc<Mutex<Control>>,
}

impl RunState {
    fn new() -> Self {
        let clock = ManualClock::new();
        let cooperator = Cooperator::builder()
            .clock(clock.clone())
            .termination(|| || true)
            .build();
        let work = Arc::new(Mutex::new(Vec::new()));
        let control = Arc::new(Mutex::new(Control::default()));
        let task = cooperator.cooperate(Self::worker(work.clone(), control.clone()));
        cooperator.start();
        RunState {
            clock,
            cooperator,
            task,
            work,
            control,
        }
    }

    /// Twisted's `worker` generator: Deferreds when told to defer, an
    /// ascending count otherwise; ends or fails when told to.
    fn worker(
        work: Arc<Mutex<Vec<Work>>>,
        control: Arc<Mutex<Control>>,
    ) -> impl Iterator<Item = Result<CooperativeStep, UnhandledException>> + Send + 'static {
        let mut i = 0;
        std::iter::from_fn(move || {
            i += 1;
            let mut c = control.lock().unwrap();
            if c.defer_next {
                c.defer_next = false;
                let (d, r) = Deferred::<()>::new();
                work.lock().unwrap().push(Work::Deferred(r));
                Some(Ok(CooperativeStep::Wait(d)))
            } else if c.stop_next {
                None
            } else if c.die_next {
                Some(Err(UnhandledException))
            } else {
                work.lock().unwrap().push(Work::Number(i));
                Some(Ok(CooperativeStep::Continue))
            }
        })
    }

    /// Twisted's `FakeScheduler.pump()`.
    fn pump(&self) {
        self.clock.advance(Cooperator::TICK_DELAY);
    }

    fn numbers(&self) -> Vec<u32> {
        self.work
            .lock()
            .unwrap()
            .iter()
            .filter_map(|w| match w {
                Work::Number(n) => Some(*n),
                Work::Deferred(_) => None,
            })
            .collect()
    }

    fn work_len(&self) -> usize {
        self.work.lock().unwrap().len()
    }

    fn defer_next(&self) {
        self.control.lock().unwrap().defer_next = true;
    }

    fn stop_next(&self) {
        self.control.lock().unwrap().stop_next = true;
    }

    fn die_next(&self) {
        self.control.lock().unwrap().die_next = true;
    }
}

// Twisted: test_cooperator.py RunStateTests.test_pauseResume
#[test]
fn a_paused_task_does_no_work_until_resumed() {
    let t = RunState::new();
    t.pump();
    assert_eq!(t.numbers(), [1]);
    t.pump();
    assert_eq!(t.numbers(), [1, 2]);
    t.task.pause().unwrap();
    t.pump();
    assert_eq!(t.numbers(), [1, 2]);
    t.task.resume().unwrap();
    // Resuming itself does no work...
    assert_eq!(t.numbers(), [1, 2]);
    t.pump();
    // ...the next tick does.
    assert_eq!(t.numbers(), [1, 2, 3]);
}

// Twisted: test_cooperator.py RunStateTests.test_resumeNotPaused
#[test]
fn resuming_a_task_that_is_not_paused_is_not_paused() {
    let t = RunState::new();
    assert_eq!(t.task.resume(), Err(NotPaused {}));
    t.task.pause().unwrap();
    t.task.resume().unwrap();
    assert_eq!(t.task.resume(), Err(NotPaused {}));
}

// Twisted: test_cooperator.py RunStateTests.test_pauseTwice
#[test]
fn pauses_are_counted() {
    let t = RunState::new();
    t.task.pause().unwrap();
    t.pump();
    assert!(t.numbers().is_empty());
    t.task.pause().unwrap();
    t.pump();
    assert!(t.numbers().is_empty());
    t.task.resume().unwrap();
    t.pump();
    assert!(t.numbers().is_empty());
    t.task.resume().unwrap();
    t.pump();
    assert_eq!(t.numbers(), [1]);
}

// Twisted: test_cooperator.py RunStateTests.test_pauseWhileDeferred
#[test]
fn a_task_paused_while_it_waits_needs_both_the_fire_and_the_resume() {
    let t = RunState::new();
    t.defer_next();
    t.pump();
    assert_eq!(t.work_len(), 1);
    assert!(matches!(t.work.lock().unwrap()[0], Work::Deferred(_)));
    t.pump();
    assert_eq!(t.work_len(), 1);
    t.task.pause().unwrap();
    t.pump();
    assert_eq!(t.work_len(), 1);
    t.task.resume().unwrap();
    t.pump();
    assert_eq!(t.work_len(), 1);
    match &t.work.lock().unwrap()[0] {
        Work::Deferred(r) => r.callback(()).unwrap(),
        Work::Number(_) => unreachable!(),
    }
    t.pump();
    assert_eq!(t.work_len(), 2);
    assert_eq!(t.numbers(), [2]);
}

// Twisted: test_cooperator.py RunStateTests.test_whenDone (the Deferreds
// fire with `()`: the iterator was moved into the task)
#[test]
fn each_when_done_is_a_deferred_of_its_own() {
    let t = RunState::new();
    let (results1, results2) = (Log::new(), Log::new());
    let (r1, r2) = (results1.clone(), results2.clone());
    let final1 = t.task.when_done().add_callback(move |()| {
        r1.push(());
        Ok(1)
    });
    let final2 = t.task.when_done().add_callback(move |()| {
        r2.push(());
        Ok(2)
    });
    t.stop_next();
    t.pump();
    assert_eq!(results1.len(), 1);
    assert_eq!(results2.len(), 1);
    assert_eq!(success_result_of(&final1), 1);
    assert_eq!(success_result_of(&final2), 2);
}

// Twisted: test_cooperator.py RunStateTests.test_whenDoneError
#[test]
fn when_done_fails_with_the_iterator_error() {
    let t = RunState::new();
    let d = t.task.when_done();
    t.die_next();
    t.pump();
    assert!(failure_result_of(&d).is::<UnhandledException>());
}

// Twisted: test_cooperator.py RunStateTests.test_whenDoneStop
#[test]
fn when_done_fails_with_stopped_after_stop() {
    let t = RunState::new();
    let d = t.task.when_done();
    t.task.stop().unwrap();
    assert_eq!(
        failure_result_of(&d).downcast_ref(),
        Some(&TaskFinished::Stopped)
    );
}

// Twisted: test_cooperator.py RunStateTests.test_whenDoneAlreadyDone
#[test]
fn when_done_on_a_finished_task_has_fired() {
    let t = RunState::new();
    t.stop_next();
    t.pump();
    let d = t.task.when_done();
    success_result_of(&d);
}

// Twisted: test_cooperator.py RunStateTests.test_stopStops
#[test]
fn a_stopped_task_does_no_work_and_refuses_stop_and_pause() {
    let t = RunState::new();
    t.task.stop().unwrap();
    t.pump();
    assert_eq!(t.work_len(), 0);
    assert_eq!(t.task.stop(), Err(TaskFinished::Stopped));
    assert_eq!(t.task.pause(), Err(TaskFinished::Stopped));
    t.pump();
    assert_eq!(t.work_len(), 0);
    assert!(t.clock.pending_calls().is_empty());
}

// Twisted: test_cooperator.py RunStateTests.test_pauseStopResume
#[test]
fn resuming_a_paused_stopped_task_does_nothing() {
    let t = RunState::new();
    t.task.pause().unwrap();
    t.task.stop().unwrap();
    t.task.resume().unwrap();
    t.pump();
    assert_eq!(t.work_len(), 0);
}

// Twisted: test_cooperator.py RunStateTests.test_stopDeferred (the yielded
// Deferred was moved into the task: what is checked here is that its fire
// after the stop does no more work and reports nothing)
#[test]
fn a_task_stopped_while_it_waits_stays_stopped_when_the_deferred_fires() {
    let t = RunState::new();
    let ((), events) = capture_unhandled(|| {
        t.defer_next();
        t.pump();
        let Some(Work::Deferred(r)) = t.work.lock().unwrap().pop() else {
            unreachable!()
        };
        assert!(t.task.is_paused());
        t.pump();
        t.task.stop().unwrap();
        t.pump();
        r.callback(()).unwrap();
        t.pump();
    });
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(t.work_len(), 0);
}

// Twisted: test_cooperator.py RunStateTests.test_stopExhausted
#[test]
fn stopping_a_done_task_is_task_done() {
    let t = RunState::new();
    t.stop_next();
    t.pump();
    assert_eq!(t.task.stop(), Err(TaskFinished::Done));
}

// Twisted: test_cooperator.py RunStateTests.test_stopErrored
#[test]
fn stopping_a_failed_task_is_task_failed() {
    let t = RunState::new();
    let d = t.task.when_done();
    t.die_next();
    t.pump();
    assert_eq!(t.task.stop(), Err(TaskFinished::Failed));
    assert!(failure_result_of(&d).is::<UnhandledException>());
}

// Twisted: test_cooperator.py RunStateTests.test_stopCooperatorReentrancy
#[test]
fn stopping_the_cooperator_from_when_done_sees_the_task_finished() {
    let t = RunState::new();
    let phases = Log::<&str>::new();
    let (p, coop) = (phases.clone(), t.cooperator.clone());
    let d = t.task.when_done().add_callback(move |()| {
        p.push("done with the iterator");
        coop.stop();
        p.push("done");
        Ok(())
    });
    t.stop_next();
    t.pump();
    assert_eq!(phases.get(), ["done with the iterator", "done"]);
    success_result_of(&d);
}

// ---------------------------------------------------------------------------
// Where Rust differs or does better
// ---------------------------------------------------------------------------

// Twisted's stop() removes tasks from the list it iterates, so every other
// running task is skipped and its whenDone never fires.
#[test]
fn stop_stops_every_running_task() {
    let clock = ManualClock::new();
    let c = Cooperator::builder().clock(clock.clone()).build();
    let done: Vec<Deferred<()>> = (0..5).map(|_| c.coiterate(std::iter::repeat(()))).collect();
    c.stop();
    for d in &done {
        assert!(is_scheduler_stopped(&failure_result_of(d)));
    }
}

#[test]
fn a_panicking_step_fails_the_task_and_drops_the_iterator() {
    struct Drops(Arc<AtomicBool>);
    impl Drop for Drops {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = Drops(dropped.clone());
    let clock = ManualClock::new();
    let c = Cooperator::builder().clock(clock.clone()).build();
    let task = c.cooperate(std::iter::from_fn(move || -> Option<()> {
        let _keep = &guard;
        panic!("step failed")
    }));
    let d = task.when_done();
    clock.advance(Cooperator::TICK_DELAY);
    let f = failure_result_of(&d);
    assert!(f.is_panic() && f.to_string().contains("step failed"), "{f}");
    assert_eq!(task.finished(), Some(TaskFinished::Failed));
    assert!(dropped.load(Ordering::SeqCst));
}

#[test]
fn a_task_that_stops_itself_from_its_step_ends_there() {
    let clock = ManualClock::new();
    let c = Cooperator::builder()
        .clock(clock.clone())
        .termination(|| || true)
        .build();
    let slot: Arc<Mutex<Option<CooperativeTask>>> = Arc::default();
    let me = slot.clone();
    let steps = Log::new();
    let s = steps.clone();
    let task = c.cooperate(std::iter::from_fn(move || {
        s.push(());
        me.lock().unwrap().as_ref().unwrap().stop().unwrap();
        // Yielded after the stop: consumed, not reported, not waited on.
        Some(fail::<()>(Failure::msg("after the stop")))
    }));
    *slot.lock().unwrap() = Some(task.clone());
    let ((), events) = capture_unhandled(|| clock.pump(&[Cooperator::TICK_DELAY; 3]));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(steps.len(), 1);
    assert_eq!(task.finished(), Some(TaskFinished::Stopped));
    *slot.lock().unwrap() = None;
}

#[test]
fn without_a_runtime_the_tasks_fail_with_runtime_required() {
    let d = coiterate([(), ()]);
    assert!(failure_result_of(&d).is::<RuntimeRequiredError>());
    let d = Cooperator::new().coiterate([()]);
    assert!(failure_result_of(&d).is::<RuntimeRequiredError>());
}

// A runtime built without a timer: ticks are then tasks that only yield.
#[test]
fn a_runtime_without_a_timer_still_runs_the_tasks() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let log = Log::new();
    let l = log.clone();
    rt.block_on(async move {
        coiterate((0..3).map(move |i| l.push(i))).await.unwrap();
    });
    assert_eq!(log.get(), [0, 1, 2]);
}

// The default cooperator goes with its runtime, and with it the tasks that
// could never run again: their when_done fails, naming the owner, and
// nothing is reported.
#[test]
fn the_default_cooperator_goes_with_its_runtime() {
    let ((task, d), events) = capture_unhandled(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (task, d) = rt.block_on(async {
            let task = cooperate(std::iter::repeat(()));
            let d = task.when_done();
            tokio::task::yield_now().await;
            (task, d)
        });
        drop(rt);
        (task, d)
    });
    assert!(events.is_empty(), "{events:?}");
    let f = failure_result_of(&d);
    let e = f.downcast_ref::<ResolverDroppedError>().unwrap();
    assert_eq!(
        e.owner(),
        Some("tokio_deferred::CooperativeTask::when_done")
    );
    assert_eq!(task.finished(), Some(TaskFinished::SchedulerStopped));
    let f = failure_result_of(&task.when_done());
    assert!(f.is::<ResolverDroppedError>(), "{f}");
    // A new runtime gets a new default cooperator.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async { coiterate([(), ()]).await.unwrap() });
}

// A task resumed from another thread (a Deferred fired by a worker) goes
// on in the cooperator's next tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_fired_on_another_thread_resumes_its_task() {
    let log = Log::<u32>::new();
    let l = log.clone();
    let steps = (0..4u32).map(move |i| {
        let l = l.clone();
        defer_to_thread(move || Ok(i * i)).add_callback(move |v| {
            l.push(v);
            Ok(())
        })
    });
    coiterate(steps).await.unwrap();
    assert_eq!(log.get(), [0, 1, 4, 9]);
}

#[test]
fn debug_shows_the_state() {
    let clock = ManualClock::new();
    let c = Cooperator::builder().clock(clock.clone()).build();
    let task = c.cooperate([()]);
    task.pause().unwrap();
    assert!(format!("{c:?}").contains("running_tasks: 0"), "{c:?}");
    assert!(format!("{task:?}").contains("pauses: 1"), "{task:?}");
    task.stop().unwrap();
    assert!(format!("{task:?}").contains("Stopped"), "{task:?}");
}
