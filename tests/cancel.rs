//! Cancellation (Twisted's DeferredCancellerTests).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tokio_deferred::*;

fn counter() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let c = Arc::new(AtomicUsize::new(0));
    (c.clone(), c)
}

// Twisted: test_defer.py DeferredCancellerTests.test_noCanceller
#[test]
fn cancel_without_canceller_fails_with_cancelled_error() {
    let cb = Log::<()>::new();
    let (d, _r) = Deferred::<()>::new();
    let c = cb.clone();
    let d = d.add_callbacks(
        move |v| {
            c.push(v);
            Ok(false)
        },
        |f| Ok(f.is::<CancelledError>()),
    );
    d.cancel();
    assert!(success_result_of(&d));
    assert!(cb.get().is_empty());
}

// Twisted: test_defer.py DeferredCancellerTests.test_raisesAfterCancelAndCallback
#[test]
fn without_canceller_one_late_callback_is_swallowed() {
    let (d, r) = Deferred::<()>::new();
    d.cancel();
    r.callback(()).unwrap(); // swallowed
    assert!(r.callback(()).is_err());
    assert!(r.errback(Failure::msg("x")).is_err());
    assert!(failure_result_of(&d).is::<CancelledError>());
}

// Twisted: test_defer.py DeferredCancellerTests.test_raisesAfterCancelAndErrback
#[test]
fn without_canceller_one_late_errback_is_swallowed() {
    let (d, r) = Deferred::<()>::new();
    d.cancel();
    r.errback(Failure::msg("late")).unwrap(); // swallowed
    assert!(r.callback(()).is_err());
    assert!(failure_result_of(&d).is::<CancelledError>());
}

// Twisted: test_defer.py test_noCancellerMultipleCancelsAfterCancelAndCallback
// and test_noCancellerMultipleCancel
#[test]
fn cancelling_twice_changes_nothing() {
    let (d, r) = Deferred::<()>::new();
    let seen = Log::new();
    let s = seen.clone();
    let d = d.add_errback(move |f| {
        s.push(f.clone());
        Err(f)
    });
    d.cancel();
    r.callback(()).unwrap();
    d.cancel();
    d.cancel();
    assert_eq!(seen.len(), 1);
    assert!(seen.get()[0].is::<CancelledError>());
    let last = failure_result_of(&d);
    assert!(last.ptr_eq(&seen.get()[0]));
}

// Twisted: test_defer.py DeferredCancellerTests.test_cancellerMultipleCancel
// and test_simpleCanceller
#[test]
fn the_canceller_runs_once_and_nothing_is_swallowed_afterwards() {
    let (count, c) = counter();
    let (d, r) = Deferred::<()>::with_canceller(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    d.cancel();
    d.cancel();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(
        r.callback(()).is_err(),
        "with a canceller, no late fire is swallowed"
    );
    assert!(r.errback(Failure::msg("x")).is_err());
    assert!(failure_result_of(&d).is::<CancelledError>());
}

// Twisted: test_defer.py DeferredCancellerTests.test_cancellerArg
#[test]
fn the_canceller_gets_a_resolver_of_the_same_deferred() {
    let (d, _r) = Deferred::<&str>::with_canceller(|r| {
        r.callback("from the canceller").unwrap();
    });
    d.cancel();
    assert_eq!(success_result_of(&d), "from the canceller");
}

// Twisted: test_defer.py test_cancelAfterCallback / test_cancelAfterErrback
#[test]
fn cancelling_a_fired_deferred_does_nothing() {
    let (count, c) = counter();
    let (d, r) = Deferred::<&str>::with_canceller(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    r.callback("biff!").unwrap();
    d.cancel();
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert_eq!(success_result_of(&d), "biff!");

    let (count, c) = counter();
    let (d, r) = Deferred::<&str>::with_canceller(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    r.errback(GenericError("x".into())).unwrap();
    d.cancel();
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert!(failure_result_of(&d).is::<GenericError>());
}

// Twisted: test_defer.py DeferredCancellerTests.test_cancellerThatErrbacks
#[test]
fn a_canceller_that_errbacks_wins_over_cancelled_error() {
    let (d, _r) = Deferred::<()>::with_canceller(|r| {
        r.errback(GenericError("canceller".into())).unwrap();
    });
    d.cancel();
    assert!(failure_result_of(&d).is::<GenericError>());
}

// Twisted: test_defer.py DeferredCancellerTests.test_cancellerThatCallbacks
#[test]
fn a_canceller_that_callbacks_gives_a_success() {
    let (d, _r) = Deferred::<&str>::with_canceller(|r| {
        r.callback("hello!").unwrap();
    });
    let d = d.add_errback(|_| -> Result<&str, Failure> { panic!("no errback") });
    d.cancel();
    assert_eq!(success_result_of(&d), "hello!");
}

// Twisted: test_defer.py DeferredCancellerTests.test_cancelNestedDeferred
#[test]
fn cancel_goes_to_the_chained_inner_deferred() {
    let (inner_count, c) = counter();
    let (b, _br) = Deferred::<()>::with_canceller(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let (a, ar) = Deferred::<()>::with_canceller(|_| panic!("a's canceller must not run"));
    ar.callback(()).unwrap();
    let a = a.add_callback(move |_| b);
    a.cancel();
    let a = a.add_callbacks(|_| Ok(false), |f| Ok(f.is::<CancelledError>()));
    assert_eq!(inner_count.load(Ordering::SeqCst), 1);
    assert!(success_result_of(&a));
}

#[test]
fn cancel_forwards_down_a_deep_chain_iteratively() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let (count, c) = counter();
            let (innermost, _r) = Deferred::<u8>::with_canceller(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            });
            let mut d = innermost;
            for _ in 0..200_000 {
                let prev = d;
                d = succeed(()).add_callback(move |_| prev);
            }
            d.cancel();
            assert_eq!(count.load(Ordering::SeqCst), 1);
            assert!(failure_result_of(&d).is::<CancelledError>());
        })
        .unwrap()
        .join()
        .unwrap();
}

