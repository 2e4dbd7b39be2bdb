//! The callback chain: result threading, errbacks, FIFO order, firing,
//! re-entrancy, pause/unpause (Twisted's DeferredTests), implicit chaining
//! (a callback returns a Deferred) and `chain_deferred`.

mod common;

use common::*;
use tokio_deferred::*;

// Twisted: test_defer.py DeferredTests.testCallbackWithoutArgs
#[test]
fn callback_gets_the_value_and_errback_does_not_run() {
    let cb = Log::new();
    let eb = Log::new();
    let (d, r) = Deferred::<&str>::new();
    let (c, e) = (cb.clone(), eb.clone());
    let _d = d.add_callbacks(
        move |v| {
            c.push(v);
            Ok(())
        },
        move |f: Failure| {
            e.push(f.to_string());
            Ok(())
        },
    );
    r.callback("hello").unwrap();
    assert_eq!(cb.get(), ["hello"]);
    assert!(eb.get().is_empty());
}

// Twisted: test_defer.py DeferredTests.testTwoCallbacks
#[test]
fn two_callbacks_see_the_value_in_turn() {
    let log = Log::new();
    let (d, r) = Deferred::<&str>::new();
    let (l1, l2) = (log.clone(), log.clone());
    let _d = d
        .add_callback(move |v| {
            l1.push(v);
            Ok(v)
        })
        .add_callback(move |v| {
            l2.push(v);
            Ok(())
        });
    r.callback("hello").unwrap();
    assert_eq!(log.get(), ["hello", "hello"]);
}

// Twisted: test_defer.py DeferredTests.test_addCallbacksNoneErrback
#[test]
fn a_callback_only_pair_passes_the_failure_through() {
    let eb = Log::new();
    let (d, r) = Deferred::<u32>::new();
    let d = d.add_callback(|_| -> Result<u32, Failure> { panic!("must not run") });
    let e = eb.clone();
    let _d = d.add_errback(move |f| {
        e.push(f.downcast_ref::<GenericError>().cloned());
        Ok(0)
    });
    r.errback(GenericError("oopsie".into())).unwrap();
    assert_eq!(eb.get(), [Some(GenericError("oopsie".into()))]);
}

// Twisted: test_defer.py DeferredTests.testImmediateSuccess
#[test]
fn succeed_runs_callbacks_synchronously() {
    let log = Log::new();
    let l = log.clone();
    let _d = succeed("success").add_callback(move |v| {
        l.push(v);
        Ok(())
    });
    assert_eq!(log.get(), ["success"]);
}

// Twisted: test_defer.py DeferredTests.test_succeedMatchesManualSuccess
#[test]
fn succeed_matches_a_manual_callback() {
    let a = succeed(7);
    let (b, r) = Deferred::new();
    r.callback(7).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(a.is_called(), b.is_called());
    assert_eq!(success_result_of(&a), success_result_of(&b));
}

// Twisted: test_defer.py DeferredTests.testImmediateFailure
#[test]
fn fail_runs_errbacks_synchronously() {
    let log = Log::new();
    let l = log.clone();
    let _d = fail::<()>(GenericError("fail".into())).add_errback(move |f| {
        l.push(f.to_string());
        Ok(())
    });
    assert_eq!(log.get(), ["generic error: fail"]);
}

// Twisted: test_defer.py DeferredTests.testPausedFailure
#[test]
fn a_paused_failure_waits_for_unpause() {
    let log = Log::new();
    let d = fail::<()>(GenericError("fail".into()));
    d.pause();
    let l = log.clone();
    let d = d.add_errback(move |f| {
        l.push(f.to_string());
        Ok(())
    });
    assert!(log.get().is_empty());
    d.unpause();
    assert_eq!(log.len(), 1);
}

