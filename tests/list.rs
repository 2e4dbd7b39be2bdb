//! DeferredList, gather_results, gather2/3, race, FirstError, FailureGroup.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod common;
use common::capture_unhandled;

use tokio_deferred::{
    CancelledError, Deferred, DeferredList, Failure, FailureGroup, FirstError, Gather,
    MessageError, PanicError, Resolver, fail, gather_results, gather2, gather3, race, succeed,
};

#[derive(Debug, thiserror::Error)]
#[error("generic error: {0}")]
struct GenericError(&'static str);

/// Runs `f` with a subscriber that counts the unhandled-error events it
/// emits on this thread.
fn count_unhandled<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let (r, events) = capture_unhandled(f);
    (r, events.len())
}

/// A Deferred whose canceller counts its calls (and optionally fires it).
fn counted<T: Send + 'static>(
    on_cancel: impl Fn(&Resolver<T>) + Send + 'static,
) -> (Deferred<T>, Resolver<T>, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let (d, r) = Deferred::with_canceller(move |r| {
        c.fetch_add(1, Ordering::SeqCst);
        on_cancel(r)
    });
    (d, r, count)
}

fn is_cancelled<T>(r: &Result<T, Failure>) -> bool {
    matches!(r, Err(f) if f.is::<CancelledError>())
}

// --- DeferredList -----------------------------------------------------------

// Twisted: test_defer.py DeferredListTests.testDeferredList
#[test]
fn list_reports_every_outcome_in_input_order() {
    let (d1, r1) = Deferred::<&str>::new();
    let (d2, r2) = Deferred::<&str>::new();
    let (d3, r3) = Deferred::<&str>::new();
    let dl = DeferredList::new([d1, d2, d3]).consume_errors().all();
    r1.callback("1").unwrap();
    assert!(!dl.is_called());
    r2.errback(GenericError("2")).unwrap();
    assert!(!dl.is_called());
    r3.callback("3").unwrap();
    let out = dl.try_take().unwrap().unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(*out[0].as_ref().unwrap(), "1");
    assert_eq!(
        out[1]
            .as_ref()
            .unwrap_err()
            .downcast_ref::<GenericError>()
            .unwrap()
            .0,
        "2"
    );
    assert_eq!(*out[2].as_ref().unwrap(), "3");
}

#[test]
fn list_keeps_input_order_when_inputs_fire_in_reverse() {
    let (ds, rs): (Vec<_>, Vec<_>) = (0..5).map(|_| Deferred::<usize>::new()).unzip();
    let dl = DeferredList::new(ds).all();
    for (i, r) in rs.iter().enumerate().rev() {
        r.callback(i * 10).unwrap();
    }
    let out: Vec<usize> = dl
        .try_take()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(out, [0, 10, 20, 30, 40]);
}

// Twisted: test_defer.py DeferredListTests.testEmptyDeferredList,
// DeferredListEmptyTests.testDeferredListEmpty
#[test]
fn empty_list_fires_at_once() {
    let dl = DeferredList::<u8>::new([]).all();
    assert!(dl.try_take().unwrap().unwrap().is_empty());
}

// Twisted: test_defer.py DeferredListTests.testEmptyDeferredList (the
// fireOnOneCallback half). Twisted never fires; we fail at once with an
// empty FailureGroup (documented decision).
#[test]
fn empty_first_success_fails_at_once_with_empty_failure_group() {
    let d = DeferredList::<u8>::new(Vec::new()).first_success();
    let failure = d.try_take().unwrap().unwrap_err();
    assert!(
        failure
            .downcast_ref::<FailureGroup>()
            .unwrap()
            .failures
            .is_empty()
    );
}

// Twisted: test_defer.py DeferredListTests.testDeferredListFireOnOneError
#[test]
fn fire_on_one_errback_fails_with_first_error() {
    let (d1, r1) = Deferred::<&str>::new();
    let (d2, r2) = Deferred::<&str>::new();
    let (d3, _r3) = Deferred::<&str>::new();
    let dl = DeferredList::new([d1, d2, d3])
        .fire_on_one_errback()
        .consume_errors()
        .all();
    r1.callback("1").unwrap();
    assert!(!dl.is_called());
    r2.errback(GenericError("from def2")).unwrap();
    let failure = dl.try_take().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 1);
    assert_eq!(
        first.failure.downcast_ref::<GenericError>().unwrap().0,
        "from def2"
    );
}

