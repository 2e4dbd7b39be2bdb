//! Clocks, delayed calls and defer_later.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_deferred::{
    CancelledError, Clock, DelayedCall, DelayedCallError, Failure, ManualClock, TokioClock,
    defer_later, defer_later_with_clock,
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

// Twisted: test_task.py ClockTests.testSeconds
#[test]
fn new_manual_clock_starts_at_zero() {
    assert_eq!(ManualClock::new().now(), Duration::ZERO);
}

// Twisted: test_task.py ClockTests.testCallLater
#[test]
fn call_later_records_time_and_is_active() {
    let clock = ManualClock::new();
    let call = clock.call_later(secs(1.0), || {});
    assert_eq!(call.time(), secs(1.0));
    assert!(call.active());
}

// Twisted: test_task.py ClockTests.testCallLaterCancelled
#[test]
fn cancelled_call_is_inactive() {
    let clock = ManualClock::new();
    let call = clock.call_later(secs(1.0), || {});
    call.cancel().unwrap();
    assert!(!call.active());
    assert!(call.is_cancelled());
    assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCancelled));
    assert_eq!(
        call.reset(secs(1.0)),
        Err(DelayedCallError::AlreadyCancelled)
    );
    assert_eq!(
        call.delay(secs(1.0)),
        Err(DelayedCallError::AlreadyCancelled)
    );
}

// Twisted: test_task.py ClockTests.test_getDelayedCalls / test_getDelayedCallsEmpty
#[test]
fn pending_calls_lists_exactly_the_pending_calls() {
    let clock = ManualClock::new();
    assert!(clock.pending_calls().is_empty());
    let c = clock.call_later(secs(1.0), || {});
    let pending = clock.pending_calls();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].ptr_eq(&c));
    c.cancel().unwrap();
    assert!(clock.pending_calls().is_empty());
}

// Twisted: test_task.py ClockTests.testAdvance
#[test]
fn advance_runs_calls_when_due() {
    let clock = ManualClock::new();
    let events = log();
    let e = events.clone();
    let c = clock.call_later(secs(2.0), move || e.lock().unwrap().push(()));
    clock.advance(secs(1.0));
    assert!(taken(&events).is_empty());
    assert!(c.active());
    clock.advance(secs(1.0));
    assert_eq!(taken(&events).len(), 1);
    assert!(!c.active());
    assert!(c.is_called());
    assert_eq!(c.cancel(), Err(DelayedCallError::AlreadyCalled));
}

// Twisted: test_task.py ClockTests.testAdvanceCancel
#[test]
fn cancelling_a_call_from_inside_itself_is_already_called() {
    let clock = ManualClock::new();
    let slot: Arc<Mutex<Option<DelayedCall>>> = Arc::new(Mutex::new(None));
    let seen = log();
    let (s, l) = (slot.clone(), seen.clone());
    let call = clock.call_later(secs(1.0), move || {
        let me = s.lock().unwrap().clone().unwrap();
        l.lock().unwrap().push(me.cancel());
    });
    *slot.lock().unwrap() = Some(call);
    clock.advance(secs(1.0));
    assert_eq!(taken(&seen), [Err(DelayedCallError::AlreadyCalled)]);
}

// Twisted: test_task.py ClockTests.testCallLaterDelayed
#[test]
fn delay_postpones_a_call() {
    let clock = ManualClock::new();
    let events = log();
    let e = events.clone();
    let call = clock.call_later(secs(1.0), move || e.lock().unwrap().push((1, 2)));
    call.delay(secs(1.0)).unwrap();
    assert_eq!(call.time(), secs(2.0));
    clock.advance(secs(1.5));
    assert!(taken(&events).is_empty());
    clock.advance(secs(1.0));
    assert_eq!(taken(&events), [(1, 2)]);
}

// Twisted: test_task.py ClockTests.testCallLaterResetLater
#[test]
fn reset_later_moves_the_call() {
    let clock = ManualClock::new();
    let events = log();
    let e = events.clone();
    let call = clock.call_later(secs(2.0), move || e.lock().unwrap().push(()));
    clock.advance(secs(1.0));
    call.reset(secs(3.0)).unwrap();
    assert_eq!(call.time(), secs(4.0));
    clock.advance(secs(2.0));
    assert!(taken(&events).is_empty());
    clock.advance(secs(1.0));
    assert_eq!(taken(&events).len(), 1);
}