// Twisted: test_defer.py DeferredTests.testCallbackErrors
#[test]
fn a_callback_error_goes_to_the_next_errback() {
    #[derive(Debug, thiserror::Error)]
    #[error("division by zero")]
    struct ZeroDivisionError;

    let (d, r) = Deferred::<i32>::new();
    let d = d
        .add_callback(|_| -> Result<i32, Failure> { Err(ZeroDivisionError.into()) })
        .add_errback(|f| {
            assert!(f.is::<ZeroDivisionError>());
            Ok(-1)
        });
    r.callback(1).unwrap();
    assert_eq!(success_result_of(&d), -1);

    // `?` works the same way.
    let d = succeed("x").add_callback(|s| {
        let n: i32 = s.parse()?;
        Ok(n)
    });
    assert!(failure_result_of(&d).is::<std::num::ParseIntError>());
}

// Twisted: test_defer.py DeferredTests.testUnpauseBeforeCallback
#[test]
fn unpause_before_fire_does_nothing() {
    let log = Log::new();
    let (d, r) = Deferred::<u8>::new();
    d.pause();
    let l = log.clone();
    let d = d.add_callback(move |v| {
        l.push(v);
        Ok(())
    });
    d.unpause();
    assert!(log.get().is_empty());
    r.callback(1).unwrap();
    assert_eq!(log.get(), [1]);
}

// Twisted: test_defer.py DeferredTests.test_callbackMaybeReturnsFailure
#[test]
fn a_returned_failure_passes_unchanged_through_later_callbacks() {
    let (d, r) = Deferred::<i32>::new();
    let d = d.add_callback(|x| Ok(x + 1));
    r.callback(6).unwrap();
    assert_eq!(success_result_of(&d), 7);

    let original = Failure::new(GenericError("rte".into()));
    let f1 = original.clone();
    let (d, r) = Deferred::<i32>::new();
    let d = d
        .add_callback(move |_| -> Result<i32, Failure> { Err(f1) })
        .add_callback(|_| -> Result<i32, Failure> { panic!("skipped") });
    r.callback(1).unwrap();
    assert!(failure_result_of(&d).ptr_eq(&original));
}

#[test]
fn an_errback_that_recovers_returns_to_callbacks() {
    let d = fail::<u32>(Failure::msg("x"))
        .add_callback(|_| -> Result<u32, Failure> { panic!("skipped") })
        .add_errback(|_| Ok(5))
        .add_callback(|v| Ok(v * 2))
        .add_errback(|_| -> Result<u32, Failure> { panic!("skipped") });
    assert_eq!(success_result_of(&d), 10);
}

#[test]
fn callbacks_added_after_the_fire_run_at_once_in_fifo_order() {
    let log = Log::new();
    let d = succeed(1);
    let mut d = d.add_callback(Ok);
    for i in 0..5 {
        let l = log.clone();
        d = d.add_callback(move |v| {
            l.push(i);
            Ok(v)
        });
        assert_eq!(log.len(), i + 1);
    }
    assert_eq!(log.get(), [0, 1, 2, 3, 4]);
}

// Twisted: test_defer.py DeferredTests.test_reentrantRunCallbacks
#[test]
fn a_callback_added_from_a_running_callback_runs_after_it() {
    // In Rust a callback cannot hold its own Deferred (it was consumed), but
    // it can hold a handle added later through shared state: emulate
    // Twisted's reentrant addCallback with a second chain fired inside.
    let log = Log::new();
    let (d, r) = Deferred::<()>::new();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let (side, side_r) = Deferred::<()>::new();
    let side = side.add_callback(move |_| {
        l3.push(3);
        Ok(())
    });
    let _d = d
        .add_callback(move |_| {
            l1.push(1);
            side_r.callback(()).unwrap(); // runs side's chain synchronously
            Ok(())
        })
        .add_callback(move |_| {
            l2.push(2);
            Ok(())
        });
    r.callback(()).unwrap();
    assert_eq!(log.get(), [1, 3, 2]);
    drop(side);
}

