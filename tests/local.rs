//! `LocalDeferred`: the `!Send` flavour. The same semantics as `Deferred`
//! (Twisted's), checked case by case; the differential conformance run is
//! in `tests/conformance.rs` (`golden_traces_match_twisted_local`).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::capture_unhandled;
use tokio_deferred::{
    AlreadyCalledError, CancelledError, ChainedToSelfError, Failure, LocalDeferred, LocalResolver,
    PanicError, ResolverDroppedError, ResultTakenError,
};

type Log = Rc<RefCell<Vec<String>>>;

/// The size of the "many" tests: a million, fewer under Miri and under
/// valgrind's memcheck (`scripts/memcheck.sh` sets `TOKIO_DEFERRED_MANY`),
/// which check the arena's `unsafe` code and are slow.
fn many() -> usize {
    if cfg!(miri) {
        return 300;
    }
    std::env::var("TOKIO_DEFERRED_MANY")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(l: &Log, s: impl Into<String>) {
    l.borrow_mut().push(s.into());
}

fn ok<T>(d: &LocalDeferred<T>) -> T {
    d.try_take()
        .expect("a result")
        .unwrap_or_else(|f| panic!("failed: {f}"))
}

fn err<T>(d: &LocalDeferred<T>) -> Failure {
    match d.try_take().expect("a result") {
        Ok(_) => panic!("succeeded"),
        Err(f) => f,
    }
}

#[test]
fn callbacks_run_in_order_and_retype_the_chain() {
    let l = log();
    let (d, r) = LocalDeferred::<u32>::new();
    let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
    let d = d
        .add_callback(move |x| {
            push(&l1, format!("a{x}"));
            Ok(x + 1)
        })
        .add_callback(move |x| {
            push(&l2, format!("b{x}"));
            Ok(x.to_string())
        })
        .add_both(move |r: Result<String, Failure>| {
            push(&l3, format!("c{}", r.as_ref().unwrap()));
            r.map(|s| s.len())
        });
    assert!(l.borrow().is_empty());
    assert!(d.try_take().is_none());
    r.callback(9).unwrap();
    assert_eq!(*l.borrow(), ["a9", "b10", "c10"]);
    assert_eq!(ok(&d), 2);
}

#[test]
fn a_failure_skips_callbacks_to_the_next_errback() {
    let l = log();
    let (d, r) = LocalDeferred::<u32>::new();
    let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
    let d = d
        .add_callback(move |x| {
            push(&l1, "cb1");
            Err::<u32, _>(Failure::msg(format!("bad {x}")))
        })
        .add_callback(move |x| {
            push(&l2, "cb2");
            Ok(x)
        })
        .add_errback(move |f: Failure| {
            push(&l3, format!("eb {f}"));
            Ok(0)
        })
        .add_callback(|x| Ok(x + 5));
    r.callback(1).unwrap();
    assert_eq!(*l.borrow(), ["cb1", "eb bad 1"]);
    assert_eq!(ok(&d), 5);
}

#[test]
fn add_callbacks_runs_exactly_one_of_the_pair() {
    let d = LocalDeferred::succeed(1).add_callbacks(
        |_| Err::<u8, _>(Failure::msg("from the callback")),
        |_: Failure| Ok(99),
    );
    // The errback of the same pair does not see the callback's failure.
    assert_eq!(err(&d).to_string(), "from the callback");
    let d = LocalDeferred::<u8>::fail(Failure::msg("x")).add_callbacks(Ok, |_| Ok(7));
    assert_eq!(ok(&d), 7);
}

#[test]
fn a_callback_added_after_the_fire_runs_at_once() {
    let seen = Rc::new(Cell::new(0));
    let d = LocalDeferred::succeed(4);
    let s = seen.clone();
    let d = d.add_callback(move |x| {
        s.set(x);
        Ok(x * 2)
    });
    assert_eq!(seen.get(), 4);
    assert_eq!(ok(&d), 8);
}

#[test]
fn a_long_chain_spans_many_chunks() {
    // Big closures (128 bytes each) and a million small ones: chunks grow
    // and the cursor crosses them.
    let many = many();
    let mut d = LocalDeferred::succeed(0u64);
    d.pause();
    let pad = [1u64; 16];
    for _ in 0..many / 100 {
        d = d.add_callback(move |x| Ok(x + pad.iter().sum::<u64>()));
    }
    d.unpause();
    assert_eq!(ok(&d), 16 * (many / 100) as u64);
    let (mut d, r) = LocalDeferred::<u64>::new();
    for _ in 0..many {
        d = d.add_callback(|x| Ok(x + 1));
    }
    r.callback(0).unwrap();
    assert_eq!(ok(&d), many as u64);
}

#[test]
fn pausing_holds_the_rest_of_the_chain() {
    let l = log();
    let (d, r) = LocalDeferred::<u8>::new();
    d.pause();
    d.pause();
    let l1 = l.clone();
    let d = d.add_callback(move |x| {
        push(&l1, "cb");
        Ok(x)
    });
    r.callback(1).unwrap();
    assert!(d.is_called() && d.is_paused());
    assert!(d.try_take().is_none());
    d.unpause();
    assert!(l.borrow().is_empty(), "pauses are counted");
    d.unpause();
    d.unpause(); // an extra unpause is ignored
    assert_eq!(*l.borrow(), ["cb"]);
    assert!(!d.is_paused());
    assert_eq!(ok(&d), 1);
}

#[test]
fn pausing_inside_a_callback_does_not_stop_the_current_run() {
    // Twisted: the callbacks already queued run; those added later wait.
    let l = log();
    let holder: Rc<RefCell<Option<LocalDeferred<u8>>>> = Rc::default();
    let (d, r) = LocalDeferred::<u8>::new();
    let (h, l1, l2) = (holder.clone(), l.clone(), l.clone());
    let d = d
        .add_callback(move |x| {
            if let Some(d) = h.borrow().as_ref() {
                d.pause();
            }
            push(&l1, "first");
            Ok(x)
        })
        .add_callback(move |x| {
            push(&l2, "second");
            Ok(x)
        });
    *holder.borrow_mut() = Some(d);
    r.callback(1).unwrap();
    assert_eq!(*l.borrow(), ["first", "second"]);
    let d = holder.borrow_mut().take().unwrap();
    assert!(d.is_paused());
    let l3 = l.clone();
    let d = d.add_callback(move |x| {
        push(&l3, "third");
        Ok(x)
    });
    assert_eq!(l.borrow().len(), 2);
    d.unpause();
    assert_eq!(*l.borrow(), ["first", "second", "third"]);
    assert_eq!(ok(&d), 1);
}

#[test]
fn a_returned_fired_deferred_gives_its_result_at_once() {
    let d = LocalDeferred::succeed(1).add_callback(|x| LocalDeferred::succeed(x + 1));
    assert!(!d.is_waiting());
    assert_eq!(ok(&d), 2);
    let d = LocalDeferred::succeed(1)
        .add_callback(|_| LocalDeferred::<u8>::fail(Failure::msg("inner")))
        .add_errback(|f| {
            assert_eq!(f.to_string(), "inner");
            Ok(3)
        });
    assert_eq!(ok(&d), 3);
}

#[test]
fn a_returned_unfired_deferred_is_waited_on() {
    let l = log();
    let (inner, inner_r) = LocalDeferred::<u32>::new();
    let l1 = l.clone();
    let inner = inner.add_callback(move |x| {
        push(&l1, format!("inner {x}"));
        Ok(x * 10)
    });
    let slot = Rc::new(RefCell::new(Some(inner)));
    let (d, r) = LocalDeferred::<u32>::new();
    let (s, l2) = (slot.clone(), l.clone());
    let d = d
        .add_callback(move |_| s.borrow_mut().take().unwrap())
        .add_callback(move |x| {
            push(&l2, format!("outer {x}"));
            Ok(x + 1)
        });
    r.callback(0).unwrap();
    assert!(d.is_waiting());
    assert!(d.try_take().is_none());
    assert!(format!("{d:?}").contains("waiting on another Deferred"));
    inner_r.callback(4).unwrap();
    assert_eq!(*l.borrow(), ["inner 4", "outer 40"]);
    assert!(!d.is_waiting());
    assert_eq!(ok(&d), 41);
}

#[test]
fn a_returned_paused_deferred_is_waited_on() {
    // Twisted: a paused Deferred, even fired, is waited on, not read.
    let inner = LocalDeferred::succeed(5);
    inner.pause();
    let mut cell = Some(inner);
    let d = LocalDeferred::succeed(0).add_callback(move |_| cell.take().unwrap());
    assert!(d.is_waiting());
    assert!(d.try_take().is_none());
    // Cancel goes to the Deferred waited on, which has fired: a no-op.
    d.cancel();
    assert!(d.is_waiting());
}

#[test]
fn nesting_a_million_deep_uses_a_constant_stack() {
    // Each Deferred's callback returns the next, unfired one; firing the
    // innermost resumes them all. A recursive design would overflow the
    // stack; the run loop follows continuations instead. All of it runs on
    // a 256 KiB stack to prove the point.
    let depth = many();
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let (innermost, r) = LocalDeferred::<u64>::new();
            let mut current = innermost;
            for _ in 0..depth {
                let (outer, outer_r) = LocalDeferred::<u64>::new();
                let mut cell = Some(current);
                let outer =
                    outer.add_callback(move |_| cell.take().unwrap().add_callback(|x| Ok(x + 1)));
                outer_r.callback(0).unwrap();
                assert!(outer.is_waiting());
                current = outer;
            }
            r.callback(0).unwrap();
            let v = ok(&current);
            drop(current);
            v
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(result, depth as u64);
}

#[test]
fn a_million_paused_nested_deferreds_drop_without_recursion() {
    let many = many();
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let (innermost, r) = LocalDeferred::<u64>::new();
            innermost.pause();
            r.callback(1).unwrap();
            let mut current = innermost;
            for _ in 0..many {
                let mut cell = Some(current);
                current = LocalDeferred::succeed(0u64).add_callback(move |_| cell.take().unwrap());
            }
            assert!(current.is_waiting());
            drop(r);
            // The innermost state (paused for good) holds the chain of
            // continuations; nothing holds it any more once the outermost
            // handle goes, and it is unlinked in a loop.
            drop(current);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn returning_the_deferred_itself_fails_the_chain() {
    let (_, events) = capture_unhandled(|| {
        let slot: Rc<RefCell<Option<LocalDeferred<u8>>>> = Rc::default();
        let (d, r) = LocalDeferred::<u8>::new();
        let s = slot.clone();
        let d = d.add_callback(move |_| s.borrow_mut().take().unwrap());
        *slot.borrow_mut() = Some(d);
        // Twisted warns and hangs; here the chain fails (no hang, no
        // panic), and since its handle moved into itself, the failure is
        // reported.
        r.callback(1).unwrap();
        assert!(slot.borrow().is_none());
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains("returned the Deferred it was attached to"),
        "{events:?}"
    );
}

#[test]
fn chained_to_self_failure_reaches_later_errbacks() {
    let slot: Rc<RefCell<Option<LocalDeferred<u8>>>> = Rc::default();
    let seen = Rc::new(Cell::new(false));
    let (d, r) = LocalDeferred::<u8>::new();
    let s = slot.clone();
    let d = d.add_callback(move |_| s.borrow_mut().take().unwrap());
    let sn = seen.clone();
    let d = d.add_errback(move |f| {
        sn.set(f.is::<ChainedToSelfError>());
        Ok(0)
    });
    // The callback returns the *final* handle, which is the same chain.
    *slot.borrow_mut() = Some(d);
    r.callback(1).unwrap();
    assert!(seen.get());
}

#[test]
fn cancel_without_a_canceller_fails_and_swallows_one_late_fire() {
    let (d, r) = LocalDeferred::<u8>::new();
    d.cancel();
    assert!(r.callback(1).is_ok());
    let again = r.callback(2).unwrap_err();
    assert_eq!(again.into_inner(), 2);
    assert!(err(&d).is::<CancelledError>());
}

#[test]
fn a_canceller_that_fires_decides_the_result() {
    let (d, r) = LocalDeferred::<u8>::with_canceller(|r| r.callback(5).unwrap());
    d.cancel();
    d.cancel(); // at most once
    // A canceller was given: no late fire is swallowed.
    assert!(r.callback(1).is_err());
    assert_eq!(ok(&d), 5);
}

#[test]
fn a_canceller_that_does_not_fire_leads_to_cancelled_error() {
    let ran = Rc::new(Cell::new(0));
    let rn = ran.clone();
    let (d, r) = LocalDeferred::<u8>::with_canceller(move |_| rn.set(rn.get() + 1));
    d.cancel();
    assert_eq!(ran.get(), 1);
    assert!(
        r.callback(1).is_err(),
        "with a canceller, nothing is swallowed"
    );
    assert!(err(&d).is::<CancelledError>());
}

#[test]
fn a_panicking_canceller_fails_the_deferred_with_the_panic() {
    let (d, _r) = LocalDeferred::<u8>::with_canceller(|_| panic!("canceller broke"));
    d.cancel();
    let f = err(&d);
    assert_eq!(
        f.downcast_ref::<PanicError>().unwrap().message(),
        "canceller broke"
    );
}

#[test]
fn cancel_goes_to_the_deferred_waited_on() {
    let inner_cancelled = Rc::new(Cell::new(false));
    let ic = inner_cancelled.clone();
    let (inner, _inner_r) = LocalDeferred::<u8>::with_canceller(move |_| ic.set(true));
    let mut cell = Some(inner);
    let d = LocalDeferred::succeed(0).add_callback(move |_| cell.take().unwrap());
    assert!(d.is_waiting());
    let handle = d.cancel_handle();
    handle.cancel();
    assert!(inner_cancelled.get());
    assert!(err(&d).is::<CancelledError>());
    // Cancelling a fired, finished Deferred does nothing.
    d.cancel();
    assert!(format!("{handle:?}").contains("alive: true"));
    drop(d);
    assert!(format!("{handle:?}").contains("alive: false"));
    handle.cancel();
}

#[test]
fn cancel_cascades_through_many_levels() {
    let (innermost, _r) = LocalDeferred::<u8>::new();
    let mut current = innermost;
    for _ in 0..many() / 10 {
        let mut cell = Some(current);
        current = LocalDeferred::succeed(0u8).add_callback(move |_| cell.take().unwrap());
    }
    current.cancel();
    assert!(err(&current).is::<CancelledError>());
}

#[test]
fn a_panic_in_a_callback_becomes_a_failure() {
    let d = LocalDeferred::succeed(1)
        .add_callback(|_: i32| -> Result<i32, Failure> { panic!("oops {}", 7) })
        .add_errback(|f| {
            assert_eq!(f.downcast_ref::<PanicError>().unwrap().message(), "oops 7");
            Ok(-1)
        });
    assert_eq!(ok(&d), -1);
}

#[test]
fn dropping_every_resolver_fails_the_deferred() {
    let (d, r) = LocalDeferred::<u8>::new();
    let r2 = r.clone();
    drop(r);
    assert!(!d.is_called());
    drop(r2);
    let f = err(&d);
    let e = f.downcast_ref::<ResolverDroppedError>().unwrap();
    assert!(e.to_string().contains("tests/local.rs"), "{e}");
}

#[test]
fn firing_twice_is_a_typed_error_holding_the_value() {
    let (d, r) = LocalDeferred::<String>::new();
    r.callback("one".into()).unwrap();
    let e: AlreadyCalledError<String> = r.callback("two".into()).unwrap_err();
    assert!(e.to_string().contains("tests/local.rs"), "{e}");
    assert_eq!(e.into_inner(), "two");
    assert!(r.errback(Failure::msg("x")).is_err());
    assert!(r.resolve(Ok("three".into())).is_err());
    assert!(r.is_called());
    assert_eq!(ok(&d), "one");
}

#[test]
fn a_taken_result_is_gone() {
    let d = LocalDeferred::succeed(1);
    assert_eq!(ok(&d), 1);
    assert!(err(&d).is::<ResultTakenError>());
    assert!(format!("{d:?}").contains("result taken"));
    let d = d.add_callback(|x| Ok(x + 1));
    assert!(err(&d).is::<ResultTakenError>());
}

#[test]
fn debug_says_what_state_the_chain_is_in() {
    let (d, r) = LocalDeferred::<u8>::new();
    let d = d.add_callback(Ok);
    assert_eq!(
        format!("{d:?}"),
        "LocalDeferred { state: \"pending\", callbacks: 1 }"
    );
    d.pause();
    r.callback(1).unwrap();
    assert_eq!(
        format!("{d:?}"),
        "LocalDeferred { state: \"fired\", callbacks: 1, paused: 1 }"
    );
    d.unpause();
    assert_eq!(
        format!("{d:?}"),
        "LocalDeferred { state: \"fired\", callbacks: 0 }"
    );
    let f = LocalDeferred::<u8>::fail(Failure::msg("bad"));
    assert!(format!("{f:?}").contains("state: \"failed\""));
    let _ = f.try_take();
    assert!(format!("{r:?}").starts_with("LocalResolver { called: true"));
}

#[test]
fn an_unconsumed_failure_is_reported_once_when_its_handle_goes() {
    let (_, events) = capture_unhandled(|| {
        let d = LocalDeferred::succeed(1).add_callback(|_| Err::<u8, _>(Failure::msg("lost")));
        drop(d);
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("lost"), "{events:?}");
    assert!(
        events[0].contains("LocalDeferred created at tests/local.rs"),
        "{events:?}"
    );
    // Handled, taken or recovered failures are not reported.
    let (_, events) = capture_unhandled(|| {
        let d = LocalDeferred::<u8>::fail(Failure::msg("seen"));
        let _ = d.try_take();
        let d = LocalDeferred::<u8>::fail(Failure::msg("recovered")).add_errback(|_| Ok(0));
        drop(d);
    });
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn a_failure_fired_after_the_handle_went_is_reported() {
    let (_, events) = capture_unhandled(|| {
        let (d, r) = LocalDeferred::<u8>::new();
        let d = d.add_callback(Ok);
        drop(d);
        r.errback(Failure::msg("late")).unwrap();
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("late"), "{events:?}");
}

#[test]
fn a_failure_of_a_chain_waited_on_is_handed_on_not_reported() {
    let (_, events) = capture_unhandled(|| {
        let (inner, ir) = LocalDeferred::<u8>::new();
        let mut cell = Some(inner);
        let d = LocalDeferred::succeed(0)
            .add_callback(move |_| cell.take().unwrap())
            .add_errback(|_| Ok(1));
        ir.errback(Failure::msg("inner")).unwrap();
        assert_eq!(ok(&d), 1);
    });
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn every_closure_and_value_is_dropped_exactly_once() {
    struct Counted(Rc<Cell<i32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    {
        // Unfired: closures dropped with the state.
        let (d, r) = LocalDeferred::<Counted>::new();
        let c = Counted(drops.clone());
        let d = d.add_callback(move |v| {
            drop(c);
            Ok(v)
        });
        drop(d);
        drop(r);
    }
    assert_eq!(drops.get(), 1);
    {
        // Fired: the value moves along; closures consumed once.
        let (d, r) = LocalDeferred::<Counted>::new();
        let c = Counted(drops.clone());
        let d = d
            .add_callback(move |v| {
                let _keep = &c;
                Ok(v)
            })
            .add_callback(Ok);
        r.callback(Counted(drops.clone())).unwrap();
        drop(d);
    }
    assert_eq!(drops.get(), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_local_deferred_is_a_future() {
    let (d, r) = LocalDeferred::<u32>::new();
    let d = d.add_callback(|x| Ok(x + 1));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let waiter = tokio::task::spawn_local(d);
            tokio::task::yield_now().await;
            r.callback(41).unwrap();
            assert_eq!(waiter.await.unwrap().unwrap(), 42);
        })
        .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn waiting_on_a_timer_inside_a_chain() {
    // A callback returns a LocalDeferred fired by a local task after a
    // (paused-clock) sleep: deferLater's shape.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let d = LocalDeferred::succeed(2).add_callback(|x| {
                let (later, r): (LocalDeferred<u32>, LocalResolver<u32>) = LocalDeferred::new();
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    r.callback(x * 21).unwrap();
                });
                later
            });
            let start = tokio::time::Instant::now();
            assert_eq!(d.await.unwrap(), 42);
            assert_eq!(start.elapsed(), std::time::Duration::from_secs(5));
        })
        .await;
}

#[test]
fn polled_pending_then_fired_wakes_the_task() {
    let (d, r) = LocalDeferred::<u8>::new();
    let mut task = tokio_test::task::spawn(d);
    assert!(task.poll().is_pending());
    r.callback(3).unwrap();
    assert!(task.is_woken());
    match task.poll() {
        std::task::Poll::Ready(r) => assert_eq!(r.unwrap(), 3),
        std::task::Poll::Pending => panic!("still pending"),
    }
}

#[test]
fn a_failure_reaching_a_paused_deferred_with_no_handle_is_not_reported() {
    // Twisted arms a failure only when a run ends on it (`failResult`); a
    // paused chain does not run (conformance bug L1).
    let (_, events) = capture_unhandled(|| {
        let (d, r) = LocalDeferred::<i32>::new();
        d.pause();
        drop(d);
        r.errback(Failure::msg("never armed")).unwrap();
        drop(r);
    });
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn an_armed_failure_of_a_deferred_left_waiting_is_reported_when_freed() {
    // The inner chain ran to a failure (armed), was paused, and was then
    // returned into another chain, which waits on it for good.
    let (_, events) = capture_unhandled(|| {
        let inner = LocalDeferred::<u8>::fail(Failure::msg("armed"));
        inner.pause();
        let mut cell = Some(inner);
        let d = LocalDeferred::succeed(0).add_callback(move |_| cell.take().unwrap());
        assert!(d.is_waiting());
        drop(d);
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("armed"), "{events:?}");
}

// Each of these once hung, lost a result or differed from `Deferred`.

#[test]
fn a_panicking_drop_of_a_skipped_closure_becomes_the_failure() {
    // An errback's closure is dropped unused when the chain succeeds (and a
    // callback's when it fails): a panic in that drop is user code too.
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("bomb dropped");
        }
    }
    let (d, r) = LocalDeferred::<u8>::new();
    let bomb = Bomb;
    let d = d
        .add_callback(move |x| {
            let _keep = &bomb;
            Ok(x)
        })
        .add_errback(|f| {
            assert_eq!(
                f.downcast_ref::<PanicError>().unwrap().message(),
                "bomb dropped"
            );
            Ok(0)
        });
    r.errback(Failure::msg("skips the callback")).unwrap();
    assert_eq!(ok(&d), 0);
}

#[test]
fn cancel_from_inside_the_canceller_lets_the_canceller_decide() {
    let slot: Rc<RefCell<Option<tokio_deferred::LocalCancelHandle>>> = Rc::default();
    let s = slot.clone();
    let (d, _r) = LocalDeferred::<u8>::with_canceller(move |r| {
        if let Some(h) = s.borrow().as_ref() {
            h.cancel(); // nested: a no-op, as for Deferred
        }
        r.callback(5).unwrap();
    });
    *slot.borrow_mut() = Some(d.cancel_handle());
    d.cancel();
    assert_eq!(ok(&d), 5);
}

#[test]
fn a_canceller_that_drops_the_other_resolvers_still_gives_cancelled_error() {
    // A timer-style canceller: it drops the resolver the timer would have
    // fired with, and leaves the default to cancel().
    let timer: Rc<RefCell<Option<LocalResolver<u8>>>> = Rc::default();
    let t = timer.clone();
    let (d, r) = LocalDeferred::<u8>::with_canceller(move |_| drop(t.borrow_mut().take()));
    *timer.borrow_mut() = Some(r);
    d.cancel();
    assert!(err(&d).is::<CancelledError>());
}

// Not under Miri or memcheck (`scripts/memcheck.sh` skips it): the two
// states hold each other (an `Rc` cycle that user code made and nothing can
// break), so they leak by construction.
#[test]
#[cfg_attr(miri, ignore)]
fn cancelling_deferreds_that_wait_on_each_other_returns() {
    // A waits on B, B on A: neither can ever fire; cancel must not loop.
    let a_cell: Rc<RefCell<Option<LocalDeferred<u32>>>> = Rc::default();
    let a2 = a_cell.clone();
    let (b, br) = LocalDeferred::<u32>::new();
    let b = b.add_callback(move |_| a2.borrow_mut().take().unwrap());
    let mut b_cell = Some(b);
    let a = LocalDeferred::succeed(0u32).add_callback(move |_| b_cell.take().unwrap());
    let handle = a.cancel_handle();
    *a_cell.borrow_mut() = Some(a);
    br.callback(1).unwrap();
    handle.cancel();
    handle.cancel();
    assert!(a_cell.borrow().is_none());
}

#[test]
fn a_waker_dropped_when_its_deferred_is_chained_cannot_lose_the_result() {
    // The handle returned into a chain was polled before, so a waker is
    // registered on it; that waker's drop fires the Deferred. Chaining must
    // link the wait up before any such code can run.
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};
    thread_local! {
        static STASH: RefCell<Option<LocalResolver<u32>>> = const { RefCell::new(None) };
    }
    struct FiresOnDrop;
    impl Wake for FiresOnDrop {
        fn wake(self: Arc<Self>) {}
    }
    impl Drop for FiresOnDrop {
        fn drop(&mut self) {
            if let Some(r) = STASH.with(|s| s.borrow_mut().take()) {
                r.callback(7).unwrap();
            }
        }
    }
    let (mut inner, ir) = LocalDeferred::<u32>::new();
    STASH.with(|s| *s.borrow_mut() = Some(ir));
    {
        let waker = Waker::from(Arc::new(FiresOnDrop));
        let mut cx = Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut inner).poll(&mut cx).is_pending());
    }
    let mut cell = Some(inner);
    let d = LocalDeferred::succeed(0u32).add_callback(move |_| cell.take().unwrap());
    // Whenever the waker goes (now or with the inner state), the result
    // reaches the outer chain.
    if let Some(r) = STASH.with(|s| s.borrow_mut().take()) {
        r.callback(7).unwrap();
    }
    assert_eq!(ok(&d), 7);
}

#[test]
fn resolver_debug_prints_where_it_was_created() {
    let (_d, r) = LocalDeferred::<u8>::new();
    let s = format!("{r:?}");
    assert!(s.contains("created: tests/local.rs:"), "{s}");
}
