//! The rows of `gather_results`, `DeferredQueue`, `DeferredLock` and
//! `DeferredSemaphore`, each against its Tokio anchor in the same run.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio_deferred::{DeferredLock, DeferredQueue, DeferredSemaphore, gather_results};

mod common;
use common::{
    ANCHOR, OURS, fire_all, gather_in_task, gather_inputs, join_all_in_task, join_all_inputs,
    send_all,
};

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a ready future"),
    }
}

/// `gather_results` over 10,000 Deferreds fired after gathering, against
/// `join_all` over 10,000 tokio oneshot receivers polled pending, then sent;
/// both awaited in a task of a current-thread runtime, as user code runs
/// them. There Tokio's coop budget applies: a task may make 128 resource
/// polls per turn, then every oneshot returns `Pending` and re-wakes it, so
/// `join_all` needs many turns and goes quadratic (the pitfall push-based
/// gathering avoids; `gather_results` polls nothing).
fn gather(c: &mut Criterion) {
    let rt = common::current_thread();
    let ours = || gather_in_task(&rt, GATHER_N);
    let anchor = || join_all_in_task(&rt, GATHER_N);
    let mut g = c.benchmark_group("gather_results_10000");
    g.throughput(Throughput::Elements(GATHER_N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function(OURS, |b| b.iter(|| black_box(ours())));
    g.bench_function(ANCHOR, |b| b.iter(|| black_box(anchor())));
    g.finish();
}

/// The same two workloads outside any runtime, driven by hand with a no-op
/// waker (information, no target): no coop budget applies there, so this
/// compares the bare costs of push (our inputs, links and counting) and poll
/// (oneshots and `join_all`'s slots).
fn gather_no_runtime(c: &mut Criterion) {
    let ours = || {
        let (ds, rs) = gather_inputs(GATHER_N);
        let all = gather_results(ds);
        fire_all(rs);
        all.try_take().unwrap().unwrap().len()
    };
    let anchor = || {
        let (txs, mut all) = join_all_inputs(GATHER_N);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(all.as_mut().poll(&mut cx).is_pending());
        send_all(txs);
        match all.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v.len(),
            Poll::Pending => panic!("join_all still pending"),
        }
    };
    let mut g = c.benchmark_group("gather_results_10000_no_runtime");
    g.throughput(Throughput::Elements(GATHER_N as u64));
    g.sample_size(20);
    g.bench_function(OURS, |b| b.iter(|| black_box(ours())));
    g.bench_function(ANCHOR, |b| b.iter(|| black_box(anchor())));
    g.finish();
}

const GATHER_N: usize = 10_000;

/// `DeferredQueue` put + get (the value is there) vs tokio's unbounded mpsc
/// send + recv. Both sides consume the result by polling it once, as
/// `.await` does (`try_take(&self)` of an already-fired Deferred costs one
/// uncontended mutex round trip more: it takes through a shared reference).
fn queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("deferred_queue_put_get");
    let q = DeferredQueue::<u64>::new(None, None);
    g.bench_function(OURS, |b| {
        b.iter(|| {
            q.put(black_box(1)).unwrap();
            black_box(ready(q.get().unwrap()).unwrap())
        })
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    g.bench_function(ANCHOR, |b| {
        b.iter(|| {
            tx.send(black_box(1)).unwrap();
            black_box(ready(rx.recv()).unwrap())
        })
    });
    g.finish();
}

/// Uncontended acquire + release of `DeferredLock` / `DeferredSemaphore`
/// vs tokio's `Mutex` / `Semaphore`, both polled once as `.await` does.
fn locks(c: &mut Criterion) {
    let mut g = c.benchmark_group("deferred_lock_acquire_release");
    let lock = DeferredLock::new();
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let l = ready(lock.acquire()).unwrap();
            l.release().unwrap();
        })
    });
    let m = tokio::sync::Mutex::new(0u64);
    g.bench_function(ANCHOR, |b| b.iter(|| drop(black_box(ready(m.lock())))));
    g.finish();

    let mut g = c.benchmark_group("deferred_semaphore_acquire_release");
    let sem = DeferredSemaphore::new(1).unwrap();
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let s = ready(sem.acquire()).unwrap();
            s.release().unwrap();
        })
    });
    let ts = tokio::sync::Semaphore::new(1);
    g.bench_function(ANCHOR, |b| {
        b.iter(|| drop(black_box(ready(ts.acquire()).unwrap())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = gather, gather_no_runtime, queue, locks
}
criterion_main!(benches);
