//! LoopingCall: Twisted's LoopTests / ReactorLoopTests on ManualClock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_deferred::{
    Clock, Deferred, Failure, LoopingCall, LoopingCallError, ManualClock, Resolver,
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

type Log<T> = Arc<Mutex<Vec<T>>>;

fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn taken<T: Clone>(l: &Log<T>) -> Vec<T> {
    l.lock().unwrap().clone()
}

#[derive(Debug, thiserror::Error)]
#[error("test exception")]
struct TestException;

/// A slot so a loop's own function can reach its LoopingCall.
type Slot = Arc<Mutex<Option<LoopingCall>>>;

fn slot() -> Slot {
    Arc::new(Mutex::new(None))
}

fn stop_via(slot: &Slot) {
    slot.lock().unwrap().clone().unwrap().stop().unwrap();
}

// Twisted: test_task.py LoopTests.testBasicFunction
#[test]
fn runs_now_then_on_each_interval_and_stop_fires_with_the_loop() {
    let clock = ManualClock::new();
    let calls = log();
    let c = calls.clone();
    let lc = LoopingCall::new(move || {
        c.lock().unwrap().push(("a", "b", None::<()>, "d"));
        Ok(())
    })
    .with_clock(clock.clone());
    let done = lc.start(secs(0.1), true).unwrap();
    clock.pump(&[secs(0.05), secs(0.1), secs(0.1)]);
    assert_eq!(taken(&calls).len(), 3);
    assert!(taken(&calls).iter().all(|c| *c == ("a", "b", None, "d")));
    lc.stop().unwrap();
    let fired = done.try_take().unwrap().unwrap();
    assert!(!fired.is_running());
    assert_eq!(fired.interval(), secs(0.1));
    assert!(clock.pending_calls().is_empty());
}

// Twisted: test_task.py LoopTests.testDelayedStart
#[test]
fn delayed_start_waits_one_interval() {
    let clock = ManualClock::new();
    let calls = log();
    let c = calls.clone();
    let lc = LoopingCall::new(move || {
        c.lock().unwrap().push(());
        Ok(())
    })
    .with_clock(clock.clone());
    let _done = lc.start(secs(0.1), false).unwrap();
    clock.pump(&[secs(0.05), secs(0.1), secs(0.1)]);
    assert_eq!(taken(&calls).len(), 2);
    lc.stop().unwrap();
}

// Twisted: test_task.py LoopTests.testStopAtOnce
#[test]
fn stop_at_once_leaves_no_calls() {
    let clock = ManualClock::new();
    let lc = LoopingCall::new(|| Ok(())).with_clock(clock.clone());
    let done = lc.start(Duration::ZERO, true).unwrap();
    lc.stop().unwrap();
    assert!(!lc.is_running());
    assert!(clock.pending_calls().is_empty());
    assert!(done.try_take().unwrap().is_ok());
}

// Twisted: test_task.py LoopTests.testStoppingBeforeDelayedStart
#[test]
fn stopping_before_a_delayed_start_never_runs() {
    let clock = ManualClock::new();
    let calls = log::<()>();
    let c = calls.clone();
    let lc = LoopingCall::new(move || {
        c.lock().unwrap().push(());
        Ok(())
    })
    .with_clock(clock.clone());
    let _done = lc.start(secs(10.0), false).unwrap();
    lc.stop().unwrap();
    assert!(clock.pending_calls().is_empty());
    clock.advance(secs(20.0));
    assert!(taken(&calls).is_empty());
}

// Twisted: test_task.py LoopTests.testBadDelay (a negative Duration cannot
// exist; the remaining misuse, starting twice, is a typed error)
#[test]
fn starting_twice_and_stopping_when_stopped_are_errors() {
    let clock = ManualClock::new();
    let lc = LoopingCall::new(|| Ok(())).with_clock(clock.clone());
    assert_eq!(lc.stop().unwrap_err(), LoopingCallError::NotRunning);
    assert_eq!(lc.reset().unwrap_err(), LoopingCallError::NotRunning);
    let _done = lc.start(secs(1.0), false).unwrap();
    assert_eq!(
        lc.start(secs(1.0), false).unwrap_err(),
        LoopingCallError::AlreadyRunning
    );
    lc.stop().unwrap();
}

