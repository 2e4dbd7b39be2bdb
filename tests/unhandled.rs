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
fn a_failure_handed_to_a_chain_is_not_reported_by_its_first_deferred() {
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
    // `bad`'s failure went to the errback, which returned `good`; `good`
    // never fires (its Resolver `_gr` is dropped at the end of the
    // closure), so the chain never finishes. As in Twisted, nothing is
    // reported: the ResolverDroppedError that ends the chain is not an
    // unhandled error.
    assert!(events.is_empty(), "{events:?}");
}

// Twisted collects an unfired Deferred silently, whichever goes first,
// its consumer or its producer.
#[test]
fn an_unfired_deferred_whose_resolvers_are_dropped_is_not_reported() {
    let events = unhandled_events(|| {
        let (d, r) = Deferred::<u8>::new();
        drop(d);
        drop(r);

        let (d, r) = Deferred::<u8>::new();
        let d = d.add_callback(|n| Ok(n + 1));
        drop(r);
        drop(d);

        let (d, r) = LocalDeferred::<u8>::new();
        drop(r);
        drop(d);

        // A library-owned Resolver: the clock holding the timer goes away.
        let clock = ManualClock::new();
        let d = defer_later_with_clock(&clock, std::time::Duration::from_secs(5), || Ok(1));
        drop(clock);
        drop(d);

        // A defer_to_thread whose runtime went before the thread ran it.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        drop(rt);
        drop(defer_to_thread_pool(&handle, || Ok(1)));

        // A gather whose input never fired.
        let (a, ra) = Deferred::<u8>::new();
        let all = gather_results([a, succeed(2)]);
        drop(ra);
        drop(all);
    });
    assert!(events.is_empty(), "{events:?}");
}