// Twisted: test_defer.py DeferredListTests.testDeferredListDontConsumeErrors
#[test]
fn failures_not_consumed_go_on_and_are_reported_unhandled() {
    let ((), unhandled) = count_unhandled(|| {
        let (d1, r1) = Deferred::<u8>::new();
        let dl = DeferredList::new([d1]).all();
        r1.errback(GenericError("Bang")).unwrap();
        let out = dl.try_take().unwrap().unwrap();
        assert_eq!(
            out[0]
                .as_ref()
                .unwrap_err()
                .downcast_ref::<GenericError>()
                .unwrap()
                .0,
            "Bang"
        );
    });
    assert_eq!(unhandled, 1);
}

// Twisted: test_defer.py DeferredListTests.testDeferredListConsumeErrors
#[test]
fn consumed_failures_are_not_reported() {
    let ((), unhandled) = count_unhandled(|| {
        let (d1, r1) = Deferred::<u8>::new();
        let dl = DeferredList::new([d1]).consume_errors().all();
        r1.errback(GenericError("Bang")).unwrap();
        let out = dl.try_take().unwrap().unwrap();
        assert!(out[0].as_ref().unwrap_err().is::<GenericError>());
    });
    assert_eq!(unhandled, 0);
}

// Twisted: test_defer.py DeferredListTests.testDeferredListFireOnOneErrorWithAlreadyFiredDeferreds
#[test]
fn fire_on_one_errback_with_already_failed_input_fails_during_construction() {
    let d1 = fail::<u8>(GenericError("Bang"));
    let (d2, _r2) = Deferred::<u8>::new();
    let dl = DeferredList::new([d1, d2])
        .fire_on_one_errback()
        .consume_errors()
        .all();
    let failure = dl.try_take().unwrap().unwrap_err();
    assert_eq!(failure.downcast_ref::<FirstError>().unwrap().index, 0);
}

// Twisted: test_defer.py DeferredListTests.testDeferredListWithAlreadyFiredDeferreds
#[test]
fn already_fired_inputs_fire_the_list_during_construction() {
    let dl = DeferredList::new([fail::<u8>(GenericError("Bang")), succeed(2)])
        .consume_errors()
        .all();
    let out = dl.try_take().unwrap().unwrap();
    assert!(out[0].is_err());
    assert_eq!(*out[1].as_ref().unwrap(), 2);
}

// Twisted: test_defer.py DeferredListTests.test_cancelDeferredList
#[test]
fn cancelling_the_list_cancels_every_input() {
    let (d1, _r1, c1) = counted::<u8>(|_| {});
    let (d2, _r2, c2) = counted::<u8>(|_| {});
    let dl = DeferredList::new([d1, d2]).consume_errors().all();
    dl.cancel();
    assert_eq!(
        (c1.load(Ordering::SeqCst), c2.load(Ordering::SeqCst)),
        (1, 1)
    );
    let out = dl.try_take().unwrap().unwrap();
    assert!(out.iter().all(is_cancelled));
}

// Twisted: test_defer.py DeferredListTests.test_cancelDeferredListWithFireOnOneCallback
#[test]
fn cancelling_first_success_fails_with_group_of_cancellations() {
    let (d1, _r1) = Deferred::<u8>::new();
    let (d2, _r2) = Deferred::<u8>::new();
    let dl = DeferredList::new([d1, d2]).consume_errors().first_success();
    dl.cancel();
    let failure = dl.try_take().unwrap().unwrap_err();
    let group = failure.downcast_ref::<FailureGroup>().unwrap();
    assert_eq!(group.failures.len(), 2);
    assert!(group.failures.iter().all(|f| f.is::<CancelledError>()));
}

// Twisted: test_defer.py DeferredListTests.test_cancelDeferredListWithFireOnOneErrback
#[test]
fn cancelling_fire_on_one_errback_list_fails_with_first_error_of_cancellation() {
    let (d1, _r1) = Deferred::<u8>::new();
    let (d2, _r2) = Deferred::<u8>::new();
    let dl = DeferredList::new([d1, d2])
        .fire_on_one_errback()
        .consume_errors()
        .all();
    dl.cancel();
    let failure = dl.try_take().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 0);
    assert!(first.failure.is::<CancelledError>());
}

// Twisted: test_defer.py DeferredListTests.test_cancelDeferredListCallback
#[test]
fn cancel_with_a_canceller_that_calls_back_records_its_value() {
    let (d1, _r1, _) = counted::<&str>(|r| r.callback("Callback Result").unwrap());
    let (d2, _r2) = Deferred::<&str>::new();
    let dl = DeferredList::new([d1, d2]).consume_errors().all();
    dl.cancel();
    let out = dl.try_take().unwrap().unwrap();
    assert_eq!(*out[0].as_ref().unwrap(), "Callback Result");
    assert!(is_cancelled(&out[1]));
}