// Twisted: test_task.py LoopTests.test_reset
#[test]
fn reset_restarts_the_schedule_from_now() {
    let clock = ManualClock::new();
    let ran = log();
    let r = ran.clone();
    let lc = LoopingCall::new(move || {
        r.lock().unwrap().push(());
        Ok(())
    })
    .with_clock(clock.clone());
    let _done = lc.start(secs(2.0), false).unwrap();
    clock.advance(secs(1.0));
    lc.reset().unwrap();
    clock.advance(secs(1.0));
    assert!(taken(&ran).is_empty());
    clock.advance(secs(1.0));
    assert_eq!(taken(&ran), [()]);
}

// Twisted: test_task.py LoopTests.test_callbackTimeSkips
#[test]
fn time_spent_in_the_function_skips_missed_slots() {
    let clock = ManualClock::new();
    let times = log();
    let duration = Arc::new(Mutex::new(2.0));
    let (c, t, dur) = (clock.clone(), times.clone(), duration.clone());
    let lc = LoopingCall::new(move || {
        t.lock().unwrap().push(c.now());
        c.advance(secs(*dur.lock().unwrap()));
        Ok(())
    })
    .with_clock(clock.clone());
    let _done = lc.start(secs(0.5), true).unwrap();
    assert_eq!(taken(&times), [secs(0.0)]);
    assert_eq!(clock.now(), secs(2.0));
    clock.advance(secs(0.0));
    assert_eq!(taken(&times), [secs(0.0)]);
    *duration.lock().unwrap() = 1.0;
    clock.advance(secs(0.5));
    assert_eq!(taken(&times), [secs(0.0), secs(2.5)]);
    assert_eq!(clock.now(), secs(3.5));
    clock.advance(secs(0.0));
    assert_eq!(taken(&times), [secs(0.0), secs(2.5)]);
    *duration.lock().unwrap() = 0.0;
    clock.advance(secs(0.5));
    assert_eq!(taken(&times), [secs(0.0), secs(2.5), secs(4.0)]);
    assert_eq!(clock.now(), secs(4.0));
}

// Twisted: test_task.py LoopTests.test_reactorTimeSkips
#[test]
fn clock_jumps_skip_missed_slots() {
    let clock = ManualClock::new();
    let times = log();
    let (c, t) = (clock.clone(), times.clone());
    let lc = LoopingCall::new(move || {
        t.lock().unwrap().push(c.now());
        Ok(())
    })
    .with_clock(clock.clone());
    let _done = lc.start(secs(0.5), true).unwrap();
    assert_eq!(taken(&times), [secs(0.0)]);
    clock.advance(secs(2.0));
    assert_eq!(taken(&times), [secs(0.0), secs(2.0)]);
    clock.advance(secs(1.0));
    assert_eq!(taken(&times), [secs(0.0), secs(2.0), secs(3.0)]);
    clock.advance(secs(0.0));
    assert_eq!(taken(&times), [secs(0.0), secs(2.0), secs(3.0)]);
}

fn counting(clock: &ManualClock) -> (LoopingCall, Log<(Duration, u64)>) {
    let times = log();
    let (c, t) = (clock.clone(), times.clone());
    let lc = LoopingCall::with_count(move |n| {
        t.lock().unwrap().push((c.now(), n));
        Ok(())
    })
    .with_clock(clock.clone());
    (lc, times)
}

// Twisted: test_task.py LoopTests.test_reactorTimeCountSkips
#[test]
fn with_count_counts_skipped_slots() {
    let clock = ManualClock::new();
    let (lc, times) = counting(&clock);
    let _done = lc.start(secs(0.5), true).unwrap();
    assert_eq!(taken(&times), [(secs(0.0), 1)]);
    clock.advance(secs(0.51));
    assert_eq!(taken(&times), [(secs(0.0), 1), (secs(0.51), 1)]);
    clock.advance(secs(1.51));
    assert_eq!(
        taken(&times),
        [(secs(0.0), 1), (secs(0.51), 1), (secs(2.02), 3)]
    );
    clock.advance(secs(0.0));
    assert_eq!(taken(&times).len(), 3);
}