// A `select!` loser: dropping the future is the consumer's "I do not want
// the result", so the CancelledError that follows is not reported. An
// explicit `cancel()` with nobody to see the failure still is, as in
// Twisted.
#[test]
fn an_abandoned_cancel_on_drop_is_not_reported_but_a_plain_cancel_is() {
    let events = unhandled_events(|| {
        let (d, _r) = Deferred::<u8>::new();
        let mut fut = tokio_test::task::spawn(d.cancel_on_drop());
        tokio_test::assert_pending!(fut.poll());
        drop(fut);

        let (d, _r2) = Deferred::<u8>::new();
        let d = d.add_callback(|n| Ok(n + 1));
        d.cancel();
        drop(d);
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("cancelled"), "{events:?}");
}

// The consumer that awaits it still learns why it will never fire.
#[test]
fn an_awaited_deferred_whose_resolvers_are_dropped_fails_with_where_it_was_made() {
    let (d, r) = Deferred::<u8>::new();
    drop(r);
    let f = failure_result_of(&d);
    let e = f.downcast_ref::<ResolverDroppedError>().unwrap();
    assert!(e.created().starts_with("tests/unhandled.rs:"), "{e}");
    assert_eq!(e.owner(), None);
    assert!(e.to_string().contains("every Resolver"), "{e}");

    let clock = ManualClock::new();
    let d = defer_later_with_clock(&clock, std::time::Duration::from_secs(5), || Ok(1));
    drop(clock);
    let f = failure_result_of(&d);
    let e = f.downcast_ref::<ResolverDroppedError>().unwrap();
    assert_eq!(e.owner(), Some("tokio_deferred::defer_later_with_clock"));
    assert!(e.created().starts_with("tests/unhandled.rs:"), "{e}");
    assert!(
        e.to_string()
            .contains("made by tokio_deferred::defer_later_with_clock at tests/unhandled.rs:"),
        "{e}"
    );

    let queue = DeferredQueue::<u8>::new(None, None);
    let got = queue.get().unwrap();
    drop(queue);
    let f = failure_result_of(&got);
    let e = f.downcast_ref::<ResolverDroppedError>().unwrap();
    assert_eq!(e.owner(), Some("tokio_deferred::DeferredQueue::get"));
}

// Runtime shutdown under library-owned Resolvers: each awaiting consumer
// gets a ResolverDroppedError naming the function, and nothing is reported.
#[test]
fn runtime_shutdown_under_library_resolvers_is_silent_and_names_the_owner() {
    let (outcomes, events) = capture_unhandled(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let (later, ensured, looped) = rt.block_on(async {
            let later = defer_later(std::time::Duration::from_secs(60), || Ok(1));
            let ensured = ensure_deferred(async {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                Ok::<_, Failure>(2)
            });
            let lc = LoopingCall::new(|| Ok(()));
            let looped = lc.start(std::time::Duration::from_secs(60), false).unwrap();
            // Nobody awaits these: Twisted's program would end silently.
            drop(defer_later(std::time::Duration::from_secs(60), || Ok(3)));
            let clock = TokioClock::new();
            drop(Deferred::with_canceller_from(|resolver: Resolver<u8>| {
                let call = clock.call_later(std::time::Duration::from_secs(5), move || {
                    let _ = resolver.callback(4);
                });
                move |_: &Resolver<u8>| {
                    let _ = call.cancel();
                }
            }));
            (later, ensured, looped)
        });
        drop(rt);
        let owner = |f: Failure| {
            f.downcast_ref::<ResolverDroppedError>()
                .and_then(ResolverDroppedError::owner)
        };
        (
            owner(failure_result_of(&later)),
            owner(failure_result_of(&ensured)),
            owner(failure_result_of(&looped)),
        )
    });
    assert_eq!(
        outcomes,
        (
            Some("tokio_deferred::defer_later"),
            Some("tokio_deferred::ensure_deferred"),
            Some("tokio_deferred::LoopingCall::start"),
        )
    );
    assert!(events.is_empty(), "{events:?}");
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

// ---------------------------------------------------------------------------
// With no tracing subscriber: the plain stderr line. These tests run this
// test binary again, one test in a child process, and read its stderr.
// ---------------------------------------------------------------------------

/// Set in the child process.
const CHILD: &str = "TOKIO_DEFERRED_UNHANDLED_CHILD";

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs the test `name` of this binary in a child process (output not
/// captured by the harness) and returns its stdout and stderr.
fn run_in_child(name: &str) -> (String, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    (stdout, stderr)
}

/// What a small program does before it exits: one real unhandled failure,
/// and Deferreds still pending on timers when the runtime shuts down.
fn program_with_one_unhandled_failure_and_pending_timers() {
    let (d, r) = Deferred::<u8>::new();
    let d = d.add_callback(|_| -> Result<u8, Failure> { Err(Failure::msg("division by zero")) });
    r.callback(1).unwrap();
    drop(d);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let pending = defer_later(std::time::Duration::from_secs(3600), || Ok(1));
        let clock = TokioClock::new();
        let (d, resolver) = Deferred::<u8>::new();
        clock.call_later(std::time::Duration::from_secs(3600), move || {
            let _ = resolver.callback(2);
        });
        let d = d.cancel_on_drop();
        // The program ends with both still pending.
        tokio::task::yield_now().await;
        drop((pending, d));
    });
    drop(rt);
}

#[test]
fn without_a_subscriber_an_unhandled_failure_is_one_plain_line_on_stderr() {
    if in_child() {
        program_with_one_unhandled_failure_and_pending_timers();
        return;
    }
    let (_, stderr) =
        run_in_child("without_a_subscriber_an_unhandled_failure_is_one_plain_line_on_stderr");
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("Unhandled error"))
        .collect();
    assert_eq!(reports.len(), 1, "{stderr}");
    assert!(
        reports[0].starts_with(
            "Unhandled error in Deferred: division by zero (created at tests/unhandled.rs:"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "colour codes: {stderr:?}");
    // Nothing about the Deferreds left pending at exit.
    assert!(!stderr.contains("Resolver"), "{stderr}");
    assert!(!stderr.contains("Cancelled"), "{stderr}");
}

#[test]
fn with_a_global_subscriber_the_report_is_only_the_tracing_event() {
    if in_child() {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(std::io::stdout)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        program_with_one_unhandled_failure_and_pending_timers();
        return;
    }
    let (stdout, stderr) =
        run_in_child("with_a_global_subscriber_the_report_is_only_the_tracing_event");
    assert!(!stderr.contains("Unhandled error"), "{stderr}");
    assert_eq!(
        stdout
            .matches("tokio_deferred::unhandled: Unhandled error in Deferred: division by zero")
            .count(),
        1,
        "{stdout}"
    );
}
