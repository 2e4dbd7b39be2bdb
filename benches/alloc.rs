//! Heap cost per Deferred, per callback, per nested level, counted by a
//! global allocator (`stats_alloc`, so this file needs no `unsafe`), next to
//! the oneshot channels it is compared with. `cargo bench --bench alloc`
//! prints a Markdown table; `BENCHMARKS.md` holds the latest one.
//!
//! To add a row, add a `row(...)` call in `main` (or an async variant as
//! [`measure_async`] for rows that need a runtime).

use std::alloc::System;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Waker};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};
use tokio_deferred::{
    Deferred, DeferredLock, DeferredQueue, DeferredSemaphore, Failure, LocalDeferred,
    ensure_deferred, succeed,
};

mod common;
use common::nested;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// How many times each measurement is repeated; the table shows the mean.
const N: usize = 1_000;

/// Runs `make` `N` times, keeping every result alive, and returns the heap
/// change per run: (allocations + reallocations, bytes still held, bytes
/// allocated in all).
fn measure<T>(mut make: impl FnMut() -> T) -> (f64, f64, f64) {
    let mut keep: Vec<T> = Vec::with_capacity(N);
    // Warm up thread-locals and lazy statics outside the region.
    drop(black_box(make()));
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        keep.push(make());
    }
    let s: Stats = region.change();
    drop(black_box(keep));
    let n = N as f64;
    let allocs = (s.allocations + s.reallocations) as f64 / n;
    // `stats_alloc` adds a reallocation's growth to `bytes_allocated` (and
    // its shrinkage to `bytes_deallocated`) as well as to
    // `bytes_reallocated`: count it once.
    let held = (s.bytes_allocated as f64 - s.bytes_deallocated as f64) / n;
    let total = s.bytes_allocated as f64 / n;
    (allocs, held, total)
}

/// As [`measure`], on a current-thread runtime: `make` runs `N` times inside
/// `block_on`, then the runtime gets `yields` turns so spawned tasks are
/// polled (timers registered, blocking jobs queued) before counting stops.
fn measure_async<T>(
    rt: &tokio::runtime::Runtime,
    yields: usize,
    mut make: impl FnMut() -> T,
) -> (f64, f64, f64) {
    rt.block_on(async {
        let mut keep: Vec<T> = Vec::with_capacity(N);
        keep.push(make());
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        let region = Region::new(GLOBAL);
        for _ in 0..N {
            keep.push(make());
        }
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        let s: Stats = region.change();
        let n = N as f64;
        let allocs = (s.allocations + s.reallocations) as f64 / n;
        // Reallocation growth counted once, as in `measure`.
        let held = (s.bytes_allocated as f64 - s.bytes_deallocated as f64) / n;
        let total = s.bytes_allocated as f64 / n;
        drop(black_box(keep));
        (allocs, held, total)
    })
}

