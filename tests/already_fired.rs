//! Already-fired Deferreds held inline: `succeed`, `fail`,
//! `maybe_deferred`, `execute` and `ensure_deferred` of a ready future
//! allocate nothing, and behave exactly like a Deferred fired through its
//! resolver (which always has the shared state).
//!
//! The differential property runs the same random plan of operations on
//! `succeed(v)` / `fail(e)` and on `Deferred::new()` + `callback(v)` /
//! `errback(e)`, and compares everything observable: results, the queries,
//! `Debug`, wake-ups, which callbacks ran, what cancel handles and chained
//! Deferreds see, and the unhandled-error events.

// A global allocator is `unsafe` to implement; the library itself forbids
// unsafe code.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

mod common;

use common::capture_unhandled;
use proptest::prelude::*;
use tokio_deferred::*;

// ---------------------------------------------------------------------------
// Allocation counting, per thread (tests of this binary run in parallel).

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// How many allocations `f` made on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

#[test]
fn fired_deferreds_and_their_callbacks_allocate_nothing() {
    let (n, v) = allocations(|| succeed(1u64).try_take());
    assert_eq!((n, v.unwrap().unwrap()), (0, 1));
    let (n, v) = allocations(|| {
        succeed(1u64)
            .add_callback(|x| Ok(x + 1))
            .add_errback(|f: Failure| Err(f))
            .add_both(|r: Result<u64, Failure>| r.map(|x| x * 10))
            .add_callbacks(|x| Ok(x + 1), |f: Failure| Err(f))
            .add_callback(|x| succeed(x + 1)) // a fired Deferred is taken at once
            .try_take()
    });
    assert_eq!((n, v.unwrap().unwrap()), (0, 22));
    let (n, v) = allocations(|| execute(|| "7".parse::<u32>()).try_take());
    assert_eq!((n, v.unwrap().unwrap()), (0, 7));
    let (n, v) = allocations(|| maybe_deferred(|| Ok::<_, Failure>(3u8)).try_take());
    assert_eq!((n, v.unwrap().unwrap()), (0, 3));
    let (n, paused) = allocations(|| {
        let d = succeed(1u8);
        d.pause();
        let paused = d.is_paused();
        d.unpause();
        d.cancel();
        (paused, d.is_called(), d.try_take().unwrap().unwrap())
    });
    assert_eq!((n, paused), (0, (true, true, 1)));
    // A failure is an `Arc` (one allocation); the Deferred adds none.
    let failure = Failure::msg("boom");
    let (n, v) = allocations(|| {
        fail::<u8>(failure)
            .add_callback(|x| Ok(x + 1))
            .add_errback(|f: Failure| Ok(f.to_string().len() as u8))
            .try_take()
    });
    // `to_string` allocates the message's String.
    assert_eq!((n, v.unwrap().unwrap()), (1, 4));
    // The future of a ready `ensure_deferred` is boxed to be pinned (it
    // could have suspended): that is the only allocation left.
    let (n, v) = allocations(|| ensure_deferred(async { Ok::<_, Failure>(5u8) }).try_take());
    assert_eq!((n, v.unwrap().unwrap()), (1, 5));
}

#[tokio::test]
async fn awaiting_a_fired_deferred_allocates_nothing() {
    let d = succeed(9u32).add_callback(|x| Ok(x + 1));
    let (n, v) = allocations(|| {
        let mut cx = Context::from_waker(Waker::noop());
        let mut d = d;
        Pin::new(&mut d).poll(&mut cx)
    });
    assert_eq!(n, 0);
    assert!(matches!(v, Poll::Ready(Ok(10))));
}

#[test]
fn a_paused_fired_deferred_makes_its_shared_state_only_when_needed() {
    let d = succeed(1u8);
    d.pause();
    let (n, d) = allocations(|| d.add_callback(|x| Ok(x + 1)));
    assert!(n > 0, "the queued callback needs the shared state");
    assert!(d.try_take().is_none());
    d.unpause();
    assert_eq!(d.try_take().unwrap().unwrap(), 2);
}