// Twisted: test_defer.py DeferredListTests.test_cancelDeferredListWithFireOnOneCallbackAndDeferredCallback
#[test]
fn cancel_first_success_with_a_canceller_that_calls_back() {
    let (d1, _r1, _) = counted::<&str>(|r| r.callback("Callback Result").unwrap());
    let (d2, _r2) = Deferred::<&str>::new();
    let dl = DeferredList::new([d1, d2]).consume_errors().first_success();
    dl.cancel();
    assert_eq!(dl.try_take().unwrap().unwrap(), ("Callback Result", 0));
}

// Twisted: test_defer.py DeferredListTests.test_cancelDeferredListWithFireOnOneErrbackAllDeferredsCallback
#[test]
fn cancel_fire_on_one_errback_when_every_canceller_calls_back() {
    let (d1, _r1, _) = counted::<&str>(|r| r.callback("Callback Result").unwrap());
    let (d2, _r2, _) = counted::<&str>(|r| r.callback("Callback Result").unwrap());
    let dl = DeferredList::new([d1, d2]).fire_on_one_errback().all();
    dl.cancel();
    let out: Vec<&str> = dl
        .try_take()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(out, ["Callback Result", "Callback Result"]);
}

// Twisted's test_cancelDeferredListWithOriginalDeferreds (appending to the
// input list after construction) has no Rust counterpart: the list takes its
// inputs by value.

// Twisted: test_defer.py DeferredListTests.test_cancelDeferredListWithException
#[test]
fn a_panicking_canceller_does_not_stop_the_others() {
    let (d1, _r1, c1) = counted::<u8>(|_| panic!("canceller broke"));
    let (d2, _r2, c2) = counted::<u8>(|_| {});
    let (d3, _r3, c3) = counted::<u8>(|_| {});
    let dl = DeferredList::new([d1, d2, d3]).consume_errors().all();
    dl.cancel();
    let counts = [&c1, &c2, &c3].map(|c| c.load(Ordering::SeqCst));
    assert_eq!(counts, [1, 1, 1]);
    let out = dl.try_take().unwrap().unwrap();
    assert!(out[0].as_ref().unwrap_err().is::<PanicError>());
    assert!(is_cancelled(&out[1]));
    assert!(is_cancelled(&out[2]));
}

// Twisted: test_defer.py DeferredListTests.test_cancelFiredOnOneCallbackDeferredList
// and test_cancelFiredOnOneErrbackDeferredList
#[test]
fn cancelling_a_list_that_already_fired_does_nothing() {
    let (d1, r1, c1) = counted::<u8>(|_| {});
    let (d2, _r2, c2) = counted::<u8>(|_| {});
    let dl = DeferredList::new([d1, d2]).first_success();
    r1.callback(1).unwrap();
    dl.cancel();
    assert_eq!(c2.load(Ordering::SeqCst), 0);
    assert_eq!(dl.try_take().unwrap().unwrap(), (1, 0));

    let (d1, r1) = Deferred::<u8>::new();
    let (d2, _r2, c2b) = counted::<u8>(|_| {});
    let dl = DeferredList::new([d1, d2])
        .fire_on_one_errback()
        .consume_errors()
        .all();
    r1.errback(GenericError("x")).unwrap();
    dl.cancel();
    assert_eq!(c2b.load(Ordering::SeqCst), 0);
    assert!(dl.try_take().unwrap().unwrap_err().is::<FirstError>());
    assert_eq!(c1.load(Ordering::SeqCst), 0);
}

#[test]
fn first_success_with_every_input_failed_gives_failure_group_in_input_order() {
    let (d1, r1) = Deferred::<u8>::new();
    let (d2, r2) = Deferred::<u8>::new();
    let dl = DeferredList::new([d1, d2]).consume_errors().first_success();
    r2.errback(Failure::msg("second")).unwrap();
    r1.errback(Failure::msg("first")).unwrap();
    let failure = dl.try_take().unwrap().unwrap_err();
    let msgs: Vec<String> = failure
        .downcast_ref::<FailureGroup>()
        .unwrap()
        .failures
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(msgs, ["first", "second"]);
}

#[test]
fn late_results_are_dropped_outside_the_lists_lock() {
    // A late value whose destructor fires another input of the same list:
    // it must not deadlock on the list's state.
    struct FiresOnDrop(Option<Resolver<FiresOnDrop>>);
    impl Drop for FiresOnDrop {
        fn drop(&mut self) {
            if let Some(r) = self.0.take() {
                let _ = r.callback(FiresOnDrop(None));
            }
        }
    }
    let (d0, r0) = Deferred::<FiresOnDrop>::new();
    let (d1, r1) = Deferred::<FiresOnDrop>::new();
    let (d2, r2) = Deferred::<FiresOnDrop>::new();
    let dl = DeferredList::new([d0, d1, d2]).first_success();
    r0.callback(FiresOnDrop(None)).unwrap();
    assert!(dl.is_called());
    r1.callback(FiresOnDrop(Some(r2.clone()))).unwrap();
    assert!(r2.is_called());
    assert_eq!(dl.try_take().unwrap().unwrap().1, 0);
}