// Twisted: test_defer.py DeferredTests.test_nonReentrantCallbacks /
// test_reentrantRunCallbacks: a callback added (from another thread or
// handle) while the chain runs is appended and runs after the current one.
#[test]
fn a_callback_added_while_running_is_appended() {
    use std::sync::{Arc, Mutex};
    let log = Log::new();
    let (d, r) = Deferred::<u32>::new();
    let slot: Arc<Mutex<Option<Deferred<u32>>>> = Arc::new(Mutex::new(None));
    let (l1, s1) = (log.clone(), slot.clone());
    let d = d.add_callback(move |v| {
        l1.push(1);
        // Add a callback to our own chain while it is running.
        let mut guard = s1.lock().unwrap();
        let d = guard.take().unwrap();
        let l = l1.clone();
        *guard = Some(d.add_callback(move |v| {
            l.push(3);
            Ok(v)
        }));
        // It has not run yet.
        assert_eq!(l1.get(), [1]);
        Ok(v)
    });
    let l2 = log.clone();
    let d = d.add_callback(move |v| {
        l2.push(2);
        Ok(v)
    });
    *slot.lock().unwrap() = Some(d);
    r.callback(9).unwrap();
    assert_eq!(log.get(), [1, 2, 3]);
    let d = slot.lock().unwrap().take().unwrap();
    assert_eq!(success_result_of(&d), 9);
}

// Twisted: test_defer.py DeferredTests.test_reentrantRunCallbacksWithFailure
#[test]
fn a_reentrantly_added_failing_callback_feeds_the_next_errback() {
    use std::sync::{Arc, Mutex};
    let slot: Arc<Mutex<Option<Deferred<u32>>>> = Arc::new(Mutex::new(None));
    let (d, r) = Deferred::<u32>::new();
    let s = slot.clone();
    let d = d.add_callback(move |v| {
        let mut g = s.lock().unwrap();
        let d = g.take().unwrap();
        *g = Some(
            d.add_callback(|_| -> Result<u32, Failure> {
                Err(Failure::msg("callback raised exception"))
            })
            .add_errback(|f| {
                assert_eq!(f.to_string(), "callback raised exception");
                Ok(77)
            }),
        );
        Ok(v)
    });
    *slot.lock().unwrap() = Some(d);
    r.callback(1).unwrap();
    let d = slot.lock().unwrap().take().unwrap();
    assert_eq!(success_result_of(&d), 77);
}

// Twisted: test_defer.py DeferredTests.testAlreadyCalled_CC/_CE/_EE/_EC
#[test]
fn firing_twice_is_an_error_in_every_combination() {
    let (_d, r) = Deferred::<&str>::new();
    r.callback("hello").unwrap();
    assert_eq!(r.callback("again").unwrap_err().into_inner(), "again");
    assert!(r.errback(Failure::msg("x")).is_err());

    let (_d, r) = Deferred::<&str>::new();
    r.errback(Failure::msg("first")).unwrap();
    assert!(r.errback(Failure::msg("x")).is_err());
    let err = r.callback("again").unwrap_err();
    assert!(err.to_string().contains("already called"));
    assert!(err.to_string().contains("tests/chain.rs"), "{err}");
}

#[test]
fn a_clone_of_the_resolver_fires_too_but_only_once() {
    let (d, r) = Deferred::<u8>::new();
    let r2 = r.clone();
    let t = std::thread::spawn(move || r2.callback(1).is_ok());
    let first = t.join().unwrap();
    let second = r.callback(2).is_ok();
    assert!(first ^ second);
    assert_eq!(success_result_of(&d), 1);
}

// Twisted: observed in 26.10 (reference §2.4): pausing from inside a
// callback does not stop the callbacks already queued behind it.
#[test]
fn pause_from_inside_a_callback_does_not_stop_the_current_run() {
    use std::sync::{Arc, Mutex};
    let log = Log::new();
    let slot: Arc<Mutex<Option<tokio_deferred::CancelHandle>>> = Arc::new(Mutex::new(None));
    let holder: Arc<Mutex<Option<Deferred<()>>>> = Arc::new(Mutex::new(None));
    let (d, r) = Deferred::<()>::new();
    let h = holder.clone();
    let l1 = log.clone();
    let d = d.add_callback(move |_| {
        l1.push(1);
        if let Some(d) = h.lock().unwrap().as_ref() {
            d.pause();
        }
        Ok(())
    });
    let l2 = log.clone();
    let d = d.add_callback(move |_| {
        l2.push(2);
        Ok(())
    });
    *holder.lock().unwrap() = Some(d);
    r.callback(()).unwrap();
    assert_eq!(log.get(), [1, 2]);
    let d = holder.lock().unwrap().take().unwrap();
    assert!(d.is_paused());
    // Callbacks added now wait for unpause.
    let l3 = log.clone();
    let d = d.add_callback(move |_| {
        l3.push(3);
        Ok(())
    });
    assert_eq!(log.get(), [1, 2]);
    d.unpause();
    assert_eq!(log.get(), [1, 2, 3]);
    drop(slot);
}

