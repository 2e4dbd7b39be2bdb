//! Deferred::add_timeout: Twisted's DeferredAddTimeoutTests, on ManualClock
//! and on Tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_deferred::{CancelledError, Deferred, Failure, ManualClock, TimeoutError};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

type Str = &'static str;

/// Twisted's `_overrideFunc`.
fn overridden(_: Result<Str, Failure>, _: Duration) -> Result<Str, Failure> {
    Ok("OVERRIDDEN")
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ValueError(&'static str);

/// Whether the timeout was the custom `_overrideFunc` (Twisted's `+Custom`
/// variants run the same scenario with it).
fn with_timeout(d: Deferred<Str>, clock: &ManualClock, custom: bool) -> Deferred<Str> {
    if custom {
        d.add_timeout_with(secs(10), clock, overridden)
    } else {
        d.add_timeout_with_clock(secs(10), clock)
    }
}

/// A Deferred whose canceller counts its calls, with its resolver.
fn counted_inner() -> (
    Deferred<Str>,
    tokio_deferred::Resolver<Str>,
    Arc<AtomicUsize>,
) {
    let cancels = Arc::new(AtomicUsize::new(0));
    let c = cancels.clone();
    let (d, r) = Deferred::with_canceller(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    (d, r, cancels)
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_timeoutChainable
#[test]
fn timeout_is_chainable() {
    let clock = ManualClock::new();
    let (d, r) = Deferred::<()>::new();
    let d = d
        .add_timeout_with_clock(secs(5), &clock)
        .add_callback(|_| Ok("done"));
    r.callback(()).unwrap();
    assert_eq!(d.try_take().unwrap().unwrap(), "done");
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_successResultBeforeTimeout
// and test_successResultBeforeTimeoutCustom
#[test]
fn success_before_timeout_disarms_it() {
    for custom in [false, true] {
        let clock = ManualClock::new();
        let (d, r) = Deferred::<Str>::new();
        let d = with_timeout(d, &clock, custom);
        let seen = Arc::new(Mutex::new(None));
        let (inner, inner_r, inner_cancels) = counted_inner();
        let s = seen.clone();
        let d = d.add_callback(move |v| {
            *s.lock().unwrap() = Some(v);
            inner
        });
        r.callback("results").unwrap();
        assert_eq!(*seen.lock().unwrap(), Some("results"));
        clock.advance(secs(15));
        // The inner Deferred was not cancelled: no result, canceller not run.
        assert!(!inner_r.is_called());
        assert_eq!(inner_cancels.load(Ordering::SeqCst), 0);
        assert!(d.try_take().is_none());
        assert!(clock.pending_calls().is_empty());
    }
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_failureBeforeTimeout
// and test_failureBeforeTimeoutCustom
#[test]
fn failure_before_timeout_disarms_it() {
    for custom in [false, true] {
        let clock = ManualClock::new();
        let (d, r) = Deferred::<Str>::new();
        let d = with_timeout(d, &clock, custom);
        let seen: Arc<Mutex<Option<Failure>>> = Arc::new(Mutex::new(None));
        let (inner, inner_r, inner_cancels) = counted_inner();
        let s = seen.clone();
        let d = d.add_errback(move |f| {
            *s.lock().unwrap() = Some(f);
            inner
        });
        let error = Failure::new(ValueError("fail"));
        r.errback(error.clone()).unwrap();
        let got = seen.lock().unwrap().clone().unwrap();
        assert!(got.ptr_eq(&error), "the errback saw that exact error");
        clock.advance(secs(15));
        assert!(!inner_r.is_called());
        assert_eq!(inner_cancels.load(Ordering::SeqCst), 0);
        assert!(d.try_take().is_none());
    }
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_timedOut
#[test]
fn timed_out_fails_with_timeout_error() {
    let clock = ManualClock::new();
    let (d, _r) = Deferred::<Str>::new();
    let d = d.add_timeout_with_clock(secs(10), &clock);
    assert!(d.try_take().is_none());
    clock.advance(secs(15));
    let f = d.try_take().unwrap().unwrap_err();
    assert_eq!(f.downcast_ref::<TimeoutError>().unwrap().timeout, secs(10));
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_timedOutCustom
#[test]
fn timed_out_custom_replaces_the_result() {
    let clock = ManualClock::new();
    let (d, _r) = Deferred::<Str>::new();
    let d = d.add_timeout_with(secs(10), &clock, overridden);
    assert!(d.try_take().is_none());
    clock.advance(secs(15));
    assert_eq!(d.try_take().unwrap().unwrap(), "OVERRIDDEN");
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_timedOutProvidedCancelSuccess
#[test]
fn timed_out_with_a_canceller_that_succeeds_keeps_its_value() {
    let clock = ManualClock::new();
    let (d, _r) = Deferred::<Str>::with_canceller(|r| r.callback("I was cancelled!").unwrap());
    let d = d.add_timeout_with_clock(secs(10), &clock);
    assert!(d.try_take().is_none());
    clock.advance(secs(15));
    assert_eq!(d.try_take().unwrap().unwrap(), "I was cancelled!");
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_timedOutProvidedCancelFailure
#[test]
fn timed_out_with_a_canceller_that_fails_keeps_its_failure() {
    let clock = ManualClock::new();
    let error = Failure::new(ValueError("what!"));
    let e = error.clone();
    let (d, _r) = Deferred::<Str>::with_canceller(move |r| r.errback(e).unwrap());
    let d = d.add_timeout_with_clock(secs(10), &clock);
    clock.advance(secs(15));
    let f = d.try_take().unwrap().unwrap_err();
    assert!(f.is::<ValueError>());
    assert!(f.ptr_eq(&error), "the very same failure");
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_cancelBeforeTimeout
// and test_cancelBeforeTimeoutCustom
#[test]
fn manual_cancel_before_timeout_stays_cancelled_error() {
    for custom in [false, true] {
        let clock = ManualClock::new();
        let (d, _r) = Deferred::<Str>::new();
        let d = with_timeout(d, &clock, custom);
        let seen: Arc<Mutex<Option<Failure>>> = Arc::new(Mutex::new(None));
        let (inner, inner_r, inner_cancels) = counted_inner();
        let s = seen.clone();
        let d = d.add_errback(move |f| {
            *s.lock().unwrap() = Some(f);
            inner
        });
        d.cancel();
        let got = seen.lock().unwrap().clone().unwrap();
        assert!(
            got.is::<CancelledError>(),
            "not TimeoutError, custom not called"
        );
        clock.advance(secs(15));
        assert!(!inner_r.is_called());
        assert_eq!(inner_cancels.load(Ordering::SeqCst), 0);
        assert!(d.try_take().is_none());
    }
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_providedCancelCalledBeforeTimeoutCustom
#[test]
fn custom_timeout_sees_the_canceller_failure_and_overrides_it() {
    let clock = ManualClock::new();
    let (d, _r) = Deferred::<Str>::with_canceller(|r| r.errback(ValueError("what!")).unwrap());
    let d = d.add_timeout_with(secs(10), &clock, overridden);
    clock.advance(secs(15));
    assert_eq!(d.try_take().unwrap().unwrap(), "OVERRIDDEN");
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_errbackAddedBeforeTimeout
#[test]
fn errback_added_before_timeout_sees_cancelled_then_result_is_timeout() {
    let clock = ManualClock::new();
    let (d, _r) = Deferred::<Str>::new();
    let seen: Arc<Mutex<Option<Failure>>> = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let d = d
        .add_errback(move |f: Failure| {
            *s.lock().unwrap() = Some(f.clone());
            Err(f)
        })
        .add_timeout_with_clock(secs(10), &clock);
    clock.advance(secs(15));
    assert!(seen.lock().unwrap().clone().unwrap().is::<CancelledError>());
    assert!(d.try_take().unwrap().unwrap_err().is::<TimeoutError>());
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_errbackAddedBeforeTimeoutSuppressesCancellation
#[test]
fn errback_added_before_timeout_that_swallows_cancel_gives_success() {
    let clock = ManualClock::new();
    let (d, _r) = Deferred::<Option<Str>>::new();
    let seen: Arc<Mutex<Option<Failure>>> = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let d = d
        .add_errback(move |f: Failure| {
            *s.lock().unwrap() = Some(f.clone());
            f.trap::<CancelledError>()?;
            Ok(None)
        })
        .add_timeout_with_clock(secs(10), &clock);
    clock.advance(secs(15));
    assert!(seen.lock().unwrap().clone().unwrap().is::<CancelledError>());
    assert_eq!(d.try_take().unwrap().unwrap(), None);
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_errbackAddedBeforeTimeoutCustom
// and test_errbackAddedBeforeTimeoutSuppressesCancellationCustom
#[test]
fn errback_added_before_custom_timeout_gives_overridden_either_way() {
    for swallow in [false, true] {
        let clock = ManualClock::new();
        let (d, _r) = Deferred::<Str>::new();
        let seen: Arc<Mutex<Option<Failure>>> = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let d = d
            .add_errback(move |f: Failure| {
                *s.lock().unwrap() = Some(f.clone());
                if swallow {
                    f.trap::<CancelledError>()?;
                    Ok("swallowed")
                } else {
                    Err(f)
                }
            })
            .add_timeout_with(secs(10), &clock, overridden);
        clock.advance(secs(15));
        assert!(seen.lock().unwrap().clone().unwrap().is::<CancelledError>());
        assert_eq!(d.try_take().unwrap().unwrap(), "OVERRIDDEN");
    }
}

// Twisted: test_defer.py DeferredAddTimeoutTests.test_callbackAddedToCancelerBeforeTimeout
// and test_callbackAddedToCancelerBeforeTimeoutCustom
#[test]
fn callback_added_before_timeout_sees_the_canceller_value() {
    for custom in [false, true] {
        let clock = ManualClock::new();
        let (d, _r) = Deferred::<Str>::with_canceller(|r| r.callback("success").unwrap());
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let d = d.add_callback(move |v| {
            *s.lock().unwrap() = Some(v);
            Ok(v)
        });
        let d = with_timeout(d, &clock, custom);
        clock.advance(secs(15));
        assert_eq!(*seen.lock().unwrap(), Some("success"));
        let expected = if custom { "OVERRIDDEN" } else { "success" };
        assert_eq!(d.try_take().unwrap().unwrap(), expected);
    }
}

// Twisted: observed behaviour (reference §2.8): a timeout covers an earlier
// callback's unfired Deferred and the cancel is forwarded to it.
#[test]
fn timeout_forwards_cancel_to_the_deferred_being_waited_on() {
    let clock = ManualClock::new();
    let (d, r) = Deferred::<Str>::new();
    let (inner, inner_r, inner_cancels) = counted_inner();
    let inner_seen: Arc<Mutex<Option<Failure>>> = Arc::new(Mutex::new(None));
    let s = inner_seen.clone();
    let inner = inner.add_errback(move |f: Failure| {
        *s.lock().unwrap() = Some(f.clone());
        Err(f)
    });
    let d = d
        .add_callback(move |_| inner)
        .add_timeout_with_clock(secs(10), &clock);
    r.callback("go").unwrap();
    assert!(d.try_take().is_none());
    clock.advance(secs(10));
    assert_eq!(inner_cancels.load(Ordering::SeqCst), 1);
    assert!(inner_r.is_called());
    assert!(
        inner_seen
            .lock()
            .unwrap()
            .clone()
            .unwrap()
            .is::<CancelledError>()
    );
    assert!(d.try_take().unwrap().unwrap_err().is::<TimeoutError>());
}

// Twisted: #5786 use case (connect timeout then query timeout), reference §2.8
#[test]
fn multiple_timeouts_each_cover_their_own_prefix() {
    let clock = ManualClock::new();
    let (connect, connected) = Deferred::<Str>::new();
    let (query, query_r) = Deferred::<Str>::new();
    let d = connect
        .add_timeout_with_clock(secs(5), &clock) // connect timeout
        .add_callback(move |_| query)
        .add_timeout_with_clock(secs(30), &clock); // whole-operation timeout
    clock.advance(secs(4));
    connected.callback("conn").unwrap(); // first timer disarmed
    assert_eq!(clock.pending_calls().len(), 1);
    clock.advance(secs(10)); // t = 14: past the connect timeout, nothing happens
    assert!(d.try_take().is_none());
    assert!(!query_r.is_called());
    clock.advance(secs(16)); // t = 30: the second one fires
    assert!(query_r.is_called(), "the query was cancelled");
    let f = d.try_take().unwrap().unwrap_err();
    assert_eq!(f.downcast_ref::<TimeoutError>().unwrap().timeout, secs(30));
}

#[test]
fn timeout_on_an_already_fired_deferred_leaves_no_timer() {
    let clock = ManualClock::new();
    let d = tokio_deferred::succeed("now").add_timeout_with_clock(secs(1), &clock);
    assert!(clock.pending_calls().is_empty());
    assert_eq!(d.try_take().unwrap().unwrap(), "now");
}

#[tokio::test(start_paused = true)]
async fn add_timeout_on_the_paused_tokio_clock() {
    let (d, _r) = Deferred::<Str>::new();
    let f = d.add_timeout(secs(3)).await.unwrap_err();
    assert!(f.is::<TimeoutError>());

    let (d, r) = Deferred::<Str>::new();
    let d = d.add_timeout(secs(3));
    tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        r.callback("in time").unwrap();
    });
    assert_eq!(d.await.unwrap(), "in time");
}

/// Twisted's "Asynchronous Recipes: Setting timeouts", from
/// `examples/timeout_recipe.rs`.
#[path = "../examples/timeout_recipe.rs"]
#[allow(dead_code)] // the example's own main() is unused here
mod recipe;

// Twisted: docs "Asynchronous Recipes: Setting timeouts"
#[test]
fn recipe_result_in_time_cancels_the_timeout_handler() {
    let clock = ManualClock::new();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let d = recipe::timeout_setter(&clock, recipe::DUMMY_TIME, move || {
        f.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(clock.pending_calls().len(), 2);
    clock.advance(recipe::DUMMY_TIME);
    assert_eq!(d.try_take().unwrap().unwrap(), "RESULT");
    assert!(
        clock.pending_calls().is_empty(),
        "the timeout call was cancelled"
    );
    clock.advance(recipe::TIMEOUT);
    assert_eq!(fired.load(Ordering::SeqCst), 0);
}

// Twisted: docs "Asynchronous Recipes: Setting timeouts"
#[test]
fn recipe_slow_result_runs_the_timeout_handler() {
    let clock = ManualClock::new();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let d = recipe::timeout_setter(&clock, recipe::TIMEOUT * 2, move || {
        f.fetch_add(1, Ordering::SeqCst);
    });
    clock.advance(recipe::TIMEOUT);
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert!(
        d.try_take().is_none(),
        "the recipe's handler does not end the task"
    );
    clock.advance(recipe::TIMEOUT);
    assert_eq!(d.try_take().unwrap().unwrap(), "RESULT");
}

#[test]
fn recipe_with_add_timeout() {
    let clock = ManualClock::new();
    let d = recipe::with_add_timeout(&clock, recipe::DUMMY_TIME);
    clock.advance(recipe::DUMMY_TIME);
    assert_eq!(d.try_take().unwrap().unwrap(), "RESULT");
    assert!(clock.pending_calls().is_empty());

    let d = recipe::with_add_timeout(&clock, recipe::TIMEOUT * 2);
    clock.advance(recipe::TIMEOUT);
    assert!(d.try_take().unwrap().unwrap_err().is::<TimeoutError>());
}

#[test]
fn recipe_example_main_runs() {
    recipe::main_for_tests();
}