// Twisted: test_task.py ClockTests.testCallLaterResetSooner
#[test]
fn reset_sooner_moves_the_call() {
    let clock = ManualClock::new();
    let events = log();
    let e = events.clone();
    let call = clock.call_later(secs(4.0), move || e.lock().unwrap().push(()));
    call.reset(secs(3.0)).unwrap();
    assert_eq!(call.time(), secs(3.0));
    clock.advance(secs(3.0));
    assert_eq!(taken(&events).len(), 1);
}

fn record(
    clock: &ManualClock,
    events: &Log<(&'static str, Duration)>,
    name: &'static str,
) -> impl FnOnce() + Send + 'static {
    let (c, e) = (clock.clone(), events.clone());
    move || e.lock().unwrap().push((name, c.now()))
}

// Twisted: test_task.py ClockTests.test_callLaterKeepsCallsOrdered
#[test]
fn calls_run_in_time_order() {
    let clock = ManualClock::new();
    let events = log();
    clock.call_later(secs(2.0), record(&clock, &events, "b"));
    clock.call_later(secs(1.0), record(&clock, &events, "a"));
    clock.pump(&[secs(1.0); 3]);
    assert_eq!(taken(&events), [("a", secs(1.0)), ("b", secs(2.0))]);
}

// Twisted: test_task.py ClockTests.test_callLaterResetKeepsCallsOrdered
#[test]
fn reset_keeps_calls_ordered() {
    for b_first in [true, false] {
        let clock = ManualClock::new();
        let events = log();
        let (a, _b);
        if b_first {
            _b = clock.call_later(secs(2.0), record(&clock, &events, "b"));
            a = clock.call_later(secs(1.0), record(&clock, &events, "a"));
        } else {
            a = clock.call_later(secs(1.0), record(&clock, &events, "a"));
            _b = clock.call_later(secs(2.0), record(&clock, &events, "b"));
        }
        a.reset(secs(3.0)).unwrap();
        clock.pump(&[secs(1.0), secs(1.0), secs(1.0)]);
        assert_eq!(taken(&events), [("b", secs(2.0)), ("a", secs(3.0))]);
    }
}

// Twisted: test_task.py ClockTests.test_callLaterResetInsideCallKeepsCallsOrdered
#[test]
fn reset_inside_a_call_keeps_calls_ordered() {
    let clock = ManualClock::new();
    let events = log();
    let b = clock.call_later(secs(2.0), record(&clock, &events, "b"));
    let b2 = b.clone();
    clock.call_later(secs(1.0), move || {
        b2.reset(secs(3.0)).unwrap();
    });
    clock.call_later(secs(3.0), record(&clock, &events, "c"));
    clock.pump(&[secs(0.5); 10]);
    assert_eq!(taken(&events), [("c", secs(3.0)), ("b", secs(4.0))]);
}

// Twisted: observed behaviour of task.Clock (catalogue 139)
#[test]
fn equal_times_run_fifo_and_calls_made_during_advance_run_at_the_final_time() {
    let clock = ManualClock::new();
    let events = log();
    clock.call_later(secs(1.0), record(&clock, &events, "first"));
    let (c, e) = (clock.clone(), events.clone());
    clock.call_later(secs(1.0), move || {
        e.lock().unwrap().push(("second", c.now()));
        c.call_later(Duration::ZERO, record(&c, &e, "zero"));
    });
    clock.call_later(secs(1.0), record(&clock, &events, "third"));
    clock.advance(secs(1.0));
    assert_eq!(
        taken(&events),
        [
            ("first", secs(1.0)),
            ("second", secs(1.0)),
            ("third", secs(1.0)),
            ("zero", secs(1.0)),
        ]
    );
    assert!(clock.pending_calls().is_empty());
}

#[test]
fn a_panicking_call_is_contained_and_the_clock_goes_on() {
    let clock = ManualClock::new();
    let events = log();
    clock.call_later(secs(1.0), || panic!("boom in a timer"));
    clock.call_later(secs(1.0), record(&clock, &events, "after"));
    clock.advance(secs(1.0));
    assert_eq!(taken(&events), [("after", secs(1.0))]);
    clock.call_later(secs(1.0), record(&clock, &events, "later"));
    clock.advance(secs(1.0));
    assert_eq!(taken(&events).len(), 2);
}