// Twisted #12726: an unbalanced unpause leaves Twisted in a broken state;
// here it is ignored.
#[test]
fn unbalanced_unpause_is_harmless() {
    let log = Log::new();
    let d = succeed(1);
    d.unpause();
    d.unpause();
    d.pause();
    let l = log.clone();
    let d = d.add_callback(move |v| {
        l.push(v);
        Ok(v)
    });
    assert!(
        log.get().is_empty(),
        "one pause still holds after two extra unpauses"
    );
    d.unpause();
    assert_eq!(log.get(), [1]);
}

// Twisted: observed (reference §2.6): nested pauses need matching unpauses.
#[test]
fn pauses_are_counted() {
    let log = Log::new();
    let d = succeed(1);
    d.pause();
    d.pause();
    let l = log.clone();
    let d = d.add_callback(move |v| {
        l.push(v);
        Ok(v)
    });
    d.unpause();
    assert!(log.get().is_empty());
    assert!(d.is_paused());
    d.unpause();
    assert_eq!(log.get(), [1]);
    assert!(!d.is_paused());
}

#[test]
fn try_take_consumes_the_result() {
    let d = succeed(3);
    assert_eq!(d.try_take().unwrap().unwrap(), 3);
    let again = d.try_take().unwrap().unwrap_err();
    assert!(again.is::<ResultTakenError>());
    let d = d.add_callback(|v| Ok(v + 1));
    assert!(failure_result_of(&d).is::<ResultTakenError>());
}

#[test]
fn add_both_sees_values_and_failures() {
    let d = succeed(1).add_both(|r| match r {
        Ok(v) => Ok(format!("ok {v}")),
        Err(f) => Ok(format!("err {f}")),
    });
    assert_eq!(success_result_of(&d), "ok 1");
    let d = fail::<i32>(Failure::msg("bad")).add_both(|r| match r {
        Ok(v) => Ok(format!("ok {v}")),
        Err(f) => Ok(format!("err {f}")),
    });
    assert_eq!(success_result_of(&d), "err bad");
}

#[test]
fn add_callbacks_errback_does_not_see_the_callbacks_failure() {
    let d = succeed(1).add_callbacks(
        |_| -> Result<i32, Failure> { Err(Failure::msg("from callback")) },
        |_| -> Result<i32, Failure> { panic!("the errback of the same pair must not run") },
    );
    assert_eq!(failure_result_of(&d).to_string(), "from callback");
}

#[test]
fn pass_through_and_execute_and_maybe_deferred() {
    let d = succeed(4).add_callback(pass_through);
    assert_eq!(success_result_of(&d), 4);

    // Twisted: test_defer.py test_maybeDeferredSync / SyncException
    let d = maybe_deferred(|| Ok::<_, Failure>(15));
    assert_eq!(success_result_of(&d), 15);
    let d = maybe_deferred(|| -> Result<u8, Failure> {
        Err(Failure::msg("that value is unacceptable"))
    });
    assert_eq!(
        failure_result_of(&d).to_string(),
        "that value is unacceptable"
    );
    // Twisted: test_maybeDeferredSyncFailure: the same Failure object.
    let f = Failure::msg("x");
    let f2 = f.clone();
    let d = maybe_deferred(move || -> Result<u8, Failure> { Err(f2) });
    assert!(failure_result_of(&d).ptr_eq(&f));
    // Twisted: test_maybeDeferredAsync / AsyncError
    let (inner, r) = Deferred::<&str>::new();
    let d = maybe_deferred(move || inner);
    assert_no_result(&d);
    r.callback("Success").unwrap();
    assert_eq!(success_result_of(&d), "Success");
    let (inner, r) = Deferred::<&str>::new();
    let d = maybe_deferred(move || inner);
    r.errback(Failure::msg("runtime")).unwrap();
    assert_eq!(failure_result_of(&d).to_string(), "runtime");

    let d = execute(|| "12".parse::<u8>());
    assert_eq!(success_result_of(&d), 12);
    let d = execute(|| "x".parse::<u8>());
    assert!(failure_result_of(&d).is::<std::num::ParseIntError>());
}

