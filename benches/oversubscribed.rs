//! Many more threads than cores: 64 OS threads sharing Deferreds and one
//! `DeferredQueue`, against Tokio's primitives doing the same work in the
//! same run. A lock whose waiters spin on a preempted holder shows here as
//! a cliff (a ratio far above 1, or single iterations many times slower
//! than the rest), long before it shows on an uncontended row.
//!
//! * `oversubscribed_deferreds`: 32 pairs of threads. Each pair hands over
//!   `ITEMS` Deferreds: the producer fires them in order, while the consumer
//!   awaits each (on its own current-thread runtime), so the fire and the
//!   poll of one Deferred race on its state. Anchor: `tokio::sync::oneshot`,
//!   sent and awaited the same way.
//! * `oversubscribed_callbacks`: the same, and the consumer adds a callback
//!   to each Deferred before awaiting it, so the `add_callback` races with
//!   the fire too (and the callback runs in whichever thread comes second).
//!   Anchor: the oneshot, with the callback boxed and called after the
//!   await (a callback is a box, as in the chain rows' anchor).
//! * `oversubscribed_queue`: one queue shared by all 64 threads, each of
//!   which puts a value and then gets one (awaiting the `get()`), `ITEMS`
//!   times, so every thread contends on the queue all the time and at most
//!   64 values wait in it. Tokio has no channel with many receivers, so the
//!   anchor is the queue a Tokio program writes for that: a `VecDeque`
//!   behind `std::sync::Mutex`, with a `tokio::sync::Notify` that a get
//!   awaits when the queue is empty and a put notifies. (Sharing an mpsc
//!   receiver behind `tokio::sync::Mutex` instead hands the lock over in
//!   FIFO order and parks a thread per item: tens of times slower on both
//!   sides' scale, so no anchor.)
//!
//! One iteration is one such run: the threads are spawned and their inputs
//! made before a barrier, and only the time from the barrier to the last
//! join is counted. `benches/report.py` prints each group's ratio and the
//! slowest sample against the median sample of each side.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tokio::sync::Notify;
use tokio_deferred::{Deferred, DeferredQueue, Failure, Resolver};

mod common;
use common::{ANCHOR, OURS};

/// Threads per run (the machine this was written on has 2 cores).
const THREADS: usize = 64;
/// Items each thread hands over per run (enough for a run to last many
/// scheduler time slices).
const ITEMS: usize = 10_000;

/// Spawns one thread per job, releases them together, and returns the time
/// from the release until the last one finished.
fn timed_threads(jobs: Vec<Box<dyn FnOnce() + Send>>) -> Duration {
    let barrier = Arc::new(Barrier::new(jobs.len() + 1));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                job();
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench thread panicked");
    }
    start.elapsed()
}

/// A current-thread runtime for one thread's awaits (built before the
/// barrier, so it is not timed).
fn thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("build a current-thread runtime")
}

/// One run of 32 producer/consumer pairs: `make` gives one hand-over's two
/// ends, the producer `send`s each with its index, and the consumer runs
/// `receive` over all of its ends (on its own runtime), which awaits them.
fn pairs<S, R, F>(
    make: impl Fn() -> (S, R),
    send: impl Fn(S, u64) + Copy + Send + 'static,
    receive: impl FnOnce(Vec<R>) -> F + Copy + Send + 'static,
) -> Duration
where
    S: Send + 'static,
    R: Send + 'static,
    F: Future<Output = u64>,
{
    let mut jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::with_capacity(THREADS);
    for _ in 0..THREADS / 2 {
        let (senders, receivers): (Vec<S>, Vec<R>) = (0..ITEMS).map(|_| make()).unzip();
        jobs.push(Box::new(move || {
            for (k, s) in senders.into_iter().enumerate() {
                send(s, black_box(k as u64));
            }
        }));
        let rt = thread_runtime();
        jobs.push(Box::new(move || {
            black_box(rt.block_on(receive(receivers)));
        }));
    }
    timed_threads(jobs)
}