#[test]
fn inputs_fired_from_many_threads_fire_the_list_once() {
    const THREADS: usize = 8;
    const PER: usize = 200;
    let (ds, rs): (Vec<_>, Vec<_>) = (0..THREADS * PER).map(|_| Deferred::<usize>::new()).unzip();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let dl = DeferredList::new(ds).all().add_callback(move |v| {
        f.fetch_add(1, Ordering::SeqCst);
        Ok(v)
    });
    fire_from_threads(rs, THREADS, |i, r| r.callback(i).unwrap());
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    let out: Vec<usize> = dl
        .try_take()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(out, (0..THREADS * PER).collect::<Vec<_>>());
}

#[tokio::test]
async fn list_is_awaitable() {
    let (d, r) = Deferred::<u8>::new();
    let dl = DeferredList::new([d, succeed(2)]).all();
    tokio::spawn(async move { r.callback(1).unwrap() });
    let out: Vec<u8> = dl.await.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(out, [1, 2]);
}

// --- gather_results ---------------------------------------------------------

// Twisted: test_defer.py DeferredTests.test_gatherResults
#[test]
fn gather_results_values_in_order_or_first_error() {
    let d = gather_results([succeed(1), succeed(2)]);
    assert_eq!(d.try_take().unwrap().unwrap(), [1, 2]);

    let ((), unhandled) = count_unhandled(|| {
        let d = gather_results([succeed(1), fail(GenericError("value"))]);
        let failure = d.try_take().unwrap().unwrap_err();
        let first = failure.downcast_ref::<FirstError>().unwrap();
        assert_eq!(first.index, 1);
        assert!(first.failure.is::<GenericError>());
    });
    // Not consumed (Twisted's default): the failure also went on down the
    // input's own chain, where nobody handled it.
    assert_eq!(unhandled, 1);
}

// Twisted: test_defer.py DeferredTests.test_gatherResultsWithConsumeErrors
#[test]
fn gather_with_consume_errors_reports_nothing_unhandled() {
    let ((), unhandled) = count_unhandled(|| {
        let d = Gather::new([succeed(1), fail(GenericError("oh noes"))])
            .consume_errors()
            .into_deferred();
        let failure = d.try_take().unwrap().unwrap_err();
        let first = failure.downcast_ref::<FirstError>().unwrap();
        assert_eq!(
            first.failure.downcast_ref::<GenericError>().unwrap().0,
            "oh noes"
        );
    });
    assert_eq!(unhandled, 0);
}

#[test]
fn gather_of_nothing_is_an_empty_vec_at_once() {
    let d = gather_results(Vec::<Deferred<u8>>::new());
    assert_eq!(d.try_take().unwrap().unwrap(), Vec::<u8>::new());
}

// Twisted #4627: the original failure instead of FirstError.
#[test]
fn gather_can_fail_with_the_original_failure() {
    let (d1, _r1) = Deferred::<u8>::new();
    let (d2, r2) = Deferred::<u8>::new();
    let d = Gather::new([d1, d2])
        .original_failure()
        .consume_errors()
        .into_deferred();
    let original = Failure::new(GenericError("root cause"));
    r2.errback(original.clone()).unwrap();
    let failure = d.try_take().unwrap().unwrap_err();
    assert!(failure.ptr_eq(&original));

    let d = gather_results([fail::<u8>(GenericError("again"))])
        .add_errback(|f| Err(FirstError::unwrap_failure(f)));
    assert!(d.try_take().unwrap().unwrap_err().is::<GenericError>());
}

// Twisted: test_defer.py DeferredTests.test_cancelGatherResults
#[test]
fn cancelling_gather_cancels_every_input() {
    let (d1, _r1, c1) = counted::<u8>(|_| {});
    let (d2, _r2, c2) = counted::<u8>(|_| {});
    let d = Gather::new([d1, d2]).consume_errors().into_deferred();
    d.cancel();
    assert_eq!(
        (c1.load(Ordering::SeqCst), c2.load(Ordering::SeqCst)),
        (1, 1)
    );
    let failure = d.try_take().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert!(first.failure.is::<CancelledError>());
}

// Twisted: test_defer.py DeferredTests.test_cancelGatherResultsWithAllDeferredsCallback
#[test]
fn cancelling_gather_when_every_canceller_calls_back() {
    let (d1, _r1, _) = counted::<&str>(|r| r.callback("Callback Result").unwrap());
    let (d2, _r2, _) = counted::<&str>(|r| r.callback("Callback Result").unwrap());
    let d = gather_results([d1, d2]);
    d.cancel();
    assert_eq!(
        d.try_take().unwrap().unwrap(),
        ["Callback Result", "Callback Result"]
    );
}