#[test]
fn log_error_passes_the_failure_on() {
    let d = fail::<u8>(Failure::msg("disk full")).add_errback(log_error);
    assert_eq!(failure_result_of(&d).to_string(), "disk full");
}

#[test]
fn debug_shows_the_state_without_t_debug() {
    struct Opaque;
    let (d, r) = Deferred::<Opaque>::new();
    let d = d.add_callback(Ok);
    let s = format!("{d:?}");
    assert!(s.contains("pending") && s.contains("callbacks: 1"), "{s}");
    d.pause();
    r.callback(Opaque).unwrap();
    let s = format!("{d:?}");
    assert!(s.contains("paused: 1"), "{s}");
    d.unpause();
    assert!(format!("{d:?}").contains("fired"));
    let f = fail::<Opaque>(Failure::msg("boom"));
    let s = format!("{f:?}");
    assert!(s.contains("failed") && s.contains("boom"), "{s}");
    let _ = f.try_take();
    assert!(format!("{f:?}").contains("result taken"));
    let _ = format!("{r:?}");
}

// Implicit chaining (a callback returns a Deferred) and `chain_deferred`.

// Twisted: test_defer.py DeferredTests.test_callbackReturnsDeferred. In
// Twisted the test pauses d2 after returning it; in Rust d2's handle moves
// into the chain, so a callback of d2 waiting on a gate stands in for the
// pause: the outer chain waits until d2's own chain has finished.
#[test]
fn a_returned_deferred_holds_the_chain_until_its_own_chain_finishes() {
    let log = Log::new();
    let (d1, r1) = Deferred::<i32>::new();
    let (d2, r2) = Deferred::<i32>::new();
    d2.pause();
    let handle = d2.cancel_handle();
    // We keep a way to unpause d2 after it is moved into the chain: in Rust
    // the chain owns it, so pause/unpause through a side channel Deferred.
    let (gate, gate_r) = Deferred::<()>::new();
    let d2 = d2.add_callback(move |v| gate.add_callback(move |_| Ok(v)));
    d2.unpause();
    let l = log.clone();
    let d1 = d1.add_callback(move |_| d2).add_callback(move |v| {
        l.push(v);
        Ok(())
    });
    r1.callback(1).unwrap();
    assert!(log.get().is_empty());
    r2.callback(2).unwrap();
    assert!(log.get().is_empty(), "still held by the gate");
    gate_r.callback(()).unwrap();
    assert_eq!(log.get(), [2]);
    drop((d1, handle));
}

// Twisted: test_defer.py DeferredTests.test_chainedPausedDeferredWithResult
#[test]
fn returning_a_paused_deferred_with_a_result_chains_and_waits() {
    let log = Log::new();
    let (paused, r) = Deferred::<&str>::new();
    r.callback("expected").unwrap();
    paused.pause();
    // Pause/unpause need the handle; hand it over via add_callback on a
    // gate so the chain sees a paused Deferred with a result.
    let (gate, gate_r) = Deferred::<()>::new();
    let p = paused.add_callback(move |v| gate.add_callback(move |_| Ok(v)));
    let l = log.clone();
    let (chained, cr) = Deferred::<()>::new();
    let chained = chained.add_callback(move |_| p).add_callback(move |v| {
        l.push(v);
        Ok(())
    });
    // `paused` (now `p`) is still paused: its callbacks have not run.
    cr.callback(()).unwrap();
    assert!(log.get().is_empty());
    assert!(chained.is_waiting());
    gate_r.callback(()).unwrap();
    assert!(log.get().is_empty(), "p is still paused");
    drop(chained);
}