// Twisted: test_task.py LoopTests.test_countLengthyIntervalCounts
#[test]
fn with_count_counts_only_whole_intervals() {
    let clock = ManualClock::new();
    let (lc, times) = counting(&clock);
    let _done = lc.start(secs(0.5), true).unwrap();
    assert_eq!(times.lock().unwrap().pop(), Some((secs(0.0), 1)));
    clock.advance(secs(0.75));
    assert_eq!(times.lock().unwrap().pop(), Some((secs(0.75), 1)));
    clock.advance(secs(0.75));
    assert_eq!(times.lock().unwrap().pop(), Some((secs(1.5), 2)));
}

// Twisted: test_task.py LoopTests.test_countLengthyIntervalCounts (its
// own numbers)
#[test]
fn with_count_does_not_count_a_late_call_twice() {
    let clock = ManualClock::new();
    let (lc, times) = counting(&clock);
    let _done = lc.start(secs(0.5), true).unwrap();
    assert_eq!(times.lock().unwrap().pop(), Some((secs(0.0), 1)));
    clock.advance(secs(0.51));
    assert_eq!(times.lock().unwrap().pop(), Some((secs(0.51), 1)));
    clock.advance(secs(0.875));
    assert_eq!(times.lock().unwrap().pop(), Some((secs(1.385), 1)));
    clock.advance(secs(0.125));
    assert_eq!(times.lock().unwrap().pop(), Some((secs(1.51), 1)));
}

// `reset()` moves the start: the last call, now less than one interval
// before it, is in interval 0 (Twisted's `_intervalOf` truncates toward
// zero), so the next call counts 1, not 2. Expected values from Twisted
// 26.10 run on the same schedule.
#[test]
fn with_count_after_reset_counts_from_the_new_start() {
    let clock = ManualClock::new();
    let (lc, times) = counting(&clock);
    let _done = lc.start(secs(1.0), true).unwrap();
    clock.advance(secs(0.5));
    lc.reset().unwrap();
    clock.pump(&[secs(0.5), secs(0.5)]);
    assert_eq!(taken(&times), [(secs(0.0), 1), (secs(1.5), 1)]);
    clock.pump(&[secs(0.5), secs(2.25), secs(0.75)]);
    assert_eq!(
        taken(&times),
        [
            (secs(0.0), 1),
            (secs(1.5), 1),
            (secs(4.25), 2),
            (secs(5.0), 1)
        ]
    );

    let clock = ManualClock::new();
    let (lc, times) = counting(&clock);
    let _done = lc.start(secs(1.0), false).unwrap();
    clock.advance(secs(1.0));
    clock.advance(secs(0.25));
    lc.reset().unwrap();
    clock.advance(secs(0.5));
    lc.reset().unwrap();
    clock.pump(&[secs(1.0), secs(3.5)]);
    assert_eq!(
        taken(&times),
        [(secs(1.0), 1), (secs(2.75), 1), (secs(6.25), 3)]
    );
}

// Twisted: test_task.py LoopTests.test_withCountFloatingPointBoundary
#[test]
fn with_count_adds_up_to_the_elapsed_intervals_and_is_never_zero() {
    let clock = ManualClock::new();
    let (lc, times) = counting(&clock);
    let _done = lc.start(secs(0.1), false).unwrap();
    for _ in 0..10 {
        clock.advance(secs(0.1));
    }
    assert_eq!(clock.now(), secs(1.0));
    let counts: Vec<u64> = taken(&times).iter().map(|(_, n)| *n).collect();
    assert_eq!(counts.iter().sum::<u64>(), 10);
    assert!(!counts.contains(&0));
}