// Twisted: test_canceller_circular_reference_*: the canceller is dropped
// when the Deferred fires.
#[test]
fn the_canceller_is_dropped_when_the_deferred_fires() {
    let token = Arc::new(());
    let t = token.clone();
    let (d, r) = Deferred::<()>::with_canceller(move |_| drop(t));
    assert_eq!(Arc::strong_count(&token), 2);
    r.callback(()).unwrap();
    assert_eq!(Arc::strong_count(&token), 1);
    drop(d);
}

// Twisted #9534: a canceller that raises leaves the Deferred unfired and
// cancel() raises. Here the panic becomes the Deferred's failure.
#[test]
fn a_panicking_canceller_leaves_the_deferred_failed() {
    let (d, r) = Deferred::<()>::with_canceller(|_| panic!("canceller bug"));
    d.cancel(); // does not unwind
    let f = failure_result_of(&d);
    assert!(f.is_panic());
    assert!(f.to_string().contains("canceller bug"));
    assert!(r.callback(()).is_err());
}

#[test]
fn cancel_handle_cancels_without_owning() {
    let (d, _r) = Deferred::<()>::new();
    let h = d.cancel_handle();
    let h2 = h.clone();
    std::thread::spawn(move || h2.cancel()).join().unwrap();
    assert!(failure_result_of(&d).is::<CancelledError>());
    drop(d);
    h.cancel(); // the state may be gone: nothing happens
    assert!(format!("{h:?}").contains("CancelHandle"));
}

