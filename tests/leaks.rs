//! No leaks in the common paths: a counting global allocator checks that
//! each scenario frees every byte it allocated (cycles between Deferreds,
//! cancellers, continuations or drivers would show up here).
//!
//! One `#[test]` runs every scenario in turn, so no other test of this binary
//! allocates concurrently.

// A global allocator is `unsafe` to implement; the library itself forbids
// unsafe code.
#![allow(unsafe_code)]
// The async blocks around one `.await` are the futures under test.
#![allow(clippy::redundant_async_block)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tokio_deferred::*;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` twice (the first run warms up lazily allocated statics) and
/// returns the bytes the second run left allocated.
fn leaked(f: impl Fn()) -> isize {
    f();
    let before = LIVE.load(Ordering::SeqCst);
    f();
    LIVE.load(Ordering::SeqCst) - before
}

#[test]
fn common_paths_free_everything() {
    // The default hook prints a backtrace, whose symbolization cache grows
    // lazily and would be counted as a leak.
    std::panic::set_hook(Box::new(|_| {}));
    // A subscriber that writes nowhere: with none, unhandled failures are
    // printed to stderr, and the test harness keeps what is printed.
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scenarios: Vec<(&str, Box<dyn Fn()>)> = vec![
        (
            "callback chain",
            Box::new(|| {
                let (d, r) = Deferred::<u64>::new();
                let d = d.add_callback(|v| Ok(v + 1)).add_errback(|_| Ok(0));
                r.callback(1).unwrap();
                assert_eq!(d.try_take().unwrap().unwrap(), 2);
            }),
        ),
        (
            "unfired and dropped",
            Box::new(|| {
                let (d, r) = Deferred::<String>::new();
                let d = d.add_callback(|s| Ok(s.len()));
                drop(d);
                drop(r);
            }),
        ),
        (
            "implicit chaining, inner fired later",
            Box::new(|| {
                let (inner, ir) = Deferred::<u8>::new();
                let d = succeed(()).add_callback(move |_| inner);
                ir.callback(1).unwrap();
                assert_eq!(d.try_take().unwrap().unwrap(), 1);
            }),
        ),
        (
            "implicit chaining, never fired",
            Box::new(|| {
                let (inner, ir) = Deferred::<u8>::new();
                let d = succeed(()).add_callback(move |_| inner);
                drop(d);
                drop(ir); // fails the inner, which hands over to the outer
            }),
        ),
        (
            "chain_deferred",
            Box::new(|| {
                let (target, tr) = Deferred::<u8>::new();
                let rest = succeed(1).chain_deferred(tr);
                assert!(rest.try_take().unwrap().is_ok());
                assert_eq!(target.try_take().unwrap().unwrap(), 1);
            }),
        ),
        (
            "cancel with canceller referring to its Deferred",
            Box::new(|| {
                let (d, r) = Deferred::<u8>::with_canceller(|r| r.callback(1).unwrap());
                let keep = r.clone();
                d.cancel();
                drop((d, r, keep));
            }),
        ),
        (
            "failure reported as unhandled",
            Box::new(|| {
                drop(fail::<u8>(Failure::msg("unhandled")));
            }),
        ),
        (
            "panicking callback",
            Box::new(|| {
                let d =
                    succeed(1).add_callback(|_| -> Result<u8, Failure> { panic!("leak check") });
                assert!(d.try_take().unwrap().is_err());
            }),
        ),
        (
            "gather and race",
            Box::new(|| {
                let (a, ra) = Deferred::<u8>::new();
                let (b, rb) = Deferred::<u8>::new();
                let g = gather_results(vec![a, b]);
                ra.callback(1).unwrap();
                rb.callback(2).unwrap();
                assert_eq!(g.try_take().unwrap().unwrap(), vec![1, 2]);
                let (a, _ra) = Deferred::<u8>::new();
                let r = race(vec![a, succeed(3)]);
                assert_eq!(r.try_take().unwrap().unwrap(), (1, 3));
            }),
        ),
        (
            "lock and queue with cancelled waiters",
            Box::new(|| {
                let lock = DeferredLock::new();
                let held = lock.acquire();
                let waiter = lock.acquire();
                waiter.cancel();
                drop((held, waiter));
                let q = DeferredQueue::<u8>::new(None, None);
                let g = q.get().unwrap();
                g.cancel();
                q.put(1).unwrap();
                assert_eq!(q.get().unwrap().try_take().unwrap().unwrap(), 1);
                drop(g);
            }),
        ),
    ];
    for (name, f) in &scenarios {
        assert_eq!(leaked(f), 0, "{name} leaked");
    }
    // With a runtime: ensure_deferred that suspends, finishes, or is cancelled.
    let with_rt: Vec<(&str, Box<dyn Fn()>)> = vec![
        (
            "ensure_deferred awaiting a Deferred",
            Box::new(|| {
                rt.block_on(async {
                    let (d, r) = Deferred::<u8>::new();
                    let e = ensure_deferred(async move { d.await });
                    r.callback(4).unwrap();
                    assert_eq!(e.await.unwrap(), 4);
                })
            }),
        ),
        (
            "ensure_deferred cancelled",
            Box::new(|| {
                rt.block_on(async {
                    let (d, _r) = Deferred::<u8>::new();
                    let e = ensure_deferred(async move { d.await });
                    e.cancel();
                    assert!(e.await.is_err());
                    tokio::task::yield_now().await;
                })
            }),
        ),
    ];
    for (name, f) in &with_rt {
        assert_eq!(leaked(f), 0, "{name} leaked");
    }
}