// Twisted: test_task.py LoopTests.test_withCountIntervalZero
#[test]
fn with_count_interval_zero_always_counts_one() {
    let clock = ManualClock::new();
    let acc = log();
    let me = slot();
    let (a, m) = (acc.clone(), me.clone());
    let lc = LoopingCall::with_count(move |n| {
        a.lock().unwrap().push(n);
        if a.lock().unwrap().len() > 4 {
            stop_via(&m);
        }
        Ok(())
    })
    .with_clock(clock.clone());
    *me.lock().unwrap() = Some(lc.clone());
    let done = lc.start(Duration::ZERO, false).unwrap();
    clock.pump(&[Duration::ZERO; 5]);
    assert!(done.try_take().unwrap().is_ok());
    assert_eq!(taken(&acc), [1; 5]);
    *me.lock().unwrap() = None;
}

// Twisted: test_task.py LoopTests.test_withCountIntervalZeroDelay (adapted:
// the loop stops itself on the third call so advance(0) terminates)
#[test]
fn with_count_interval_zero_waits_for_a_returned_deferred() {
    let clock = ManualClock::new();
    let acc = log();
    let me = slot();
    let (inner, inner_r) = Deferred::<()>::new();
    let inner = Arc::new(Mutex::new(Some(inner)));
    let (a, m) = (acc.clone(), me.clone());
    let lc = LoopingCall::with_count(move |n| {
        a.lock().unwrap().push(n);
        let len = a.lock().unwrap().len();
        if len == 3 {
            stop_via(&m);
        }
        let pending = if len == 2 {
            inner.lock().unwrap().take()
        } else {
            None
        };
        pending.unwrap_or_else(|| tokio_deferred::succeed(()))
    })
    .with_clock(clock.clone());
    *me.lock().unwrap() = Some(lc.clone());
    let done = lc.start(Duration::ZERO, false).unwrap();
    clock.advance(Duration::ZERO);
    assert_eq!(taken(&acc), [1, 1]); // blocked on the returned Deferred
    clock.advance(secs(2.0));
    assert_eq!(taken(&acc), [1, 1]);
    inner_r.callback(()).unwrap();
    clock.advance(Duration::ZERO);
    assert_eq!(taken(&acc), [1, 1, 1]);
    assert!(done.try_take().unwrap().is_ok());
    *me.lock().unwrap() = None;
}

// Twisted: test_task.py ReactorLoopTests.test_deferredWithCount
#[test]
fn with_count_after_a_returned_deferred_includes_skipped_slots() {
    let clock = ManualClock::new();
    let counts = log();
    let (inner, inner_r) = Deferred::<()>::new();
    let inner = Arc::new(Mutex::new(Some(inner)));
    let c = counts.clone();
    let lc = LoopingCall::with_count(move |n| {
        c.lock().unwrap().push(n);
        inner
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| tokio_deferred::succeed(()))
    })
    .with_clock(clock.clone());
    let _done = lc.start(secs(0.2), false).unwrap();
    assert!(taken(&counts).is_empty());
    clock.pump(&[secs(0.2), secs(0.4)]);
    assert_eq!(taken(&counts), [1]);
    inner_r.callback(()).unwrap();
    clock.pump(&[secs(0.2)]);
    assert_eq!(taken(&counts), [1, 3]);
    lc.stop().unwrap();
}

// Twisted: test_task.py ReactorLoopTests.testFailure
#[test]
fn a_failure_stops_the_loop_and_fails_start() {
    let clock = ManualClock::new();
    let lc = LoopingCall::new(|| -> Result<(), Failure> { Err(TestException.into()) })
        .with_clock(clock.clone());
    let done = lc.start(secs(0.1), true).unwrap();
    assert!(done.try_take().unwrap().unwrap_err().is::<TestException>());
    assert!(!lc.is_running());
    assert!(clock.pending_calls().is_empty());
}

// Twisted: test_task.py ReactorLoopTests.testFailAndStop
#[test]
fn stop_then_failure_still_fails_start() {
    let clock = ManualClock::new();
    let me = slot();
    let m = me.clone();
    let lc = LoopingCall::new(move || -> Result<(), Failure> {
        stop_via(&m);
        Err(TestException.into())
    })
    .with_clock(clock.clone());
    *me.lock().unwrap() = Some(lc.clone());
    let done = lc.start(secs(0.1), true).unwrap();
    assert!(done.try_take().unwrap().unwrap_err().is::<TestException>());
    *me.lock().unwrap() = None;
}

