//! Exhaustive interleaving checks of the core state machine with loom.
//!
//! Run with:
//!
//! ```sh
//! RUSTFLAGS="--cfg tokio_deferred_loom" cargo test --test loom
//! ```
//!
//! (`scripts/loom.sh` does exactly that.) Each model explores every
//! interleaving of the Deferred's mutex and resolver counter operations up to
//! loom's preemption bound (`LOOM_MAX_PREEMPTIONS`, default 3 here).
#![cfg(tokio_deferred_loom)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use loom::thread;
use tokio_deferred::*;

/// Runs `f` under loom and returns how many interleavings were explored.
fn model(f: impl Fn() + Sync + Send + 'static) -> usize {
    static ITERATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    let before = ITERATIONS.load(Ordering::SeqCst);
    builder.check(move || {
        ITERATIONS.fetch_add(1, Ordering::SeqCst);
        f()
    });
    let n = ITERATIONS.load(Ordering::SeqCst) - before;
    // Loom prunes interleavings of independent operations (DPOR), so a
    // model whose threads touch different objects may need only one.
    println!("loom: {n} interleavings explored");
    n
}

#[test]
fn callback_races_cancel() {
    model(|| {
        let cancels = Arc::new(AtomicUsize::new(0));
        let c = cancels.clone();
        let (d, r) = Deferred::<u8>::with_canceller(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let h = d.cancel_handle();
        let t = thread::spawn(move || h.cancel());
        let fired = r.callback(1).is_ok();
        t.join().unwrap();
        match d.try_take().expect("a result") {
            Ok(v) => assert!(fired && v == 1),
            Err(f) => {
                assert!(f.is::<CancelledError>());
                assert!(!fired);
            }
        }
        assert!(cancels.load(Ordering::SeqCst) <= 1);
    });
}

#[test]
fn callback_races_add_callback() {
    model(|| {
        let (d, r) = Deferred::<u8>::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let ran2 = ran.clone();
        let t = thread::spawn(move || {
            d.add_callback(move |v| {
                ran2.fetch_add(1, Ordering::SeqCst);
                Ok(v + 1)
            })
            .add_callback(|v| Ok(v * 2))
        });
        r.callback(1).unwrap();
        let d = t.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(d.try_take().expect("finished").unwrap(), 4);
    });
}

struct Counting(AtomicUsize);
impl std::task::Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn callback_races_polling_and_the_awaiting_future_being_dropped() {
    model(|| {
        let (d, r) = Deferred::<u8>::new();
        let wakes = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let t = thread::spawn(move || r.callback(5).unwrap());
        let mut d = d;
        let first = Pin::new(&mut d).poll(&mut Context::from_waker(&waker));
        t.join().unwrap();
        match first {
            Poll::Ready(v) => assert_eq!(v.unwrap(), 5),
            Poll::Pending => {
                // The fire must have woken us (exactly once) and the
                // result must be there now.
                assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
                match Pin::new(&mut d).poll(&mut Context::from_waker(&waker)) {
                    Poll::Ready(v) => assert_eq!(v.unwrap(), 5),
                    Poll::Pending => panic!("lost wake-up"),
                }
            }
        }
    });
    model(|| {
        // The awaiting future is dropped while the fire happens.
        let (d, r) = Deferred::<u8>::new();
        let t = thread::spawn(move || r.callback(5).is_ok());
        let mut d = d;
        let _ = Pin::new(&mut d).poll(&mut Context::from_waker(Waker::noop()));
        drop(d);
        assert!(t.join().unwrap());
    });
}

#[test]
fn the_last_resolver_drop_races_callback() {
    model(|| {
        let (d, r) = Deferred::<u8>::new();
        let r2 = r.clone();
        let t = thread::spawn(move || drop(r2));
        let fired = r.callback(3).is_ok();
        t.join().unwrap();
        assert!(fired);
        assert_eq!(d.try_take().unwrap().unwrap(), 3);
    });
    model(|| {
        // Both resolvers dropped concurrently: exactly one failure.
        let (d, r) = Deferred::<u8>::new();
        let r2 = r.clone();
        let t = thread::spawn(move || drop(r2));
        drop(r);
        t.join().unwrap();
        assert!(
            d.try_take()
                .unwrap()
                .unwrap_err()
                .is::<ResolverDroppedError>()
        );
    });
}

#[test]
fn a_chained_inner_deferred_fires_while_the_outer_is_cancelled() {
    model(|| {
        let (inner, ir) = Deferred::<u8>::new();
        let (outer, or) = Deferred::<()>::new();
        let outer = outer.add_callback(move |_| inner);
        or.callback(()).unwrap();
        let h = outer.cancel_handle();
        let t = thread::spawn(move || h.cancel());
        let fired = ir.callback(9).is_ok();
        t.join().unwrap();
        match outer.try_take().expect("finished") {
            Ok(v) => assert!(fired && v == 9),
            // The inner has no canceller: as in Twisted, the fire that
            // lost the race is accepted and dropped, so `fired` may be true.
            Err(f) => assert!(f.is::<CancelledError>()),
        }
    });
}

#[test]
fn outer_fires_while_inner_fires() {
    model(|| {
        let (inner, ir) = Deferred::<u8>::new();
        let (outer, or) = Deferred::<()>::new();
        let outer = outer
            .add_callback(move |_| inner)
            .add_callback(|v| Ok(v + 1));
        let t = thread::spawn(move || ir.callback(1).unwrap());
        or.callback(()).unwrap();
        t.join().unwrap();
        assert_eq!(outer.try_take().expect("finished").unwrap(), 2);
    });
}

// A level of a nested chain (an inline Deferred whose callback returned an
// unfinished one) ends in the lock section that takes its continuation; the
// outer gets callbacks added meanwhile.
#[test]
fn a_nested_level_delivers_while_callbacks_are_added_to_the_outer() {
    model(|| {
        let (inner, ir) = Deferred::<u8>::new();
        let outer = succeed(()).add_callback(move |_| inner);
        let t = thread::spawn(move || ir.callback(1).unwrap());
        let outer = outer.add_callback(|v| Ok(v + 1));
        let outer = outer.add_callback(|v| Ok(v * 10));
        t.join().unwrap();
        assert_eq!(outer.try_take().expect("finished").unwrap(), 20);
    });
}

// Two nested levels fired from the innermost while the top is cancelled:
// either the value comes through or the cancellation does, never neither.
#[test]
fn a_two_level_nested_chain_fires_while_the_top_is_cancelled() {
    model(|| {
        let (inner, ir) = Deferred::<u8>::new();
        let mid = succeed(()).add_callback(move |_| inner);
        let top = succeed(()).add_callback(move |_| mid);
        let h = top.cancel_handle();
        let t = thread::spawn(move || h.cancel());
        let fired = ir.callback(5).is_ok();
        t.join().unwrap();
        match top.try_take().expect("finished") {
            Ok(v) => assert!(fired && v == 5),
            Err(f) => assert!(f.is::<CancelledError>()),
        }
    });
}

// Found by the stress test (race A): a canceller-less cancel() that loses to
// callback() must not arm the "swallow one late fire" flag.
#[test]
fn a_canceller_less_cancel_losing_to_callback_does_not_swallow_a_later_fire() {
    model(|| {
        let (d, r) = Deferred::<u8>::new();
        let h = d.cancel_handle();
        let t = thread::spawn(move || h.cancel());
        let _ = r.callback(1);
        t.join().unwrap();
        let cancelled = matches!(d.try_take(), Some(Err(f)) if f.is::<CancelledError>());
        // Either the cancel won (one late fire is swallowed, as in Twisted),
        // or the fire won and a second fire must be refused.
        assert!(cancelled || r.callback(2).is_err());
    });
}

// Found by the stress test (race B): two concurrent cancel()s of a Deferred
// with a canceller run it once and never swallow a later fire.
#[test]
fn concurrent_cancels_run_the_canceller_once_and_swallow_nothing() {
    model(|| {
        let runs = Arc::new(AtomicUsize::new(0));
        let c = runs.clone();
        let (d, r) = Deferred::<u8>::with_canceller(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let h = d.cancel_handle();
        let t = thread::spawn(move || h.cancel());
        d.cancel();
        t.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(
            r.callback(2).is_err(),
            "a Deferred with a canceller swallows no late fire"
        );
        assert!(d.try_take().unwrap().unwrap_err().is::<CancelledError>());
    });
}

// An already-fired Deferred holds its result inline, behind a small mutex
// (`src/deferred/inline.rs`): concurrent takes get it exactly once.
#[test]
fn concurrent_takes_of_an_inline_deferred_get_the_value_once() {
    model(|| {
        let d = Arc::new(succeed(1u8));
        let d2 = d.clone();
        let t = thread::spawn(move || d2.try_take());
        let mine = d.try_take();
        let theirs = t.join().unwrap();
        let values = [mine, theirs]
            .into_iter()
            .map(
                |r| match r.expect("a fired, unpaused Deferred has a result") {
                    Ok(v) => Some(v),
                    Err(f) => {
                        assert!(f.is::<ResultTakenError>(), "{f:?}");
                        None
                    }
                },
            )
            .filter(Option::is_some)
            .count();
        assert_eq!(values, 1);
    });
}

// Making a cancel handle moves the inline result into a shared state while
// another thread may be taking it or pausing: the value is taken once.
#[test]
fn promoting_an_inline_deferred_races_take_and_pause() {
    model(|| {
        let d = Arc::new(succeed(1u8));
        let d2 = d.clone();
        let t = thread::spawn(move || {
            d2.pause();
            let r = d2.try_take();
            assert!(r.is_none(), "paused: no result");
            d2.unpause();
            d2.try_take()
        });
        let h = d.cancel_handle();
        h.cancel();
        let mine = d.try_take();
        let theirs = t.join().unwrap();
        let last = d.try_take();
        let got: Vec<u8> = [mine, theirs, last]
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(got, [1]);
    });
}