#[test]
fn gather2_and_gather3_mix_types() {
    let (a, ra) = Deferred::<u8>::new();
    let (b, rb) = Deferred::<String>::new();
    let d = gather2(a, b);
    rb.callback("b".into()).unwrap();
    assert!(!d.is_called());
    ra.callback(1).unwrap();
    assert_eq!(d.try_take().unwrap().unwrap(), (1, "b".to_owned()));

    let d = gather3(
        succeed(1u8),
        succeed('x'),
        fail::<f32>(GenericError("third")),
    );
    let failure = d.try_take().unwrap().unwrap_err();
    assert_eq!(failure.downcast_ref::<FirstError>().unwrap().index, 2);
}

#[test]
fn cancelling_gather2_cancels_both() {
    let (a, _ra, ca) = counted::<u8>(|_| {});
    let (b, _rb, cb) = counted::<u16>(|_| {});
    let d = gather2(a, b);
    d.cancel();
    assert_eq!(
        (ca.load(Ordering::SeqCst), cb.load(Ordering::SeqCst)),
        (1, 1)
    );
    assert!(d.try_take().unwrap().is_err());
}

// Twisted: test_defer.py FirstErrorTests
#[test]
fn first_error_equality_display_and_debug() {
    let f = Failure::new(GenericError("some text"));
    let a = FirstError::new(3, f.clone());
    assert_eq!(a, FirstError::new(3, f.clone()));
    assert_ne!(a, FirstError::new(4, f.clone()));
    assert_ne!(
        a,
        FirstError::new(3, Failure::new(GenericError("some text")))
    );
    assert_eq!(a.to_string(), format!("input #3 failed first: {f}"));
    assert!(format!("{a:?}").starts_with("FirstError[#3, "));
    assert!(
        std::error::Error::source(&a)
            .unwrap()
            .to_string()
            .contains("some text")
    );
    let plain = Failure::msg("plain");
    assert!(FirstError::unwrap_failure(plain.clone()).ptr_eq(&plain));
}

// --- race ---------------------------------------------------------------------

// Twisted: test_defer.py RaceTests.test_success (the property over 0-3
// inputs before and after the winner)
#[test]
fn race_first_success_wins_and_cancels_the_others() {
    for before in 0..4 {
        for after in 0..4 {
            let n = before + 1 + after;
            let mut ds = Vec::new();
            let mut rs = Vec::new();
            let mut counts = Vec::new();
            for _ in 0..n {
                let (d, r, c) = counted::<&str>(|_| {});
                ds.push(d);
                rs.push(r);
                counts.push(c);
            }
            let d = race(ds);
            rs[before].callback("obj").unwrap();
            assert_eq!(d.try_take().unwrap().unwrap(), (before, "obj"));
            let counts: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
            let mut expected = vec![1; n];
            expected[before] = 0;
            assert_eq!(counts, expected, "before={before} after={after}");
        }
    }
}

// Twisted: test_defer.py RaceTests.test_failure
#[test]
fn race_with_every_input_failed_gives_failure_group() {
    for n in 1..4 {
        let failure = Failure::new(GenericError("same"));
        let mut rs = Vec::new();
        let mut counts = Vec::new();
        let mut ds = Vec::new();
        for _ in 0..n {
            let (d, r, c) = counted::<u8>(|_| {});
            ds.push(d);
            rs.push(r);
            counts.push(c);
        }
        let d = race(ds);
        for r in rs.iter().rev() {
            r.errback(failure.clone()).unwrap();
        }
        let got = d.try_take().unwrap().unwrap_err();
        let group = got.downcast_ref::<FailureGroup>().unwrap();
        assert_eq!(group.failures.len(), n);
        assert!(group.failures.iter().all(|f| f.ptr_eq(&failure)));
        assert!(counts.iter().all(|c| c.load(Ordering::SeqCst) == 0));
    }
}

#[test]
fn race_failure_group_is_in_input_order() {
    let (d1, r1) = Deferred::<u8>::new();
    let (d2, r2) = Deferred::<u8>::new();
    let d = race([d1, d2]);
    r2.errback(Failure::msg("second")).unwrap();
    r1.errback(Failure::msg("first")).unwrap();
    let failure = d.try_take().unwrap().unwrap_err();
    let msgs: Vec<String> = failure
        .downcast_ref::<FailureGroup>()
        .unwrap()
        .failures
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(msgs, ["first", "second"]);
}