// Twisted: test_defer.py DeferredTests.test_errbackReturnsDeferred
#[test]
fn an_errback_can_return_a_deferred() {
    let log = Log::new();
    let (d, r) = Deferred::<&str>::new();
    let (d2, r2) = Deferred::<&str>::new();
    let l = log.clone();
    let d = d.add_errback(move |_| d2).add_callback(move |v| {
        l.push(v);
        Ok(())
    });
    r.errback(Failure::msg("value error")).unwrap();
    assert_no_result(&d);
    assert!(log.get().is_empty());
    r2.callback("result").unwrap();
    assert_eq!(log.get(), ["result"]);
}

// Twisted: test_defer.py DeferredTests.test_synchronousImplicitChain
#[test]
fn an_already_fired_deferred_returned_from_a_callback_gives_its_result_at_once() {
    let first = succeed("obj");
    let (second, r) = Deferred::<()>::new();
    let second = second.add_callback(move |_| first);
    r.callback(()).unwrap();
    assert_eq!(success_result_of(&second), "obj");
}

// Twisted: test_defer.py DeferredTests.test_asynchronousImplicitChain
#[test]
fn an_unfired_deferred_returned_from_a_callback_delivers_later() {
    let log = Log::new();
    let (first, fr) = Deferred::<&str>::new();
    let (second, sr) = Deferred::<()>::new();
    let l = log.clone();
    let second = second.add_callback(move |_| first).add_callback(move |v| {
        l.push(v);
        Ok(())
    });
    sr.callback(()).unwrap();
    assert!(log.get().is_empty());
    assert!(second.is_waiting());
    fr.callback("obj").unwrap();
    assert_eq!(log.get(), ["obj"]);
    assert!(!second.is_waiting());
}

// Twisted: test_defer.py DeferredTests.test_synchronousImplicitErrorChain
// and LogTests.test_chainedErrorCleanup
#[test]
fn a_failure_is_handed_over_from_a_returned_deferred() {
    let first = fail::<()>(Failure::msg("runtime error"));
    let (second, r) = Deferred::<()>::new();
    let second = second.add_callback(move |_| first);
    r.callback(()).unwrap();
    assert_eq!(failure_result_of(&second).to_string(), "runtime error");
}

// Twisted: test_defer.py DeferredTests.test_asynchronousImplicitErrorChain
#[test]
fn a_later_failure_is_handed_over_to_the_waiting_chain() {
    let errors = Log::new();
    let after = Log::new();
    let (first, fr) = Deferred::<()>::new();
    let (second, sr) = Deferred::<()>::new();
    let (e, a) = (errors.clone(), after.clone());
    let _second = second
        .add_callback(move |_| first)
        .add_errback(move |f| {
            e.push(f.to_string());
            Ok(())
        })
        .add_callback(move |v| {
            a.push(v);
            Ok(())
        });
    sr.callback(()).unwrap();
    fr.errback(Failure::msg("runtime error")).unwrap();
    assert_eq!(errors.get(), ["runtime error"]);
    assert_eq!(after.len(), 1);
}

// Twisted: test_defer.py DeferredTests.test_doubleAsynchronousImplicitChaining
#[test]
fn double_asynchronous_implicit_chaining() {
    let log = Log::new();
    let (first, fr) = Deferred::<&str>::new();
    let (second, sr) = Deferred::<()>::new();
    let (third, tr) = Deferred::<()>::new();
    let second = second.add_callback(move |_| first);
    let l = log.clone();
    let _third = third.add_callback(move |_| second).add_callback(move |v| {
        l.push(v);
        Ok(())
    });
    sr.callback(()).unwrap();
    tr.callback(()).unwrap();
    assert!(log.get().is_empty());
    fr.callback("obj").unwrap();
    assert_eq!(log.get(), ["obj"]);
}

