//! `defer_to_thread` round trip against `spawn_blocking`: on the 2-worker
//! runtime, one call awaited at a time, looped inside one spawned task with
//! `iter_custom` (as `fire_across_tasks`).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio_deferred::{Failure, defer_to_thread};

mod common;
use common::{ANCHOR, OURS};

fn defer_to_thread_round_trip(c: &mut Criterion) {
    let rt = common::multi_thread();
    let mut g = c.benchmark_group("defer_to_thread_round_trip");
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            rt.block_on(rt.spawn(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let d = defer_to_thread(|| Ok::<_, Failure>(black_box(1u64)));
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
                    let h = tokio::task::spawn_blocking(|| black_box(1u64));
                    black_box(h.await.unwrap());
                }
                start.elapsed()
            }))
            .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = defer_to_thread_round_trip
}
criterion_main!(benches);