#[test]
fn a_panic_stops_the_loop_and_fails_start() {
    let clock = ManualClock::new();
    let lc = LoopingCall::new(|| -> Result<(), Failure> { panic!("loop body") })
        .with_clock(clock.clone());
    let done = lc.start(secs(1.0), false).unwrap();
    clock.advance(secs(1.0));
    assert!(done.try_take().unwrap().unwrap_err().is_panic());
    assert!(!lc.is_running());
}

// Twisted: test_task.py ReactorLoopTests.testWaitDeferred
#[test]
fn nothing_is_rescheduled_until_the_returned_deferred_fires() {
    let clock = ManualClock::new();
    let me = slot();
    let runs = log();
    let (c, m, r) = (clock.clone(), me.clone(), runs.clone());
    let lc = LoopingCall::new(move || {
        r.lock().unwrap().push(c.now());
        let (d, resolver): (Deferred<()>, Resolver<()>) = Deferred::new();
        let m = m.clone();
        let d = d.add_callback(move |_| {
            stop_via(&m);
            Ok(())
        });
        c.call_later(secs(1.0), move || resolver.callback(()).unwrap());
        d
    })
    .with_clock(clock.clone());
    *me.lock().unwrap() = Some(lc.clone());
    let done = lc.start(secs(0.2), true).unwrap();
    clock.pump(&[secs(0.2), secs(0.8)]);
    assert_eq!(
        taken(&runs),
        [secs(0.0)],
        "no run while the Deferred was pending"
    );
    assert!(clock.pending_calls().is_empty());
    assert!(done.try_take().unwrap().is_ok());
    *me.lock().unwrap() = None;
}

// Twisted: test_task.py ReactorLoopTests.testFailurePropagation
#[test]
fn a_failed_returned_deferred_fails_start() {
    let clock = ManualClock::new();
    let c = clock.clone();
    let lc = LoopingCall::new(move || {
        let (d, r) = Deferred::<()>::new();
        c.call_later(secs(0.3), move || {
            r.errback(TestException).unwrap();
        });
        d
    })
    .with_clock(clock.clone());
    let done = lc.start(secs(1.0), true).unwrap();
    clock.pump(&[secs(0.3)]);
    assert!(done.try_take().unwrap().unwrap_err().is::<TestException>());
    assert!(clock.pending_calls().is_empty());
}

#[test]
fn stop_while_the_function_is_outstanding_fires_when_it_completes() {
    let clock = ManualClock::new();
    let (inner, inner_r) = Deferred::<()>::new();
    let inner = Arc::new(Mutex::new(Some(inner)));
    let lc = LoopingCall::new(move || {
        inner
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| tokio_deferred::succeed(()))
    })
    .with_clock(clock.clone());
    let done = lc.start(secs(1.0), true).unwrap();
    lc.stop().unwrap();
    assert!(done.try_take().is_none(), "waits for the outstanding run");
    inner_r.callback(()).unwrap();
    assert!(done.try_take().unwrap().is_ok());
    assert!(clock.pending_calls().is_empty());
}

#[test]
fn a_stopped_loop_can_be_started_again() {
    let clock = ManualClock::new();
    let runs = log();
    let r = runs.clone();
    let lc = LoopingCall::new(move || {
        r.lock().unwrap().push(());
        Ok(())
    })
    .with_clock(clock.clone());
    let first = lc.start(secs(1.0), true).unwrap();
    lc.stop().unwrap();
    assert!(first.try_take().unwrap().is_ok());
    let second = lc.start(secs(1.0), true).unwrap();
    clock.advance(secs(1.0));
    assert_eq!(taken(&runs).len(), 3);
    lc.stop().unwrap();
    assert!(second.try_take().unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn runs_on_the_paused_tokio_clock_by_default() {
    let runs = log();
    let r = runs.clone();
    let lc = LoopingCall::new(move || {
        r.lock().unwrap().push(tokio::time::Instant::now());
        Ok(())
    });
    let done = lc.start(secs(1.0), true).unwrap();
    tokio::time::sleep(secs(3.5)).await;
    assert_eq!(taken(&runs).len(), 4);
    lc.stop().unwrap();
    assert!(done.await.is_ok());
}