// Twisted: test_defer.py DeferredTests.test_nestedAsynchronousChainedDeferreds
#[test]
fn nested_asynchronous_chained_deferreds() {
    let results: Log<String> = Log::new();
    let (inner, ir) = Deferred::<String>::new();
    let inner_slot = std::sync::Arc::new(std::sync::Mutex::new(Some(inner)));
    let (r1, r2, r3) = (results.clone(), results.clone(), results.clone());
    let s = inner_slot.clone();
    let cb = move |v: &'static str| {
        r1.push(format!("start-of-cb {v}"));
        let r = r1.clone();
        let r2 = r1.clone();
        let s = s.clone();
        let d = succeed("inner")
            .add_callback(move |v| {
                r.push(format!("firstCallback {v}"));
                Ok(s.lock().unwrap().take().unwrap())
            })
            .add_callback(|inner: Deferred<String>| inner)
            .add_callback(move |v: String| {
                r2.push(format!("secondCallback {v}"));
                Ok(v.repeat(2))
            });
        Ok(d)
    };
    let _outer = succeed("outer")
        .add_callback(cb)
        .add_callback(|d: Deferred<String>| d)
        .add_callback(move |v| {
            r3.push(v);
            Ok(())
        });
    assert_eq!(results.get(), ["start-of-cb outer", "firstCallback inner"]);
    ir.callback("orange".into()).unwrap();
    assert_eq!(
        results.get(),
        [
            "start-of-cb outer",
            "firstCallback inner",
            "secondCallback orange",
            "orangeorange"
        ]
    );
    drop(r2);
}

// Twisted: test_defer.py DeferredTests.test_innerCallbacksPreserved
#[test]
fn callbacks_added_to_the_inner_before_chaining_run_first() {
    let (inner, ir) = Deferred::<String>::new();
    let inner = inner.add_callback(|v| Ok(format!("[{v}]")));
    ir.callback("orange".into()).unwrap();
    let outer = succeed(()).add_callback(move |_| inner);
    assert_eq!(success_result_of(&outer), "[orange]");
}

// Twisted: test_defer.py DeferredTests.test_callbackOrderPreserved
#[test]
fn the_outer_chain_goes_on_after_all_the_inner_callbacks() {
    let log: Log<String> = Log::new();
    let (a, ar) = Deferred::<String>::new();
    let (outer, or) = Deferred::<&str>::new();
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let _outer = outer
        .add_callback(move |v| {
            l1.push(format!("cb {v}"));
            let l2 = l2.clone();
            Ok(succeed(())
                .add_callback(move |_| {
                    l2.push("firstCallback".into());
                    Ok(a)
                })
                .add_callback(|a: Deferred<String>| a)
                .add_callback(move |v: String| {
                    l3.push(format!("secondCallback {v}"));
                    Ok(())
                }))
        })
        .add_callback(|d: Deferred<()>| d)
        .add_callback(move |_| {
            l4.push("final".into());
            Ok(())
        });
    or.callback("outer").unwrap();
    assert_eq!(log.get(), ["cb outer", "firstCallback"]);
    ar.callback("withers".into()).unwrap();
    assert_eq!(
        log.get(),
        [
            "cb outer",
            "firstCallback",
            "secondCallback withers",
            "final"
        ]
    );
}

// Twisted: test_defer.py DeferredTests.test_boundedStackDepth and the
// observed 100,000-deep chain; here a million levels on a 2 MiB stack.
#[test]
fn a_million_nested_deferreds_fired_from_the_innermost() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let (innermost, r) = Deferred::<u64>::new();
            let mut d = innermost;
            for _ in 0..1_000_000 {
                let prev = d;
                d = succeed(()).add_callback(move |_| prev);
            }
            let d = d.add_callback(|v| Ok(v + 1));
            assert!(d.is_waiting());
            r.callback(41).unwrap();
            assert_eq!(success_result_of(&d), 42);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_million_unfired_outer_deferreds_each_waiting_on_the_next() {
    // Each outer is fired *after* it got its callback, and the innermost
    // fires last: the Continue markers unwind iteratively.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let (innermost, r) = Deferred::<u64>::new();
            let mut d = innermost;
            let mut resolvers = Vec::new();
            for _ in 0..1_000_000 {
                let prev = d;
                let (outer, ro) = Deferred::<()>::new();
                d = outer
                    .add_callback(move |_| prev)
                    .add_callback(|v| Ok(v + 1));
                resolvers.push(ro);
            }
            for ro in resolvers.iter().rev() {
                ro.callback(()).unwrap();
            }
            assert!(d.is_waiting());
            r.callback(0).unwrap();
            assert_eq!(success_result_of(&d), 1_000_000);
        })
        .unwrap()
        .join()
        .unwrap();
}