fn row(what: &str, per: &str, (allocs, held, total): (f64, f64, f64), div: f64, target: &str) {
    println!(
        "| {what} | {per} | {:.2} | {:.1} | {:.1} | {target} |",
        allocs / div,
        held / div,
        total / div
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| what | per | allocations | bytes held | bytes allocated | target |");
    println!("|---|---|---|---|---|---|");
    row(
        "`Deferred::<u64>::new()` unfired, no callbacks",
        "pair",
        measure(Deferred::<u64>::new),
        1.0,
        "1 allocation",
    );
    row(
        "`futures::channel::oneshot::channel::<u64>()`",
        "pair",
        measure(futures::channel::oneshot::channel::<u64>),
        1.0,
        "(anchor)",
    );
    row(
        "`tokio::sync::oneshot::channel::<u64>()`",
        "pair",
        measure(tokio::sync::oneshot::channel::<u64>),
        1.0,
        "(anchor)",
    );
    row(
        "`succeed(1u64)`",
        "Deferred",
        measure(|| succeed(1u64)),
        1.0,
        "",
    );
    for n in [1u64, 10, 100] {
        let base = measure(Deferred::<u64>::new);
        let with = measure(|| {
            let (d, r) = Deferred::<u64>::new();
            let mut d = d;
            for k in 0..n {
                d = d.add_callback(move |v: u64| Ok::<_, Failure>(v + k));
            }
            (d, r)
        });
        let per = (with.0 - base.0, with.1 - base.1, with.2 - base.2);
        row(
            &format!("`add_callback` on an unfired Deferred ({n} callbacks)"),
            "callback",
            per,
            n as f64,
            "≤ 1 allocation",
        );
    }
    row(
        "`LocalDeferred::<u64>::new()` unfired, no callbacks",
        "pair",
        measure(LocalDeferred::<u64>::new),
        1.0,
        "(the `!Send` flavour: its first arena chunk is inline)",
    );
    for n in [1u64, 10, 100] {
        let base = measure(LocalDeferred::<u64>::new);
        let with = measure(|| {
            let (d, r) = LocalDeferred::<u64>::new();
            let mut d = d;
            for k in 0..n {
                d = d.add_callback(move |v: u64| Ok::<_, Failure>(v + k));
            }
            (d, r)
        });
        let per = (with.0 - base.0, with.1 - base.1, with.2 - base.2);
        row(
            &format!("`add_callback` on an unfired LocalDeferred ({n} callbacks)"),
            "callback",
            per,
            n as f64,
            "≤ 1 allocation",
        );
    }
    row(
        "new + 10 `add_callback` + fire + take",
        "chain (all freed but the Deferred)",
        measure(|| {
            let (d, r) = Deferred::<u64>::new();
            let mut d = d;
            for k in 0..10u64 {
                d = d.add_callback(move |v: u64| Ok::<_, Failure>(v + k));
            }
            r.callback(0).unwrap();
            let v = d.try_take().unwrap().unwrap();
            (d, v)
        }),
        1.0,
        "",
    );
    row(
        "the same on a LocalDeferred",
        "chain (all freed but the Deferred)",
        measure(|| {
            let (d, r) = LocalDeferred::<u64>::new();
            let mut d = d;
            for k in 0..10u64 {
                d = d.add_callback(move |v: u64| Ok::<_, Failure>(v + k));
            }
            r.callback(0).unwrap();
            let v = d.try_take().unwrap().unwrap();
            (d, v)
        }),
        1.0,
        "",
    );
    row(
        "`Vec<Box<dyn FnOnce(u64) -> u64>>` of 10, built and run",
        "chain",
        measure(|| {
            let mut fs: Vec<Box<dyn FnOnce(u64) -> u64>> = Vec::with_capacity(10);
            for k in 0..10u64 {
                fs.push(Box::new(move |v| v + k));
            }
            fs.into_iter().fold(0, |v, f| f(v))
        }),
        1.0,
        "(anchor)",
    );
    row(
        "Deferred polled pending (waker stored)",
        "pair",
        measure(|| {
            let (mut d, r) = Deferred::<u64>::new();
            let mut cx = Context::from_waker(Waker::noop());
            let _ = Pin::new(&mut d).poll(&mut cx);
            (d, r)
        }),
        1.0,
        "",
    );
    row(
        "`ensure_deferred` of a ready future",
        "Deferred",
        measure(|| ensure_deferred(async { Ok::<_, Failure>(1u64) })),
        1.0,
        "",
    );
    let q = DeferredQueue::<u64>::new(None, None);
    row(
        "`DeferredQueue::get()` on an empty queue (queued waiter)",
        "waiter",
        measure(|| q.get().unwrap()),
        1.0,
        "",
    );
    let lock = DeferredLock::new();
    let held = lock.acquire();
    row(
        "`DeferredLock::acquire()` while held (queued waiter)",
        "waiter",
        measure(|| lock.acquire()),
        1.0,
        "",
    );
    let sem = DeferredSemaphore::new(1).unwrap();
    let taken = sem.acquire();
    row(
        "`DeferredSemaphore::acquire()` with no token (queued waiter)",
        "waiter",
        measure(|| sem.acquire()),
        1.0,
        "",
    );
    drop((held, taken));
    timer_and_thread_rows();
    row(
        "nested chain, unfired (1,000 levels)",
        "level",
        measure(|| nested(1_000)),
        1_000.0,
        "",
    );
}

/// A pending `defer_later` and a `defer_to_thread` in flight, next to a
/// spawned `tokio::time::sleep` task and a queued `spawn_blocking`.
fn timer_and_thread_rows() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .expect("build a runtime");
    let delay = std::time::Duration::from_secs(3600);
    row(
        "`defer_later(1 h)` pending (timer task polled)",
        "call",
        measure_async(&rt, 3, || {
            tokio_deferred::defer_later(delay, || Ok::<_, Failure>(1u64))
        }),
        1.0,
        "",
    );
    row(
        "spawned `tokio::time::sleep(1 h)` task, polled",
        "task",
        measure_async(&rt, 3, || tokio::spawn(tokio::time::sleep(delay))),
        1.0,
        "(anchor)",
    );
    // One blocking thread, held by a job waiting on `gate`: the measured
    // calls queue behind it, in flight.
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let blocker = rt.spawn_blocking(move || {
        let _ = gate_rx.recv();
    });
    row(
        "`defer_to_thread` in flight (queued on the blocking pool)",
        "call",
        measure_async(&rt, 3, || {
            tokio_deferred::defer_to_thread(|| Ok::<_, Failure>(1u64))
        }),
        1.0,
        "",
    );
    row(
        "`spawn_blocking` in flight (queued)",
        "call",
        measure_async(&rt, 3, || tokio::task::spawn_blocking(|| 1u64)),
        1.0,
        "(anchor)",
    );
    drop(gate_tx);
    rt.block_on(blocker).expect("blocker");
}