/// One run of the Deferred pairs, with or without a callback on each.
fn deferred_pairs(with_callback: bool) -> Duration {
    let make = || {
        let (d, r) = Deferred::<u64>::new();
        (r, d)
    };
    let fire = |r: Resolver<u64>, k| r.callback(k).unwrap();
    if with_callback {
        pairs(make, fire, |ds| async move {
            let mut sum = 0;
            for d in ds {
                sum += d.add_callback(|v| Ok::<_, Failure>(v + 1)).await.unwrap();
            }
            sum
        })
    } else {
        pairs(make, fire, |ds| async move {
            let mut sum = 0;
            for d in ds {
                sum += d.await.unwrap();
            }
            sum
        })
    }
}

/// One run of the oneshot pairs (the anchor of `deferred_pairs`).
fn oneshot_pairs(with_callback: bool) -> Duration {
    let make = tokio::sync::oneshot::channel::<u64>;
    let send = |tx: tokio::sync::oneshot::Sender<u64>, k| tx.send(k).unwrap();
    if with_callback {
        pairs(make, send, |rxs| async move {
            let mut sum = 0;
            for rx in rxs {
                let callback: Box<dyn FnOnce(u64) -> u64> = Box::new(|v| v + 1);
                sum += black_box(callback)(rx.await.unwrap());
            }
            sum
        })
    } else {
        pairs(make, send, |rxs| async move {
            let mut sum = 0;
            for rx in rxs {
                sum += rx.await.unwrap();
            }
            sum
        })
    }
}

/// One run of the shared `DeferredQueue`.
fn deferred_queue() -> Duration {
    let q = Arc::new(DeferredQueue::<u64>::new(None, None));
    let jobs = (0..THREADS)
        .map(|_| {
            let q = q.clone();
            let rt = thread_runtime();
            Box::new(move || {
                rt.block_on(async move {
                    let mut sum = 0u64;
                    for k in 0..ITEMS {
                        q.put(black_box(k as u64)).unwrap();
                        sum += q.get().unwrap().await.unwrap();
                    }
                    black_box(sum);
                })
            }) as Box<dyn FnOnce() + Send>
        })
        .collect();
    timed_threads(jobs)
}

/// One run of the `VecDeque` + `Notify` queue (the anchor of
/// `deferred_queue`).
fn notify_queue() -> Duration {
    let q = Arc::new((Mutex::new(VecDeque::<u64>::new()), Notify::new()));
    let jobs = (0..THREADS)
        .map(|_| {
            let q = q.clone();
            let rt = thread_runtime();
            Box::new(move || {
                rt.block_on(async move {
                    let (queue, notify) = &*q;
                    let mut sum = 0u64;
                    for k in 0..ITEMS {
                        queue.lock().unwrap().push_back(black_box(k as u64));
                        notify.notify_one();
                        sum += loop {
                            // A `notify_one` with no waiter leaves a permit,
                            // so a put between the pop and the await is not
                            // lost.
                            let value = queue.lock().unwrap().pop_front();
                            match value {
                                Some(v) => break v,
                                None => notify.notified().await,
                            }
                        };
                    }
                    black_box(sum);
                })
            }) as Box<dyn FnOnce() + Send>
        })
        .collect();
    timed_threads(jobs)
}

fn oversubscribed(c: &mut Criterion) {
    let pairs = (THREADS / 2 * ITEMS) as u64;
    let rows: [(&str, u64, &dyn Fn() -> Duration, &dyn Fn() -> Duration); 3] = [
        (
            "oversubscribed_deferreds",
            pairs,
            &|| deferred_pairs(false),
            &|| oneshot_pairs(false),
        ),
        (
            "oversubscribed_callbacks",
            pairs,
            &|| deferred_pairs(true),
            &|| oneshot_pairs(true),
        ),
        (
            "oversubscribed_queue",
            (THREADS * ITEMS) as u64,
            &deferred_queue,
            &notify_queue,
        ),
    ];
    for (name, items, ours, anchor) in rows {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(items));
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(10);
        g.measurement_time(Duration::from_secs(5));
        g.bench_function(OURS, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| ours()).sum())
        });
        g.bench_function(ANCHOR, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| anchor()).sum())
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = oversubscribed
}
criterion_main!(benches);