#[test]
fn a_hundred_thousand_calls_with_cancels_and_resets_run_in_order() {
    let clock = ManualClock::new();
    let ran = Arc::new(Mutex::new(Vec::with_capacity(100_000)));
    let mut calls = Vec::with_capacity(100_000);
    for i in 0..100_000u64 {
        let r = ran.clone();
        // Times interleave so the heap really has to order them.
        let t = Duration::from_millis((i * 7919) % 100_000);
        calls.push(clock.call_later(t, move || r.lock().unwrap().push(i)));
    }
    // Cancel every third, push every fifth (not cancelled) past the end.
    for (i, c) in calls.iter().enumerate() {
        if i % 3 == 0 {
            c.cancel().unwrap();
        } else if i % 5 == 0 {
            c.reset(Duration::from_secs(200)).unwrap();
        }
    }
    let expected_pending = (0..100_000).filter(|i| i % 3 != 0).count();
    assert_eq!(clock.pending_calls().len(), expected_pending);
    clock.advance(Duration::from_secs(100));
    let first = taken(&ran);
    assert_eq!(
        first.len(),
        (0..100_000).filter(|i| i % 3 != 0 && i % 5 != 0).count()
    );
    // Each ran call ran in due order: times never decrease.
    let times: Vec<u64> = first.iter().map(|i| (i * 7919) % 100_000).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    clock.advance(Duration::from_secs(100));
    assert_eq!(taken(&ran).len(), expected_pending);
    assert!(clock.pending_calls().is_empty());
}

// Twisted: test_task.py DeferLaterTests.test_callback
#[test]
fn defer_later_fires_with_the_function_result_when_due() {
    let clock = ManualClock::new();
    let called = log();
    let c = called.clone();
    let d = defer_later_with_clock(&clock, secs(3.0), move || {
        c.lock().unwrap().push(("foo", "bar"));
        Ok("foobar")
    });
    clock.advance(secs(2.0));
    assert!(taken(&called).is_empty());
    assert!(!d.is_called());
    clock.advance(secs(1.0));
    assert_eq!(taken(&called), [("foo", "bar")]);
    assert_eq!(d.try_take().unwrap().unwrap(), "foobar");
}

#[derive(Debug, thiserror::Error)]
#[error("test error")]
struct TestError;

// Twisted: test_task.py DeferLaterTests.test_errback
#[test]
fn defer_later_fails_with_the_function_error() {
    let clock = ManualClock::new();
    let d = defer_later_with_clock(&clock, secs(1.0), || -> Result<(), Failure> {
        Err(TestError.into())
    });
    clock.advance(secs(1.0));
    assert!(d.try_take().unwrap().unwrap_err().is::<TestError>());
}

// Twisted: test_task.py DeferLaterTests.test_cancel
#[test]
fn cancelling_defer_later_removes_the_timer_and_fails_with_cancelled() {
    let clock = ManualClock::new();
    let called = log::<()>();
    let c = called.clone();
    let d = defer_later_with_clock(&clock, secs(1.0), move || {
        c.lock().unwrap().push(());
        Ok(())
    });
    d.cancel();
    assert!(clock.pending_calls().is_empty());
    assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    clock.advance(secs(2.0));
    assert!(taken(&called).is_empty());
}

// Twisted: test_task.py DeferLaterTests.test_noCallback
#[test]
fn defer_later_with_a_unit_function_fires_with_unit() {
    let clock = ManualClock::new();
    let d = defer_later_with_clock(&clock, secs(2.0), || Ok(()));
    clock.advance(secs(2.0));
    assert!(d.try_take().unwrap().is_ok());
}

#[test]
fn defer_later_may_return_a_deferred() {
    let clock = ManualClock::new();
    let (inner, r) = tokio_deferred::Deferred::<u8>::new();
    let d = defer_later_with_clock(&clock, secs(1.0), move || inner);
    clock.advance(secs(1.0));
    assert!(!d.is_waiting() || d.try_take().is_none());
    r.callback(9).unwrap();
    assert_eq!(d.try_take().unwrap().unwrap(), 9);
}

#[test]
fn defer_later_panic_becomes_a_failure() {
    let clock = ManualClock::new();
    let d = defer_later_with_clock(&clock, secs(1.0), || -> Result<(), Failure> {
        panic!("in defer_later")
    });
    clock.advance(secs(1.0));
    assert!(d.try_take().unwrap().unwrap_err().is_panic());
}