// Twisted: test_defer.py RaceTests.test_resultAfterCancel
#[test]
fn race_loser_firing_after_cancel_logs_nothing() {
    let ((), unhandled) = count_unhandled(|| {
        let (d1, r1) = Deferred::<u8>::new();
        let (d2, r2) = Deferred::<u8>::new();
        let d = race([d1, d2]);
        r1.callback(1).unwrap();
        // The loser had no canceller: it was cancelled, and one late
        // callback is swallowed, as in Twisted.
        r2.callback(2).unwrap();
        assert_eq!(d.try_take().unwrap().unwrap(), (0, 1));
    });
    assert_eq!(unhandled, 0);
}

// Twisted: test_defer.py RaceTests.test_resultFromCancel
#[test]
fn race_ignores_a_loser_whose_canceller_succeeds() {
    let (d1, r1) = Deferred::<&str>::new();
    let (d2, _r2, c2) = counted::<&str>(|r| r.callback("from cancel").unwrap());
    let d = race([d1, d2]);
    r1.callback("expected").unwrap();
    assert_eq!(c2.load(Ordering::SeqCst), 1);
    assert_eq!(d.try_take().unwrap().unwrap(), (0, "expected"));
}

// Twisted: test_defer.py RaceTests.test_cancel
#[test]
fn cancelling_the_race_cancels_every_input_once() {
    for n in 1..4 {
        let mut ds = Vec::new();
        let mut counts = Vec::new();
        let mut rs = Vec::new();
        for _ in 0..n {
            let (d, r, c) = counted::<u8>(|_| {});
            ds.push(d);
            rs.push(r);
            counts.push(c);
        }
        let d = race(ds);
        d.cancel();
        d.cancel();
        assert!(counts.iter().all(|c| c.load(Ordering::SeqCst) == 1));
        let failure = d.try_take().unwrap().unwrap_err();
        let group = failure.downcast_ref::<FailureGroup>().unwrap();
        assert_eq!(group.failures.len(), n);
        assert!(group.failures.iter().all(|f| f.is::<CancelledError>()));
    }
}

// Documented decision: Twisted's race([]) never fires.
#[test]
fn race_of_nothing_fails_at_once_with_empty_group() {
    let d = race(Vec::<Deferred<u8>>::new());
    let failure = d.try_take().unwrap().unwrap_err();
    assert!(
        failure
            .downcast_ref::<FailureGroup>()
            .unwrap()
            .failures
            .is_empty()
    );
    assert!(failure.to_string().contains("no inputs"));
}

#[test]
fn race_already_fired_winner_cancels_later_inputs_at_construction() {
    let (d2, _r2, c2) = counted::<u8>(|_| {});
    let d = race([succeed(7), d2]);
    assert_eq!(c2.load(Ordering::SeqCst), 1);
    assert_eq!(d.try_take().unwrap().unwrap(), (0, 7));
}

#[test]
fn failure_group_display_names_the_count_and_first_failure() {
    let g = FailureGroup::new(vec![
        Failure::new(MessageError("a".into())),
        Failure::msg("b"),
    ]);
    assert_eq!(g.to_string(), "all 2 inputs failed (the first with: a)");
}

// --- The gather engine: edges -------------------------------------------------

#[test]
fn gather_keeps_input_order_when_inputs_fire_each_other() {
    // Input 0's own callback fires input 2, so input 2 reaches the list
    // before input 0 does, from inside input 0's chain.
    let (d0, r0) = Deferred::<u32>::new();
    let (d1, r1) = Deferred::<u32>::new();
    let (d2, r2) = Deferred::<u32>::new();
    let d0 = d0.add_callback(move |v| {
        r2.callback(20).unwrap();
        Ok(v)
    });
    let all = gather_results([d0, d1, d2]);
    r1.callback(10).unwrap();
    assert!(!all.is_called());
    r0.callback(0).unwrap();
    assert_eq!(all.try_take().unwrap().unwrap(), [0, 10, 20]);
}

#[test]
fn inputs_fired_by_another_thread_while_gathering_are_all_collected() {
    for _ in 0..20 {
        const N: u64 = 500;
        let (ds, rs): (Vec<_>, Vec<_>) = (0..N).map(|_| Deferred::<u64>::new()).unzip();
        let firing = std::thread::spawn(move || {
            for (i, r) in rs.into_iter().enumerate().rev() {
                r.callback(i as u64).unwrap();
            }
        });
        let all = gather_results(ds);
        firing.join().unwrap();
        assert_eq!(all.try_take().unwrap().unwrap(), (0..N).collect::<Vec<_>>());
    }
}

