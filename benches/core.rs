//! The core rows: create, fire, await, chain and nest Deferreds. Each group
//! runs our operation (`ours`) and its anchor (`anchor`) in the same run;
//! `benches/report.py` holds the targets and prints the tables of
//! `BENCHMARKS.md`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use tokio_deferred::{Deferred, Failure, LocalDeferred, ensure_deferred, succeed};

mod common;
use common::{ANCHOR, OURS, nested};

/// `Deferred::new` + `callback` + `.await` in one task, against tokio's
/// oneshot create + send + await. The loop runs inside one `block_on` so the
/// runtime's entry cost is not measured.
fn new_fire_await(c: &mut Criterion) {
    let rt = common::current_thread();
    let mut g = c.benchmark_group("new_fire_await");
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (d, r) = Deferred::<u64>::new();
                    r.callback(black_box(1)).unwrap();
                    black_box(d.await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function(ANCHOR, |b| {
        b.iter_custom(|iters| oneshot_round_trips(&rt, iters))
    });
    g.finish();
}

/// The anchor of both `new_fire_await` groups: tokio oneshot create + send
/// + await, `iters` times in one `block_on`.
fn oneshot_round_trips(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
            tx.send(black_box(1)).unwrap();
            black_box(rx.await.unwrap());
        }
        start.elapsed()
    })
}

/// `new_fire_await` on the `!Send` flavour (information: a LocalDeferred
/// is one larger allocation, with its first arena chunk inside).
fn new_fire_await_local(c: &mut Criterion) {
    let rt = common::current_thread();
    let mut g = c.benchmark_group("new_fire_await_local");
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (d, r) = LocalDeferred::<u64>::new();
                    r.callback(black_box(1)).unwrap();
                    black_box(d.await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function(ANCHOR, |b| {
        b.iter_custom(|iters| oneshot_round_trips(&rt, iters))
    });
    g.finish();
}

/// Polls once while pending (a waker is stored), fires, polls again.
fn poll_twice<F: Future + Unpin>(mut f: F, fire: impl FnOnce()) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
    fire();
    match Pin::new(&mut f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("still pending after firing"),
    }
}

/// Awaited while pending, then fired: against a tokio oneshot receiver
/// polled pending, then sent.
fn await_pending_then_fire(c: &mut Criterion) {
    let mut g = c.benchmark_group("await_pending_then_fire");
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let (d, r) = Deferred::<u64>::new();
            black_box(poll_twice(d, move || r.callback(black_box(1)).unwrap()).unwrap())
        })
    });
    g.bench_function(ANCHOR, |b| {
        b.iter(|| {
            let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
            black_box(poll_twice(rx, move || tx.send(black_box(1)).unwrap()).unwrap())
        })
    });
    g.finish();
}

/// Fired in a spawned task, awaited in another task, on the multi-thread
/// runtime: against a tokio oneshot across tasks. The spawn is part of both.
fn fire_across_tasks(c: &mut Criterion) {
    let rt = common::multi_thread();
    let mut g = c.benchmark_group("fire_across_tasks");
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            rt.block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let (d, r) = Deferred::<u64>::new();
                    tokio::spawn(async move { r.callback(black_box(1)).unwrap() });
                    black_box(d.await.unwrap());
                }
                start.elapsed()
            }))
            .unwrap()
        })
    });
    g.bench_function(ANCHOR, |b| {
        b.iter_custom(|iters| {
            rt.block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                    tokio::spawn(async move { tx.send(black_box(1)).unwrap() });
                    black_box(rx.await.unwrap());
                }
                start.elapsed()
            }))
            .unwrap()
        })
    });
    g.finish();
}

/// `new` + `n` x `add_callback` + fire + take the result, against a
/// `Vec<Box<dyn FnOnce(u64) -> u64>>` of the same length (each closure
/// captures a `u64`, so each box is one allocation, as each callback is).
fn chain(c: &mut Criterion) {
    for n in [10u64, 100] {
        let mut g = c.benchmark_group(format!("chain_{n}"));
        g.throughput(Throughput::Elements(n));
        g.bench_function(OURS, |b| b.iter(|| black_box(common::callback_chain(n))));
        g.bench_function(ANCHOR, |b| b.iter(|| black_box(common::boxed_closures(n))));
        g.finish();
    }
    // The same rows on the `!Send` flavour (its callbacks unboxed in one
    // arena per chain).
    for n in [10u64, 100] {
        let mut g = c.benchmark_group(format!("chain_{n}_local"));
        g.throughput(Throughput::Elements(n));
        g.bench_function(OURS, |b| {
            b.iter(|| black_box(common::local_callback_chain(n)))
        });
        g.bench_function(ANCHOR, |b| b.iter(|| black_box(common::boxed_closures(n))));
        g.finish();
    }
}

/// Fires a nested chain from the innermost and takes the result at the top;
/// building and dropping are not timed. `ours` is 1,000,000 deep, `anchor`
/// 1,000 deep; the throughput makes the per-level cost comparable. Each
/// chain is built from the heap as the previous one left it, as in a
/// program that builds chains one after another.
fn nested_chain(c: &mut Criterion) {
    let mut g = c.benchmark_group("nested_chain_fire");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    for (id, depth) in [(OURS, 1_000_000u64), (ANCHOR, 1_000)] {
        g.throughput(Throughput::Elements(depth));
        g.bench_function(BenchmarkId::new(id, depth), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| common::time_nested_fire(depth)).sum())
        });
    }
    g.finish();

    // The whole life of the chain: build, fire, take, drop.
    let mut g = c.benchmark_group("nested_chain_build_fire_drop");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    for (id, depth) in [(OURS, 1_000_000u64), (ANCHOR, 1_000)] {
        g.throughput(Throughput::Elements(depth));
        g.bench_function(BenchmarkId::new(id, depth), |b| {
            b.iter(|| {
                let (d, r) = nested(depth);
                r.callback(black_box(41)).unwrap();
                black_box(d.try_take().unwrap().unwrap())
            })
        });
    }
    g.finish();
}

/// `ensure_deferred` of a future that never suspends, against `succeed`.
fn ensure_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("ensure_deferred_ready");
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let d = ensure_deferred(async { Ok::<_, Failure>(black_box(1u64)) });
            black_box(d.try_take().unwrap().unwrap())
        })
    });
    g.bench_function(ANCHOR, |b| {
        b.iter(|| black_box(succeed(black_box(1u64)).try_take().unwrap().unwrap()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = new_fire_await, new_fire_await_local, await_pending_then_fire, fire_across_tasks, chain, nested_chain,
        ensure_ready
}
criterion_main!(benches);
