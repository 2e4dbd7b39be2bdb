//! Unhandled errors: exactly one `tracing` ERROR event, target
//! `tokio_deferred::unhandled`, when a failure nobody consumed is left
//! behind by the last handle (Twisted's LogTests).

mod common;

use common::*;
use tokio_deferred::*;

/// Runs `f` with a subscriber; returns the unhandled-error lines.
fn unhandled_events(f: impl FnOnce()) -> Vec<String> {
    capture_unhandled(f).1
}

// Twisted: test_defer.py LogTests.test_errorLog
#[test]
fn a_dropped_failed_deferred_is_reported_once() {
    let events = unhandled_events(|| {
        let (d, r) = Deferred::<u8>::new();
        let d =
            d.add_callback(|_| -> Result<u8, Failure> { Err(Failure::msg("division by zero")) });
        r.callback(1).unwrap();
        drop(d);
    });
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert!(e.contains("ERROR"), "{e}");
    assert!(
        e.contains("Unhandled error in Deferred: division by zero"),
        "{e}"
    );
    assert!(e.contains("created=tests/unhandled.rs"), "{e}");
    // The fire site is recorded only with debugging on (which another test
    // of this file switches on for a moment).
    assert!(
        e.contains("fired=-") || e.contains("fired=tests/unhandled.rs"),
        "{e}"
    );
}

#[test]
fn a_deferred_dropped_before_it_fails_is_reported_when_it_fails() {
    let events = unhandled_events(|| {
        let (d, r) = Deferred::<u8>::new();
        drop(d.add_callback(Ok));
        r.errback(Failure::msg("late failure")).unwrap();
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("late failure"));
}

#[test]
fn consumed_failures_are_not_reported() {
    let events = unhandled_events(|| {
        // Recovered by an errback.
        drop(fail::<u8>(Failure::msg("a")).add_errback(|_| Ok(0)));
        // Taken.
        let d = fail::<u8>(Failure::msg("b"));
        let _ = d.try_take();
        drop(d);
        // Awaited.
        let d = fail::<u8>(Failure::msg("c"));
        let r = tokio_test::block_on(d);
        assert!(r.is_err());
        // Successes are never reported.
        drop(succeed(1));
    });
    assert!(events.is_empty(), "{events:?}");
}

// Twisted: test_defer.py LogTests.test_chainedErrorCleanup and
// test_errorClearedByChaining
#[test]
fn a_failure_handed_to_a_chain_is_reported_only_by_the_chain() {
    let events = unhandled_events(|| {
        let (d, r) = Deferred::<()>::new();
        let d = d
            .add_callback(|_| fail::<()>(Failure::msg("zoop")))
            .add_errback(|_| Ok(()));
        r.callback(()).unwrap();
        drop(d);

        let (good, _gr) = Deferred::<u8>::new();
        let bad = fail::<u8>(Failure::msg("bad")).add_errback(move |_| good);
        drop(bad);
    });
    // `good` never fires: its Resolver `_gr` is dropped at the end of the
    // closure, failing it with ResolverDroppedError, which the (dropped)
    // chain then reports once.
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("every Resolver"), "{events:?}");
}

#[test]
fn a_failure_nobody_handles_after_resolver_drop_is_reported() {
    let events = unhandled_events(|| {
        let (d, r) = Deferred::<u8>::new();
        drop(d);
        drop(r);
    });
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn log_error_logs_and_the_unhandled_report_still_comes() {
    let ((), text) = capture_tracing(|| {
        drop(fail::<u8>(Failure::msg("logged")).add_errback(log_error));
    });
    assert_eq!(
        text.matches("tokio_deferred::log_error").count(),
        1,
        "{text}"
    );
    assert_eq!(
        text.matches("tokio_deferred::unhandled").count(),
        1,
        "{text}"
    );
}

#[test]
fn debugging_adds_backtraces_to_the_report() {
    set_debugging(true);
    let ((), all) = capture_tracing(|| {
        let d = fail::<u8>(Failure::msg("traced"));
        drop(d);
    });
    set_debugging(false);
    assert_eq!(all.matches("tokio_deferred::unhandled").count(), 1, "{all}");
    assert!(all.contains("C: Deferred was created"), "{all}");
    assert!(all.contains("fired=tests/unhandled.rs"), "{all}");
    let _ = Log::<u8>::new();
}