#[test]
fn gather_inputs_fired_from_many_threads_collects_every_value_once() {
    const THREADS: usize = 4;
    const PER: usize = 2_500;
    let (ds, rs): (Vec<_>, Vec<_>) = (0..THREADS * PER).map(|_| Deferred::<usize>::new()).unzip();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let all = gather_results(ds).add_callback(move |v| {
        f.fetch_add(1, Ordering::SeqCst);
        Ok(v)
    });
    fire_from_threads(rs, THREADS, |i, r| r.callback(i).unwrap());
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(
        all.try_take().unwrap().unwrap(),
        (0..THREADS * PER).collect::<Vec<_>>()
    );
}

#[test]
fn gather_of_100k_inputs_fired_in_reverse_keeps_input_order() {
    const N: u32 = 100_000;
    let (ds, rs): (Vec<_>, Vec<_>) = (0..N).map(|_| Deferred::<u32>::new()).unzip();
    let all = gather_results(ds);
    for (i, r) in rs.into_iter().enumerate().rev() {
        assert!(!all.is_called() || i == 0);
        r.callback(i as u32).unwrap();
    }
    let values = all.try_take().unwrap().unwrap();
    assert_eq!(values.len(), N as usize);
    assert!(values.iter().enumerate().all(|(i, v)| *v == i as u32));
}

#[test]
fn gather_of_100k_fired_inputs_fires_during_construction() {
    let all = gather_results((0..100_000u32).map(succeed));
    let values = all.try_take().unwrap().unwrap();
    assert_eq!(values.len(), 100_000);
    assert_eq!(values[99_999], 99_999);
}

// Twisted: test_defer.py DeferredTests.test_cancelGatherResults (partly fired)
#[test]
fn cancelling_a_partly_fired_gather_fails_with_the_first_cancelled_input() {
    let (d0, r0, c0) = counted::<u8>(|_| {});
    let (d1, _r1, c1) = counted::<u8>(|_| {});
    let (d2, _r2, c2) = counted::<u8>(|_| {});
    let d = Gather::new([d0, d1, d2]).consume_errors().into_deferred();
    r0.callback(0).unwrap();
    d.cancel();
    // The fired input is not cancelled; both others are.
    let counts = [&c0, &c1, &c2].map(|c| c.load(Ordering::SeqCst));
    assert_eq!(counts, [0, 1, 1]);
    let failure = d.try_take().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index, 1);
    assert!(first.failure.is::<CancelledError>());
    // Cancelling again, or firing the remaining resolver, changes nothing.
    d.cancel();
    assert!(d.try_take().is_some());
}

#[test]
fn a_list_whose_input_can_never_report_fails_with_resolver_dropped() {
    // A paused input that nobody can unpause (the list took its handle):
    // when its state goes away unrun, the list can never complete, and
    // fails instead of hanging.
    let (d0, r0) = Deferred::<u8>::new();
    d0.pause();
    let all = gather_results([d0, succeed(1)]);
    r0.callback(0).unwrap();
    assert!(!all.is_called());
    drop(r0);
    let failure = all.try_take().unwrap().unwrap_err();
    assert!(failure.is::<tokio_deferred::ResolverDroppedError>());
}

#[test]
fn dropping_the_gather_before_its_inputs_fire_is_harmless() {
    let ((), unhandled) = count_unhandled(|| {
        let (ds, rs): (Vec<_>, Vec<_>) = (0..100).map(|_| Deferred::<u8>::new()).unzip();
        drop(gather_results(ds));
        for r in rs {
            r.callback(1).unwrap();
        }
    });
    assert_eq!(unhandled, 0);
}

#[test]
fn values_kept_before_a_first_failure_are_dropped_when_the_list_fires() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (d0, r0) = Deferred::<Counted>::new();
    let (d1, r1) = Deferred::<Counted>::new();
    let (d2, _r2) = Deferred::<Counted>::new();
    let d = Gather::new([d0, d1, d2]).consume_errors().into_deferred();
    r0.callback(Counted(drops.clone())).unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    r1.errback(GenericError("b")).unwrap();
    // Input 2 never fires, but the list has fired and keeps nothing.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(d.try_take().unwrap().is_err());
}

#[test]
fn a_failed_input_not_consumed_is_reported_once_even_when_gathered_late() {
    // The input failed (and finished its chain) before the list took it.
    let ((), unhandled) = count_unhandled(|| {
        let (d0, r0) = Deferred::<u8>::new();
        r0.errback(GenericError("early")).unwrap();
        let (d1, r1) = Deferred::<u8>::new();
        let all = DeferredList::new([d0, d1]).all();
        r1.callback(1).unwrap();
        let out = all.try_take().unwrap().unwrap();
        assert!(out[0].is_err());
        assert_eq!(*out[1].as_ref().unwrap(), 1);
    });
    assert_eq!(unhandled, 1);
}