// Twisted's chainDeferred recurses and overflows near 330 links (§2.5).
#[test]
fn a_million_chain_deferred_links() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let (first, r0) = Deferred::<u64>::new();
            let mut rests = Vec::with_capacity(1_000_000);
            let mut cur = first;
            for _ in 0..1_000_000 {
                let (next, r) = Deferred::<u64>::new();
                rests.push(cur.chain_deferred(r));
                cur = next.add_callback(|v| Ok(v + 1));
            }
            r0.callback(0).unwrap();
            assert_eq!(success_result_of(&cur), 1_000_000);
            assert!(rests.iter().all(|d| d.try_take().unwrap().is_ok()));
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn chain_deferred_into_a_fired_target_fails_the_rest_of_the_chain() {
    let (target, tr) = Deferred::<u8>::new();
    tr.callback(1).unwrap();
    let rest = succeed(2).chain_deferred(tr);
    let f = failure_result_of(&rest);
    assert!(f.is::<AlreadyCalledError<()>>(), "{f:?}");
    assert_eq!(success_result_of(&target), 1);
}

#[test]
fn chain_deferred_carries_failures() {
    let (target, tr) = Deferred::<u8>::new();
    let _rest = fail::<u8>(Failure::msg("bad")).chain_deferred(tr);
    assert_eq!(failure_result_of(&target).to_string(), "bad");
}

// Twisted: chainDeferred runs the target's callbacks before the source's
// remaining ones (the nested call returns first).
#[test]
fn chain_deferred_runs_the_target_before_the_rest_of_the_source() {
    let log = Log::new();
    let (target, tr) = Deferred::<u8>::new();
    let l = log.clone();
    let _target = target.add_callback(move |v| {
        l.push(format!("target {v}"));
        Ok(())
    });
    let (src, sr) = Deferred::<u8>::new();
    let l = log.clone();
    let _src = src.chain_deferred(tr).add_callback(move |_| {
        l.push("source rest".to_string());
        Ok(())
    });
    sr.callback(5).unwrap();
    assert_eq!(log.get(), ["target 5", "source rest"]);
}

#[test]
fn a_callback_returning_its_own_deferred_fails_instead_of_hanging() {
    use std::sync::{Arc, Mutex};
    let slot: Arc<Mutex<Option<Deferred<u8>>>> = Arc::new(Mutex::new(None));
    let (d, r) = Deferred::<u8>::new();
    let s = slot.clone();
    let d = d.add_callback(move |_| s.lock().unwrap().take().unwrap());
    *slot.lock().unwrap() = Some(d);
    r.callback(1).unwrap();
    // The Deferred moved itself into its own chain. Twisted chains it to
    // itself and hangs; here the chain fails with ChainedToSelfError and
    // `callback` returns (this test would deadlock or hang otherwise).
    assert!(slot.lock().unwrap().is_none());
}

#[test]
fn implicit_chaining_across_threads() {
    let (inner, ir) = Deferred::<u32>::new();
    let (outer, or) = Deferred::<()>::new();
    let outer = outer
        .add_callback(move |_| inner)
        .add_callback(|v| Ok(v * 2));
    let t1 = std::thread::spawn(move || or.callback(()).unwrap());
    let t2 = std::thread::spawn(move || ir.callback(21).unwrap());
    t1.join().unwrap();
    t2.join().unwrap();
    assert_eq!(success_result_of(&outer), 42);
}

// A level of a nested chain whose outer is paused: the inner's result is
// handed to the outer, whose callbacks wait for `unpause` (Twisted: a paused
// Deferred runs nothing, whoever delivers its result).
#[test]
fn a_nested_level_delivering_to_a_paused_outer_runs_nothing_until_unpaused() {
    let log = Log::new();
    let (inner, ir) = Deferred::<u8>::new();
    let outer = succeed(()).add_callback(move |_| inner);
    outer.pause();
    let l = log.clone();
    let outer = outer.add_callback(move |v| {
        l.push(v);
        Ok(v + 1)
    });
    ir.callback(1).unwrap();
    assert_eq!(log.get(), Vec::<u8>::new());
    assert!(outer.try_take().is_none());
    outer.unpause();
    assert_eq!(log.get(), vec![1]);
    assert_eq!(success_result_of(&outer), 2);
}