#[test]
fn defer_later_without_a_runtime_fails_with_a_clear_error() {
    let d = defer_later(secs(1.0), || Ok(1));
    let f = d.try_take().unwrap().unwrap_err();
    assert!(f.is::<tokio_deferred::RuntimeRequiredError>());
}

#[tokio::test(start_paused = true)]
async fn defer_later_runs_on_the_paused_tokio_clock() {
    let start = tokio::time::Instant::now();
    let d = defer_later(secs(30.0), || Ok("late"));
    assert_eq!(d.await.unwrap(), "late");
    assert!(tokio::time::Instant::now() - start >= secs(30.0));
}

#[tokio::test(start_paused = true)]
async fn defer_later_with_a_delay_past_any_instant_waits_and_can_be_cancelled() {
    let d = defer_later(std::time::Duration::MAX, || Ok(1));
    tokio::time::advance(secs(3600.0)).await;
    assert!(!d.is_called());
    d.cancel();
    assert!(d.await.unwrap_err().is::<CancelledError>());
}

#[tokio::test(start_paused = true)]
async fn tokio_clock_call_can_be_reset_delayed_and_cancelled() {
    let clock = TokioClock::new();
    let events = log();
    let e = events.clone();
    let c = clock.call_later(secs(10.0), move || e.lock().unwrap().push("a"));
    tokio::time::advance(secs(5.0)).await;
    c.reset(secs(10.0)).unwrap(); // now due at 15
    assert_eq!(c.time(), secs(15.0));
    tokio::time::advance(secs(6.0)).await; // t = 11
    tokio::task::yield_now().await;
    assert!(taken(&events).is_empty());
    c.delay(secs(1.0)).unwrap(); // due at 16
    tokio::time::advance(secs(4.5)).await; // t = 15.5
    tokio::task::yield_now().await;
    assert!(taken(&events).is_empty());
    tokio::time::advance(secs(1.0)).await; // t = 16.5
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(taken(&events), ["a"]);
    assert!(c.is_called());

    let e = events.clone();
    let c2 = clock.call_later(secs(1.0), move || e.lock().unwrap().push("b"));
    c2.cancel().unwrap();
    tokio::time::advance(secs(2.0)).await;
    tokio::task::yield_now().await;
    assert_eq!(taken(&events), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn tokio_clock_cancel_of_defer_later_stops_the_timer() {
    let called = log::<()>();
    let c = called.clone();
    let d = defer_later(secs(5.0), move || {
        c.lock().unwrap().push(());
        Ok(())
    });
    d.cancel();
    assert!(d.await.unwrap_err().is::<CancelledError>());
    tokio::time::advance(secs(10.0)).await;
    tokio::task::yield_now().await;
    assert!(taken(&called).is_empty());
}

#[tokio::test(start_paused = true)]
async fn tokio_clock_contains_panics() {
    let clock = TokioClock::new();
    clock.call_later(secs(1.0), || panic!("boom on tokio"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    clock.call_later(secs(2.0), move || tx.send(()).unwrap());
    rx.await.unwrap();
}

#[test]
fn time_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ManualClock>();
    assert_send_sync::<TokioClock>();
    assert_send_sync::<DelayedCall>();
    assert_send_sync::<Arc<dyn Clock>>();
    assert_send_sync::<tokio_deferred::LoopingCall>();
    #[cfg(feature = "fs")]
    assert_send_sync::<tokio_deferred::DeferredFilesystemLock>();
}

// Found by the conformance runner (K3): a pending defer_later_with_clock
// formed a cycle (Deferred -> canceller -> DelayedCall -> function ->
// Resolver -> Deferred) that outlived its ManualClock.
#[test]
fn a_pending_defer_later_is_freed_with_its_clock() {
    use std::sync::Arc;
    use tokio_deferred::{Failure, defer_later_with_clock};

    let held = Arc::new(());
    let clock = ManualClock::new();
    let inside = held.clone();
    let d = defer_later_with_clock(&clock, Duration::from_secs(5), || Ok::<u8, Failure>(1))
        .add_both(move |r| {
            let _keep = &inside;
            r
        });
    drop(d);
    drop(clock);
    assert_eq!(Arc::strong_count(&held), 1, "the callback chain was leaked");
}