#[test]
fn a_paused_input_failed_before_gathering_is_reported_once_when_gathered() {
    // The list's link never runs on a paused input, and nobody can unpause
    // it once the list took its handle: as when a paused Deferred's handle
    // is dropped, its failure is reported at once (Twisted reports only a
    // failure that finished a run, `failResult`; Rust does better here).
    let ((), unhandled) = count_unhandled(|| {
        let (d0, r0) = Deferred::<u8>::new();
        d0.pause();
        r0.errback(GenericError("while paused")).unwrap();
        let all = gather_results([d0, succeed(1)]);
        drop(r0);
        assert!(all.try_take().unwrap().is_err()); // ResolverDroppedError
    });
    assert_eq!(unhandled, 1);
    // Failed, finished its run, then paused: reported once too.
    let ((), unhandled) = count_unhandled(|| {
        let (d0, r0) = Deferred::<u8>::new();
        r0.errback(GenericError("then paused")).unwrap();
        d0.pause();
        let all = gather_results([d0, succeed(1)]);
        drop(r0);
        assert!(all.try_take().unwrap().is_err());
    });
    assert_eq!(unhandled, 1);
}

#[test]
fn failures_from_many_threads_fire_a_gather_once_with_one_first_error() {
    const THREADS: usize = 4;
    const PER: usize = 250;
    let (ds, rs): (Vec<_>, Vec<_>) = (0..THREADS * PER).map(|_| Deferred::<usize>::new()).unzip();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let all = Gather::new(ds)
        .consume_errors()
        .into_deferred()
        .add_both(move |r| {
            f.fetch_add(1, Ordering::SeqCst);
            r
        });
    fire_from_threads(rs, THREADS, |i, r| {
        if i % 3 == 0 {
            r.errback(GenericError("odd one")).unwrap();
        } else {
            r.callback(i).unwrap();
        }
    });
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    let failure = all.try_take().unwrap().unwrap_err();
    let first = failure.downcast_ref::<FirstError>().unwrap();
    assert_eq!(first.index % 3, 0);
}

#[test]
fn race_won_from_many_threads_has_one_winner() {
    const THREADS: usize = 4;
    for _ in 0..20 {
        let (ds, rs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| Deferred::<usize>::new()).unzip();
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        let winner = race(ds).add_both(move |r| {
            f.fetch_add(1, Ordering::SeqCst);
            r
        });
        std::thread::scope(|s| {
            for (i, r) in rs.into_iter().enumerate() {
                // A loser may already be cancelled: its callback is then
                // refused or swallowed, never an error for the race.
                s.spawn(move || drop(r.callback(i)));
            }
        });
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        let (index, value) = winner.try_take().unwrap().unwrap();
        assert_eq!(index, value);
    }
}

// Found by the differential run against Twisted (seed 61): cancelling a list
// cancels its inputs in order; when a cancelled input completes an outer
// list, that list fires right then, before the next input is cancelled.
#[test]
fn cancelling_a_race_over_a_gather_fires_both_before_the_gathers_other_inputs_are_cancelled() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let canceller = |name: &'static str| {
        let log = log.clone();
        move |_: &tokio_deferred::Resolver<u8>| log.lock().unwrap().push(name)
    };
    let (d0, _r0) = Deferred::<u8>::with_canceller(canceller("canceller d0"));
    let (d1, _r1) = Deferred::<u8>::with_canceller(canceller("canceller d1"));
    let (d2, _r2) = Deferred::<u8>::new();
    let l = log.clone();
    let gathered = gather_results([d2, d0, d1]).add_both(move |r| {
        l.lock().unwrap().push("gather fired");
        r
    });
    let l = log.clone();
    let raced = race([gathered]).add_both(move |r| {
        l.lock().unwrap().push("race fired");
        r
    });
    raced.cancel();
    assert_eq!(
        *log.lock().unwrap(),
        ["gather fired", "race fired", "canceller d0", "canceller d1"]
    );
    assert!(raced.try_take().unwrap().is_err());
}

/// Runs `fire(i, resolver i)` for every resolver, spreading them over
/// `threads` threads (round robin), and waits for them all.
fn fire_from_threads(
    rs: Vec<Resolver<usize>>,
    threads: usize,
    fire: impl Fn(usize, Resolver<usize>) + Sync,
) {
    let mut chunks: Vec<Vec<(usize, Resolver<usize>)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, r) in rs.into_iter().enumerate() {
        chunks[i % threads].push((i, r));
    }
    let fire = &fire;
    std::thread::scope(|s| {
        for chunk in chunks {
            s.spawn(move || {
                for (i, r) in chunk {
                    fire(i, r);
                }
            });
        }
    });
}