#[tokio::test]
async fn dropping_a_deferred_does_not_cancel_it() {
    let (count, c) = counter();
    let (d, r) = Deferred::<u8>::with_canceller(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let log = Log::new();
    let l = log.clone();
    let d = d.add_callback(move |v| {
        l.push(v);
        Ok(())
    });
    drop(d);
    r.callback(4).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert_eq!(
        log.get(),
        [4],
        "callbacks still run after the handle is dropped"
    );
}

#[tokio::test]
async fn cancel_on_drop_cancels_a_losing_deferred() {
    let (d, _r) = Deferred::<u8>::new();
    let handle = d.cancel_handle();
    let seen = Log::new();
    let s = seen.clone();
    let d = d.add_errback(move |f| {
        s.push(f.is::<CancelledError>());
        Err(f)
    });
    tokio::select! {
        _ = d.cancel_on_drop() => panic!("must not complete"),
        _ = tokio::task::yield_now() => {}
    }
    assert_eq!(seen.get(), [true]);
    drop(handle);

    // A guard that completes does not cancel.
    let (d, r) = Deferred::<u8>::with_canceller(|_| panic!("no cancel expected"));
    r.callback(1).unwrap();
    assert_eq!(d.cancel_on_drop().await.unwrap(), 1);
    // into_inner disarms it.
    let (d, r) = Deferred::<u8>::with_canceller(|_| panic!("no cancel expected"));
    let d = d.cancel_on_drop().into_inner().unwrap();
    r.callback(2).unwrap();
    assert_eq!(d.await.unwrap(), 2);
}

// Found while reviewing LocalDeferred: two Deferreds waiting on each other
// (A's callback returned B, B's returned A) made cancel() loop forever.
// It now stops (Brent's cycle detection in `cancel_core`); Twisted raises
// RecursionError there.
#[test]
fn cancelling_deferreds_that_wait_on_each_other_returns() {
    use std::sync::Mutex;
    let a_cell: Arc<Mutex<Option<Deferred<u32>>>> = Arc::default();
    let a2 = a_cell.clone();
    let (b, br) = Deferred::<u32>::new();
    let b = b.add_callback(move |_| a2.lock().unwrap().take().unwrap());
    let b_cell = Mutex::new(Some(b));
    let a = succeed(0u32).add_callback(move |_| b_cell.lock().unwrap().take().unwrap());
    let handle = a.cancel_handle();
    *a_cell.lock().unwrap() = Some(a);
    br.callback(1).unwrap();
    handle.cancel();
    handle.cancel();
    assert!(a_cell.lock().unwrap().is_none());
}

// ---------------------------------------------------------------------------
// with_canceller_from: the canceller is made from the Resolver (Twisted's
// `d = Deferred(lambda _: call.cancel()); call = reactor.callLater(5,
// d.callback, v)`).
// ---------------------------------------------------------------------------

/// The `callLater` shape on a ManualClock.
fn call_later_deferred(clock: &ManualClock, value: u32) -> Deferred<u32> {
    Deferred::with_canceller_from(|resolver: Resolver<u32>| {
        let call = clock.call_later(std::time::Duration::from_secs(5), move || {
            let _ = resolver.callback(value);
        });
        move |_: &Resolver<u32>| {
            let _ = call.cancel();
        }
    })
}

#[test]
fn a_canceller_made_from_the_resolver_stops_the_timer_that_holds_it() {
    let clock = ManualClock::new();
    let d = call_later_deferred(&clock, 7);
    assert_eq!(clock.pending_calls().len(), 1);
    d.cancel();
    assert!(clock.pending_calls().is_empty());
    assert!(failure_result_of(&d).is::<CancelledError>());
    clock.advance(std::time::Duration::from_secs(10)); // nothing left to run

    // Not cancelled: the timer fires it, and a late cancel does nothing.
    let d = call_later_deferred(&clock, 8);
    clock.advance(std::time::Duration::from_secs(5));
    d.cancel();
    assert_eq!(success_result_of(&d), 8);
}

#[test]
fn a_canceller_from_a_resolver_that_fired_at_once_is_dropped_unused() {
    let (ran, r) = counter();
    let d = Deferred::<u8>::with_canceller_from(|resolver| {
        resolver.callback(1).unwrap();
        move |_: &Resolver<u8>| {
            r.fetch_add(1, Ordering::SeqCst);
        }
    });
    d.cancel();
    assert_eq!(success_result_of(&d), 1);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // Dropped: nothing holds the counter's other handle any more.
    assert_eq!(Arc::strong_count(&ran), 1);
}

#[test]
fn a_panic_while_making_the_canceller_fails_the_deferred() {
    let d = Deferred::<u8>::with_canceller_from(|_resolver| -> fn(&Resolver<u8>) {
        panic!("could not start");
    });
    let f = failure_result_of(&d);
    assert!(f.is_panic(), "{f}");
    assert!(f.to_string().contains("could not start"), "{f}");
}

#[test]
fn a_resolver_dropped_by_make_fails_the_deferred_as_any_other() {
    let d = Deferred::<u8>::with_canceller_from(|resolver| {
        drop(resolver);
        |_: &Resolver<u8>| {}
    });
    assert!(failure_result_of(&d).is::<ResolverDroppedError>());
}

#[test]
fn local_deferred_with_canceller_from_runs_the_canceller_it_made() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let pending: Rc<RefCell<Vec<LocalResolver<u8>>>> = Rc::default();
    let timers = pending.clone();
    let d = LocalDeferred::with_canceller_from(move |resolver| {
        timers.borrow_mut().push(resolver);
        move |r: &LocalResolver<u8>| {
            timers.borrow_mut().clear();
            r.callback(9).unwrap();
        }
    });
    d.cancel();
    assert!(pending.borrow().is_empty());
    assert_eq!(d.try_take().unwrap().unwrap(), 9);

    let d = LocalDeferred::<u8>::with_canceller_from(|_resolver| -> fn(&LocalResolver<u8>) {
        panic!("no timer")
    });
    assert!(d.try_take().unwrap().unwrap_err().is_panic());
}
