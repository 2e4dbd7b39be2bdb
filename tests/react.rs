//! react: Twisted's twisted/test/test_task.py ReactTests. Each `react`
//! call builds its own runtime, so these are plain `#[test]`s; inside
//! `main`, `tokio::time::pause()` makes the timers exact.

mod common;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio_deferred::*;

#[derive(Debug, thiserror::Error)]
#[error("expected exception")]
struct ExpectedException;

/// Runs `react(main)` with a subscriber; returns the status and the
/// "main function encountered error" events.
fn react_capturing<F, Fut, T>(main: F) -> (ExitCode, Vec<String>)
where
    F: FnOnce() -> Fut,
    Fut: std::future::IntoFuture<Output = Result<T, Failure>>,
{
    let (code, text) = capture_tracing(|| react(main));
    let errors = text
        .lines()
        .filter(|l| l.contains("main function encountered error"))
        .map(str::to_owned)
        .collect();
    (code, errors)
}

// Twisted: test_task.py ReactTests.test_runsUntilAsyncCallback
#[test]
fn runs_until_the_deferred_fires_then_exits_0() {
    let time_passed = Arc::new(AtomicBool::new(false));
    let seconds = Arc::new(Mutex::new(Duration::ZERO));
    let (tp, s) = (time_passed.clone(), seconds.clone());
    let (code, errors) = react_capturing(move || {
        tokio::time::pause();
        let clock = TokioClock::new();
        let (finished, resolver) = Deferred::<()>::new();
        clock.call_later(Duration::from_secs(1), move || {
            tp.store(true, Ordering::SeqCst)
        });
        let c = clock.clone();
        clock.call_later(Duration::from_secs(2), move || {
            *s.lock().unwrap() = c.now();
            resolver.callback(()).unwrap();
        });
        finished
    });
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(time_passed.load(Ordering::SeqCst));
    // Virtual time: 2 s, rounded up to Tokio's timer tick.
    let seconds = *seconds.lock().unwrap();
    assert!(seconds >= Duration::from_secs(2) && seconds < Duration::from_secs(3));
}

// Twisted: test_task.py ReactTests.test_runsUntilSyncCallback
#[test]
fn an_already_fired_deferred_exits_0_at_once() {
    assert_eq!(react(|| succeed(())), ExitCode::SUCCESS);
}

// Twisted: test_task.py ReactTests.test_runsUntilAsyncErrback
#[test]
fn a_deferred_that_fails_later_is_reported_once_and_exits_1() {
    let (code, errors) = react_capturing(|| {
        tokio::time::pause();
        let (finished, resolver) = Deferred::<()>::new();
        TokioClock::new().call_later(Duration::from_secs(1), move || {
            resolver.errback(ExpectedException).unwrap();
        });
        finished
    });
    assert_eq!(code, ExitCode::FAILURE);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("expected exception"), "{errors:?}");
}

// Twisted: test_task.py ReactTests.test_runsUntilSyncErrback
#[test]
fn an_already_failed_deferred_is_reported_once_and_exits_1() {
    let (code, errors) = react_capturing(|| fail::<()>(ExpectedException));
    assert_eq!(code, ExitCode::FAILURE);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

// Twisted: test_task.py ReactTests.test_arguments (Rust: the closure
// captures them)
#[test]
fn main_gets_its_arguments_by_capture() {
    let args = Arc::new(Mutex::new(Vec::new()));
    let a = args.clone();
    let argv = vec![1, 2, 3];
    let code = react(move || {
        a.lock().unwrap().extend(argv);
        succeed(())
    });
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(*args.lock().unwrap(), [1, 2, 3]);
}

// Twisted: test_task.py ReactTests.test_exitWithDefinedCode
#[test]
fn a_system_exit_failure_sets_the_status_quietly() {
    let (code, errors) = react_capturing(|| fail::<()>(SystemExit::new(23)));
    assert_eq!(code, ExitCode::from(23));
    assert!(errors.is_empty(), "{errors:?}");
    let (code, _) = react_capturing(|| async { Err::<(), _>(SystemExit::new(0).into()) });
    assert_eq!(code, ExitCode::SUCCESS);
}

// Twisted: test_task.py ReactTests.test_synchronousStop and
// test_asynchronousStop, with MIGRATING.md's `reactor.stop()` recipe: main
// waits for its work or for a "stop" Deferred, whichever comes first.
#[test]
fn stopping_before_the_work_is_done_exits_0() {
    let code = react(|| async {
        tokio::time::pause();
        let (stop, stopper) = Deferred::<()>::new();
        let (work, _never) = Deferred::<()>::new(); // main's Deferred never fires
        TokioClock::new().call_later(Duration::from_secs(1), move || {
            let _ = stopper.callback(()); // reactor.stop()
        });
        tokio::select! {
            r = work => r,
            r = stop => r,
        }
    });
    assert_eq!(code, ExitCode::SUCCESS);
}

// What is still pending when main's result is in goes with the runtime,
// unreported (Twisted's reactor stops; an unfired Deferred is collected).
#[test]
fn pending_timers_and_tasks_are_dropped_quietly_at_the_end() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let ((code, errors), unhandled) = capture_unhandled(|| {
        react_capturing(move || async move {
            drop(defer_later(Duration::from_secs(3600), move || {
                r.store(true, Ordering::SeqCst);
                Ok(())
            }));
            let _looping = LoopingCall::new(|| Ok(()))
                .start(Duration::from_secs(60), false)
                .unwrap();
            let _task = cooperate(std::iter::repeat(()));
            Ok::<_, Failure>(())
        })
    });
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(unhandled.is_empty(), "{unhandled:?}");
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn main_runs_on_one_thread_and_may_hold_rc() {
    let code = react(|| async {
        let shared = std::rc::Rc::new(std::cell::Cell::new(0));
        let s = shared.clone();
        let (d, r) = LocalDeferred::<u32>::new();
        let d = d.add_callback(move |n| {
            s.set(n);
            Ok(())
        });
        tokio::task::spawn_local(async move { r.callback(7).unwrap() });
        d.await?;
        assert_eq!(shared.get(), 7);
        Ok::<_, Failure>(())
    });
    assert_eq!(code, ExitCode::SUCCESS);
}

#[test]
fn a_panic_in_main_is_a_failure_reported_once() {
    let (code, errors) = react_capturing(|| -> Deferred<()> { panic!("main blew up") });
    assert_eq!(code, ExitCode::FAILURE);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("main blew up"), "{errors:?}");
    let (code, errors) = react_capturing(|| async {
        tokio::task::yield_now().await;
        panic!("later");
        #[allow(unreachable_code)]
        Ok::<(), Failure>(())
    });
    assert_eq!(code, ExitCode::FAILURE);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

// ---------------------------------------------------------------------------
// The real process: its exit status and, with no subscriber, its stderr.
// ---------------------------------------------------------------------------

const CHILD: &str = "TOKIO_DEFERRED_REACT_CHILD";

#[test]
fn as_a_process_react_sets_the_exit_status_and_prints_the_failure() {
    if std::env::var_os(CHILD).is_some() {
        let code = react(|| async {
            let later = defer_later(Duration::from_millis(1), || Ok(()));
            later.await?;
            Err::<(), _>(Failure::msg("boom"))
        });
        // What `fn main() -> ExitCode` would do with it.
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "as_a_process_react_sets_the_exit_status_and_prints_the_failure",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("main function encountered error"))
        .collect();
    assert_eq!(
        reports,
        ["main function encountered error: boom"],
        "{stderr}"
    );
}