// Twisted: test_defer.py DeferredTests.test_callbackReturnsDeferred (fired
// return value taken at once; an unfired one waited on)
#[test]
fn a_callback_returning_an_unfired_deferred_waits_on_it() {
    let (inner, r) = Deferred::<u8>::new();
    let d = succeed(1u8).add_callback(move |_| inner);
    assert!(d.is_waiting());
    let watcher = d.cancel_handle();
    assert!(d.try_take().is_none());
    r.callback(5).unwrap();
    assert!(!d.is_waiting());
    assert_eq!(d.try_take().unwrap().unwrap(), 5);
    drop(watcher);
}

#[test]
fn a_cancel_handle_made_before_a_callback_reaches_the_deferred_it_waits_on() {
    let d = succeed(1u8);
    let h = d.cancel_handle();
    let (inner, _r) = Deferred::<u8>::new();
    let d = d.add_callback(move |_| inner);
    h.cancel();
    let f = d.try_take().unwrap().unwrap_err();
    assert!(f.is::<CancelledError>(), "{f:?}");
}

#[test]
fn chain_deferred_from_a_fired_deferred_fires_the_target_or_fails_if_it_fired() {
    // Twisted: test_defer.py DeferredTests.test_chainDeferredRecordsExplicitChain
    let (target, r) = Deferred::<u8>::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let target = target.add_callback(move |x| {
        s.lock().unwrap().push(x);
        Ok(x)
    });
    let rest = succeed(3u8).chain_deferred(r.clone());
    assert_eq!(*seen.lock().unwrap(), [3]);
    assert!(rest.try_take().unwrap().is_ok());
    assert_eq!(target.try_take().unwrap().unwrap(), 3);
    // The target has fired: the rest of the chain fails with AlreadyCalledError.
    let rest = succeed(4u8).chain_deferred(r);
    let f = rest.try_take().unwrap().unwrap_err();
    assert!(f.is::<AlreadyCalledError<()>>(), "{f:?}");
}

#[test]
fn debug_of_a_fired_deferred_says_what_it_holds() {
    let d = succeed(1u8);
    assert_eq!(
        format!("{d:?}"),
        r#"Deferred { state: "fired", callbacks: 0 }"#
    );
    d.pause();
    assert_eq!(
        format!("{d:?}"),
        r#"Deferred { state: "fired", callbacks: 0, paused: 1 }"#
    );
    d.unpause();
    let _ = d.try_take();
    assert_eq!(
        format!("{d:?}"),
        r#"Deferred { state: "result taken", callbacks: 0 }"#
    );
}

// ---------------------------------------------------------------------------
// The differential property: inline vs shared.

#[derive(Debug, thiserror::Error)]
#[error("boom {0}")]
struct Boom(i64);

/// What a callback added by the plan returns.
#[derive(Debug, Clone, Copy)]
enum Returns {
    /// `Ok(v + k)` from a callback (failures pass).
    Add(i64),
    /// `Err(Boom(k))` from a callback.
    Fail(i64),
    /// An errback that recovers with `Ok(k)`.
    Recover(i64),
    /// `add_both` passing the result on.
    Both,
    /// A callback returning `succeed(v + k)`.
    Succeed(i64),
    /// A callback returning `fail(Boom(k))`.
    FailDeferred(i64),
    /// A callback returning a paused `succeed(k)` / `fail(Boom(k))`, never
    /// unpaused (its handle moved into the chain).
    Paused(i64, bool),
    /// A callback returning an unfired Deferred whose resolver the plan can
    /// fire later.
    Pending,
    /// A callback that panics.
    Panic,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Pause,
    Unpause,
    TryTake,
    Poll,
    Cancel,
    MakeHandle,
    CancelViaHandle(usize),
    Add(Returns),
    FirePending(usize, Result<i64, i64>),
    Queries,
    /// Terminal: chain into a fresh target (or one that fired already).
    ChainDeferred(bool),
}

fn returns() -> impl Strategy<Value = Returns> {
    prop_oneof![
        3 => (0i64..50).prop_map(Returns::Add),
        2 => (0i64..50).prop_map(Returns::Fail),
        2 => (0i64..50).prop_map(Returns::Recover),
        1 => Just(Returns::Both),
        2 => (0i64..50).prop_map(Returns::Succeed),
        1 => (0i64..50).prop_map(Returns::FailDeferred),
        1 => ((0i64..50), any::<bool>()).prop_map(|(k, ok)| Returns::Paused(k, ok)),
        2 => Just(Returns::Pending),
        1 => Just(Returns::Panic),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Pause),
        2 => Just(Op::Unpause),
        2 => Just(Op::TryTake),
        2 => Just(Op::Poll),
        1 => Just(Op::Cancel),
        1 => Just(Op::MakeHandle),
        1 => (0usize..3).prop_map(Op::CancelViaHandle),
        6 => returns().prop_map(Op::Add),
        2 => ((0usize..3), prop_oneof![(0i64..50).prop_map(Ok), (0i64..50).prop_map(Err)])
            .prop_map(|(i, r)| Op::FirePending(i, r)),
        1 => Just(Op::Queries),
        1 => any::<bool>().prop_map(Op::ChainDeferred),
    ]
}

struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn show<T: std::fmt::Debug>(r: &Option<Result<T, Failure>>) -> String {
    match r {
        None => "none".into(),
        Some(Ok(v)) => format!("ok {v:?}"),
        Some(Err(f)) => format!("err {f}"),
    }
}

/// An already-fired Deferred: inline (`succeed`/`fail`) or shared (`new` +
/// fire).
fn fired(inline: bool, r: Result<i64, i64>) -> Deferred<i64> {
    match (inline, r) {
        (true, Ok(v)) => succeed(v),
        (true, Err(k)) => fail(Boom(k)),
        (false, _) => {
            let (d, resolver) = Deferred::<i64>::new();
            resolver
                .resolve(r.map_err(|k| Failure::new(Boom(k))))
                .unwrap();
            d
        }
    }
}

/// Runs the plan from `start` on an inline or a shared Deferred (the
/// Deferreds the callbacks return too); returns everything observable.
fn run(inline: bool, start: Result<i64, i64>, plan: &[Op]) -> Vec<String> {
    let trace = Arc::new(Mutex::new(Vec::<String>::new()));
    let ((), unhandled) = capture_unhandled(|| {
        let t = trace.clone();
        let log = move |s: String| t.lock().unwrap().push(s);
        let d = fired(inline, start);
        let mut d = Some(d);
        let mut handles: Vec<CancelHandle> = Vec::new();
        let pending: Arc<Mutex<Vec<Resolver<i64>>>> = Arc::default();
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        for (i, op) in plan.iter().enumerate() {
            let Some(cur) = d.take() else { break };
            let mut next = Some(cur);
            match *op {
                Op::Pause => next.as_ref().unwrap().pause(),
                Op::Unpause => next.as_ref().unwrap().unpause(),
                Op::TryTake => log(format!("take {}", show(&next.as_ref().unwrap().try_take()))),
                Op::Poll => {
                    let mut cx = Context::from_waker(&waker);
                    let p = Pin::new(next.as_mut().unwrap()).poll(&mut cx);
                    log(match p {
                        Poll::Pending => "poll pending".into(),
                        Poll::Ready(r) => format!("poll {}", show(&Some(r))),
                    });
                }
                Op::Cancel => next.as_ref().unwrap().cancel(),
                Op::MakeHandle => handles.push(next.as_ref().unwrap().cancel_handle()),
                Op::CancelViaHandle(h) => {
                    if let Some(h) = handles.get(h) {
                        h.cancel();
                    }
                }
                Op::FirePending(p, r) => {
                    let resolver = pending.lock().unwrap().get(p).cloned();
                    if let Some(resolver) = resolver {
                        let fired = resolver.resolve(r.map_err(|k| Failure::new(Boom(k))));
                        log(format!("fire pending {p}: {}", fired.is_ok()));
                    }
                }
                Op::Queries => {}
                Op::Add(ret) => {
                    let cur = next.take().unwrap();
                    let t = trace.clone();
                    let note = move |s: String| t.lock().unwrap().push(format!("cb {i}: {s}"));
                    next = Some(match ret {
                        Returns::Add(k) => cur.add_callback(move |v| {
                            note(format!("got {v}"));
                            Ok(v + k)
                        }),
                        Returns::Fail(k) => cur.add_callback(move |v| -> Result<i64, Failure> {
                            note(format!("got {v}"));
                            Err(Boom(k).into())
                        }),
                        Returns::Recover(k) => cur.add_errback(move |f| {
                            note(format!("errback {f}"));
                            Ok(k)
                        }),
                        Returns::Both => cur.add_both(move |r: Result<i64, Failure>| {
                            note(format!("both {}", show(&Some(r.clone()))));
                            r
                        }),
                        Returns::Succeed(k) => cur.add_callback(move |v| {
                            note(format!("got {v}"));
                            fired(inline, Ok(v + k))
                        }),
                        Returns::FailDeferred(k) => cur.add_callback(move |v| {
                            note(format!("got {v}"));
                            fired(inline, Err(k))
                        }),
                        Returns::Paused(k, ok) => cur.add_callback(move |v| {
                            note(format!("got {v}"));
                            let d = fired(inline, if ok { Ok(k) } else { Err(k) });
                            d.pause();
                            d
                        }),
                        Returns::Pending => {
                            let pending = pending.clone();
                            cur.add_callback(move |v| {
                                note(format!("got {v}"));
                                let (d, r) = Deferred::<i64>::new();
                                pending.lock().unwrap().push(r);
                                d
                            })
                        }
                        Returns::Panic => cur.add_callback(move |v| -> Result<i64, Failure> {
                            note(format!("got {v}"));
                            panic!("panic {v}")
                        }),
                    });
                }
                Op::ChainDeferred(fresh) => {
                    let cur = next.take().unwrap();
                    let (target, r) = Deferred::<i64>::new();
                    if !fresh {
                        r.callback(-1).unwrap();
                    }
                    let rest = cur.chain_deferred(r);
                    log(format!("chain rest {}", show(&rest.try_take())));
                    log(format!("chain target {}", show(&target.try_take())));
                    log(format!("chain target {target:?}"));
                }
            }
            if let Some(cur) = &next {
                log(format!(
                    "after {op:?}: called {} paused {} waiting {} wakes {} {cur:?}",
                    cur.is_called(),
                    cur.is_paused(),
                    cur.is_waiting(),
                    wakes.0.load(Ordering::SeqCst),
                ));
            }
            d = next;
        }
        drop(d);
        drop(handles);
        // Dropping the resolvers may run callbacks that make more.
        loop {
            let resolvers = std::mem::take(&mut *pending.lock().unwrap());
            if resolvers.is_empty() {
                break;
            }
            drop(resolvers);
        }
    });
    let mut out = trace.lock().unwrap().clone();
    for line in &unhandled {
        // The sites differ (succeed vs new + fire); the failure must not.
        let msg = line
            .split("Unhandled error in Deferred: ")
            .nth(1)
            .and_then(|s| s.split(" failure=").next())
            .unwrap_or(line);
        out.push(format!("unhandled: {msg}"));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn an_inline_deferred_behaves_like_a_shared_one(
        start in prop_oneof![(0i64..50).prop_map(Ok), (0i64..50).prop_map(Err)],
        plan in prop::collection::vec(op(), 0..14),
    ) {
        let inline = run(true, start, &plan);
        let shared = run(false, start, &plan);
        prop_assert_eq!(inline, shared);
    }
}
